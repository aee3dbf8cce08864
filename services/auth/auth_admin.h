/*  auth_admin: the auth commands that manage a tenant and the platform
    (schemas/auth.md): invites, members, tenants, API keys, the audit log, and the
    two commands only the edge calls (api_keys.verify, revocations.list). Every
    query is scoped by the tenant of the request's headers, so an id of another
    tenant is "not_found" exactly like an id that does not exist.            */
#ifndef AUTH_ADMIN_H_INCLUDED
#define AUTH_ADMIN_H_INCLUDED

#include "auth_call.h"

void auth_admin_invites_list (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void auth_admin_invites_create (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_invites_delete (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_invites_accept (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_members_list (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void auth_admin_members_get (service_runtime_t *runtime, bus_request_t *request,
                             void *state);
void auth_admin_members_update (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_members_delete (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_tenants_list (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void auth_admin_tenants_create (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_tenants_get (service_runtime_t *runtime, bus_request_t *request,
                             void *state);
void auth_admin_tenants_update (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_tenants_delete (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void auth_admin_api_keys_list (service_runtime_t *runtime, bus_request_t *request,
                               void *state);
void auth_admin_api_keys_create (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
void auth_admin_api_keys_delete (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
void auth_admin_api_keys_verify (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
void auth_admin_audit_list (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void auth_admin_revocations_list (service_runtime_t *runtime, bus_request_t *request,
                                  void *state);

#endif
