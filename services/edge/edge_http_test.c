/*  edge_http_test: edge_http's selftest over real sockets, for the agents, chat
    and OpenAI routes (schemas/chat.md): success statuses, the arguments that
    reach the service (query filters, "stream", "last_event_id"), SSE framing of
    event maps and OpenAI chunks, errors before and during a stream, OpenAI's
    error shape, and cancellation when the client goes away; and for the
    platforms' webhooks (schemas/channels.md): the bytes, query and headers that
    reach webhooks.receive, the reply written as it is, limits, errors and the
    budget per connection id. A real broker, the test service standing in for
    chat, agents and channels, and the edge on ephemeral ports. Its own file: edge_http.c is near the size where a file splits, and
    edge_server_test covers the generic HTTP, SSE and WebSocket behaviour.       */
#include "edge_http.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_broker.h"
#include "channels.pb-c.h"
#include "codec_msgpack.h"
#include "edge_server.h"
#include "edge_testclient.h"
#include "edge_testservice.h"

#define S_SECRET "edge-http-test-secret-0123456789abcdefgh"

//  Webhook limits of the test edge: below the edge's own body limit and above it
#define S_WEBHOOK_MAX_BODY 200000
#define S_WEBHOOK_TIMEOUT_MS 300

//  The JSON body of a response (new reference; asserts it is JSON).
static json_t *
s_json (edge_response_t *r)
{
    json_t *json = json_loads (r->body, 0, NULL);
    if (!json)
        fprintf (stderr, "edge_http_test: not JSON: %s\n", r->body);
    assert (json);
    return json;
}

//  The string at args.<name> of an echoed request.
static const char *
s_arg (json_t *echo, const char *name)
{
    return json_string_value (json_object_get (json_object_get (echo, "args"), name));
}

//  An OpenAI error body: code, type, a message and param null.
static bool
s_openai_error (edge_response_t *r, const char *code, const char *type)
{
    json_t *body = json_loads (r->body, 0, NULL);
    json_t *error = json_object_get (body, "error");
    bool ok = json_is_string (json_object_get (error, "message"))
              && json_is_null (json_object_get (error, "param"))
              && json_object_get (error, "param")
              && streq (json_string_value (json_object_get (error, "code")), code)
              && streq (json_string_value (json_object_get (error, "type")), type);
    json_decref (body);
    return ok;
}

//  POST body to path with headers; returns the status.
static int
s_post (int port, const char *path, const char *headers, const char *body,
        edge_response_t *r)
{
    return edge_testclient_call (port, "POST", path, headers, body, r);
}

//  Plain JSON answers of the new routes: statuses, arguments, who may call.
static void
s_test_json (int port, const char *member, const char *admin)
{
    edge_response_t r;
    char value[128];
    //  Lists with their filters typed; a bad filter is refused at the edge
    assert (edge_testclient_get (port,
                                 "/api/v1/conversations?limit=5&archived=true"
                                 "&agent_id=a-1&x=1",
                                 member, &r)
            == 200);
    json_t *echo = s_json (&r);
    assert (streq (json_string_value (json_object_get (echo, "command")),
                   "conversations.list"));
    json_t *args = json_object_get (echo, "args");
    assert (json_integer_value (json_object_get (args, "limit")) == 5);
    assert (json_is_true (json_object_get (args, "archived")));
    assert (streq (s_arg (echo, "agent_id"), "a-1") && json_object_size (args) == 3);
    assert (streq (json_string_value (json_object_get (echo, "user")), "user-1"));
    json_decref (echo);
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/conversations?archived=maybe", member, &r)
            == 400);
    assert (edge_response_error_is (&r, "bad_request"));
    edge_response_free (&r);
    //  Creates answer 201, deletes 204 with no body, the path's id wins
    assert (s_post (port, "/api/v1/conversations", member,
                    "{\"agent_id\":\"a-1\",\"title\":\"t\"}", &r)
            == 201);
    echo = s_json (&r);
    assert (streq (s_arg (echo, "title"), "t"));
    json_decref (echo);
    edge_response_free (&r);
    assert (edge_testclient_call (port, "DELETE", "/api/v1/conversations/c-1", member,
                                  NULL, &r)
            == 204);
    assert (r.body_size == 0
            && !edge_response_header (&r, "content-type", value, sizeof value));
    edge_response_free (&r);
    assert (edge_testclient_call (port, "PATCH", "/api/v1/conversations/c-1", member,
                                  "{\"id\":\"other\",\"archived\":true}", &r)
            == 200);
    echo = s_json (&r);
    assert (streq (s_arg (echo, "id"), "c-1"));
    json_decref (echo);
    edge_response_free (&r);
    //  Who: members read agents, admins write them; nobody without a credential
    assert (edge_testclient_get (port, "/api/v1/agents", NULL, &r) == 401);
    assert (edge_response_error_is (&r, "unauthorized"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/agents/a-1", member, &r) == 200);
    edge_response_free (&r);
    assert (s_post (port, "/api/v1/agents", member, "{\"name\":\"a\"}", &r) == 403);
    assert (edge_response_error_is (&r, "forbidden"));
    edge_response_free (&r);
    assert (s_post (port, "/api/v1/agents", admin, "{\"name\":\"a\"}", &r) == 201);
    edge_response_free (&r);
    assert (edge_testclient_call (port, "PUT", "/api/v1/providers/openai", admin,
                                  "{\"api_key\":\"k\"}", &r)
            == 200);
    echo = s_json (&r);
    assert (streq (s_arg (echo, "provider"), "openai"));
    json_decref (echo);
    edge_response_free (&r);
    assert (
        edge_testclient_call (port, "DELETE", "/api/v1/providers/openai", admin, NULL, &r)
        == 204);
    edge_response_free (&r);
    assert (s_post (port, "/api/v1/conversations/c-1/cancel", member, NULL, &r) == 200);
    edge_response_free (&r);
    //  The LLM provider's failures are a bad gateway; rate limits keep Retry-After
    assert (s_post (port, "/api/v1/agents/a-1/test", admin,
                    "{\"content\":\"!error=upstream_unauthorized\"}", &r)
            == 502);
    assert (edge_response_error_is (&r, "upstream_unauthorized"));
    assert (!strstr (r.body, "\"type\""));  //  not an OpenAI route
    edge_response_free (&r);
    assert (s_post (port, "/api/v1/conversations/c-1/messages", member,
                    "{\"content\":\"!error=rate_limited retry_after=7\"}", &r)
            == 429);
    assert (streq (edge_response_header (&r, "retry-after", value, sizeof value), "7"));
    edge_response_free (&r);
    //  Without Accept: text/event-stream the final Message, no "stream" asked
    assert (s_post (port, "/api/v1/conversations/c-1/messages", member,
                    "{\"content\":\"hi\"}", &r)
            == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "application/json"));
    echo = s_json (&r);
    assert (streq (s_arg (echo, "content"), "hi") && streq (s_arg (echo, "id"), "c-1"));
    assert (!json_object_get (json_object_get (echo, "args"), "stream"));
    assert (!json_object_get (json_object_get (echo, "args"), "last_event_id"));
    json_decref (echo);
    edge_response_free (&r);
}

//  SSE of chat routes: event maps, Last-Event-ID, the replay route, errors.
static void
s_test_events (int port, const char *member, const char *admin)
{
    edge_response_t r;
    char value[128], headers[2048];
    snprintf (headers, sizeof headers, "%sAccept: text/event-stream\r\n", member);
    assert (s_post (port, "/api/v1/conversations/c-1/messages", headers,
                    "{\"content\":\"hi\"}", &r)
            == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/event-stream"));
    //  (retry: first, so an EventSource reconnects within chat's resume grace)
    const char *expected =
        "retry: 1000\n\n"
        "id: m-1:1\nevent: message.created\ndata: {\"content\":\"hi\",\"stream\":true,"
        "\"id\":\"c-1\"}\n\n"
        "id: m-1:2\nevent: message.delta\ndata: {\"message_id\":\"m-1\",\"delta\":"
        "\"Hel\\nlo\"}\n\n"
        "id: m-1:3\nevent: message.completed\ndata: {\"id\":\"m-1\",\"status\":"
        "\"complete\"}\n\n";
    if (!streq (r.body, expected))
        fprintf (stderr, "edge_http_test: got\n%s\n", r.body);
    assert (streq (r.body, expected));
    edge_response_free (&r);
    //  A reconnect names the last event it saw; a bad one is refused
    snprintf (headers, sizeof headers,
              "%sAccept: text/event-stream\r\nLast-Event-ID: m-1:2\r\n", member);
    assert (s_post (port, "/api/v1/conversations/c-1/messages", headers, NULL, &r)
            == 200);
    assert (strstr (r.body, "event: message.created\ndata: {\"stream\":true,"
                            "\"last_event_id\":\"m-1:2\",\"id\":\"c-1\"}\n\n"));
    edge_response_free (&r);
    char long_id[200];
    memset (long_id, '7', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    snprintf (headers, sizeof headers,
              "%sAccept: text/event-stream\r\nLast-Event-ID: %s\r\n", member, long_id);
    assert (s_post (port, "/api/v1/conversations/c-1/messages", headers, NULL, &r)
            == 400);
    assert (edge_response_error_is (&r, "bad_request"));
    edge_response_free (&r);
    //  EventSource's route: always SSE, every event without Last-Event-ID
    assert (edge_testclient_get (port, "/api/v1/conversations/c-1/messages/m-9/events",
                                 member, &r)
            == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/event-stream"));
    assert (strstr (r.body, "data: {\"stream\":true,\"last_event_id\":\"m-9:0\","
                            "\"id\":\"c-1\",\"message_id\":\"m-9\"}\n\n"));
    assert (strstr (r.body, "event: message.completed"));
    edge_response_free (&r);
    snprintf (headers, sizeof headers, "%sLast-Event-ID: m-9:2\r\n", member);
    assert (edge_testclient_get (port, "/api/v1/conversations/c-1/messages/m-9/events",
                                 headers, &r)
            == 200);
    assert (strstr (r.body, "\"last_event_id\":\"m-9:2\""));
    edge_response_free (&r);
    //  An error mid-stream: event: error with the error body, then the end
    snprintf (headers, sizeof headers, "%sAccept: text/event-stream\r\n", admin);
    assert (s_post (port, "/api/v1/agents/a-1/test", headers,
                    "{\"content\":\"!fail_mid\"}", &r)
            == 200);
    const char *tail = "event: message.delta\ndata: {\"message_id\":\"m-1\",\"delta\":"
                       "\"Hel\\nlo\"}\n\nevent: error\ndata: {\"error\":{\"code\":"
                       "\"upstream_error\",\"message\":\"provider broke\"}}\n\n";
    assert (r.body_size > strlen (tail)
            && streq (r.body + r.body_size - strlen (tail), tail));
    edge_response_free (&r);
    //  An error before the stream starts is an HTTP error
    assert (s_post (port, "/api/v1/conversations/c-1/messages", headers,
                    "{\"content\":\"!error=not_found\"}", &r)
            == 404);
    assert (edge_response_error_is (&r, "not_found"));
    edge_response_free (&r);
    //  Routes that do not stream answer JSON whatever Accept says
    snprintf (headers, sizeof headers, "%sAccept: text/event-stream\r\n", member);
    assert (edge_testclient_get (port, "/api/v1/conversations/c-1", headers, &r) == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "application/json"));
    edge_response_free (&r);
}

//  The OpenAI-compatible routes: framing, [DONE], errors in OpenAI's shape.
static void
s_test_openai (int port, const char *member)
{
    edge_response_t r;
    char value[256], headers[2048];
    //  401 without a key, in OpenAI's shape with the challenge; 404, 405 too
    assert (edge_testclient_get (port, "/v1/models", NULL, &r) == 401);
    assert (s_openai_error (&r, "unauthorized", "authentication_error"));
    assert (edge_response_header (&r, "www-authenticate", value, sizeof value));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/v1/models", "Authorization: Bearer bad\r\n", &r)
            == 401);
    assert (s_openai_error (&r, "unauthorized", "authentication_error"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/v1/nope", member, &r) == 404);
    assert (s_openai_error (&r, "not_found", "invalid_request_error"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/v1/chat/completions", member, &r) == 405);
    assert (s_openai_error (&r, "method_not_allowed", "invalid_request_error"));
    edge_response_free (&r);
    assert (s_post (port, "/v1/chat/completions", member, "{\"model\":", &r) == 400);
    assert (s_openai_error (&r, "invalid_json", "invalid_request_error"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/v1/models", member, &r) == 200);
    edge_response_free (&r);

    //  Without "stream": the JSON completion, whatever Accept says
    snprintf (headers, sizeof headers, "%sAccept: text/event-stream\r\n", member);
    const char *plain = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"hi\"}],\"stream\":false}";
    assert (s_post (port, "/v1/chat/completions", headers, plain, &r) == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "application/json"));
    json_t *echo = s_json (&r);
    assert (streq (json_string_value (json_object_get (echo, "command")), "openai_chat"));
    assert (json_is_false (json_object_get (json_object_get (echo, "args"), "stream")));
    json_decref (echo);
    edge_response_free (&r);
    //  With "stream": true: data lines and [DONE], whatever Accept says
    const char *streamed = "{\"model\":\"a\",\"messages\":[],\"stream\":true}";
    assert (s_post (port, "/v1/chat/completions", member, streamed, &r) == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/event-stream"));
    const char *expected =
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":"
        "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    if (!streq (r.body, expected))
        fprintf (stderr, "edge_http_test: got\n%s\n", r.body);
    assert (streq (r.body, expected));
    edge_response_free (&r);
    //  An error mid-stream: a data line with OpenAI's error, no [DONE]
    const char *broken = "{\"model\":\"a\",\"stream\":true,\"fail_mid\":true}";
    assert (s_post (port, "/v1/chat/completions", member, broken, &r) == 200);
    const char *tail = "data: {\"error\":{\"message\":\"provider broke\",\"type\":"
                       "\"api_error\",\"param\":null,\"code\":\"upstream_error\"}}\n\n";
    assert (r.body_size > strlen (tail)
            && streq (r.body + r.body_size - strlen (tail), tail));
    assert (!strstr (r.body, "[DONE]"));
    edge_response_free (&r);
    //  Errors before any chunk: statuses and OpenAI's types
    assert (s_post (port, "/v1/chat/completions", member,
                    "{\"stream\":true,\"error\":\"rate_limited\",\"retry_after\":3}", &r)
            == 429);
    assert (s_openai_error (&r, "rate_limited", "rate_limit_error"));
    assert (streq (edge_response_header (&r, "retry-after", value, sizeof value), "3"));
    edge_response_free (&r);
    assert (s_post (port, "/v1/chat/completions", member,
                    "{\"error\":\"upstream_unauthorized\"}", &r)
            == 502);
    assert (s_openai_error (&r, "upstream_unauthorized", "api_error"));
    edge_response_free (&r);
    assert (s_post (port, "/v1/chat/completions", member,
                    "{\"content\":\"!error=not_found\"}", &r)
            == 404);
    assert (s_openai_error (&r, "not_found", "invalid_request_error"));
    edge_response_free (&r);
}

//  The client going away cancels the bus request: plain, SSE and OpenAI
//  streams; a quiet OpenAI stream gets keepalive comments first.
static void
s_test_gone (int port, const char *member, zactor_t *chat, zactor_t *agents)
{
    char headers[2048];
    const char *cases[][3] = {
        {"/api/v1/conversations/c-1/messages", "", "{\"content\":\"!hold\"}"},
        {"/api/v1/conversations/c-1/messages", "Accept: text/event-stream\r\n",
         "{\"content\":\"!hold\"}"},
        {"/v1/chat/completions", "", "{\"model\":\"a\",\"stream\":true,\"hold\":true}"}};
    for (size_t i = 0; i < 3; i++) {
        zactor_t *service = i == 2 ? agents : chat;
        int cancels = edge_testservice_cancels (service);
        edge_testclient_t *client = edge_testclient_new (port);
        snprintf (headers, sizeof headers, "%s%s", member, cases[i][1]);
        assert (
            edge_testclient_request (client, "POST", cases[i][0], headers, cases[i][2])
            == 0);
        if (i == 2) {
            //  The keepalive opens the stream: a comment the SDKs skip
            size_t size = 0;
            char *bytes = edge_testclient_read_all (client, &size, 700);
            assert (strstr (bytes, "HTTP/1.1 200")
                    && strstr (bytes, "\r\n\r\n: keepalive\n\n"));
            free (bytes);
        }
        else
            zclock_sleep (100);
        edge_testclient_destroy (&client);
        assert (edge_testservice_wait_cancels (service, cancels));
    }
}

//  Over WebSocket, event routes stream too: "stream": true is added.
static void
s_test_ws (int port, const char *token)
{
    edge_testclient_t *client = edge_testclient_new (port);
    char headers[2048];
    snprintf (headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    assert (edge_testclient_ws_open_with (client, "/api/v1/ws", headers) == 101);
    const char *req = "{\"type\":\"request\",\"id\":\"s1\",\"method\":\"POST\",\"path\":"
                      "\"/api/v1/conversations/c-1/messages\",\"body\":{\"content\":"
                      "\"hi\"}}";
    assert (edge_testclient_ws_send (client, req, strlen (req)) == 0);
    int opcode = 0;
    char *frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"type\":\"partial\""));
    assert (strstr (frame, "\"event\":\"message.created\""));
    assert (strstr (frame, "\"stream\":true"));
    free (frame);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "message.delta"));
    free (frame);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"type\":\"final\"")
            && strstr (frame, "message.completed"));
    free (frame);
    edge_testclient_destroy (&client);
}

//  The last WebhookRequest the channels stand-in got (asserts there is one); its
//  bus headers as text in headers.
static ChorusChannels__WebhookRequest *
s_webhook_seen (zactor_t *channels, char *headers, size_t size)
{
    zframe_t *frame = edge_testservice_webhook (channels, headers, size);
    assert (frame);
    char why[128];
    ChorusChannels__WebhookRequest *request = (ChorusChannels__WebhookRequest *)
        codec_decode (&chorus_channels__webhook_request__descriptor, zframe_data (frame),
                      zframe_size (frame), why, sizeof why);
    zframe_destroy (&frame);
    assert (request);
    return request;
}

//  Webhooks: raw bytes, query and headers in; the WebhookReply out as it is.
static void
s_test_webhooks (int port, zactor_t *channels)
{
    edge_response_t r;
    char value[256], seen[512];
    //  Meta's body escapes non-ASCII; this one also holds bytes that are no UTF-8,
    //  a NUL and CRLFs: all of them arrive, and come back, as they were sent
    const char body[] = "{\"object\":\"page\",\"text\":\"caf\\u00e9 \\ud83d\\ude00\"}"
                        "\r\n\xff\xfe\x00\x01 \xc3\xa9";
    const char *headers = "Content-Type: application/json\r\n"
                          "x-HUB-signature-256: sha256=ab12\r\n"
                          "X-Slack-Retry-Num: 1\r\n"
                          "X-Slack-Retry-Reason: http_timeout\r\n"
                          "Authorization: Bearer garbage\r\n"
                          "Cookie: chorus_access=garbage\r\n";
    assert (edge_testclient_call_bytes (port, "POST",
                                        "/webhooks/whatsapp/echo?a=1&b=x%20y+z&c=%26%3D",
                                        headers, body, sizeof body, &r)
            == 200);
    assert (r.body_size == sizeof body && memcmp (r.body, body, sizeof body) == 0);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "application/json"));
    assert (
        streq (edge_response_header (&r, "x-content-type-options", value, sizeof value),
               "nosniff"));
    assert (streq (edge_response_header (&r, "cache-control", value, sizeof value),
                   "no-store"));
    assert (edge_response_header (&r, "x-request-id", value, sizeof value));
    assert (!edge_response_header (&r, "www-authenticate", value, sizeof value));
    edge_response_free (&r);
    ChorusChannels__WebhookRequest *hook = s_webhook_seen (channels, seen, sizeof seen);
    assert (streq (hook->platform, "whatsapp") && streq (hook->connection_id, "echo"));
    assert (streq (hook->method, "POST"));
    assert (streq (hook->query, "a=1&b=x%20y%20z&c=%26%3D"));
    assert (hook->has_body && hook->body.len == sizeof body
            && memcmp (hook->body.data, body, sizeof body) == 0);
    assert (streq (hook->content_type, "application/json"));
    assert (streq (hook->hub_signature_256, "sha256=ab12"));
    assert (streq (hook->slack_retry_num, "1"));
    assert (streq (hook->slack_retry_reason, "http_timeout"));
    assert (!hook->telegram_secret_token && !hook->slack_signature
            && !hook->slack_request_timestamp);
    protobuf_c_message_free_unpacked (&hook->base, NULL);
    //  No identity at all, whatever credential came; the webhook deadline
    char expected[128];
    snprintf (expected, sizeof expected,
              "user= tenant= role= session= key= ip=127.0.0.1 timeout=%d",
              S_WEBHOOK_TIMEOUT_MS);
    assert (streq (seen, expected));

    //  A body that is not JSON, whatever Content-Type says; Slack's and Telegram's
    //  headers; a body the size of the limit, larger than the edge's other limit
    const char *form = "token=xyz&text=caf%C3%A9+ol%C3%A9&x=\xff";
    assert (edge_testclient_call_bytes (port, "POST", "/webhooks/slack/echo",
                                        "Content-Type: application/json\r\n"
                                        "X-Slack-Signature: v0=00\r\n"
                                        "X-Slack-Request-Timestamp: 1531420618\r\n",
                                        form, strlen (form), &r)
            == 200);
    assert (r.body_size == strlen (form) && memcmp (r.body, form, r.body_size) == 0);
    edge_response_free (&r);
    hook = s_webhook_seen (channels, seen, sizeof seen);
    assert (streq (hook->slack_signature, "v0=00"));
    assert (streq (hook->slack_request_timestamp, "1531420618"));
    assert (streq (hook->query, "") && !hook->hub_signature_256);
    protobuf_c_message_free_unpacked (&hook->base, NULL);
    char *large = malloc (S_WEBHOOK_MAX_BODY);
    assert (large);
    for (size_t i = 0; i < S_WEBHOOK_MAX_BODY; i++)
        large[i] = (char) (i * 7 % 251);
    assert (edge_testclient_call_bytes (port, "POST", "/webhooks/telegram/echo",
                                        "X-Telegram-Bot-Api-Secret-Token: s-1_x\r\n",
                                        large, S_WEBHOOK_MAX_BODY, &r)
            == 200);
    assert (r.body_size == S_WEBHOOK_MAX_BODY
            && memcmp (r.body, large, S_WEBHOOK_MAX_BODY) == 0);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "application/octet-stream"));  //  none came, none went back
    edge_response_free (&r);
    hook = s_webhook_seen (channels, seen, sizeof seen);
    assert (streq (hook->telegram_secret_token, "s-1_x") && !hook->content_type);
    protobuf_c_message_free_unpacked (&hook->base, NULL);
    free (large);
    //  Past the limit: 413 from the headers, the service never asked
    edge_testclient_t *client = edge_testclient_new (port);
    char request[256];
    snprintf (request, sizeof request,
              "POST /webhooks/telegram/echo-big HTTP/1.1\r\nHost: x\r\n"
              "Content-Length: %d\r\n\r\n",
              S_WEBHOOK_MAX_BODY + 1);
    assert (edge_testclient_send (client, request, strlen (request)) == 0);
    assert (edge_testclient_response (client, &r, 5000) == 413);
    assert (edge_response_error_is (&r, "payload_too_large"));
    edge_response_free (&r);
    edge_testclient_destroy (&client);
    hook = s_webhook_seen (channels, seen, sizeof seen);
    assert (streq (hook->connection_id, "echo"));
    protobuf_c_message_free_unpacked (&hook->base, NULL);

    //  Meta's GET handshake: the query as sent, an empty body, text/plain back
    assert (edge_testclient_get (port,
                                 "/webhooks/instagram/status-200?hub.mode=subscribe&"
                                 "hub.verify_token=t%26k&hub.challenge=1158201444",
                                 NULL, &r)
            == 200);
    assert (streq (r.body, "status 200"));
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/plain; charset=utf-8"));
    edge_response_free (&r);
    hook = s_webhook_seen (channels, seen, sizeof seen);
    assert (streq (hook->method, "GET") && hook->has_body && hook->body.len == 0);
    assert (streq (hook->query,
                   "hub.mode=subscribe&hub.verify_token=t%26k&hub.challenge=1158201444"));
    protobuf_c_message_free_unpacked (&hook->base, NULL);

    //  The service's status as it is; outside 200..599 or no WebhookReply: 502
    const struct {
        const char *path;
        int status;
        bool error;  //  answered by the edge as a JSON error
    } answers[] = {{"/webhooks/telegram/status-401", 401, false},
                   {"/webhooks/telegram/status-418", 418, false},
                   {"/webhooks/telegram/status-599", 599, false},
                   {"/webhooks/telegram/status-204", 204, false},
                   {"/webhooks/telegram/status-199", 502, true},
                   {"/webhooks/telegram/status-600", 502, true},
                   {"/webhooks/telegram/garbage", 502, true},
                   {"/webhooks/telegram/error-unavailable", 503, true},
                   {"/webhooks/telegram/error-not_found", 404, true},
                   {"/webhooks/telegram/error-internal", 500, true}};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        int status = edge_testclient_call (port, "POST", answers[i].path, NULL, "{}", &r);
        if (status != answers[i].status)
            fprintf (stderr, "edge_http_test: %s: %d %s\n", answers[i].path, status,
                     r.body);
        assert (status == answers[i].status);
        if (answers[i].error)
            assert (strstr (r.body, "{\"error\":{\"code\":"));  //  the usual JSON
        else if (status == 204)
            assert (r.body_size == 0);
        else
            assert (strncmp (r.body, "status ", 7) == 0);
        edge_response_free (&r);
    }
    //  The webhook deadline, not the edge's
    int64_t started = zclock_mono ();
    assert (edge_testclient_call (port, "POST", "/webhooks/slack/hold", NULL, "{}", &r)
            == 504);
    assert (edge_response_error_is (&r, "deadline_exceeded"));
    assert (zclock_mono () - started < 2000);
    edge_response_free (&r);

    //  Routing: other platforms 404, other methods (HEAD too) 405 with Allow
    assert (edge_testclient_call (port, "POST", "/webhooks/sms/echo", NULL, "{}", &r)
            == 404);
    edge_response_free (&r);
    const char *methods[] = {"PUT", "DELETE", "HEAD"};
    for (size_t i = 0; i < 3; i++) {
        client = edge_testclient_new (port);
        assert (edge_testclient_request (client, methods[i], "/webhooks/slack/echo", NULL,
                                         i == 0 ? "{}" : NULL)
                == 0);
        //  HEAD's answer has a Content-Length and no body: only its headers count
        if (i == 2)
            assert (edge_testclient_response_headers (client, &r, 5000) == 405);
        else
            assert (edge_testclient_response (client, &r, 5000) == 405);
        assert (
            streq (edge_response_header (&r, "allow", value, sizeof value), "GET, POST"));
        edge_response_free (&r);
        edge_testclient_destroy (&client);
    }
    //  Bounds: a named header over 1024 bytes, a query over 4096: 400
    char *big = malloc (6000);
    assert (big);
    memset (big, 'a', 5999);
    big[5999] = 0;
    char *line = NULL;
    assert (asprintf (&line, "X-Slack-Signature: %.1025s\r\n", big) > 0);
    assert (edge_testclient_call (port, "POST", "/webhooks/slack/echo", line, "{}", &r)
            == 400);
    assert (strstr (r.body, "X-Slack-Signature"));
    edge_response_free (&r);
    free (line);
    assert (asprintf (&line, "/webhooks/whatsapp/echo?q=%.4095s", big) > 0);
    assert (edge_testclient_get (port, line, NULL, &r) == 400);
    assert (strstr (r.body, "query"));
    edge_response_free (&r);
    free (line);
    free (big);
    //  Not over the WebSocket
    client = edge_testclient_new (port);
    assert (edge_testclient_ws_open (client, "/api/v1/ws") == 101);
    const char *hook_ws = "{\"type\":\"request\",\"id\":\"w1\",\"method\":\"POST\","
                          "\"path\":\"/webhooks/slack/echo\",\"body\":{}}";
    assert (edge_testclient_ws_send (client, hook_ws, strlen (hook_ws)) == 0);
    int opcode = 0;
    char *frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "not_found"));
    free (frame);
    edge_testclient_destroy (&client);
}

//  An edge whose webhooks have a budget of 2 per minute and connection id, and
//  anonymous requests one per address: the third webhook to one id (in either
//  case) is 429 with Retry-After, another id still passes (needs Redis). The ids
//  are new each run, so that runs within one minute do not share a window.
static void
s_test_webhook_budget (const char *brokers, const char *redis)
{
    char *error = NULL;
    core_config_t *config = core_config_new (edge_server_options,
                                             edge_server_option_count, &error);
    const char *settings[][2] = {{"edge_port", "0"},
                                 {"brokers", brokers},
                                 {"log_level", "off"},
                                 {"redis_url", redis},
                                 {"jwt_secret", S_SECRET},
                                 {"edge_webhook_rate_per_min", "2"},
                                 {"edge_rate_ip_per_min", "1"},
                                 {"edge_rate_fail_open", "false"},
                                 {"edge_rate_timeout_ms", "2000"},
                                 {"edge_drain_ms", "0"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (core_config_set (config, settings[i][0], settings[i][1], &error))
            assert (false);
    zactor_t *edge = zactor_new (edge_server_actor, config);
    core_config_destroy (&config);
    zstr_send (edge, "PORT");
    int port = -1;
    zsock_recv (edge, "i", &port);
    assert (port > 0);
    char path[128], other[128];
    long long run = (long long) zclock_usecs ();
    snprintf (path, sizeof path, "/webhooks/telegram/Budget-%d-%lld", getpid (), run);
    snprintf (other, sizeof other, "/webhooks/telegram/other-%d-%lld", getpid (), run);
    edge_response_t r;
    int passed = 0, status = 0;
    //  Until Redis is connected the budget fails closed (503 unavailable), and
    //  until the broker is, the request cannot go out (503 broker_unavailable)
    for (int i = 0; i < 300 && status != 429; i++) {
        path[19] = i % 2 ? 'b' : 'B';
        status = edge_testclient_call (port, "POST", path, NULL, "{}", &r);
        if (status == 200)
            passed++;
        else if (status == 503)
            zclock_sleep (10);
        else if (status != 429) {
            fprintf (stderr, "edge_http: webhook budget: %d %s\n", status,
                     r.body ? r.body : "");
            assert (false);
        }
        if (status != 429)
            edge_response_free (&r);
    }
    assert (status == 429 && passed >= 2 && passed <= 4);  //  4: the minute turned
    assert (edge_response_error_is (&r, "rate_limited"));
    char value[16];
    long seconds = strtol (edge_response_header (&r, "retry-after", value, sizeof value),
                           NULL, 10);
    assert (seconds >= 1 && seconds <= 60);
    edge_response_free (&r);
    assert (edge_testclient_call (port, "POST", other, NULL, "{}", &r) == 200);
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_rate_limited_total{scope=\"webhook\"} 1\n"));
    //  Metrics name the route, never a connection id
    assert (strstr (r.body, "route=\"/webhooks/{platform}/{connection_id}\""));
    assert (!strstr (r.body, "Budget-") && !strstr (r.body, "other-"));
    edge_response_free (&r);
    zactor_destroy (&edge);
}

void
edge_http_test (bool verbose)
{
    printf (" * edge_http: ");
    bus_broker_config_t broker_config = {
        .id = "edge-http-test", .log_level = "error", .heartbeat_ms = 100};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    zstr_sendx (broker, "BIND", "tcp://127.0.0.1:*", NULL);
    int broker_port = -1;
    zsock_recv (broker, "i", &broker_port);
    assert (broker_port > 0);
    char brokers[64];
    snprintf (brokers, sizeof brokers, "tcp://127.0.0.1:%d", broker_port);
    edge_testservice_config_t chat_config = {brokers, "chat", EDGE_TESTSERVICE_API};
    edge_testservice_config_t agents_config = {brokers, "agents", EDGE_TESTSERVICE_API};
    zactor_t *chat = zactor_new (edge_testservice_actor, &chat_config);
    zactor_t *agents = zactor_new (edge_testservice_actor, &agents_config);
    edge_testservice_config_t channels_config = {brokers, "channels",
                                                 EDGE_TESTSERVICE_API};
    zactor_t *channels = zactor_new (edge_testservice_actor, &channels_config);

    char *error = NULL;
    core_config_t *config = core_config_new (edge_server_options,
                                             edge_server_option_count, &error);
    assert (config);
    const char *settings[][2] = {
        {"edge_port", "0"},
        {"brokers", brokers},
        {"heartbeat_ms", "100"},
        {"log_level", verbose ? "info" : "off"},
        {"edge_timeout_ms", "3000"},
        {"edge_sse_keepalive_ms", "300"},
        {"redis_url", ""},
        {"jwt_secret", S_SECRET},
        {"secret_key", ""},
        {"jwt_previous_secrets", ""},
        {"edge_drain_ms", "0"},
        {"edge_revocation_poll_ms", "200"},
        {"edge_max_body", "65536"},
        {"edge_webhook_max_body", "200000"},
        {"edge_webhook_timeout_ms", "300"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (core_config_set (config, settings[i][0], settings[i][1], &error))
            assert (false);
    zactor_t *edge = zactor_new (edge_server_actor, config);
    core_config_destroy (&config);
    zstr_send (edge, "PORT");
    int port = -1;
    zsock_recv (edge, "i", &port);
    assert (port > 0);

    char *member_token = edge_testclient_token (S_SECRET, "user-1", AUTH_ROLE_MEMBER);
    char *admin_token = edge_testclient_token (S_SECRET, "admin-1",
                                               AUTH_ROLE_TENANT_ADMIN);
    char member[1024], admin[1024];
    snprintf (member, sizeof member, "Authorization: Bearer %s\r\n", member_token);
    snprintf (admin, sizeof admin, "Authorization: Bearer %s\r\n", admin_token);
    //  Until both replicas are registered the broker answers unavailable
    edge_response_t r;
    const char *probes[] = {"/api/v1/conversations", "/v1/models",
                            "/api/v1/channels/connections"};
    for (size_t p = 0; p < 3; p++) {
        for (int i = 0;
             i < 200 && edge_testclient_get (port, probes[p], member, &r) != 200; i++) {
            edge_response_free (&r);
            zclock_sleep (20);
        }
        assert (r.status == 200);
        edge_response_free (&r);
    }

    s_test_json (port, member, admin);
    s_test_events (port, member, admin);
    s_test_openai (port, member);
    s_test_gone (port, member, chat, agents);
    s_test_ws (port, member_token);
    s_test_webhooks (port, channels);
    const char *redis = getenv ("CHORUS_TEST_REDIS_URL");
    if (redis && *redis)
        s_test_webhook_budget (brokers, redis);
    //  The channels service down: a webhook is a bus error like any other (503)
    zactor_destroy (&channels);
    for (int i = 0;
         i < 200
         && edge_testclient_call (port, "POST", "/webhooks/slack/echo", NULL, "{}", &r)
                != 503;
         i++) {
        edge_response_free (&r);
        zclock_sleep (20);
    }
    assert (r.status == 503 && edge_response_error_is (&r, "unavailable"));
    edge_response_free (&r);
    if (verbose)
        printf ("(routes, SSE events, OpenAI framing and errors, cancels, webhooks) ");

    free (member_token);
    free (admin_token);
    zactor_destroy (&edge);
    zactor_destroy (&agents);
    zactor_destroy (&chat);
    zactor_destroy (&broker);
    printf ("OK\n");
}
