/*  workflows_server: the workflows service actor. The workflows service owns workflow definitions, triggers and executions
    (DESIGN.md, "Services"). Run by services/workflows/main.c and by chorusd.            */
#ifndef WORKFLOWS_SERVER_H_INCLUDED
#define WORKFLOWS_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void workflows_server_actor (zsock_t *pipe, void *args);

#endif
