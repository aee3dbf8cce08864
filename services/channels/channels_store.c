/*  channels_store: connections and the inbox listing (channels_store.h).       */
#include "channels_store.h"

#include <assert.h>
#include <sodium.h>

#include "db_message.h"

static const char *const s_platforms[] = {"whatsapp", "messenger", "instagram",
                                          "telegram", "slack"};

//  Longest credential accepted, in bytes
#define S_CREDENTIAL_MAX 4096

bool
channels_store_platform_known (const char *platform)
{
    for (size_t i = 0; platform && i < sizeof s_platforms / sizeof s_platforms[0]; i++)
        if (streq (platform, s_platforms[i]))
            return true;
    return false;
}

bool
channels_store_platform_meta (const char *platform)
{
    return platform
           && (streq (platform, "whatsapp") || streq (platform, "messenger")
               || streq (platform, "instagram"));
}

//  True when s is 1..max bytes, all of them in allowed.
static bool
s_chars_valid (const char *s, size_t max, const char *allowed)
{
    size_t length = strlen (s);
    return length >= 1 && length <= max && strspn (s, allowed) == length;
}

#define S_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define S_TOKEN_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

//  The credentials of a request in the order of the table's sealed columns.
static void
s_credentials (const ChorusChannels__Credentials *credentials, const char **values)
{
    values[0] = credentials ? credentials->access_token : NULL;
    values[1] = credentials ? credentials->app_secret : NULL;
    values[2] = credentials ? credentials->verify_token : NULL;
    values[3] = credentials ? credentials->bot_token : NULL;
    values[4] = credentials ? credentials->secret_token : NULL;
    values[5] = credentials ? credentials->signing_secret : NULL;
}

#define S_CREDENTIALS 6

//  Why a connection's fields are not acceptable, or NULL. creating: platform,
//  agent_id, name and the platform's required credentials and ids are needed
//  (a telegram secret_token is generated when absent).
static const char *
s_connection_problem (const ChorusChannels__Connection *conn, bool creating)
{
    if (creating && !channels_store_platform_known (conn->platform))
        return "platform must be whatsapp, messenger, instagram, telegram or slack";
    if (conn->platform && !channels_store_platform_known (conn->platform))
        return "platform must be whatsapp, messenger, instagram, telegram or slack";
    if ((creating || conn->agent_id) && !service_uuid_valid (conn->agent_id))
        return "agent_id must be an agent's id";
    if (creating && !conn->name)
        return "name is required";
    if (conn->name && (!*conn->name || strlen (conn->name) > 100))
        return "name must be 1 to 100 characters";
    const char *ids[] = {conn->phone_number_id, conn->page_id, conn->bot_user_id};
    for (size_t i = 0; i < 3; i++)
        if (ids[i] && *ids[i] && !s_chars_valid (ids[i], 64, S_ID_CHARS))
            return "phone_number_id, page_id and bot_user_id must be 1 to 64 of "
                   "A-Z a-z 0-9 . _ -";
    const char *values[S_CREDENTIALS];
    s_credentials (conn->credentials, values);
    for (size_t i = 0; i < S_CREDENTIALS; i++)
        if (values[i] && strlen (values[i]) > S_CREDENTIAL_MAX)
            return "a credential is at most 4096 bytes";
    if (values[4] && *values[4] && !s_chars_valid (values[4], 256, S_TOKEN_CHARS))
        return "secret_token must be 1 to 256 of A-Z a-z 0-9 _ -";
    if (!creating)
        return NULL;
    const char *platform = conn->platform;
#define S_HAS(value) ((value) && *(value))
    if (channels_store_platform_meta (platform)
        && !(S_HAS (values[0]) && S_HAS (values[1]) && S_HAS (values[2])))
        return "credentials access_token, app_secret and verify_token are required";
    if (streq (platform, "whatsapp") && !S_HAS (conn->phone_number_id))
        return "phone_number_id is required";
    if ((streq (platform, "messenger") || streq (platform, "instagram"))
        && !S_HAS (conn->page_id))
        return "page_id is required";
    if (streq (platform, "telegram") && !S_HAS (values[3]))
        return "credentials.bot_token is required";
    if (streq (platform, "slack") && !(S_HAS (values[3]) && S_HAS (values[5])))
        return "credentials bot_token and signing_secret are required";
#undef S_HAS
    return NULL;
}

//  A call on one connection.
typedef struct {
    service_call_t base;       //  the call
    char id[SERVICE_ID_SIZE];  //  connection id
    char secret_token[48];     //  a generated telegram secret, shown once, or ""
} s_change_t;

#define S_COLUMNS                                                                        \
    "c.id, c.platform, c.agent_id, c.name, c.enabled, c.phone_number_id, c.page_id, "    \
    "c.bot_user_id, channels.credentials_set (c) AS credentials_set, channels.rfc3339 "  \
    "(c.created_at) AS created_at, channels.rfc3339 (c.updated_at) AS updated_at "

//  A connection of row `row`, with its webhook URL; NULL (logged) when unreadable.
static ChorusChannels__Connection *
s_connection_from_row (service_call_t *call, PGresult *result, int row)
{
    channels_state_t *self = (channels_state_t *) call->state;
    char error[200] = "";
    ChorusChannels__Connection *conn = (ChorusChannels__Connection *)
        db_message_from_row (&chorus_channels__connection__descriptor, result, row, error,
                             sizeof error);
    if (!conn) {
        core_log_error (self->log, service_call_request_id (call), "connection: %s",
                        error);
        return NULL;
    }
    if (asprintf (&conn->webhook_url, "%s/webhooks/%s/%s", self->public_url,
                  conn->platform ? conn->platform : "", conn->id ? conn->id : "")
        < 0)
        conn->webhook_url = NULL;
    return conn;
}

//  Answer the one connection of result (with a generated secret, once).
static void
s_connection_read (service_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such connection");
        return;
    }
    ChorusChannels__Connection *conn = s_connection_from_row (call, result, 0);
    if (!conn) {
        service_call_fail (call, "internal", "the connection could not be read");
        return;
    }
    s_change_t *change = (s_change_t *) call;
    if (*change->secret_token) {
        conn->secret_token = strdup (change->secret_token);
        assert (conn->secret_token);
    }
    service_call_reply (call, &conn->base);
    protobuf_c_message_free_unpacked (&conn->base, NULL);
}

//  Answer the connection id of the caller's tenant.
static void
s_connection_get (service_call_t *call, const char *id)
{
    const char *params[] = {id, service_call_tenant (call)};
    service_call_query (call, s_connection_read,
                        "SELECT " S_COLUMNS "FROM channels.connections c "
                        "WHERE c.id = $1 AND c.tenant_id = $2",
                        2, params);
}

//  After a change: answer the connection as it is now.
static void
s_connection_changed (service_call_t *call, PGresult *result)
{
    (void) result;
    s_connection_get (call, ((s_change_t *) call)->id);
}

//  One connection of a list page, with its webhook URL.
static ProtobufCMessage *
s_connection_row (service_call_t *call, PGresult *result, int row)
{
    ChorusChannels__Connection *conn = s_connection_from_row (call, result, row);
    return conn ? &conn->base : NULL;
}

//  Answer a page of connections (limit + 1 rows tell whether more follow).
static void
s_list_read (service_call_t *call, PGresult *result)
{
    service_call_reply_list_with (call, &chorus_channels__connection_list__descriptor,
                                  result, call->limit, s_connection_row);
}

void
channels_store_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__list_request__descriptor,
                                             sizeof (s_change_t));
    if (!call || !service_call_require_user (call))
        return;
    ChorusChannels__ListRequest *args = (ChorusChannels__ListRequest *) call->args;
    if (!service_call_take_cursor (call, args->cursor))
        return;
    call->limit = service_call_page_limit (args->has_limit, args->limit);
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->limit + 1);
    const char *params[] = {service_call_tenant (call), args->cursor ? args->cursor : "",
                            limit};
    service_call_query (call, s_list_read,
                        "SELECT " S_COLUMNS
                        ", channels.cursor_of (c.created_at, c.id) AS "
                        "_cursor FROM channels.connections c WHERE c.tenant_id = $1 AND "
                        "($2 = '' OR (channels.ts_us (c.created_at), c.id) < "
                        "(channels.cursor_ts ($2), channels.cursor_id ($2))) "
                        "ORDER BY c.created_at DESC, c.id DESC LIMIT $3",
                        3, params);
}

void
channels_store_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__id_request__descriptor,
                                             sizeof (s_change_t));
    s_change_t *change = (s_change_t *) call;
    if (!call || !service_call_require_user (call)
        || !service_call_take_id (call, ((ChorusChannels__IdRequest *) call->args)->id,
                                  change->id, "connection"))
        return;
    s_connection_get (call, change->id);
}

//  Seal the request's credentials into sealed (NULL: absent, "": cleared).
//  Returns false (the call answered) when one cannot be sealed.
static bool
s_seal_all (service_call_t *call, const ChorusChannels__Connection *conn,
            const char *generated, char **sealed)
{
    channels_state_t *self = (channels_state_t *) call->state;
    const char *values[S_CREDENTIALS];
    s_credentials (conn->credentials, values);
    if (generated && *generated)
        values[4] = generated;
    for (size_t i = 0; i < S_CREDENTIALS; i++) {
        sealed[i] = NULL;
        if (!values[i])
            continue;
        sealed[i] = *values[i] ? auth_secretbox_seal (self->box, values[i]) : strdup ("");
        if (!sealed[i]) {
            for (size_t j = 0; j < i; j++)
                free (sealed[j]);
            service_call_fail (call, "bad_request", "a credential cannot be stored");
            return false;
        }
    }
    return true;
}

//  Free the sealed credentials of s_seal_all.
static void
s_free_sealed (char **sealed)
{
    for (size_t i = 0; i < S_CREDENTIALS; i++)
        free (sealed[i]);
}

//  True when the service can seal credentials; else answers unavailable.
static bool
s_box_ready (service_call_t *call)
{
    if (((channels_state_t *) call->state)->box)
        return true;
    service_call_fail (call, "unavailable",
                       "CHORUS_SECRET_KEY is not set: credentials cannot be stored");
    return false;
}

//  The text of an optional field: "" clears (NULL stored), NULL keeps.
static const char *
s_text_or_null (const char *value)
{
    return value && *value ? value : NULL;
}

void
channels_store_create (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__connection__descriptor,
                                             sizeof (s_change_t));
    if (!call || !service_call_require_admin (call))
        return;
    ChorusChannels__Connection *conn = (ChorusChannels__Connection *) call->args;
    const char *problem = s_connection_problem (conn, true);
    if (problem) {
        service_call_fail (call, "bad_request", problem);
        return;
    }
    if (!s_box_ready (call))
        return;
    s_change_t *change = (s_change_t *) call;
    service_uuid_new (change->id);
    if (streq (conn->platform, "telegram")
        && !(conn->credentials && conn->credentials->secret_token
             && *conn->credentials->secret_token)) {
        //  Telegram's rule: 1..256 of A-Za-z0-9_-; URL-safe base64 is exactly that
        unsigned char random[32];
        randombytes_buf (random, sizeof random);
        sodium_bin2base64 (change->secret_token, sizeof change->secret_token, random,
                           sizeof random, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    char *sealed[S_CREDENTIALS];
    if (!s_seal_all (call, conn, change->secret_token, sealed))
        return;
    const char *params[] = {change->id,
                            service_call_tenant (call),
                            conn->platform,
                            conn->agent_id,
                            conn->name,
                            conn->has_enabled && !conn->enabled ? "false" : "true",
                            s_text_or_null (conn->phone_number_id),
                            s_text_or_null (conn->page_id),
                            s_text_or_null (conn->bot_user_id),
                            s_text_or_null (sealed[0]),
                            s_text_or_null (sealed[1]),
                            s_text_or_null (sealed[2]),
                            s_text_or_null (sealed[3]),
                            s_text_or_null (sealed[4]),
                            s_text_or_null (sealed[5])};
    db_stmt_t stmts[] = {
        {"INSERT INTO channels.connections (id, tenant_id, platform, agent_id, name, "
         "enabled, phone_number_id, page_id, bot_user_id, access_token_sealed, "
         "app_secret_sealed, verify_token_sealed, bot_token_sealed, secret_token_sealed, "
         "signing_secret_sealed) VALUES ($1, $2, $3, $4, $5, $6::boolean, $7, $8, $9, "
         "$10, $11, $12, $13, $14, $15)",
         15, params}};
    ChorusChannels__Connection event = CHORUS_CHANNELS__CONNECTION__INIT;
    event.id = change->id;
    event.platform = conn->platform;
    event.name = conn->name;
    event.agent_id = conn->agent_id;
    service_call_emit (call, s_connection_changed, service_call_tenant (call),
                       "channels.connection.created", &event.base, stmts, 1);
    s_free_sealed (sealed);
}

void
channels_store_update (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__connection__descriptor,
                                             sizeof (s_change_t));
    s_change_t *change = (s_change_t *) call;
    if (!call || !service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusChannels__Connection *) call->args)->id,
                                  change->id, "connection"))
        return;
    ChorusChannels__Connection *conn = (ChorusChannels__Connection *) call->args;
    const char *problem = s_connection_problem (conn, false);
    if (problem) {
        service_call_fail (call, "bad_request", problem);
        return;
    }
    const char *values[S_CREDENTIALS];
    s_credentials (conn->credentials, values);
    bool sealing = false;
    for (size_t i = 0; i < S_CREDENTIALS; i++)
        sealing = sealing || (values[i] && *values[i]);
    if (sealing && !s_box_ready (call))
        return;
    char *sealed[S_CREDENTIALS];
    if (!s_seal_all (call, conn, NULL, sealed))
        return;
    char enabled[8];
    snprintf (enabled, sizeof enabled, "%s", conn->enabled ? "true" : "false");
    const char *params[] = {change->id,
                            service_call_tenant (call),
                            conn->platform,
                            conn->agent_id,
                            conn->name,
                            conn->has_enabled ? enabled : NULL,
                            conn->phone_number_id,
                            conn->page_id,
                            conn->bot_user_id,
                            sealed[0],
                            sealed[1],
                            sealed[2],
                            sealed[3],
                            sealed[4],
                            sealed[5]};
    //  Absent fields stay; "" clears an optional one; the row left behind must
    //  still work on its platform
    db_stmt_t stmts[] = {
        {"WITH changed AS (UPDATE channels.connections c SET agent_id = COALESCE "
         "($4::uuid, c.agent_id), name = COALESCE ($5, c.name), enabled = COALESCE "
         "($6::boolean, c.enabled), phone_number_id = channels.keep_or_clear "
         "(c.phone_number_id, $7), page_id = channels.keep_or_clear (c.page_id, $8), "
         "bot_user_id = channels.keep_or_clear (c.bot_user_id, $9), access_token_sealed "
         "= channels.keep_or_clear (c.access_token_sealed, $10), app_secret_sealed = "
         "channels.keep_or_clear (c.app_secret_sealed, $11), verify_token_sealed = "
         "channels.keep_or_clear (c.verify_token_sealed, $12), bot_token_sealed = "
         "channels.keep_or_clear (c.bot_token_sealed, $13), secret_token_sealed = "
         "channels.keep_or_clear (c.secret_token_sealed, $14), signing_secret_sealed = "
         "channels.keep_or_clear (c.signing_secret_sealed, $15), updated_at = "
         "clock_timestamp () WHERE c.id = $1 AND c.tenant_id = $2 RETURNING c.platform, "
         "channels.connection_missing (c) AS missing) SELECT channels.require (count (*) "
         "= 1, 'not_found', 'no such connection') AND channels.require (bool_and "
         "(platform = COALESCE ($3, platform)), 'bad_request', 'platform cannot change') "
         "AND channels.require (bool_and (missing IS NULL), 'bad_request', coalesce (max "
         "(missing), '')) FROM changed",
         15, params}};
    ChorusChannels__Connection event = CHORUS_CHANNELS__CONNECTION__INIT;
    event.id = change->id;
    service_call_emit (call, s_connection_changed, service_call_tenant (call),
                       "channels.connection.updated", &event.base, stmts, 1);
    s_free_sealed (sealed);
}

//  Answer with an empty body.
void
channels_store_delete (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__id_request__descriptor,
                                             sizeof (s_change_t));
    s_change_t *change = (s_change_t *) call;
    if (!call || !service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusChannels__IdRequest *) call->args)->id,
                                  change->id, "connection"))
        return;
    const char *params[] = {change->id, service_call_tenant (call)};
    db_stmt_t stmts[] = {
        {"WITH gone AS (DELETE FROM channels.connections WHERE id = $1 AND tenant_id = "
         "$2 RETURNING 1) SELECT channels.require (count (*) = 1, 'not_found', 'no such "
         "connection') FROM gone",
         2, params}};
    ChorusChannels__Connection event = CHORUS_CHANNELS__CONNECTION__INIT;
    event.id = change->id;
    service_call_emit (call, service_call_done_empty, service_call_tenant (call),
                       "channels.connection.deleted", &event.base, stmts, 1);
}

//  ---------------------------------------------------------------------------------
//  The inbox of a connection

//  Answer a page of inbox rows.
static void
s_inbox_read (service_call_t *call, PGresult *result)
{
    service_call_reply_list (call, &chorus_channels__inbox_list__descriptor, result,
                             call->limit);
}

//  The connection is the caller's tenant's: read a page of its inbox.
static void
s_inbox_page (service_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such connection");
        return;
    }
    ChorusChannels__InboxListRequest *args = (ChorusChannels__InboxListRequest *)
                                                 call->args;
    if (!service_call_take_cursor (call, args->cursor))
        return;
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->limit + 1);
    const char *params[] = {((s_change_t *) call)->id, args->cursor ? args->cursor : "",
                            limit, args->status ? args->status : ""};
    service_call_query (
        call, s_inbox_read,
        "SELECT i.id, i.connection_id, i.platform, i.external_id, i.message_id, "
        "i.sender_id, i.sender_name, i.chat_id, i.thread_id, i.message_type, i.text, "
        "channels.rfc3339 (i.sent_at) AS sent_at, i.status, i.attempts, i.last_error, "
        "channels.rfc3339 (i.received_at) AS received_at, channels.cursor_of "
        "(i.received_at, i.id) AS _cursor FROM channels.inbox i WHERE i.connection_id = "
        "$1 AND ($4 = '' OR i.status = $4) AND ($2 = '' OR (channels.ts_us "
        "(i.received_at), i.id) < (channels.cursor_ts ($2), channels.cursor_id ($2))) "
        "ORDER BY i.received_at DESC, i.id DESC LIMIT $3",
        4, params);
}

void
channels_store_inbox (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (
        runtime, state, &request, &chorus_channels__inbox_list_request__descriptor,
        sizeof (s_change_t));
    s_change_t *change = (s_change_t *) call;
    if (!call || !service_call_require_user (call)
        || !service_call_take_id (call,
                                  ((ChorusChannels__InboxListRequest *) call->args)->id,
                                  change->id, "connection"))
        return;
    ChorusChannels__InboxListRequest *args = (ChorusChannels__InboxListRequest *)
                                                 call->args;
    call->limit = service_call_page_limit (args->has_limit, args->limit);
    const char *params[] = {change->id, service_call_tenant (call)};
    service_call_query (call, s_inbox_page,
                        "SELECT 1 FROM channels.connections WHERE id = $1 AND tenant_id "
                        "= $2",
                        2, params);
}

void
channels_store_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_store: ");
    assert (channels_store_platform_known ("slack"));
    assert (!channels_store_platform_known ("sms"));
    assert (!channels_store_platform_known (NULL));
    assert (channels_store_platform_meta ("instagram"));
    assert (!channels_store_platform_meta ("telegram"));

    ChorusChannels__Credentials credentials = CHORUS_CHANNELS__CREDENTIALS__INIT;
    ChorusChannels__Connection conn = CHORUS_CHANNELS__CONNECTION__INIT;
    assert (s_connection_problem (&conn, true));  //  no platform
    conn.platform = "whatsapp";
    conn.agent_id = "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d";
    conn.name = "Support";
    assert (s_connection_problem (&conn, true));  //  no credentials
    conn.credentials = &credentials;
    credentials.access_token = "EAAG";
    credentials.app_secret = "secret";
    credentials.verify_token = "verify";
    assert (s_connection_problem (&conn, true));  //  no phone number id
    conn.phone_number_id = "106540352242922";
    assert (s_connection_problem (&conn, true) == NULL);
    conn.phone_number_id = "1065 4035";
    assert (s_connection_problem (&conn, true));
    conn.phone_number_id = "106540352242922";
    conn.agent_id = "agent";
    assert (s_connection_problem (&conn, true));
    conn.agent_id = "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d";
    conn.name = "";
    assert (s_connection_problem (&conn, true));
    conn.name = "Support";
    conn.platform = "sms";
    assert (s_connection_problem (&conn, true));
    assert (s_connection_problem (&conn, false));
    conn.platform = "telegram";
    assert (s_connection_problem (&conn, true));  //  no bot token
    credentials.bot_token = "123:ABC";
    assert (s_connection_problem (&conn, true) == NULL);
    credentials.secret_token = "has space";
    assert (s_connection_problem (&conn, true));
    credentials.secret_token = "Good_token-1";
    assert (s_connection_problem (&conn, true) == NULL);
    conn.platform = "slack";
    assert (s_connection_problem (&conn, true));  //  no signing secret
    credentials.signing_secret = "8f742231b10e8888abcd99yyyzzz85a5";
    assert (s_connection_problem (&conn, true) == NULL);
    conn.platform = "messenger";
    assert (s_connection_problem (&conn, true));  //  no page id
    conn.page_id = "PAGE1";
    assert (s_connection_problem (&conn, true) == NULL);
    //  An update needs nothing, and takes "" to clear
    ChorusChannels__Connection update = CHORUS_CHANNELS__CONNECTION__INIT;
    assert (s_connection_problem (&update, false) == NULL);
    update.page_id = "";
    assert (s_connection_problem (&update, false) == NULL);
    update.agent_id = "";
    assert (s_connection_problem (&update, false));
    const char *values[S_CREDENTIALS];
    s_credentials (&credentials, values);
    assert (streq (values[5], credentials.signing_secret));
    s_credentials (NULL, values);
    assert (values[0] == NULL && values[5] == NULL);
    printf ("OK\n");
}
