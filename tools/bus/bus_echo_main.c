/*  chorus-bus-echo: the echo service (bus_echo) as a process, a real replica for
    tests, benchmarks and people trying the bus. Serves CHORUS_ECHO_SERVICE through
    every broker in CHORUS_BROKERS; on SIGTERM or SIGINT it drains (stops taking
    work, finishes what it holds, bounded by CHORUS_ECHO_DRAIN_MS) and exits 0.    */
#include <assert.h>

#include "bus_echo.h"
#include "core_config.h"
#include "core_log.h"

static const core_config_option_t s_options[] = {
    {"service", "CHORUS_ECHO_SERVICE", CORE_CONFIG_STRING, 0, 0, "echo",
     "Service name the echo replica serves"},
    {"credit", "CHORUS_ECHO_CREDIT", CORE_CONFIG_INT, 1, 100000, "16",
     "Requests the echo replica holds at once"},
    {"replica", "CHORUS_ECHO_REPLICA", CORE_CONFIG_STRING, 0, 0, "",
     "Replica id in status and replies (empty: host:pid)"},
    {"drain_ms", "CHORUS_ECHO_DRAIN_MS", CORE_CONFIG_INT, 0, 600000, "5000",
     "Longest wait for requests in flight to end after SIGTERM"},
};

//  Ask the actor to drain and wait up to timeout_ms for its answer; true if drained.
static bool
s_drain (zactor_t *echo, int timeout_ms)
{
    zstr_send (echo, "DRAIN");
    zpoller_t *poller = zpoller_new (echo, NULL);
    assert (poller);
    zpoller_set_nonstop (poller, true);  //  we are here because of a signal
    bool drained = false;
    int64_t end = zclock_mono () + timeout_ms;
    while (!drained) {
        int64_t left = end - zclock_mono ();
        if (left <= 0)
            break;
        if (zpoller_wait (poller, (int) left) == echo) {
            int rc = -1;
            zsock_recv (echo, "i", &rc);
            drained = rc == 0;
        }
    }
    zpoller_destroy (&poller);
    return drained;
}

int
main (int argc, char **argv)
{
    size_t count = sizeof s_options / sizeof s_options[0];
    if (core_config_handle_args (argc, argv, "chorus-bus-echo", s_options, count))
        return 0;
    char *error = NULL;
    core_config_t *config = core_config_new (s_options, count, &error);
    if (!config) {
        fprintf (stderr, "chorus-bus-echo: %s\n", error);
        free (error);
        return 2;
    }
    zsys_init ();  //  catches SIGINT and SIGTERM into zsys_interrupted
    const char *service = core_config_str (config, "service");
    const char *replica = core_config_str (config, "replica");
    core_log_t *log = core_log_new (service, core_config_str (config, "log_level"));
    bus_echo_config_t echo_config = {
        .brokers = core_config_str (config, "brokers"),
        .service = service,
        .credit = (uint32_t) core_config_int (config, "credit"),
        .replica = *replica ? replica : NULL,
        .heartbeat_ms = (int) core_config_int (config, "heartbeat_ms"),
        .liveness = (int) core_config_int (config, "heartbeat_liveness"),
        .log_level = core_config_str (config, "log_level"),
    };
    zactor_t *echo = zactor_new (bus_echo_actor, &echo_config);
    assert (echo);
    core_log_info (log, NULL, "echo service '%s' serving through %s", service,
                   echo_config.brokers);
    while (!zsys_interrupted)
        zclock_sleep (100);
    int drain_ms = (int) core_config_int (config, "drain_ms");
    if (s_drain (echo, drain_ms))
        core_log_info (log, NULL, "drained, exiting");
    else
        core_log_warn (log, NULL, "requests still in flight after %d ms, exiting",
                       drain_ms);
    zactor_destroy (&echo);
    core_log_destroy (&log);
    core_config_destroy (&config);
    return 0;
}
