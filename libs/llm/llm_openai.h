/*  llm_openai: OpenAI Chat Completions streaming, also spoken by every
    OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, Ollama's /v1)
    through base_url. The builder makes POST {base}/chat/completions with
    stream: true and stream_options.include_usage; the parser reads its SSE
    chunks (choices[].delta content and tool_calls, finish_reason, the usage
    chunk, error members) up to data: [DONE]. The common chunks (text, finish
    reasons, usage) are read by llm_openai_chunk without a JSON tree; the rest
    with jansson.

    Thinking: only OpenAI's reasoning models (o1, o3*, o4*, gpt-5*, not o1-mini,
    o1-preview, *-pro or gpt-5*-chat*) get reasoning_effort: quick "low",
    balanced "medium", deep "high". They also get max_completion_tokens instead
    of max_tokens and no temperature, which they refuse.                        */
#ifndef LLM_OPENAI_H_INCLUDED
#define LLM_OPENAI_H_INCLUDED

#include "llm_private.h"

//  Build the HTTP request (llm_build_fn).
int llm_openai_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size);

//  Parse one SSE event of the stream; 0 to go on, -1 when the stream ended.
int llm_openai_on_event (llm_parser_t *parser, const http_sse_event_t *event);

//  Our finish reason for OpenAI's (function_call is tool_calls, unknown ones
//  stop); NULL for NULL.
const char *llm_openai_finish (const char *reason);

void llm_openai_test (bool verbose);

#endif
