/*  chorus-edge: the HTTP/SSE/WebSocket front door of Chorus as its own process.
    Reads the configuration (CHORUS_EDGE_*, CHORUS_BROKERS, ...), starts the edge
    actor, waits for SIGINT/SIGTERM, then lets the actor drain and stop.
    `chorus-edge --openapi` prints the OpenAPI document (schemas/openapi.json).   */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "core_config.h"
#include "core_log.h"
#include "core_process.h"
#include "edge_openapi.h"
#include "edge_server.h"

int
main (int argc, char **argv)
{
    if (core_config_handle_args (argc, argv, "chorus-edge", edge_server_options,
                                 edge_server_option_count))
        return 0;
    if (argc > 1 && strcmp (argv[1], "--openapi") == 0) {
        char *text = edge_openapi_text ();
        printf ("%s\n", text);
        free (text);
        return 0;
    }
    char *error = NULL;
    core_config_t *config = core_config_new (edge_server_options,
                                             edge_server_option_count, &error);
    if (!config) {
        fprintf (stderr, "chorus-edge: %s\n", error);
        free (error);
        return 1;
    }
    core_process_tune ();
    if (edge_server_fit_fd_limit ((int) core_config_int (config, "edge_max_connections"))
        < 0)
        fprintf (stderr, "chorus-edge: cannot set the open-file limit\n");
    zsys_init ();  //  installs the SIGINT/SIGTERM handler (zsys_interrupted)
    core_log_t *log = core_log_new ("edge", core_config_str (config, "log_level"));
    zactor_t *edge = zactor_new (edge_server_actor, config);
    core_config_destroy (&config);
    zstr_send (edge, "PORT");
    int port = -1;
    if (zsock_recv (edge, "i", &port) != 0 || port < 0) {
        core_log_error (log, NULL, "the edge could not start");
        zactor_destroy (&edge);
        core_log_destroy (&log);
        return 1;
    }
    while (!zsys_interrupted) {
        char *message = zstr_recv (edge);  //  nothing is sent: returns on a signal
        if (!message)
            break;
        free (message);
    }
    core_log_info (log, NULL, "stopping: finishing requests in flight");
    zactor_destroy (&edge);
    core_log_info (log, NULL, "stopped");
    core_log_destroy (&log);
    return 0;
}
