/*  service_main: the process around a service actor, shared by every
    services/<name>/main.c. Reads the configuration from the environment (a bad
    value stops the process naming the variable), handles --help,
    --config-markdown and --probe (exit 0 when the service answers "health" with
    status ok over the bus: the Kubernetes exec probe), starts the actor, waits
    for SIGTERM/SIGINT, drains in-flight requests, and exits 0.               */
#ifndef SERVICE_MAIN_H_INCLUDED
#define SERVICE_MAIN_H_INCLUDED

#include <czmq.h>

#include "core_config.h"

//  Options every service process has beyond core_config_common.
extern const core_config_option_t service_main_options[];
extern const size_t service_main_option_count;

//  Run a service process; returns the exit code.
int service_main (int argc, char **argv, const char *name, zactor_fn *actor);

//  The same for a service with options of its own (own_count entries of own,
//  read after the shared ones; the table must outlive the process's actor).
int service_main_ex (int argc, char **argv, const char *name, zactor_fn *actor,
                     const core_config_option_t *own, size_t own_count);

//  Ask a service for its health over the bus; 0 when it answers "ok".
int service_main_probe (core_config_t *config, const char *name, int timeout_ms);

//  Wait for the actor's start-up reply; 0 when it started.
int service_main_started (zactor_t *actor);

//  Drain an actor (DRAIN, wait for the answer within timeout_ms); 0 when drained.
int service_main_drain (zactor_t *actor, int timeout_ms);

#endif
