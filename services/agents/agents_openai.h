/*  agents_openai: checks the body of POST /v1/chat/completions as OpenAI does
    (schemas/chat.md, "The OpenAI-compatible API"), before agents_turn reads the
    agent and turns the messages into a turn's history. The parameters Chorus
    uses are checked in full; the other parameters OpenAI documents (user, seed,
    stop, response_format, ...) are type-checked and otherwise left alone, and
    fields OpenAI does not know are ignored. A refusal names the field first,
    "messages[0].content: ...", which the edge answers as OpenAI's "param".    */
#ifndef AGENTS_OPENAI_H_INCLUDED
#define AGENTS_OPENAI_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  Most messages one request may hold, and most tools it may offer.
#define AGENTS_OPENAI_MESSAGES_MAX 1000
#define AGENTS_OPENAI_TOOLS_MAX 128

//  Check body (the decoded JSON request, NULL when it did not decode). Returns 0
//  when OpenAI would take it, else -1 with "<param>: <what is wrong>" in error.
int agents_openai_check (const json_t *body, char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

//  The text of a checked message's content (a string, or the concatenated text
//  of its parts; "" for null), as a new string the caller frees.
char *agents_openai_content (const json_t *message);

void agents_openai_test (bool verbose);

#endif
