/*  edge_table: the edge's route table, one row per route: method, path pattern,
    what it does (a bus command or a built-in), the success status, who may call
    it (schemas/auth.md), its request and reply schemas and declared query
    parameters for the OpenAPI document, and what the edge does around it with
    the token cookies. Data only: edge_routes matches against it, edge_openapi
    documents it, edge_http and edge_ws act on it.                              */
#ifndef EDGE_TABLE_H_INCLUDED
#define EDGE_TABLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "edge_auth.h"

//  What the edge does with a matched route.
typedef enum {
    EDGE_ROUTE_BUS = 0,  //  one bus request to service/command
    EDGE_ROUTE_HEALTHZ,  //  liveness
    EDGE_ROUTE_READYZ,   //  readiness from cached checks
    EDGE_ROUTE_METRICS,  //  Prometheus text
    EDGE_ROUTE_OPENAPI,  //  the OpenAPI document
    EDGE_ROUTE_JWKS,     //  the public keys of EdDSA access tokens
    EDGE_ROUTE_WS        //  WebSocket upgrade
} edge_route_kind_t;

//  A declared query parameter: name and JSON type ("integer", "string", "boolean").
typedef struct {
    const char *name;         //  query parameter name
    const char *type;         //  "integer", "string" or "boolean"
    long long min;            //  lowest integer accepted
    long long max;            //  highest integer accepted
    const char *description;  //  one line for the OpenAPI document
} edge_query_param_t;

#define EDGE_ROUTE_MAX_QUERY 8

//  Flags of a route (edge_route_t.flags)
//  A 2xx JSON answer with access_token and refresh_token sets both token cookies
#define EDGE_ROUTE_TOKENS 1
//  A 2xx answer clears both token cookies
#define EDGE_ROUTE_LOGOUT 2
//  Without refresh_token in the body, the chorus_refresh cookie's value is sent
#define EDGE_ROUTE_REFRESH_COOKIE 4
//  Streams chat.md's events: with SSE the args get "stream": true, replies that
//  are {"event","data","id"} maps are named events, others plain data lines
#define EDGE_ROUTE_EVENTS 8
//  The Last-Event-ID header goes in the args as "last_event_id"
#define EDGE_ROUTE_RESUME 16
//  EventSource's replay of message {message_id}: always SSE with "stream": true;
//  without Last-Event-ID, last_event_id is "<message_id>:0" (every event)
#define EDGE_ROUTE_REPLAY 32
//  OpenAI's API: SSE when the JSON body says "stream": true (whatever Accept
//  says), framed as data lines and [DONE]; errors in OpenAI's shape
#define EDGE_ROUTE_OPENAI 64
//  A platform's webhook (schemas/channels.md): public without reading any
//  credential, the raw body and the named headers passed as a WebhookRequest,
//  its own body limit, deadline and budget per connection id, the service's
//  WebhookReply written out as it is; never HEAD, never over the WebSocket
#define EDGE_ROUTE_WEBHOOK 128
//  An upload: the raw body (at most CHORUS_EDGE_AVATAR_MAX_BODY) goes as msgpack
//  bin "data" with the path parameters and the request's "content_type"; no JSON
#define EDGE_ROUTE_UPLOAD 256
//  The FINAL reply is a {status, content_type, body} like channels.proto's
//  WebhookReply, written out as it is with nosniff and a short private cache
#define EDGE_ROUTE_VERBATIM 512

//  One route of the table.
typedef struct {
    const char *method;        //  "GET", "POST", ...
    const char *pattern;       //  "/api/v1/services/{name}/ping"
    edge_route_kind_t kind;    //  bus request or built-in handler
    const char *service;       //  bus service, or "{param}" to take it from the path
    const char *command;       //  bus command
    int status;                //  HTTP status on success (204: no body)
    bool streams;              //  may answer in several parts (SSE / WS partials)
    const char *summary;       //  one line for the OpenAPI document
    const char *reply_schema;  //  components/schemas name of the reply, or NULL
    edge_query_param_t query[EDGE_ROUTE_MAX_QUERY];  //  declared query parameters
    const char *request_schema;  //  components/schemas name of the JSON body, or NULL
    edge_need_t need;            //  who may call it
    int flags;                   //  EDGE_ROUTE_TOKENS, _LOGOUT, _EVENTS, ...
} edge_route_t;

//  The route table and its size.
const edge_route_t *edge_table_routes (size_t *count);

//  The service names {name} may take.
const char *const *edge_table_services (size_t *count);

//  The platforms {platform} may take (webhook routes).
const char *const *edge_table_platforms (size_t *count);

void edge_table_test (bool verbose);

#endif
