/*  agents_server: the agents service on the shared runtime. The runtime answers
    ping, health and events.replay; the agents commands arrive with later work.      */
#include "agents_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "agents",
    .schema = "agents",
    .uses_redis = false,
};

void
agents_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
