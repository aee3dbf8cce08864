/*  edge_call: turns one matched edge request into one bus request and bus replies
    back into JSON. Shared by edge_http (plain JSON and SSE) and edge_ws: arguments
    are the route's path, query and body merged (edge_routes_args) and packed as
    msgpack (codec_json); headers carry the identity the edge verified, the
    client's address, the request id and the deadline.                          */
#ifndef EDGE_CALL_H_INCLUDED
#define EDGE_CALL_H_INCLUDED

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_client.h"
#include "edge_auth.h"
#include "edge_routes.h"

//  Why a call could not be sent: HTTP status, error code and message.
typedef struct {
    int status;         //  HTTP status
    const char *code;   //  error code ("bad_request", "broker_unavailable", ...)
    char message[256];  //  human readable
} edge_call_error_t;

//  Send the bus request of a matched route with body (a JSON object or NULL), on
//  behalf of identity (NULL: anonymous) from client_ip (may be NULL): the bus
//  headers carry both (edge_auth_headers). Returns the handle (> 0), or 0 with
//  error filled. The caller stores the handle, then calls bus_client_process
//  (replies may come from inside it).
uint64_t edge_call_send (bus_client_t *bus, const edge_match_t *match, json_t *body,
                         const edge_identity_t *identity, const char *client_ip,
                         const char *request_id, int64_t timeout_ms, bus_reply_fn *fn,
                         void *arg, edge_call_error_t *error);

//  Send a body already packed (msgpack, size bytes) to service/command on behalf
//  of identity (NULL: nobody, as webhooks are, schemas/channels.md): the bus
//  headers carry it, request_id, client_ip (may be NULL) and timeout_ms. An
//  idempotent request is resent once through another broker on broker_lost.
//  Returns the handle (> 0), or 0 with error filled; the caller then runs
//  bus_client_process as above.
uint64_t edge_call_send_raw (bus_client_t *bus, const char *service, const char *command,
                             const void *body, size_t size,
                             const edge_identity_t *identity, const char *client_ip,
                             const char *request_id, int64_t timeout_ms, bool idempotent,
                             bus_reply_fn *fn, void *arg, edge_call_error_t *error);

//  The arguments of an upload route (EDGE_ROUTE_UPLOAD) as a msgpack map: the
//  path parameters as strings, "content_type" (when not NULL) and the body bytes
//  as bin "data". Returns a new buffer (the caller frees), its length in *out_size.
void *edge_call_upload_body (const edge_match_t *match, const char *content_type,
                             const void *data, size_t size, size_t *out_size);

//  The JSON text of a reply body (msgpack); an empty body is "{}". NULL when the
//  body is not valid msgpack. Caller frees.
char *edge_call_reply_json (const bus_reply_t *reply);

//  A new JSON error body {"error":{"code":...,"message":...}} (caller frees).
char *edge_call_error_json (const char *code, const char *message);

//  The same, and with openai in OpenAI's shape too, so that its SDKs report it:
//  {"error":{"message","type","param","code"}}, type from status
//  (edge_call_openai_type); param is the field a 400's message starts with
//  ("messages[0].content: expected ..."), else null. Caller frees.
char *edge_call_error_body (const char *code, const char *message, int status,
                            bool openai);

//  OpenAI's error type for an HTTP status: authentication_error (401),
//  permission_error (403), rate_limit_error (429), invalid_request_error (other
//  4xx), api_error (5xx and anything else).
const char *edge_call_openai_type (int status);

//  Whether a request to the matched route is answered as SSE: OpenAI routes
//  when body says "stream": true, replay routes always, other streaming routes
//  when the client accepts text/event-stream (accepts_sse).
bool edge_call_wants_sse (const edge_match_t *match, json_t *body, bool accepts_sse);

//  The body to send with what the edge adds for a route (schemas/chat.md): on
//  event routes answered as SSE "stream": true; on resumable routes the
//  Last-Event-ID header (last_event_id, may be NULL or "") as "last_event_id",
//  and on replay routes "<message_id>:0" when neither it nor the body names one.
//  Takes body (a JSON object or NULL) and returns the body to send (may be NULL).
json_t *edge_call_stream_body (const edge_match_t *match, json_t *body, bool sse,
                               const char *last_event_id);

//  The first key of body (an object) that message type desc has no field for,
//  descending into message-typed fields and their arrays, as its path
//  ("tools[0].typo") in error: true when there is one. A misspelled field would
//  otherwise be dropped by the decoder and the change it meant silently lost.
//  A top-level tenant_id is let through (and ignored downstream): the tenant is
//  always the credential's (schemas/auth.md).
bool edge_call_unknown_field (const ProtobufCMessageDescriptor *desc, json_t *body,
                              char *error, size_t error_size);

//  Parse a request body as JSON. Empty is NULL with *ok set; anything but an
//  object is refused (*ok false, message in error).
json_t *edge_call_parse_body (const char *text, size_t size, bool *ok, char *error,
                              size_t error_size);

void edge_call_test (bool verbose);

#endif
