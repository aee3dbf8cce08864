/*  auth_admin: invites, members, tenants, API keys, audit, revocations.        */
#include "auth_admin.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>

#include "auth_sessions.h"
#include "auth_token.h"
#include "db_message.h"

//  Seconds a revoked API key stays in the revocation feed (edges cache keys for
//  seconds).
#define S_KEY_REVOCATION_TTL 3600

//  The page condition of every list: rows after the cursor ($2, "" for the start).
#define S_AFTER(ts, id)                                                                  \
    "($2 = '' OR (auth.ts_us (" ts "), " id ") < (auth.cursor_ts ($2), auth.cursor_id "  \
    "($2)))"

//  Start a call that needs role (a tenant admin or a platform admin) in a tenant.
static auth_call_t *
s_admin_call (void *state, bus_request_t *request, const ProtobufCMessageDescriptor *desc,
              bool platform)
{
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request, desc);
    if (!call)
        return NULL;
    if (!auth_uuid_valid (auth_call_user (call))
        || !auth_uuid_valid (auth_call_tenant (call))) {
        auth_call_fail (call, "unauthorized", "authentication is required");
        return NULL;
    }
    if (platform ? !auth_call_is_platform_admin (call)
                 : !auth_call_is_tenant_admin (call)) {
        auth_call_fail (call, "forbidden",
                        platform ? "platform admins only" : "tenant admins only");
        return NULL;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", auth_call_tenant (call));
    return call;
}

//  Copy an id argument into call->other_id (lower case); false (after answering
//  not_found) when it is not a UUID, which no row can have.
static bool
s_take_id (auth_call_t *call, const char *id, const char *what)
{
    return service_call_take_id (&call->base, id, call->other_id, what);
}

static void s_reply_invites (auth_call_t *c, PGresult *r);
static void s_reply_members (auth_call_t *c, PGresult *r);
static void s_reply_tenants (auth_call_t *c, PGresult *r);
static void s_reply_keys (auth_call_t *c, PGresult *r);
static void s_reply_audit (auth_call_t *c, PGresult *r);

//  Run a page query: $1 tenant (or unused), $2 cursor, $3 limit + 1.
static void
s_list (auth_call_t *call, const char *sql, auth_step_fn *next)
{
    ChorusAuth__ListRequest *args = (ChorusAuth__ListRequest *) call->base.args;
    if (!service_call_take_cursor (&call->base, args->cursor))
        return;
    char limit[16];
    uint32_t n = auth_list_limit (args);
    snprintf (limit, sizeof limit, "%u", n + 1);
    const char *params[] = {call->tenant_id, args->cursor ? args->cursor : "", limit};
    call->base.limit = n;
    auth_call_query (call, next, sql, 3, params);
}

//  The page size s_list asked for.
static uint32_t
s_list_limit (auth_call_t *call)
{
    return call->base.limit;
}

static void
s_reply_invites (auth_call_t *c, PGresult *r)
{
    auth_call_reply_list (c, &chorus_auth__invite_list__descriptor, r, s_list_limit (c));
}

static void
s_reply_members (auth_call_t *c, PGresult *r)
{
    auth_call_reply_list (c, &chorus_auth__member_list__descriptor, r, s_list_limit (c));
}

static void
s_reply_tenants (auth_call_t *c, PGresult *r)
{
    auth_call_reply_list (c, &chorus_auth__tenant_list__descriptor, r, s_list_limit (c));
}

static void
s_reply_keys (auth_call_t *c, PGresult *r)
{
    auth_call_reply_list (c, &chorus_auth__api_key_list__descriptor, r, s_list_limit (c));
}

static void
s_reply_audit (auth_call_t *c, PGresult *r)
{
    auth_call_reply_list (c, &chorus_auth__audit_list__descriptor, r, s_list_limit (c));
}

//  Answer one row as desc, adding the plain token to field token_field if given.
static void
s_reply_row (auth_call_t *call, PGresult *result, const ProtobufCMessageDescriptor *desc,
             const char *token_field)
{
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "not_found", "not found");
        return;
    }
    char error[200] = "";
    ProtobufCMessage *reply = db_message_from_row (desc, result, 0, error, sizeof error);
    if (!reply) {
        core_log_error (call->state->log, auth_call_request_id (call), "row: %s", error);
        auth_call_fail (call, "internal", "the answer could not be read");
        return;
    }
    if (token_field && call->token) {
        const ProtobufCFieldDescriptor
            *field = protobuf_c_message_descriptor_get_field_by_name (desc, token_field);
        assert (field && field->type == PROTOBUF_C_TYPE_STRING);
        char **slot = (char **) ((char *) reply + field->offset);
        *slot = strdup (call->token);
        assert (*slot);
    }
    auth_call_reply (call, reply);
    protobuf_c_message_free_unpacked (reply, NULL);
}

static void
s_done_empty (auth_call_t *call, PGresult *result)
{
    (void) result;
    auth_call_reply (call, NULL);
}

//  ---------------------------------------------------------------------------------
//  Invites

#define S_INVITE_COLUMNS                                                                 \
    "id, email, role, auth.rfc3339 (created_at) AS created_at, auth.rfc3339 "            \
    "(expires_at) AS expires_at, auth.rfc3339 (accepted_at) AS accepted_at, invited_by "

void
auth_admin_invites_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__list_request__descriptor, false);
    if (call)
        s_list (call,
                "SELECT " S_INVITE_COLUMNS ", auth.cursor_of (created_at, id) AS _cursor "
                "FROM auth.invites WHERE tenant_id = $1 AND " S_AFTER (
                    "created_at", "id") " ORDER BY created_at DESC, id DESC LIMIT $3",
                s_reply_invites);
}

static void
s_invite_read (auth_call_t *call, PGresult *result)
{
    s_reply_row (call, result, &chorus_auth__invite__descriptor, "token");
}

static void
s_invite_created (auth_call_t *call, PGresult *result)
{
    (void) result;
    ChorusAuth__InviteCreateRequest *args = (ChorusAuth__InviteCreateRequest *)
                                                call->base.args;
    char text[1024];
    snprintf (text, sizeof text,
              "You are invited to a team on Chorus. Register or sign in with this "
              "address and use this invite token within %lld days:\n\n%s\n",
              (long long) (call->state->invite_ttl_s / 86400), call->token);
    auth_mail_send (call->state->mail, args->email, "You are invited to Chorus", text,
                    "invite", call->token);
    const char *params[] = {call->other_id};
    auth_call_query (call, s_invite_read,
                     "SELECT " S_INVITE_COLUMNS " FROM auth.invites WHERE id = $1", 1,
                     params);
}

void
auth_admin_invites_create (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (
        state, request, &chorus_auth__invite_create_request__descriptor, false);
    if (!call)
        return;
    ChorusAuth__InviteCreateRequest *args = (ChorusAuth__InviteCreateRequest *)
                                                call->base.args;
    const char *problem = auth_email_problem (args->email);
    const char *role = args->role && *args->role ? args->role : "member";
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    if (!streq (role, "member") && !streq (role, "tenant_admin")) {
        auth_call_fail (call, "bad_request", "role must be member or tenant_admin");
        return;
    }
    auth_uuid_new (call->other_id);
    call->token = auth_token_generate ("");
    assert (call->token);
    char hash[65], ttl[24];
    int rc = auth_token_hash (call->token, hash, sizeof hash);
    assert (rc == 0);
    snprintf (ttl, sizeof ttl, "%lld", (long long) call->state->invite_ttl_s);
    const char *member[] = {call->tenant_id, args->email};
    const char *invite[] = {call->other_id, call->tenant_id, args->email, role,
                            hash,           call->user_id,   ttl};
    db_stmt_t stmts[] = {
        {"SELECT auth.require (NOT EXISTS (SELECT 1 FROM auth.memberships m JOIN "
         "auth.users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email_key = "
         "lower "
         "($2)), 'conflict', 'this email is already a member of the tenant')",
         2, member},
        {"INSERT INTO auth.invites (id, tenant_id, email, email_key, role, token_hash, "
         "invited_by, expires_at) VALUES ($1, $2, $3, lower ($3), $4, $5, $6, "
         "clock_timestamp () + make_interval (secs => $7::bigint))",
         7, invite}};
    json_t *details = json_pack ("{s:s, s:s}", "email", args->email, "role", role);
    char *text = json_dumps (details, JSON_COMPACT);
    json_decref (details);
    auth_call_record (call, s_invite_created, call->tenant_id, "invite.created",
                      call->user_id, call->other_id, text, stmts, 2);
    free (text);
}

static void
s_invite_deleted (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1)
        auth_call_fail (call, "not_found", "no such invite");
    else
        auth_call_reply (call, NULL);
}

void
auth_admin_invites_delete (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__id_request__descriptor, false);
    if (!call
        || !s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "invite"))
        return;
    const char *params[] = {call->other_id, call->tenant_id};
    auth_call_query (call, s_invite_deleted,
                     "DELETE FROM auth.invites WHERE id = $1 AND tenant_id = $2 AND "
                     "accepted_at IS NULL RETURNING id",
                     2, params);
}

static void
s_accept_read (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1 || !streq (PQgetvalue (result, 0, 3), "t")) {
        auth_call_fail (call, "invalid_token", "the invite is unknown, expired or used");
        return;
    }
    if (!streq (PQgetvalue (result, 0, 2), "t")) {
        auth_call_fail (call, "forbidden", "the invite is for another email address");
        return;
    }
    snprintf (call->other_id, sizeof call->other_id, "%s", PQgetvalue (result, 0, 0));
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", PQgetvalue (result, 0, 1));
    auth_session_stmts_t session;
    auth_sessions_prepare (call, &session);
    const char *invite[] = {call->other_id, call->user_id};
    const char *member[] = {call->tenant_id, call->user_id};
    db_stmt_t stmts[] = {
        {"WITH accepted AS (UPDATE auth.invites SET accepted_at = clock_timestamp (), "
         "accepted_by = $2 WHERE id = $1 AND accepted_at IS NULL AND expires_at > "
         "clock_timestamp () RETURNING tenant_id, role) INSERT INTO auth.memberships "
         "(tenant_id, user_id, role) SELECT tenant_id, $2, role FROM accepted",
         2, invite},
        {"SELECT auth.require (EXISTS (SELECT 1 FROM auth.memberships WHERE tenant_id = "
         "$1 AND user_id = $2), 'invalid_token')",
         2, member},
        session.stmts[0],
        session.stmts[1]};
    call->base.conflict = "you are already a member of this tenant";
    auth_call_record (call, auth_sessions_answer, call->tenant_id, "invite.accepted",
                      call->user_id, call->other_id, NULL, stmts, 4);
}

void
auth_admin_invites_accept (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__invite_accept_request__descriptor);
    if (!call)
        return;
    ChorusAuth__InviteAcceptRequest *args = (ChorusAuth__InviteAcceptRequest *)
                                                call->base.args;
    if (!auth_uuid_valid (auth_call_user (call))) {
        auth_call_fail (call, "unauthorized", "authentication is required");
        return;
    }
    char hash[65];
    if (!args->token || !*args->token) {
        auth_call_fail (call, "bad_request", "token is required");
        return;
    }
    if (auth_token_hash (args->token, hash, sizeof hash)) {
        auth_call_fail (call, "invalid_token", "the invite is unknown, expired or used");
        return;
    }
    snprintf (call->user_id, sizeof call->user_id, "%s", auth_call_user (call));
    const char *params[] = {hash, call->user_id};
    auth_call_query (
        call, s_accept_read,
        "SELECT i.id, i.tenant_id, i.email_key = u.email_key, (i.accepted_at "
        "IS NULL AND i.expires_at > clock_timestamp ()) FROM auth.invites i, "
        "auth.users u WHERE i.token_hash = $1 AND u.id = $2",
        2, params);
}

//  ---------------------------------------------------------------------------------
//  Members

#define S_MEMBER_COLUMNS                                                                 \
    "m.user_id, u.email, u.name, m.role, auth.rfc3339 (m.created_at) AS joined_at "      \
    "FROM auth.memberships m JOIN auth.users u ON u.id = m.user_id "

void
auth_admin_members_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__list_request__descriptor, false);
    if (call)
        s_list (call,
                "SELECT auth.cursor_of (m.created_at, m.user_id) AS "
                "_cursor, " S_MEMBER_COLUMNS "WHERE m.tenant_id = $1 AND " S_AFTER (
                    "m.created_at",
                    "m.user_id") " ORDER BY m.created_at DESC, m.user_id DESC LIMIT $3",
                s_reply_members);
}

static void
s_member_read (auth_call_t *call, PGresult *result)
{
    s_reply_row (call, result, &chorus_auth__member__descriptor, NULL);
}

static void
s_member_updated (auth_call_t *call, PGresult *result)
{
    (void) result;
    const char *params[] = {call->tenant_id, call->other_id};
    auth_call_query (call, s_member_read,
                     "SELECT " S_MEMBER_COLUMNS
                     "WHERE m.tenant_id = $1 AND m.user_id = $2",
                     2, params);
}

//  members.get: one member of the caller's tenant, for any of its users (chat
//  checks an assignee with it); another tenant's user is the same not_found.
void
auth_admin_members_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__id_request__descriptor);
    if (!call)
        return;
    if (!service_call_require_user (&call->base))
        return;
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", auth_call_tenant (call));
    if (!s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "member"))
        return;
    s_member_updated (call, NULL);
}

//  Statements every member change starts with: the member exists in the tenant,
//  and the tenant keeps at least one admin besides them unless new_role keeps
//  them admin. params: tenant, user, new role ("" when removed).
static void
s_member_checks (db_stmt_t *stmts, const char *const *params)
{
    stmts[0] = (db_stmt_t){"SELECT auth.require (EXISTS (SELECT 1 FROM auth.memberships "
                           "WHERE tenant_id = $1 "
                           "AND user_id = $2), 'not_found', 'no such member')",
                           2, params};
    stmts[1] = (db_stmt_t){
        "SELECT auth.require ($3 = 'tenant_admin' OR EXISTS (SELECT 1 FROM "
        "auth.memberships WHERE tenant_id = $1 AND role = 'tenant_admin' AND user_id <> "
        "$2), 'conflict', 'a tenant keeps at least one tenant admin')",
        3, params};
}

void
auth_admin_members_update (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (
        state, request, &chorus_auth__member_update_request__descriptor, false);
    if (!call)
        return;
    ChorusAuth__MemberUpdateRequest *args = (ChorusAuth__MemberUpdateRequest *)
                                                call->base.args;
    if (!args->role
        || (!streq (args->role, "member") && !streq (args->role, "tenant_admin"))) {
        auth_call_fail (call, "bad_request", "role must be member or tenant_admin");
        return;
    }
    if (!s_take_id (call, args->id, "member"))
        return;
    char until[24];
    snprintf (until, sizeof until, "%lld",
              (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
    const char *params[] = {call->tenant_id, call->other_id, args->role};
    const char *revocation[] = {"member", call->other_id, call->tenant_id, until};
    db_stmt_t stmts[4];
    s_member_checks (stmts, params);
    stmts[2] = (db_stmt_t){
        "UPDATE auth.memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2", 3,
        params};
    stmts[3] = auth_sessions_revocation_stmt (revocation);
    json_t *details = json_pack ("{s:s}", "role", args->role);
    char *text = json_dumps (details, JSON_COMPACT);
    json_decref (details);
    auth_call_record (call, s_member_updated, call->tenant_id, "member.role_changed",
                      call->user_id, call->other_id, text, stmts, 4);
    free (text);
}

void
auth_admin_members_delete (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__id_request__descriptor, false);
    if (!call
        || !s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "member"))
        return;
    char until[24];
    snprintf (until, sizeof until, "%lld",
              (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
    const char *params[] = {call->tenant_id, call->other_id, ""};
    const char *revocation[] = {"member", call->other_id, call->tenant_id, until};
    db_stmt_t stmts[5];
    s_member_checks (stmts, params);
    stmts[2] = (db_stmt_t){
        "DELETE FROM auth.memberships WHERE tenant_id = $1 AND user_id = $2", 2, params};
    stmts[3] = (db_stmt_t){
        "UPDATE auth.sessions SET revoked_at = clock_timestamp (), revoked_reason = "
        "'removed' WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        2, params};
    stmts[4] = auth_sessions_revocation_stmt (revocation);
    auth_call_record (call, s_done_empty, call->tenant_id, "member.removed",
                      call->user_id, call->other_id, NULL, stmts, 5);
}

//  ---------------------------------------------------------------------------------
//  Tenants (platform admins)

#define S_TENANT_COLUMNS                                                                 \
    "t.id, t.name, auth.rfc3339 (t.created_at) AS created_at, (SELECT count (*) FROM "   \
    "auth.memberships m WHERE m.tenant_id = t.id) AS member_count FROM auth.tenants t "

void
auth_admin_tenants_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__list_request__descriptor, true);
    if (call)
        s_list (
            call,
            "SELECT auth.cursor_of (t.created_at, t.id) AS _cursor, " S_TENANT_COLUMNS
            "WHERE length ($1) > 0 AND " S_AFTER (
                "t.created_at", "t.id") " ORDER BY t.created_at DESC, t.id DESC LIMIT $3",
            s_reply_tenants);
}

static void
s_tenant_read (auth_call_t *call, PGresult *result)
{
    s_reply_row (call, result, &chorus_auth__tenant__descriptor, NULL);
}

static void
s_tenant_get (auth_call_t *call, PGresult *result)
{
    (void) result;
    const char *params[] = {call->other_id};
    auth_call_query (call, s_tenant_read, "SELECT " S_TENANT_COLUMNS "WHERE t.id = $1", 1,
                     params);
}

//  A tenant name: 1..200 characters. NULL when fine, else the problem.
static const char *
s_tenant_name_problem (const char *name)
{
    if (!name || !*name)
        return "name is required";
    if (strlen (name) > 200)
        return "name must be at most 200 characters";
    return NULL;
}

void
auth_admin_tenants_create (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (
        state, request, &chorus_auth__tenant_create_request__descriptor, true);
    if (!call)
        return;
    ChorusAuth__TenantCreateRequest *args = (ChorusAuth__TenantCreateRequest *)
                                                call->base.args;
    const char *problem = s_tenant_name_problem (args->name);
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    auth_uuid_new (call->other_id);
    const char *tenant[] = {call->other_id, args->name};
    const char *member[] = {call->other_id, call->user_id};
    db_stmt_t stmts[] = {
        {"INSERT INTO auth.tenants (id, name) VALUES ($1, $2)", 2, tenant},
        //  Its creator administers it until someone else is invited
        {"INSERT INTO auth.memberships (tenant_id, user_id, role) VALUES ($1, $2, "
         "'tenant_admin')",
         2, member}};
    auth_call_record (call, s_tenant_get, call->other_id, "tenant.created", call->user_id,
                      call->other_id, NULL, stmts, 2);
}

void
auth_admin_tenants_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__id_request__descriptor, true);
    if (call
        && s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "tenant"))
        s_tenant_get (call, NULL);
}

static void
s_tenant_updated (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1)
        auth_call_fail (call, "not_found", "no such tenant");
    else
        s_tenant_get (call, result);
}

void
auth_admin_tenants_update (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (
        state, request, &chorus_auth__tenant_update_request__descriptor, true);
    if (!call)
        return;
    ChorusAuth__TenantUpdateRequest *args = (ChorusAuth__TenantUpdateRequest *)
                                                call->base.args;
    if (!s_take_id (call, args->id, "tenant"))
        return;
    const char *problem = s_tenant_name_problem (args->name);
    if (problem) {
        auth_call_fail (call, "bad_request", problem);
        return;
    }
    const char *params[] = {call->other_id, args->name};
    auth_call_query (call, s_tenant_updated,
                     "UPDATE auth.tenants SET name = $2 WHERE id = $1 RETURNING id", 2,
                     params);
}

void
auth_admin_tenants_delete (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__id_request__descriptor, true);
    if (!call
        || !s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "tenant"))
        return;
    char until[24];
    snprintf (until, sizeof until, "%lld",
              (long long) (call->state->access_ttl_s + AUTH_REVOCATION_MARGIN));
    const char *tenant[] = {call->other_id};
    const char *revoke[] = {call->other_id, until};
    db_stmt_t stmts[] = {
        {"SELECT auth.require (EXISTS (SELECT 1 FROM auth.tenants WHERE id = $1), "
         "'not_found', 'no such tenant')",
         1, tenant},
        //  Every member's tokens for it stop working
        {"INSERT INTO auth.revocations (kind, ref, tenant_id, at, until) SELECT "
         "'member', "
         "user_id::text, $1::text, date_trunc ('second', clock_timestamp ()), "
         "clock_timestamp () + make_interval (secs => $2::bigint) FROM auth.memberships "
         "WHERE tenant_id = $1::uuid",
         2, revoke},
        {"DELETE FROM auth.tenants WHERE id = $1", 1, tenant}};
    auth_call_record (call, s_done_empty, NULL, "tenant.deleted", call->user_id,
                      call->other_id, NULL, stmts, 3);
}

//  ---------------------------------------------------------------------------------
//  API keys

#define S_KEY_COLUMNS                                                                    \
    "id, name, scopes, prefix, auth.rfc3339 (created_at) AS created_at, auth.rfc3339 "   \
    "(expires_at) AS expires_at, auth.rfc3339 (last_used_at) AS last_used_at, "          \
    "created_by FROM auth.api_keys "

void
auth_admin_api_keys_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__list_request__descriptor, false);
    if (call)
        s_list (call,
                "SELECT auth.cursor_of (created_at, id) AS _cursor, " S_KEY_COLUMNS
                "WHERE tenant_id = $1 AND revoked_at IS NULL AND " S_AFTER (
                    "created_at", "id") " ORDER BY created_at DESC, id DESC LIMIT $3",
                s_reply_keys);
}

static void
s_key_read (auth_call_t *call, PGresult *result)
{
    s_reply_row (call, result, &chorus_auth__api_key__descriptor, "key");
}

static void
s_key_created (auth_call_t *call, PGresult *result)
{
    (void) result;
    const char *params[] = {call->other_id};
    auth_call_query (call, s_key_read, "SELECT " S_KEY_COLUMNS "WHERE id = $1", 1,
                     params);
}

void
auth_admin_api_keys_create (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (
        state, request, &chorus_auth__api_key_create_request__descriptor, false);
    if (!call)
        return;
    ChorusAuth__ApiKeyCreateRequest *args = (ChorusAuth__ApiKeyCreateRequest *)
                                                call->base.args;
    if (!args->name || !*args->name || strlen (args->name) > 100) {
        auth_call_fail (call, "bad_request", "name is required (at most 100 characters)");
        return;
    }
    //  Scopes: a subset of read, write, admin; default read and write
    bool read = args->n_scopes == 0, write = args->n_scopes == 0, admin = false;
    for (size_t i = 0; i < args->n_scopes; i++) {
        const char *scope = args->scopes[i];
        if (streq (scope, "read"))
            read = true;
        else if (streq (scope, "write"))
            write = true;
        else if (streq (scope, "admin"))
            admin = true;
        else {
            auth_call_fail (call, "bad_request", "scopes must be read, write or admin");
            return;
        }
    }
    char scopes[32];
    snprintf (scopes, sizeof scopes, "{%s%s%s%s%s}", read ? "read" : "",
              read && (write || admin) ? "," : "", write ? "write" : "",
              write && admin ? "," : "", admin ? "admin" : "");
    auth_uuid_new (call->other_id);
    call->token = auth_token_generate (AUTH_TOKEN_API_KEY_PREFIX);
    assert (call->token);
    char hash[65], prefix[13];
    int rc = auth_token_hash (call->token, hash, sizeof hash);
    assert (rc == 0);
    snprintf (prefix, sizeof prefix, "%s", call->token);
    const char *expires = args->expires_at && *args->expires_at ? args->expires_at : NULL;
    const char *check[] = {expires};
    const char *key[] = {call->other_id, call->tenant_id, call->user_id, args->name,
                         scopes,         prefix,          hash,          expires};
    db_stmt_t stmts[] = {
        {"SELECT auth.require ($1::timestamptz IS NULL OR $1::timestamptz > "
         "clock_timestamp (), 'bad_request', 'expires_at must be in the future')",
         1, check},
        {"INSERT INTO auth.api_keys (id, tenant_id, created_by, name, scopes, prefix, "
         "key_hash, expires_at) VALUES ($1, $2, $3, $4, $5::text[], $6, $7, "
         "$8::timestamptz)",
         8, key}};
    json_t *details = json_pack ("{s:s, s:s}", "name", args->name, "scopes", scopes);
    char *text = json_dumps (details, JSON_COMPACT);
    json_decref (details);
    auth_call_record (call, s_key_created, call->tenant_id, "api_key.created",
                      call->user_id, call->other_id, text, stmts, 2);
    free (text);
}

void
auth_admin_api_keys_delete (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__id_request__descriptor, false);
    if (!call
        || !s_take_id (call, ((ChorusAuth__IdRequest *) call->base.args)->id, "API key"))
        return;
    char until[24];
    snprintf (until, sizeof until, "%d", S_KEY_REVOCATION_TTL);
    const char *params[] = {call->other_id, call->tenant_id};
    const char *revocation[] = {"api_key", call->other_id, call->tenant_id, until};
    db_stmt_t stmts[] = {
        {"WITH revoked AS (UPDATE auth.api_keys SET revoked_at = clock_timestamp () "
         "WHERE "
         "id = $1 AND tenant_id = $2 AND revoked_at IS NULL RETURNING 1) SELECT "
         "auth.require (count (*) = 1, 'not_found', 'no such API key') FROM revoked",
         2, params},
        auth_sessions_revocation_stmt (revocation)};
    auth_call_record (call, s_done_empty, call->tenant_id, "api_key.revoked",
                      call->user_id, call->other_id, NULL, stmts, 2);
}

static void
s_ignore (PGresult *result, const char *error, void *arg)
{
    (void) result;
    (void) error;
    (void) arg;
}

static void
s_key_verified (auth_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        auth_call_fail (call, "unauthorized",
                        "the API key is unknown, revoked or expired");
        return;
    }
    //  Note the use, at most once a minute per key (best effort)
    db_pool_t *db = service_runtime_db (call->state->runtime);
    const char *params[] = {PQgetvalue (result, 0, 0)};
    if (db
        && db_pool_query (
            db,
            "UPDATE auth.api_keys SET last_used_at = clock_timestamp () WHERE "
            "id = $1 AND (last_used_at IS NULL OR last_used_at < "
            "clock_timestamp () - interval '1 minute')",
            1, params, s_ignore, NULL))
        core_log_debug (call->state->log, auth_call_request_id (call),
                        "last_used_at not updated");
    s_reply_row (call, result, &chorus_auth__api_key_identity__descriptor, NULL);
}

void
auth_admin_api_keys_verify (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__api_key_verify_request__descriptor);
    if (!call)
        return;
    ChorusAuth__ApiKeyVerifyRequest *args = (ChorusAuth__ApiKeyVerifyRequest *)
                                                call->base.args;
    if (!args->key_hash || strlen (args->key_hash) != 64) {
        auth_call_fail (call, "bad_request", "key_hash must be 64 hex digits");
        return;
    }
    const char *params[] = {args->key_hash};
    auth_call_query (
        call, s_key_verified,
        "SELECT k.id AS key_id, k.tenant_id, k.created_by AS user_id, CASE WHEN 'admin' "
        "= "
        "ANY (k.scopes) AND (m.role = 'tenant_admin' OR u.platform_admin) THEN "
        "'tenant_admin' ELSE 'member' END AS role, k.scopes, COALESCE (extract (epoch "
        "FROM "
        "k.expires_at)::bigint, 0) AS expires_at FROM auth.api_keys k JOIN "
        "auth.memberships m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by "
        "JOIN auth.users u ON u.id = k.created_by WHERE k.key_hash = $1 AND k.revoked_at "
        "IS NULL AND (k.expires_at IS NULL OR k.expires_at > clock_timestamp ())",
        1, params);
}

//  ---------------------------------------------------------------------------------
//  Audit log and revocations

void
auth_admin_audit_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    auth_call_t *call = s_admin_call (state, request,
                                      &chorus_auth__list_request__descriptor, false);
    if (call)
        s_list (
            call,
            "SELECT id, action, actor_id, target_id, ip, auth.rfc3339 (created_at) AS "
            "created_at, details::text AS details, auth.cursor_of (created_at, id) AS "
            "_cursor FROM auth.audit_log WHERE tenant_id = $1 AND " S_AFTER (
                "created_at", "id") " ORDER BY created_at DESC, id DESC LIMIT $3",
            s_reply_audit);
}

static void
s_revocations_read (auth_call_t *call, PGresult *result)
{
    ChorusAuth__RevocationsRequest *args = (ChorusAuth__RevocationsRequest *)
                                               call->base.args;
    ChorusAuth__RevocationList *list = (ChorusAuth__RevocationList *) calloc (
        1, sizeof (ChorusAuth__RevocationList));
    assert (list);
    chorus_auth__revocation_list__init (list);
    char error[200] = "";
    if (db_message_append_rows (&list->base, "data", result, error, sizeof error)) {
        protobuf_c_message_free_unpacked (&list->base, NULL);
        core_log_error (call->state->log, auth_call_request_id (call), "revocations: %s",
                        error);
        auth_call_fail (call, "internal", "the revocations could not be read");
        return;
    }
    list->has_last_seq = 1;
    list->last_seq = args->has_after_seq ? args->after_seq : 0;
    for (size_t i = 0; i < list->n_data; i++)
        if (list->data[i]->seq > list->last_seq)
            list->last_seq = list->data[i]->seq;
    auth_call_reply (call, &list->base);
    protobuf_c_message_free_unpacked (&list->base, NULL);
}

void
auth_admin_revocations_list (service_runtime_t *runtime, bus_request_t *request,
                             void *state)
{
    (void) runtime;
    auth_call_t *call = auth_call_new ((auth_state_t *) state, &request,
                                       &chorus_auth__revocations_request__descriptor);
    if (!call)
        return;
    ChorusAuth__RevocationsRequest *args = (ChorusAuth__RevocationsRequest *)
                                               call->base.args;
    char after[24];
    snprintf (after, sizeof after, "%llu",
              (unsigned long long) (args->has_after_seq ? args->after_seq : 0));
    const char *params[] = {after};
    //  Rows of the last 30 seconds come again: a transaction that took its sequence
    //  number early may commit after a later one was already seen
    auth_call_query (
        call, s_revocations_read,
        "SELECT seq, kind, ref AS id, tenant_id, extract (epoch FROM at)::bigint "
        "AS at, extract (epoch FROM until)::bigint AS until FROM "
        "auth.revocations WHERE until > clock_timestamp () AND (seq > $1::bigint "
        "OR at > clock_timestamp () - interval '30 seconds') ORDER BY seq LIMIT "
        "1000",
        1, params);
}
