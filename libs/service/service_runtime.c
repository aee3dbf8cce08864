/*  service_runtime: the actor every service runs (see service_runtime.h).         */
#include "service_runtime.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include "bus_proto.h"
#include "codec_msgpack.h"
#include "db_migrate.h"
#include "service_events.h"

#ifndef CHORUS_VERSION
#define CHORUS_VERSION "0.1.0"
#endif

//  A streamed ping in progress.
typedef struct {
    service_runtime_t *runtime;  //  owner
    bus_request_t *request;      //  the ping request
    uint32_t count;              //  replies wanted
    uint32_t sent;               //  replies sent
    int timer;                   //  zloop timer id
} s_ping_t;

struct _service_runtime_t {
    const service_definition_t *def;  //  what service this is
    zsock_t *pipe;                    //  actor pipe
    zloop_t *loop;                    //  reactor
    core_config_t *config;            //  process configuration (borrowed)
    core_log_t *log;                  //  our logger
    bus_worker_t *worker;             //  our bus replica
    bus_client_t *client;             //  our requests to other services
    db_pool_t *db;                    //  database pool, or NULL
    redis_client_t *redis;            //  Redis client, or NULL
    service_events_t *events;         //  our event outbox, or NULL
    void *state;                      //  the service's own state
    zlistx_t *pings;                  //  s_ping_t * streaming
    int64_t started;                  //  start time (ms)
    bool draining;                    //  DRAIN received
    int64_t drain_deadline;           //  give up draining after this (ms)
    bool terminated;                  //  $TERM received
};

bus_worker_t *
service_runtime_worker (service_runtime_t *self)
{
    return self->worker;
}

core_log_t *
service_runtime_log (service_runtime_t *self)
{
    return self->log;
}

core_config_t *
service_runtime_config (service_runtime_t *self)
{
    return self->config;
}

zloop_t *
service_runtime_loop (service_runtime_t *self)
{
    return self->loop;
}

db_pool_t *
service_runtime_db (service_runtime_t *self)
{
    return self->db;
}

bus_client_t *
service_runtime_client (service_runtime_t *self)
{
    return self->client;
}

redis_client_t *
service_runtime_redis (service_runtime_t *self)
{
    return self->redis;
}

service_events_t *
service_runtime_events (service_runtime_t *self)
{
    return self->events;
}

const char *
service_runtime_name (service_runtime_t *self)
{
    return self->def->name;
}

static const char *
s_request_id (bus_request_t *request)
{
    const ChorusBus__Headers *headers = bus_request_headers (request);
    return headers && headers->request_id ? headers->request_id : "";
}

static void
s_ping_send (s_ping_t *ping)
{
    service_runtime_t *self = ping->runtime;
    ChorusBus__PingReply reply = CHORUS_BUS__PING_REPLY__INIT;
    reply.service = (char *) self->def->name;
    reply.replica = (char *) bus_worker_replica (self->worker);
    reply.time_ms = zclock_time ();
    reply.index = ping->sent++;
    if (ping->sent < ping->count)
        bus_worker_partial_msg (self->worker, ping->request, &reply.base);
    else
        bus_worker_final_msg (self->worker, &ping->request, &reply.base);
}

static void
s_ping_end (service_runtime_t *self, s_ping_t *ping)
{
    if (ping->timer >= 0)
        zloop_timer_end (self->loop, ping->timer);
    zlistx_delete (self->pings, zlistx_find (self->pings, ping));
    free (ping);
}

static int
s_on_ping_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_ping_t *ping = (s_ping_t *) arg;
    s_ping_send (ping);
    if (!ping->request) {
        ping->timer = -1;  //  a one-shot series ends itself in zloop
        s_ping_end (ping->runtime, ping);
    }
    return 0;
}

//  "ping": one reply, or count replies interval_ms apart (count-1 partials).
static void
s_handle_ping (service_runtime_t *self, bus_request_t *request)
{
    char why[128];
    ChorusBus__PingRequest *body = (ChorusBus__PingRequest *) codec_decode (
        &chorus_bus__ping_request__descriptor, bus_request_body (request),
        bus_request_size (request), why, sizeof why);
    if (!body) {
        bus_worker_error (self->worker, &request, BUS_ERR_BAD_REQUEST, why);
        return;
    }
    uint32_t count = body->count ? body->count : 1;
    uint32_t interval = body->interval_ms;
    protobuf_c_message_free_unpacked (&body->base, NULL);
    if (count > 10000 || interval > 60000) {
        bus_worker_error (self->worker, &request, BUS_ERR_BAD_REQUEST,
                          "count must be at most 10000 and interval_ms at most 60000");
        return;
    }
    s_ping_t *ping = calloc (1, sizeof (s_ping_t));
    assert (ping);
    ping->runtime = self;
    ping->request = request;
    ping->count = count;
    ping->timer = -1;
    if (interval == 0) {
        while (ping->request)
            s_ping_send (ping);
        free (ping);
        return;
    }
    s_ping_send (ping);
    if (!ping->request) {
        free (ping);
        return;
    }
    bus_request_set_data (request, ping);
    zlistx_add_end (self->pings, ping);
    ping->timer = zloop_timer (self->loop, interval, count - 1, s_on_ping_timer, ping);
}

static void
s_handle_health (service_runtime_t *self, bus_request_t *request)
{
    ChorusBus__HealthReply health = CHORUS_BUS__HEALTH_REPLY__INIT;
    health.service = (char *) self->def->name;
    health.replica = (char *) bus_worker_replica (self->worker);
    health.database = self->def->schema ? self->db && db_pool_healthy (self->db) : true;
    health.redis = self->def->uses_redis
                       ? self->redis && redis_client_healthy (self->redis)
                       : true;
    health.status = self->draining                    ? "draining"
                    : health.database && health.redis ? "ok"
                                                      : "degraded";
    health.in_flight = (uint32_t) bus_worker_in_flight (self->worker);
    health.credit = bus_worker_credit (self->worker);
    health.uptime_ms = bus_proto_now () - self->started;
    health.version = CHORUS_VERSION;
    bus_worker_final_msg (self->worker, &request, &health.base);
}

static void
s_on_request (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    service_runtime_t *self = (service_runtime_t *) arg;
    const char *command = bus_request_command (request);
    core_log_debug (self->log, s_request_id (request), "%s", command);
    if (streq (command, "ping"))
        s_handle_ping (self, request);
    else if (streq (command, "health"))
        s_handle_health (self, request);
    else if (self->events && service_events_handles (command))
        service_events_handle (self->events, worker, request);
    else {
        for (size_t i = 0; i < self->def->command_count; i++)
            if (streq (command, self->def->commands[i].command)) {
                self->def->commands[i].fn (self, request, self->state);
                return;
            }
        char message[160];
        snprintf (message, sizeof message, "service '%s' has no command '%s'",
                  self->def->name, command);
        bus_worker_error (worker, &request, BUS_ERR_UNKNOWN_COMMAND, message);
    }
}

static void
s_on_cancel (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    service_runtime_t *self = (service_runtime_t *) arg;
    const char *command = bus_request_command (request);
    if (streq (command, "ping")) {
        s_ping_t *ping = (s_ping_t *) bus_request_data (request);
        if (ping) {
            bus_worker_error (worker, &ping->request, BUS_ERR_CANCELLED, "cancelled");
            s_ping_end (self, ping);
        }
    }
    else if (self->events && service_events_handles (command))
        ;  //  a replay ends when its query returns; its replies go nowhere now
    else if (self->def->on_cancel)
        self->def->on_cancel (self, request, self->state);
}

static void
s_check_drained (service_runtime_t *self)
{
    if (!self->draining || self->drain_deadline == 0)
        return;
    if (bus_worker_drained (self->worker)) {
        core_log_info (self->log, NULL, "drained");
        zsock_send (self->pipe, "i", 0);
        self->drain_deadline = 0;
    }
    else if (bus_proto_now () > self->drain_deadline) {
        core_log_warn (self->log, NULL, "drain timed out with %zu requests in flight",
                       bus_worker_in_flight (self->worker));
        zsock_send (self->pipe, "i", -1);
        self->drain_deadline = 0;
    }
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_check_drained ((service_runtime_t *) arg);
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    service_runtime_t *self = (service_runtime_t *) arg;
    char *command = zstr_recv (reader);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else if (streq (command, "DRAIN") && !self->draining) {
        core_log_info (self->log, NULL, "draining %zu requests in flight",
                       bus_worker_in_flight (self->worker));
        self->draining = true;
        self->drain_deadline = bus_proto_now ()
                               + core_config_int (self->config, "drain_timeout_ms");
        bus_worker_drain (self->worker);
        s_check_drained (self);
    }
    zstr_free (&command);
    return self->terminated ? -1 : 0;
}

//  Open the database: migrations first (blocking, before the loop runs), then the
//  pool. Returns 0 or -1.
static int
s_open_database (service_runtime_t *self)
{
    const char *url = core_config_str (self->config, "database_url");
    if (!*url) {
        core_log_error (self->log, NULL, "CHORUS_DATABASE_URL is not set; %s needs it",
                        self->def->name);
        return -1;
    }
    char dir[1024];
    snprintf (dir, sizeof dir, "%s/%s", core_config_str (self->config, "sql_dir"),
              self->def->name);
    char *error = NULL;
    int64_t wait_until = bus_proto_now ()
                         + core_config_int (self->config, "database_wait_ms");
    int applied;
    while ((applied = db_migrate_run (url, self->def->schema, dir, self->log, &error))
           < 0) {
        bool give_up = bus_proto_now () > wait_until || zsys_interrupted;
        core_log_at (self->log, give_up ? CORE_LOG_ERROR : CORE_LOG_WARN, NULL,
                     "migrations of %s: %s", self->def->schema, error);
        free (error);
        error = NULL;
        if (give_up)
            return -1;
        zclock_sleep (500);
    }
    if (applied > 0)
        core_log_info (self->log, NULL, "applied %d migrations to schema %s", applied,
                       self->def->schema);
    db_pool_config_t config = {
        .conninfo = url,
        .size = (int) core_config_int (self->config, "database_pool"),
        .queue_max = (int) core_config_int (self->config, "database_queue"),
        .application_name = self->def->name};
    self->db = db_pool_new (&config, self->log);
    if (!self->db || db_pool_attach (self->db, self->loop))
        return -1;
    return 0;
}

static int
s_start (service_runtime_t *self)
{
    if (self->def->schema && s_open_database (self))
        return -1;
    if (self->def->uses_redis) {
        const char *url = core_config_str (self->config, "redis_url");
        if (*url) {
            self->redis = redis_client_new (url, self->log);
            if (!self->redis || redis_client_attach (self->redis, self->loop))
                return -1;
        }
        else
            core_log_warn (self->log, NULL, "CHORUS_REDIS_URL is not set");
    }
    const char *brokers = core_config_str (self->config, "brokers");
    self->worker = bus_worker_new (
        brokers, self->def->name, (uint32_t) core_config_int (self->config, "credit"),
        NULL, (int) core_config_int (self->config, "heartbeat_ms"),
        (int) core_config_int (self->config, "heartbeat_liveness"), self->log);
    if (!self->worker) {
        core_log_error (self->log, NULL, "bad CHORUS_BROKERS '%s'", brokers);
        return -1;
    }
    if (self->db) {
        self->events = service_events_new (
            self->def->name, self->def->schema, self->db, brokers,
            (size_t) core_config_int (self->config, "database_queue"), self->log);
        if (!self->events || service_events_attach (self->events, self->loop))
            return -1;
    }
    bus_worker_set_handlers (self->worker, s_on_request, s_on_cancel, self);
    if (bus_worker_attach (self->worker, self->loop))
        return -1;
    //  Requests this service makes to others go through the same brokers
    self->client = bus_client_new (
        brokers, (int) core_config_int (self->config, "heartbeat_ms"),
        (int) core_config_int (self->config, "heartbeat_liveness"), self->log);
    if (!self->client || bus_client_attach (self->client, self->loop))
        return -1;
    bus_client_set_default_timeout (self->client,
                                    core_config_int (self->config, "request_timeout_ms"));
    if (self->def->state_new)
        self->state = self->def->state_new (self);
    return 0;
}

void
service_runtime_actor (zsock_t *pipe, void *args, const service_definition_t *def)
{
    service_runtime_t *self = calloc (1, sizeof (service_runtime_t));
    assert (self);
    self->def = def;
    self->pipe = pipe;
    self->config = (core_config_t *) args;
    self->log = core_log_new (def->name, core_config_str (self->config, "log_level"));
    self->loop = zloop_new ();
    self->pings = zlistx_new ();
    self->started = bus_proto_now ();
    zloop_reader (self->loop, pipe, s_on_pipe, self);
    zloop_timer (self->loop, 50, 0, s_on_timer, self);

    //  zactor_new waits for the signal; the outcome follows as a reply
    zsock_signal (pipe, 0);
    if (s_start (self) == 0) {
        core_log_info (self->log, NULL, "%s ready as %s", def->name,
                       bus_worker_replica (self->worker));
        zsock_send (pipe, "i", 0);
        //  Signals are the owner's business: only $TERM ends the loop
        zloop_set_nonstop (self->loop, true);
        zloop_start (self->loop);
    }
    else {
        zsock_send (pipe, "i", -1);
        //  Wait for $TERM so zactor_destroy does not block
        char *command = zstr_recv (pipe);
        zstr_free (&command);
    }
    while (zlistx_size (self->pings)) {
        s_ping_t *ping = (s_ping_t *) zlistx_first (self->pings);
        if (ping->request)
            bus_worker_error (self->worker, &ping->request, BUS_ERR_SHUTTING_DOWN,
                              "the service is stopping");
        s_ping_end (self, ping);
    }
    zlistx_destroy (&self->pings);
    //  The pool first: its pending queries fail into handlers that are still there
    //  (events waiting for their transaction fail first, and none is retried)
    service_events_stop (self->events);
    db_pool_destroy (&self->db);
    service_events_destroy (&self->events);
    //  The service's state last: its own pending work (threads, timers) fails into
    //  handlers that may still answer through the worker
    if (self->def->state_destroy && self->state)
        self->def->state_destroy (&self->state);
    bus_client_destroy (&self->client);
    bus_worker_destroy (&self->worker);
    redis_client_destroy (&self->redis);
    zloop_destroy (&self->loop);
    core_log_destroy (&self->log);
    free (self);
    //  Free this thread's OpenSSL state (libpq, libcurl and libjwt use it) now:
    //  czmq's actor threads are detached, so the thread-exit destructor could run
    //  after the process ended and LeakSanitizer would count it as a leak
    OPENSSL_thread_stop ();
}
