/*  bus_worker: the replica side of the Chorus bus (schemas/bus.md). Announces a
    service and its credit (requests it can hold at once) to every broker, receives
    requests, and lets the owner answer them at any later time with partial replies,
    then one final reply or one error. Cancellations and deadlines reach the owner
    through a callback. Never blocks: it lives in a zloop or any poll loop.

    Used by every service through libs/service, and by tools (the echo worker).   */
#ifndef BUS_WORKER_H_INCLUDED
#define BUS_WORKER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.pb-c.h"
#include "core_log.h"

typedef struct _bus_worker_t bus_worker_t;
typedef struct _bus_request_t bus_request_t;

//  on_request: a new request; the worker owns it until it is ended with
//  bus_worker_final or bus_worker_error (now or later).
//  on_cancel: the client cancelled, the deadline passed or the broker went away;
//  the request stays valid until the owner ends it, and replies now go nowhere.
typedef void (bus_worker_fn) (bus_worker_t *worker, bus_request_t *request, void *arg);

//  Create a worker for service on every broker in the comma-separated list.
//  replica names this process in status and logs (NULL: host:pid).
bus_worker_t *bus_worker_new (const char *brokers, const char *service, uint32_t credit,
                              const char *replica, int heartbeat_ms, int liveness,
                              core_log_t *log);
void bus_worker_destroy (bus_worker_t **self_p);

void bus_worker_set_handlers (bus_worker_t *self, bus_worker_fn *on_request,
                              bus_worker_fn *on_cancel, void *arg);

//  zloop integration, or sockets/process/tick for other loops (see bus_client.h).
int bus_worker_attach (bus_worker_t *self, zloop_t *loop);
void bus_worker_detach (bus_worker_t *self, zloop_t *loop);
size_t bus_worker_sockets (bus_worker_t *self, zsock_t **sockets, size_t max);
void bus_worker_process (bus_worker_t *self);
int bus_worker_tick (bus_worker_t *self);

//  Reading a request.
const char *bus_request_command (bus_request_t *request);
const ChorusBus__Headers *bus_request_headers (bus_request_t *request);
const uint8_t *bus_request_body (bus_request_t *request);
size_t bus_request_size (bus_request_t *request);

//  Free the body once it is decoded (a stream may hold its request for minutes:
//  a long history need not stay in memory twice); the body is empty after.
void bus_request_drop_body (bus_request_t *request);
int64_t bus_request_deadline (bus_request_t *request);  //  monotonic ms
bool bus_request_cancelled (bus_request_t *request);
void bus_request_set_data (bus_request_t *request, void *data);
void *bus_request_data (bus_request_t *request);

//  Answering: partials (any number), then exactly one final or error, which frees
//  the request and NULLs the caller's pointer.
int bus_worker_partial (bus_worker_t *self, bus_request_t *request, const void *body,
                        size_t size);
int bus_worker_partial_msg (bus_worker_t *self, bus_request_t *request,
                            const ProtobufCMessage *body);
void bus_worker_final (bus_worker_t *self, bus_request_t **request_p, const void *body,
                       size_t size);
void bus_worker_final_msg (bus_worker_t *self, bus_request_t **request_p,
                           const ProtobufCMessage *body);
void bus_worker_error (bus_worker_t *self, bus_request_t **request_p, const char *code,
                       const char *message);
//  bus_worker_error that also tells the client when to try again: retry_after_s
//  seconds (0: no advice), e.g. with "rate_limited" (the edge sends Retry-After).
void bus_worker_error_retry (bus_worker_t *self, bus_request_t **request_p,
                             const char *code, const char *message,
                             uint32_t retry_after_s);

//  Stop taking work (credit 0 to every broker); in-flight requests go on. When the
//  last one ends the worker says goodbye to the brokers. drained() tells.
void bus_worker_drain (bus_worker_t *self);
bool bus_worker_drained (bus_worker_t *self);

size_t bus_worker_in_flight (bus_worker_t *self);
uint32_t bus_worker_credit (bus_worker_t *self);
const char *bus_worker_replica (bus_worker_t *self);
//  Brokers we are registered with now.
size_t bus_worker_brokers_alive (bus_worker_t *self);

void bus_worker_test (bool verbose);

#endif
