/*  fuzz_edge_request: what the edge reads from an HTTP client before anything
    reaches the bus. The first byte picks a method; the input is then a request
    target (path and query: percent-decoding, route matching, typed query values
    merged with a JSON body into bus arguments, with what streaming routes add:
    "stream" and a Last-Event-ID), an Accept header, an X-Request-Id
    and a JSON request body, each taken from the same bytes.                      */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_call.h"
#include "edge_routes.h"
#include "edge_sse.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    const char *method = methods[data[0] % 6];
    const char *text = (const char *) data + 1;
    size_t len = size - 1;

    edge_match_t match;
    if (edge_routes_parse_target (method, text, len, &match) == EDGE_MATCH_OK) {
        bool ok = false;
        char error[256];
        json_t *body = edge_call_parse_body (text, len, &ok, error, sizeof error);
        //  What streaming routes add: "stream", "last_event_id" (the header)
        char last_event_id[EDGE_SSE_ID_MAX + 1] = "";
        if (len <= EDGE_SSE_ID_MAX && edge_sse_id_valid (text, len)) {
            memcpy (last_event_id, text, len);
            last_event_id[len] = 0;
        }
        bool sse = edge_call_wants_sse (&match, body, data[0] & 1);
        body = edge_call_stream_body (&match, body, sse, last_event_id);
        json_t *args = edge_routes_args (&match, body, error, sizeof error);
        json_decref (args);
        json_decref (body);
        (void) edge_routes_service (&match);
    }
    (void) edge_accepts_event_stream (text, len);
    (void) edge_request_id_valid (text, len);
    char decoded[512];
    (void) edge_routes_decode (decoded, sizeof decoded, text, len, data[0] & 1);
    return 0;
}
