/*  auth_passwords: the password commands of the auth service (schemas/auth.md):
    change (the current password, then every other session ends), forgot (a
    single-use token by mail, the same answer for unknown emails) and reset.    */
#ifndef AUTH_PASSWORDS_H_INCLUDED
#define AUTH_PASSWORDS_H_INCLUDED

#include "auth_call.h"

void auth_passwords_change (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void auth_passwords_forgot (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void auth_passwords_reset (service_runtime_t *runtime, bus_request_t *request,
                           void *state);

#endif
