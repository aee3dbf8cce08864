/*  agents_turn: agent turns (schemas/chat.md). Reads the agent and its tenant's
    provider setting, assembles the LLM request (system prompt, history, tools,
    sampling, thinking mode), streams it through libs/llm, and answers in one of
    three shapes: turn.run (TurnEvent partials, TurnResult final: the chat
    service's), agents.test (the same, or stream events for SSE), and
    openai_chat (OpenAI's chat.completion / chat.completion.chunk bodies for
    POST /v1/chat/completions). A cancelled request cancels the upstream
    transfer at once. Each finished turn emits agents.turn.completed.        */
#ifndef AGENTS_TURN_H_INCLUDED
#define AGENTS_TURN_H_INCLUDED

#include "agents_state.h"

//  Start and stop the LLM client in the service's loop.
int agents_turn_start (agents_state_t *state) __attribute__ ((warn_unused_result));
void agents_turn_stop (agents_state_t *state);

void agents_turn_run (service_runtime_t *runtime, bus_request_t *request, void *state);
void agents_turn_try (service_runtime_t *runtime, bus_request_t *request, void *state);
void agents_turn_openai_chat (service_runtime_t *runtime, bus_request_t *request,
                              void *state);

//  The runtime's cancel hook: the client went away or the deadline passed.
void agents_turn_cancel (service_runtime_t *runtime, bus_request_t *request, void *state);

void agents_turn_test (bool verbose);

#endif
