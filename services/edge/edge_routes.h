/*  edge_routes: the pure HTTP-level parsing around the route table (edge_table):
    matching a method and path against patterns with {params}, query strings,
    X-Request-Id and Accept headers, merging path, query and body into the bus
    request's arguments, and mapping bus error codes to HTTP statuses. No sockets
    here: edge_http, edge_ws and edge_openapi use it, and fuzz targets can too.    */
#ifndef EDGE_ROUTES_H_INCLUDED
#define EDGE_ROUTES_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "edge_table.h"

#define EDGE_MAX_PARAMS 4
#define EDGE_MAX_QUERY 16
#define EDGE_PARAM_SIZE 128

//  A name/value pair from the path or the query (decoded).
typedef struct {
    char name[EDGE_PARAM_SIZE];   //  parameter name
    char value[EDGE_PARAM_SIZE];  //  decoded value
} edge_param_t;

//  Result of matching a request target.
typedef struct {
    const edge_route_t *route;             //  the route, NULL when none
    edge_param_t params[EDGE_MAX_PARAMS];  //  path parameters
    size_t param_count;                    //  number of path parameters
    edge_param_t query[EDGE_MAX_QUERY];    //  query parameters, in order
    size_t query_count;                    //  number of query parameters
} edge_match_t;

//  Outcome of a match.
typedef enum {
    EDGE_MATCH_OK = 0,           //  route found
    EDGE_MATCH_NOT_FOUND = 404,  //  no route has this path
    EDGE_MATCH_BAD_METHOD = 405  //  the path exists under another method
} edge_match_result_t;

//  Match method and a decoded path (no query) against the table. On 405, allow
//  (when not NULL) receives the methods of that path, comma-separated.
edge_match_result_t edge_routes_match (const char *method, const char *path,
                                       edge_match_t *match, char *allow,
                                       size_t allow_size);

//  Parse a whole request target "/path?query" as the WebSocket API receives it:
//  percent-decodes the path and query, matches, and fills match. Pure and total on
//  any input of len bytes (need not be terminated): the fuzz target's entry point.
edge_match_result_t edge_routes_parse_target (const char *method, const char *target,
                                              size_t len, edge_match_t *match);

//  Add one query fragment "name=value" (already decoded, as lws delivers them).
//  Returns -1 when the match holds EDGE_MAX_QUERY parameters already.
int edge_routes_add_query (edge_match_t *match, const char *fragment, size_t len);

//  Percent-decode src[0..len) into dst (always terminated; '+' means space when
//  plus_is_space). Returns the decoded length, or -1 on a bad escape, a NUL byte
//  or when dst is too small.
int edge_routes_decode (char *dst, size_t size, const char *src, size_t len,
                        bool plus_is_space);

//  Merge the body (a JSON object or NULL), the declared query parameters (typed)
//  and the path parameters (which win) into one new JSON object of arguments. On
//  a bad query value returns NULL with a message in error.
json_t *edge_routes_args (const edge_match_t *match, json_t *body, char *error,
                          size_t error_size);

//  The bus service a matched route goes to (resolves "{name}").
const char *edge_routes_service (const edge_match_t *match);

//  True when s (len bytes) is a request id we accept from a client: 1..64 bytes of
//  letters, digits and "-_.:".
bool edge_request_id_valid (const char *s, size_t len);

//  Write a new request id (UUID v4, 36 chars) into buf (at least 37 bytes).
void edge_request_id_generate (char *buf, size_t size);

//  True when an Accept header value lists text/event-stream with q > 0.
bool edge_accepts_event_stream (const char *accept, size_t len);

//  Map a bus error code to an HTTP status; *http_code receives the error code the
//  edge shows ("internal" for codes it does not know). 499 means the client is
//  gone and nothing is sent.
int edge_error_status (const char *bus_code, const char **http_code);

//  The reason phrase of an HTTP status, for error messages.
const char *edge_status_text (int status);

void edge_routes_test (bool verbose);

#endif
