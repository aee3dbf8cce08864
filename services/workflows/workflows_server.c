/*  workflows_server: the workflows service on the shared runtime. The runtime answers
    ping, health and events.replay; the workflows commands arrive with later work.      */
#include "workflows_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "workflows",
    .schema = "workflows",
    .uses_redis = false,
};

void
workflows_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
