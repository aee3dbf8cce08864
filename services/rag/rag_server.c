/*  rag_server: the rag service on the shared runtime. The runtime answers
    ping, health and events.replay; the rag commands arrive with later work.      */
#include "rag_server.h"

#include "service_runtime.h"

static const service_definition_t s_definition = {
    .name = "rag",
    .schema = "rag",
    .uses_redis = false,
};

void
rag_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
