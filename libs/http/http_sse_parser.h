/*  http_sse_parser: incremental parser for text/event-stream bodies as the WHATWG
    HTML standard defines them (server-sent events): fields event, data, id and
    retry, comments, dispatch on a blank line, a leading BOM, CR/LF/CRLF line ends.
    Feed it body chunks from http_client's on_data; it calls back once per event.
    Used by the LLM provider streams (OpenAI, Anthropic, n8n webhooks).            */
#ifndef HTTP_SSE_PARSER_H_INCLUDED
#define HTTP_SSE_PARSER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _http_sse_parser_t http_sse_parser_t;

//  One dispatched event. Strings are NUL-terminated and valid only during the
//  callback; data may itself hold NUL bytes, so use data_size.
typedef struct {
    const char *type;  //  event type, "message" when the event named none
    const char *data;  //  data lines joined with "\n"
    size_t data_size;  //  bytes in data
    const char *id;    //  last event id of the stream so far, "" for none
} http_sse_event_t;

//  Called once per event. Return 0 to go on, non-zero to stop feeding.
typedef int (http_sse_fn) (const http_sse_event_t *event, void *arg);

//  Create a parser that refuses events bigger than max_event bytes (data plus
//  type; a line may be that long plus a short field name); 0 means 1 MiB.
http_sse_parser_t *http_sse_parser_new (size_t max_event);
void http_sse_parser_destroy (http_sse_parser_t **self_p);

//  Feed a chunk of the stream; calls fn for each event it completes. Returns 0,
//  or -1 when an event or line is over the limit (the parser then refuses input
//  until reset) or fn asked to stop.
int http_sse_parser_feed (http_sse_parser_t *self, const void *data, size_t size,
                          http_sse_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  The stream's last event id ("" when none), to send as Last-Event-ID on reconnect.
const char *http_sse_parser_last_id (http_sse_parser_t *self);

//  The reconnection time the stream asked for with "retry:", in ms; -1 when none.
int64_t http_sse_parser_retry (http_sse_parser_t *self);

//  True once the parser refused an event or a line as too big.
bool http_sse_parser_overflow (http_sse_parser_t *self);

//  Start over, as for a new stream (forgets the last event id and retry too).
void http_sse_parser_reset (http_sse_parser_t *self);

//  Fuzz entry point: parses the input whole, byte by byte and in chunks chosen by
//  its first byte, checks that all give the same events, and never crashes.
//  Returns 0. For LLVMFuzzerTestOneInput in tests/fuzz.
int http_sse_parser_fuzz (const uint8_t *data, size_t size);

void http_sse_parser_test (bool verbose);

#endif
