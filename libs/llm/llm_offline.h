/*  llm_offline: the built-in provider that needs no network and pretends to be
    no language model. Without context passages it answers a fixed notice that
    no model is configured; with passages (from the agent's knowledge base) it
    answers with them, quoted, each with its source, numbered for citation.
    llm_client streams the answer in several DELTA pieces from a zloop timer,
    then DONE. Pure: text in, text out.                                         */
#ifndef LLM_OFFLINE_H_INCLUDED
#define LLM_OFFLINE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "llm_request.h"

//  The notice given when no passages are there.
#define LLM_OFFLINE_NOTICE                                                               \
    "No language model is configured for this agent yet. An administrator can pick a "   \
    "provider and a model in the agent's settings; until then I can only point to what " \
    "the knowledge base holds."

//  The whole answer for a request. The caller frees it.
char *llm_offline_answer (llm_request_t *request);

//  Bytes of the next piece of text from offset: at most about max bytes, cut
//  after a space when there is one, never inside a UTF-8 sequence; 0 at the end.
size_t llm_offline_piece (const char *text, size_t offset, size_t max);

void llm_offline_test (bool verbose);

#endif
