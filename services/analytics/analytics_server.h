/*  analytics_server: the analytics service actor. The analytics service owns event-derived rollups of messages, latency, tokens and cost
    (DESIGN.md, "Services"). Run by services/analytics/main.c and by chorusd.            */
#ifndef ANALYTICS_SERVER_H_INCLUDED
#define ANALYTICS_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void analytics_server_actor (zsock_t *pipe, void *args);

#endif
