/*  agents_server: the agents service actor (schemas/chat.md): agent
    configurations, the tenants' provider settings, and agent turns through
    libs/llm. chorus-agents and chorusd run it.                               */
#ifndef AGENTS_SERVER_H_INCLUDED
#define AGENTS_SERVER_H_INCLUDED

#include <czmq.h>

#include "core_config.h"

//  The agents service's own options (beside the ones every service has).
extern const core_config_option_t agents_server_options[];
extern const size_t agents_server_option_count;

//  The actor; args is the process's core_config_t * (borrowed).
void agents_server_actor (zsock_t *pipe, void *args);

#endif
