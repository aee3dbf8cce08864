/*  channels_server: the channels service on the shared runtime. The runtime answers
    ping, health and events.replay; the channels commands arrive with later work.      */
#include "channels_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "channels",
    .schema = "channels",
    .uses_redis = true,
};

void
channels_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
