/*  auth_sessions: the commands of identity itself (schemas/auth.md): register,
    login, refresh, logout, me, switch. Each handler takes the request and ends
    it through auth_call.                                                      */
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

//  Seconds past an access token's expiry that a revocation row is kept (leeway).
#define AUTH_REVOCATION_MARGIN 60

//  Statement adding a revocation row; params: kind, ref, tenant, lifetime seconds.
db_stmt_t auth_sessions_revocation_stmt (const char *const *params);

//  The last step of every command that hands out tokens: reads the user and
//  tenant, issues the access token, answers a TokenReply and frees the call.
void auth_sessions_answer (auth_call_t *call, PGresult *result);

#endif
