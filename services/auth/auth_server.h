/*  auth_server: the auth service actor (schemas/auth.md): tenants, users,
    memberships, sessions, invites, API keys, the audit log and the revocation
    feed, on the shared service runtime. chorus-auth and chorusd run it.       */
#ifndef AUTH_SERVER_H_INCLUDED
#define AUTH_SERVER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "core_config.h"

//  The auth service's own options (beside the ones every service has).
extern const core_config_option_t auth_server_options[];
extern const size_t auth_server_option_count;

//  The actor; args is the process's core_config_t * (borrowed).
void auth_server_actor (zsock_t *pipe, void *args);

#endif
