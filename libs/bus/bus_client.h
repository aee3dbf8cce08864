/*  bus_client: the client side of the Chorus bus (schemas/bus.md). Sends requests to
    services by name through one or more brokers and delivers streamed replies to a
    callback. It never blocks: it lives inside the owner's loop, either a zloop
    (bus_client_attach) or any other poll loop (sockets + process + tick).

    Used by the edge, by services that call other services, and by tools.          */
#ifndef BUS_CLIENT_H_INCLUDED
#define BUS_CLIENT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.pb-c.h"
#include "core_log.h"

typedef struct _bus_client_t bus_client_t;

typedef enum {
    BUS_REPLY_PARTIAL = 1,  //  one piece of a streamed reply; more follow
    BUS_REPLY_FINAL = 2,    //  the last reply; the request is over
    BUS_REPLY_ERROR = 3     //  the request failed; the request is over
} bus_reply_kind_t;

//  A reply to a request. body/size hold the msgpack payload (PARTIAL, FINAL); for
//  ERROR, code, message and retry_after_s are set (codes in schemas/bus.md) and
//  body is NULL.
//  After FINAL or ERROR no further callback comes for this handle.
typedef struct {
    uint64_t handle;         //  the handle bus_client_request returned
    bus_reply_kind_t kind;   //  partial, final or error
    const uint8_t *body;     //  msgpack payload (borrowed for the call)
    size_t size;             //  payload size
    const char *code;        //  error code (ERROR only)
    const char *message;     //  error message (ERROR only)
    uint32_t retry_after_s;  //  ERROR only: seconds to wait before retrying (0: none)
} bus_reply_t;

typedef void (bus_reply_fn) (bus_client_t *client, const bus_reply_t *reply, void *arg);

//  Create a client connected to every broker in a comma-separated list of request
//  endpoints ("tcp://10.0.0.1:7100,tcp://10.0.0.2:7100" or "inproc://broker").
//  heartbeat_ms and liveness set how fast a dead broker is noticed (0: defaults).
bus_client_t *bus_client_new (const char *brokers, int heartbeat_ms, int liveness,
                              core_log_t *log);
void bus_client_destroy (bus_client_t **self_p);

//  Send a request to service/command with headers and a msgpack body (may be NULL).
//  headers->timeout_ms is the deadline (0: default_timeout_ms). Returns a handle > 0;
//  replies go to fn. Returns 0 when no broker is reachable now (nothing is called).
uint64_t bus_client_request (bus_client_t *self, const char *service, const char *command,
                             const ChorusBus__Headers *headers, const void *body,
                             size_t size, bus_reply_fn *fn, void *arg);

//  Flags for bus_client_request_ex. IDEMPOTENT: on broker_lost before any reply,
//  resend once through another live broker (same handle).
#define BUS_REQUEST_IDEMPOTENT 1

//  bus_client_request with flags.
uint64_t bus_client_request_ex (bus_client_t *self, const char *service,
                                const char *command, const ChorusBus__Headers *headers,
                                const void *body, size_t size, int flags,
                                bus_reply_fn *fn, void *arg);

//  Same, with the body given as a protobuf-c message, encoded by the codec.
uint64_t bus_client_request_msg (bus_client_t *self, const char *service,
                                 const char *command, const ChorusBus__Headers *headers,
                                 const ProtobufCMessage *body, bus_reply_fn *fn,
                                 void *arg);

//  Cancel a request: the broker and the worker are told, and no further callback
//  comes for it. Harmless for a handle that has already ended.
void bus_client_cancel (bus_client_t *self, uint64_t handle);

//  zloop integration: register the client's sockets and timer in loop.
int bus_client_attach (bus_client_t *self, zloop_t *loop);
void bus_client_detach (bus_client_t *self, zloop_t *loop);

//  Other loops: the sockets to watch for input (their ZMQ_FD is edge-triggered; see
//  zmq_getsockopt), process() drains every socket without blocking and must also be
//  called after any call that sends, tick() runs heartbeats and deadlines and
//  returns the milliseconds until it wants to be called again.
size_t bus_client_sockets (bus_client_t *self, zsock_t **sockets, size_t max);
void bus_client_process (bus_client_t *self);
int bus_client_tick (bus_client_t *self);

//  Default deadline for requests whose headers carry none.
void bus_client_set_default_timeout (bus_client_t *self, int64_t timeout_ms);

//  Requests in flight, and brokers that are alive now.
size_t bus_client_in_flight (bus_client_t *self);
size_t bus_client_brokers_alive (bus_client_t *self);

void bus_client_test (bool verbose);

#endif
