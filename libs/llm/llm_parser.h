/*  llm_parser: turns a provider's streamed response body into llm_events, fed
    in pieces of any size as they arrive. Pure: no sockets, no clock. One parser
    per attempt; llm_client feeds it from http_client's on_data. Every line or
    event is bounded (over the limit: bad_response), every input is safe, and
    the events do not depend on how the body was split, which the fuzz entry
    point checks for each provider (tests/fuzz/fuzz_llm_<provider>.c).          */
#ifndef LLM_PARSER_H_INCLUDED
#define LLM_PARSER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm_event.h"
#include "llm_request.h"

typedef struct _llm_parser_t llm_parser_t;

//  Called for each event. Return 0 to go on, non-zero to stop the parser (it
//  then takes no more input and emits nothing more).
typedef int (llm_parser_fn) (const llm_event_t *event, void *arg);

//  Create a parser for a provider's stream format; max_event bounds a line or
//  an SSE event (and n8n's buffered body is bounded by 4 times that); 0 means
//  1 MiB. The offline provider has no wire format: NULL.
llm_parser_t *llm_parser_new (llm_provider_t provider, size_t max_event,
                              llm_parser_fn *fn, void *arg);
void llm_parser_destroy (llm_parser_t **self_p);

//  The response's Content-Type (n8n decides how to read the body by it and by
//  the content); call before feeding. Others ignore it.
void llm_parser_set_content_type (llm_parser_t *self, const char *content_type);

//  Feed a piece of the body. Returns 0, or -1 once the stream has ended (a DONE
//  or ERROR was emitted) or fn asked to stop.
int llm_parser_feed (llm_parser_t *self, const void *data, size_t size);

//  The body is complete: emits DONE when the format's terminal marker came
//  (or, for Gemini and n8n bodies, the content is complete), else ERROR
//  stream_broken. Nothing when the stream already ended.
void llm_parser_finish (llm_parser_t *self);

//  True once DONE or ERROR was emitted (or fn stopped the parser).
bool llm_parser_ended (llm_parser_t *self);

//  True once a DELTA, TOOL_CALL or USAGE event was emitted.
bool llm_parser_delivered (llm_parser_t *self);

//  Fuzz entry point: the first byte picks a Content-Type (for n8n) and a chunk
//  size; the rest is parsed as the provider's stream whole, byte by byte and in
//  chunks of that size. Checks that all give the same events and exactly one
//  DONE or ERROR, and never crashes. Returns 0.
int llm_parser_fuzz (llm_provider_t provider, const uint8_t *data, size_t size);

void llm_parser_test (bool verbose);

#endif
