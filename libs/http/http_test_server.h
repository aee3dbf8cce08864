/*  http_test_server: a small real HTTP/1.1 server for selftests, on an ephemeral
    loopback port. It is a Python script run as a child process (threaded, keep-
    alive, chunked streams with delays); it exits when the test process does, as
    it watches its stdin. Routes:
      GET  /hello              200 "hello world", X-Test: yes
      POST /echo               echoes the body; X-Method, X-Echo (X-Custom header),
                               X-Content-Type (Content-Type header)
      GET  /gated              SSE: first event, then waits up to 5 s for /release,
                               then "last" (or "timeout" if never released)
      GET  /release            releases /gated
      GET  /forever?id=X       SSE tick every 20 ms until the client goes away
      GET  /closed?id=X        "yes" once /forever?id=X saw its client go away
      GET  /stall              SSE: one event, then silence for 3 s
      GET  /slow               answers after 3 s
      GET  /big?n=N            N bytes with Content-Length
      GET  /bigchunked?n=N     N bytes, chunked
      GET  /ratelimit          429, Retry-After: 7, JSON body
      GET  /stream?n=N&ms=M    N chunks "chunk i\n", M ms apart
    Every response carries X-Conn-Id, the server's serial number of the
    connection, so tests can see connection reuse.
    A test can also script any other path with canned responses (byte-exact
    bodies, chunking, delays, cuts, endless streams) and read back the requests
    it received there (http_test_server_script, http_test_server_requests).     */
#ifndef HTTP_TEST_SERVER_H_INCLUDED
#define HTTP_TEST_SERVER_H_INCLUDED

#include <stdbool.h>

typedef struct _http_test_server_t http_test_server_t;

//  Start the server; NULL when python3 is missing or it did not come up.
http_test_server_t *http_test_server_new (void);
void http_test_server_destroy (http_test_server_t **self_p);

//  Port it listens on (127.0.0.1).
int http_test_server_port (http_test_server_t *self);

//  Base URL, "http://127.0.0.1:<port>".
const char *http_test_server_url (http_test_server_t *self);

//  Script the answers of a path (any method, query ignored), replacing an earlier
//  script and forgetting its requests. responses is a JSON array of objects used
//  in turn, the last one for every later request:
//    status    HTTP status (200)
//    headers   [[name, value], ...]
//    chunks    body pieces, each sent as one HTTP chunk (UTF-8 strings)
//    chunked   false: one body with Content-Length instead (true)
//    split     > 0: cut every piece into pieces of this many bytes (0)
//    delay_ms  pause before each piece after the first (0)
//    forever   after the pieces, send this piece every delay_ms (or 20 ms)
//              until the client goes away; its request then shows closed: true
//    hold_ms   pause after the pieces before ending the body (0)
//    cut       close the connection instead of ending the chunked body (false)
//  Returns 0, or -1 when the server did not take it.
int http_test_server_script (http_test_server_t *self, const char *path,
                             const char *responses) __attribute__ ((warn_unused_result));

//  The requests received so far on a scripted path, as a JSON array of
//  {"method", "path" (with query), "headers" {lower-case name: value}, "body",
//  "closed"}. The caller frees it; NULL when the server is gone.
char *http_test_server_requests (http_test_server_t *self, const char *path);

void http_test_server_test (bool verbose);

#endif
