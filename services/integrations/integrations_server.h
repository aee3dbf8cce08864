/*  integrations_server: the integrations service actor. The integrations service owns the provider catalog, OAuth connections and action runs
    (DESIGN.md, "Services"). Run by services/integrations/main.c and by chorusd.            */
#ifndef INTEGRATIONS_SERVER_H_INCLUDED
#define INTEGRATIONS_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void integrations_server_actor (zsock_t *pipe, void *args);

#endif
