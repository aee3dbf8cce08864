/*  edge_openapi: OpenAPI 3.1 document generated from the route table.             */
#include "edge_openapi.h"
#include "edge_routes.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  Schemas of the bodies the routes answer, mirroring schemas/bus.proto.
static const char s_components[] =
    "{\"schemas\":{"
    "\"Error\":{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":"
    "{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{"
    "\"code\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}}}},"
    "\"Status\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"}}},"
    "\"Ready\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},"
    "\"checks\":{\"type\":\"object\",\"properties\":{\"broker\":{\"type\":\"boolean\"},"
    "\"database\":{\"type\":\"boolean\"},\"redis\":{\"type\":\"boolean\"}}}}},"
    "\"ServiceInfo\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"replicas\":{\"type\":\"integer\"},\"credit\":{\"type\":\"integer\"},"
    "\"in_flight\":{\"type\":\"integer\"},\"queued\":{\"type\":\"integer\"}}},"
    "\"BrokerStatus\":{\"type\":\"object\",\"properties\":{\"broker\":{\"type\":"
    "\"string\"},"
    "\"services\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/"
    "ServiceInfo\"}},"
    "\"requests_total\":{\"type\":\"integer\"},\"errors_total\":{\"type\":\"integer\"}}},"
    "\"PingReply\":{\"type\":\"object\",\"properties\":{\"service\":{\"type\":\"string\"}"
    ","
    "\"replica\":{\"type\":\"string\"},\"time_ms\":{\"type\":\"integer\"},"
    "\"index\":{\"type\":\"integer\"}}},"
    "\"HealthReply\":{\"type\":\"object\",\"properties\":{\"service\":{\"type\":"
    "\"string\"},"
    "\"replica\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"},"
    "\"database\":{\"type\":\"boolean\"},\"redis\":{\"type\":\"boolean\"},"
    "\"in_flight\":{\"type\":\"integer\"},\"credit\":{\"type\":\"integer\"},"
    "\"uptime_ms\":{\"type\":\"integer\"},\"version\":{\"type\":\"string\"}}}}}";

//  A JSON reference to a component schema.
static json_t *
s_ref (const char *name)
{
    char ref[128];
    snprintf (ref, sizeof ref, "#/components/schemas/%s", name);
    return json_pack ("{s:s}", "$ref", ref);
}

//  An error response object.
static json_t *
s_error_response (const char *description)
{
    return json_pack ("{s:s, s:{s:{s:o}}}", "description", description, "content",
                      "application/json", "schema", s_ref ("Error"));
}

//  operationId from method and pattern: get_api_v1_services_name_ping.
static void
s_operation_id (const edge_route_t *route, char *buf, size_t size)
{
    size_t out = 0;
    for (const char *s = route->method; *s && out + 1 < size; s++)
        buf[out++] = (char) tolower ((unsigned char) *s);
    bool underscore = true;
    for (const char *s = route->pattern; *s && out + 1 < size; s++) {
        if (isalnum ((unsigned char) *s)) {
            if (underscore)
                buf[out++] = '_';
            if (out + 1 < size)
                buf[out++] = *s;
            underscore = false;
        }
        else
            underscore = true;
    }
    buf[out] = 0;
}

//  The operation object of one route.
static json_t *
s_operation (const edge_route_t *route)
{
    char id[128];
    s_operation_id (route, id, sizeof id);
    json_t *op = json_pack ("{s:s, s:s}", "summary", route->summary, "operationId", id);
    json_t *params = json_array ();
    size_t service_count = 0;
    const char *const *services = edge_routes_services (&service_count);
    for (const char *p = strchr (route->pattern, '{'); p; p = strchr (p + 1, '{')) {
        const char *close = strchr (p, '}');
        char name[64];
        snprintf (name, sizeof name, "%.*s", (int) (close - p - 1), p + 1);
        json_t *schema = json_pack ("{s:s}", "type", "string");
        if (strcmp (name, "name") == 0) {
            json_t *values = json_array ();
            for (size_t i = 0; i < service_count; i++)
                json_array_append_new (values, json_string (services[i]));
            json_object_set_new (schema, "enum", values);
        }
        json_array_append_new (params,
                               json_pack ("{s:s, s:s, s:b, s:o}", "name", name, "in",
                                          "path", "required", 1, "schema", schema));
    }
    for (size_t i = 0; i < EDGE_ROUTE_MAX_QUERY && route->query[i].name; i++) {
        const edge_query_param_t *q = &route->query[i];
        json_t *schema = json_pack ("{s:s}", "type", q->type);
        if (strcmp (q->type, "integer") == 0) {
            json_object_set_new (schema, "minimum", json_integer (q->min));
            json_object_set_new (schema, "maximum", json_integer (q->max));
        }
        json_array_append_new (params,
                               json_pack ("{s:s, s:s, s:b, s:s, s:o}", "name", q->name,
                                          "in", "query", "required", 0, "description",
                                          q->description, "schema", schema));
    }
    json_array_append_new (
        params, json_pack ("{s:s, s:s, s:b, s:s, s:{s:s, s:i}}", "name", "X-Request-Id",
                           "in", "header", "required", 0, "description",
                           "Request id to use (1-64 of A-Za-z0-9-_.:); "
                           "generated when absent, echoed in the response",
                           "schema", "type", "string", "maxLength", 64));
    json_object_set_new (op, "parameters", params);

    json_t *responses = json_object ();
    char status[8];
    snprintf (status, sizeof status, "%d", route->status);
    json_t *ok = json_pack ("{s:s}", "description", "Success");
    json_t *content = json_object ();
    if (route->kind == EDGE_ROUTE_METRICS)
        json_object_set_new (content, "text/plain; version=0.0.4",
                             json_pack ("{s:{s:s}}", "schema", "type", "string"));
    else if (route->kind == EDGE_ROUTE_OPENAPI)
        json_object_set_new (content, "application/json",
                             json_pack ("{s:{s:s}}", "schema", "type", "object"));
    else if (route->reply_schema)
        json_object_set_new (content, "application/json",
                             json_pack ("{s:o}", "schema", s_ref (route->reply_schema)));
    if (route->streams && route->kind == EDGE_ROUTE_BUS)
        json_object_set_new (content, "text/event-stream",
                             json_pack ("{s:{s:s}, s:s}", "schema", "type", "string",
                                        "description",
                                        "With Accept: text/event-stream: events "
                                        "'partial', 'final' or 'error', data JSON"));
    if (json_object_size (content))
        json_object_set_new (ok, "content", content);
    else
        json_decref (content);
    json_object_set_new (responses, status, ok);
    if (route->kind == EDGE_ROUTE_BUS) {
        json_object_set_new (responses, "400",
                             s_error_response ("Bad request or invalid JSON"));
        json_object_set_new (responses, "404",
                             s_error_response ("Unknown route, service or command"));
        json_object_set_new (responses, "413",
                             s_error_response ("Body larger than the limit"));
        json_object_set_new (responses, "500", s_error_response ("Internal error"));
        json_object_set_new (responses, "502",
                             s_error_response ("The replica handling it was lost"));
        json_object_set_new (
            responses, "503",
            s_error_response ("No live replica, no broker, or overloaded (Retry-After)"));
        json_object_set_new (responses, "504", s_error_response ("Deadline exceeded"));
    }
    else if (route->kind == EDGE_ROUTE_READYZ)
        json_object_set_new (responses, "503",
                             json_pack ("{s:s, s:{s:{s:o}}}", "description", "Not ready",
                                        "content", "application/json", "schema",
                                        s_ref ("Ready")));
    else if (route->kind == EDGE_ROUTE_WS)
        json_object_set_new (responses, "426",
                             s_error_response ("Not a WebSocket upgrade"));
    json_object_set_new (responses, "405", s_error_response ("Method not allowed"));
    json_object_set_new (op, "responses", responses);
    return op;
}

json_t *
edge_openapi_document (void)
{
    json_t *components = json_loads (s_components, 0, NULL);
    assert (components);
    json_t *doc = json_pack (
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o}", "openapi", "3.1.0", "info", "title",
        "Chorus edge API", "version", "0.1.0", "description",
        "HTTP/SSE/WebSocket front door of Chorus. Errors are "
        "{\"error\":{\"code\",\"message\"}}; every response carries X-Request-Id.",
        "servers", "url", "/", "components", components);
    assert (doc);
    json_t *paths = json_object ();
    size_t count = 0;
    const edge_route_t *routes = edge_routes_table (&count);
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_object_get (paths, routes[i].pattern);
        if (!item) {
            item = json_object ();
            json_object_set_new (paths, routes[i].pattern, item);
        }
        char method[16];
        size_t m = 0;
        for (const char *s = routes[i].method; *s && m + 1 < sizeof method; s++)
            method[m++] = (char) tolower ((unsigned char) *s);
        method[m] = 0;
        json_object_set_new (item, method, s_operation (&routes[i]));
    }
    json_object_set_new (doc, "paths", paths);
    return doc;
}

char *
edge_openapi_text (void)
{
    json_t *doc = edge_openapi_document ();
    char *text = json_dumps (doc, JSON_INDENT (2) | JSON_SORT_KEYS);
    json_decref (doc);
    assert (text);
    return text;
}

int
edge_openapi_check (json_t *document, char *error, size_t error_size)
{
    size_t count = 0;
    const edge_route_t *routes = edge_routes_table (&count);
    json_t *paths = json_object_get (document, "paths");
    if (!json_is_object (paths)) {
        snprintf (error, error_size, "document has no paths");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        char method[16];
        size_t m = 0;
        for (const char *s = routes[i].method; *s && m + 1 < sizeof method; s++)
            method[m++] = (char) tolower ((unsigned char) *s);
        method[m] = 0;
        if (!json_object_get (json_object_get (paths, routes[i].pattern), method)) {
            snprintf (error, error_size, "route %s %s is not in the document",
                      routes[i].method, routes[i].pattern);
            return -1;
        }
    }
    const char *path;
    json_t *item;
    json_object_foreach (paths, path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach (item, method, op)
        {
            bool found = false;
            for (size_t i = 0; i < count && !found; i++)
                found = strcmp (routes[i].pattern, path) == 0
                        && strcasecmp (routes[i].method, method) == 0;
            if (!found) {
                snprintf (error, error_size, "%s %s is documented but not a route",
                          method, path);
                return -1;
            }
        }
    }
    return 0;
}

void
edge_openapi_test (bool verbose)
{
    printf (" * edge_openapi: ");
    char error[256];
    json_t *doc = edge_openapi_document ();
    assert (strcmp (json_string_value (json_object_get (doc, "openapi")), "3.1.0") == 0);
    assert (edge_openapi_check (doc, error, sizeof error) == 0);
    json_t *ping = json_object_get (
        json_object_get (json_object_get (doc, "paths"), "/api/v1/services/{name}/ping"),
        "get");
    assert (ping);
    assert (json_array_size (json_object_get (ping, "parameters")) == 4);
    assert (json_object_get (json_object_get (ping, "responses"), "504"));

    //  A stray operation, and a missing one, are both found.
    json_t *copy = json_deep_copy (doc);
    json_object_set_new (json_object_get (copy, "paths"), "/nope",
                         json_pack ("{s:{}}", "get"));
    assert (edge_openapi_check (copy, error, sizeof error) == -1);
    assert (strstr (error, "/nope"));
    json_object_del (json_object_get (copy, "paths"), "/nope");
    json_object_del (json_object_get (copy, "paths"), "/healthz");
    assert (edge_openapi_check (copy, error, sizeof error) == -1);
    assert (strstr (error, "/healthz"));
    json_decref (copy);

    //  The checked-in copy agrees with the table and with the generated document.
    const char *source = getenv ("CHORUS_SOURCE_DIR");
    if (source) {
        char path[1024];
        snprintf (path, sizeof path, "%s/schemas/openapi.json", source);
        json_error_t jerr;
        json_t *file = json_load_file (path, 0, &jerr);
        if (!file)
            fprintf (stderr, "%s: %s\n", path, jerr.text);
        assert (file);
        if (edge_openapi_check (file, error, sizeof error))
            fprintf (stderr, "%s: %s\n", path, error);
        assert (edge_openapi_check (file, error, sizeof error) == 0);
        if (!json_equal (file, doc))
            fprintf (stderr, "%s is stale: run chorus-edge --openapi > %s\n", path, path);
        assert (json_equal (file, doc));
        json_decref (file);
    }
    else if (verbose)
        printf ("(CHORUS_SOURCE_DIR unset, schemas/openapi.json not checked) ");
    json_decref (doc);
    char *text = edge_openapi_text ();
    assert (strstr (text, "\"openapi\": \"3.1.0\""));
    free (text);
    printf ("OK\n");
}
