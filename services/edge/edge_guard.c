/*  edge_guard: credential, revocations, requirement and budget of each request,
    with the waiting ones parked by ticket.                                       */
#include "edge_guard.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.pb-c.h"
#include "codec_msgpack.h"
#include "edge_keycache.h"
#include "edge_limit.h"
#include "edge_revocations.h"

//  Most answers the API key cache keeps, most admissions waiting at once
#define S_KEYCACHE_MAX 100000
#define S_WAITING_MAX 100000
//  Longest wait for api_keys.verify, whatever the edge's own deadline
#define S_VERIFY_TIMEOUT_MS 5000

typedef enum {
    S_STAGE_KEY = 1,  //  waiting for api_keys.verify
    S_STAGE_LIMIT     //  waiting for Redis
} s_stage_t;

//  One admission that could not be decided at once.
typedef struct {
    edge_guard_t *guard;               //  the guard it waits in
    uint64_t ticket;                   //  its ticket
    edge_guard_fn *fn;                 //  who waits for the verdict
    void *arg;                         //  and its argument
    edge_need_t need;                  //  the route's requirement
    char method[8];                    //  request method
    char client_ip[EDGE_AUTH_IP_MAX];  //  client address
    bool budget;                       //  count it against the budget
    char webhook[128];                 //  a webhook's connection id ("": none)
    s_stage_t stage;                   //  what it waits for
    char key_hash[65];                 //  API key hash (stage KEY)
    uint64_t limit_ticket;             //  edge_limit ticket (stage LIMIT)
    const char *scope;                 //  budget scope (stage LIMIT)
    edge_verdict_t verdict;            //  identity so far, then the verdict
} s_admission_t;

//  One api_keys.verify in flight, and who waits for it.
typedef struct {
    edge_guard_t *guard;  //  the guard
    char hash[65];        //  the key hash asked about
    uint64_t handle;      //  bus request
    zlistx_t *tickets;    //  ticket texts of the admissions waiting
} s_lookup_t;

struct _edge_guard_t {
    bus_client_t *bus;            //  bus client (borrowed)
    edge_metrics_t *metrics;      //  metrics (borrowed)
    core_log_t *log;              //  logger (borrowed)
    auth_jwt_t *jwt;              //  key set, NULL: JWTs refused
    edge_revocations_t *revoked;  //  what must be refused
    edge_keycache_t *keys;        //  api_keys.verify answers
    edge_limit_t *limit;          //  budgets, NULL without Redis
    int64_t rate_user;            //  budget per user or key
    int64_t rate_ip;              //  budget per address
    int64_t rate_webhook;         //  budget per webhook connection id
    int64_t poll_ms;              //  revocation poll interval
    int64_t timeout_ms;           //  bus deadline of our requests
    int64_t next_poll_ms;         //  when to ask revocations.list next (monotonic)
    uint64_t poll_handle;         //  revocations.list in flight (0: none)
    bool fresh;                   //  the last revocations.list was answered
    bool poll_failing;            //  a failure was logged; log the recovery
    int64_t next_prune_ms;        //  when to prune caches next
    zhashx_t *waiting;            //  ticket text -> s_admission_t *
    zhashx_t *lookups;            //  key hash -> s_lookup_t *
    uint64_t next_ticket;         //  last ticket handed out
};

static void s_admission_destroy (void **item);
static void s_lookup_destroy (void **item);

edge_guard_t *
edge_guard_new (bus_client_t *bus, edge_metrics_t *metrics, core_log_t *log,
                edge_guard_config_t *config)
{
    assert (bus && metrics && config);
    edge_guard_t *self = calloc (1, sizeof *self);
    assert (self);
    self->bus = bus;
    self->metrics = metrics;
    self->log = log;
    self->jwt = config->jwt;
    config->jwt = NULL;
    self->revoked = edge_revocations_new ();
    self->keys = edge_keycache_new (config->api_key_cache_ms, S_KEYCACHE_MAX);
    if (config->redis_url && *config->redis_url) {
        self->limit = edge_limit_new (config->redis_url, config->rate_fail_open,
                                      config->rate_timeout_ms, log);
        if (!self->limit)
            core_log_error (log, NULL, "request budgets off: bad Redis URL");
    }
    self->rate_user = config->rate_user_per_min;
    self->rate_ip = config->rate_ip_per_min;
    self->rate_webhook = config->rate_webhook_per_min;
    self->poll_ms = config->revocation_poll_ms;
    self->timeout_ms = config->timeout_ms;
    self->waiting = zhashx_new ();
    self->lookups = zhashx_new ();
    assert (self->waiting && self->lookups);
    zhashx_set_destructor (self->waiting, s_admission_destroy);
    zhashx_set_destructor (self->lookups, s_lookup_destroy);
    return self;
}

void
edge_guard_destroy (edge_guard_t **self_p)
{
    assert (self_p);
    edge_guard_t *self = *self_p;
    if (!self)
        return;
    //  No callbacks from here on: the lookups' bus requests are cancelled
    zhashx_destroy (&self->waiting);
    zhashx_destroy (&self->lookups);
    if (self->poll_handle)
        bus_client_cancel (self->bus, self->poll_handle);
    edge_limit_destroy (&self->limit);
    edge_keycache_destroy (&self->keys);
    edge_revocations_destroy (&self->revoked);
    auth_jwt_destroy (&self->jwt);
    free (self);
    *self_p = NULL;
}

//  zhashx destructor of an admission (edge_guard_cancel cancels its Redis check
//  first; on destroy, edge_limit_destroy forgets every check).
static void
s_admission_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

//  zhashx destructor of a lookup; its bus request is cancelled.
static void
s_lookup_destroy (void **item)
{
    s_lookup_t *lookup = (s_lookup_t *) *item;
    if (lookup) {
        if (lookup->handle)
            bus_client_cancel (lookup->guard->bus, lookup->handle);
        zlistx_destroy (&lookup->tickets);
        free (lookup);
    }
    *item = NULL;
}

//  Refuse with status, code and message; reason labels the metric.
static void
s_refuse (edge_guard_t *self, edge_verdict_t *verdict, int status, const char *code,
          const char *reason, const char *message)
{
    verdict->status = status;
    verdict->code = code;
    verdict->invalid_token = strcmp (reason, "invalid") == 0;
    snprintf (verdict->message, sizeof verdict->message, "%s", message);
    memset (&verdict->identity, 0, sizeof verdict->identity);
    edge_metrics_auth_refused (self->metrics, reason);
}

//  Verify a JWT into verdict's identity; false (verdict refused) when it fails.
static bool
s_verify_jwt (edge_guard_t *self, const char *token, edge_verdict_t *verdict)
{
    if (!self->jwt) {
        s_refuse (self, verdict, 401, "unauthorized", "invalid",
                  "access tokens cannot be verified: the edge has no JWT secret");
        return false;
    }
    auth_jwt_claims_t claims;
    char why[96];
    int64_t now = (int64_t) time (NULL);
    auth_jwt_error_t code = auth_jwt_verify (self->jwt, token, now, &claims, why,
                                             sizeof why);
    if (code != AUTH_JWT_OK) {
        char message[160];
        snprintf (message, sizeof message, "the access token is not valid (%s)",
                  auth_jwt_error_name (code));
        s_refuse (self, verdict, 401, "unauthorized", "invalid", message);
        return false;
    }
    edge_identity_t *identity = &verdict->identity;
    identity->kind = EDGE_CRED_JWT;
    snprintf (identity->user_id, sizeof identity->user_id, "%s", claims.sub);
    snprintf (identity->tenant_id, sizeof identity->tenant_id, "%s", claims.tid);
    snprintf (identity->session_id, sizeof identity->session_id, "%s", claims.sid);
    identity->role = claims.role;
    identity->iat = claims.iat;
    identity->expires_at = claims.exp;
    if (edge_revocations_token_revoked (self->revoked, identity, now)) {
        s_refuse (self, verdict, 401, "unauthorized", "invalid",
                  "the access token was revoked");
        return false;
    }
    return true;
}

static void s_limit_fn (const edge_limit_result_t *result, void *arg);

//  Turn a budget decision into the verdict; scope labels the metric.
static void
s_budget_verdict (edge_guard_t *self, const edge_limit_result_t *result,
                  const char *scope, edge_verdict_t *verdict)
{
    if (result->redis_failed)
        edge_metrics_rate_error (self->metrics);
    if (result->verdict == EDGE_LIMIT_OVER) {
        verdict->status = 429;
        verdict->code = "rate_limited";
        verdict->retry_after = result->retry_after;
        snprintf (verdict->message, sizeof verdict->message,
                  "too many requests: try again in %d s", result->retry_after);
        edge_metrics_rate_limited (self->metrics, scope);
    }
    else if (result->verdict == EDGE_LIMIT_UNAVAILABLE) {
        verdict->status = 503;
        verdict->code = "unavailable";
        verdict->retry_after = 1;
        snprintf (verdict->message, sizeof verdict->message,
                  "the request budget cannot be checked now");
    }
}

//  The scope and id an admission's budget is counted under, or NULL: none.
static const char *
s_budget_scope (edge_guard_t *self, const s_admission_t *a, const char **id,
                int64_t *limit)
{
    const edge_identity_t *identity = &a->verdict.identity;
    if (*a->webhook) {
        *id = a->webhook;
        *limit = self->rate_webhook;
        return "webhook";
    }
    if (identity->kind == EDGE_CRED_JWT) {
        *id = identity->user_id;
        *limit = self->rate_user;
        return "user";
    }
    if (identity->kind == EDGE_CRED_API_KEY) {
        *id = identity->api_key_id;
        *limit = self->rate_user;
        return "key";
    }
    *id = a->client_ip;
    *limit = self->rate_ip;
    return *a->client_ip ? "ip" : NULL;
}

//  Go on from a known identity: requirement, then budget. Returns true when
//  decided (a->verdict holds it), false when waiting for Redis.
static bool
s_after_identity (edge_guard_t *self, s_admission_t *a)
{
    edge_verdict_t *verdict = &a->verdict;
    int status = edge_auth_permit (a->need, a->method, &verdict->identity);
    if (status == 401) {
        s_refuse (self, verdict, 401, "unauthorized", "missing",
                  "this route needs a credential: Authorization: Bearer or the "
                  "chorus_access cookie");
        return true;
    }
    if (status == 403) {
        s_refuse (self, verdict, 403, "forbidden", "forbidden",
                  verdict->identity.kind == EDGE_CRED_API_KEY
                      ? "the API key's scopes do not allow this"
                      : "the role does not allow this");
        return true;
    }
    const char *id = NULL;
    int64_t limit = 0;
    const char *scope = s_budget_scope (self, a, &id, &limit);
    if (!a->budget || !self->limit || !scope || limit <= 0)
        return true;
    edge_limit_result_t result;
    a->limit_ticket = edge_limit_check (self->limit, scope, id, limit,
                                        (int64_t) time (NULL), s_limit_fn, a, &result);
    if (a->limit_ticket) {
        a->stage = S_STAGE_LIMIT;
        a->scope = scope;
        return false;
    }
    s_budget_verdict (self, &result, scope, verdict);
    return true;
}

//  An identity from the API key cache or its refusal; true when known.
static bool
s_key_cached (edge_guard_t *self, s_admission_t *a)
{
    bool refused = false;
    const edge_identity_t *cached = edge_keycache_lookup (
        self->keys, a->key_hash, zclock_mono (), (int64_t) time (NULL), &refused);
    if (refused) {
        s_refuse (self, &a->verdict, 401, "unauthorized", "invalid",
                  "the API key is not valid");
        return true;
    }
    if (!cached)
        return false;
    if (edge_revocations_key_revoked (self->revoked, cached->api_key_id,
                                      (int64_t) time (NULL))) {
        s_refuse (self, &a->verdict, 401, "unauthorized", "invalid",
                  "the API key was revoked");
        return true;
    }
    a->verdict.identity = *cached;
    return true;
}

//  Hand a decided admission's verdict to its owner and forget it.
static void
s_finish (edge_guard_t *self, s_admission_t *a)
{
    edge_verdict_t verdict = a->verdict;
    edge_guard_fn *fn = a->fn;
    void *arg = a->arg;
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, a->ticket);
    zhashx_delete (self->waiting, key);
    fn (&verdict, arg);
}

//  The Redis decision of a parked admission.
static void
s_limit_fn (const edge_limit_result_t *result, void *arg)
{
    s_admission_t *a = (s_admission_t *) arg;
    a->limit_ticket = 0;
    s_budget_verdict (a->guard, result, a->scope, &a->verdict);
    s_finish (a->guard, a);
}

//  Ask the auth service about the admission's API key, or join the question
//  already asked. Returns false (verdict refused) when it cannot be asked.
static bool s_key_ask (edge_guard_t *self, s_admission_t *a, const char *ticket);

static void s_verify_fn (bus_client_t *client, const bus_reply_t *reply, void *arg);

static bool
s_key_ask (edge_guard_t *self, s_admission_t *a, const char *ticket)
{
    s_lookup_t *lookup = (s_lookup_t *) zhashx_lookup (self->lookups, a->key_hash);
    if (!lookup) {
        ChorusAuth__ApiKeyVerifyRequest request =
            CHORUS_AUTH__API_KEY_VERIFY_REQUEST__INIT;
        request.key_hash = a->key_hash;
        ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
        edge_auth_headers (NULL, a->client_ip, &headers);
        headers.request_id = "edge-api-key";
        headers.timeout_ms = self->timeout_ms < S_VERIFY_TIMEOUT_MS ? self->timeout_ms
                                                                    : S_VERIFY_TIMEOUT_MS;
        lookup = calloc (1, sizeof *lookup);
        assert (lookup);
        lookup->guard = self;
        memcpy (lookup->hash, a->key_hash, sizeof lookup->hash);
        lookup->tickets = zlistx_new ();
        zlistx_set_destructor (lookup->tickets, (zlistx_destructor_fn *) zstr_free);
        zlistx_set_duplicator (lookup->tickets, (zlistx_duplicator_fn *) strdup);
        lookup->handle = bus_client_request_msg (self->bus, "auth", "api_keys.verify",
                                                 &headers, &request.base, s_verify_fn,
                                                 lookup);
        if (!lookup->handle) {
            zlistx_destroy (&lookup->tickets);
            free (lookup);
            s_refuse (self, &a->verdict, 503, "unavailable", "unavailable",
                      "the API key cannot be checked now: no broker");
            return false;
        }
        zhashx_insert (self->lookups, a->key_hash, lookup);
    }
    zlistx_add_end (lookup->tickets, (void *) ticket);
    a->stage = S_STAGE_KEY;
    return true;
}

//  The auth service's answer about an API key: every admission waiting for it
//  goes on.
static void
s_verify_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_lookup_t *lookup = (s_lookup_t *) arg;
    edge_guard_t *self = lookup->guard;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    lookup->handle = 0;
    //  Take the waiting list, then forget the lookup: callbacks may ask again
    zlistx_t *tickets = lookup->tickets;
    lookup->tickets = NULL;
    char hash[65];
    memcpy (hash, lookup->hash, sizeof hash);
    zhashx_delete (self->lookups, hash);

    edge_identity_t identity;
    bool known = false, refused = false;
    if (reply->kind == BUS_REPLY_FINAL) {
        char why[128];
        ChorusAuth__ApiKeyIdentity *answer = (ChorusAuth__ApiKeyIdentity *) codec_decode (
            &chorus_auth__api_key_identity__descriptor, reply->body, reply->size, why,
            sizeof why);
        if (answer && edge_keycache_identity (answer, &identity) == 0)
            known = true;
        else
            core_log_warn (self->log, NULL, "api_keys.verify: unusable answer: %s",
                           answer ? "missing or bad fields" : why);
        if (answer)
            protobuf_c_message_free_unpacked (&answer->base, NULL);
    }
    else if (reply->code && strcmp (reply->code, "unauthorized") == 0)
        refused = true;
    else
        core_log_warn (self->log, NULL, "api_keys.verify failed: %s %s",
                       reply->code ? reply->code : "?",
                       reply->message ? reply->message : "");
    if (known || refused)
        edge_keycache_store (self->keys, hash, known ? &identity : NULL, zclock_mono ());

    for (const char *ticket = (const char *) zlistx_first (tickets); ticket;
         ticket = (const char *) zlistx_next (tickets)) {
        s_admission_t *a = (s_admission_t *) zhashx_lookup (self->waiting, ticket);
        if (!a || a->stage != S_STAGE_KEY)
            continue;  //  cancelled meanwhile
        bool decided = true;
        if (known || refused) {
            if (!s_key_cached (self, a)) {
                //  Not cached (a cache of age 0): use the answer as it is
                if (refused)
                    s_refuse (self, &a->verdict, 401, "unauthorized", "invalid",
                              "the API key is not valid");
                else
                    a->verdict.identity = identity;
            }
            if (a->verdict.status == 0)
                decided = s_after_identity (self, a);
        }
        else
            s_refuse (self, &a->verdict, 503, "unavailable", "unavailable",
                      "the API key cannot be checked now");
        if (decided)
            s_finish (self, a);
    }
    zlistx_destroy (&tickets);
}

//  A new admission of a request.
static s_admission_t *
s_admission_new (edge_guard_t *self, edge_need_t need, const char *method,
                 const char *client_ip, bool budget, edge_guard_fn *fn, void *arg)
{
    s_admission_t *a = calloc (1, sizeof *a);
    assert (a);
    a->guard = self;
    a->ticket = ++self->next_ticket;
    a->fn = fn;
    a->arg = arg;
    a->need = need;
    snprintf (a->method, sizeof a->method, "%s", method);
    snprintf (a->client_ip, sizeof a->client_ip, "%s", client_ip ? client_ip : "");
    a->budget = budget;
    return a;
}

//  Decided: the verdict to the caller (0); else park the admission (its ticket).
static uint64_t
s_admission_park (edge_guard_t *self, s_admission_t *a, bool decided,
                  edge_verdict_t *verdict)
{
    if (decided) {
        *verdict = a->verdict;
        free (a);
        return 0;
    }
    //  Replies are read by the caller's next bus_client_process, never in here: the
    //  callback must not come before the caller has the ticket
    char ticket[24];
    snprintf (ticket, sizeof ticket, "%" PRIu64, a->ticket);
    zhashx_insert (self->waiting, ticket, a);
    return a->ticket;
}

uint64_t
edge_guard_admit_webhook (edge_guard_t *self, const char *connection_id,
                          edge_guard_fn *fn, void *arg, edge_verdict_t *verdict)
{
    assert (self && connection_id && fn && verdict);
    s_admission_t *a = s_admission_new (self, EDGE_NEED_PUBLIC, "POST", NULL, true, fn,
                                        arg);
    //  One budget per id, whatever the case of its letters
    size_t i = 0;
    for (; connection_id[i] && i + 1 < sizeof a->webhook; i++)
        a->webhook[i] = (char) tolower ((unsigned char) connection_id[i]);
    a->webhook[i] = 0;
    bool decided = !*a->webhook || s_after_identity (self, a);
    return s_admission_park (self, a, decided, verdict);
}

uint64_t
edge_guard_admit (edge_guard_t *self, edge_need_t need, const char *method,
                  const edge_credential_t *credential, const char *client_ip, bool budget,
                  edge_guard_fn *fn, void *arg, edge_verdict_t *verdict)
{
    assert (self && method && fn && verdict);
    s_admission_t *a = s_admission_new (self, need, method, client_ip, budget, fn, arg);
    char ticket[24];
    snprintf (ticket, sizeof ticket, "%" PRIu64, a->ticket);

    bool decided = true;
    edge_cred_kind_t kind = need == EDGE_NEED_PUBLIC || !credential ? EDGE_CRED_NONE
                                                                    : credential->kind;
    if (kind == EDGE_CRED_MALFORMED)
        s_refuse (self, &a->verdict, 401, "unauthorized", "invalid",
                  "the credential is not a bearer token Chorus issues");
    else if (kind == EDGE_CRED_JWT) {
        if (s_verify_jwt (self, credential->token, &a->verdict))
            decided = s_after_identity (self, a);
    }
    else if (kind == EDGE_CRED_API_KEY) {
        edge_auth_key_hash (credential->token, a->key_hash);
        if (!s_key_cached (self, a)) {
            if (zhashx_size (self->waiting) >= S_WAITING_MAX)
                s_refuse (self, &a->verdict, 503, "unavailable", "unavailable",
                          "too many requests wait for their API key to be checked");
            else
                decided = !s_key_ask (self, a, ticket);
        }
        else if (a->verdict.status == 0)
            decided = s_after_identity (self, a);
    }
    else
        decided = s_after_identity (self, a);
    return s_admission_park (self, a, decided, verdict);
}

void
edge_guard_cancel (edge_guard_t *self, uint64_t ticket)
{
    assert (self);
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, ticket);
    s_admission_t *a = (s_admission_t *) zhashx_lookup (self->waiting, key);
    if (!a)
        return;
    if (a->stage == S_STAGE_LIMIT && a->limit_ticket && self->limit)
        edge_limit_cancel (self->limit, a->limit_ticket);
    //  A lookup it waits for stays: its answer fills the cache for the next one
    zhashx_delete (self->waiting, key);
}

//  The answer to revocations.list.
static void
s_revocations_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    edge_guard_t *self = (edge_guard_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    self->poll_handle = 0;
    int64_t now_ms = zclock_mono ();
    self->next_poll_ms = now_ms + self->poll_ms;
    char why[128] = "";
    ChorusAuth__RevocationList *list = NULL;
    if (reply->kind == BUS_REPLY_FINAL)
        list = (ChorusAuth__RevocationList *) codec_decode (
            &chorus_auth__revocation_list__descriptor, reply->body, reply->size, why,
            sizeof why);
    else
        snprintf (why, sizeof why, "%s: %s", reply->code ? reply->code : "?",
                  reply->message ? reply->message : "");
    if (!list) {
        //  Keep what we have and ask again at the next interval
        if (!self->poll_failing)
            core_log_warn (self->log, NULL,
                           "revocations.list failed (%s): keeping %zu revocations, "
                           "asking again every %" PRId64 " ms",
                           why, edge_revocations_size (self->revoked), self->poll_ms);
        self->poll_failing = true;
        self->fresh = false;
        return;
    }
    int64_t now = (int64_t) time (NULL);
    bool more = edge_revocations_apply (self->revoked, list, now);
    for (size_t i = 0; i < list->n_data; i++) {
        const ChorusAuth__Revocation *r = list->data[i];
        if (r && r->kind && r->id && strcmp (r->kind, "api_key") == 0)
            edge_keycache_forget_key (self->keys, r->id);
    }
    protobuf_c_message_free_unpacked (&list->base, NULL);
    if (self->poll_failing)
        core_log_info (self->log, NULL, "revocations.list answers again: %zu held",
                       edge_revocations_size (self->revoked));
    self->poll_failing = false;
    self->fresh = true;
    if (more)
        self->next_poll_ms = now_ms;  //  the next page at once
}

//  Ask revocations.list for what came after the last sequence seen.
static void
s_poll (edge_guard_t *self)
{
    ChorusAuth__RevocationsRequest request = CHORUS_AUTH__REVOCATIONS_REQUEST__INIT;
    request.has_after_seq = true;
    request.after_seq = edge_revocations_after (self->revoked);
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "edge-revocations";
    int64_t deadline = self->poll_ms > 1000 ? self->poll_ms : 1000;
    headers.timeout_ms = deadline < self->timeout_ms ? deadline : self->timeout_ms;
    self->poll_handle = bus_client_request_msg (self->bus, "auth", "revocations.list",
                                                &headers, &request.base, s_revocations_fn,
                                                self);
    if (!self->poll_handle)
        self->next_poll_ms = zclock_mono () + self->poll_ms;  //  no broker yet
    else
        bus_client_process (self->bus);
}

int
edge_guard_tick (edge_guard_t *self)
{
    assert (self);
    int64_t now_ms = zclock_mono ();
    if (!self->poll_handle && now_ms >= self->next_poll_ms)
        s_poll (self);
    if (now_ms >= self->next_prune_ms) {
        edge_revocations_prune (self->revoked, (int64_t) time (NULL));
        edge_keycache_prune (self->keys, now_ms);
        self->next_prune_ms = now_ms + 10000;
    }
    int wait_ms = 50;
    if (self->limit) {
        edge_limit_tick (self->limit);
        if (edge_limit_busy (self->limit))
            wait_ms = 1;
    }
    if (!self->poll_handle && self->next_poll_ms - now_ms < wait_ms)
        wait_ms = self->next_poll_ms > now_ms ? (int) (self->next_poll_ms - now_ms) : 1;
    return wait_ms;
}

bool
edge_guard_busy (edge_guard_t *self)
{
    assert (self);
    return self->limit && edge_limit_busy (self->limit);
}

size_t
edge_guard_waiting (edge_guard_t *self)
{
    assert (self);
    return zhashx_size (self->waiting);
}

size_t
edge_guard_revocations (edge_guard_t *self)
{
    assert (self);
    return edge_revocations_size (self->revoked);
}

bool
edge_guard_revocations_fresh (edge_guard_t *self)
{
    assert (self);
    return self->fresh;
}

//  --------------------------------------------------------------------------
//  Selftest: a real broker, the auth service's generic runtime (which answers
//  "unknown_command" until the auth commands exist), the guard's bus client
//  driven here, and Redis when CHORUS_TEST_REDIS_URL is set.

#include "auth_keys.h"
#include "bus_broker.h"
#include "service_main.h"
#include "service_runtime.h"

#define S_SECRET "edge-guard-test-secret-0123456789abcdef"

typedef struct {
    int calls;               //  verdicts received
    edge_verdict_t verdict;  //  the last one
} s_seen_t;

static void
s_seen_fn (const edge_verdict_t *verdict, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    seen->calls++;
    seen->verdict = *verdict;
}

//  Drive the bus client and the guard until seen has want verdicts or time is up.
static void
s_drive (edge_guard_t *guard, bus_client_t *bus, s_seen_t *seen, int want, int max_ms)
{
    int64_t end = zclock_mono () + max_ms;
    while ((!seen || seen->calls < want) && zclock_mono () < end) {
        bus_client_process (bus);
        bus_client_tick (bus);
        edge_guard_tick (guard);
        zclock_sleep (1);
    }
}

//  Admit a GET with budget and wait for the verdict.
static void
s_admit_wait (edge_guard_t *guard, bus_client_t *bus, edge_need_t need,
              const edge_credential_t *credential, const char *client_ip,
              edge_verdict_t *verdict)
{
    s_seen_t seen = {0};
    if (edge_guard_admit (guard, need, "GET", credential, client_ip, true, s_seen_fn,
                          &seen, verdict)) {
        s_drive (guard, bus, &seen, 1, 3000);
        assert (seen.calls == 1);
        *verdict = seen.verdict;
    }
}

//  A token for user in tenant with role and session sid, issued now.
static char *
s_token (auth_jwt_t *jwt, const char *user, auth_role_t role, const char *sid)
{
    auth_jwt_claims_t claims = {.role = role};
    snprintf (claims.sub, sizeof claims.sub, "%s", user);
    snprintf (claims.tid, sizeof claims.tid, "tenant-1");
    snprintf (claims.sid, sizeof claims.sid, "%s", sid);
    char *token = auth_jwt_issue (jwt, &claims, (int64_t) time (NULL), NULL, 0);
    assert (token);
    return token;
}

//  The credential of a header value.
static edge_credential_t *
s_credential (const char *authorization)
{
    edge_credential_t *credential = malloc (sizeof *credential);
    assert (credential);
    edge_auth_credential (authorization, authorization ? strlen (authorization) : 0, NULL,
                          0, credential);
    return credential;
}

//  A guard over bus with the test secret, budgets of per_min on redis_url.
static edge_guard_t *
s_guard (bus_client_t *bus, edge_metrics_t *metrics, core_log_t *log,
         const char *redis_url, int64_t per_min, bool fail_open)
{
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    assert (config);
    if (core_config_set (config, "jwt_secret", S_SECRET, &error)
        || core_config_set (config, "jwt_previous_secrets", "", &error))
        assert (false);
    edge_guard_config_t guard_config = {.jwt = auth_keys_jwt_new (config, &error),
                                        .api_key_cache_ms = 1000,
                                        .revocation_poll_ms = 100,
                                        .redis_url = redis_url,
                                        .rate_user_per_min = per_min,
                                        .rate_ip_per_min = per_min,
                                        .rate_webhook_per_min = per_min,
                                        .rate_fail_open = fail_open,
                                        .rate_timeout_ms = 500,
                                        .timeout_ms = 2000};
    assert (guard_config.jwt);
    core_config_destroy (&config);
    edge_guard_t *guard = edge_guard_new (bus, metrics, log, &guard_config);
    assert (guard && guard_config.jwt == NULL);
    return guard;
}

//  The auth service as the shared runtime runs it before the auth commands exist:
//  ping, health, events.replay, and "unknown_command" for anything else.
static const service_definition_t s_generic_auth = {.name = "auth"};

static void
s_generic_auth_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_generic_auth);
}

void
edge_guard_test (bool verbose)
{
    printf (" * edge_guard: ");
    bus_broker_config_t broker_config = {
        .id = "guard-test", .log_level = "error", .heartbeat_ms = 100};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    zstr_sendx (broker, "BIND", "tcp://127.0.0.1:*", NULL);
    int port = -1;
    zsock_recv (broker, "i", &port);
    assert (port > 0);
    char brokers[64];
    snprintf (brokers, sizeof brokers, "tcp://127.0.0.1:%d", port);
    char *error = NULL;
    core_config_t *service_config = core_config_new (service_main_options,
                                                     service_main_option_count, &error);
    assert (service_config);
    if (core_config_set (service_config, "brokers", brokers, &error)
        || core_config_set (service_config, "log_level", "off", &error)
        || core_config_set (service_config, "heartbeat_ms", "100", &error))
        assert (false);
    zactor_t *auth = zactor_new (s_generic_auth_actor, service_config);
    int ready = -1;
    zsock_recv (auth, "i", &ready);
    assert (ready == 0);

    core_log_t *log = core_log_new ("edge", verbose ? "info" : "off");
    edge_metrics_t *metrics = edge_metrics_new ();
    bus_client_t *bus = bus_client_new (brokers, 100, 3, log);
    assert (bus);
    edge_guard_t *guard = s_guard (bus, metrics, log, NULL, 0, true);
    auth_jwt_t *jwt = auth_jwt_new ("chorus", "chorus-api");
    char kid[AUTH_KEYS_KID_LEN + 1];
    assert (auth_keys_kid (S_SECRET, kid, sizeof kid) == 0);
    assert (auth_jwt_add_key (jwt, kid, S_SECRET, strlen (S_SECRET)) == 0);
    edge_verdict_t verdict;
    s_seen_t seen = {0};

    //  Public: credentials are not looked at; none: anonymous
    edge_credential_t *garbage = s_credential ("Bearer garbage");
    assert (edge_guard_admit (guard, EDGE_NEED_PUBLIC, "POST", garbage, "192.0.2.1", true,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 0 && verdict.identity.kind == EDGE_CRED_NONE);
    assert (edge_guard_admit (guard, EDGE_NEED_OPTIONAL, "POST", NULL, "192.0.2.1", true,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 0);
    //  Missing: 401 without invalid_token; malformed: 401 invalid_token
    assert (edge_guard_admit (guard, EDGE_NEED_USER, "GET", NULL, "", true, s_seen_fn,
                              &seen, &verdict)
            == 0);
    assert (verdict.status == 401 && !verdict.invalid_token);
    assert (strcmp (verdict.code, "unauthorized") == 0);
    assert (edge_guard_admit (guard, EDGE_NEED_OPTIONAL, "POST", garbage, "", true,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 401 && verdict.invalid_token);
    free (garbage);

    //  A JWT: identity for the bus headers; role checks; forged, expired
    char *token = s_token (jwt, "user-1", AUTH_ROLE_MEMBER, "session-1");
    char header[1024];
    snprintf (header, sizeof header, "Bearer %s", token);
    edge_credential_t *member = s_credential (header);
    assert (member->kind == EDGE_CRED_JWT);
    assert (edge_guard_admit (guard, EDGE_NEED_USER, "GET", member, "192.0.2.1", true,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 0 && verdict.identity.kind == EDGE_CRED_JWT);
    assert (strcmp (verdict.identity.user_id, "user-1") == 0);
    assert (strcmp (verdict.identity.tenant_id, "tenant-1") == 0);
    assert (strcmp (verdict.identity.session_id, "session-1") == 0);
    assert (verdict.identity.role == AUTH_ROLE_MEMBER);
    assert (edge_guard_admit (guard, EDGE_NEED_TENANT_ADMIN, "GET", member, "", true,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 403 && strcmp (verdict.code, "forbidden") == 0);
    free (token);
    token = s_token (jwt, "user-1", AUTH_ROLE_TENANT_ADMIN, "");
    char *last = &token[strlen (token) - 2];
    *last = *last == 'A' ? 'B' : 'A';  //  the signature no longer matches
    snprintf (header, sizeof header, "Bearer %s", token);
    edge_credential_t *forged = s_credential (header);
    assert (edge_guard_admit (guard, EDGE_NEED_USER, "GET", forged, "", true, s_seen_fn,
                              &seen, &verdict)
            == 0);
    assert (verdict.status == 401 && verdict.invalid_token);
    assert (strstr (verdict.message, "bad_signature"));
    free (forged);
    free (token);
    auth_jwt_claims_t old = {.sub = "u", .tid = "t", .role = AUTH_ROLE_MEMBER};
    token = auth_jwt_issue (jwt, &old, (int64_t) time (NULL) - 3600, NULL, 0);
    snprintf (header, sizeof header, "Bearer %s", token);
    edge_credential_t *expired = s_credential (header);
    assert (edge_guard_admit (guard, EDGE_NEED_USER, "GET", expired, "", true, s_seen_fn,
                              &seen, &verdict)
            == 0);
    assert (verdict.status == 401 && strstr (verdict.message, "expired"));
    free (expired);
    free (token);

    //  An API key waits for api_keys.verify; the generic answer (unknown_command)
    //  is no answer: 503. Two requests with one key share one question; a
    //  cancelled one hears nothing.
    char key[EDGE_AUTH_KEY_LEN + 8] = "Bearer chr_";
    memset (key + strlen (key), 'k', 43);
    key[7 + EDGE_AUTH_KEY_LEN] = '\0';
    edge_credential_t *api_key = s_credential (key);
    assert (api_key->kind == EDGE_CRED_API_KEY);
    s_seen_t cancelled = {0};
    for (int i = 0; i < 500 && !bus_client_brokers_alive (bus); i++)
        s_drive (guard, bus, NULL, 0, 2);
    uint64_t first = edge_guard_admit (guard, EDGE_NEED_USER, "GET", api_key, "", true,
                                       s_seen_fn, &seen, &verdict);
    uint64_t second = edge_guard_admit (guard, EDGE_NEED_USER, "GET", api_key, "", true,
                                        s_seen_fn, &cancelled, &verdict);
    assert (first && second && first != second);
    assert (edge_guard_waiting (guard) == 2);
    edge_guard_cancel (guard, second);
    edge_guard_cancel (guard, second);
    s_drive (guard, bus, &seen, 1, 5000);
    assert (seen.calls == 1 && cancelled.calls == 0);
    assert (seen.verdict.status == 503 && strcmp (seen.verdict.code, "unavailable") == 0);
    assert (edge_guard_waiting (guard) == 0);
    //  Revocations: asked every 100 ms, failing (unknown_command) and asked again
    s_drive (guard, bus, NULL, 0, 300);
    assert (!edge_guard_revocations_fresh (guard) && edge_guard_revocations (guard) == 0);
    assert (edge_guard_tick (guard) >= 1);
    //  Destroyed with an admission waiting: no callback
    seen.calls = 0;
    assert (edge_guard_admit (guard, EDGE_NEED_USER, "GET", api_key, "", true, s_seen_fn,
                              &seen, &verdict));
    edge_guard_destroy (&guard);
    edge_guard_destroy (&guard);
    s_drive (NULL, bus, NULL, 0, 0);
    assert (seen.calls == 0);

    //  Budgets, with Redis failing closed, then open, then a real one
    guard = s_guard (bus, metrics, log, "redis://127.0.0.1:1", 5, false);
    s_admit_wait (guard, bus, EDGE_NEED_PUBLIC, NULL, "192.0.2.9", &verdict);
    assert (verdict.status == 503 && strcmp (verdict.code, "unavailable") == 0);
    seen.calls = 0;
    if (edge_guard_admit_webhook (guard, "c-1", s_seen_fn, &seen, &verdict)) {
        s_drive (guard, bus, &seen, 1, 3000);
        verdict = seen.verdict;
    }
    assert (verdict.status == 503);  //  webhooks have a budget too
    edge_guard_destroy (&guard);
    guard = s_guard (bus, metrics, log, "redis://127.0.0.1:1", 5, true);
    s_admit_wait (guard, bus, EDGE_NEED_PUBLIC, NULL, "192.0.2.9", &verdict);
    assert (verdict.status == 0);
    assert (edge_guard_admit (guard, EDGE_NEED_PUBLIC, "GET", NULL, "192.0.2.9", false,
                              s_seen_fn, &seen, &verdict)
            == 0);
    assert (verdict.status == 0);  //  not budgeted
    edge_guard_destroy (&guard);
    const char *redis = getenv ("CHORUS_TEST_REDIS_URL");
    if (redis && *redis) {
        guard = s_guard (bus, metrics, log, redis, 2, false);
        char user[64];
        snprintf (user, sizeof user, "guard-test-%d-%lld", getpid (),
                  (long long) zclock_usecs ());
        token = s_token (jwt, user, AUTH_ROLE_MEMBER, "s");
        snprintf (header, sizeof header, "Bearer %s", token);
        edge_credential_t *limited = s_credential (header);
        //  Wait for the connection: checks refused before it fail closed here
        int passed = 0, over = 0;
        for (int i = 0; i < 3000 && passed + over < 3; i++) {
            s_admit_wait (guard, bus, EDGE_NEED_USER, limited, "192.0.2.9", &verdict);
            if (verdict.status == 0)
                passed++;
            else if (verdict.status == 429) {
                over++;
                assert (strcmp (verdict.code, "rate_limited") == 0);
                assert (verdict.retry_after >= 1 && verdict.retry_after <= 60);
            }
            else {
                assert (verdict.status == 503 && passed == 0);  //  not connected yet
                s_drive (guard, bus, NULL, 0, 2);
            }
        }
        //  Two in the window (unless it turned meanwhile), then over
        assert (passed >= 2 && over >= 1 - (passed - 2));
        //  Webhooks: per connection id whatever its case, never per address or user
        char hook[64];
        snprintf (hook, sizeof hook, "Hook-%d-%lld", getpid (),
                  (long long) zclock_usecs ());
        passed = over = 0;
        int64_t window = edge_limit_window ((int64_t) time (NULL), NULL);
        for (int i = 0; i < 4; i++) {
            seen.calls = 0;
            if (i % 2)
                hook[0] = (char) tolower ((unsigned char) hook[0]);
            else
                hook[0] = (char) toupper ((unsigned char) hook[0]);
            if (edge_guard_admit_webhook (guard, hook, s_seen_fn, &seen, &verdict)) {
                s_drive (guard, bus, &seen, 1, 3000);
                assert (seen.calls == 1);
                verdict = seen.verdict;
            }
            assert (verdict.identity.kind == EDGE_CRED_NONE);
            if (verdict.status == 0)
                passed++;
            else {
                assert (verdict.status == 429 && verdict.retry_after >= 1);
                over++;
            }
        }
        assert (passed + over == 4 && passed >= 2);
        if (edge_limit_window ((int64_t) time (NULL), NULL) == window)
            assert (passed == 2);  //  one budget for both spellings
        free (limited);
        free (token);
        edge_guard_destroy (&guard);
    }
    size_t size = 0;
    edge_gauges_t gauges = {0};
    char *text = edge_metrics_render (metrics, &gauges, &size);
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"missing\"} 1\n"));
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"forbidden\"} 1\n"));
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"unavailable\"} 1\n"));
    if (verbose)
        printf ("\n%s", text);
    free (text);

    free (api_key);
    free (member);
    auth_jwt_destroy (&jwt);
    bus_client_destroy (&bus);
    edge_metrics_destroy (&metrics);
    core_log_destroy (&log);
    zactor_destroy (&auth);
    core_config_destroy (&service_config);
    zactor_destroy (&broker);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
