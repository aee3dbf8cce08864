/*  auth_call: requests in progress and their steps (see auth_call.h).          */
#include "auth_call.h"

#include <assert.h>
#include <jansson.h>
#include <sodium.h>
#include <uuid/uuid.h>

#include "codec_msgpack.h"
#include "db_message.h"

//  Error codes a migration's auth.require() may raise (schemas/auth.md, "Errors"),
//  with the message the caller sees.
static const struct {
    const char *code;     //  error code
    const char *message;  //  default message
} s_codes[] = {
    {"bad_request", "the request is not valid"},
    {"invalid_credentials", "wrong email or password"},
    {"invalid_token", "the token is unknown, expired or already used"},
    {"token_reused", "this refresh token was already used: the session is revoked"},
    {"unauthorized", "authentication is required"},
    {"forbidden", "not allowed"},
    {"not_found", "not found"},
    {"conflict", "it exists already"},
    {"rate_limited", "too many attempts"},
    {"unavailable", "try again later"},
};

auth_call_t *
auth_call_new (auth_state_t *state, bus_request_t **request_p,
               const ProtobufCMessageDescriptor *args_desc)
{
    bus_request_t *request = *request_p;
    *request_p = NULL;
    bus_worker_t *worker = service_runtime_worker (state->runtime);
    ProtobufCMessage *args = NULL;
    char error[200] = "";
    if (bus_request_size (request) == 0) {
        args = (ProtobufCMessage *) calloc (1, args_desc->sizeof_message);
        assert (args);
        args_desc->message_init (args);
    }
    else
        args = codec_decode (args_desc, bus_request_body (request),
                             bus_request_size (request), error, sizeof error);
    if (!args) {
        bus_worker_error (worker, &request, "bad_request", error);
        return NULL;
    }
    auth_call_t *call = calloc (1, sizeof (auth_call_t));
    assert (call);
    call->state = state;
    call->request = request;
    call->headers = bus_request_headers (request);
    call->args = args;
    return call;
}

//  Free a call, wiping what it held.
static void
s_call_free (auth_call_t *call)
{
    if (call->token) {
        sodium_memzero (call->token, strlen (call->token));
        free (call->token);
    }
    free (call->text);
    if (call->reply)
        protobuf_c_message_free_unpacked (call->reply, NULL);
    if (call->args)
        protobuf_c_message_free_unpacked (call->args, NULL);
    sodium_memzero (call, sizeof *call);
    free (call);
}

void
auth_call_reply (auth_call_t *call, const ProtobufCMessage *reply)
{
    bus_worker_t *worker = service_runtime_worker (call->state->runtime);
    if (reply)
        bus_worker_final_msg (worker, &call->request, reply);
    else
        bus_worker_final (worker, &call->request, NULL, 0);
    s_call_free (call);
}

void
auth_call_fail_retry (auth_call_t *call, const char *code, const char *message,
                      uint32_t retry_after_s)
{
    bus_worker_t *worker = service_runtime_worker (call->state->runtime);
    core_log_debug (call->state->log, auth_call_request_id (call), "%s: %s",
                    bus_request_command (call->request), code);
    bus_worker_error_retry (worker, &call->request, code, message, retry_after_s);
    s_call_free (call);
}

void
auth_call_fail (auth_call_t *call, const char *code, const char *message)
{
    auth_call_fail_retry (call, code, message, 0);
}

//  Answer a database failure: an auth.require() code, a unique violation, bad
//  input, or an internal error (logged, not shown).
static void
s_fail_database (auth_call_t *call, const char *sqlstate, const char *primary,
                 const char *detail, const char *error)
{
    if (sqlstate && streq (sqlstate, "CH001") && primary) {
        for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++)
            if (streq (primary, s_codes[i].code)) {
                auth_call_fail (call, s_codes[i].code,
                                detail && *detail ? detail : s_codes[i].message);
                return;
            }
    }
    if (sqlstate && streq (sqlstate, "23505")) {
        auth_call_fail (call, "conflict",
                        call->conflict ? call->conflict : "it exists already");
        return;
    }
    if (sqlstate && streq (sqlstate, "23503")) {
        auth_call_fail (call, "not_found", "it does not exist");
        return;
    }
    if (sqlstate && (strncmp (sqlstate, "22", 2) == 0)) {
        auth_call_fail (call, "bad_request", primary ? primary : "invalid value");
        return;
    }
    core_log_error (call->state->log, auth_call_request_id (call), "%s: database: %s",
                    bus_request_command (call->request), error ? error : "?");
    if (error && (strstr (error, "timeout") || strstr (error, "queue")))
        auth_call_fail (call, "unavailable", "the database is busy, try again");
    else
        auth_call_fail (call, "internal", "the request failed");
}

static void
s_on_result (PGresult *result, const char *error, void *arg)
{
    auth_call_t *call = (auth_call_t *) arg;
    if (!error) {
        call->next (call, result);
        return;
    }
    const char *sqlstate = result ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = result ? PQresultErrorField (result, PG_DIAG_MESSAGE_PRIMARY)
                                 : NULL;
    const char *detail = result ? PQresultErrorField (result, PG_DIAG_MESSAGE_DETAIL)
                                : NULL;
    s_fail_database (call, sqlstate, primary, detail, error);
}

void
auth_call_query (auth_call_t *call, auth_step_fn *next, const char *sql, int nparams,
                 const char *const *params)
{
    db_pool_t *db = service_runtime_db (call->state->runtime);
    call->next = next;
    if (!db) {
        auth_call_fail (call, "unavailable", "no database");
        return;
    }
    if (db_pool_query (db, sql, nparams, params, s_on_result, call))
        auth_call_fail (call, "overloaded", db_pool_error (db));
}

void
auth_call_tx (auth_call_t *call, auth_step_fn *next, const db_stmt_t *stmts, size_t count)
{
    db_pool_t *db = service_runtime_db (call->state->runtime);
    call->next = next;
    if (!db) {
        auth_call_fail (call, "unavailable", "no database");
        return;
    }
    if (db_pool_tx (db, stmts, count, s_on_result, call))
        auth_call_fail (call, "overloaded", db_pool_error (db));
}

//  The outbox reports failures as text: find the SQLSTATE-like meaning in it.
static void
s_on_recorded (const char *error, uint64_t seq, void *arg)
{
    (void) seq;
    auth_call_t *call = (auth_call_t *) arg;
    if (!error) {
        call->next (call, NULL);
        return;
    }
    const char *text = error;
    if (strncmp (text, "ERROR:", 6) == 0)
        text += 6;
    while (*text == ' ')
        text++;
    for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++) {
        size_t len = strlen (s_codes[i].code);
        if (strncmp (text, s_codes[i].code, len) == 0
            && (text[len] == 0 || text[len] == '\n' || text[len] == ' ')) {
            //  The detail line, when there is one, is the message to show
            char detail[256] = "";
            const char *line = strstr (text, "DETAIL:");
            if (line) {
                line += 7;
                while (*line == ' ')
                    line++;
                size_t n = strcspn (line, "\n");
                snprintf (detail, sizeof detail, "%.*s", (int) n, line);
            }
            s_fail_database (call, "CH001", s_codes[i].code, detail, error);
            return;
        }
    }
    if (strstr (text, "duplicate key"))
        s_fail_database (call, "23505", NULL, NULL, error);
    else if (strstr (text, "violates foreign key"))
        s_fail_database (call, "23503", NULL, NULL, error);
    else if (strstr (text, "invalid input syntax"))
        s_fail_database (call, "22P02", "invalid value", NULL, error);
    else
        s_fail_database (call, NULL, NULL, NULL, error);
}

void
auth_call_record (auth_call_t *call, auth_step_fn *next, const char *tenant_id,
                  const char *action, const char *actor_id, const char *target_id,
                  const char *details, const db_stmt_t *stmts, size_t count)
{
    service_events_t *events = service_runtime_events (call->state->runtime);
    call->next = next;
    if (!events) {
        auth_call_fail (call, "unavailable", "no database");
        return;
    }
    char id[AUTH_ID_SIZE], created_at[40];
    auth_uuid_new (id);
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (created_at, sizeof created_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    //  The event's payload is the audit entry itself
    ChorusAuth__AuditEntry entry = CHORUS_AUTH__AUDIT_ENTRY__INIT;
    entry.id = id;
    entry.action = (char *) action;
    entry.actor_id = actor_id && *actor_id ? (char *) actor_id : NULL;
    entry.target_id = target_id && *target_id ? (char *) target_id : NULL;
    entry.ip = (char *) auth_call_ip (call);
    entry.created_at = created_at;
    entry.details = (char *) (details ? details : "{}");
    size_t size = 0;
    void *payload = codec_encode_alloc (&entry.base, &size);
    assert (payload);

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
    int rc = service_events_emit (events, tenant_id ? tenant_id : "", topic, payload,
                                  size, all, count + 1, s_on_recorded, call);
    free (all);
    free (payload);
    if (rc)
        auth_call_fail (call, "overloaded", "too many changes in progress");
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
    bool dummy = hash == NULL;
    if (auth_hasher_verify (call->state->hasher, dummy ? call->state->dummy_hash : hash,
                            password, s_on_password, call))
        auth_call_fail_retry (call, "overloaded", "too many logins at once, try again",
                              1);
    else if (dummy)
        call->hash[0] = 0;
}

static const char *
s_or_empty (const char *s)
{
    return s ? s : "";
}

const char *
auth_call_tenant (auth_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->tenant_id : NULL);
}

const char *
auth_call_user (auth_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->user_id : NULL);
}

const char *
auth_call_role (auth_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->role : NULL);
}

const char *
auth_call_ip (auth_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->client_ip : NULL);
}

const char *
auth_call_request_id (auth_call_t *call)
{
    return call->headers ? call->headers->request_id : NULL;
}

bool
auth_call_is_tenant_admin (auth_call_t *call)
{
    const char *role = auth_call_role (call);
    return streq (role, "tenant_admin") || streq (role, "platform_admin");
}

bool
auth_call_is_platform_admin (auth_call_t *call)
{
    return streq (auth_call_role (call), "platform_admin");
}

uint32_t
auth_list_limit (const ChorusAuth__ListRequest *list)
{
    if (!list || !list->has_limit || list->limit == 0)
        return 50;
    return list->limit > 100 ? 100 : list->limit;
}

void
auth_call_reply_list (auth_call_t *call, const ProtobufCMessageDescriptor *list_desc,
                      PGresult *result, uint32_t limit)
{
    ProtobufCMessage *list = (ProtobufCMessage *) calloc (1, list_desc->sizeof_message);
    assert (list);
    list_desc->message_init (list);
    char error[200] = "";
    int rows = PQntuples (result);
    if (db_message_append_rows (list, "data", result, error, sizeof error)) {
        protobuf_c_message_free_unpacked (list, NULL);
        core_log_error (call->state->log, auth_call_request_id (call), "list: %s", error);
        auth_call_fail (call, "internal", "the list could not be read");
        return;
    }
    const ProtobufCFieldDescriptor
        *data = protobuf_c_message_descriptor_get_field_by_name (list_desc, "data");
    const ProtobufCFieldDescriptor *next =
        protobuf_c_message_descriptor_get_field_by_name (list_desc, "next_cursor");
    assert (data && next);
    size_t *count = (size_t *) ((char *) list + data->quantifier_offset);
    ProtobufCMessage **items = *(ProtobufCMessage ***) ((char *) list + data->offset);
    int cursor = PQfnumber (result, "_cursor");
    if ((size_t) rows > limit && *count > limit && cursor >= 0) {
        //  One row more than asked: there is a next page, starting after row limit-1
        while (*count > limit) {
            protobuf_c_message_free_unpacked (items[*count - 1], NULL);
            (*count)--;
        }
        char **next_cursor = (char **) ((char *) list + next->offset);
        *next_cursor = strdup (PQgetvalue (result, (int) limit - 1, cursor));
        assert (*next_cursor);
    }
    auth_call_reply (call, list);
    protobuf_c_message_free_unpacked (list, NULL);
}

bool
auth_uuid_valid (const char *s)
{
    if (!s || strlen (s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        }
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                   || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

void
auth_uuid_new (char *out)
{
    uuid_t uuid;
    uuid_generate_random (uuid);
    uuid_unparse_lower (uuid, out);
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
