/*  edge_ready: background readiness checks over the bus and Redis.              */
#include "edge_ready.h"

#include <assert.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "edge_context.h"
#include "edge_routes.h"
#include "redis_client.h"

#define S_MAX_SERVICES 64  //  services kept from a broker status

typedef struct {
    edge_ready_t *ready;  //  owner
    char name[64];        //  service name
    uint64_t handle;      //  health request in flight (0: none)
    int64_t answered_us;  //  last health answer
    bool database;        //  its database flag
} s_health_t;

struct _edge_ready_t {
    bus_client_t *bus;                      //  bus client (borrowed)
    core_log_t *log;                        //  logger (borrowed)
    redis_client_t *redis;                  //  our Redis connection, or NULL
    bool redis_pending;                     //  a PING is in flight
    int64_t redis_ok_us;                    //  last PONG
    int64_t stale_us;                       //  answers older than this are stale
    uint64_t status_handle;                 //  broker status in flight (0: none)
    int64_t status_ok_us;                   //  last broker status answer
    char *names[S_MAX_SERVICES];            //  services in the last status
    const char *name_view[S_MAX_SERVICES];  //  the same, const, for the gauges
    uint32_t replicas[S_MAX_SERVICES];      //  their live replicas
    size_t services;                        //  entries used
    s_health_t *health;                     //  one per known service name
    size_t health_count;                    //  entries
};

edge_ready_t *
edge_ready_new (bus_client_t *bus, core_log_t *log, const char *redis_url,
                int interval_ms)
{
    edge_ready_t *self = calloc (1, sizeof *self);
    assert (self);
    self->bus = bus;
    self->log = log;
    self->stale_us = 3LL * interval_ms * 1000;
    if (redis_url && *redis_url)
        self->redis = redis_client_new (redis_url, log);
    size_t count = 0;
    const char *const *names = edge_table_services (&count);
    self->health = calloc (count, sizeof *self->health);
    assert (self->health);
    self->health_count = count;
    for (size_t i = 0; i < count; i++) {
        self->health[i].ready = self;
        snprintf (self->health[i].name, sizeof self->health[i].name, "%s", names[i]);
    }
    return self;
}

void
edge_ready_cancel (edge_ready_t *self)
{
    if (self->status_handle)
        bus_client_cancel (self->bus, self->status_handle);
    self->status_handle = 0;
    for (size_t i = 0; i < self->health_count; i++) {
        if (self->health[i].handle)
            bus_client_cancel (self->bus, self->health[i].handle);
        self->health[i].handle = 0;
    }
}

void
edge_ready_destroy (edge_ready_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_ready_t *self = *self_p;
    edge_ready_cancel (self);
    redis_client_destroy (&self->redis);
    for (size_t i = 0; i < self->services; i++)
        free (self->names[i]);
    free (self->health);
    free (self);
    *self_p = NULL;
}

//  Decode a reply body into JSON (NULL when it is not a map).
static json_t *
s_reply_json (const bus_reply_t *reply)
{
    if (!reply->body)
        return NULL;
    char *text = codec_msgpack_to_json (reply->body, reply->size, 0);
    json_t *json = text ? json_loads (text, 0, NULL) : NULL;
    free (text);
    if (json && !json_is_object (json)) {
        json_decref (json);
        json = NULL;
    }
    return json;
}

static uint32_t s_replicas (edge_ready_t *self, const char *name);
static void s_poll_health (edge_ready_t *self);

static void
s_status_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    edge_ready_t *self = (edge_ready_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    self->status_handle = 0;
    json_t *status = reply->kind == BUS_REPLY_FINAL ? s_reply_json (reply) : NULL;
    if (!status) {
        core_log_debug (self->log, NULL, "broker status failed: %s",
                        reply->code ? reply->code : "bad reply");
        return;
    }
    self->status_ok_us = edge_now_us ();
    for (size_t i = 0; i < self->services; i++)
        free (self->names[i]);
    self->services = 0;
    size_t index;
    json_t *info;
    json_array_foreach (json_object_get (status, "services"), index, info)
    {
        const char *name = json_string_value (json_object_get (info, "name"));
        if (!name || self->services == S_MAX_SERVICES)
            continue;
        self->names[self->services] = strdup (name);
        self->name_view[self->services] = self->names[self->services];
        self->replicas[self->services] = (uint32_t) json_integer_value (
            json_object_get (info, "replicas"));
        self->services++;
    }
    json_decref (status);
    //  A service seen for the first time is asked at once, not a round later. The
    //  requests leave with the caller's next bus_client_process.
    s_poll_health (self);
}

static void
s_health_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_health_t *health = (s_health_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    health->handle = 0;
    json_t *answer = reply->kind == BUS_REPLY_FINAL ? s_reply_json (reply) : NULL;
    if (!answer)
        return;
    health->answered_us = edge_now_us ();
    health->database = json_is_true (json_object_get (answer, "database"));
    json_decref (answer);
}

static void
s_redis_fn (redisReply *reply, const char *error, void *arg)
{
    edge_ready_t *self = (edge_ready_t *) arg;
    self->redis_pending = false;
    if (!error && reply && reply->type == REDIS_REPLY_STATUS && reply->str
        && strcmp (reply->str, "PONG") == 0)
        self->redis_ok_us = edge_now_us ();
}

//  Live replicas of a service in the last status.
static uint32_t
s_replicas (edge_ready_t *self, const char *name)
{
    for (size_t i = 0; i < self->services; i++)
        if (strcmp (self->names[i], name) == 0)
            return self->replicas[i];
    return 0;
}

//  Ask every live service without a health question in flight.
static void
s_poll_health (edge_ready_t *self)
{
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "edge-readiness";
    headers.timeout_ms = self->stale_us / 3000;
    for (size_t i = 0; i < self->health_count; i++) {
        s_health_t *health = &self->health[i];
        if (!health->handle && s_replicas (self, health->name) > 0)
            health->handle = bus_client_request (self->bus, health->name, "health",
                                                 &headers, NULL, 0, s_health_fn, health);
    }
}

bool
edge_ready_poll (edge_ready_t *self)
{
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "edge-readiness";
    headers.timeout_ms = self->stale_us / 3000;
    if (!self->status_handle)
        self->status_handle = bus_client_request (self->bus, "broker", "status", &headers,
                                                  NULL, 0, s_status_fn, self);
    s_poll_health (self);
    bus_client_process (self->bus);
    if (self->redis && !self->redis_pending
        && redis_client_command (self->redis, s_redis_fn, self, "PING") == 0)
        self->redis_pending = true;
    edge_ready_tick (self);
    return self->status_handle != 0;
}

void
edge_ready_tick (edge_ready_t *self)
{
    if (!self->redis)
        return;
    struct pollfd pfd[1] = {{.fd = -1}};
    if (redis_client_pollfd (self->redis, &pfd[0]) && poll (pfd, 1, 0) > 0) {
        short revents = pfd[0].revents;
        redis_client_handle (self->redis, revents);
    }
    redis_client_tick (self->redis);
}

bool
edge_ready_database (size_t count, const bool *live, const bool *fresh,
                     const bool *database)
{
    size_t live_count = 0;
    for (size_t i = 0; i < count; i++) {
        if (!live[i])
            continue;
        live_count++;
        if (!fresh[i] || !database[i])
            return false;
    }
    return live_count > 0;
}

bool
edge_ready_checks (edge_ready_t *self, bool *broker, bool *database, bool *redis)
{
    int64_t now = edge_now_us ();
    *broker = bus_client_brokers_alive (self->bus) > 0 && self->status_ok_us
              && now - self->status_ok_us <= self->stale_us;
    bool live[S_MAX_SERVICES], fresh[S_MAX_SERVICES], db[S_MAX_SERVICES];
    size_t count = self->health_count < S_MAX_SERVICES ? self->health_count
                                                       : S_MAX_SERVICES;
    for (size_t i = 0; i < count; i++) {
        s_health_t *health = &self->health[i];
        live[i] = s_replicas (self, health->name) > 0;
        fresh[i] = health->answered_us && now - health->answered_us <= self->stale_us;
        db[i] = health->database;
    }
    *database = *broker && edge_ready_database (count, live, fresh, db);
    *redis = !self->redis
             || (self->redis_ok_us && now - self->redis_ok_us <= self->stale_us);
    return *broker && *database && *redis;
}

size_t
edge_ready_replicas (edge_ready_t *self, const char *const **names,
                     const uint32_t **replicas)
{
    *names = self->name_view;
    *replicas = self->replicas;
    return self->services;
}

void
edge_ready_test (bool verbose)
{
    printf (" * edge_ready: ");
    bool live[] = {true, false, true}, fresh[] = {true, false, true},
         db[] = {true, false, true};
    assert (edge_ready_database (3, live, fresh, db));
    db[2] = false;
    assert (!edge_ready_database (3, live, fresh, db));
    db[2] = true;
    fresh[0] = false;
    assert (!edge_ready_database (3, live, fresh, db));
    bool none[] = {false, false, false};
    assert (!edge_ready_database (3, none, fresh, db));
    printf ("OK\n");
}
