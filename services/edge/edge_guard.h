/*  edge_guard: who may pass the edge (schemas/auth.md "What the edge does"). For
    each request it verifies the credential (JWTs here, with the configured key
    set and no bus round trip; API keys through the auth service's api_keys.verify,
    cached per key hash), refuses what the revocation list names (kept fresh by
    polling revocations.list), checks the route's requirement and scopes, then
    the request budget in Redis, and answers with a verdict: the identity to put
    in the bus headers, or the refusal (401, 403, 429, 503). A decision that needs
    the bus or Redis comes later through a callback; the request waits parked and
    the loop goes on. edge_http and edge_ws ask; edge_server drives the timers.  */
#ifndef EDGE_GUARD_H_INCLUDED
#define EDGE_GUARD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_jwt.h"
#include "bus_client.h"
#include "core_log.h"
#include "edge_auth.h"
#include "edge_metrics.h"

typedef struct _edge_guard_t edge_guard_t;

//  How the guard works; read once by edge_guard_new.
typedef struct {
    auth_jwt_t *jwt;               //  key set (the guard takes it); NULL: no JWT passes
    int64_t api_key_cache_ms;      //  how long an api_keys.verify answer is used
    int64_t revocation_poll_ms;    //  how often revocations.list is asked
    const char *redis_url;         //  Redis of the budgets ("" or NULL: no budgets)
    int64_t rate_user_per_min;     //  budget per user or API key (0: none)
    int64_t rate_ip_per_min;       //  budget per client address without credentials
    int64_t rate_webhook_per_min;  //  budget per webhook connection id (0: none)
    bool rate_fail_open;           //  pass when Redis fails
    int rate_timeout_ms;           //  longest wait for Redis
    int64_t timeout_ms;            //  bus deadline of the guard's own requests
} edge_guard_config_t;

//  What the guard decided.
typedef struct {
    int status;          //  0: admitted; else 401, 403, 429 or 503
    const char *code;    //  error code: unauthorized, forbidden, rate_limited...
    char message[160];   //  why, for the error body
    bool invalid_token;  //  a bad credential: WWW-Authenticate error="invalid_token"
    int retry_after;     //  seconds, with 429 (and 503 when Redis failed closed)
    edge_identity_t identity;  //  who the request acts for (kind NONE: anonymous)
} edge_verdict_t;

//  Called once with the verdict of an admission that did not decide at once.
typedef void (edge_guard_fn) (const edge_verdict_t *verdict, void *arg);

//  Create the guard. bus and metrics are borrowed; config->jwt is taken.
edge_guard_t *edge_guard_new (bus_client_t *bus, edge_metrics_t *metrics, core_log_t *log,
                              edge_guard_config_t *config);
void edge_guard_destroy (edge_guard_t **self_p);

//  Admit a request of method to a route needing need, with credential as read
//  from its headers (NULL: none) from client_ip; budget: count it against the
//  request budget. Returns 0 when decided at once (verdict filled, fn not
//  called), else a ticket: fn is called once later unless the ticket is
//  cancelled, never from inside this call (the caller then runs
//  bus_client_process as after any send). fn may call back into the guard.
uint64_t edge_guard_admit (edge_guard_t *self, edge_need_t need, const char *method,
                           const edge_credential_t *credential, const char *client_ip,
                           bool budget, edge_guard_fn *fn, void *arg,
                           edge_verdict_t *verdict);

//  Admit a platform's webhook (schemas/channels.md): no credential is read, the
//  identity stays anonymous, and the budget is counted per connection_id (the
//  path segment, compared without case), not per address. Otherwise as
//  edge_guard_admit.
uint64_t edge_guard_admit_webhook (edge_guard_t *self, const char *connection_id,
                                   edge_guard_fn *fn, void *arg, edge_verdict_t *verdict);

//  Forget an admission (its client went away): no callback comes for it.
void edge_guard_cancel (edge_guard_t *self, uint64_t ticket);

//  Run the guard's timers: revocation polls, Redis, pruning. Returns the
//  milliseconds until it wants to run again.
int edge_guard_tick (edge_guard_t *self);

//  True when budget checks wait for Redis: tick at once and every millisecond.
bool edge_guard_busy (edge_guard_t *self);

//  Admissions waiting, revocations held, and whether the last revocations.list
//  answer came (false until the first one, and after a failure).
size_t edge_guard_waiting (edge_guard_t *self);
size_t edge_guard_revocations (edge_guard_t *self);
bool edge_guard_revocations_fresh (edge_guard_t *self);

void edge_guard_test (bool verbose);

#endif
