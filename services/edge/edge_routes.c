/*  edge_routes: route table, path/query/header parsing, error mapping. Pure.      */
#include "edge_routes.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <uuid/uuid.h>

//  True when value is allowed for path parameter name.
static bool
s_param_valid (const char *name, const char *value)
{
    if (strcmp (name, "name") == 0) {
        size_t count = 0;
        const char *const *services = edge_table_services (&count);
        for (size_t i = 0; i < count; i++)
            if (strcmp (services[i], value) == 0)
                return true;
        return false;
    }
    if (strcmp (name, "platform") == 0) {
        size_t count = 0;
        const char *const *platforms = edge_table_platforms (&count);
        for (size_t i = 0; i < count; i++)
            if (strcmp (platforms[i], value) == 0)
                return true;
        return false;
    }
    return *value != 0;
}

//  Match one pattern against path, filling params; true on a match.
static bool
s_pattern_match (const char *pattern, const char *path, edge_match_t *match)
{
    match->param_count = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr (p, '}');
            assert (close);
            size_t name_len = (size_t) (close - p - 1);
            const char *seg_end = strchr (s, '/');
            size_t seg_len = seg_end ? (size_t) (seg_end - s) : strlen (s);
            if (seg_len == 0 || seg_len >= EDGE_PARAM_SIZE
                || match->param_count >= EDGE_MAX_PARAMS)
                return false;
            edge_param_t *param = &match->params[match->param_count++];
            memcpy (param->name, p + 1, name_len);
            param->name[name_len] = 0;
            memcpy (param->value, s, seg_len);
            param->value[seg_len] = 0;
            if (!s_param_valid (param->name, param->value))
                return false;
            p = close + 1;
            s += seg_len;
        }
        else if (*p++ != *s++)
            return false;
    }
    return *p == 0 && *s == 0;
}

edge_match_result_t
edge_routes_match (const char *method, const char *path, edge_match_t *match, char *allow,
                   size_t allow_size)
{
    match->route = NULL;
    bool path_known = false;
    size_t allow_len = 0;
    if (allow && allow_size)
        *allow = 0;
    size_t count = 0;
    const edge_route_t *routes = edge_table_routes (&count);
    for (size_t i = 0; i < count; i++) {
        if (!s_pattern_match (routes[i].pattern, path, match))
            continue;
        //  HEAD is GET without the body, but not for webhooks (channels.md: 405)
        if (strcmp (routes[i].method, method) == 0
            || (strcmp (method, "HEAD") == 0 && strcmp (routes[i].method, "GET") == 0
                && !(routes[i].flags & EDGE_ROUTE_WEBHOOK))) {
            match->route = &routes[i];
            return EDGE_MATCH_OK;
        }
        path_known = true;
        if (allow && allow_size) {
            int n = snprintf (allow + allow_len, allow_size - allow_len, "%s%s",
                              allow_len ? ", " : "", routes[i].method);
            if (n > 0 && (size_t) n < allow_size - allow_len)
                allow_len += (size_t) n;
        }
    }
    match->param_count = 0;
    return path_known ? EDGE_MATCH_BAD_METHOD : EDGE_MATCH_NOT_FOUND;
}

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
edge_routes_decode (char *dst, size_t size, const char *src, size_t len,
                    bool plus_is_space)
{
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = s_hex (src[i + 1]), lo = s_hex (src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char) (hi * 16 + lo);
            i += 2;
        }
        else if (c == '+' && plus_is_space)
            c = ' ';
        if (c == 0 || out + 1 >= size)
            return -1;
        dst[out++] = c;
    }
    if (size == 0)
        return -1;
    dst[out] = 0;
    return (int) out;
}

int
edge_routes_add_query (edge_match_t *match, const char *fragment, size_t len)
{
    if (match->query_count >= EDGE_MAX_QUERY)
        return -1;
    edge_param_t *param = &match->query[match->query_count];
    const char *eq = memchr (fragment, '=', len);
    size_t name_len = eq ? (size_t) (eq - fragment) : len;
    size_t value_len = eq ? len - name_len - 1 : 0;
    if (name_len == 0 || name_len >= EDGE_PARAM_SIZE || value_len >= EDGE_PARAM_SIZE
        || memchr (fragment, 0, len))
        return -1;
    memcpy (param->name, fragment, name_len);
    param->name[name_len] = 0;
    memcpy (param->value, eq ? eq + 1 : "", value_len);
    param->value[value_len] = 0;
    match->query_count++;
    return 0;
}

edge_match_result_t
edge_routes_parse_target (const char *method, const char *target, size_t len,
                          edge_match_t *match)
{
    memset (match, 0, sizeof *match);
    const char *question = memchr (target, '?', len);
    size_t path_len = question ? (size_t) (question - target) : len;
    char path[512];
    if (path_len == 0 || target[0] != '/'
        || edge_routes_decode (path, sizeof path, target, path_len, false) < 0)
        return EDGE_MATCH_NOT_FOUND;
    //  Reject dot segments rather than resolving them.
    if (strstr (path, "/../") || strstr (path, "/./") || strstr (path, "//"))
        return EDGE_MATCH_NOT_FOUND;
    edge_match_result_t result = edge_routes_match (method, path, match, NULL, 0);
    if (result != EDGE_MATCH_OK || !question)
        return result;
    const char *q = question + 1, *end = target + len;
    while (q < end) {
        const char *amp = memchr (q, '&', (size_t) (end - q));
        size_t piece = amp ? (size_t) (amp - q) : (size_t) (end - q);
        if (piece > 0) {
            //  Decode name and value separately so an escaped '=' stays in the value.
            const char *eq = memchr (q, '=', piece);
            size_t name_len = eq ? (size_t) (eq - q) : piece;
            char name[EDGE_PARAM_SIZE], value[EDGE_PARAM_SIZE];
            int n = edge_routes_decode (name, sizeof name, q, name_len, true);
            int v = eq ? edge_routes_decode (value, sizeof value, eq + 1,
                                             piece - name_len - 1, true)
                       : (value[0] = 0, 0);
            //  A bad parameter is skipped, as undeclared ones are.
            if (n > 0 && v >= 0 && !strchr (name, '=')
                && match->query_count < EDGE_MAX_QUERY) {
                edge_param_t *param = &match->query[match->query_count++];
                memcpy (param->name, name, (size_t) n + 1);
                memcpy (param->value, value, (size_t) v + 1);
            }
        }
        q += piece + 1;
    }
    return result;
}

const char *
edge_routes_service (const edge_match_t *match)
{
    const edge_route_t *route = match->route;
    if (!route || !route->service)
        return NULL;
    if (route->service[0] != '{')
        return route->service;
    size_t len = strlen (route->service) - 2;
    for (size_t i = 0; i < match->param_count; i++)
        if (strlen (match->params[i].name) == len
            && memcmp (match->params[i].name, route->service + 1, len) == 0)
            return match->params[i].value;
    return NULL;
}

//  Convert one declared query value to its JSON type, or NULL with an error.
static json_t *
s_query_value (const edge_query_param_t *decl, const char *text, char *error,
               size_t error_size)
{
    if (strcmp (decl->type, "integer") == 0) {
        char *end = NULL;
        errno = 0;
        long long n = strtoll (text, &end, 10);
        if (errno || end == text || *end || n < decl->min || n > decl->max) {
            snprintf (error, error_size,
                      "query parameter '%s' must be an integer in %lld..%lld", decl->name,
                      decl->min, decl->max);
            return NULL;
        }
        return json_integer (n);
    }
    if (strcmp (decl->type, "boolean") == 0) {
        if (strcmp (text, "true") == 0 || strcmp (text, "1") == 0)
            return json_true ();
        if (strcmp (text, "false") == 0 || strcmp (text, "0") == 0)
            return json_false ();
        snprintf (error, error_size, "query parameter '%s' must be true or false",
                  decl->name);
        return NULL;
    }
    return json_string (text);
}

json_t *
edge_routes_args (const edge_match_t *match, json_t *body, char *error, size_t error_size)
{
    json_t *args = body && json_is_object (body) ? json_deep_copy (body) : json_object ();
    assert (args);
    const edge_route_t *route = match->route;
    for (size_t i = 0; route && i < match->query_count; i++) {
        const edge_query_param_t *decl = NULL;
        for (size_t d = 0; d < EDGE_ROUTE_MAX_QUERY && route->query[d].name; d++)
            if (strcmp (route->query[d].name, match->query[i].name) == 0)
                decl = &route->query[d];
        if (!decl)
            continue;  //  undeclared query parameters are ignored
        json_t *value = s_query_value (decl, match->query[i].value, error, error_size);
        if (!value) {
            json_decref (args);
            return NULL;
        }
        json_object_set_new (args, decl->name, value);
    }
    //  Path parameters that name the service are routing, not arguments.
    for (size_t i = 0; i < match->param_count; i++)
        if (!route || !route->service || route->service[0] != '{'
            || strncmp (route->service + 1, match->params[i].name,
                        strlen (match->params[i].name))
                   != 0)
            json_object_set_new (args, match->params[i].name,
                                 json_string (match->params[i].value));
    return args;
}

bool
edge_request_id_valid (const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

void
edge_request_id_generate (char *buf, size_t size)
{
    assert (size >= 37);
    //  A version 4 UUID straight from the kernel's generator: one system call
    //  (libuuid re-seeds random() and asks for pid, uid and tid on every call)
    uuid_t uuid;
    if (getrandom (uuid, sizeof uuid, GRND_NONBLOCK) != (ssize_t) sizeof uuid)
        uuid_generate_random (uuid);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid_unparse_lower (uuid, buf);
}

bool
edge_accepts_event_stream (const char *accept, size_t len)
{
    static const char wanted[] = "text/event-stream";
    size_t i = 0;
    while (i < len) {
        size_t item_end = i;
        while (item_end < len && accept[item_end] != ',')
            item_end++;
        size_t type_start = i;
        while (type_start < item_end
               && (accept[type_start] == ' ' || accept[type_start] == '\t'))
            type_start++;
        size_t type_end = type_start;
        while (type_end < item_end && accept[type_end] != ';')
            type_end++;
        size_t params = type_end;  //  ';' or item_end
        while (type_end > type_start
               && (accept[type_end - 1] == ' ' || accept[type_end - 1] == '\t'))
            type_end--;
        if (type_end - type_start == sizeof wanted - 1
            && strncasecmp (accept + type_start, wanted, sizeof wanted - 1) == 0) {
            //  Refused only by an explicit q=0 (or 0.0, 0.00, ...).
            bool zero = false;
            for (size_t q = params; q + 1 < item_end; q++) {
                if ((accept[q] == 'q' || accept[q] == 'Q') && accept[q + 1] == '=') {
                    size_t v = q + 2;
                    zero = v < item_end && accept[v] == '0';
                    for (v++;
                         zero && v < item_end && accept[v] != ';' && accept[v] != ' ';
                         v++)
                        if (accept[v] != '0' && accept[v] != '.')
                            zero = false;
                    break;
                }
            }
            if (!zero)
                return true;
        }
        i = item_end + 1;
    }
    return false;
}

int
edge_error_status (const char *bus_code, const char **http_code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"deadline_exceeded", 504},
        {"unavailable", 503},
        {"broker_unavailable", 503},
        {"worker_lost", 502},
        {"broker_lost", 503},
        {"cancelled", 499},
        {"no_content", 204},
        {"bad_request", 400},
        {"not_found", 404},
        {"model_not_found", 404},  //  OpenAI's code: /v1 models the caller cannot see
        {"unknown_command", 404},
        {"overloaded", 503},
        {"forbidden", 403},
        {"unauthorized", 401},
        {"conflict", 409},
        {"shutting_down", 503},
        {"invalid_json", 400},
        {"payload_too_large", 413},
        {"invalid_credentials", 401},
        {"invalid_token", 401},
        {"token_reused", 401},
        {"rate_limited", 429},
        {"upstream_error", 502},
        {"upstream_unauthorized", 502},
    };
    for (size_t i = 0; bus_code && i < sizeof map / sizeof map[0]; i++)
        if (strcmp (map[i].code, bus_code) == 0) {
            if (http_code)
                *http_code = map[i].code;
            return map[i].status;
        }
    if (http_code)
        *http_code = "internal";
    return 500;
}

const char *
edge_status_text (int status)
{
    switch (status) {
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        case 499:
            return "Client Closed Request";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Error";
    }
}

void
edge_routes_test (bool verbose)
{
    printf (" * edge_routes: ");
    edge_match_t m;
    char allow[64];
    json_t *body = NULL;
    memset (&m, 0, sizeof m);

    //  Matching, with parameters restricted to the service names.
    assert (edge_routes_match ("GET", "/healthz", &m, NULL, 0) == EDGE_MATCH_OK);
    assert (m.route->kind == EDGE_ROUTE_HEALTHZ);
    assert (edge_routes_match ("HEAD", "/healthz", &m, NULL, 0) == EDGE_MATCH_OK);
    assert (edge_routes_match ("GET", "/api/v1/services/auth/ping", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "ping") == 0);
    assert (m.param_count == 1 && strcmp (m.params[0].value, "auth") == 0);
    assert (strcmp (edge_routes_service (&m), "auth") == 0);
    assert (edge_routes_match ("GET", "/api/v1/services", &m, NULL, 0) == EDGE_MATCH_OK);
    assert (strcmp (edge_routes_service (&m), "broker") == 0);
    assert (edge_routes_match ("GET", "/api/v1/services/nope/ping", &m, NULL, 0)
            == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("GET", "/api/v1/services/auth/ping/", &m, NULL, 0)
            == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("GET", "/api/v1/services//ping", &m, NULL, 0)
            == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("GET", "/", &m, NULL, 0) == EDGE_MATCH_NOT_FOUND);
    assert (
        edge_routes_match ("POST", "/api/v1/services/rag/health", &m, allow, sizeof allow)
        == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "GET") == 0);
    assert (m.route == NULL);

    //  Auth routes: a literal path beside a {id} one, cursor and limit typed
    assert (edge_routes_match ("POST", "/api/v1/auth/invites/accept", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "invites.accept") == 0);
    assert (edge_routes_match ("DELETE", "/api/v1/auth/invites/i-1", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "invites.delete") == 0 && m.route->status == 204);
    assert (m.param_count == 1 && strcmp (m.params[0].value, "i-1") == 0);
    assert (edge_routes_match ("PUT", "/api/v1/auth/members/u1", &m, allow, sizeof allow)
            == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "PATCH, DELETE") == 0);
    const char *list = "/api/v1/auth/members?limit=20&cursor=abc";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    assert (m.route->need == EDGE_NEED_TENANT_ADMIN);
    char why[128];
    json_t *page = edge_routes_args (&m, NULL, why, sizeof why);
    assert (page && json_integer_value (json_object_get (page, "limit")) == 20);
    assert (strcmp (json_string_value (json_object_get (page, "cursor")), "abc") == 0);
    json_decref (page);
    list = "/api/v1/auth/members?limit=101";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    assert (edge_routes_args (&m, NULL, why, sizeof why) == NULL);
    list = "/api/v1/auth/tenants/t-9";
    assert (edge_routes_parse_target ("PATCH", list, strlen (list), &m) == EDGE_MATCH_OK);
    body = json_pack ("{s:s, s:s}", "id", "other", "name", "n");
    page = edge_routes_args (&m, body, why, sizeof why);
    assert (strcmp (json_string_value (json_object_get (page, "id")), "t-9") == 0);
    json_decref (page);
    json_decref (body);

    //  Agents, chat and OpenAI routes: nested parameters, 405s, typed filters
    assert (edge_routes_match ("POST", "/api/v1/agents/a-1/test", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "agents.test") == 0);
    assert (strcmp (edge_routes_service (&m), "agents") == 0);
    assert (edge_routes_match ("PUT", "/api/v1/providers/openai", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (m.param_count == 1 && strcmp (m.params[0].name, "provider") == 0);
    assert (
        edge_routes_match ("POST", "/api/v1/providers/openai", &m, allow, sizeof allow)
        == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "PUT, DELETE") == 0);
    assert (edge_routes_match ("GET", "/api/v1/conversations/c-1/messages", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "messages.list") == 0);
    assert (edge_routes_match ("POST", "/api/v1/conversations/c-1/messages", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "messages.send") == 0);
    assert (m.route->flags & EDGE_ROUTE_RESUME);
    assert (edge_routes_match ("GET", "/api/v1/conversations/c-1/messages/m-2/events", &m,
                               NULL, 0)
            == EDGE_MATCH_OK);
    assert (strcmp (edge_routes_service (&m), "chat") == 0);
    assert (strcmp (m.route->command, "messages.send") == 0 && m.param_count == 2);
    assert (strcmp (m.params[0].value, "c-1") == 0);
    assert (strcmp (m.params[1].name, "message_id") == 0);
    assert (strcmp (m.params[1].value, "m-2") == 0);
    assert (
        edge_routes_match ("GET", "/api/v1/conversations/c-1/messages/m-2", &m, NULL, 0)
        == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("POST", "/api/v1/conversations/c-1/cancel", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (edge_routes_match ("GET", "/api/v1/conversations/c-1/cancel", &m, allow,
                               sizeof allow)
            == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "POST") == 0);
    assert (edge_routes_match ("GET", "/v1/models", &m, NULL, 0) == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "openai_models") == 0);
    assert (edge_routes_match ("POST", "/v1/chat/completions", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (m.route->flags & EDGE_ROUTE_OPENAI && m.route->streams);
    assert (edge_routes_match ("GET", "/v1/chat/completions", &m, allow, sizeof allow)
            == EDGE_MATCH_BAD_METHOD);
    list = "/api/v1/conversations?archived=true&agent_id=a-1&limit=5&other=1";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    page = edge_routes_args (&m, NULL, why, sizeof why);
    assert (page && json_is_true (json_object_get (page, "archived")));
    assert (strcmp (json_string_value (json_object_get (page, "agent_id")), "a-1") == 0);
    assert (json_integer_value (json_object_get (page, "limit")) == 5);
    assert (json_object_size (page) == 3);
    json_decref (page);
    list = "/api/v1/conversations?archived=maybe";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    assert (edge_routes_args (&m, NULL, why, sizeof why) == NULL);
    assert (strstr (why, "archived"));

    //  Channels: connections, the inbox with its filter, webhooks per platform
    assert (
        edge_routes_match ("GET", "/api/v1/channels/connections/c-1/inbox", &m, NULL, 0)
        == EDGE_MATCH_OK);
    assert (strcmp (m.route->command, "inbox.list") == 0);
    list = "/api/v1/channels/connections/c-1/inbox?status=received&limit=3";
    assert (edge_routes_parse_target ("GET", list, strlen (list), &m) == EDGE_MATCH_OK);
    page = edge_routes_args (&m, NULL, why, sizeof why);
    assert (strcmp (json_string_value (json_object_get (page, "status")), "received")
            == 0);
    assert (strcmp (json_string_value (json_object_get (page, "id")), "c-1") == 0);
    json_decref (page);
    assert (edge_routes_match ("POST", "/webhooks/whatsapp/c-1", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (m.route->flags & EDGE_ROUTE_WEBHOOK && m.param_count == 2);
    assert (strcmp (m.params[0].name, "platform") == 0);
    assert (strcmp (m.params[1].value, "c-1") == 0);
    assert (strcmp (edge_routes_service (&m), "channels") == 0);
    assert (edge_routes_match ("GET", "/webhooks/slack/c-1", &m, NULL, 0)
            == EDGE_MATCH_OK);
    assert (edge_routes_match ("POST", "/webhooks/sms/c-1", &m, NULL, 0)
            == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("POST", "/webhooks/telegram/", &m, NULL, 0)
            == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_match ("HEAD", "/webhooks/telegram/c-1", &m, allow, sizeof allow)
            == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "GET, POST") == 0);
    assert (edge_routes_match ("PUT", "/webhooks/telegram/c-1", &m, allow, sizeof allow)
            == EDGE_MATCH_BAD_METHOD);
    assert (strcmp (allow, "GET, POST") == 0);

    //  Targets with queries; percent-decoding; typed arguments.
    const char *t = "/api/v1/services/chat/ping?count=3&interval_ms=10&x=%41&bad=%zz";
    assert (edge_routes_parse_target ("GET", t, strlen (t), &m) == EDGE_MATCH_OK);
    assert (m.query_count == 3);
    assert (strcmp (m.query[2].value, "A") == 0);
    char error[128];
    body = json_pack ("{s:s, s:i}", "note", "hi", "count", 99);
    json_t *args = edge_routes_args (&m, body, error, sizeof error);
    assert (args);
    assert (json_integer_value (json_object_get (args, "count")) == 3);
    assert (json_integer_value (json_object_get (args, "interval_ms")) == 10);
    assert (strcmp (json_string_value (json_object_get (args, "note")), "hi") == 0);
    assert (!json_object_get (args, "x") && !json_object_get (args, "name"));
    json_decref (args);
    json_decref (body);
    t = "/api/v1/services/chat/ping?count=abc";
    assert (edge_routes_parse_target ("GET", t, strlen (t), &m) == EDGE_MATCH_OK);
    assert (edge_routes_args (&m, NULL, error, sizeof error) == NULL);
    assert (strstr (error, "count"));
    t = "/api/v1/services/chat/ping?count=0";
    assert (edge_routes_parse_target ("GET", t, strlen (t), &m) == EDGE_MATCH_OK);
    assert (edge_routes_args (&m, NULL, error, sizeof error) == NULL);
    t = "/api/v1/services/%63hat/health";
    assert (edge_routes_parse_target ("GET", t, strlen (t), &m) == EDGE_MATCH_OK);
    t = "/api/v1/services/chat/../auth/health";
    assert (edge_routes_parse_target ("GET", t, strlen (t), &m) == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_parse_target ("GET", "x", 1, &m) == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_parse_target ("GET", "/%00", 4, &m) == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_parse_target ("GET", "/healthz%", 9, &m) == EDGE_MATCH_NOT_FOUND);
    assert (edge_routes_parse_target ("GET", "/healthz?a", 10, &m) == EDGE_MATCH_OK);
    assert (edge_routes_parse_target ("GET", "/healthz?&&=&%", 14, &m) == EDGE_MATCH_OK);
    assert (edge_routes_parse_target ("GET", "", 0, &m) == EDGE_MATCH_NOT_FOUND);
    char decoded[8];
    assert (edge_routes_decode (decoded, sizeof decoded, "a+b%20c", 7, true) == 5);
    assert (strcmp (decoded, "a b c") == 0);
    assert (edge_routes_decode (decoded, sizeof decoded, "%2", 2, false) == -1);
    assert (edge_routes_decode (decoded, sizeof decoded, "12345678", 8, false) == -1);
    memset (&m, 0, sizeof m);
    assert (edge_routes_add_query (&m, "count=2", 7) == 0);
    assert (edge_routes_add_query (&m, "=2", 2) == -1);
    assert (strcmp (m.query[0].value, "2") == 0);

    //  Request ids and Accept.
    assert (edge_request_id_valid ("abc-123_x.y:z", 13));
    assert (!edge_request_id_valid ("", 0));
    assert (!edge_request_id_valid ("a b", 3));
    assert (!edge_request_id_valid ("a\r\nX: y", 7));
    char long_id[80];
    memset (long_id, 'a', sizeof long_id);
    assert (!edge_request_id_valid (long_id, sizeof long_id));
    char id[37], id2[37];
    edge_request_id_generate (id, sizeof id);
    edge_request_id_generate (id2, sizeof id2);
    assert (strlen (id) == 36 && id[14] == '4' && strcmp (id, id2) != 0);
    assert (edge_request_id_valid (id, strlen (id)));
    const char *a = "text/event-stream";
    assert (edge_accepts_event_stream (a, strlen (a)));
    a = "application/json, Text/Event-Stream;q=0.5";
    assert (edge_accepts_event_stream (a, strlen (a)));
    a = "text/event-stream;q=0, application/json";
    assert (!edge_accepts_event_stream (a, strlen (a)));
    a = "*/*";
    assert (!edge_accepts_event_stream (a, strlen (a)));
    assert (!edge_accepts_event_stream ("", 0));

    //  Error mapping.
    const char *code = NULL;
    assert (edge_error_status ("deadline_exceeded", &code) == 504);
    assert (edge_error_status ("unavailable", &code) == 503);
    assert (edge_error_status ("broker_unavailable", &code) == 503);
    assert (edge_error_status ("worker_lost", &code) == 502);
    assert (edge_error_status ("cancelled", &code) == 499);
    assert (edge_error_status ("bad_request", &code) == 400);
    assert (edge_error_status ("unknown_command", &code) == 404);
    assert (edge_error_status ("model_not_found", &code) == 404
            && strcmp (code, "model_not_found") == 0);
    assert (edge_error_status ("overloaded", &code) == 503);
    assert (edge_error_status ("forbidden", &code) == 403);
    assert (edge_error_status ("unauthorized", &code) == 401);
    assert (edge_error_status ("conflict", &code) == 409);
    assert (strcmp (code, "conflict") == 0);
    assert (edge_error_status ("model_not_found", &code) == 404);
    assert (strcmp (code, "model_not_found") == 0);
    assert (edge_error_status ("invalid_credentials", &code) == 401);
    assert (edge_error_status ("invalid_token", &code) == 401);
    assert (edge_error_status ("token_reused", &code) == 401);
    assert (strcmp (code, "token_reused") == 0);
    assert (edge_error_status ("rate_limited", &code) == 429);
    assert (strcmp (edge_status_text (429), "Too Many Requests") == 0);
    //  The LLM provider failed or refused the key: a bad gateway, not our 401
    assert (edge_error_status ("upstream_error", &code) == 502);
    assert (strcmp (code, "upstream_error") == 0);
    assert (edge_error_status ("upstream_unauthorized", &code) == 502);
    assert (strcmp (code, "upstream_unauthorized") == 0);
    assert (edge_error_status ("weird", &code) == 500);
    assert (strcmp (code, "internal") == 0);
    assert (edge_error_status (NULL, &code) == 500);
    if (verbose) {
        size_t count = 0;
        edge_table_routes (&count);
        printf ("(routes %zu) ", count);
    }
    printf ("OK\n");
}
