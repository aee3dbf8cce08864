/*  channels_receive: webhooks.receive (channels_receive.h).                   */
#include "channels_receive.h"

#include <assert.h>
#include <sodium.h>
#include <time.h>

#include "bus.pb-c.h"
#include "bus_proto.h"
#include "channels_inbox.h"
#include "channels_meta.h"
#include "channels_slack.h"
#include "channels_store.h"
#include "channels_telegram.h"
#include "channels_verify.h"
#include "codec_msgpack.h"

//  A webhook in progress.
typedef struct {
    service_call_t base;               //  the call
    char connection[SERVICE_ID_SIZE];  //  connection id, lower case
    channels_batch_t *batch;           //  what the body carries, once parsed
} s_receive_t;

//  Free what a webhook call holds beside the call.
static void
s_receive_free (service_call_t *call)
{
    channels_batch_destroy (&((s_receive_t *) call)->batch);
}

//  Answer the edge: status, content type and body bytes as they go out.
static void
s_answer (service_call_t *call, uint32_t status, const char *content_type,
          const void *body, size_t size)
{
    ChorusChannels__WebhookReply reply = CHORUS_CHANNELS__WEBHOOK_REPLY__INIT;
    reply.has_status = 1;
    reply.status = status;
    reply.content_type = (char *) content_type;
    reply.has_body = 1;
    reply.body.data = (uint8_t *) body;
    reply.body.len = size;
    service_call_reply (call, &reply.base);
}

//  The JSON error body {"error":{"code","message"}} (caller frees).
static char *
s_error_body (const char *code, const char *message)
{
    json_t *body = json_pack ("{s:{s:s, s:s}}", "error", "code", code, "message",
                              message);
    assert (body);
    char *text = json_dumps (body, JSON_COMPACT);
    assert (text);
    json_decref (body);
    return text;
}

//  Answer an error status with its JSON body; nothing was stored.
static void
s_refuse (service_call_t *call, uint32_t status, const char *code, const char *message)
{
    core_log_debug (service_runtime_log (call->runtime), service_call_request_id (call),
                    "webhook %s: %s", code, message);
    char *body = s_error_body (code, message);
    s_answer (call, status, "application/json", body, strlen (body));
    free (body);
}

//  Answer 200 with what became of the items.
static void
s_accept (service_call_t *call, size_t stored, size_t applied)
{
    channels_batch_t *batch = ((s_receive_t *) call)->batch;
    size_t messages = batch ? channels_batch_messages (batch) : 0;
    size_t statuses = batch ? channels_batch_statuses (batch) : 0;
    size_t ignored = batch ? channels_batch_ignored (batch) : 0;
    char body[160];
    int size = snprintf (body, sizeof body,
                         "{\"ok\":true,\"stored\":%zu,\"duplicates\":%zu,\"ignored\":%zu,"
                         "\"statuses\":%zu}",
                         stored, messages - stored, ignored + statuses - applied,
                         applied);
    assert (size > 0 && (size_t) size < sizeof body);
    s_answer (call, 200, "application/json", body, (size_t) size);
}

//  Publish one event row (seq, topic, tenant, payload hex, ms) once committed.
void
channels_receive_publish (channels_state_t *self, PGresult *result, int row)
{
    if (!self->events)
        return;
    const char *hex = PQgetvalue (result, row, 3);
    size_t size = strlen (hex) / 2;
    uint8_t *payload = malloc (size + 1);
    assert (payload);
    size_t length = 0;
    if (sodium_hex2bin (payload, size + 1, hex, strlen (hex), NULL, &length, NULL) != 0) {
        free (payload);
        return;
    }
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = "channels";
    meta.seq = strtoull (PQgetvalue (result, row, 0), NULL, 10);
    meta.tenant_id = PQgetvalue (result, row, 2);
    meta.time_ms = strtoll (PQgetvalue (result, row, 4), NULL, 10);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, PQgetvalue (result, row, 1));
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&meta.base)});
    zmsg_addmem (msg, payload, length);
    bus_proto_send (&msg, self->events);
    free (payload);
}

//  Committed: publish the events written and acknowledge.
static void
s_on_stored (service_call_t *call, PGresult *result)
{
    channels_state_t *self = (channels_state_t *) call->state;
    size_t stored = 0, applied = 0;
    for (int row = 0; row < PQntuples (result); row++) {
        channels_receive_publish (self, result, row);
        if (streq (PQgetvalue (result, row, 1), "channels.inbound.received"))
            stored++;
        else
            applied++;
    }
    core_log_debug (self->log, service_call_request_id (call),
                    "webhook %s: %zu stored, %zu statuses applied",
                    ((s_receive_t *) call)->connection, stored, applied);
    s_accept (call, stored, applied);
    if (stored)
        channels_inbox_kick (self);
}

//  Verify the request against the connection's secret (opened from sealed).
//  Returns 0 when verified; else answers (401, 403, 503 or 500) and returns -1.
//  A verified Meta handshake is answered here too (returns 1).
static int
s_verify (service_call_t *call, const char *platform, const char *sealed)
{
    channels_state_t *self = (channels_state_t *) call->state;
    ChorusChannels__WebhookRequest *args = (ChorusChannels__WebhookRequest *) call->args;
    bool handshake = streq (args->method, "GET");
    if (!sealed) {
        s_refuse (call, handshake ? 403 : 401, handshake ? "forbidden" : "unauthorized",
                  "the connection has no secret to verify with");
        return -1;
    }
    if (!self->box) {
        service_call_fail (call, "unavailable",
                           "CHORUS_SECRET_KEY is not set: webhooks cannot be verified");
        return -1;
    }
    char *secret = auth_secretbox_open (self->box, sealed);
    if (!secret) {
        core_log_error (self->log, service_call_request_id (call),
                        "connection %s: its secret does not open (CHORUS_SECRET_KEY "
                        "changed?)",
                        ((s_receive_t *) call)->connection);
        service_call_fail (call, "internal", "the connection's secret cannot be read");
        return -1;
    }
    const void *body = args->has_body ? args->body.data : NULL;
    size_t size = args->has_body ? args->body.len : 0;
    int rc = 0;
    if (handshake) {
        char challenge[CHANNELS_VERIFY_CHALLENGE_MAX + 1];
        if (channels_verify_meta_handshake (secret, args->query, challenge,
                                            sizeof challenge)
            == 0) {
            s_answer (call, 200, "text/plain", challenge, strlen (challenge));
            rc = 1;
        }
        else {
            s_refuse (call, 403, "forbidden", "wrong hub.mode or hub.verify_token");
            rc = -1;
        }
    }
    else if (channels_store_platform_meta (platform)) {
        if (!channels_verify_meta (secret, body, size, args->hub_signature_256)) {
            s_refuse (call, 401, "unauthorized", "bad X-Hub-Signature-256");
            rc = -1;
        }
    }
    else if (streq (platform, "telegram")) {
        if (!channels_verify_telegram (secret, args->telegram_secret_token)) {
            s_refuse (call, 401, "unauthorized", "bad X-Telegram-Bot-Api-Secret-Token");
            rc = -1;
        }
    }
    else {
        channels_verify_result_t verdict = channels_verify_slack (
            secret, args->slack_request_timestamp, args->slack_signature, body, size,
            (int64_t) time (NULL));
        if (verdict != CHANNELS_VERIFY_OK) {
            s_refuse (call, 401, "unauthorized",
                      verdict == CHANNELS_VERIFY_STALE
                          ? "X-Slack-Request-Timestamp is missing or too old"
                          : "bad X-Slack-Signature");
            rc = -1;
        }
    }
    sodium_memzero (secret, strlen (secret));
    free (secret);
    return rc;
}

//  Column of the connection row, NULL when SQL NULL.
static const char *
s_column (PGresult *result, const char *name)
{
    int column = PQfnumber (result, name);
    return column >= 0 && !PQgetisnull (result, 0, column)
               ? PQgetvalue (result, 0, column)
               : NULL;
}

//  The connection row is read: verify, parse, then store.
static void
s_on_connection (service_call_t *call, PGresult *result)
{
    ChorusChannels__WebhookRequest *args = (ChorusChannels__WebhookRequest *) call->args;
    s_receive_t *receive = (s_receive_t *) call;
    const char *platform = PQntuples (result) == 1 ? s_column (result, "platform") : NULL;
    const char *enabled = platform ? s_column (result, "enabled") : NULL;
    if (!platform || !streq (platform, args->platform) || !enabled
        || !streq (enabled, "t")) {
        s_refuse (call, 404, "not_found", "no such webhook");
        return;
    }
    //  Verify before anything else
    bool meta = channels_store_platform_meta (platform);
    const char *sealed = meta ? s_column (result, streq (args->method, "GET")
                                                      ? "verify_token_sealed"
                                                      : "app_secret_sealed")
                         : streq (platform, "telegram")
                             ? s_column (result, "secret_token_sealed")
                             : s_column (result, "signing_secret_sealed");
    if (s_verify (call, platform, sealed) != 0)
        return;
    if (args->slack_retry_num)
        core_log_debug (service_runtime_log (call->runtime),
                        service_call_request_id (call), "Slack retry %s (%s)",
                        args->slack_retry_num,
                        args->slack_retry_reason ? args->slack_retry_reason : "");
    //  Then parse, trusting nothing in the body
    const void *body = args->has_body ? args->body.data : NULL;
    size_t size = args->has_body ? args->body.len : 0;
    receive->batch = channels_batch_new ();
    channels_parse_t parsed;
    if (meta)
        parsed = channels_meta_parse (platform,
                                      s_column (result, streq (platform, "whatsapp")
                                                            ? "phone_number_id"
                                                            : "page_id"),
                                      body, size, receive->batch);
    else if (streq (platform, "telegram"))
        parsed = channels_telegram_parse (body, size, receive->batch);
    else
        parsed = channels_slack_parse (s_column (result, "bot_user_id"), body, size,
                                       receive->batch);
    if (parsed == CHANNELS_PARSE_BAD) {
        s_refuse (call, 400, "bad_request", "the body is not a webhook of this platform");
        return;
    }
    if (parsed == CHANNELS_PARSE_TOO_MANY) {
        s_refuse (call, 413, "payload_too_large", "too many items in one webhook");
        return;
    }
    const char *challenge = channels_batch_challenge (receive->batch);
    if (challenge) {
        s_answer (call, 200, "text/plain", challenge, strlen (challenge));
        return;
    }
    if (channels_batch_size (receive->batch) == 0) {
        s_accept (call, 0, 0);
        return;
    }
    //  Every item and its event in one transaction; the answer after the commit
    char *items = channels_batch_json (receive->batch);
    const char *params[] = {receive->connection, items};
    service_call_query (
        call, s_on_stored,
        "SELECT seq, topic, tenant, payload, ms FROM channels.inbox_store "
        "($1::uuid, $2::jsonb)",
        2, params);
    free (items);
}

void
channels_receive (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (
        runtime, state, &request, &chorus_channels__webhook_request__descriptor,
        sizeof (s_receive_t));
    if (!call)
        return;
    call->free_fn = s_receive_free;
    ChorusChannels__WebhookRequest *args = (ChorusChannels__WebhookRequest *) call->args;
    if (!channels_store_platform_known (args->platform)
        || !service_uuid_valid (args->connection_id)) {
        s_refuse (call, 404, "not_found", "no such webhook");
        return;
    }
    bool get = args->method && streq (args->method, "GET");
    bool post = args->method && streq (args->method, "POST");
    if (!post && !(get && channels_store_platform_meta (args->platform))) {
        s_refuse (call, 405, "method_not_allowed",
                  channels_store_platform_meta (args->platform)
                      ? "this webhook takes GET and POST"
                      : "this webhook takes POST");
        return;
    }
    if (args->has_body && args->body.len > CHANNELS_RECEIVE_MAX_BODY) {
        s_refuse (call, 413, "payload_too_large", "the body is too large");
        return;
    }
    s_receive_t *receive = (s_receive_t *) call;
    for (size_t i = 0; i < SERVICE_ID_SIZE; i++)
        receive->connection[i] = (char) tolower ((unsigned char) args->connection_id[i]);
    const char *params[] = {receive->connection};
    service_call_query (
        call, s_on_connection,
        "SELECT platform, enabled, phone_number_id, page_id, bot_user_id, "
        "app_secret_sealed, verify_token_sealed, secret_token_sealed, "
        "signing_secret_sealed FROM channels.connections WHERE id = $1",
        1, params);
}

zsock_t *
channels_receive_publisher (const char *brokers)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints)
        return NULL;
    zsock_t *pub = zsock_new (ZMQ_PUB);
    assert (pub);
    zsock_set_sndhwm (pub, 100000);
    zsock_set_linger (pub, 1000);
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints)) {
        char events_in[256];
        if (bus_proto_event_endpoint (endpoint, 1, events_in, sizeof events_in) == 0)
            zsock_connect (pub, "%s", events_in);
    }
    zlist_destroy (&endpoints);
    return pub;
}

void
channels_receive_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_receive: ");
    char *body = s_error_body ("unauthorized", "bad \"signature\"");
    assert (streq (body, "{\"error\":{\"code\":\"unauthorized\",\"message\":\"bad "
                         "\\\"signature\\\"\"}}"));
    free (body);
    zsock_t *pub = channels_receive_publisher ("tcp://127.0.0.1:7100,inproc://b");
    assert (pub);
    zsock_destroy (&pub);
    assert (channels_receive_publisher ("") == NULL);
    printf ("OK\n");
}
