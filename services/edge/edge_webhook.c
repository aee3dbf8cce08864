/*  edge_webhook: one webhook as a WebhookRequest, and its WebhookReply checked.  */
#include "edge_webhook.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels.pb-c.h"
#include "codec_check.h"
#include "codec_msgpack.h"

struct _edge_webhook_t {
    char *platform;                          //  {platform}
    char *connection_id;                     //  {connection_id}
    char *method;                            //  GET or POST
    char query[EDGE_WEBHOOK_QUERY_MAX + 1];  //  the query as it goes on
    size_t query_len;                        //  its length
    char *headers[EDGE_WEBHOOK_HEADERS];     //  named header values, NULL: absent
    char *body;                              //  the body bytes (owned)
    size_t body_size;                        //  their length
};

//  Each header: as HTTP spells it, and the key lws finds it under.
static const struct {
    const char *name;  //  X-Hub-Signature-256
    const char *key;   //  x-hub-signature-256:
} s_headers[EDGE_WEBHOOK_HEADERS] = {
    {"Content-Type", "content-type:"},
    {"X-Hub-Signature-256", "x-hub-signature-256:"},
    {"X-Telegram-Bot-Api-Secret-Token", "x-telegram-bot-api-secret-token:"},
    {"X-Slack-Signature", "x-slack-signature:"},
    {"X-Slack-Request-Timestamp", "x-slack-request-timestamp:"},
    {"X-Slack-Retry-Num", "x-slack-retry-num:"},
    {"X-Slack-Retry-Reason", "x-slack-retry-reason:"},
};

edge_webhook_t *
edge_webhook_new (const char *platform, const char *connection_id, const char *method)
{
    assert (platform && connection_id && method);
    edge_webhook_t *self = calloc (1, sizeof *self);
    assert (self);
    self->platform = strdup (platform);
    self->connection_id = strdup (connection_id);
    self->method = strdup (method);
    assert (self->platform && self->connection_id && self->method);
    return self;
}

void
edge_webhook_destroy (edge_webhook_t **self_p)
{
    assert (self_p);
    edge_webhook_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < EDGE_WEBHOOK_HEADERS; i++)
        free (self->headers[i]);
    free (self->platform);
    free (self->connection_id);
    free (self->method);
    free (self->body);
    free (self);
    *self_p = NULL;
}

//  True when byte c goes into a query as it is: RFC 3986 unreserved, and the
//  sub-delimiters and query characters that no query parser splits on.
static bool
s_plain (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c && strchr ("-._~!$'()*,:@/?", c));
}

//  Append len bytes of text to the query, encoding what is not plain. Returns -1
//  when the query would pass its limit.
static int
s_query_put (edge_webhook_t *self, const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        size_t need = s_plain (c) ? 1 : 3;
        if (self->query_len + need > EDGE_WEBHOOK_QUERY_MAX)
            return -1;
        if (need == 1)
            self->query[self->query_len++] = (char) c;
        else {
            self->query[self->query_len++] = '%';
            self->query[self->query_len++] = hex[c >> 4];
            self->query[self->query_len++] = hex[c & 15];
        }
    }
    self->query[self->query_len] = 0;
    return 0;
}

//  Append len bytes of text to the query as they are. Returns -1 when the query
//  would pass its limit.
static int
s_query_raw (edge_webhook_t *self, const char *text, size_t len)
{
    if (self->query_len + len > EDGE_WEBHOOK_QUERY_MAX)
        return -1;
    memcpy (self->query + self->query_len, text, len);
    self->query_len += len;
    self->query[self->query_len] = 0;
    return 0;
}

int
edge_webhook_add_query (edge_webhook_t *self, const char *fragment, size_t len)
{
    assert (self && (fragment || len == 0));
    if (len == 0)
        return 0;
    if (memchr (fragment, 0, len))
        return -1;
    size_t start = self->query_len;
    const char *eq = memchr (fragment, '=', len);
    size_t name_len = eq ? (size_t) (eq - fragment) : len;
    int rc = start ? s_query_raw (self, "&", 1) : 0;
    if (rc == 0)
        rc = s_query_put (self, fragment, name_len);
    if (rc == 0 && eq)
        rc = s_query_raw (self, "=", 1);
    if (rc == 0 && eq)
        rc = s_query_put (self, eq + 1, len - name_len - 1);
    if (rc) {
        //  Leave the query as it was
        self->query_len = start;
        self->query[start] = 0;
    }
    return rc;
}

const char *
edge_webhook_query (edge_webhook_t *self)
{
    assert (self);
    return self->query;
}

const char *
edge_webhook_header_name (edge_webhook_header_t header)
{
    assert (header < EDGE_WEBHOOK_HEADERS);
    return s_headers[header].name;
}

const char *
edge_webhook_header_key (edge_webhook_header_t header)
{
    assert (header < EDGE_WEBHOOK_HEADERS);
    return s_headers[header].key;
}

int
edge_webhook_set_header (edge_webhook_t *self, edge_webhook_header_t header,
                         const char *value, size_t len)
{
    assert (self && header < EDGE_WEBHOOK_HEADERS && (value || len == 0));
    if (len > EDGE_WEBHOOK_HEADER_MAX || (len && memchr (value, 0, len))
        || !codec_check_utf8 (value ? value : "", len))
        return -1;
    char *copy = malloc (len + 1);
    assert (copy);
    if (len)
        memcpy (copy, value, len);
    copy[len] = 0;
    free (self->headers[header]);
    self->headers[header] = copy;
    return 0;
}

const char *
edge_webhook_header (edge_webhook_t *self, edge_webhook_header_t header)
{
    assert (self && header < EDGE_WEBHOOK_HEADERS);
    return self->headers[header];
}

void
edge_webhook_set_body (edge_webhook_t *self, char **body_p, size_t size)
{
    assert (self && body_p && (*body_p || size == 0));
    free (self->body);
    self->body = *body_p;
    self->body_size = size;
    *body_p = NULL;
}

void *
edge_webhook_encode (edge_webhook_t *self, size_t *size)
{
    assert (self && size);
    ChorusChannels__WebhookRequest request = CHORUS_CHANNELS__WEBHOOK_REQUEST__INIT;
    request.platform = self->platform;
    request.connection_id = self->connection_id;
    request.method = self->method;
    request.query = self->query;
    request.has_body = 1;
    request.body.data = (uint8_t *) self->body;
    request.body.len = self->body_size;
    request.content_type = self->headers[EDGE_WEBHOOK_CONTENT_TYPE];
    request.hub_signature_256 = self->headers[EDGE_WEBHOOK_HUB_SIGNATURE_256];
    request.telegram_secret_token = self->headers[EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN];
    request.slack_signature = self->headers[EDGE_WEBHOOK_SLACK_SIGNATURE];
    request.slack_request_timestamp = self->headers[EDGE_WEBHOOK_SLACK_REQUEST_TIMESTAMP];
    request.slack_retry_num = self->headers[EDGE_WEBHOOK_SLACK_RETRY_NUM];
    request.slack_retry_reason = self->headers[EDGE_WEBHOOK_SLACK_RETRY_REASON];
    return codec_encode_alloc (&request.base, size);
}

int
edge_webhook_reply_decode (const void *data, size_t size, edge_webhook_reply_t *reply,
                           char *error, size_t error_size)
{
    assert (reply);
    memset (reply, 0, sizeof *reply);
    char why[128] = "";
    ChorusChannels__WebhookReply *message = NULL;
    if (data && size)
        message = (ChorusChannels__WebhookReply *) codec_decode (
            &chorus_channels__webhook_reply__descriptor, data, size, why, sizeof why);
    else
        snprintf (why, sizeof why, "empty");
    if (!message) {
        snprintf (error, error_size, "the reply is not a WebhookReply (%s)", why);
        return -1;
    }
    const char *type = message->content_type;
    size_t type_len = type ? strlen (type) : 0;
    bool type_ok = type_len <= EDGE_WEBHOOK_CONTENT_TYPE_MAX;
    for (size_t i = 0; type_ok && i < type_len; i++)
        type_ok = type[i] >= 0x20 && type[i] < 0x7f;
    if (!message->has_status || message->status < 200 || message->status > 599) {
        snprintf (error, error_size, "the reply's status is not 200..599");
        protobuf_c_message_free_unpacked (&message->base, NULL);
        return -1;
    }
    if (!type_ok) {
        snprintf (error, error_size, "the reply's Content-Type cannot be written out");
        protobuf_c_message_free_unpacked (&message->base, NULL);
        return -1;
    }
    reply->status = (int) message->status;
    reply->content_type = type_len ? type : "application/octet-stream";
    reply->body = message->has_body ? message->body.data : NULL;
    reply->size = message->has_body ? message->body.len : 0;
    reply->message = message;
    return 0;
}

void
edge_webhook_reply_free (edge_webhook_reply_t *reply)
{
    if (reply && reply->message)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) reply->message, NULL);
    if (reply)
        memset (reply, 0, sizeof *reply);
}

//  --------------------------------------------------------------------------
//  Selftest

#include "edge_routes.h"

//  The value of name in query, decoded as the channels service decodes it (split
//  on '&', then the first '=', '+' a space); -1 when absent or badly escaped.
static int
s_query_get (const char *query, const char *name, char *value, size_t size)
{
    const char *p = query;
    while (*p) {
        size_t piece = strcspn (p, "&");
        const char *eq = memchr (p, '=', piece);
        size_t name_len = eq ? (size_t) (eq - p) : piece;
        char got[EDGE_WEBHOOK_QUERY_MAX + 1];
        if (edge_routes_decode (got, sizeof got, p, name_len, true) >= 0
            && strcmp (got, name) == 0)
            return eq ? edge_routes_decode (value, size, eq + 1, piece - name_len - 1,
                                            true)
                      : (value[0] = 0, 0);
        p += piece + (p[piece] ? 1 : 0);
    }
    return -1;
}

//  A WebhookReply as msgpack (caller frees).
static void *
s_reply (bool has_status, uint32_t status, const char *type, const char *body,
         size_t *size)
{
    ChorusChannels__WebhookReply reply = CHORUS_CHANNELS__WEBHOOK_REPLY__INIT;
    reply.has_status = has_status;
    reply.status = status;
    reply.content_type = (char *) type;
    reply.has_body = body != NULL;
    reply.body.data = (uint8_t *) body;
    reply.body.len = body ? strlen (body) : 0;
    void *packed = codec_encode_alloc (&reply.base, size);
    assert (packed);
    return packed;
}

void
edge_webhook_test (bool verbose)
{
    printf (" * edge_webhook: ");
    //  Meta's handshake query comes out as it was sent
    edge_webhook_t *webhook = edge_webhook_new ("whatsapp", "c-1", "GET");
    const char *meta[] = {"hub.mode=subscribe", "hub.challenge=1158201444",
                          "hub.verify_token=meatyhamhock"};
    for (size_t i = 0; i < 3; i++)
        assert (edge_webhook_add_query (webhook, meta[i], strlen (meta[i])) == 0);
    assert (strcmp (edge_webhook_query (webhook), "hub.mode=subscribe&hub.challenge="
                                                  "1158201444&hub.verify_token="
                                                  "meatyhamhock")
            == 0);
    //  Decoded parameters with reserved and non-ASCII bytes decode back to the same
    //  pairs; empty ones are skipped
    edge_webhook_destroy (&webhook);
    webhook = edge_webhook_new ("whatsapp", "c-1", "GET");
    const char *tricky[] = {"a=x&y z+=%", "", "flag", "t=caf\xc3\xa9;#/?:@!$'()*,~",
                            "=v"};
    for (size_t i = 0; i < 5; i++)
        assert (edge_webhook_add_query (webhook, tricky[i], strlen (tricky[i])) == 0);
    const char *query = edge_webhook_query (webhook);
    if (verbose)
        printf ("(%s) ", query);
    assert (strcmp (query, "a=x%26y%20z%2B%3D%25&flag&t=caf%C3%A9%3B%23/?:@!$'()*,~&=v")
            == 0);
    char value[64];
    assert (s_query_get (query, "a", value, sizeof value) == 8
            && strcmp (value, "x&y z+=%") == 0);
    assert (s_query_get (query, "flag", value, sizeof value) == 0);
    assert (s_query_get (query, "t", value, sizeof value) > 0
            && strcmp (value, "caf\xc3\xa9;#/?:@!$'()*,~") == 0);
    assert (s_query_get (query, "", value, sizeof value) == 1
            && strcmp (value, "v") == 0);
    assert (edge_webhook_add_query (webhook, "x\0y", 3) == -1);
    //  Bounded: a parameter that does not fit leaves the query as it was
    char *long_value = malloc (EDGE_WEBHOOK_QUERY_MAX + 1);
    assert (long_value);
    memset (long_value, 'v', EDGE_WEBHOOK_QUERY_MAX);
    long_value[0] = 'k';
    long_value[1] = '=';
    size_t before = strlen (edge_webhook_query (webhook));
    assert (edge_webhook_add_query (webhook, long_value, EDGE_WEBHOOK_QUERY_MAX - before)
            == -1);
    assert (strlen (edge_webhook_query (webhook)) == before);
    assert (
        edge_webhook_add_query (webhook, long_value, EDGE_WEBHOOK_QUERY_MAX - before - 1)
        == 0);
    assert (strlen (edge_webhook_query (webhook)) == EDGE_WEBHOOK_QUERY_MAX);
    assert (edge_webhook_add_query (webhook, "a", 1) == -1);
    long_value[2] = ' ';  //  three bytes once encoded
    edge_webhook_destroy (&webhook);
    webhook = edge_webhook_new ("whatsapp", "c-1", "GET");
    assert (edge_webhook_add_query (webhook, long_value, EDGE_WEBHOOK_QUERY_MAX - 1)
            == -1);
    assert (*edge_webhook_query (webhook) == 0);
    edge_webhook_destroy (&webhook);
    edge_webhook_destroy (&webhook);

    //  Headers: bounded, UTF-8, absent stays absent
    webhook = edge_webhook_new ("telegram", "C-2", "POST");
    assert (strcmp (edge_webhook_header_name (EDGE_WEBHOOK_HUB_SIGNATURE_256),
                    "X-Hub-Signature-256")
            == 0);
    assert (strcmp (edge_webhook_header_key (EDGE_WEBHOOK_SLACK_RETRY_REASON),
                    "x-slack-retry-reason:")
            == 0);
    assert (edge_webhook_set_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN,
                                     long_value, EDGE_WEBHOOK_HEADER_MAX + 1)
            == -1);
    assert (
        edge_webhook_set_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN, "\xff", 1)
        == -1);
    assert (
        edge_webhook_set_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN, "a\0b", 3)
        == -1);
    assert (!edge_webhook_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN));
    assert (edge_webhook_set_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN,
                                     long_value, EDGE_WEBHOOK_HEADER_MAX)
            == 0);
    assert (strlen (edge_webhook_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN))
            == EDGE_WEBHOOK_HEADER_MAX);
    assert (edge_webhook_set_header (webhook, EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN,
                                     "s3cr3t-token", 12)
            == 0);
    assert (edge_webhook_set_header (webhook, EDGE_WEBHOOK_CONTENT_TYPE,
                                     "application/json", 16)
            == 0);
    free (long_value);

    //  The request: every field, the body bytes exactly (not UTF-8, a NUL inside)
    const char raw[] = "{\"text\":\"caf\\u00e9\"}\xff\x00\x01";
    char *body = malloc (sizeof raw);
    assert (body);
    memcpy (body, raw, sizeof raw);
    edge_webhook_set_body (webhook, &body, sizeof raw);
    assert (body == NULL);
    size_t size = 0;
    void *packed = edge_webhook_encode (webhook, &size);
    assert (packed && size);
    char why[128];
    ChorusChannels__WebhookRequest *request = (ChorusChannels__WebhookRequest *)
        codec_decode (&chorus_channels__webhook_request__descriptor, packed, size, why,
                      sizeof why);
    assert (request);
    assert (strcmp (request->platform, "telegram") == 0);
    assert (strcmp (request->connection_id, "C-2") == 0);
    assert (strcmp (request->method, "POST") == 0 && strcmp (request->query, "") == 0);
    assert (request->has_body && request->body.len == sizeof raw
            && memcmp (request->body.data, raw, sizeof raw) == 0);
    assert (strcmp (request->content_type, "application/json") == 0);
    assert (strcmp (request->telegram_secret_token, "s3cr3t-token") == 0);
    assert (!request->hub_signature_256 && !request->slack_signature
            && !request->slack_request_timestamp && !request->slack_retry_num
            && !request->slack_retry_reason);
    protobuf_c_message_free_unpacked (&request->base, NULL);
    free (packed);
    edge_webhook_destroy (&webhook);
    //  A GET without a body sends an empty one
    webhook = edge_webhook_new ("instagram", "c-3", "GET");
    packed = edge_webhook_encode (webhook, &size);
    request = (ChorusChannels__WebhookRequest *) codec_decode (
        &chorus_channels__webhook_request__descriptor, packed, size, why, sizeof why);
    assert (request && request->has_body && request->body.len == 0);
    assert (!request->content_type);
    protobuf_c_message_free_unpacked (&request->base, NULL);
    free (packed);
    edge_webhook_destroy (&webhook);

    //  Replies: written as they are when they can be, else refused (a 502)
    edge_webhook_reply_t reply;
    packed = s_reply (true, 200, "text/plain", "1158201444", &size);
    assert (edge_webhook_reply_decode (packed, size, &reply, why, sizeof why) == 0);
    assert (reply.status == 200 && strcmp (reply.content_type, "text/plain") == 0);
    assert (reply.size == 10 && memcmp (reply.body, "1158201444", 10) == 0);
    edge_webhook_reply_free (&reply);
    edge_webhook_reply_free (&reply);
    free (packed);
    packed = s_reply (true, 599, NULL, NULL, &size);
    assert (edge_webhook_reply_decode (packed, size, &reply, why, sizeof why) == 0);
    assert (strcmp (reply.content_type, "application/octet-stream") == 0);
    assert (reply.size == 0);
    edge_webhook_reply_free (&reply);
    free (packed);
    const struct {
        bool has;
        uint32_t status;
        const char *type;
    } bad[] = {{false, 0, "text/plain"},
               {true, 199, "text/plain"},
               {true, 600, "text/plain"},
               {true, 200, "text/plain\r\nSet-Cookie: a=b"},
               {true, 200, "caf\xc3\xa9"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        packed = s_reply (bad[i].has, bad[i].status, bad[i].type, "x", &size);
        assert (edge_webhook_reply_decode (packed, size, &reply, why, sizeof why) == -1);
        assert (!reply.message);
        free (packed);
    }
    assert (edge_webhook_reply_decode ("\xc1", 1, &reply, why, sizeof why) == -1);
    assert (strstr (why, "not a WebhookReply"));
    assert (edge_webhook_reply_decode (NULL, 0, &reply, why, sizeof why) == -1);
    printf ("OK\n");
}
