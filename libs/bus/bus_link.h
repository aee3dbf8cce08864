/*  bus_link: one connection from a client or a worker to one broker: a DEALER and,
    over TCP or ipc, a socket monitor that tells when the connection is up (handshake done)
    or down, so a dead broker is noticed at once rather than after heartbeats.
    Keeps when something was last sent and received, for heartbeats. Used by
    bus_client and bus_worker, one link per broker.                              */
#ifndef BUS_LINK_H_INCLUDED
#define BUS_LINK_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus_proto.h"
#include "core_log.h"

typedef struct _bus_link_t bus_link_t;

typedef enum {
    BUS_LINK_NONE = 0,  //  no event waiting
    BUS_LINK_UP = 1,    //  the connection is up and the handshake done
    BUS_LINK_DOWN = 2   //  the connection closed
} bus_link_event_t;

//  Connect to endpoint; proto is the first frame of every message sent
//  (BUS_PROTO_CLIENT or BUS_PROTO_WORKER). Links over inproc are up from the start
//  and never report events.
bus_link_t *bus_link_new (const char *endpoint, const char *proto, core_log_t *log);
void bus_link_destroy (bus_link_t **self_p);

//  Send [proto, command, args...] without waiting; destroys args. -1 when the
//  connection is not up or full (nothing is queued for later).
int bus_link_send (bus_link_t *self, uint8_t command, zmsg_t **args_p);

//  The same from borrowed parts, without building a message (hot paths).
int bus_link_sendv (bus_link_t *self, uint8_t command, const bus_part_t *args,
                    size_t count);

//  Receive one message without waiting into ZeroMQ messages (see
//  bus_proto_recv_parts): 0, or -1 when none is waiting.
int bus_link_recv_parts (bus_link_t *self, zmq_msg_t *parts, size_t max, size_t *count);

//  Next connection event, BUS_LINK_NONE when none is waiting.
bus_link_event_t bus_link_event (bus_link_t *self);

//  True when there is no monitor (inproc): the link is always up.
bool bus_link_unmonitored (bus_link_t *self);
const char *bus_link_endpoint (bus_link_t *self);
int64_t bus_link_last_sent (bus_link_t *self);
int64_t bus_link_last_recv (bus_link_t *self);
//  Treat the peer as just heard from (a fresh heartbeat window).
void bus_link_touch (bus_link_t *self);

//  The link's sockets to watch for input (the DEALER, and the monitor if any).
size_t bus_link_sockets (bus_link_t *self, zsock_t **sockets, size_t max);

#endif
