/*  edge_limit: fixed-window request budgets in Redis, driven from any loop.     */
#include "edge_limit.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_client.h"

//  INCR the window's counter; the first request of a window sets its expiry
#define S_SCRIPT                                                                         \
    "local n = redis.call('INCR', KEYS[1]) "                                             \
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"

typedef struct {
    uint64_t ticket;      //  its ticket
    edge_limit_fn *fn;    //  who waits
    void *arg;            //  and its argument
    int64_t limit;        //  allowed per window
    int retry_after;      //  seconds left in the window when asked
    int64_t deadline_ms;  //  when to stop waiting for Redis (monotonic)
} s_check_t;

//  What a Redis command carries to its callback.
typedef struct {
    edge_limit_t *self;  //  the limiter
    uint64_t ticket;     //  the check it answers
} s_command_t;

struct _edge_limit_t {
    redis_client_t *redis;  //  the connection
    core_log_t *log;        //  logger (borrowed)
    bool fail_open;         //  pass when Redis fails
    int timeout_ms;         //  longest wait for an answer
    zhashx_t *checks;       //  ticket text -> s_check_t * waiting for Redis
    uint64_t next_ticket;   //  last ticket handed out
};

//  zhashx destructor of a check.
static void
s_check_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

edge_limit_t *
edge_limit_new (const char *url, bool fail_open, int timeout_ms, core_log_t *log)
{
    redis_client_t *redis = redis_client_new (url, log);
    if (!redis)
        return NULL;
    edge_limit_t *self = calloc (1, sizeof *self);
    assert (self);
    self->redis = redis;
    self->log = log;
    self->fail_open = fail_open;
    self->timeout_ms = timeout_ms;
    self->checks = zhashx_new ();
    assert (self->checks);
    zhashx_set_destructor (self->checks, s_check_destroy);
    //  A check never waits long: neither should a command or a connection attempt
    redis_client_set_command_timeout (redis,
                                      timeout_ms * 4 > 1000 ? timeout_ms * 4 : 1000);
    redis_client_set_connect_timeout (redis, 1000);
    return self;
}

void
edge_limit_destroy (edge_limit_t **self_p)
{
    assert (self_p);
    edge_limit_t *self = *self_p;
    if (!self)
        return;
    //  Nobody waits any more; the commands still in Redis end in their callbacks
    zhashx_purge (self->checks);
    redis_client_destroy (&self->redis);
    zhashx_destroy (&self->checks);
    free (self);
    *self_p = NULL;
}

int64_t
edge_limit_window (int64_t now_s, int *seconds_left)
{
    int64_t window = now_s >= 0 ? now_s / 60 : (now_s - 59) / 60;
    if (seconds_left)
        *seconds_left = (int) ((window + 1) * 60 - now_s);
    return window;
}

//  The decision when Redis failed.
static edge_limit_result_t
s_failed (edge_limit_t *self)
{
    return (edge_limit_result_t){
        self->fail_open ? EDGE_LIMIT_PASS : EDGE_LIMIT_UNAVAILABLE, 0, true};
}

//  End a waiting check with result: forget it, then call its owner.
static void
s_end (edge_limit_t *self, s_check_t *check, const edge_limit_result_t *result)
{
    edge_limit_fn *fn = check->fn;
    void *arg = check->arg;
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, check->ticket);
    zhashx_delete (self->checks, key);
    fn (result, arg);
}

//  A counter value from Redis (or no answer).
static void
s_reply_fn (redisReply *reply, const char *error, void *arg)
{
    s_command_t *command = (s_command_t *) arg;
    edge_limit_t *self = command->self;
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, command->ticket);
    free (command);
    s_check_t *check = (s_check_t *) zhashx_lookup (self->checks, key);
    if (!check)
        return;  //  cancelled or timed out
    edge_limit_result_t result = {EDGE_LIMIT_PASS, 0, false};
    if (error || !reply || reply->type != REDIS_REPLY_INTEGER) {
        core_log_warn (self->log, NULL, "rate limit: Redis: %s",
                       error ? error : "unexpected reply");
        result = s_failed (self);
    }
    else if (reply->integer > check->limit)
        result = (edge_limit_result_t){EDGE_LIMIT_OVER, check->retry_after, false};
    s_end (self, check, &result);
}

//  Read and write what the Redis connection is ready for, without waiting.
static void
s_drive (edge_limit_t *self)
{
    struct pollfd pfd = {.fd = -1};
    if (redis_client_pollfd (self->redis, &pfd) && poll (&pfd, 1, 0) > 0)
        redis_client_handle (self->redis, pfd.revents);
}

uint64_t
edge_limit_check (edge_limit_t *self, const char *scope, const char *id, int64_t limit,
                  int64_t now_s, edge_limit_fn *fn, void *arg,
                  edge_limit_result_t *result)
{
    assert (self && scope && id && fn && result);
    *result = (edge_limit_result_t){EDGE_LIMIT_PASS, 0, false};
    if (limit <= 0)
        return 0;  //  no budget for this scope
    int seconds_left = 60;
    int64_t window = edge_limit_window (now_s, &seconds_left);
    char *key = NULL;
    if (asprintf (&key, "chorus:rate:%s:%s:%" PRId64, scope, id, window) < 0)
        key = NULL;
    assert (key);
    s_command_t *command = calloc (1, sizeof *command);
    assert (command);
    command->self = self;
    command->ticket = ++self->next_ticket;
    const char *argv[] = {"EVAL", S_SCRIPT, "1", key, "61"};
    int rc = redis_client_command_argv (self->redis, s_reply_fn, command, 5, argv, NULL);
    free (key);
    if (rc != 0) {
        free (command);
        *result = s_failed (self);
        return 0;
    }
    s_check_t *check = calloc (1, sizeof *check);
    assert (check);
    check->ticket = command->ticket;
    check->fn = fn;
    check->arg = arg;
    check->limit = limit;
    check->retry_after = seconds_left;
    check->deadline_ms = zclock_mono () + self->timeout_ms;
    char ticket[24];
    snprintf (ticket, sizeof ticket, "%" PRIu64, check->ticket);
    zhashx_insert (self->checks, ticket, check);
    //  Written at the next tick: driving Redis here could end the check (and call
    //  fn) before the caller has its ticket
    return check->ticket;
}

void
edge_limit_cancel (edge_limit_t *self, uint64_t ticket)
{
    assert (self);
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, ticket);
    zhashx_delete (self->checks, key);
}

void
edge_limit_tick (edge_limit_t *self)
{
    assert (self);
    s_drive (self);
    redis_client_tick (self->redis);
    if (zhashx_size (self->checks) == 0)
        return;
    int64_t now = zclock_mono ();
    zlistx_t *late = zlistx_new ();
    for (s_check_t *check = (s_check_t *) zhashx_first (self->checks); check;
         check = (s_check_t *) zhashx_next (self->checks))
        if (now >= check->deadline_ms)
            zlistx_add_end (late, check);
    for (s_check_t *check = (s_check_t *) zlistx_first (late); check;
         check = (s_check_t *) zlistx_next (late)) {
        edge_limit_result_t result = s_failed (self);
        s_end (self, check, &result);
    }
    if (zlistx_size (late))
        core_log_warn (self->log, NULL, "rate limit: Redis answered %zu checks too late",
                       zlistx_size (late));
    zlistx_destroy (&late);
}

bool
edge_limit_busy (edge_limit_t *self)
{
    assert (self);
    return zhashx_size (self->checks) > 0 || redis_client_pending (self->redis) > 0;
}

bool
edge_limit_ready (edge_limit_t *self)
{
    assert (self);
    return redis_client_healthy (self->redis);
}

//  --------------------------------------------------------------------------
//  Selftest: windows, then a real Redis when CHORUS_TEST_REDIS_URL is set, and a
//  Redis that is not there.

typedef struct {
    int calls;                   //  callbacks seen
    edge_limit_result_t result;  //  the last result
} s_seen_t;

static void
s_seen_fn (const edge_limit_result_t *result, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    seen->calls++;
    seen->result = *result;
}

//  One check, waited for; returns its result.
static edge_limit_result_t
s_check_wait (edge_limit_t *self, const char *id, int64_t limit, int64_t now_s)
{
    s_seen_t seen = {0};
    edge_limit_result_t result;
    if (edge_limit_check (self, "user", id, limit, now_s, s_seen_fn, &seen, &result) == 0)
        return result;
    for (int i = 0; i < 5000 && seen.calls == 0; i++) {
        edge_limit_tick (self);
        if (seen.calls == 0)
            zclock_sleep (1);
    }
    assert (seen.calls == 1);
    return seen.result;
}

void
edge_limit_test (bool verbose)
{
    printf (" * edge_limit: ");
    int left = 0;
    assert (edge_limit_window (120, &left) == 2 && left == 60);
    assert (edge_limit_window (179, &left) == 2 && left == 1);
    assert (edge_limit_window (1764000000, &left) == 29400000 && left == 60);
    assert (edge_limit_window (1764000001, &left) == 29400000 && left == 59);

    core_log_t *log = core_log_new ("test", verbose ? "debug" : "off");
    assert (edge_limit_new ("http://nope", true, 100, log) == NULL);
    //  Nothing listens: fails at once or at the deadline; open passes, closed refuses
    edge_limit_t *open = edge_limit_new ("redis://127.0.0.1:1", true, 50, log);
    edge_limit_t *closed = edge_limit_new ("redis://127.0.0.1:1", false, 50, log);
    assert (open && closed);
    edge_limit_result_t r = s_check_wait (open, "u1", 5, 1764000000);
    assert (r.verdict == EDGE_LIMIT_PASS && r.redis_failed);
    r = s_check_wait (closed, "u1", 5, 1764000000);
    assert (r.verdict == EDGE_LIMIT_UNAVAILABLE && r.redis_failed);
    //  A budget of 0 is no budget
    r = s_check_wait (closed, "u1", 0, 1764000000);
    assert (r.verdict == EDGE_LIMIT_PASS && !r.redis_failed);
    edge_limit_destroy (&closed);
    edge_limit_destroy (&open);

    const char *url = getenv ("CHORUS_TEST_REDIS_URL");
    if (url && *url) {
        edge_limit_t *limit = edge_limit_new (url, false, 2000, log);
        assert (limit);
        for (int i = 0; i < 3000 && !edge_limit_ready (limit); i++) {
            edge_limit_tick (limit);
            zclock_sleep (1);
        }
        assert (edge_limit_ready (limit));
        char id[64];
        snprintf (id, sizeof id, "test-%d-%" PRId64, getpid (), zclock_usecs ());
        //  The budget of 3: three pass, the fourth is over with the window's rest
        int64_t now = 1764000000 + 45;
        for (int i = 0; i < 3; i++) {
            r = s_check_wait (limit, id, 3, now);
            if (r.verdict != EDGE_LIMIT_PASS || r.redis_failed)
                printf ("\n   check %d: verdict %d, failed %d", i, r.verdict,
                        r.redis_failed);
            assert (r.verdict == EDGE_LIMIT_PASS && !r.redis_failed);
        }
        r = s_check_wait (limit, id, 3, now);
        assert (r.verdict == EDGE_LIMIT_OVER && r.retry_after == 15);
        //  The next window starts again
        r = s_check_wait (limit, id, 3, now + 15);
        assert (r.verdict == EDGE_LIMIT_PASS);
        //  A cancelled check calls nobody
        s_seen_t seen = {0};
        edge_limit_result_t result;
        uint64_t ticket = edge_limit_check (limit, "ip", id, 3, now, s_seen_fn, &seen,
                                            &result);
        assert (ticket);
        edge_limit_cancel (limit, ticket);
        for (int i = 0; i < 200 && edge_limit_busy (limit); i++) {
            edge_limit_tick (limit);
            zclock_sleep (1);
        }
        assert (seen.calls == 0 && !edge_limit_busy (limit));
        //  Destroyed with a check waiting: nobody is called
        ticket = edge_limit_check (limit, "ip", id, 3, now, s_seen_fn, &seen, &result);
        edge_limit_destroy (&limit);
        assert (seen.calls == 0);
        if (verbose)
            printf ("(Redis %s) ", url);
    }
    else if (verbose)
        printf ("(CHORUS_TEST_REDIS_URL unset: no Redis checks) ");
    core_log_destroy (&log);
    printf ("OK\n");
}
