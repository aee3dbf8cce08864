/*  bus_subscriber: receives bus events and, for the publishers it follows, delivers
    every committed event exactly once and in sequence order: a gap in the live
    stream (a restart, a slow joiner, a dropped message) or a newer head
    announcement ("_bus.head.<publisher>") makes it ask the publisher for what it
    missed ("events.replay" over the bus) before going on. The owner keeps the
    cursor (the last sequence it has processed) and gives it back after a restart.

        bus_subscriber_t *sub = bus_subscriber_new (brokers, client, log);
        bus_subscriber_set_handler (sub, on_event, state);
        bus_subscriber_subscribe (sub, "chat.");
        bus_subscriber_follow (sub, "chat", cursor_from_my_storage);
        bus_subscriber_attach (sub, loop);   //  and bus_client_attach (client, loop) */
#ifndef BUS_SUBSCRIBER_H_INCLUDED
#define BUS_SUBSCRIBER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.pb-c.h"
#include "bus_client.h"
#include "core_log.h"

typedef struct _bus_subscriber_t bus_subscriber_t;

//  One event. For followed publishers, called once per sequence number, in order.
typedef void (bus_event_fn) (bus_subscriber_t *self, const char *topic,
                             const ChorusBus__EventMeta *meta, const uint8_t *payload,
                             size_t size, void *arg);

//  client (borrowed) carries the replay requests; it must run in the same loop.
bus_subscriber_t *bus_subscriber_new (const char *brokers, bus_client_t *client,
                                      core_log_t *log);
void bus_subscriber_destroy (bus_subscriber_t **self_p);
void bus_subscriber_set_handler (bus_subscriber_t *self, bus_event_fn *fn, void *arg);

//  Receive live events whose topic starts with prefix ("" for all).
void bus_subscriber_subscribe (bus_subscriber_t *self, const char *prefix);

//  Deliver every event of publisher after after_seq, in order, exactly once.
void bus_subscriber_follow (bus_subscriber_t *self, const char *publisher,
                            uint64_t after_seq);

//  The last sequence delivered for a followed publisher (0 when none).
uint64_t bus_subscriber_cursor (bus_subscriber_t *self, const char *publisher);

//  True while it is catching up with some publisher.
bool bus_subscriber_catching_up (bus_subscriber_t *self);

//  zloop integration, or sockets/process/tick for other loops.
int bus_subscriber_attach (bus_subscriber_t *self, zloop_t *loop);
void bus_subscriber_detach (bus_subscriber_t *self, zloop_t *loop);
zsock_t *bus_subscriber_socket (bus_subscriber_t *self);
void bus_subscriber_process (bus_subscriber_t *self);
int bus_subscriber_tick (bus_subscriber_t *self);

#endif
