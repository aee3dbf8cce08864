/*  service_events: a service's durable event log. An event is written to the
    service's outbox table in the same transaction as the change it describes,
    numbered by a dense per-publisher sequence in commit order, and published on
    the bus after the commit. Every second the publisher announces its newest
    sequence ("_bus.head.<publisher>"), so a subscriber that missed the tail of the
    stream notices; any subscriber catches up through the "events.replay" command,
    which this module answers from the outbox (schemas/bus.md, "Events").       */
#ifndef SERVICE_EVENTS_H_INCLUDED
#define SERVICE_EVENTS_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus_worker.h"
#include "core_log.h"
#include "db_pool.h"

typedef struct _service_events_t service_events_t;

//  Called once the event is committed and published (error NULL, seq set), or
//  when the transaction failed (error set, nothing was written).
typedef void (service_events_done_fn) (const char *error, uint64_t seq, void *arg);

//  publisher is the service name; schema holds its outbox and outbox_state tables
//  (created by the service's first migration); at most queue_max events wait for
//  their transaction (0: 1000).
service_events_t *service_events_new (const char *publisher, const char *schema,
                                      db_pool_t *db, const char *brokers,
                                      size_t queue_max, core_log_t *log);
void service_events_destroy (service_events_t **self_p);
int service_events_attach (service_events_t *self, zloop_t *loop)
    __attribute__ ((warn_unused_result));

//  Emit an event: runs `before` (the caller's own statements, may be empty; copied)
//  and the outbox insert in one transaction, then publishes. payload is msgpack.
//  Events emitted while earlier ones are being written share a transaction (see
//  service_events.c); done is called for each, in emit order within a
//  transaction, and may be called before this returns (the database refused the
//  transaction at once). -1 when queue_max events are waiting already, or after
//  service_events_stop.
int service_events_emit (service_events_t *self, const char *tenant_id, const char *topic,
                         const void *payload, size_t size, const db_stmt_t *before,
                         size_t count, service_events_done_fn *done, void *arg)
    __attribute__ ((warn_unused_result));

//  The same, with before's SQL and parameter strings the caller's: they must stay
//  as they are until done is called (a reply's text waiting for its transaction
//  is then held once, not twice).
int service_events_emit_borrowed (service_events_t *self, const char *tenant_id,
                                  const char *topic, const void *payload, size_t size,
                                  const db_stmt_t *before, size_t count,
                                  service_events_done_fn *done, void *arg)
    __attribute__ ((warn_unused_result));

//  Stop writing: events waiting fail now ("the service is stopping"), a group
//  whose transaction fails is not tried again. Before the pool is destroyed.
void service_events_stop (service_events_t *self);

//  Publish a best-effort event (seq 0, schemas/bus.md "Events"): not written to the
//  outbox, never replayed; for live traffic such as a reply's stream events.
void service_events_publish_live (service_events_t *self, const char *tenant_id,
                                  const char *topic, const void *payload, size_t size);

//  The bus commands this module answers, and the handler.
bool service_events_handles (const char *command);
void service_events_handle (service_events_t *self, bus_worker_t *worker,
                            bus_request_t *request);

void service_events_test (bool verbose);

#endif
