/*  integrations_server: the integrations service on the shared runtime. The runtime answers
    ping, health and events.replay; the integrations commands arrive with later work.      */
#include "integrations_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "integrations",
    .schema = "integrations",
    .uses_redis = true,
};

void
integrations_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
