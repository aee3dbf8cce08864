/*  auth_sessions: the commands of identity itself (schemas/auth.md): register,
    login, refresh, logout, me, switch, and the password commands. Each handler
    takes the request and ends it through auth_call.                          */
#ifndef AUTH_SESSIONS_H_INCLUDED
#define AUTH_SESSIONS_H_INCLUDED

#include "auth_call.h"

void auth_sessions_register (service_runtime_t *runtime, bus_request_t *request,
                             void *state);
void auth_sessions_login (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void auth_sessions_refresh (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void auth_sessions_logout (service_runtime_t *runtime, bus_request_t *request,
                           void *state);
void auth_sessions_me (service_runtime_t *runtime, bus_request_t *request, void *state);
void auth_sessions_switch (service_runtime_t *runtime, bus_request_t *request,
                           void *state);
void auth_sessions_password_change (service_runtime_t *runtime, bus_request_t *request,
                                    void *state);
void auth_sessions_password_forgot (service_runtime_t *runtime, bus_request_t *request,
                                    void *state);
void auth_sessions_password_reset (service_runtime_t *runtime, bus_request_t *request,
                                   void *state);

//  Statements that open a new session (call->session_id, a fresh refresh token in
//  call->token) for call->user_id in call->tenant_id; the storage lives in the
//  struct until the statements are submitted.
typedef struct {
    char token_hash[65];     //  the refresh token's storage hash
    char ttl[24];            //  its lifetime in seconds, as text
    const char *session[3];  //  parameters of the session insert
    const char *refresh[3];  //  parameters of the token insert
    db_stmt_t stmts[2];      //  the two statements
} auth_session_stmts_t;

void auth_sessions_prepare (auth_call_t *call, auth_session_stmts_t *out);

//  The last step of every command that hands out tokens: reads the user and
//  tenant, issues the access token, answers a TokenReply and frees the call.
void auth_sessions_answer (auth_call_t *call, PGresult *result);

#endif
