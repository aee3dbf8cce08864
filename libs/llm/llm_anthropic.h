/*  llm_anthropic: Anthropic Messages streaming. The builder makes POST
    {base}/v1/messages with x-api-key and anthropic-version 2023-06-01, the
    system prompt at the top level, tool calls as tool_use blocks and tool
    results as tool_result blocks of a user turn, and always a max_tokens. The
    parser reads the SSE events (message_start, content_block_start/delta/stop
    with text_delta, input_json_delta, thinking_delta and signature_delta,
    message_delta, message_stop; ping ignored; event: error) and hands the
    thinking blocks back as DONE's replay, which the next request of a tool
    loop must echo before the tool_use blocks.

    Thinking: Claude 4.6 and later take adaptive thinking ({type: "adaptive"}
    and output_config.effort quick "low", balanced "medium", deep "high");
    Claude 3.7 Sonnet and the Claude 4 to 4.5 models take extended thinking
    with budget_tokens (quick: none, balanced 4096, deep 16384, added to
    max_tokens and kept under 32000). Older models get nothing. With thinking
    on, temperature is not sent (the API refuses it), and thinking stays off in
    the middle of a tool loop that began without it (one configuration per
    assistant turn).                                                            */
#ifndef LLM_ANTHROPIC_H_INCLUDED
#define LLM_ANTHROPIC_H_INCLUDED

#include "llm_private.h"

//  Build the HTTP request (llm_build_fn).
int llm_anthropic_build (llm_request_t *request, llm_wire_t *wire, char *error,
                         size_t size);

//  Parse one SSE event of the stream; 0 to go on, -1 when the stream ended.
int llm_anthropic_on_event (llm_parser_t *parser, const http_sse_event_t *event);

void llm_anthropic_test (bool verbose);

#endif
