/*  channels_server: the channels service actor (schemas/channels.md): channel
    connections with their sealed credentials, the webhooks the edge passes
    through raw, the durable inbox. chorus-channels and chorusd run it.       */
#ifndef CHANNELS_SERVER_H_INCLUDED
#define CHANNELS_SERVER_H_INCLUDED

#include <czmq.h>

#include "core_config.h"

//  The channels service's own options (beside the ones every service has).
extern const core_config_option_t channels_server_options[];
extern const size_t channels_server_option_count;

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void channels_server_actor (zsock_t *pipe, void *args);

#endif
