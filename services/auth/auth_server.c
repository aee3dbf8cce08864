/*  auth_server: the auth service on the shared runtime. Its state holds the
    access-token issuer, the argon2id threads and the mail hook; its commands
    are the handlers of auth_sessions and auth_admin. On first start with an
    empty database it can create a demo tenant and admin (tools/chorus up).   */
#include "auth_server.h"

#include <assert.h>
#include <sodium.h>

#include "auth_admin.h"
#include "auth_keys.h"
#include "auth_passwords.h"
#include "auth_sessions.h"
#include "auth_token.h"

const core_config_option_t auth_server_options[] = {
    {"auth_refresh_ttl_s", "CHORUS_AUTH_REFRESH_TTL_S", CORE_CONFIG_INT, 60, 31536000,
     "604800", "auth: lifetime of a refresh token in seconds"},
    {"auth_invite_ttl_s", "CHORUS_AUTH_INVITE_TTL_S", CORE_CONFIG_INT, 60, 31536000,
     "604800", "auth: lifetime of an invite in seconds"},
    {"auth_reset_ttl_s", "CHORUS_AUTH_RESET_TTL_S", CORE_CONFIG_INT, 60, 86400, "3600",
     "auth: lifetime of a password-reset token in seconds"},
    {"login_ip_failures", "CHORUS_LOGIN_IP_FAILURES", CORE_CONFIG_INT, 1, 1000000, "10",
     "auth: failed logins per client IP per minute before 429"},
    {"login_account_failures", "CHORUS_LOGIN_ACCOUNT_FAILURES", CORE_CONFIG_INT, 1,
     1000000, "100", "auth: failed logins per account per hour before 429"},
    {"login_limit_fail_open", "CHORUS_LOGIN_LIMIT_FAIL_OPEN", CORE_CONFIG_BOOL, 0, 0,
     "false", "auth: allow logins while Redis (the login limiter) is down"},
    {"platform_admin_email", "CHORUS_PLATFORM_ADMIN_EMAIL", CORE_CONFIG_STRING, 0, 0, "",
     "auth: this email registers as platform admin (the first user always does)"},
    {"mail_dir", "CHORUS_MAIL_DIR", CORE_CONFIG_STRING, 0, 0, "",
     "auth: folder where reset and invite mails are written as JSON (empty: log only)"},
    {"demo_login_file", "CHORUS_DEMO_LOGIN_FILE", CORE_CONFIG_STRING, 0, 0, "",
     "auth: with an empty database, create a demo tenant and admin, login into this "
     "file"},
    {"auth_hash_threads", "CHORUS_AUTH_HASH_THREADS", CORE_CONFIG_INT, 1, 64, "2",
     "auth: threads hashing passwords (argon2id, 19 MiB each)"},
    {"auth_hash_queue", "CHORUS_AUTH_HASH_QUEUE", CORE_CONFIG_INT, 1, 100000, "256",
     "auth: password jobs waiting at most before logins are refused (503)"},
};
const size_t auth_server_option_count = sizeof auth_server_options
                                        / sizeof auth_server_options[0];

static const service_command_t s_commands[] = {
    {"register", auth_sessions_register},
    {"login", auth_sessions_login},
    {"refresh", auth_sessions_refresh},
    {"logout", auth_sessions_logout},
    {"me", auth_sessions_me},
    {"switch", auth_sessions_switch},
    {"password.change", auth_passwords_change},
    {"password.forgot", auth_passwords_forgot},
    {"password.reset", auth_passwords_reset},
    {"invites.list", auth_admin_invites_list},
    {"invites.create", auth_admin_invites_create},
    {"invites.delete", auth_admin_invites_delete},
    {"invites.accept", auth_admin_invites_accept},
    {"members.list", auth_admin_members_list},
    {"members.get", auth_admin_members_get},
    {"members.update", auth_admin_members_update},
    {"members.delete", auth_admin_members_delete},
    {"tenants.list", auth_admin_tenants_list},
    {"tenants.create", auth_admin_tenants_create},
    {"tenants.get", auth_admin_tenants_get},
    {"tenants.update", auth_admin_tenants_update},
    {"tenants.delete", auth_admin_tenants_delete},
    {"api_keys.list", auth_admin_api_keys_list},
    {"api_keys.create", auth_admin_api_keys_create},
    {"api_keys.delete", auth_admin_api_keys_delete},
    {"api_keys.verify", auth_admin_api_keys_verify},
    {"audit.list", auth_admin_audit_list},
    {"revocations.list", auth_admin_revocations_list},
};

//  ---------------------------------------------------------------------------------
//  The demo login of a fresh install

typedef struct {
    auth_state_t *state;           //  the service
    char *path;                    //  where the login goes
    char password[24];             //  the random password
    char user_id[AUTH_ID_SIZE];    //  the admin
    char tenant_id[AUTH_ID_SIZE];  //  the demo tenant
} s_demo_t;

static void
s_demo_free (s_demo_t *demo)
{
    free (demo->path);
    sodium_memzero (demo, sizeof *demo);
    free (demo);
}

static void
s_demo_written (PGresult *result, const char *error, void *arg)
{
    (void) result;
    s_demo_t *demo = (s_demo_t *) arg;
    if (error)
        core_log_error (demo->state->log, NULL, "demo login not created: %s", error);
    else {
        char temporary[1100];
        snprintf (temporary, sizeof temporary, "%s.tmp", demo->path);
        FILE *file = fopen (temporary, "w");
        if (file) {
            fchmod (fileno (file), 0600);
            fprintf (file, "email=demo@chorus.local\npassword=%s\ntenant=Demo\n",
                     demo->password);
            fclose (file);
        }
        if (!file || rename (temporary, demo->path))
            core_log_error (demo->state->log, NULL, "cannot write %s", demo->path);
        else
            core_log_info (demo->state->log, NULL,
                           "created the demo tenant and its admin demo@chorus.local "
                           "(password in %s)",
                           demo->path);
    }
    s_demo_free (demo);
}

static void
s_demo_hashed (auth_hasher_status_t status, const char *hash, void *arg)
{
    s_demo_t *demo = (s_demo_t *) arg;
    db_pool_t *db = service_runtime_db (demo->state->runtime);
    if (status != AUTH_HASHER_OK || !db) {
        s_demo_free (demo);
        return;
    }
    const char *user[] = {demo->user_id, hash};
    const char *tenant[] = {demo->tenant_id};
    const char *member[] = {demo->tenant_id, demo->user_id};
    db_stmt_t stmts[] = {
        {"SELECT pg_advisory_xact_lock (hashtext ('auth.users'))", 0, NULL},
        {"SELECT auth.require (NOT EXISTS (SELECT 1 FROM auth.users), 'conflict')", 0,
         NULL},
        {"INSERT INTO auth.users (id, email, email_key, name, password_hash, "
         "platform_admin) VALUES ($1, 'demo@chorus.local', 'demo@chorus.local', 'Demo "
         "admin', $2, true)",
         2, user},
        {"INSERT INTO auth.tenants (id, name) VALUES ($1, 'Demo')", 1, tenant},
        {"INSERT INTO auth.memberships (tenant_id, user_id, role) VALUES ($1, $2, "
         "'tenant_admin')",
         2, member}};
    if (db_pool_tx (db, stmts, 5, s_demo_written, demo))
        s_demo_free (demo);
}

static void
s_demo_counted (PGresult *result, const char *error, void *arg)
{
    s_demo_t *demo = (s_demo_t *) arg;
    if (error || PQntuples (result) != 1 || !streq (PQgetvalue (result, 0, 0), "0")) {
        if (error)
            core_log_warn (demo->state->log, NULL, "demo login check failed: %s", error);
        s_demo_free (demo);
        return;
    }
    if (auth_hasher_hash (demo->state->hasher, demo->password, s_demo_hashed, demo))
        s_demo_free (demo);
}

//  With an empty user table, create the demo tenant and admin.
static void
s_demo_start (auth_state_t *state, const char *path)
{
    db_pool_t *db = service_runtime_db (state->runtime);
    if (!db || !path || !*path)
        return;
    s_demo_t *demo = calloc (1, sizeof (s_demo_t));
    assert (demo);
    demo->state = state;
    demo->path = strdup (path);
    char *random = auth_token_generate ("");
    assert (demo->path && random);
    snprintf (demo->password, sizeof demo->password, "%.20s", random);
    sodium_memzero (random, strlen (random));
    free (random);
    auth_uuid_new (demo->user_id);
    auth_uuid_new (demo->tenant_id);
    if (db_pool_query (db, "SELECT count (*) FROM auth.users", 0, NULL, s_demo_counted,
                       demo))
        s_demo_free (demo);
}

//  ---------------------------------------------------------------------------------
//  State

static void *
s_state_new (service_runtime_t *runtime)
{
    core_config_t *config = service_runtime_config (runtime);
    auth_state_t *state = calloc (1, sizeof (auth_state_t));
    assert (state);
    state->runtime = runtime;
    state->log = service_runtime_log (runtime);
    char *error = NULL;
    state->jwt = auth_keys_jwt_new (config, &error);
    if (!state->jwt) {
        core_log_error (state->log, NULL, "no access tokens can be issued: %s",
                        error ? error : "?");
        free (error);
    }
    else if (!auth_jwt_can_sign (state->jwt))
        core_log_error (
            state->log, NULL,
            "no access tokens can be issued: the auth service was given "
            "public keys only (set CHORUS_JWT_PRIVATE_KEY or CHORUS_SECRET_KEY)");
    state->access_ttl_s = core_config_int (config, "jwt_ttl_s");
    state->refresh_ttl_s = core_config_int (config, "auth_refresh_ttl_s");
    state->invite_ttl_s = core_config_int (config, "auth_invite_ttl_s");
    state->reset_ttl_s = core_config_int (config, "auth_reset_ttl_s");
    state->login_ip_failures = core_config_int (config, "login_ip_failures");
    state->login_account_failures = core_config_int (config, "login_account_failures");
    state->login_fail_open = core_config_bool (config, "login_limit_fail_open");
    state->platform_admin_email = core_config_str (config, "platform_admin_email");
    state->hasher = auth_hasher_new (
        (int) core_config_int (config, "auth_hash_threads"),
        (size_t) core_config_int (config, "auth_hash_queue"));
    assert (state->hasher);
    int rc = auth_hasher_attach (state->hasher, service_runtime_loop (runtime));
    assert (rc == 0);
    state->mail = auth_mail_new (core_config_str (config, "mail_dir"), state->log);
    if (!state->mail)
        state->mail = auth_mail_new (NULL, state->log);
    //  Unknown emails are checked against this, so they cost what known ones do
    char *random = auth_token_generate ("");
    assert (random);
    rc = auth_password_hash (random, state->dummy_hash, sizeof state->dummy_hash, NULL,
                             0);
    assert (rc == 0);
    free (random);
    s_demo_start (state, core_config_str (config, "demo_login_file"));
    return state;
}

static void
s_state_destroy (void **state_p)
{
    auth_state_t *state = (auth_state_t *) *state_p;
    if (!state)
        return;
    //  Pending password jobs fail into their calls, which answer and end
    auth_hasher_destroy (&state->hasher);
    auth_mail_destroy (&state->mail);
    auth_jwt_destroy (&state->jwt);
    free (state);
    *state_p = NULL;
}

//  Every command needs the state; a service that could not make its token
//  issuer answers "unavailable" instead of handling anything.
static const service_definition_t s_definition = {
    .name = "auth",
    .schema = "auth",
    .uses_redis = true,
    .commands = s_commands,
    .command_count = sizeof s_commands / sizeof s_commands[0],
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
};

void
auth_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
