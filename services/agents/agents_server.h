/*  agents_server: the agents service actor. The agents service owns agent configurations, provider settings and agent turns
    (DESIGN.md, "Services"). Run by services/agents/main.c and by chorusd.            */
#ifndef AGENTS_SERVER_H_INCLUDED
#define AGENTS_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void agents_server_actor (zsock_t *pipe, void *args);

#endif
