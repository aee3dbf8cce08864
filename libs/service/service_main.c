/*  service_main: process wrapper for service actors (see service_main.h).        */
#include "service_main.h"

#include <assert.h>

#include "bus_client.h"
#include "codec_msgpack.h"
#include "core_process.h"

#ifndef CHORUS_SQL_DIR
#define CHORUS_SQL_DIR "/usr/share/chorus/sql"
#endif

const core_config_option_t service_main_options[] = {
    {"credit", "CHORUS_CREDIT", CORE_CONFIG_INT, 1, 100000, "64",
     "Requests one service replica holds at once (its credit at the broker)"},
    {"drain_timeout_ms", "CHORUS_DRAIN_TIMEOUT_MS", CORE_CONFIG_INT, 0, 600000, "10000",
     "On SIGTERM, how long in-flight requests may take to finish"},
    {"sql_dir", "CHORUS_SQL_DIR", CORE_CONFIG_STRING, 0, 0, CHORUS_SQL_DIR,
     "Root of the numbered SQL migrations (one folder per service)"},
    {"database_wait_ms", "CHORUS_DATABASE_WAIT_MS", CORE_CONFIG_INT, 0, 600000, "30000",
     "At start, how long to retry an unreachable PostgreSQL before giving up"},
};
const size_t service_main_option_count = sizeof service_main_options
                                         / sizeof service_main_options[0];

typedef struct {
    int done;     //  1 when answered
    int healthy;  //  1 when status ok
} s_probe_t;

static void
s_on_health (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_probe_t *probe = (s_probe_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    probe->done = 1;
    if (reply->kind != BUS_REPLY_FINAL)
        return;
    ChorusBus__HealthReply *health = (ChorusBus__HealthReply *) codec_decode (
        &chorus_bus__health_reply__descriptor, reply->body, reply->size, NULL, 0);
    if (health) {
        probe->healthy = health->status && streq (health->status, "ok");
        protobuf_c_message_free_unpacked (&health->base, NULL);
    }
}

int
service_main_probe (core_config_t *config, const char *name, int timeout_ms)
{
    bus_client_t *client = bus_client_new (core_config_str (config, "brokers"), 100, 3,
                                           NULL);
    if (!client)
        return 1;
    s_probe_t probe = {0};
    int64_t end = zclock_mono () + timeout_ms;
    zsock_t *sockets[32];
    size_t count = bus_client_sockets (client, sockets, 32);
    zpoller_t *poller = zpoller_new (NULL);
    for (size_t i = 0; i < count; i++)
        zpoller_add (poller, sockets[i]);
    bool sent = false;
    while (!probe.done && zclock_mono () < end) {
        if (!sent && bus_client_brokers_alive (client)) {
            ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
            headers.request_id = "probe";
            headers.timeout_ms = timeout_ms;
            sent = bus_client_request (client, name, "health", &headers, NULL, 0,
                                       s_on_health, &probe)
                   != 0;
        }
        zpoller_wait (poller, 20);
        bus_client_process (client);
        bus_client_tick (client);
    }
    zpoller_destroy (&poller);
    bus_client_destroy (&client);
    return probe.healthy ? 0 : 1;
}

int
service_main_started (zactor_t *actor)
{
    int status = -1;
    if (zsock_recv (actor, "i", &status) == -1)
        return -1;
    return status;
}

int
service_main_drain (zactor_t *actor, int timeout_ms)
{
    zstr_send (actor, "DRAIN");
    zpoller_t *poller = zpoller_new (actor, NULL);
    //  We drain because a signal came: the poller must not give up because of it
    zpoller_set_nonstop (poller, true);
    int status = -1;
    if (zpoller_wait (poller, timeout_ms + 1000) == actor)
        zsock_recv (actor, "i", &status);
    zpoller_destroy (&poller);
    return status;
}

int
service_main (int argc, char **argv, const char *name, zactor_fn *actor_fn)
{
    return service_main_ex (argc, argv, name, actor_fn, NULL, 0);
}

int
service_main_ex (int argc, char **argv, const char *name, zactor_fn *actor_fn,
                 const core_config_option_t *own, size_t own_count)
{
    char program[64];
    snprintf (program, sizeof program, "chorus-%s", name);
    //  One table: the options of every service, then the service's own
    size_t count = service_main_option_count + own_count;
    core_config_option_t *table = calloc (count, sizeof *table);
    assert (table);
    memcpy (table, service_main_options, service_main_option_count * sizeof *table);
    if (own_count)
        memcpy (table + service_main_option_count, own, own_count * sizeof *table);
    if (core_config_handle_args (argc, argv, program, table, count)) {
        free (table);
        return 0;
    }
    core_process_tune ();
    char *error = NULL;
    core_config_t *config = core_config_new (table, count, &error);
    if (!config) {
        fprintf (stderr, "%s: %s\n", program, error);
        free (error);
        free (table);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (streq (argv[i], "--probe")) {
            int rc = service_main_probe (config, name, 3000);
            core_config_destroy (&config);
            free (table);
            return rc;
        }
    zsys_init ();
    zactor_t *actor = zactor_new (actor_fn, config);
    int rc = service_main_started (actor);
    if (rc == 0) {
        zpoller_t *poller = zpoller_new (actor, NULL);
        while (!zsys_interrupted) {
            if (zpoller_wait (poller, 500) == actor) {
                //  The actor never talks unasked: it ended on its own
                rc = 1;
                break;
            }
        }
        zpoller_destroy (&poller);
        if (rc == 0)
            service_main_drain (actor,
                                (int) core_config_int (config, "drain_timeout_ms"));
    }
    zactor_destroy (&actor);
    core_config_destroy (&config);
    free (table);
    return rc == 0 ? 0 : 1;
}
