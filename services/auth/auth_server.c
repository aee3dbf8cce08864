/*  auth_server: the auth service on the shared runtime. The runtime answers
    ping, health and events.replay; the auth commands arrive with later work.      */
#include "auth_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "auth",
    .schema = "auth",
    .uses_redis = true,
};

void
auth_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
