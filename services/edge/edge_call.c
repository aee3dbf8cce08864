/*  edge_call: edge request -> bus request, bus reply -> JSON.                    */
#include "edge_call.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"

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
    json_t *body = json_pack ("{s:{s:s, s:s}}", "error", "code", code, "message",
                              message ? message : "");
    if (!body)  //  message was not valid UTF-8
        body = json_pack ("{s:{s:s, s:s}}", "error", "code", code, "message", "");
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    assert (text);
    return text;
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

    char *text = edge_call_error_json ("not_found", "no \"route\"");
    assert (
        strcmp (text,
                "{\"error\":{\"code\":\"not_found\",\"message\":\"no \\\"route\\\"\"}}")
        == 0);
    free (text);
    text = edge_call_error_json ("x", "\xff\xfe");
    assert (strstr (text, "\"message\":\"\""));
    free (text);

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
