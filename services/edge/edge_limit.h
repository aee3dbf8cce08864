/*  edge_limit: the edge's request budget in Redis (schemas/auth.md "Limits"): a
    fixed one-minute window per user, API key or client address, counted with one
    atomic INCR (+ EXPIRE on the first) per request. Over the budget: refuse with
    the seconds left in the window. Redis down, too slow or refusing: pass, or
    refuse as unavailable when the limits fail closed. Asynchronous and loop
    agnostic: edge_guard asks, the answer comes through a callback, and the owner
    calls edge_limit_tick often (every millisecond while edge_limit_busy).      */
#ifndef EDGE_LIMIT_H_INCLUDED
#define EDGE_LIMIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_log.h"

typedef struct _edge_limit_t edge_limit_t;

//  What a budget check decided.
typedef enum {
    EDGE_LIMIT_PASS = 0,    //  within the budget (or Redis failed, failing open)
    EDGE_LIMIT_OVER,        //  over the budget: retry_after seconds
    EDGE_LIMIT_UNAVAILABLE  //  Redis failed and the limits fail closed
} edge_limit_verdict_t;

//  A decision.
typedef struct {
    edge_limit_verdict_t verdict;  //  pass, over, unavailable
    int retry_after;               //  seconds to the end of the window (OVER)
    bool redis_failed;             //  Redis did not answer in time or refused
} edge_limit_result_t;

//  Called once with the decision of a check that did not decide at once.
typedef void (edge_limit_fn) (const edge_limit_result_t *result, void *arg);

//  A limiter on the Redis at url (redis://...); NULL when the URL is bad.
//  fail_open: pass when Redis fails; timeout_ms: longest wait for Redis.
edge_limit_t *edge_limit_new (const char *url, bool fail_open, int timeout_ms,
                              core_log_t *log);
void edge_limit_destroy (edge_limit_t **self_p);

//  Count one request against scope ("user", "key", "ip") and id, allowed limit per
//  minute at unix time now_s. Returns 0 when decided at once (result filled, fn
//  not called), else a ticket: fn is called later exactly once, unless cancelled,
//  from edge_limit_tick (which also sends the command: tick soon after).
uint64_t edge_limit_check (edge_limit_t *self, const char *scope, const char *id,
                           int64_t limit, int64_t now_s, edge_limit_fn *fn, void *arg,
                           edge_limit_result_t *result);

//  Forget a ticket: its callback will not come. Harmless for an ended one.
void edge_limit_cancel (edge_limit_t *self, uint64_t ticket);

//  Drive Redis (read and write what is ready) and end checks past their deadline.
void edge_limit_tick (edge_limit_t *self);

//  True when checks are waiting for Redis (tick every millisecond then).
bool edge_limit_busy (edge_limit_t *self);

//  True when connected to Redis.
bool edge_limit_ready (edge_limit_t *self);

//  The window of unix time now_s (minutes since the epoch) and the seconds left
//  in it (1..60).
int64_t edge_limit_window (int64_t now_s, int *seconds_left);

void edge_limit_test (bool verbose);

#endif
