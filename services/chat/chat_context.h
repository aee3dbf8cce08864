/*  chat_context: how much of a conversation's history fits a model's context.
    Tokens are estimated as ceil(characters / 4); each known model family has a
    context window (a table, longest matching name prefix wins; a safe default
    for the rest); the reply's max_tokens and the system prompt are kept free;
    the oldest turns are dropped first, never the newest message. Pure: used by
    chat_turn before it asks the agents service for a turn.                   */
#ifndef CHAT_CONTEXT_H_INCLUDED
#define CHAT_CONTEXT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Tokens a text is estimated at: ceil (UTF-8 characters / 4); NULL is 0.
uint32_t chat_context_tokens (const char *text);

//  Context window in tokens of model (case-insensitive name prefix match, e.g.
//  "gpt-4o-mini", "claude-3-5-sonnet-latest", "llama3.1:8b"); fallback when the
//  table does not know it (or model is NULL).
uint32_t chat_context_window (const char *model, uint32_t fallback);

//  Tokens left for the history: the window less the reply (max_tokens, 1024
//  when 0, at most half the window), the system prompt and a margin.
uint32_t chat_context_budget (const char *model, uint32_t fallback, uint32_t max_tokens,
                              uint32_t system_tokens);

//  Tokens one message costs in a request beyond its text.
#define CHAT_CONTEXT_MESSAGE_OVERHEAD 4

//  How many of count messages, newest first with their tokens, fit budget when
//  the oldest go first: always at least the newest one (when count > 0).
size_t chat_context_fit (const uint32_t *tokens, size_t count, uint32_t budget);

void chat_context_test (bool verbose);

#endif
