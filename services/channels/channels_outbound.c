/*  channels_outbound: replies out (see channels_outbound.h).                   */
#include "channels_outbound.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>

#include "channels_receive.h"
#include "channels_send.h"
#include "channels_split.h"
#include "channels_store.h"

//  Longest wait for a platform's answer.
#define S_SEND_TIMEOUT_MS 20000

//  A part being sent.
typedef struct {
    channels_state_t *state;
    void *place;               //  in state->send_jobs
    uint64_t transfer;         //  the HTTP request, 0 none
    char id[SERVICE_ID_SIZE];  //  the outbound row
    char request_id[SERVICE_ID_SIZE];
    char platform[16];
    int64_t attempts;  //  this attempt's number
    bool finishing;    //  outbound_finish in flight
} s_send_t;

static void
s_send_destroy (s_send_t **send_p)
{
    s_send_t *send = *send_p;
    if (!send)
        return;
    if (send->transfer)
        http_client_cancel (send->state->http, send->transfer);
    if (send->place)
        zlistx_delete (send->state->send_jobs, send->place);
    free (send);
    *send_p = NULL;
}

char *
channels_outbound_array (char **items, size_t count)
{
    size_t size = 3;
    for (size_t i = 0; i < count; i++)
        size += strlen (items[i]) * 2 + 3;
    char *array = malloc (size);
    assert (array);
    char *at = array;
    *at++ = '{';
    for (size_t i = 0; i < count; i++) {
        if (i)
            *at++ = ',';
        *at++ = '"';
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                *at++ = '\\';
            *at++ = *p;
        }
        *at++ = '"';
    }
    *at++ = '}';
    *at = 0;
    return array;
}

int64_t
channels_outbound_backoff_ms (int64_t attempt, int64_t retry_after_s)
{
    if (retry_after_s >= 0)
        return retry_after_s > 3600 ? 3600000 : retry_after_s * 1000;
    int64_t wait = 1000;
    for (int64_t i = 1; i < attempt && wait < 300000; i++)
        wait *= 2;
    return wait > 300000 ? 300000 : wait;
}

//  Publish the events a SQL function returned (seq, topic, tenant, payload, ms).
static void
s_publish_rows (channels_state_t *state, PGresult *result)
{
    for (int row = 0; result && row < PQntuples (result); row++)
        channels_receive_publish (state, result, row);
}

//  What a platform's answer means (check: the answer to a credentials check);
//  returns the HTTP status, 0 when none arrived (the error then says why).
static long
s_read_answer (http_response_t *response, const char *platform, bool check,
               channels_outcome_t *outcome)
{
    long status = http_response_error (response) == HTTP_OK
                      ? http_response_status (response)
                      : 0;
    channels_send_outcome (platform, check, status, http_response_body (response),
                           http_response_body_size (response),
                           http_response_retry_after (response), outcome);
    if (status == 0)
        snprintf (outcome->error, sizeof outcome->error,
                  "no answer from the platform: %s", http_response_error_text (response));
    return status;
}

//  Start the request http describes (and free it); the transfer's id, 0 when it
//  could not start.
static uint64_t
s_start (channels_state_t *state, channels_http_t *http, const char *request_id,
         http_done_fn *on_done, void *arg)
{
    http_request_t *request = http_request_new (http->method, http->url);
    bool headers_ok = !http->authorization
                      || http_request_add_header (request, "Authorization",
                                                  http->authorization)
                             == 0;
    if (http->body)
        http_request_set_body (request, http->body, strlen (http->body),
                               http->content_type);
    channels_http_free (http);
    http_request_set_timeout (request, S_SEND_TIMEOUT_MS);
    http_request_set_max_body (request, 1 << 20);
    http_request_set_request_id (request, request_id);
    http_request_set_callbacks (request, NULL, NULL, on_done, arg);
    uint64_t transfer = headers_ok && state->http
                            ? http_client_send (state->http, &request)
                            : 0;
    http_request_destroy (&request);
    return transfer;
}

//  ---------------------------------------------------------------------------------
//  The sender

static void
s_finished (PGresult *result, const char *error, void *arg)
{
    s_send_t *send = (s_send_t *) arg;
    channels_state_t *state = send->state;
    if (error)
        core_log_warn (state->log, send->request_id,
                       "outbound %s: its outcome was not stored (%s)", send->id, error);
    else
        s_publish_rows (state, result);
    s_send_destroy (&send);
    if (!error)
        channels_outbound_kick (state);
}

//  Store the outcome: sent, queued (again after delay_ms) or failed.
static void
s_finish (s_send_t *send, const char *outcome, const char *external, const char *code,
          const char *error, int64_t delay_ms)
{
    channels_state_t *state = send->state;
    send->finishing = true;
    char taken[24], delay[24];
    snprintf (taken, sizeof taken, "%" PRId64, send->attempts);
    snprintf (delay, sizeof delay, "%" PRId64, delay_ms);
    const char *params[] = {send->id,
                            taken,
                            outcome,
                            external && *external ? external : NULL,
                            code && *code ? code : NULL,
                            error && *error ? error : NULL,
                            delay};
    db_pool_t *db = service_runtime_db (state->runtime);
    if (!db
        || db_pool_query (db,
                          "SELECT * FROM channels.outbound_finish ($1, $2::integer, $3, "
                          "$4, $5, $6, $7::bigint)",
                          7, params, s_finished, send)
               != 0) {
        core_log_warn (state->log, send->request_id,
                       "outbound %s: cannot store its outcome", send->id);
        s_send_destroy (&send);
    }
}

//  Not sent: again later, or failed for good.
static void
s_not_sent (s_send_t *send, bool retry, int64_t retry_after_s, const char *code,
            const char *error)
{
    bool again = retry && send->attempts < send->state->send_attempts;
    core_log_info (send->state->log, send->request_id,
                   "outbound %s attempt %" PRId64 " not sent: %s %s%s", send->id,
                   send->attempts, code ? code : "", error ? error : "",
                   again ? " (will try again)" : "");
    if (again)
        s_finish (send, "queued", NULL, code, error,
                  channels_outbound_backoff_ms (send->attempts, retry_after_s));
    else
        s_finish (send, "failed", NULL, code, error, 0);
}

static void
s_on_done (http_response_t *response, void *arg)
{
    s_send_t *send = (s_send_t *) arg;
    send->transfer = 0;
    channels_outcome_t outcome;
    s_read_answer (response, send->platform, false, &outcome);
    if (outcome.ok)
        s_finish (send, "sent", outcome.external_id, NULL, NULL, 0);
    else
        s_not_sent (send, outcome.retry, outcome.retry_after_s, outcome.error_code,
                    outcome.error);
}

//  Column of a row, NULL when SQL NULL.
static const char *
s_value (PGresult *result, int row, int column)
{
    return PQgetisnull (result, row, column) ? NULL : PQgetvalue (result, row, column);
}

//  Send the part of row `row`: id, platform, chat_id, thread_id, text,
//  attempts, phone_number_id, page_id, access token, bot token (sealed),
//  enabled.
static void
s_send (s_send_t *send, PGresult *result, int row)
{
    channels_state_t *state = send->state;
    if (!streq (PQgetvalue (result, row, 10), "t")) {
        s_not_sent (send, false, -1, "disabled", "the connection is disabled");
        return;
    }
    const char *platform = send->platform;
    const char *sealed = s_value (
        result, row, streq (platform, "telegram") || streq (platform, "slack") ? 9 : 8);
    char *token = state->box && sealed ? auth_secretbox_open (state->box, sealed) : NULL;
    if (!token) {
        s_not_sent (send, true, 60, "credentials",
                    state->box
                        ? "the connection's token cannot be read (CHORUS_SECRET_KEY "
                          "changed?)"
                        : "CHORUS_SECRET_KEY is not set");
        return;
    }
    channels_account_t account = {
        .platform = platform,
        .base_url = channels_state_api_url (state, platform),
        .token = token,
        .account_id = s_value (result, row, streq (platform, "whatsapp") ? 6 : 7)};
    channels_http_t http;
    int rc = channels_send_message (&account, PQgetvalue (result, row, 2),
                                    PQgetvalue (result, row, 3),
                                    PQgetvalue (result, row, 4), &http);
    sodium_memzero (token, strlen (token));
    free (token);
    if (rc != 0) {
        s_not_sent (send, false, -1, "bad_request",
                    "the part cannot be sent (no account id, or not UTF-8)");
        return;
    }
    send->transfer = s_start (state, &http, send->request_id, s_on_done, send);
    if (!send->transfer)
        s_not_sent (send, true, -1, "internal", "the request could not start");
}

static void
s_claimed (PGresult *result, const char *error, void *arg)
{
    channels_state_t *state = (channels_state_t *) arg;
    state->send_claiming = false;
    if (error) {
        core_log_debug (state->log, NULL, "outbound claim: %s", error);
        return;
    }
    int rows = PQntuples (result);
    for (int row = 0; row < rows; row++) {
        s_send_t *send = calloc (1, sizeof (s_send_t));
        assert (send);
        send->state = state;
        snprintf (send->id, sizeof send->id, "%s", PQgetvalue (result, row, 0));
        snprintf (send->platform, sizeof send->platform, "%s",
                  PQgetvalue (result, row, 1));
        send->attempts = strtoll (PQgetvalue (result, row, 5), NULL, 10);
        service_uuid_new (send->request_id);
        send->place = zlistx_add_end (state->send_jobs, send);
        s_send (send, result, row);
    }
    if (state->send_again || rows > 0)
        channels_outbound_kick (state);
}

void
channels_outbound_kick (channels_state_t *state)
{
    db_pool_t *db = service_runtime_db (state->runtime);
    size_t active = zlistx_size (state->send_jobs);
    if (!db || !state->process || !state->http
        || active >= (size_t) state->send_concurrency)
        return;
    if (state->send_claiming) {
        state->send_again = true;
        return;
    }
    state->send_again = false;
    char limit[24], lease[24];
    snprintf (limit, sizeof limit, "%zu", (size_t) state->send_concurrency - active);
    snprintf (lease, sizeof lease, "%" PRId64, state->lease_s);
    const char *params[] = {limit, lease};
    if (db_pool_query (
            db,
            "WITH due AS (SELECT o.id FROM channels.outbound o WHERE o.status IN "
            "('queued', 'sending') AND o.next_attempt_at <= clock_timestamp () AND "
            "(o.status = 'queued' OR o.locked_until < clock_timestamp ()) AND NOT EXISTS "
            "(SELECT 1 FROM channels.outbound p WHERE p.connection_id = o.connection_id "
            "AND p.message_id = o.message_id AND p.part < o.part AND p.status IN "
            "('queued', 'sending')) ORDER BY o.next_attempt_at LIMIT $1::integer FOR "
            "UPDATE OF o SKIP LOCKED) UPDATE channels.outbound o SET status = 'sending', "
            "attempts = o.attempts + 1, locked_until = clock_timestamp () + "
            "make_interval (secs => $2::integer), updated_at = clock_timestamp () FROM "
            "due, channels.connections c WHERE o.id = due.id AND c.id = o.connection_id "
            "RETURNING o.id, o.platform, o.chat_id, o.thread_id, o.text, o.attempts, "
            "c.phone_number_id, c.page_id, c.access_token_sealed, c.bot_token_sealed, "
            "c.enabled",
            2, params, s_claimed, state)
        == 0)
        state->send_claiming = true;
}

void
channels_outbound_shutdown (channels_state_t *state)
{
    s_send_t *send = (s_send_t *) zlistx_first (state->send_jobs);
    while (send) {
        s_send_t *next = (s_send_t *) zlistx_next (state->send_jobs);
        if (!send->finishing)
            s_send_destroy (&send);
        send = next;
    }
}

//  ---------------------------------------------------------------------------------
//  outbound.enqueue

typedef struct {
    service_call_t base;            //  first member
    char id[SERVICE_ID_SIZE];       //  the connection
    char message[SERVICE_ID_SIZE];  //  outbound.enqueue: chat's message
    char conversation[SERVICE_ID_SIZE];
} s_call_t;

static void
s_enqueued (service_call_t *call, PGresult *result)
{
    ChorusChannels__OutboundReply reply = CHORUS_CHANNELS__OUTBOUND_REPLY__INIT;
    reply.has_parts = true;
    reply.parts = (uint32_t) strtoul (PQgetvalue (result, 0, 0), NULL, 10);
    channels_state_t *state = (channels_state_t *) call->state;
    service_call_reply (call, &reply.base);  //  frees the call
    channels_outbound_kick (state);
}

static void
s_enqueue_connection (service_call_t *call, PGresult *result)
{
    s_call_t *self = (s_call_t *) call;
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such connection");
        return;
    }
    if (!streq (PQgetvalue (result, 0, 1), "t")) {
        service_call_fail (call, "unavailable", "the connection is disabled");
        return;
    }
    ChorusChannels__OutboundRequest *args = (ChorusChannels__OutboundRequest *)
                                                call->args;
    size_t limit;
    channels_count_t unit;
    char **parts = NULL;
    size_t count = channels_split_limit (PQgetvalue (result, 0, 0), &limit, &unit)
                       ? channels_split (args->text, limit, unit, &parts)
                       : 0;
    char *array = channels_outbound_array (parts, count);
    channels_split_free (&parts, count);
    const char *params[] = {self->id,         self->conversation, self->message,
                            args->contact_id, args->thread_id,    array};
    service_call_query (call, s_enqueued,
                        "SELECT channels.outbound_enqueue ($1, NULL, $2, $3, $4, $5, "
                        "$6::text[])",
                        6, params);
    free (array);
}

void
channels_outbound_enqueue (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    service_call_t *call = service_call_new (
        runtime, state, &request, &chorus_channels__outbound_request__descriptor,
        sizeof (s_call_t));
    if (!call || !service_call_require_user (call))
        return;
    s_call_t *self = (s_call_t *) call;
    ChorusChannels__OutboundRequest *args = (ChorusChannels__OutboundRequest *)
                                                call->args;
    if (!service_call_take_id (call, args->connection_id, self->id, "connection"))
        return;
    if (!service_uuid_valid (args->message_id)
        || !service_uuid_valid (args->conversation_id) || !args->contact_id
        || !*args->contact_id || !args->text || !*args->text) {
        service_call_fail (
            call, "bad_request",
            "message_id, conversation_id, contact_id and text are required");
        return;
    }
    snprintf (self->message, sizeof self->message, "%s", args->message_id);
    snprintf (self->conversation, sizeof self->conversation, "%s", args->conversation_id);
    const char *params[] = {self->id, service_call_tenant (call)};
    service_call_query (
        call, s_enqueue_connection,
        "SELECT platform, enabled FROM channels.connections WHERE id = $1 "
        "AND tenant_id = $2",
        2, params);
}

//  ---------------------------------------------------------------------------------
//  outbound.list

static void
s_list_read (service_call_t *call, PGresult *result)
{
    service_call_reply_list (call, &chorus_channels__outbound_list__descriptor, result,
                             call->limit);
}

static void
s_list_page (service_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such connection");
        return;
    }
    ChorusChannels__OutboundListRequest *args = (ChorusChannels__OutboundListRequest *)
                                                    call->args;
    if (!service_call_take_cursor (call, args->cursor))
        return;
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->limit + 1);
    const char *params[] = {((s_call_t *) call)->id, args->cursor ? args->cursor : "",
                            limit, args->status ? args->status : ""};
    service_call_query (
        call, s_list_read,
        "SELECT o.id, o.connection_id, o.platform, o.conversation_id, o.message_id, "
        "o.part, o.chat_id, o.thread_id, o.text, o.status, o.external_id, o.attempts, "
        "o.error_code, o.last_error, channels.rfc3339 (o.created_at) AS created_at, "
        "channels.rfc3339 (o.sent_at) AS sent_at, channels.rfc3339 (o.delivered_at) AS "
        "delivered_at, channels.rfc3339 (o.read_at) AS read_at, channels.rfc3339 "
        "(o.failed_at) AS failed_at, channels.cursor_of (o.created_at, o.id) AS _cursor "
        "FROM channels.outbound o WHERE o.connection_id = $1 AND ($4 = '' OR o.status = "
        "$4) AND ($2 = '' OR (channels.ts_us (o.created_at), o.id) < (channels.cursor_ts "
        "($2), channels.cursor_id ($2))) ORDER BY o.created_at DESC, o.id DESC LIMIT $3",
        4, params);
}

void
channels_outbound_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (
        runtime, state, &request, &chorus_channels__outbound_list_request__descriptor,
        sizeof (s_call_t));
    if (!call || !service_call_require_user (call))
        return;
    ChorusChannels__OutboundListRequest *args = (ChorusChannels__OutboundListRequest *)
                                                    call->args;
    if (!service_call_take_id (call, args->id, ((s_call_t *) call)->id, "connection"))
        return;
    call->limit = service_call_page_limit (args->has_limit, args->limit);
    const char *params[] = {((s_call_t *) call)->id, service_call_tenant (call)};
    service_call_query (call, s_list_page,
                        "SELECT 1 FROM channels.connections WHERE id = $1 AND tenant_id "
                        "= $2",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  connections.test

typedef struct {
    s_call_t base;  //  first member
    char platform[16];
    uint64_t transfer;  //  the HTTP request, 0 none
} s_check_t;

static void
s_check_free (service_call_t *call)
{
    s_check_t *check = (s_check_t *) call;
    if (check->transfer)
        http_client_cancel (((channels_state_t *) call->state)->http, check->transfer);
}

static void
s_check_done (http_response_t *response, void *arg)
{
    s_check_t *check = (s_check_t *) arg;
    check->transfer = 0;
    channels_outcome_t outcome;
    long status = s_read_answer (response, check->platform, true, &outcome);
    ChorusChannels__ConnectionTest reply = CHORUS_CHANNELS__CONNECTION_TEST__INIT;
    reply.has_ok = reply.has_status = true;
    reply.ok = outcome.ok;
    reply.status = (uint32_t) status;
    if (outcome.ok)
        reply.account = outcome.account;
    else {
        reply.error_code = outcome.error_code;
        reply.error = outcome.error;
    }
    service_call_reply (&check->base.base, &reply.base);
}

static void
s_check_connection (service_call_t *call, PGresult *result)
{
    s_check_t *check = (s_check_t *) call;
    channels_state_t *state = (channels_state_t *) call->state;
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such connection");
        return;
    }
    snprintf (check->platform, sizeof check->platform, "%s", PQgetvalue (result, 0, 0));
    const char *platform = check->platform;
    bool bot = streq (platform, "telegram") || streq (platform, "slack");
    const char *sealed = s_value (result, 0, bot ? 4 : 3);
    if (!state->box) {
        service_call_fail (call, "unavailable", "CHORUS_SECRET_KEY is not set");
        return;
    }
    char *token = sealed ? auth_secretbox_open (state->box, sealed) : NULL;
    if (!token) {
        service_call_fail (call, "internal", "the connection's token cannot be read");
        return;
    }
    channels_account_t account = {
        .platform = platform,
        .base_url = channels_state_api_url (state, platform),
        .token = token,
        .account_id = s_value (result, 0, streq (platform, "whatsapp") ? 1 : 2)};
    channels_http_t http;
    int rc = channels_send_check (&account, &http);
    sodium_memzero (token, strlen (token));
    free (token);
    if (rc != 0) {
        service_call_fail (call, "bad_request", "the connection lacks its account id");
        return;
    }
    check->transfer = s_start (state, &http, service_call_request_id (call), s_check_done,
                               check);
    if (!check->transfer)
        service_call_fail (call, "unavailable", "the request could not start");
}

void
channels_outbound_check (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_channels__id_request__descriptor,
                                             sizeof (s_check_t));
    if (!call)
        return;
    call->free_fn = s_check_free;
    if (!service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusChannels__IdRequest *) call->args)->id,
                                  ((s_call_t *) call)->id, "connection"))
        return;
    const char *params[] = {((s_call_t *) call)->id, service_call_tenant (call)};
    service_call_query (call, s_check_connection,
                        "SELECT platform, phone_number_id, page_id, access_token_sealed, "
                        "bot_token_sealed FROM channels.connections WHERE id = $1 AND "
                        "tenant_id = $2",
                        2, params);
}

void
channels_outbound_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_outbound: ");
    char *items[] = {"plain", "with \"quotes\" and \\", "", "{braces},"};
    char *array = channels_outbound_array (items, 4);
    assert (
        streq (array, "{\"plain\",\"with \\\"quotes\\\" and \\\\\",\"\",\"{braces},\"}"));
    free (array);
    array = channels_outbound_array (NULL, 0);
    assert (streq (array, "{}"));
    free (array);
    assert (channels_outbound_backoff_ms (1, -1) == 1000);
    assert (channels_outbound_backoff_ms (4, -1) == 8000);
    assert (channels_outbound_backoff_ms (30, -1) == 300000);
    assert (channels_outbound_backoff_ms (1, 3) == 3000);
    assert (channels_outbound_backoff_ms (1, 0) == 0);
    printf ("OK\n");
}
