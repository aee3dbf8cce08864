/*  auth_call: auth requests on service_call, audited changes and password jobs
    (see auth_call.h).                                                        */
#include "auth_call.h"

#include <assert.h>
#include <sodium.h>

#include "codec_msgpack.h"

//  Frees what an auth call holds beyond the service_call, wiping secrets.
static void
s_call_free (service_call_t *base)
{
    auth_call_t *call = (auth_call_t *) base;
    if (call->token) {
        sodium_memzero (call->token, strlen (call->token));
        free (call->token);
    }
    free (call->text);
    sodium_memzero (call->hash, sizeof call->hash);
}

auth_call_t *
auth_call_new (auth_state_t *state, bus_request_t **request_p,
               const ProtobufCMessageDescriptor *args_desc)
{
    auth_call_t *call = (auth_call_t *) service_call_new (
        state->runtime, state, request_p, args_desc, sizeof (auth_call_t));
    if (call) {
        call->state = state;
        call->base.free_fn = s_call_free;
    }
    return call;
}

void
auth_call_reply (auth_call_t *call, const ProtobufCMessage *reply)
{
    service_call_reply (&call->base, reply);
}

void
auth_call_fail_retry (auth_call_t *call, const char *code, const char *message,
                      uint32_t retry_after_s)
{
    service_call_fail_retry (&call->base, code, message, retry_after_s);
}

void
auth_call_fail (auth_call_t *call, const char *code, const char *message)
{
    service_call_fail (&call->base, code, message);
}

void
auth_call_reply_list (auth_call_t *call, const ProtobufCMessageDescriptor *list_desc,
                      PGresult *result, uint32_t limit)
{
    service_call_reply_list (&call->base, list_desc, result, limit);
}

uint32_t
auth_list_limit (const ChorusAuth__ListRequest *list)
{
    return service_call_page_limit (list && list->has_limit, list ? list->limit : 0);
}

//  The service_call step that runs the auth step the call is waiting for.
static void
s_step (service_call_t *base, PGresult *result)
{
    auth_call_t *call = (auth_call_t *) base;
    call->next (call, result);
}

void
auth_call_query (auth_call_t *call, auth_step_fn *next, const char *sql, int nparams,
                 const char *const *params)
{
    call->next = next;
    service_call_query (&call->base, s_step, sql, nparams, params);
}

void
auth_call_tx (auth_call_t *call, auth_step_fn *next, const db_stmt_t *stmts, size_t count)
{
    call->next = next;
    service_call_tx (&call->base, s_step, stmts, count);
}

void
auth_call_record (auth_call_t *call, auth_step_fn *next, const char *tenant_id,
                  const char *action, const char *actor_id, const char *target_id,
                  const char *details, const db_stmt_t *stmts, size_t count)
{
    call->next = next;
    char id[AUTH_ID_SIZE], created_at[40];
    auth_uuid_new (id);
    service_time_rfc3339 (created_at, sizeof created_at);
    //  The event's payload is the audit entry itself
    ChorusAuth__AuditEntry entry = CHORUS_AUTH__AUDIT_ENTRY__INIT;
    entry.id = id;
    entry.action = (char *) action;
    entry.actor_id = actor_id && *actor_id ? (char *) actor_id : NULL;
    entry.target_id = target_id && *target_id ? (char *) target_id : NULL;
    entry.ip = (char *) auth_call_ip (call);
    entry.created_at = created_at;
    entry.details = (char *) (details ? details : "{}");

    db_stmt_t *all = calloc (count + 1, sizeof (db_stmt_t));
    assert (all);
    if (count)
        memcpy (all, stmts, count * sizeof (db_stmt_t));
    const char *params[] = {id,
                            tenant_id && *tenant_id ? tenant_id : NULL,
                            action,
                            entry.actor_id,
                            entry.target_id,
                            entry.ip,
                            entry.details};
    all[count] = (db_stmt_t){
        "INSERT INTO auth.audit_log (id, tenant_id, action, actor_id, target_id, ip, "
        "details) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
        7, params};
    char topic[96];
    snprintf (topic, sizeof topic, "auth.%s", action);
    service_call_emit (&call->base, s_step, tenant_id, topic, &entry.base, all,
                       count + 1);
    free (all);
}

//  A password job came back.
static void
s_on_password (auth_hasher_status_t status, const char *hash, void *arg)
{
    auth_call_t *call = (auth_call_t *) arg;
    if (status == AUTH_HASHER_FAILED) {
        auth_call_fail (call, "unavailable", "the password could not be processed");
        return;
    }
    if (hash)
        snprintf (call->hash, sizeof call->hash, "%s", hash);
    call->matched = status == AUTH_HASHER_OK;
    call->next (call, NULL);
}

void
auth_call_hash (auth_call_t *call, auth_step_fn *next, const char *password)
{
    call->next = next;
    if (auth_hasher_hash (call->state->hasher, password, s_on_password, call))
        auth_call_fail_retry (call, "overloaded", "too many logins at once, try again",
                              1);
}

void
auth_call_verify (auth_call_t *call, auth_step_fn *next, const char *hash,
                  const char *password)
{
    call->next = next;
    if (auth_hasher_verify (call->state->hasher, hash ? hash : call->state->dummy_hash,
                            password, s_on_password, call))
        auth_call_fail_retry (call, "overloaded", "too many logins at once, try again",
                              1);
}

const char *
auth_password_problem (const char *password)
{
    if (!password || !*password)
        return "password is required";
    size_t len = strlen (password);
    if (len < 8)
        return "password must be at least 8 characters";
    if (len > AUTH_PASSWORD_MAX)
        return "password must be at most 1024 bytes";
    return NULL;
}

const char *
auth_email_problem (const char *email)
{
    if (!email || !*email)
        return "email is required";
    size_t len = strlen (email);
    if (len > 254)
        return "email must be at most 254 characters";
    const char *at = strchr (email, '@');
    if (!at || at == email || !at[1] || strchr (at + 1, '@') || !strchr (at + 1, '.'))
        return "email must be an address like name@example.com";
    for (const char *p = email; *p; p++)
        if ((unsigned char) *p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == ';')
            return "email must not contain spaces or <>,;";
    return NULL;
}

void
auth_call_test (bool verbose)
{
    (void) verbose;
    printf (" * auth_call: ");
    assert (auth_uuid_valid ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!auth_uuid_valid ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1"));
    assert (!auth_uuid_valid ("0b8e2a4c_5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!auth_uuid_valid ("zb8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!auth_uuid_valid (NULL));
    char id[AUTH_ID_SIZE];
    auth_uuid_new (id);
    assert (auth_uuid_valid (id));
    assert (auth_password_problem ("short"));
    assert (auth_password_problem (""));
    assert (auth_password_problem (NULL));
    assert (auth_password_problem ("long enough") == NULL);
    assert (auth_email_problem ("a@example.com") == NULL);
    assert (auth_email_problem ("a@b"));
    assert (auth_email_problem ("@example.com"));
    assert (auth_email_problem ("a b@example.com"));
    assert (auth_email_problem ("a@b@example.com"));
    assert (auth_email_problem (NULL));
    printf ("OK\n");
}
