/*  chorus-broker: the bus broker as a process. Binds each endpoint of
    CHORUS_BROKER_BIND (requests; a tcp one's events on the two ports after it, an
    ipc one's at its path with -events-in and -events-out), runs until SIGTERM.   */
#include "bus_broker.h"
#include "core_config.h"
#include "core_process.h"

static const core_config_option_t s_options[] = {
    {"bind", "CHORUS_BROKER_BIND", CORE_CONFIG_STRING, 0, 0, "tcp://127.0.0.1:7100",
     "Broker request endpoints to bind, comma-separated (tcp: events use the next two "
     "ports; ipc: the path with -events-in and -events-out)"},
    {"broker_id", "CHORUS_BROKER_ID", CORE_CONFIG_STRING, 0, 0, "",
     "Broker id in status and logs (empty: host:pid)"},
    {"queue_max", "CHORUS_BROKER_QUEUE_MAX", CORE_CONFIG_INT, 1, 10000000, "10000",
     "Requests waiting per service before new ones are refused as overloaded"},
};

int
main (int argc, char **argv)
{
    size_t count = sizeof s_options / sizeof s_options[0];
    if (core_config_handle_args (argc, argv, "chorus-broker", s_options, count))
        return 0;
    char *error = NULL;
    core_config_t *config = core_config_new (s_options, count, &error);
    if (!config) {
        fprintf (stderr, "chorus-broker: %s\n", error);
        free (error);
        return 2;
    }
    core_process_tune ();
    zsys_init ();
    const char *id = core_config_str (config, "broker_id");
    bus_broker_config_t broker_config = {
        .id = *id ? id : NULL,
        .log_level = core_config_str (config, "log_level"),
        .heartbeat_ms = (int) core_config_int (config, "heartbeat_ms"),
        .liveness = (int) core_config_int (config, "heartbeat_liveness"),
        .queue_max = (uint32_t) core_config_int (config, "queue_max"),
        .hwm = (int) core_config_int (config, "hwm"),
        .max_message = core_config_int (config, "max_message"),
    };
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    //  Each endpoint of the list (the same sockets bound to all: the services on
    //  this host may come over ipc, others over tcp)
    int rc = bus_broker_bind_all (broker, core_config_str (config, "bind")) ? 1 : 0;
    if (rc)
        fprintf (stderr, "chorus-broker: cannot bind CHORUS_BROKER_BIND '%s'\n",
                 core_config_str (config, "bind"));
    while (rc == 0 && !zsys_interrupted)
        zclock_sleep (200);
    zactor_destroy (&broker);
    core_config_destroy (&config);
    return rc;
}
