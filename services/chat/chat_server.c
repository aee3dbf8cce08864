/*  chat_server: the chat service on the shared runtime. The runtime answers
    ping, health and events.replay; the chat commands arrive with later work.      */
#include "chat_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "chat",
    .schema = "chat",
    .uses_redis = false,
};

void
chat_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
