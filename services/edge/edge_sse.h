/*  edge_sse: how the edge writes bus replies as Server-Sent Events
    (schemas/chat.md "How the edge renders streamed replies"). Three framings:

    - generic (the services routes): every reply is "id: <n>\nevent: partial" or
      "final", with the body as data;
    - events (chat routes): a body {"event": string, "data": any[, "id"]} is one
      named event "id: ...\nevent: ...\ndata: <JSON of data>", any other body a
      plain "data:" line (generic bodies that are such maps are named events too);
    - openai (/v1/chat/completions): "data: <body>" per reply, then
      "data: [DONE]" after the final one.

    A bus error is "event: error" with {"error":{"code","message"}} (openai: a
    "data:" line with OpenAI's error object). Pure: edge_http queues the text it
    returns; fuzz_edge_sse feeds it arbitrary reply bodies.                       */
#ifndef EDGE_SSE_H_INCLUDED
#define EDGE_SSE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest event id (and Last-Event-ID) the edge passes on, in bytes.
#define EDGE_SSE_ID_MAX 128

//  How a route's replies are framed.
typedef enum {
    EDGE_SSE_GENERIC = 0,  //  id: n, event: partial | final, data: body
    EDGE_SSE_EVENTS,       //  {"event","data","id"} bodies as named events
    EDGE_SSE_OPENAI        //  data: body ..., data: [DONE]
} edge_sse_mode_t;

//  The SSE text of one reply from its msgpack body (size bytes; none stands for
//  {}), the data written as compact JSON straight from msgpack; final marks the
//  last reply. *counter numbers generic events (it is incremented for each).
//  Returns a new string (caller frees), its length in *out_size; NULL (counter
//  unchanged) when the body is not one well-formed msgpack value or is nested
//  too deep.
char *edge_sse_reply (edge_sse_mode_t mode, const void *body, size_t size, bool final,
                      uint64_t *counter, size_t *out_size);

//  The SSE text of an error that ends the stream: code and message as the edge
//  shows them (edge_error_status), status the HTTP status it maps to (it picks
//  OpenAI's error type). Caller frees; its length in *size.
char *edge_sse_error (edge_sse_mode_t mode, const char *code, const char *message,
                      int status, uint64_t *counter, size_t *size);

//  True when s (len bytes) can be an SSE event id or Last-Event-ID the edge
//  passes on: 1..EDGE_SSE_ID_MAX bytes, printable ASCII.
bool edge_sse_id_valid (const char *s, size_t len);

void edge_sse_test (bool verbose);

#endif
