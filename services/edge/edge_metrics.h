/*  edge_metrics: the edge's Prometheus metrics: request counters and latency
    histograms per route, stream drop counters, and gauges sampled at render time
    (bus in flight, brokers alive, replicas per service, open streams), and the
    requests authentication and the request budget refused. Renders
    the text exposition format (version 0.0.4). Used by edge_http and edge_guard.               */
#ifndef EDGE_METRICS_H_INCLUDED
#define EDGE_METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _edge_metrics_t edge_metrics_t;

//  Values sampled by the owner when /metrics is asked for.
typedef struct {
    size_t bus_in_flight;              //  bus requests in flight
    size_t brokers_alive;              //  brokers alive now
    size_t sse_open;                   //  SSE streams open
    size_t ws_open;                    //  WebSocket connections open
    size_t services;                   //  entries in service_names / replicas
    const char *const *service_names;  //  service names from the broker status
    const uint32_t *replicas;          //  live replicas per service
} edge_gauges_t;

edge_metrics_t *edge_metrics_new (void);
void edge_metrics_destroy (edge_metrics_t **self_p);

//  Count one finished HTTP request: route is the route pattern (or "unmatched"),
//  method the request method, status the answer's status, seconds its duration.
void edge_metrics_request (edge_metrics_t *self, const char *route, const char *method,
                           int status, double seconds);

//  Count one SSE stream or WebSocket connection closed because its queue was full.
void edge_metrics_sse_dropped (edge_metrics_t *self);
void edge_metrics_ws_dropped (edge_metrics_t *self);

//  Count one request refused by authentication: reason is "missing" (no
//  credential, 401), "invalid" (a bad, expired or revoked one, 401), "forbidden"
//  (403) or "unavailable" (an API key could not be checked, 503).
void edge_metrics_auth_refused (edge_metrics_t *self, const char *reason);

//  Count one request over its budget (429): scope "user", "key" or "ip".
void edge_metrics_rate_limited (edge_metrics_t *self, const char *scope);

//  Count one budget check Redis did not answer in time (passed or refused).
void edge_metrics_rate_error (edge_metrics_t *self);

//  Render every metric as Prometheus text; returns a new string (caller frees)
//  and its length in *size.
char *edge_metrics_render (edge_metrics_t *self, const edge_gauges_t *gauges,
                           size_t *size);

//  Escape a label value (backslash, double quote, newline) into buf; always
//  terminates; returns the length written.
size_t edge_metrics_escape (char *buf, size_t size, const char *value);

void edge_metrics_test (bool verbose);

#endif
