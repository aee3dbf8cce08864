/*  chorusd: the whole platform in one process for small installs and tests. The
    broker, the eight services and the edge run as actors that talk over
    inproc://; CHORUS_BROKER_BIND (when set) also opens the broker on its endpoints
    (tcp, ipc) so tools and other processes can join the same bus. SIGTERM drains
    every service.                                                                */
#include "agents_server.h"
#include "analytics_server.h"
#include "auth_server.h"
#include "bus_broker.h"
#include "channels_server.h"
#include "chat_server.h"
#include "edge_server.h"
#include "integrations_server.h"
#include "rag_server.h"
#include "service_main.h"
#include "workflows_server.h"

#define S_INPROC "inproc://chorus-broker"

static const core_config_option_t s_own[] = {
    {"broker_bind", "CHORUS_BROKER_BIND", CORE_CONFIG_STRING, 0, 0, "",
     "chorusd: also open the in-process broker on these endpoints, comma-separated "
     "(empty: no)"},
};

static struct {
    const char *name;
    zactor_fn *actor;
} s_services[] = {
    {"auth", auth_server_actor},
    {"chat", chat_server_actor},
    {"agents", agents_server_actor},
    {"rag", rag_server_actor},
    {"integrations", integrations_server_actor},
    {"workflows", workflows_server_actor},
    {"channels", channels_server_actor},
    {"analytics", analytics_server_actor},
};
#define S_SERVICES (sizeof s_services / sizeof s_services[0])

int
main (int argc, char **argv)
{
    //  One table: the edge's options, every service's, ours
    const struct {
        const core_config_option_t *options;  //  a program's table
        size_t count;                         //  its size
    } parts[] = {
        {edge_server_options, edge_server_option_count},
        {service_main_options, service_main_option_count},
        {auth_server_options, auth_server_option_count},
        {agents_server_options, agents_server_option_count},
        {channels_server_options, channels_server_option_count},
        {chat_server_options, chat_server_option_count},
        {s_own, sizeof s_own / sizeof s_own[0]},
    };
    size_t count = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        count += parts[i].count;
    core_config_option_t *table = calloc (count, sizeof *table);
    size_t at = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        memcpy (table + at, parts[i].options, parts[i].count * sizeof *table);
        at += parts[i].count;
    }
    int rc = 0;
    if (core_config_handle_args (argc, argv, "chorusd", table, count)) {
        free (table);
        return 0;
    }
    //  No core_process_tune: here every service's thread allocates, and two arenas
    //  shared by all of them cost chorusd 40% of its requests per second
    char *error = NULL;
    core_config_t *config = core_config_new (table, count, &error);
    if (!config || core_config_set (config, "brokers", S_INPROC, &error)) {
        fprintf (stderr, "chorusd: %s\n", error);
        free (error);
        free (table);
        return 2;
    }
    zsys_init ();
    bus_broker_config_t broker_config = {
        .id = "chorusd",
        .log_level = core_config_str (config, "log_level"),
        .heartbeat_ms = (int) core_config_int (config, "heartbeat_ms"),
        .liveness = (int) core_config_int (config, "heartbeat_liveness")};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    const char *also = core_config_str (config, "broker_bind");
    rc = bus_broker_bind_all (broker, S_INPROC)
         || (*also && bus_broker_bind_all (broker, also));
    zactor_t *actors[S_SERVICES] = {NULL};
    for (size_t i = 0; i < S_SERVICES && rc == 0; i++) {
        actors[i] = zactor_new (s_services[i].actor, config);
        rc = service_main_started (actors[i]) != 0;
    }
    zactor_t *edge = NULL;
    if (rc == 0) {
        edge = zactor_new (edge_server_actor, config);
        zstr_send (edge, "PORT");
        int port = -1;
        zsock_recv (edge, "i", &port);
        rc = port < 0;
    }
    while (rc == 0 && !zsys_interrupted)
        zclock_sleep (200);
    //  Stop taking requests at the edge first, then drain the services
    zactor_destroy (&edge);
    for (size_t i = 0; i < S_SERVICES; i++)
        if (actors[i] && rc == 0)
            service_main_drain (actors[i],
                                (int) core_config_int (config, "drain_timeout_ms"));
    for (size_t i = 0; i < S_SERVICES; i++)
        zactor_destroy (&actors[i]);
    zactor_destroy (&broker);
    core_config_destroy (&config);
    free (table);
    if (rc)
        fprintf (stderr, "chorusd: start-up failed (see the log lines above)\n");
    return rc;
}
