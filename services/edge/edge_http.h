/*  edge_http: the HTTP side of the edge on libwebsockets: one request at a time
    per keep-alive connection, body limits, JSON errors, X-Request-Id, built-in
    routes (healthz, readyz, metrics, openapi.json) and bus routes answered as JSON
    or, when the client accepts text/event-stream, as SSE with a bounded queue.
    Bus routes pass edge_guard first (a request may wait parked for its verdict),
    carry the verified identity in their bus headers, and set or clear the token
    cookies where the route says so.
    edge_server calls edge_http_callback for the HTTP reasons of protocol 0.      */
#ifndef EDGE_HTTP_H_INCLUDED
#define EDGE_HTTP_H_INCLUDED

#include "edge_auth.h"
#include "edge_context.h"

typedef struct _edge_request_t edge_request_t;
typedef struct _edge_ws_t edge_ws_t;

//  Per-connection data of protocol 0 (lws allocates and zeroes it).
typedef struct {
    edge_request_t *request;  //  HTTP request in progress, if any
    edge_ws_t *ws;            //  WebSocket connection state, after an upgrade
} edge_session_t;

//  Handle one lws callback of an HTTP connection; returns what lws expects.
int edge_http_callback (edge_t *edge, struct lws *wsi, enum lws_callback_reasons reason,
                        edge_session_t *session, void *in, size_t len);

//  Read from the request headers of wsi its credential (the Authorization header,
//  else the chorus_access cookie), its chorus_refresh cookie (refresh: "" when
//  none) and the client's address (X-Forwarded-For's last hop when the edge
//  trusts its proxy, else the peer). edge_ws uses it on the upgrade request.
void edge_http_credentials (edge_t *edge, struct lws *wsi, edge_credential_t *credential,
                            char *refresh, size_t refresh_size, char *client_ip,
                            size_t client_ip_size);

//  Send an SSE keepalive comment on every stream idle for keepalive_ms.
void edge_http_heartbeat (edge_t *edge);

//  Open SSE streams.
size_t edge_http_streams_open (edge_t *edge);

//  Over real sockets: the agents, chat and OpenAI routes (edge_http_test.c).
void edge_http_test (bool verbose);

#endif
