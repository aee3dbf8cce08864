/*  channels_server: the channels service actor. The channels service owns channel connections, inbound dedupe and outbound delivery
    (DESIGN.md, "Services"). Run by services/channels/main.c and by chorusd.            */
#ifndef CHANNELS_SERVER_H_INCLUDED
#define CHANNELS_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void channels_server_actor (zsock_t *pipe, void *args);

#endif
