/*  auth_passwords: password.change, password.forgot, password.reset.         */
#include "auth_passwords.h"

#include <assert.h>

#include "auth_sessions.h"
#include "auth_token.h"

//  ---------------------------------------------------------------------------------
//  password.change

static void s_change_verified (auth_call_t *call, PGresult *result);
static void s_change_hashed (auth_call_t *call, PGresult *result);

static void
s_change_read (auth_call_t *call, PGresult *result)
{
    ChorusAuth__PasswordChangeRequest *args = (ChorusAuth__PasswordChangeRequest *)
                                                  call->base.args;
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "unauthorized", "the account no longer exists");
        return;
    }
    auth_call_verify (call, s_change_verified, PQgetvalue (result, 0, 0),
                      args->current_password);
}

static void
s_change_verified (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__PasswordChangeRequest *args = (ChorusAuth__PasswordChangeRequest *)
                                                  call->base.args;
    if (!call->matched) {
        auth_call_fail (call, "invalid_credentials", "the current password is wrong");
        return;
    }
    auth_call_hash (call, s_change_hashed, args->new_password);
}

//  Statements that store a new password for call->user_id and end every session
//  and access token of the user.
typedef struct {
    char until[24];             //  revocation lifetime, seconds as text
    const char *user[2];        //  user id, new hash
    const char *sessions[1];    //  user id
    const char *revocation[4];  //  kind, ref, tenant, until
    db_stmt_t stmts[3];         //  the statements
} s_password_stmts_t;

static void
s_password_stmts (auth_call_t *call, s_password_stmts_t *out, const char *reason)
{
    (void) reason;
    snprintf (out->until, sizeof out->until, "%lld",
              (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
    out->user[0] = call->user_id;
    out->user[1] = call->hash;
    out->sessions[0] = call->user_id;
    out->revocation[0] = "user";
    out->revocation[1] = call->user_id;
    out->revocation[2] = "";
    out->revocation[3] = out->until;
    out->stmts[0] = (db_stmt_t){"UPDATE auth.users SET password_hash = $2 WHERE id = $1",
                                2, out->user};
    out->stmts[1] = (db_stmt_t){
        "UPDATE auth.sessions SET revoked_at = clock_timestamp (), revoked_reason = "
        "'password' WHERE user_id = $1 AND revoked_at IS NULL",
        1, out->sessions};
    out->stmts[2] = auth_sessions_revocation_stmt (out->revocation);
}

static void
s_change_hashed (auth_call_t *call, PGresult *result)
{
    (void) result;
    s_password_stmts_t password;
    s_password_stmts (call, &password, "password");
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    db_stmt_t stmts[] = {password.stmts[0], password.stmts[1], password.stmts[2],
                         session.stmts[0], session.stmts[1]};
    auth_call_record (call, auth_sessions_answer, call->tenant_id, "password.changed",
                      call->user_id, call->user_id, NULL, stmts, 5);
}

void
auth_passwords_change (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__password_change_request__descriptor);
    if (!call)
        return;
    ChorusAuth__PasswordChangeRequest *args = (ChorusAuth__PasswordChangeRequest *)
                                                  call->base.args;
    if (!auth_uuid_valid (auth_call_user (call))
        || !auth_uuid_valid (auth_call_tenant (call))) {
        auth_call_fail (call, "unauthorized", "authentication is required");
        return;
    }
    if (!args->current_password || !*args->current_password) {
        auth_call_fail (call, "bad_request", "current_password is required");
        return;
    }
    const char *problem = auth_password_problem (args->new_password);
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", auth_call_tenant (call));
    const char *params[] = {call->user_id};
    auth_call_query (call, s_change_read,
                     "SELECT password_hash FROM auth.users WHERE id = $1", 1, params);
}

//  ---------------------------------------------------------------------------------
//  password.forgot

static void
s_forgot_accepted (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__StatusReply reply = CHORUS_AUTH__STATUS_REPLY__INIT;
    reply.status = "accepted";
    auth_call_reply (call, &reply.base);
}

static void
s_forgot_stored (auth_call_t *call, PGresult *result)
{
    char text[1024];
    snprintf (text, sizeof text,
              "Someone asked to reset the password of your Chorus account. Use this "
              "token within %lld minutes to choose a new password:\n\n%s\n\nIf it was "
              "not you, ignore this mail.",
              (long long) (call->state->reset_ttl_s / 60), call->token);
    auth_mail_send (call->state->mail, call->text, "Reset your Chorus password", text,
                    "password_reset", call->token);
    s_forgot_accepted (call, result);
}

static void
s_forgot_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        s_forgot_accepted (call, result);  //  the same answer: no enumeration
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", PQgetvalue (result, 0, 0));
    call->text = strdup (PQgetvalue (result, 0, 1));
    call->token = auth_token_generate ("");
    assert (call->text && call->token);
    char hash[65], ttl[24];
    int rc = auth_token_hash (call->token, hash, sizeof hash);
    assert (rc == 0);
    snprintf (ttl, sizeof ttl, "%lld", (long long) call->state->reset_ttl_s);
    const char *params[] = {hash, call->user_id, ttl};
    db_stmt_t stmts[] = {
        {"INSERT INTO auth.password_resets (token_hash, user_id, expires_at) VALUES ($1, "
         "$2, clock_timestamp () + make_interval (secs => $3::bigint))",
         3, params}};
    auth_call_tx (call, s_forgot_stored, stmts, 1);
}

void
auth_passwords_forgot (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__password_forgot_request__descriptor);
    if (!call)
        return;
    ChorusAuth__PasswordForgotRequest *args = (ChorusAuth__PasswordForgotRequest *)
                                                  call->base.args;
    const char *problem = auth_email_problem (args->email);
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    const char *params[] = {args->email};
    auth_call_query (call, s_forgot_read,
                     "SELECT id, email FROM auth.users WHERE email_key = lower ($1)", 1,
                     params);
}

//  ---------------------------------------------------------------------------------
//  password.reset

static void s_reset_hashed (auth_call_t *call, PGresult *result);

static void
s_reset_done (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__StatusReply reply = CHORUS_AUTH__STATUS_REPLY__INIT;
    reply.status = "password_reset";
    auth_call_reply (call, &reply.base);
}

static void
s_reset_read (auth_call_t *call, PGresult *result)
{
    ChorusAuth__PasswordResetRequest *args = (ChorusAuth__PasswordResetRequest *)
                                                 call->base.args;
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "invalid_token",
                        "the reset token is unknown, expired or used");
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", PQgetvalue (result, 0, 0));
    auth_call_hash (call, s_reset_hashed, args->new_password);
}

static void
s_reset_hashed (auth_call_t *call, PGresult *result)
{
    (void) result;
    s_password_stmts_t password;
    s_password_stmts (call, &password, "reset");
    const char *token[] = {call->text};
    db_stmt_t stmts[] = {
        {"WITH used AS (UPDATE auth.password_resets SET used_at = clock_timestamp () "
         "WHERE token_hash = $1 AND used_at IS NULL AND expires_at > clock_timestamp () "
         "RETURNING 1) SELECT auth.require (count (*) = 1, 'invalid_token') FROM used",
         1, token},
        password.stmts[0],
        password.stmts[1],
        password.stmts[2]};
    auth_call_record (call, s_reset_done, NULL, "password.reset", call->user_id,
                      call->user_id, NULL, stmts, 4);
}

void
auth_passwords_reset (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__password_reset_request__descriptor);
    if (!call)
        return;
    ChorusAuth__PasswordResetRequest *args = (ChorusAuth__PasswordResetRequest *)
                                                 call->base.args;
    char hash[65];
    if (!args->token || !*args->token) {
        auth_call_fail (call, "bad_request", "token is required");
        return;
    }
    const char *problem = auth_password_problem (args->new_password);
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    if (auth_token_hash (args->token, hash, sizeof hash)) {
        auth_call_fail (call, "invalid_token",
                        "the reset token is unknown, expired or used");
        return;
    }
    call->text = strdup (hash);
    assert (call->text);
    const char *params[] = {hash};
    auth_call_query (call, s_reset_read,
                     "SELECT user_id FROM auth.password_resets WHERE token_hash = $1 AND "
                     "used_at IS NULL AND expires_at > clock_timestamp ()",
                     1, params);
}
