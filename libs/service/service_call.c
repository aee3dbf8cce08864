/*  service_call: requests in progress and their steps (see service_call.h).    */
#include "service_call.h"

#include <assert.h>
#include <ctype.h>
#include <sys/time.h>
#include <uuid/uuid.h>

#include "codec_msgpack.h"
#include "db_message.h"

//  Error codes a migration's require() may raise (SQLSTATE CH001, the code as the
//  message, the text to show as the detail), with their default message.
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

service_call_t *
service_call_new (service_runtime_t *runtime, void *state, bus_request_t **request_p,
                  const ProtobufCMessageDescriptor *args_desc, size_t size)
{
    assert (size >= sizeof (service_call_t));
    bus_request_t *request = *request_p;
    *request_p = NULL;
    bus_worker_t *worker = service_runtime_worker (runtime);
    ProtobufCMessage *args = NULL;
    char error[200] = "";
    if (bus_request_size (request) == 0)
        args = db_message_new (args_desc);
    else
        args = codec_decode (args_desc, bus_request_body (request),
                             bus_request_size (request), error, sizeof error);
    if (!args) {
        bus_worker_error (worker, &request, "bad_request", error);
        return NULL;
    }
    bus_request_drop_body (request);  //  args hold what it said
    service_call_t *call = calloc (1, size);
    assert (call);
    call->runtime = runtime;
    call->state = state;
    call->request = request;
    call->headers = bus_request_headers (request);
    call->args = args;
    return call;
}

//  Free a call and what it holds.
static void
s_call_free (service_call_t *call)
{
    if (call->free_fn)
        call->free_fn (call);
    if (call->reply)
        protobuf_c_message_free_unpacked (call->reply, NULL);
    if (call->args)
        protobuf_c_message_free_unpacked (call->args, NULL);
    free (call);
}

void
service_call_reply (service_call_t *call, const ProtobufCMessage *reply)
{
    bus_worker_t *worker = service_runtime_worker (call->runtime);
    if (reply)
        bus_worker_final_msg (worker, &call->request, reply);
    else
        bus_worker_final (worker, &call->request, NULL, 0);
    s_call_free (call);
}

void
service_call_reply_raw (service_call_t *call, const void *body, size_t size)
{
    bus_worker_final (service_runtime_worker (call->runtime), &call->request, body, size);
    s_call_free (call);
}

void
service_call_partial (service_call_t *call, const ProtobufCMessage *reply)
{
    bus_worker_partial_msg (service_runtime_worker (call->runtime), call->request, reply);
}

void
service_call_partial_raw (service_call_t *call, const void *body, size_t size)
{
    bus_worker_partial (service_runtime_worker (call->runtime), call->request, body,
                        size);
}

void
service_call_fail_retry (service_call_t *call, const char *code, const char *message,
                         uint32_t retry_after_s)
{
    bus_worker_t *worker = service_runtime_worker (call->runtime);
    core_log_debug (service_runtime_log (call->runtime), service_call_request_id (call),
                    "%s: %s", bus_request_command (call->request), code);
    bus_worker_error_retry (worker, &call->request, code, message, retry_after_s);
    s_call_free (call);
}

void
service_call_fail (service_call_t *call, const char *code, const char *message)
{
    service_call_fail_retry (call, code, message, 0);
}

//  Answer a database failure: a require() code, a unique violation, bad input,
//  or an internal error (logged, not shown).
static void
s_fail_database (service_call_t *call, const char *sqlstate, const char *primary,
                 const char *detail, const char *error)
{
    if (sqlstate && streq (sqlstate, "CH001") && primary) {
        for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++)
            if (streq (primary, s_codes[i].code)) {
                service_call_fail (call, s_codes[i].code,
                                   detail && *detail ? detail : s_codes[i].message);
                return;
            }
    }
    if (sqlstate && streq (sqlstate, "23505")) {
        service_call_fail (call, "conflict",
                           call->conflict ? call->conflict : "it exists already");
        return;
    }
    if (sqlstate && streq (sqlstate, "23503")) {
        service_call_fail (call, "not_found", "it does not exist");
        return;
    }
    if (sqlstate && strncmp (sqlstate, "22", 2) == 0) {
        service_call_fail (call, "bad_request", primary ? primary : "invalid value");
        return;
    }
    core_log_error (service_runtime_log (call->runtime), service_call_request_id (call),
                    "%s: database: %s", bus_request_command (call->request),
                    error ? error : "?");
    if (error && (strstr (error, "timeout") || strstr (error, "queue")))
        service_call_fail (call, "unavailable", "the database is busy, try again");
    else
        service_call_fail (call, "internal", "the request failed");
}

static void
s_on_result (PGresult *result, const char *error, void *arg)
{
    service_call_t *call = (service_call_t *) arg;
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
service_call_query (service_call_t *call, service_step_fn *next, const char *sql,
                    int nparams, const char *const *params)
{
    db_pool_t *db = service_runtime_db (call->runtime);
    call->next = next;
    if (!db) {
        service_call_fail (call, "unavailable", "no database");
        return;
    }
    if (db_pool_query (db, sql, nparams, params, s_on_result, call))
        service_call_fail (call, "overloaded", db_pool_error (db));
}

void
service_call_tx (service_call_t *call, service_step_fn *next, const db_stmt_t *stmts,
                 size_t count)
{
    db_pool_t *db = service_runtime_db (call->runtime);
    call->next = next;
    if (!db) {
        service_call_fail (call, "unavailable", "no database");
        return;
    }
    if (db_pool_tx (db, stmts, count, s_on_result, call))
        service_call_fail (call, "overloaded", db_pool_error (db));
}

//  The outbox reports failures as text (PQresultErrorMessage): find the meaning.
static void
s_on_emitted (const char *error, uint64_t seq, void *arg)
{
    (void) seq;
    service_call_t *call = (service_call_t *) arg;
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

static void
s_emit (service_call_t *call, service_step_fn *next, const char *tenant_id,
        const char *topic, const ProtobufCMessage *event, const db_stmt_t *stmts,
        size_t count, bool borrowed)
{
    service_events_t *events = service_runtime_events (call->runtime);
    call->next = next;
    if (!events) {
        service_call_fail (call, "unavailable", "no database");
        return;
    }
    size_t size = 0;
    void *payload = codec_encode_alloc (event, &size);
    assert (payload);
    int rc = borrowed
                 ? service_events_emit_borrowed (events, tenant_id ? tenant_id : "",
                                                 topic, payload, size, stmts, count,
                                                 s_on_emitted, call)
                 : service_events_emit (events, tenant_id ? tenant_id : "", topic,
                                        payload, size, stmts, count, s_on_emitted, call);
    free (payload);
    if (rc)
        service_call_fail (call, "overloaded", "too many changes in progress");
}

void
service_call_emit (service_call_t *call, service_step_fn *next, const char *tenant_id,
                   const char *topic, const ProtobufCMessage *event,
                   const db_stmt_t *stmts, size_t count)
{
    s_emit (call, next, tenant_id, topic, event, stmts, count, false);
}

void
service_call_emit_borrowed (service_call_t *call, service_step_fn *next,
                            const char *tenant_id, const char *topic,
                            const ProtobufCMessage *event, const db_stmt_t *stmts,
                            size_t count)
{
    s_emit (call, next, tenant_id, topic, event, stmts, count, true);
}

uint32_t
service_call_page_limit (bool has_limit, uint32_t limit)
{
    if (!has_limit || limit == 0)
        return 50;
    return limit > 100 ? 100 : limit;
}

void
service_call_reply_list_with (service_call_t *call,
                              const ProtobufCMessageDescriptor *list_desc,
                              PGresult *result, uint32_t limit, service_row_fn *row_fn)
{
    const ProtobufCFieldDescriptor
        *data = protobuf_c_message_descriptor_get_field_by_name (list_desc, "data");
    const ProtobufCFieldDescriptor *next =
        protobuf_c_message_descriptor_get_field_by_name (list_desc, "next_cursor");
    assert (data && next && data->label == PROTOBUF_C_LABEL_REPEATED);
    ProtobufCMessage *list = db_message_new (list_desc);
    int rows = PQntuples (result);
    //  One row more than asked says there is a next page, after row limit-1
    int keep = (uint32_t) rows > limit ? (int) limit : rows;
    size_t *count = (size_t *) ((char *) list + data->quantifier_offset);
    ProtobufCMessage ***items = (ProtobufCMessage ***) ((char *) list + data->offset);
    *items = calloc ((size_t) keep + 1, sizeof (ProtobufCMessage *));
    assert (*items);
    char error[200] = "";
    for (int row = 0; row < keep; row++) {
        ProtobufCMessage *item = row_fn ? row_fn (call, result, row)
                                        : db_message_from_row (data->descriptor, result,
                                                               row, error, sizeof error);
        if (!item) {
            if (!row_fn)
                core_log_error (service_runtime_log (call->runtime),
                                service_call_request_id (call), "list: %s", error);
            protobuf_c_message_free_unpacked (list, NULL);
            service_call_fail (call, "internal", "the list could not be read");
            return;
        }
        (*items)[(*count)++] = item;
    }
    int cursor = PQfnumber (result, "_cursor");
    if ((uint32_t) rows > limit && limit > 0 && cursor >= 0) {
        char **next_cursor = (char **) ((char *) list + next->offset);
        *next_cursor = strdup (PQgetvalue (result, (int) limit - 1, cursor));
        assert (*next_cursor);
    }
    service_call_reply (call, list);
    protobuf_c_message_free_unpacked (list, NULL);
}

void
service_call_reply_list (service_call_t *call,
                         const ProtobufCMessageDescriptor *list_desc, PGresult *result,
                         uint32_t limit)
{
    service_call_reply_list_with (call, list_desc, result, limit, NULL);
}

void
service_call_reply_row (service_call_t *call, PGresult *result,
                        const ProtobufCMessageDescriptor *desc, const char *what)
{
    if (PQntuples (result) != 1) {
        char message[96];
        snprintf (message, sizeof message, "no such %s", what ? what : "thing");
        service_call_fail (call, "not_found", message);
        return;
    }
    char error[200] = "";
    ProtobufCMessage *reply = db_message_from_row (desc, result, 0, error, sizeof error);
    if (!reply) {
        core_log_error (service_runtime_log (call->runtime),
                        service_call_request_id (call), "row: %s", error);
        service_call_fail (call, "internal", "the answer could not be read");
        return;
    }
    service_call_reply (call, reply);
    protobuf_c_message_free_unpacked (reply, NULL);
}

static const char *
s_or_empty (const char *s)
{
    return s ? s : "";
}

const char *
service_call_tenant (service_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->tenant_id : NULL);
}

const char *
service_call_user (service_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->user_id : NULL);
}

const char *
service_call_role (service_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->role : NULL);
}

const char *
service_call_ip (service_call_t *call)
{
    return s_or_empty (call->headers ? call->headers->client_ip : NULL);
}

const char *
service_call_request_id (service_call_t *call)
{
    return call->headers ? call->headers->request_id : NULL;
}

bool
service_call_is_tenant_admin (service_call_t *call)
{
    const char *role = service_call_role (call);
    return streq (role, "tenant_admin") || streq (role, "platform_admin");
}

bool
service_call_is_platform_admin (service_call_t *call)
{
    return streq (service_call_role (call), "platform_admin");
}

bool
service_call_require_user (service_call_t *call)
{
    if (service_uuid_valid (service_call_user (call))
        && service_uuid_valid (service_call_tenant (call)))
        return true;
    service_call_fail (call, "unauthorized", "authentication is required");
    return false;
}

bool
service_call_require_admin (service_call_t *call)
{
    if (!service_call_require_user (call))
        return false;
    if (service_call_is_tenant_admin (call))
        return true;
    service_call_fail (call, "forbidden", "tenant admins only");
    return false;
}

bool
service_call_take_id (service_call_t *call, const char *id, char *out, const char *what)
{
    if (!service_uuid_valid (id)) {
        char message[96];
        snprintf (message, sizeof message, "no such %s", what ? what : "thing");
        service_call_fail (call, "not_found", message);
        return false;
    }
    for (size_t i = 0; i < SERVICE_ID_SIZE; i++)
        out[i] = (char) tolower ((unsigned char) id[i]);
    return true;
}

bool
service_cursor_valid (const char *cursor)
{
    if (!cursor || !*cursor)
        return true;
    //  cursor_of (schemas/sql/*): hex of "<microseconds>/<uuid>"
    size_t len = strlen (cursor);
    char text[64];
    if (len % 2 || len / 2 >= sizeof text)
        return false;
    for (size_t i = 0; i < len / 2; i++) {
        int value = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = cursor[2 * i + j];
            int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
            if (digit < 0)
                return false;
            value = value * 16 + digit;
        }
        text[i] = (char) value;
    }
    text[len / 2] = 0;
    const char *slash = strchr (text, '/');
    if (!slash || strlen (text) != len / 2)
        return false;
    const char *digits = text[0] == '-' ? text + 1 : text;
    size_t count = (size_t) (slash - digits);
    if (count < 1 || count > 18)  //  a bigint, whatever its digits
        return false;
    for (size_t i = 0; i < count; i++)
        if (!isdigit ((unsigned char) digits[i]))
            return false;
    return service_uuid_valid (slash + 1);
}

bool
service_call_take_cursor (service_call_t *call, const char *cursor)
{
    if (service_cursor_valid (cursor))
        return true;
    service_call_fail (call, "bad_request", "invalid cursor");
    return false;
}

void
service_call_done_empty (service_call_t *call, PGresult *result)
{
    (void) result;
    service_call_reply (call, NULL);
}

bool
service_uuid_valid (const char *s)
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
service_uuid_new (char *out)
{
    uuid_t uuid;
    uuid_generate_random (uuid);
    uuid_unparse_lower (uuid, out);
}

void
service_time_rfc3339 (char *out, size_t size)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    struct tm tm;
    gmtime_r (&now.tv_sec, &tm);
    char seconds[24];
    strftime (seconds, sizeof seconds, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, size, "%s.%06ldZ", seconds, (long) now.tv_usec);
}

void
service_call_test (bool verbose)
{
    (void) verbose;
    printf (" * service_call: ");
    assert (service_uuid_valid ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!service_uuid_valid ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1"));
    assert (!service_uuid_valid ("0b8e2a4c_5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!service_uuid_valid ("zb8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    assert (!service_uuid_valid (NULL));
    char id[SERVICE_ID_SIZE];
    service_uuid_new (id);
    assert (service_uuid_valid (id));
    char now[40];
    service_time_rfc3339 (now, sizeof now);
    assert (strlen (now) == 27 && now[10] == 'T' && now[26] == 'Z');
    //  Cursors as cursor_of writes them ("1700000000000000/<uuid>" in hex)
    const char
        *cursor = "313730303030303030303030303030302f30623865326134632d356436662d3461"
                  "31622d396333642d326534663661386230633164";
    assert (service_cursor_valid (cursor));
    assert (service_cursor_valid ("") && service_cursor_valid (NULL));
    assert (!service_cursor_valid ("garbage"));
    assert (!service_cursor_valid ("2f"));        //  "/"
    assert (!service_cursor_valid ("313233"));    //  "123": no id
    assert (!service_cursor_valid (cursor + 1));  //  odd length
    assert (service_call_page_limit (false, 7) == 50);
    assert (service_call_page_limit (true, 0) == 50);
    assert (service_call_page_limit (true, 7) == 7);
    assert (service_call_page_limit (true, 1000) == 100);
    printf ("OK\n");
}
