/*  edge_call: edge request -> bus request, bus reply -> JSON.                    */
#include "edge_call.h"

#include <assert.h>
#include <ctype.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "edge_openapi.h"

uint64_t
edge_call_send (bus_client_t *bus, const edge_match_t *match, json_t *body,
                const edge_identity_t *identity, const char *client_ip,
                const char *request_id, int64_t timeout_ms, bus_reply_fn *fn, void *arg,
                edge_call_error_t *error)
{
    const char *service = edge_routes_service (match);
    const edge_route_t *route = match->route;
    if (!service || !route || !route->command) {
        *error = (edge_call_error_t){404, "not_found", "no such route"};
        return 0;
    }
    json_t *args = edge_routes_args (match, body, error->message, sizeof error->message);
    if (!args) {
        error->status = 400;
        error->code = "bad_request";
        return 0;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    int rc = codec_json_value_to_msgpack (args, &pk);
    json_decref (args);
    if (rc) {
        msgpack_sbuffer_destroy (&sbuf);
        *error = (edge_call_error_t){400, "invalid_json", "body nested too deep"};
        return 0;
    }
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    edge_auth_headers (identity, client_ip, &headers);
    headers.request_id = (char *) request_id;
    headers.timeout_ms = timeout_ms;
    //  Reads may be resent through another broker when theirs dies
    int flags = strcmp (route->method, "GET") == 0 ? BUS_REQUEST_IDEMPOTENT : 0;
    uint64_t handle = bus_client_request_ex (bus, service, route->command, &headers,
                                             sbuf.data, sbuf.size, flags, fn, arg);
    msgpack_sbuffer_destroy (&sbuf);
    if (!handle) {
        *error = (edge_call_error_t){503, "broker_unavailable", "no broker is reachable"};
        return 0;
    }
    return handle;
}

uint64_t
edge_call_send_raw (bus_client_t *bus, const char *service, const char *command,
                    const void *body, size_t size, const edge_identity_t *identity,
                    const char *client_ip, const char *request_id, int64_t timeout_ms,
                    bool idempotent, bus_reply_fn *fn, void *arg,
                    edge_call_error_t *error)
{
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    edge_auth_headers (identity, client_ip, &headers);
    headers.request_id = (char *) request_id;
    headers.timeout_ms = timeout_ms;
    uint64_t handle = bus_client_request_ex (bus, service, command, &headers, body, size,
                                             idempotent ? BUS_REQUEST_IDEMPOTENT : 0, fn,
                                             arg);
    if (!handle)
        *error = (edge_call_error_t){503, "broker_unavailable", "no broker is reachable"};
    return handle;
}

//  Pack one string key.
static void
s_pack_key (msgpack_packer *pk, const char *key)
{
    msgpack_pack_str (pk, strlen (key));
    msgpack_pack_str_body (pk, key, strlen (key));
}

void *
edge_call_upload_body (const edge_match_t *match, const char *content_type,
                       const void *data, size_t size, size_t *out_size)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, match->param_count + 1 + (content_type ? 1 : 0));
    for (size_t i = 0; i < match->param_count; i++) {
        s_pack_key (&pk, match->params[i].name);
        s_pack_key (&pk, match->params[i].value);
    }
    if (content_type) {
        s_pack_key (&pk, "content_type");
        s_pack_key (&pk, content_type);
    }
    s_pack_key (&pk, "data");
    msgpack_pack_bin (&pk, size);
    msgpack_pack_bin_body (&pk, data, size);
    *out_size = buf.size;
    return buf.data;  //  the sbuffer's malloc'd bytes
}

char *
edge_call_reply_json (const bus_reply_t *reply)
{
    if (!reply->body || reply->size == 0)
        return strdup ("{}");
    return codec_msgpack_to_json (reply->body, reply->size, 0);
}

char *
edge_call_error_json (const char *code, const char *message)
{
    return edge_call_error_body (code, message, 0, false);
}

const char *
edge_call_openai_type (int status)
{
    if (status == 401)
        return "authentication_error";
    if (status == 403)
        return "permission_error";
    if (status == 429)
        return "rate_limit_error";
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return "api_error";
}

//  OpenAI's param of a 400's message: the field it starts with, as in
//  "messages[0].content: ..." (letters, digits, _ . [ ] up to ": "), or NULL.
static json_t *
s_openai_param (const char *message, int status)
{
    if (status != 400 || !message)
        return json_null ();
    size_t length = strspn (message,
                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "0123456789_.[]");
    bool named = length > 0 && length <= 128 && isalpha ((unsigned char) message[0])
                 && strncmp (message + length, ": ", 2) == 0;
    return named ? json_stringn (message, length) : json_null ();
}

char *
edge_call_error_body (const char *code, const char *message, int status, bool openai)
{
    json_t *message_value = json_string (message ? message : "");
    if (!message_value)  //  message was not valid UTF-8
        message_value = json_string ("");
    json_t *error = NULL;
    if (openai)
        error = json_pack ("{s:o, s:s, s:o, s:s}", "message", message_value, "type",
                           edge_call_openai_type (status), "param",
                           s_openai_param (message, status), "code", code);
    else
        error = json_pack ("{s:s, s:o}", "code", code, "message", message_value);
    assert (error);
    json_t *body = json_pack ("{s:o}", "error", error);
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    assert (text);
    return text;
}

bool
edge_call_wants_sse (const edge_match_t *match, json_t *body, bool accepts_sse)
{
    const edge_route_t *route = match->route;
    if (!route || !route->streams)
        return false;
    if (route->flags & EDGE_ROUTE_OPENAI)
        return json_is_true (json_object_get (body, "stream"));
    if (route->flags & EDGE_ROUTE_REPLAY)
        return true;
    return accepts_sse;
}

//  The value of path parameter name, or NULL.
static const char *
s_param (const edge_match_t *match, const char *name)
{
    for (size_t i = 0; i < match->param_count; i++)
        if (strcmp (match->params[i].name, name) == 0)
            return match->params[i].value;
    return NULL;
}

json_t *
edge_call_stream_body (const edge_match_t *match, json_t *body, bool sse,
                       const char *last_event_id)
{
    const edge_route_t *route = match->route;
    int flags = route ? route->flags : 0;
    bool resume = (flags & EDGE_ROUTE_RESUME) && last_event_id && *last_event_id;
    const char *message_id = s_param (match, "message_id");
    bool replay = (flags & EDGE_ROUTE_REPLAY) && !resume && message_id
                  && !json_object_get (body, "last_event_id");
    bool stream = (flags & EDGE_ROUTE_EVENTS) && sse;
    if ((flags & EDGE_ROUTE_EVENTS) && !sse && json_is_object (body))
        json_object_del (body, "stream");  //  Accept decides, not the body
    if (!resume && !replay && !stream)
        return body;
    if (!body)
        body = json_object ();
    if (stream)
        json_object_set_new (body, "stream", json_true ());
    if (resume)
        json_object_set_new (body, "last_event_id", json_string (last_event_id));
    else if (replay) {
        char from[EDGE_PARAM_SIZE + 3];
        snprintf (from, sizeof from, "%s:0", message_id);
        json_object_set_new (body, "last_event_id", json_string (from));
    }
    return body;
}

//  edge_call_unknown_field below path (the JSON path so far) at depth.
static bool
s_unknown_field (const ProtobufCMessageDescriptor *desc, json_t *body, const char *path,
                 int depth, char *error, size_t error_size)
{
    if (depth > 32 || !json_is_object (body))
        return false;  //  the decoder reports what is not an object
    const char *key;
    json_t *value;
    json_object_foreach (body, key, value)
    {
        const ProtobufCFieldDescriptor
            *field = protobuf_c_message_descriptor_get_field_by_name (desc, key);
        char here[256];
        snprintf (here, sizeof here, "%s%s%s", path, *path ? "." : "", key);
        if (!field && depth == 0 && strcmp (key, "tenant_id") == 0)
            continue;  //  the tenant is the credential's: one in a body is ignored
        if (!field) {
            snprintf (error, error_size, "unknown field '%s'", here);
            return true;
        }
        if (field->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const ProtobufCMessageDescriptor *inner = field->descriptor;
        if (json_is_object (value)
            && s_unknown_field (inner, value, here, depth + 1, error, error_size))
            return true;
        size_t i;
        json_t *item;
        json_array_foreach (value, i, item)
        {
            char at[280];
            snprintf (at, sizeof at, "%s[%zu]", here, i);
            if (s_unknown_field (inner, item, at, depth + 1, error, error_size))
                return true;
        }
    }
    return false;
}

bool
edge_call_unknown_field (const ProtobufCMessageDescriptor *desc, json_t *body,
                         char *error, size_t error_size)
{
    return desc && s_unknown_field (desc, body, "", 0, error, error_size);
}

json_t *
edge_call_parse_body (const char *text, size_t size, bool *ok, char *error,
                      size_t error_size)
{
    *ok = true;
    size_t start = 0;
    while (start < size && strchr (" \t\r\n", text[start]))
        start++;
    if (start == size)
        return NULL;
    json_error_t jerr;
    json_t *body = json_loadb (text, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        *ok = false;
        snprintf (error, error_size, "invalid JSON at line %d column %d: %s", jerr.line,
                  jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object (body)) {
        json_decref (body);
        *ok = false;
        snprintf (error, error_size, "the body must be a JSON object");
        return NULL;
    }
    return body;
}

void
edge_call_test (bool verbose)
{
    printf (" * edge_call: ");
    char error[256];
    bool ok = false;
    assert (edge_call_parse_body ("  \n", 3, &ok, error, sizeof error) == NULL && ok);
    assert (edge_call_parse_body ("{\"a\":", 5, &ok, error, sizeof error) == NULL && !ok);
    assert (strstr (error, "invalid JSON"));
    assert (edge_call_parse_body ("[1]", 3, &ok, error, sizeof error) == NULL && !ok);
    assert (edge_call_parse_body ("{\"a\":1,\"a\":2}", 13, &ok, error, sizeof error)
                == NULL
            && !ok);
    json_t *body = edge_call_parse_body ("{\"a\":1}", 7, &ok, error, sizeof error);
    assert (body && ok);
    json_decref (body);

    //  An upload's arguments: path parameters, its type and the bytes as bin
    edge_match_t match;
    memset (&match, 0, sizeof match);
    snprintf (match.params[0].name, EDGE_PARAM_SIZE, "id");
    snprintf (match.params[0].value, EDGE_PARAM_SIZE, "a1");
    match.param_count = 1;
    size_t packed_size = 0;
    void *packed = edge_call_upload_body (&match, "image/png", "\x89PNG", 4,
                                          &packed_size);
    char *packed_json = codec_msgpack_to_json (packed, packed_size, 0);
    assert (packed_json && strstr (packed_json, "\"id\":\"a1\""));
    assert (strstr (packed_json, "\"content_type\":\"image/png\""));
    free (packed_json);
    free (packed);
    packed = edge_call_upload_body (&match, NULL, "", 0, &packed_size);
    assert (packed && packed_size > 0);
    free (packed);

    char *text = edge_call_error_json ("not_found", "no \"route\"");
    assert (
        strcmp (text,
                "{\"error\":{\"code\":\"not_found\",\"message\":\"no \\\"route\\\"\"}}")
        == 0);
    free (text);
    text = edge_call_error_json ("x", "\xff\xfe");
    assert (strstr (text, "\"message\":\"\""));
    free (text);

    //  OpenAI's shape on /v1/: message, type from the status, param, code
    text = edge_call_error_body ("unauthorized", "no key", 401, true);
    assert (strcmp (text, "{\"error\":{\"message\":\"no key\",\"type\":"
                          "\"authentication_error\",\"param\":null,\"code\":"
                          "\"unauthorized\"}}")
            == 0);
    free (text);
    //  A 400 that starts with a field names it as param; others have none
    text = edge_call_error_body ("bad_request", "messages[0].content: expected a string",
                                 400, true);
    assert (strstr (text, "\"param\":\"messages[0].content\""));
    free (text);
    text = edge_call_error_body ("bad_request", "invalid JSON at line 1: x", 400, true);
    assert (strstr (text, "\"param\":null"));
    free (text);
    text = edge_call_error_body ("not_found", "model: x", 404, true);
    assert (strstr (text, "\"param\":null"));
    free (text);
    text = edge_call_error_body ("bad_request", NULL, 400, false);
    assert (strcmp (text, "{\"error\":{\"code\":\"bad_request\",\"message\":\"\"}}")
            == 0);
    free (text);
    assert (strcmp (edge_call_openai_type (400), "invalid_request_error") == 0);
    assert (strcmp (edge_call_openai_type (404), "invalid_request_error") == 0);
    assert (strcmp (edge_call_openai_type (403), "permission_error") == 0);
    assert (strcmp (edge_call_openai_type (429), "rate_limit_error") == 0);
    assert (strcmp (edge_call_openai_type (502), "api_error") == 0);
    assert (strcmp (edge_call_openai_type (0), "api_error") == 0);

    //  What the edge adds for streaming routes: stream, last_event_id
    edge_match_t m;
    const char *send = "/api/v1/conversations/c-1/messages";
    assert (edge_routes_parse_target ("POST", send, strlen (send), &m) == EDGE_MATCH_OK);
    assert (edge_call_wants_sse (&m, NULL, true)
            && !edge_call_wants_sse (&m, NULL, false));
    body = edge_call_stream_body (&m, json_pack ("{s:s}", "content", "hi"), true, NULL);
    assert (json_is_true (json_object_get (body, "stream")));
    assert (!json_object_get (body, "last_event_id"));
    json_decref (body);
    assert (edge_call_stream_body (&m, NULL, false, "") == NULL);
    body = edge_call_stream_body (
        &m, json_pack ("{s:s, s:b}", "content", "hi", "stream", 1), false, NULL);
    assert (!json_object_get (body, "stream"));
    json_decref (body);
    body = edge_call_stream_body (&m, NULL, false, "m-1:4");
    assert (!json_object_get (body, "stream"));
    assert (strcmp (json_string_value (json_object_get (body, "last_event_id")), "m-1:4")
            == 0);
    json_decref (body);
    const char *events = "/api/v1/conversations/c-1/messages/m-2/events";
    assert (edge_routes_parse_target ("GET", events, strlen (events), &m)
            == EDGE_MATCH_OK);
    assert (edge_call_wants_sse (&m, NULL, false));
    body = edge_call_stream_body (&m, NULL, true, NULL);
    assert (strcmp (json_string_value (json_object_get (body, "last_event_id")), "m-2:0")
            == 0);
    json_decref (body);
    body = edge_call_stream_body (&m, NULL, true, "m-2:7");
    char why[128];
    json_t *sent = edge_routes_args (&m, body, why, sizeof why);
    assert (strcmp (json_string_value (json_object_get (sent, "last_event_id")), "m-2:7")
            == 0);
    assert (strcmp (json_string_value (json_object_get (sent, "id")), "c-1") == 0);
    assert (json_is_true (json_object_get (sent, "stream")));
    json_decref (sent);
    json_decref (body);
    //  OpenAI: the body decides, whatever Accept says; nothing is added
    const char *completions = "/v1/chat/completions";
    assert (edge_routes_parse_target ("POST", completions, strlen (completions), &m)
            == EDGE_MATCH_OK);
    body = json_pack ("{s:s, s:b}", "model", "a", "stream", 1);
    assert (edge_call_wants_sse (&m, body, false));
    assert (edge_call_stream_body (&m, body, true, "x:1") == body);
    assert (json_object_size (body) == 2);
    json_object_set_new (body, "stream", json_false ());
    assert (!edge_call_wants_sse (&m, body, true));
    json_decref (body);
    //  A key the route's message type lacks is named, nested ones by their path
    const ProtobufCMessageDescriptor *agent = edge_openapi_message ("Agent");
    assert (agent && !edge_openapi_message ("NoSuchSchema"));
    char unknown[128];
    body = json_pack ("{s:s, s:s, s:[{s:s}]}", "name", "a", "system_prompt", "b", "tools",
                      "name", "t");
    assert (!edge_call_unknown_field (agent, body, unknown, sizeof unknown));
    assert (!edge_call_unknown_field (NULL, body, unknown, sizeof unknown));
    json_object_set_new (body, "systemprompt", json_string ("typo"));
    assert (edge_call_unknown_field (agent, body, unknown, sizeof unknown));
    assert (strcmp (unknown, "unknown field 'systemprompt'") == 0);
    json_object_del (body, "systemprompt");
    json_object_set_new (json_array_get (json_object_get (body, "tools"), 0), "parms",
                         json_object ());
    assert (edge_call_unknown_field (agent, body, unknown, sizeof unknown));
    assert (strcmp (unknown, "unknown field 'tools[0].parms'") == 0);
    json_decref (body);
    //  Routes that do not stream never answer SSE
    const char *list = "/api/v1/agents";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    assert (!edge_call_wants_sse (&m, NULL, true));
    assert (edge_call_stream_body (&m, NULL, true, "x:1") == NULL);

    //  Reply bodies: msgpack to JSON, empty to {}, garbage refused.
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    msgpack_pack_str_with_body (&pk, "index", 5);
    msgpack_pack_int (&pk, 2);
    bus_reply_t reply = {.handle = 1,
                         .kind = BUS_REPLY_FINAL,
                         .body = (const uint8_t *) sbuf.data,
                         .size = sbuf.size};
    text = edge_call_reply_json (&reply);
    assert (text && strcmp (text, "{\"index\":2}") == 0);
    free (text);
    reply.body = (const uint8_t *) "\xc1";
    reply.size = 1;
    assert (edge_call_reply_json (&reply) == NULL);
    reply.body = NULL;
    reply.size = 0;
    text = edge_call_reply_json (&reply);
    assert (strcmp (text, "{}") == 0);
    free (text);
    msgpack_sbuffer_destroy (&sbuf);
    printf ("OK\n");
}
