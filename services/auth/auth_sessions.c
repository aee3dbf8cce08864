/*  auth_sessions: register, login, refresh, logout, me, switch.                */
#include "auth_sessions.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>

#include "auth_token.h"
#include "db_message.h"


//  ---------------------------------------------------------------------------------
//  Sessions and token answers

void
auth_sessions_prepare (auth_call_t *call, auth_session_stmts_t *out)
{
    memset (out, 0, sizeof *out);
    auth_uuid_new (call->session_id);
    if (call->token) {
        free (call->token);
        call->token = NULL;
    }
    call->token = auth_token_generate ("");
    assert (call->token);
    int rc = auth_token_hash (call->token, out->token_hash, sizeof out->token_hash);
    assert (rc == 0);
    snprintf (out->ttl, sizeof out->ttl, "%lld", (long long) call->state->refresh_ttl_s);
    out->session[0] = call->session_id;
    out->session[1] = call->user_id;
    out->session[2] = call->tenant_id;
    out->refresh[0] = out->token_hash;
    out->refresh[1] = call->session_id;
    out->refresh[2] = out->ttl;
    out->stmts[0] = (db_stmt_t){
        "INSERT INTO auth.sessions (id, user_id, tenant_id) VALUES ($1, $2, $3)", 3,
        out->session};
    out->stmts[1] = (db_stmt_t){
        "INSERT INTO auth.refresh_tokens (token_hash, session_id, expires_at) "
        "VALUES ($1, $2, clock_timestamp () + make_interval (secs => $3::bigint))",
        3, out->refresh};
}

//  The user and tenant of a token answer, by the field names of TokenReply.
#define S_USER_TENANT_COLUMNS                                                            \
    "u.id AS \"user.id\", u.email AS \"user.email\", u.name AS \"user.name\", "          \
    "auth.rfc3339 (u.created_at) AS \"user.created_at\", "                               \
    "u.platform_admin AS \"user.platform_admin\", t.id AS \"tenant.id\", "               \
    "t.name AS \"tenant.name\", m.role AS \"tenant.role\" "                              \
    "FROM auth.users u JOIN auth.memberships m ON m.user_id = u.id "                     \
    "JOIN auth.tenants t ON t.id = m.tenant_id WHERE u.id = $1 AND t.id = $2"

static void
s_answer_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "unauthorized", "the account left this tenant");
        return;
    }
    char error[200] = "";
    ChorusAuth__TokenReply *reply = (ChorusAuth__TokenReply *) db_message_from_row (
        &chorus_auth__token_reply__descriptor, result, 0, error, sizeof error);
    if (!reply || !reply->user || !reply->tenant) {
        if (reply)
            protobuf_c_message_free_unpacked (&reply->base, NULL);
        core_log_error (call->state->log, auth_call_request_id (call), "answer: %s",
                        error);
        auth_call_fail (call, "internal", "the session could not be read");
        return;
    }
    auth_jwt_claims_t claims = {0};
    snprintf (claims.sub, sizeof claims.sub, "%s", call->user_id);
    snprintf (claims.tid, sizeof claims.tid, "%s", call->tenant_id);
    snprintf (claims.sid, sizeof claims.sid, "%s", call->session_id);
    claims.role = reply->user->has_platform_admin && reply->user->platform_admin
                      ? AUTH_ROLE_PLATFORM_ADMIN
                      : auth_role_parse (reply->tenant->role);
    char *jwt = auth_jwt_issue (call->state->jwt, &claims, (int64_t) time (NULL), error,
                                sizeof error);
    if (!jwt) {
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        core_log_error (call->state->log, auth_call_request_id (call), "jwt: %s", error);
        auth_call_fail (call, "internal", "the token could not be issued");
        return;
    }
    reply->access_token = jwt;
    reply->token_type = strdup ("Bearer");
    reply->has_expires_in = 1;
    reply->expires_in = call->state->access_ttl_s;
    reply->refresh_token = strdup (call->token);
    reply->has_refresh_expires_in = 1;
    reply->refresh_expires_in = call->state->refresh_ttl_s;
    assert (reply->token_type && reply->refresh_token);
    auth_call_reply (call, &reply->base);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
}

void
auth_sessions_answer (auth_call_t *call, PGresult *result)
{
    (void) result;
    const char *params[] = {call->user_id, call->tenant_id};
    auth_call_query (call, s_answer_read, "SELECT " S_USER_TENANT_COLUMNS, 2, params);
}

db_stmt_t
auth_sessions_revocation_stmt (const char *const *params)
{
    return (db_stmt_t){
        "INSERT INTO auth.revocations (kind, ref, tenant_id, at, until) VALUES ($1, $2, "
        "$3, date_trunc ('second', clock_timestamp ()), clock_timestamp () + "
        "make_interval (secs => $4::bigint))",
        4, params};
}

//  ---------------------------------------------------------------------------------
//  register

static void s_register_hashed (auth_call_t *call, PGresult *result);

static void
s_register_invite (auth_call_t *call, PGresult *result)
{
    ChorusAuth__RegisterRequest *args = (ChorusAuth__RegisterRequest *) call->base.args;
    if (PQntuples (result) != 1 || !streq (PQgetvalue (result, 0, 3), "t")) {
        auth_call_fail (call, "invalid_token", "the invite is unknown, expired or used");
        return;
    }
    char email_key[256];
    snprintf (email_key, sizeof email_key, "%s", args->email);
    for (char *p = email_key; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    if (!streq (PQgetvalue (result, 0, 2), email_key)) {
        auth_call_fail (call, "bad_request", "the invite is for another email address");
        return;
    }
    snprintf (call->other_id, sizeof call->other_id, "%s", PQgetvalue (result, 0, 0));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", PQgetvalue (result, 0, 1));
    auth_call_hash (call, s_register_hashed, args->password);
}

static void
s_register_hashed (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__RegisterRequest *args = (ChorusAuth__RegisterRequest *) call->base.args;
    bool invited = call->other_id[0] != 0;
    auth_uuid_new (call->user_id);
    if (!invited)
        auth_uuid_new (call->tenant_id);
    //  Display name: given, or the email's local part; tenant: given or derived
    char name[201], tenant_name[201];
    if (args->name && *args->name)
        snprintf (name, sizeof name, "%s", args->name);
    else {
        snprintf (name, sizeof name, "%s", args->email);
        char *at = strchr (name, '@');
        if (at)
            *at = 0;
    }
    if (args->tenant_name && *args->tenant_name)
        snprintf (tenant_name, sizeof tenant_name, "%s", args->tenant_name);
    else
        snprintf (tenant_name, sizeof tenant_name, "%.180s's team", name);

    const char *user[] = {call->user_id, args->email, name, call->hash,
                          call->state->platform_admin_email};
    const char *tenant[] = {call->tenant_id, tenant_name};
    const char *member[] = {call->tenant_id, call->user_id};
    const char *invite[] = {call->other_id, call->user_id};
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    db_stmt_t stmts[7];
    size_t count = 0;
    //  The first user of an install becomes platform admin: one at a time
    stmts[count++] = (db_stmt_t){"SELECT pg_advisory_xact_lock (hashtext ('auth.users'))",
                                 0, NULL};
    stmts[count++] = (db_stmt_t){
        "INSERT INTO auth.users (id, email, email_key, name, password_hash, "
        "platform_admin) VALUES ($1, $2, lower ($2), $3, $4, NOT EXISTS (SELECT 1 FROM "
        "auth.users) OR (length ($5) > 0 AND lower ($2) = lower ($5)))",
        5, user};
    if (invited) {
        stmts[count++] = (db_stmt_t){
            "WITH accepted AS (UPDATE auth.invites SET accepted_at = clock_timestamp (), "
            "accepted_by = $2 WHERE id = $1 AND accepted_at IS NULL AND expires_at > "
            "clock_timestamp () RETURNING tenant_id, role) INSERT INTO auth.memberships "
            "(tenant_id, user_id, role) SELECT tenant_id, $2, role FROM accepted",
            2, invite};
        stmts[count++] = (db_stmt_t){
            "SELECT auth.require (EXISTS (SELECT 1 FROM auth.memberships WHERE tenant_id "
            "= $1 AND user_id = $2), 'invalid_token')",
            2, member};
    }
    else {
        stmts[count++] = (db_stmt_t){
            "INSERT INTO auth.tenants (id, name) VALUES ($1, $2)", 2, tenant};
        stmts[count++] = (db_stmt_t){"INSERT INTO auth.memberships (tenant_id, user_id, "
                                     "role) VALUES ($1, $2, 'tenant_admin')",
                                     2, member};
    }
    stmts[count++] = session.stmts[0];
    stmts[count++] = session.stmts[1];
    call->base.conflict = "this email is already registered";
    json_t *details = json_pack ("{s:s, s:b}", "email", args->email, "invited", invited);
    char *text = json_dumps (details, JSON_COMPACT);
    json_decref (details);
    auth_call_record (call, auth_sessions_answer, call->tenant_id, "user.registered",
                      call->user_id, call->user_id, text, stmts, count);
    free (text);
}

void
auth_sessions_register (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__register_request__descriptor);
    if (!call)
        return;
    ChorusAuth__RegisterRequest *args = (ChorusAuth__RegisterRequest *) call->base.args;
    const char *problem = auth_email_problem (args->email);
    if (!problem)
        problem = auth_password_problem (args->password);
    if (!problem && args->name && strlen (args->name) > 200)
        problem = "name must be at most 200 characters";
    if (!problem && args->tenant_name && strlen (args->tenant_name) > 200)
        problem = "tenant_name must be at most 200 characters";
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    if (args->invite_token && *args->invite_token) {
        char hash[65];
        if (auth_token_hash (args->invite_token, hash, sizeof hash)) {
            auth_call_fail (call, "invalid_token",
                            "the invite is unknown, expired or used");
            return;
        }
        const char *params[] = {hash};
        auth_call_query (call, s_register_invite,
                         "SELECT id, tenant_id, email_key, (accepted_at IS NULL AND "
                         "expires_at > clock_timestamp ()) FROM auth.invites WHERE "
                         "token_hash = $1",
                         1, params);
    }
    else
        auth_call_hash (call, s_register_hashed, args->password);
}

//  ---------------------------------------------------------------------------------
//  login

//  Redis keys of the login limits: failures per IP (a minute), per account (an hour).
static void
s_login_keys (auth_call_t *call, char *ip_key, size_t ip_size, char *account_key,
              size_t account_size)
{
    ChorusAuth__LoginRequest *args = (ChorusAuth__LoginRequest *) call->base.args;
    char lower[256], hash[65];
    snprintf (lower, sizeof lower, "%s", args->email);
    for (char *p = lower; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    if (auth_token_hash (lower, hash, sizeof hash))
        snprintf (hash, sizeof hash, "none");
    snprintf (ip_key, ip_size, "chorus:login:ip:%s", auth_call_ip (call));
    snprintf (account_key, account_size, "chorus:login:account:%s", hash);
}

static void
s_ignore_reply (redisReply *reply, const char *error, void *arg)
{
    (void) reply;
    (void) error;
    (void) arg;
}

//  Count one failure against the IP and the account (best effort).
static void
s_login_count_failure (auth_call_t *call)
{
    redis_client_t *redis = service_runtime_redis (call->state->runtime);
    if (!redis || !redis_client_healthy (redis))
        return;
    char ip_key[128], account_key[128];
    s_login_keys (call, ip_key, sizeof ip_key, account_key, sizeof account_key);
    bool has_ip = *auth_call_ip (call) != 0;
    int rc = 0;
    if (has_ip) {
        rc |= redis_client_command (redis, s_ignore_reply, NULL, "SET %s 0 EX 60 NX",
                                    ip_key);
        rc |= redis_client_command (redis, s_ignore_reply, NULL, "INCR %s", ip_key);
    }
    rc |= redis_client_command (redis, s_ignore_reply, NULL, "SET %s 0 EX 3600 NX",
                                account_key);
    rc |= redis_client_command (redis, s_ignore_reply, NULL, "INCR %s", account_key);
    if (rc)
        core_log_warn (call->state->log, auth_call_request_id (call),
                       "login failure not counted: %s", redis_client_error (redis));
}

static void s_login_read (auth_call_t *call, PGresult *result);
static void s_login_checked (auth_call_t *call, PGresult *result);
static void s_login_failed (auth_call_t *call, PGresult *result);

static void
s_login_lookup (auth_call_t *call)
{
    ChorusAuth__LoginRequest *args = (ChorusAuth__LoginRequest *) call->base.args;
    const char *params[] = {args->email, args->tenant_id ? args->tenant_id : ""};
    auth_call_query (call, s_login_read,
                     "SELECT u.id, u.password_hash, m.tenant_id FROM auth.users u LEFT "
                     "JOIN LATERAL (SELECT tenant_id FROM auth.memberships WHERE user_id "
                     "= u.id AND ($2 = '' OR tenant_id::text = lower ($2)) ORDER BY "
                     "created_at LIMIT 1) m ON true WHERE u.email_key = lower ($1)",
                     2, params);
}

//  The TTL of a limit key answered: refuse with it as Retry-After.
static void
s_login_limited (redisReply *reply, const char *error, void *arg)
{
    auth_call_t *call = (auth_call_t *) arg;
    long long ttl = !error && reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer
                                                                          : 60;
    if (ttl < 1)
        ttl = 1;
    auth_call_fail_retry (call, "rate_limited", "too many failed logins, try again later",
                          (uint32_t) ttl);
}

//  The failure counters answered: over a limit, ask its TTL; else go on.
static void
s_login_counters (redisReply *reply, const char *error, void *arg)
{
    auth_call_t *call = (auth_call_t *) arg;
    if (error || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        if (call->state->login_fail_open)
            s_login_lookup (call);
        else
            auth_call_fail_retry (call, "unavailable",
                                  "login is unavailable: its rate limiter is down", 5);
        return;
    }
    long long limits[2] = {call->state->login_ip_failures,
                           call->state->login_account_failures};
    for (int i = 0; i < 2; i++) {
        redisReply *value = reply->element[i];
        if (value->type != REDIS_REPLY_STRING)
            continue;
        long long count = strtoll (value->str, NULL, 10);
        if (count >= limits[i]) {
            char ip_key[128], account_key[128];
            s_login_keys (call, ip_key, sizeof ip_key, account_key, sizeof account_key);
            redis_client_t *redis = service_runtime_redis (call->state->runtime);
            if (redis_client_command (redis, s_login_limited, call, "TTL %s",
                                      i == 0 ? ip_key : account_key))
                auth_call_fail_retry (call, "rate_limited",
                                      "too many failed logins, try again later", 60);
            return;
        }
    }
    s_login_lookup (call);
}

static void
s_login_read (auth_call_t *call, PGresult *result)
{
    ChorusAuth__LoginRequest *args = (ChorusAuth__LoginRequest *) call->base.args;
    if (PQntuples (result) != 1) {
        //  No such user: spend the same time on a dummy hash, then fail alike
        auth_call_verify (call, s_login_checked, NULL, args->password);
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", PQgetvalue (result, 0, 0));
    if (!PQgetisnull (result, 0, 2))
        snprintf (call->tenant_id, sizeof call->tenant_id, "%s",
                  PQgetvalue (result, 0, 2));
    auth_call_verify (call, s_login_checked, PQgetvalue (result, 0, 1), args->password);
}

static void
s_login_checked (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__LoginRequest *args = (ChorusAuth__LoginRequest *) call->base.args;
    if (!call->matched || !call->user_id[0]) {
        s_login_count_failure (call);
        json_t *details = json_pack ("{s:s}", "email", args->email);
        char *text = json_dumps (details, JSON_COMPACT);
        json_decref (details);
        auth_call_record (call, s_login_failed, call->tenant_id, "login.failed", NULL,
                          call->user_id, text, NULL, 0);
        free (text);
        return;
    }
    if (!call->tenant_id[0]) {
        auth_call_fail (call, "forbidden",
                        args->tenant_id && *args->tenant_id
                            ? "the user is not a member of that tenant"
                            : "the user belongs to no tenant");
        return;
    }
    //  A success clears the account's failures (the IP's stay)
    redis_client_t *redis = service_runtime_redis (call->state->runtime);
    if (redis && redis_client_healthy (redis)) {
        char ip_key[128], account_key[128];
        s_login_keys (call, ip_key, sizeof ip_key, account_key, sizeof account_key);
        if (redis_client_command (redis, s_ignore_reply, NULL, "DEL %s", account_key))
            core_log_warn (call->state->log, auth_call_request_id (call),
                           "cannot clear login failures");
    }
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    auth_call_record (call, auth_sessions_answer, call->tenant_id, "login.succeeded",
                      call->user_id, call->user_id, NULL, session.stmts, 2);
}

static void
s_login_failed (auth_call_t *call, PGresult *result)
{
    (void) result;
    auth_call_fail (call, "invalid_credentials", "wrong email or password");
}

void
auth_sessions_login (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__login_request__descriptor);
    if (!call)
        return;
    ChorusAuth__LoginRequest *args = (ChorusAuth__LoginRequest *) call->base.args;
    if (!args->email || !*args->email || strlen (args->email) > 254) {
        auth_call_fail (call, "bad_request",
                        args->email && *args->email
                            ? "email must be at most 254 characters"
                            : "email is required");
        return;
    }
    if (!args->password || !*args->password
        || strlen (args->password) > AUTH_PASSWORD_MAX) {
        auth_call_fail (call, "bad_request",
                        args->password && *args->password
                            ? "password must be at most 1024 bytes"
                            : "password is required");
        return;
    }
    if (args->tenant_id && *args->tenant_id && !auth_uuid_valid (args->tenant_id)) {
        auth_call_fail (call, "forbidden", "the user is not a member of that tenant");
        return;
    }
    redis_client_t *redis = service_runtime_redis (runtime);
    if (!redis) {
        s_login_lookup (call);  //  no Redis configured: no limits
        return;
    }
    char ip_key[128], account_key[128];
    s_login_keys (call, ip_key, sizeof ip_key, account_key, sizeof account_key);
    if (redis_client_command (redis, s_login_counters, call, "MGET %s %s", ip_key,
                              account_key)) {
        if (call->state->login_fail_open)
            s_login_lookup (call);
        else
            auth_call_fail_retry (call, "unavailable",
                                  "login is unavailable: its rate limiter is down", 5);
    }
}

//  ---------------------------------------------------------------------------------
//  refresh

static void s_refresh_reused (auth_call_t *call, PGresult *result);

static void
s_refresh_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "invalid_token", "the refresh token is unknown");
        return;
    }
    snprintf (call->session_id, sizeof call->session_id, "%s", PQgetvalue (result, 0, 0));
    snprintf (call->user_id, sizeof call->user_id, "%s", PQgetvalue (result, 0, 1));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", PQgetvalue (result, 0, 2));
    bool used = streq (PQgetvalue (result, 0, 3), "t");
    bool expired = streq (PQgetvalue (result, 0, 4), "t");
    bool revoked = streq (PQgetvalue (result, 0, 5), "t");
    if (used && !revoked) {
        //  A rotated token came back: someone holds a copy. End the whole family.
        char until[24];
        snprintf (until, sizeof until, "%lld",
                  (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
        const char *session[] = {call->session_id};
        const char *revocation[] = {"session", call->session_id, call->tenant_id, until};
        db_stmt_t stmts[] = {
            {"UPDATE auth.sessions SET revoked_at = clock_timestamp (), revoked_reason = "
             "'reuse' WHERE id = $1 AND revoked_at IS NULL",
             1, session},
            auth_sessions_revocation_stmt (revocation)};
        auth_call_record (call, s_refresh_reused, call->tenant_id, "token.reuse_detected",
                          call->user_id, call->session_id, NULL, stmts, 2);
        return;
    }
    if (used) {
        auth_call_fail (call, "token_reused",
                        "this refresh token was already used: the session is revoked");
        return;
    }
    if (expired || revoked) {
        auth_call_fail (call, "invalid_token",
                        "the refresh token expired or was revoked");
        return;
    }
    const char *old_hash = call->text;
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    //  Same family: keep the session id the first prepare replaced
    snprintf (call->session_id, sizeof call->session_id, "%s", PQgetvalue (result, 0, 0));
    const char *member[] = {call->user_id, call->tenant_id};
    const char *rotate[] = {old_hash};
    db_stmt_t stmts[] = {
        {"SELECT auth.require (EXISTS (SELECT 1 FROM auth.memberships WHERE user_id = $1 "
         "AND tenant_id = $2), 'invalid_token')",
         2, member},
        {"WITH used AS (UPDATE auth.refresh_tokens SET used_at = clock_timestamp () "
         "WHERE token_hash = $1 AND used_at IS NULL RETURNING 1) SELECT auth.require "
         "(count (*) = 1, 'token_reused') FROM used",
         1, rotate},
        session.stmts[1]};
    auth_call_tx (call, auth_sessions_answer, stmts, 3);
}

static void
s_refresh_reused (auth_call_t *call, PGresult *result)
{
    (void) result;
    auth_call_fail (call, "token_reused",
                    "this refresh token was already used: the session is revoked");
}

void
auth_sessions_refresh (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__refresh_request__descriptor);
    if (!call)
        return;
    ChorusAuth__RefreshRequest *args = (ChorusAuth__RefreshRequest *) call->base.args;
    char hash[65];
    if (!args->refresh_token || !*args->refresh_token) {
        auth_call_fail (call, "bad_request", "refresh_token is required");
        return;
    }
    if (auth_token_hash (args->refresh_token, hash, sizeof hash)) {
        auth_call_fail (call, "invalid_token", "the refresh token is unknown");
        return;
    }
    call->text = strdup (hash);
    assert (call->text);
    const char *params[] = {hash};
    auth_call_query (call, s_refresh_read,
                     "SELECT s.id, s.user_id, s.tenant_id, r.used_at IS NOT NULL, "
                     "r.expires_at <= clock_timestamp (), s.revoked_at IS NOT NULL FROM "
                     "auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id "
                     "WHERE r.token_hash = $1",
                     1, params);
}

//  ---------------------------------------------------------------------------------
//  logout

static void
s_logout_done (auth_call_t *call, PGresult *result)
{
    (void) result;
    auth_call_reply (call, NULL);
}

//  Revoke call->session_id (of call->user_id in call->tenant_id).
static void
s_logout_revoke (auth_call_t *call)
{
    char until[24];
    snprintf (until, sizeof until, "%lld",
              (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
    const char *session[] = {call->session_id};
    const char *revocation[] = {"session", call->session_id, call->tenant_id, until};
    db_stmt_t stmts[] = {
        {"UPDATE auth.sessions SET revoked_at = clock_timestamp (), revoked_reason = "
         "'logout' WHERE id = $1 AND revoked_at IS NULL",
         1, session},
        auth_sessions_revocation_stmt (revocation)};
    auth_call_record (call, s_logout_done, call->tenant_id, "session.revoked",
                      call->user_id, call->session_id, "{\"reason\":\"logout\"}", stmts,
                      2);
}

static void
s_logout_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        auth_call_reply (call, NULL);  //  nothing to end: logged out already
        return;
    }
    snprintf (call->session_id, sizeof call->session_id, "%s", PQgetvalue (result, 0, 0));
    snprintf (call->user_id, sizeof call->user_id, "%s", PQgetvalue (result, 0, 1));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", PQgetvalue (result, 0, 2));
    s_logout_revoke (call);
}

void
auth_sessions_logout (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__refresh_request__descriptor);
    if (!call)
        return;
    ChorusAuth__RefreshRequest *args = (ChorusAuth__RefreshRequest *) call->base.args;
    char hash[65];
    if (args->refresh_token && *args->refresh_token
        && auth_token_hash (args->refresh_token, hash, sizeof hash) == 0) {
        const char *params[] = {hash};
        auth_call_query (
            call, s_logout_read,
            "SELECT s.id, s.user_id, s.tenant_id FROM auth.refresh_tokens r "
            "JOIN auth.sessions s ON s.id = r.session_id WHERE r.token_hash = "
            "$1 AND s.revoked_at IS NULL",
            1, params);
        return;
    }
    const char *sid = call->base.headers ? call->base.headers->session_id : NULL;
    if (sid && auth_uuid_valid (sid) && auth_uuid_valid (auth_call_user (call))) {
        snprintf (call->session_id, sizeof call->session_id, "%s", sid);
        snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
        snprintf (call->tenant_id, sizeof call->tenant_id, "%s", auth_call_tenant (call));
        s_logout_revoke (call);
        return;
    }
    auth_call_reply (call, NULL);
}

//  ---------------------------------------------------------------------------------
//  me

static void
s_me_key (auth_call_t *call, PGresult *result)
{
    ChorusAuth__MeReply *me = (ChorusAuth__MeReply *) call->base.reply;
    char error[200] = "";
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "unauthorized", "the API key was revoked");
        return;
    }
    me->api_key = (ChorusAuth__ApiKey *) db_message_from_row (
        &chorus_auth__api_key__descriptor, result, 0, error, sizeof error);
    if (!me->api_key) {
        core_log_error (call->state->log, auth_call_request_id (call), "me: %s", error);
        auth_call_fail (call, "internal", "the API key could not be read");
        return;
    }
    auth_call_reply (call, call->base.reply);
}

//  The API key's record, when the credential is one; then the answer.
static void
s_me_answer (auth_call_t *call)
{
    const char *key_id = call->base.headers ? call->base.headers->api_key_id : NULL;
    if (key_id && *key_id) {
        const char *params[] = {key_id, auth_call_tenant (call)};
        auth_call_query (
            call, s_me_key,
            "SELECT id, name, scopes, prefix, auth.rfc3339 (created_at) AS "
            "created_at, auth.rfc3339 (expires_at) AS expires_at, auth.rfc3339 "
            "(last_used_at) AS last_used_at, created_by FROM auth.api_keys "
            "WHERE id::text = $1 AND tenant_id::text = $2 AND revoked_at IS "
            "NULL",
            2, params);
        return;
    }
    auth_call_reply (call, call->base.reply);
}

//  One row per tenant of the user, each with the user and the current tenant:
//  the answer from row 0, the tenant list from the "_t_" columns of every row.
static void
s_me_read (auth_call_t *call, PGresult *result)
{
    int rows = PQntuples (result);
    if (rows < 1) {
        auth_call_fail (call, "unauthorized",
                        "the account no longer belongs to this tenant");
        return;
    }
    char error[200] = "";
    ChorusAuth__MeReply *me = (ChorusAuth__MeReply *) db_message_from_row (
        &chorus_auth__me_reply__descriptor, result, 0, error, sizeof error);
    if (!me) {
        core_log_error (call->state->log, auth_call_request_id (call), "me: %s", error);
        auth_call_fail (call, "internal", "the account could not be read");
        return;
    }
    call->base.reply = &me->base;
    int id = PQfnumber (result, "_t_id"), name = PQfnumber (result, "_t_name"),
        role = PQfnumber (result, "_t_role");
    assert (id >= 0 && name >= 0 && role >= 0);
    me->tenants = calloc ((size_t) rows, sizeof (ChorusAuth__TenantRef *));
    assert (me->tenants);
    for (int row = 0; row < rows; row++) {
        ChorusAuth__TenantRef *tenant = calloc (1, sizeof (ChorusAuth__TenantRef));
        assert (tenant);
        chorus_auth__tenant_ref__init (tenant);
        tenant->id = strdup (PQgetvalue (result, row, id));
        tenant->name = strdup (PQgetvalue (result, row, name));
        tenant->role = strdup (PQgetvalue (result, row, role));
        assert (tenant->id && tenant->name && tenant->role);
        me->tenants[me->n_tenants++] = tenant;
    }
    s_me_answer (call);
}

void
auth_sessions_me (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__list_request__descriptor);
    if (!call)
        return;
    if (!auth_uuid_valid (auth_call_user (call))
        || !auth_uuid_valid (auth_call_tenant (call))) {
        auth_call_fail (call, "unauthorized", "authentication is required");
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", auth_call_tenant (call));
    const char *key_id = call->base.headers ? call->base.headers->api_key_id : NULL;
    const char *params[] = {call->user_id, call->tenant_id,
                            key_id && *key_id ? "api_key" : "jwt"};
    //  One query: the user, the current tenant, and every tenant of the user
    auth_call_query (
        call, s_me_read,
        "SELECT $3::text AS auth, u.id AS \"user.id\", u.email AS \"user.email\", u.name "
        "AS \"user.name\", auth.rfc3339 (u.created_at) AS \"user.created_at\", "
        "u.platform_admin AS \"user.platform_admin\", t.id AS \"tenant.id\", t.name AS "
        "\"tenant.name\", m.role AS \"tenant.role\", o.tenant_id AS _t_id, ot.name AS "
        "_t_name, o.role AS _t_role FROM auth.users u JOIN auth.memberships m ON "
        "m.user_id = u.id JOIN auth.tenants t ON t.id = m.tenant_id JOIN "
        "auth.memberships o ON o.user_id = u.id JOIN auth.tenants ot ON ot.id = "
        "o.tenant_id WHERE u.id = $1 AND t.id = $2 ORDER BY o.created_at, o.tenant_id",
        3, params);
}

//  ---------------------------------------------------------------------------------
//  switch

static void
s_switch_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "not_found", "no such tenant");
        return;
    }
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    auth_call_tx (call, auth_sessions_answer, session.stmts, 2);
}

void
auth_sessions_switch (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__switch_request__descriptor);
    if (!call)
        return;
    ChorusAuth__SwitchRequest *args = (ChorusAuth__SwitchRequest *) call->base.args;
    if (!auth_uuid_valid (auth_call_user (call))) {
        auth_call_fail (call, "unauthorized", "authentication is required");
        return;
    }
    if (!args->tenant_id || !*args->tenant_id) {
        auth_call_fail (call, "bad_request", "tenant_id is required");
        return;
    }
    if (!auth_uuid_valid (args->tenant_id)) {
        auth_call_fail (call, "not_found", "no such tenant");
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", args->tenant_id);
    for (char *p = call->tenant_id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    const char *params[] = {call->user_id, call->tenant_id};
    auth_call_query (
        call, s_switch_read,
        "SELECT 1 FROM auth.memberships WHERE user_id = $1 AND tenant_id = $2", 2,
        params);
}
