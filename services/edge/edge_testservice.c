/*  edge_testservice: the edge selftests' replica (see the header).              */
#include "edge_testservice.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_worker.h"
#include "channels.pb-c.h"
#include "codec_json.h"
#include "codec_msgpack.h"

typedef struct {
    bus_worker_t *worker;          //  the replica
    zloop_t *loop;                 //  its loop
    edge_testservice_mode_t mode;  //  ping behaviour
    const char *service;           //  service name
    int cancels;                   //  cancellations seen
    zlistx_t *streams;             //  s_stream_t * in progress
    zframe_t *webhook;             //  the last webhooks.receive body
    char webhook_headers[512];     //  and its bus headers, as text
} s_svc_t;

typedef struct {
    s_svc_t *svc;            //  owner
    bus_request_t *request;  //  the request being answered
    uint32_t index;          //  next reply index
    uint32_t count;          //  replies to send
    int timer;               //  zloop timer (-1: none)
} s_stream_t;

//  A reply body: {service, replica, time_ms, index[, pad]}.
static void
s_svc_reply (s_svc_t *svc, s_stream_t *stream, bool final)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, svc->mode == EDGE_TESTSERVICE_BIG ? 5 : 4);
    msgpack_pack_str_with_body (&pk, "service", 7);
    msgpack_pack_str_with_body (&pk, svc->service, strlen (svc->service));
    msgpack_pack_str_with_body (&pk, "replica", 7);
    msgpack_pack_str_with_body (&pk, "test", 4);
    msgpack_pack_str_with_body (&pk, "time_ms", 7);
    msgpack_pack_int64 (&pk, zclock_time ());
    msgpack_pack_str_with_body (&pk, "index", 5);
    msgpack_pack_uint32 (&pk, stream->index++);
    if (svc->mode == EDGE_TESTSERVICE_BIG) {
        char pad[16384];
        memset (pad, 'x', sizeof pad);
        msgpack_pack_str_with_body (&pk, "pad", 3);
        msgpack_pack_str_with_body (&pk, pad, sizeof pad);
    }
    if (final)
        bus_worker_final (svc->worker, &stream->request, sbuf.data, sbuf.size);
    else
        (void) bus_worker_partial (svc->worker, stream->request, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
s_stream_end (s_stream_t *stream)
{
    s_svc_t *svc = stream->svc;
    if (stream->timer >= 0)
        zloop_timer_end (svc->loop, stream->timer);
    void *cursor = zlistx_find (svc->streams, stream);
    if (cursor)
        zlistx_delete (svc->streams, cursor);
    free (stream);
}

static int
s_stream_tick (zloop_t *loop, int timer_id, void *arg)
{
    s_stream_t *stream = (s_stream_t *) arg;
    s_svc_t *svc = stream->svc;
    for (int burst = svc->mode == EDGE_TESTSERVICE_BIG ? 8 : 1;
         burst > 0 && stream->request; burst--) {
        bool final = stream->index + 1 >= stream->count;
        s_svc_reply (svc, stream, final);
        if (final) {
            s_stream_end (stream);
            break;
        }
    }
    return 0;
}

//  Pack a JSON value (taken) as msgpack and send it as a partial or the final.
static void
s_api_send (s_svc_t *svc, bus_request_t **request_p, json_t *value, bool final)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    int rc = codec_json_value_to_msgpack (value, &pk);
    assert (rc == 0);
    json_decref (value);
    if (final)
        bus_worker_final (svc->worker, request_p, sbuf.data, sbuf.size);
    else
        (void) bus_worker_partial (svc->worker, *request_p, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
}

//  Keep a request as held: answered only by its cancel or the end of the test.
static void
s_hold (s_svc_t *svc, bus_request_t *request)
{
    s_stream_t *held = calloc (1, sizeof *held);
    assert (held);
    held->svc = svc;
    held->request = request;
    held->timer = -1;
    bus_request_set_data (request, held);
    zlistx_add_end (svc->streams, held);
}

//  API mode: webhooks.receive as the channels service's stand-in (see the header).
static void
s_webhook_request (s_svc_t *svc, bus_request_t *request)
{
    const ChorusBus__Headers *h = bus_request_headers (request);
    zframe_destroy (&svc->webhook);
    svc->webhook = zframe_new (bus_request_body (request), bus_request_size (request));
    snprintf (svc->webhook_headers, sizeof svc->webhook_headers,
              "user=%s tenant=%s role=%s session=%s key=%s ip=%s timeout=%lld",
              h->user_id, h->tenant_id, h->role, h->session_id, h->api_key_id,
              h->client_ip, (long long) h->timeout_ms);
    char why[128];
    ChorusChannels__WebhookRequest *hook = (ChorusChannels__WebhookRequest *)
        codec_decode (&chorus_channels__webhook_request__descriptor,
                      bus_request_body (request), bus_request_size (request), why,
                      sizeof why);
    if (!hook) {
        bus_worker_error (svc->worker, &request, "bad_request", why);
        return;
    }
    const char *id = hook->connection_id ? hook->connection_id : "";
    ChorusChannels__WebhookReply reply = CHORUS_CHANNELS__WEBHOOK_REPLY__INIT;
    reply.has_status = 1;
    reply.status = 200;
    char text[32];
    if (streq (id, "hold"))
        s_hold (svc, request);
    else if (strncmp (id, "error-", 6) == 0)
        bus_worker_error (svc->worker, &request, id + 6, "as asked");
    else if (streq (id, "garbage"))
        bus_worker_final (svc->worker, &request, "\xc1", 1);
    else {
        if (strncmp (id, "status-", 7) == 0) {
            reply.status = (uint32_t) strtoul (id + 7, NULL, 10);
            reply.content_type = "text/plain; charset=utf-8";
            snprintf (text, sizeof text, "status %u", reply.status);
            reply.has_body = 1;
            reply.body.data = (uint8_t *) text;
            reply.body.len = strlen (text);
        }
        else {
            reply.content_type = hook->content_type;
            reply.has_body = hook->has_body;
            reply.body = hook->body;
        }
        bus_worker_final_msg (svc->worker, &request, &reply.base);
    }
    protobuf_c_message_free_unpacked (&hook->base, NULL);
}

//  API mode: stand in for chat and agents (see the header).

//  What a test asks of us may come in the content, for routes whose body takes
//  no other keys: "!error=rate_limited retry_after=7 hold fail_mid" sets args'
//  error (a string), retry_after (a number), hold and fail_mid (true).
static void
s_controls (json_t *args)
{
    const char *content = json_string_value (json_object_get (args, "content"));
    if (!content || content[0] != '!')
        return;
    char *copy = strdup (content + 1);
    assert (copy);
    char *save = NULL;
    for (char *word = strtok_r (copy, " ", &save); word;
         word = strtok_r (NULL, " ", &save)) {
        char *value = strchr (word, '=');
        if (value)
            *value++ = 0;
        if (!value)
            json_object_set_new (args, word, json_true ());
        else if (*value >= '0' && *value <= '9')
            json_object_set_new (args, word, json_integer (strtoll (value, NULL, 10)));
        else
            json_object_set_new (args, word, json_string (value));
    }
    free (copy);
}

static void
s_api_request (s_svc_t *svc, bus_request_t *request)
{
    const char *command = bus_request_command (request);
    if (streq (command, "webhooks.receive")) {
        s_webhook_request (svc, request);
        return;
    }
    json_t *args = NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    if (msgpack_unpack_next (&unpacked, (const char *) bus_request_body (request),
                             bus_request_size (request), NULL)
        == MSGPACK_UNPACK_SUCCESS)
        args = codec_msgpack_to_jansson (&unpacked.data);
    msgpack_unpacked_destroy (&unpacked);
    if (!json_is_object (args)) {
        json_decref (args);
        args = json_object ();
    }
    s_controls (args);
    const char *error = json_string_value (json_object_get (args, "error"));
    bool stream = json_is_true (json_object_get (args, "stream"));
    bool fail_mid = json_is_true (json_object_get (args, "fail_mid"));
    if (json_is_true (json_object_get (args, "hold")))
        s_hold (svc, request);
    else if (error)
        bus_worker_error_retry (
            svc->worker, &request, error, "as asked",
            (uint32_t) json_integer_value (json_object_get (args, "retry_after")));
    else if (stream
             && (streq (command, "messages.send") || streq (command, "agents.test"))) {
        s_api_send (svc, &request,
                    json_pack ("{s:s, s:s, s:O}", "event", "message.created", "id",
                               "m-1:1", "data", args),
                    false);
        s_api_send (svc, &request,
                    json_pack ("{s:s, s:s, s:{s:s, s:s}}", "event", "message.delta", "id",
                               "m-1:2", "data", "message_id", "m-1", "delta", "Hel\nlo"),
                    false);
        if (fail_mid)
            bus_worker_error (svc->worker, &request, "upstream_error", "provider broke");
        else
            s_api_send (svc, &request,
                        json_pack ("{s:s, s:s, s:{s:s, s:s}}", "event",
                                   "message.completed", "id", "m-1:3", "data", "id",
                                   "m-1", "status", "complete"),
                        true);
    }
    else if (stream && streq (command, "openai_chat")) {
        s_api_send (svc, &request,
                    json_pack ("{s:s, s:s, s:[{s:i, s:{s:s}}]}", "id", "chatcmpl-1",
                               "object", "chat.completion.chunk", "choices", "index", 0,
                               "delta", "content", "Hel"),
                    false);
        if (fail_mid)
            bus_worker_error (svc->worker, &request, "upstream_error", "provider broke");
        else
            s_api_send (svc, &request,
                        json_pack ("{s:s, s:s, s:[{s:i, s:{}, s:s}]}", "id", "chatcmpl-1",
                                   "object", "chat.completion.chunk", "choices", "index",
                                   0, "delta", "finish_reason", "stop"),
                        true);
    }
    else {
        const ChorusBus__Headers *h = bus_request_headers (request);
        s_api_send (svc, &request,
                    json_pack ("{s:s, s:O, s:s}", "command", command, "args", args,
                               "user", h->user_id ? h->user_id : ""),
                    true);
    }
    json_decref (args);
}

static void
s_svc_request (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    const char *command = bus_request_command (request);
    if (svc->mode == EDGE_TESTSERVICE_API && !streq (command, "ping")
        && !streq (command, "health")) {
        s_api_request (svc, request);
        return;
    }
    if (streq (command, "health")) {
        ChorusBus__HealthReply health = CHORUS_BUS__HEALTH_REPLY__INIT;
        health.service = (char *) svc->service;
        health.status = "ok";
        health.database = true;
        health.redis = true;
        bus_worker_final_msg (worker, &request, &health.base);
        return;
    }
    if (!streq (command, "ping")) {
        //  The generic answer, telling which identity headers came with it
        const ChorusBus__Headers *h = bus_request_headers (request);
        char message[512];
        snprintf (message, sizeof message,
                  "test service: user=%s tenant=%s role=%s session=%s key=%s ip=%s",
                  h->user_id, h->tenant_id, h->role, h->session_id, h->api_key_id,
                  h->client_ip);
        bus_worker_error (worker, &request, "unknown_command", message);
        return;
    }
    char error[128];
    ChorusBus__PingRequest *ping = (ChorusBus__PingRequest *) codec_decode (
        &chorus_bus__ping_request__descriptor, bus_request_body (request),
        bus_request_size (request), error, sizeof error);
    if (!ping) {
        bus_worker_error (worker, &request, "bad_request", error);
        return;
    }
    s_stream_t *stream = calloc (1, sizeof *stream);
    assert (stream);
    stream->svc = svc;
    stream->request = request;
    stream->count = ping->count ? ping->count : 1;
    stream->timer = -1;
    bus_request_set_data (request, stream);
    zlistx_add_end (svc->streams, stream);
    if (svc->mode == EDGE_TESTSERVICE_HOLD)
        ;  //  never answered: waits for a cancel or the deadline
    else if (stream->count == 1) {
        s_svc_reply (svc, stream, true);
        s_stream_end (stream);
    }
    else
        stream->timer = zloop_timer (svc->loop, ping->interval_ms ? ping->interval_ms : 1,
                                     0, s_stream_tick, stream);
    protobuf_c_message_free_unpacked (&ping->base, NULL);
}

static void
s_svc_cancel (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    svc->cancels++;
    s_stream_t *stream = (s_stream_t *) bus_request_data (request);
    bus_worker_error (worker, &request, "cancelled", "cancelled");
    if (stream)
        s_stream_end (stream);
}

static int
s_svc_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    char *command = zstr_recv (pipe);
    int rc = 0;
    if (!command || streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "CANCELS"))
        zsock_send (pipe, "i", svc->cancels);
    else if (streq (command, "WEBHOOK")) {
        zframe_t *body = svc->webhook ? zframe_dup (svc->webhook) : zframe_new (NULL, 0);
        zsock_send (pipe, "sf", svc->webhook_headers, body);
        zframe_destroy (&body);
    }
    free (command);
    return rc;
}

void
edge_testservice_actor (zsock_t *pipe, void *args)
{
    edge_testservice_config_t *config = (edge_testservice_config_t *) args;
    s_svc_t svc = {0};
    svc.mode = config->mode;
    svc.service = config->service;
    svc.streams = zlistx_new ();
    svc.loop = zloop_new ();
    svc.worker = bus_worker_new (config->brokers, config->service, 16, NULL, 100, 3,
                                 NULL);
    assert (svc.worker);
    bus_worker_set_handlers (svc.worker, s_svc_request, s_svc_cancel, &svc);
    int rc = bus_worker_attach (svc.worker, svc.loop);
    assert (rc == 0);
    zloop_reader (svc.loop, pipe, s_svc_pipe, &svc);
    zsock_signal (pipe, 0);
    zloop_start (svc.loop);
    while (zlistx_size (svc.streams)) {
        s_stream_t *stream = (s_stream_t *) zlistx_first (svc.streams);
        bus_worker_error (svc.worker, &stream->request, "shutting_down", "test ends");
        s_stream_end (stream);
    }
    bus_worker_detach (svc.worker, svc.loop);
    bus_worker_destroy (&svc.worker);
    zloop_destroy (&svc.loop);
    zframe_destroy (&svc.webhook);
    zlistx_destroy (&svc.streams);
}

int
edge_testservice_cancels (zactor_t *service)
{
    zstr_send (service, "CANCELS");
    int cancels = -1;
    zsock_recv (service, "i", &cancels);
    return cancels;
}

zframe_t *
edge_testservice_webhook (zactor_t *service, char *headers, size_t size)
{
    zstr_send (service, "WEBHOOK");
    char *text = NULL;
    zframe_t *body = NULL;
    if (zsock_recv (service, "sf", &text, &body) != 0)
        return NULL;
    snprintf (headers, size, "%s", text ? text : "");
    free (text);
    if (body && zframe_size (body) == 0)
        zframe_destroy (&body);
    return body;
}

bool
edge_testservice_wait_cancels (zactor_t *service, int n)
{
    for (int i = 0; i < 200; i++) {
        if (edge_testservice_cancels (service) > n)
            return true;
        zclock_sleep (10);
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Selftest

#include "bus_broker.h"
#include "bus_client.h"

//  Records the kind, code and message of the last reply.
static void
s_reply_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    char *seen = (char *) arg;
    snprintf (seen, 256, "%d %s %s", reply->kind, reply->code ? reply->code : "-",
              reply->message ? reply->message : "-");
}

void
edge_testservice_test (bool verbose)
{
    printf (" * edge_testservice: ");
    bus_broker_config_t broker_config = {
        .id = "testservice", .log_level = "error", .heartbeat_ms = 100};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    zstr_sendx (broker, "BIND", "inproc://edge-testservice", NULL);
    int port = -1;
    zsock_recv (broker, "i", &port);
    edge_testservice_config_t config = {"inproc://edge-testservice", "chat",
                                        EDGE_TESTSERVICE_NORMAL};
    zactor_t *service = zactor_new (edge_testservice_actor, &config);
    bus_client_t *client = bus_client_new ("inproc://edge-testservice", 100, 3, NULL);
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.timeout_ms = 2000;
    headers.user_id = "u1";
    headers.client_ip = "192.0.2.1";
    char seen[256] = "";
    //  Until the replica is registered the broker answers unavailable
    for (int i = 0; i < 200 && !strstr (seen, "unknown_command"); i++) {
        *seen = 0;
        bus_client_request (client, "chat", "nope", &headers, NULL, 0, s_reply_fn, seen);
        for (int j = 0; j < 100 && !*seen; j++) {
            zclock_sleep (2);
            bus_client_process (client);
        }
    }
    if (verbose)
        printf ("(%s) ", seen);
    assert (strstr (seen, "unknown_command test service: user=u1 tenant= role= "));
    assert (strstr (seen, "ip=192.0.2.1"));
    assert (edge_testservice_cancels (service) == 0);
    bus_client_destroy (&client);
    zactor_destroy (&service);
    zactor_destroy (&broker);
    printf ("OK\n");
}
