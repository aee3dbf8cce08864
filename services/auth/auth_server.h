/*  auth_server: the auth service actor. The auth service owns tenants, users, memberships, invites, refresh-token families and API keys
    (DESIGN.md, "Services"). Run by services/auth/main.c and by chorusd.            */
#ifndef AUTH_SERVER_H_INCLUDED
#define AUTH_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void auth_server_actor (zsock_t *pipe, void *args);

#endif
