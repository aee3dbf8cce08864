/*  edge_context: the state one edge actor shares between its modules (edge_server
    owns it; edge_http, edge_ws and edge_ready borrow it). One thread touches it:
    the actor's, which runs libwebsockets and the bus client together.            */
#ifndef EDGE_CONTEXT_H_INCLUDED
#define EDGE_CONTEXT_H_INCLUDED

#include <czmq.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_client.h"
#include "core_config.h"
#include "core_log.h"
#include "edge_guard.h"
#include "edge_metrics.h"

typedef struct _edge_ready_t edge_ready_t;
typedef struct _edge_live_t edge_live_t;

typedef struct {
    //  Configuration, read once at start.
    size_t max_body;             //  largest request body (bytes)
    size_t stream_queue;         //  per-stream / per-connection send queue (bytes)
    size_t ws_max_message;       //  largest WebSocket message received (bytes)
    int64_t timeout_ms;          //  bus deadline of HTTP requests
    size_t webhook_max_body;     //  largest webhook body (bytes)
    size_t avatar_max_body;      //  largest upload (avatar) body (bytes)
    int64_t webhook_timeout_ms;  //  bus deadline of webhooks.receive
    int64_t keepalive_ms;        //  SSE heartbeat comment interval
    int max_connections;         //  most client connections at once
    bool trust_proxy;            //  the client address is X-Forwarded-For's last hop
    bool cookie_secure;          //  token cookies carry Secure

    core_log_t *log;          //  logger (owned by the server)
    struct lws_context *lws;  //  libwebsockets context
    bus_client_t *bus;        //  bus client
    edge_metrics_t *metrics;  //  Prometheus metrics
    edge_ready_t *ready;      //  cached readiness checks
    edge_guard_t *guard;      //  credentials, revocations, budgets
    edge_live_t *live;        //  what WebSocket clients watch (edge_live)
    struct ev_loop *loop;     //  the loop lws runs on (edge_server's)
    ev_timer guard_timer;     //  edge_guard_tick timer (edge_server's)
    char *openapi;            //  OpenAPI document text
    char *jwks;               //  JWKS of EdDSA access tokens, NULL with HS256
    size_t openapi_size;      //  its length
    unsigned char *direct;    //  room for an SSE block written at once (edge_http)
    zlistx_t *streams;        //  SSE requests (edge_request_t *), for heartbeats
    size_t sse_open;          //  SSE streams whose headers went out
    size_t ws_open;           //  WebSocket connections open
    size_t connections;       //  client connections open
    bool draining;            //  stopping: refuse new work
} edge_t;

//  Run the guard's timer at the next turn of the loop: a request was parked and
//  its Redis command waits to be sent (edge_http, edge_ws, edge_server).
static inline void
edge_wake_guard (edge_t *edge)
{
    if (edge->loop && ev_is_active (&edge->guard_timer)) {
        ev_timer_stop (edge->loop, &edge->guard_timer);
        ev_timer_set (&edge->guard_timer, 0., 0.);
        ev_timer_start (edge->loop, &edge->guard_timer);
    }
}

//  Monotonic time in microseconds.
static inline int64_t
edge_now_us (void)
{
    return zclock_usecs ();
}

#endif
