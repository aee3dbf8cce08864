/*  llm_n8n: an n8n workflow as an agent's brain, through its webhook (the
    request's base_url is the webhook URL itself). The builder POSTs JSON:
      {action: "sendMessage", sessionId, chatInput (the last user message),
       system_prompt, messages [{role, content, tool_calls?, tool_call_id?}],
       model?, thinking?, tools? [{name, description, parameters}], config?}
    which a Chat Trigger and a plain Webhook node both read; the api key, when
    set, goes as Authorization: Bearer (n8n's header or JWT auth).

    The reply is read whichever way the workflow answers, decided by
    Content-Type and content: n8n's streaming NDJSON (begin/item/end/error
    lines, unknown types such as keepalive ignored; complete once every begin
    has its end and at least one end came), SSE (the same typed objects, or
    data that is text or {delta|content|text|output}), or one body: JSON
    ({"output": ...} and the other common keys, a string, a one-item array) or
    plain text.                                                                 */
#ifndef LLM_N8N_H_INCLUDED
#define LLM_N8N_H_INCLUDED

#include "llm_private.h"

//  Build the HTTP request (llm_build_fn).
int llm_n8n_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size);

//  Feed a piece of the body; 0 to go on, -1 when the stream ended.
int llm_n8n_feed (llm_parser_t *parser, const void *data, size_t size);

//  One NDJSON line or one SSE event of an n8n stream.
int llm_n8n_on_line (llm_parser_t *parser, const char *line, size_t size);
int llm_n8n_on_event (llm_parser_t *parser, const http_sse_event_t *event);

//  The body ended: DONE when the stream was complete or the body holds an answer.
void llm_n8n_finish (llm_parser_t *parser);

void llm_n8n_test (bool verbose);

#endif
