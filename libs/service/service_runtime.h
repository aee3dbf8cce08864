/*  service_runtime: what every Chorus service shares. A service is a definition (its
    name, its PostgreSQL schema, whether it uses Redis, its command table); the
    runtime actor connects it to the bus as a replica, applies its migrations,
    opens its database pool and Redis client, answers the built-in commands ("ping",
    "health", "events.replay") and dispatches the rest to the service's handlers.
    It drains on request: no new work, in-flight requests finish, then it leaves.

    services/<name>/<name>_server.c declares the definition and its actor:

        void auth_server_actor (zsock_t *pipe, void *args)
        {   service_runtime_actor (pipe, args, &s_definition);   }

    After zactor_new the owner reads "i": 0 once ready, -1 when start-up failed.
    Pipe commands: "DRAIN" -> answers "i" 0 when drained (or -1 on timeout);
    "$TERM".          */
#ifndef SERVICE_RUNTIME_H_INCLUDED
#define SERVICE_RUNTIME_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "bus_client.h"
#include "bus_worker.h"
#include "core_config.h"
#include "core_log.h"
#include "db_pool.h"
#include "redis_client.h"
#include "service_events.h"

typedef struct _service_runtime_t service_runtime_t;

//  Handles one command. The handler owns the request and must end it (now or
//  later) with bus_worker_final/bus_worker_error on service_runtime_worker().
typedef void (service_handler_fn) (service_runtime_t *runtime, bus_request_t *request,
                                   void *state);

typedef struct {
    const char *command;     //  command name
    service_handler_fn *fn;  //  its handler
} service_command_t;

typedef struct {
    const char *name;                   //  service name on the bus
    const char *schema;                 //  PostgreSQL schema, NULL: no database
    bool uses_redis;                    //  opens a Redis client
    const service_command_t *commands;  //  the service's own commands
    size_t command_count;               //  how many
    //  Optional state made after start-up and destroyed before shutdown
    void *(*state_new) (service_runtime_t *runtime);
    void (*state_destroy) (void **state_p);
    //  Called when the client cancels or the deadline passes
    service_handler_fn *on_cancel;
} service_definition_t;

//  The actor body; args is the core_config_t * of the process (borrowed).
void service_runtime_actor (zsock_t *pipe, void *args, const service_definition_t *def);

//  Accessors for handlers.
bus_worker_t *service_runtime_worker (service_runtime_t *self);
core_log_t *service_runtime_log (service_runtime_t *self);
core_config_t *service_runtime_config (service_runtime_t *self);
zloop_t *service_runtime_loop (service_runtime_t *self);
db_pool_t *service_runtime_db (service_runtime_t *self);  //  NULL without one
//  A bus client in the service's loop, for requests to other services.
bus_client_t *service_runtime_client (service_runtime_t *self);
redis_client_t *service_runtime_redis (service_runtime_t *self);     //  NULL without one
service_events_t *service_runtime_events (service_runtime_t *self);  //  NULL without db
const char *service_runtime_name (service_runtime_t *self);


#endif
