/*  channels_send: the platforms' send APIs (see channels_send.h).              */
#include "channels_send.h"

#include <assert.h>
#include <czmq.h>
#include <jansson.h>

static bool
s_is_meta (const char *platform)
{
    return streq (platform, "whatsapp") || streq (platform, "messenger")
           || streq (platform, "instagram");
}

static char *
s_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    assert (text);
    return text;
}

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

//  JSON text of a built object (taken), compact, UTF-8 as it is.
static char *
s_dump (json_t *object)
{
    char *text = json_dumps (object, JSON_COMPACT);
    json_decref (object);
    assert (text);
    return text;
}

static bool
s_ready (const channels_account_t *account)
{
    return account && account->platform && account->base_url && account->token
           && *account->token
           && (!s_is_meta (account->platform)
               || (account->account_id && *account->account_id));
}

int
channels_send_message (const channels_account_t *account, const char *chat_id,
                       const char *thread_id, const char *text, channels_http_t *out)
{
    memset (out, 0, sizeof *out);
    if (!s_ready (account) || !chat_id || !*chat_id || !text)
        return -1;
    const char *platform = account->platform;
    json_t *body = NULL;
    if (streq (platform, "whatsapp")) {
        out->url = s_format ("%s/%s/messages", account->base_url, account->account_id);
        body = json_pack ("{s:s, s:s, s:s, s:s, s:{s:b, s:s}}", "messaging_product",
                          "whatsapp", "recipient_type", "individual", "to", chat_id,
                          "type", "text", "text", "preview_url", 0, "body", text);
    }
    else if (streq (platform, "messenger") || streq (platform, "instagram")) {
        out->url = s_format ("%s/%s/messages", account->base_url, account->account_id);
        body = json_pack ("{s:{s:s}, s:s, s:{s:s}}", "recipient", "id", chat_id,
                          "messaging_type", "RESPONSE", "message", "text", text);
    }
    else if (streq (platform, "telegram")) {
        out->url = s_format ("%s/bot%s/sendMessage", account->base_url, account->token);
        body = json_pack ("{s:s, s:s}", "chat_id", chat_id, "text", text);
    }
    else if (streq (platform, "slack")) {
        out->url = s_format ("%s/chat.postMessage", account->base_url);
        body = json_pack ("{s:s, s:s}", "channel", chat_id, "text", text);
        if (body && thread_id && *thread_id)
            json_object_set_new (body, "thread_ts", json_string (thread_id));
    }
    if (!out->url || !body) {
        //  json_pack refuses text that is not UTF-8
        json_decref (body);
        channels_http_free (out);
        return -1;
    }
    out->method = s_strdup ("POST");
    if (!streq (platform, "telegram"))
        out->authorization = s_format ("Bearer %s", account->token);
    out->content_type = s_strdup (streq (platform, "slack")
                                      ? "application/json; charset=utf-8"
                                      : "application/json");
    out->body = s_dump (body);
    return 0;
}

int
channels_send_check (const channels_account_t *account, channels_http_t *out)
{
    memset (out, 0, sizeof *out);
    if (!s_ready (account))
        return -1;
    const char *platform = account->platform;
    if (streq (platform, "whatsapp"))
        out->url = s_format ("%s/%s?fields=id,display_phone_number,verified_name",
                             account->base_url, account->account_id);
    else if (streq (platform, "messenger") || streq (platform, "instagram"))
        out->url = s_format ("%s/me?fields=id,name", account->base_url);
    else if (streq (platform, "telegram"))
        out->url = s_format ("%s/bot%s/getMe", account->base_url, account->token);
    else if (streq (platform, "slack"))
        out->url = s_format ("%s/auth.test", account->base_url);
    else
        return -1;
    out->method = s_strdup (streq (platform, "slack") ? "POST" : "GET");
    if (!streq (platform, "telegram"))
        out->authorization = s_format ("Bearer %s", account->token);
    return 0;
}

void
channels_http_free (channels_http_t *http)
{
    free (http->method);
    free (http->url);
    if (http->authorization) {
        //  It holds a token
        memset (http->authorization, 0, strlen (http->authorization));
        free (http->authorization);
    }
    free (http->content_type);
    free (http->body);
    memset (http, 0, sizeof *http);
}

//  ---------------------------------------------------------------------------------
//  Answers

static void
s_copy (char *out, size_t size, const char *text)
{
    snprintf (out, size, "%s", text ? text : "");
}

//  A JSON value as text for an id: strings as they are, integers in decimal.
static void
s_id_text (json_t *value, char *out, size_t size)
{
    if (json_is_string (value))
        s_copy (out, size, json_string_value (value));
    else if (json_is_integer (value))
        snprintf (out, size, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
    else
        *out = 0;
}

//  Meta's Graph API: {"error": {"message", "type", "code", "error_subcode",
//  "is_transient", ...}}; rate limits and temporary failures are worth a retry.
static void
s_meta_error (json_t *root, long status, channels_outcome_t *out)
{
    static const json_int_t transient[] = {1,   2,     4,      17,     32,    341,
                                           613, 80007, 130429, 131048, 131056};
    json_t *error = json_object_get (root, "error");
    json_t *code = json_object_get (error, "code");
    if (json_is_integer (code)) {
        snprintf (out->error_code, sizeof out->error_code, "%" JSON_INTEGER_FORMAT,
                  json_integer_value (code));
        for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
            if (json_integer_value (code) == transient[i])
                out->retry = true;
    }
    if (json_is_true (json_object_get (error, "is_transient")))
        out->retry = true;
    s_copy (out->error, sizeof out->error,
            json_string_value (json_object_get (error, "message")));
    if (status == 429 || status >= 500)
        out->retry = true;
}

static void
s_meta (json_t *root, const char *platform, bool test, long status,
        channels_outcome_t *out)
{
    if (status < 200 || status >= 300 || json_object_get (root, "error")) {
        s_meta_error (root, status, out);
        return;
    }
    if (test) {
        const char *name = json_string_value (json_object_get (root, "verified_name"));
        const char *number = json_string_value (
            json_object_get (root, "display_phone_number"));
        if (!name)
            name = json_string_value (json_object_get (root, "name"));
        if (number)
            snprintf (out->account, sizeof out->account, "%s%s%s", name ? name : "",
                      name ? " " : "", number);
        else
            s_copy (out->account, sizeof out->account, name);
        out->ok = true;
        return;
    }
    json_t *id = streq (platform, "whatsapp") ? json_object_get (
                     json_array_get (json_object_get (root, "messages"), 0), "id")
                                              : json_object_get (root, "message_id");
    s_id_text (id, out->external_id, sizeof out->external_id);
    out->ok = *out->external_id != 0;
    if (!out->ok)
        s_copy (out->error, sizeof out->error, "the answer has no message id");
}

//  Telegram: {"ok": true, "result": ...} or {"ok": false, "error_code",
//  "description", "parameters": {"retry_after"}}.
static void
s_telegram (json_t *root, bool test, long status, channels_outcome_t *out)
{
    json_t *result = json_object_get (root, "result");
    if (json_is_true (json_object_get (root, "ok")) && status >= 200 && status < 300) {
        if (test) {
            s_copy (out->account, sizeof out->account,
                    json_string_value (json_object_get (result, "username")));
            out->ok = true;
            return;
        }
        char chat[64], message[64];
        s_id_text (json_object_get (json_object_get (result, "chat"), "id"), chat,
                   sizeof chat);
        s_id_text (json_object_get (result, "message_id"), message, sizeof message);
        if (*message)
            snprintf (out->external_id, sizeof out->external_id, "%s:%s", chat, message);
        out->ok = *message != 0;
        if (!out->ok)
            s_copy (out->error, sizeof out->error, "the answer has no message_id");
        return;
    }
    json_t *code = json_object_get (root, "error_code");
    if (json_is_integer (code))
        snprintf (out->error_code, sizeof out->error_code, "%" JSON_INTEGER_FORMAT,
                  json_integer_value (code));
    s_copy (out->error, sizeof out->error,
            json_string_value (json_object_get (root, "description")));
    json_t *wait = json_object_get (json_object_get (root, "parameters"), "retry_after");
    if (json_is_integer (wait) && json_integer_value (wait) >= 0)
        out->retry_after_s = json_integer_value (wait);
    long effective = json_is_integer (code) ? (long) json_integer_value (code) : status;
    out->retry = effective == 429 || status == 429 || status >= 500 || effective >= 500;
}

//  Slack: HTTP 200 with {"ok": true, "channel", "ts"} or {"ok": false, "error"};
//  429 with Retry-After when rate limited.
static void
s_slack (json_t *root, bool test, long status, channels_outcome_t *out)
{
    static const char *const transient[] = {"ratelimited",         "rate_limited",
                                            "internal_error",      "fatal_error",
                                            "service_unavailable", "request_timeout"};
    if (json_is_true (json_object_get (root, "ok")) && status >= 200 && status < 300) {
        if (test) {
            const char *team = json_string_value (json_object_get (root, "team"));
            const char *user = json_string_value (json_object_get (root, "user"));
            snprintf (out->account, sizeof out->account, "%s%s%s", user ? user : "",
                      team ? " in " : "", team ? team : "");
            out->ok = true;
            return;
        }
        const char *channel = json_string_value (json_object_get (root, "channel"));
        const char *ts = json_string_value (json_object_get (root, "ts"));
        if (ts)
            snprintf (out->external_id, sizeof out->external_id, "%s:%s",
                      channel ? channel : "", ts);
        out->ok = ts != NULL;
        if (!out->ok)
            s_copy (out->error, sizeof out->error, "the answer has no ts");
        return;
    }
    const char *error = json_string_value (json_object_get (root, "error"));
    s_copy (out->error_code, sizeof out->error_code, error);
    s_copy (out->error, sizeof out->error, error);
    out->retry = status == 429 || status >= 500;
    for (size_t i = 0; error && i < sizeof transient / sizeof transient[0]; i++)
        if (streq (error, transient[i]))
            out->retry = true;
}

void
channels_send_outcome (const char *platform, bool test, long status, const char *body,
                       size_t size, int64_t retry_after, channels_outcome_t *out)
{
    memset (out, 0, sizeof *out);
    out->retry_after_s = retry_after >= 0 ? retry_after : -1;
    if (status == 0) {
        //  Nothing came back: the network, a timeout
        out->retry = true;
        s_copy (out->error_code, sizeof out->error_code, "network");
        s_copy (out->error, sizeof out->error, "no answer from the platform");
        return;
    }
    json_t *root = body && size ? json_loadb (body, size, 0, NULL) : NULL;
    if (!json_is_object (root)) {
        snprintf (out->error_code, sizeof out->error_code, "http_%ld", status);
        snprintf (out->error, sizeof out->error, "the platform answered %ld%s", status,
                  root || size ? " with a body that is not a JSON object" : "");
        out->retry = status == 429 || status >= 500;
        json_decref (root);
        return;
    }
    if (platform && s_is_meta (platform))
        s_meta (root, platform, test, status, out);
    else if (platform && streq (platform, "telegram"))
        s_telegram (root, test, status, out);
    else if (platform && streq (platform, "slack"))
        s_slack (root, test, status, out);
    else
        s_copy (out->error, sizeof out->error, "unknown platform");
    if (!out->ok && !*out->error_code)
        snprintf (out->error_code, sizeof out->error_code, "http_%ld", status);
    if (out->ok)
        out->retry = false;
    json_decref (root);
}

//  ---------------------------------------------------------------------------------

static void
s_outcome (const char *platform, long status, const char *body, channels_outcome_t *out)
{
    channels_send_outcome (platform, false, status, body, strlen (body), -1, out);
}

void
channels_send_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_send: ");
    channels_account_t whatsapp = {"whatsapp", "http://h/v21.0", "tok", "106"};
    channels_http_t http;
    assert (channels_send_message (&whatsapp, "15550001", "", "hi \"there\"", &http)
            == 0);
    assert (streq (http.url, "http://h/v21.0/106/messages"));
    assert (streq (http.authorization, "Bearer tok"));
    json_t *body = json_loads (http.body, 0, NULL);
    assert (streq (json_string_value (json_object_get (body, "messaging_product")),
                   "whatsapp"));
    assert (streq (json_string_value (json_object_get (body, "to")), "15550001"));
    assert (streq (
        json_string_value (json_object_get (json_object_get (body, "text"), "body")),
        "hi \"there\""));
    json_decref (body);
    channels_http_free (&http);
    //  Not UTF-8, no chat, no token: nothing to send
    assert (channels_send_message (&whatsapp, "1", "", "\xff", &http) == -1);
    assert (channels_send_message (&whatsapp, "", "", "x", &http) == -1);
    channels_account_t bare = {"whatsapp", "http://h", "", "106"};
    assert (channels_send_message (&bare, "1", "", "x", &http) == -1);
    channels_account_t telegram = {"telegram", "http://t", "123:ABC", NULL};
    assert (channels_send_message (&telegram, "-100", "", "x", &http) == 0);
    assert (streq (http.url, "http://t/bot123:ABC/sendMessage") && !http.authorization);
    channels_http_free (&http);
    channels_account_t slack = {"slack", "http://s/api", "xoxb-1", NULL};
    assert (channels_send_message (&slack, "C1", "1700.0001", "x", &http) == 0);
    assert (strstr (http.body, "\"thread_ts\":\"1700.0001\""));
    channels_http_free (&http);
    assert (channels_send_check (&slack, &http) == 0);
    assert (streq (http.method, "POST") && streq (http.url, "http://s/api/auth.test"));
    channels_http_free (&http);
    channels_account_t messenger = {"messenger", "http://g", "tok", "55"};
    assert (channels_send_check (&messenger, &http) == 0);
    assert (streq (http.url, "http://g/me?fields=id,name"));
    channels_http_free (&http);

    channels_outcome_t out;
    s_outcome ("whatsapp", 200,
               "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"1\","
               "\"wa_id\":\"1\"}],\"messages\":[{\"id\":\"wamid.X\"}]}",
               &out);
    assert (out.ok && streq (out.external_id, "wamid.X"));
    s_outcome ("whatsapp", 429,
               "{\"error\":{\"message\":\"Rate limit hit\",\"type\":\"OAuthException\","
               "\"code\":130429}}",
               &out);
    assert (!out.ok && out.retry && streq (out.error_code, "130429"));
    s_outcome ("whatsapp", 400,
               "{\"error\":{\"message\":\"Message undeliverable\",\"code\":131026}}",
               &out);
    assert (!out.ok && !out.retry && streq (out.error, "Message undeliverable"));
    s_outcome ("messenger", 200, "{\"recipient_id\":\"1\",\"message_id\":\"m_1\"}", &out);
    assert (out.ok && streq (out.external_id, "m_1"));
    s_outcome ("telegram", 200,
               "{\"ok\":true,\"result\":{\"message_id\":7,\"chat\":{\"id\":-100}}}",
               &out);
    assert (out.ok && streq (out.external_id, "-100:7"));
    s_outcome ("telegram", 429,
               "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: "
               "retry after 3\",\"parameters\":{\"retry_after\":3}}",
               &out);
    assert (out.retry && out.retry_after_s == 3 && streq (out.error_code, "429"));
    s_outcome ("telegram", 403,
               "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was "
               "blocked by the user\"}",
               &out);
    assert (!out.retry && strstr (out.error, "blocked"));
    s_outcome ("slack", 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.2\"}", &out);
    assert (out.ok && streq (out.external_id, "C1:1.2"));
    s_outcome ("slack", 200, "{\"ok\":false,\"error\":\"channel_not_found\"}", &out);
    assert (!out.ok && !out.retry && streq (out.error_code, "channel_not_found"));
    const char *limited = "{\"ok\":false,\"error\":\"ratelimited\"}";
    channels_send_outcome ("slack", false, 429, limited, strlen (limited), 30, &out);
    assert (out.retry && out.retry_after_s == 30);
    s_outcome ("slack", 502, "<html>bad gateway</html>", &out);
    assert (out.retry && streq (out.error_code, "http_502"));
    s_outcome ("slack", 0, "", &out);
    assert (out.retry && streq (out.error_code, "network"));
    const char *me = "{\"ok\":true,\"result\":{\"username\":\"bot\"}}";
    channels_send_outcome ("telegram", true, 200, me, strlen (me), -1, &out);
    assert (out.ok && streq (out.account, "bot"));
    s_outcome ("whatsapp", 200, "[1]", &out);
    assert (!out.ok);
    printf ("OK\n");
}
