/*  analytics_server: the analytics service on the shared runtime. The runtime answers
    ping, health and events.replay; the analytics commands arrive with later work.      */
#include "analytics_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "analytics",
    .schema = "analytics",
    .uses_redis = false,
};

void
analytics_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
