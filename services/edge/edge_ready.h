/*  edge_ready: what /readyz and the replica gauges answer from, kept fresh in the
    background so no request ever waits: every interval the edge asks the broker
    for its status and each live service for its health over the bus, and PINGs
    its own Redis (libs/redis). Checks: broker (a broker is alive and a recent
    status answer came), database (every service with live replicas reports its
    database reachable in a recent health reply), redis (a recent PONG, or no
    Redis configured).                                                           */
#ifndef EDGE_READY_H_INCLUDED
#define EDGE_READY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_client.h"
#include "core_log.h"

typedef struct _edge_ready_t edge_ready_t;

//  Create the checks; redis_url may be empty (no Redis). interval_ms is how often
//  edge_ready_poll is called; answers older than three intervals are stale.
edge_ready_t *edge_ready_new (bus_client_t *bus, core_log_t *log, const char *redis_url,
                              int interval_ms);
void edge_ready_destroy (edge_ready_t **self_p);

//  Send the next round of questions (broker status, service health, Redis PING).
//  Returns false when the broker status could not be asked (no broker yet): the
//  caller may poll again sooner.
bool edge_ready_poll (edge_ready_t *self);

//  Cancel the questions in flight (the edge is stopping); poll may start again.
void edge_ready_cancel (edge_ready_t *self);

//  Drive the Redis connection (call every REDIS_CLIENT_TICK_MS or so).
void edge_ready_tick (edge_ready_t *self);

//  The cached checks; returns true when all pass.
bool edge_ready_checks (edge_ready_t *self, bool *broker, bool *database, bool *redis);

//  Live replicas per service from the last broker status (borrowed arrays).
size_t edge_ready_replicas (edge_ready_t *self, const char *const **names,
                            const uint32_t **replicas);

//  Decide the database check from health answers: for each of count services,
//  whether it has replicas, whether a fresh health answer came, and its database
//  flag. True when at least one service is live and every live one is fine.
bool edge_ready_database (size_t count, const bool *live, const bool *fresh,
                          const bool *database);

void edge_ready_test (bool verbose);

#endif
