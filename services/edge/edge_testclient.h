/*  edge_testclient: a small blocking HTTP/1.1 and WebSocket client over a real TCP
    socket, with timeouts, for the edge's selftests and tests/ (it sends exactly
    the bytes it is given, so tests can send broken or oversized requests), and
    the helpers the edge's socket tests share: one-shot calls, error codes,
    access tokens.                                                              */
#ifndef EDGE_TESTCLIENT_H_INCLUDED
#define EDGE_TESTCLIENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "auth_jwt.h"

typedef struct _edge_testclient_t edge_testclient_t;

//  A parsed HTTP response.
typedef struct {
    int status;        //  status code, -1 when none arrived
    char *headers;     //  header block, lowercased names (caller frees via _free)
    char *body;        //  body, terminated
    size_t body_size;  //  body length
} edge_response_t;

//  Connect to 127.0.0.1:port; NULL on failure.
edge_testclient_t *edge_testclient_new (int port);
void edge_testclient_destroy (edge_testclient_t **self_p);

//  The socket, for options a test wants to set.
int edge_testclient_fd (edge_testclient_t *self);

//  Send raw bytes; returns 0 or -1.
int edge_testclient_send (edge_testclient_t *self, const void *data, size_t size);

//  Send "METHOD path HTTP/1.1" with extra header lines (each ending in \r\n, may
//  be NULL) and a body (may be NULL).
int edge_testclient_request (edge_testclient_t *self, const char *method,
                             const char *path, const char *headers, const char *body);

//  The same with a body of size bytes, sent as they are (any bytes, NUL too).
int edge_testclient_request_bytes (edge_testclient_t *self, const char *method,
                                   const char *path, const char *headers,
                                   const void *body, size_t size);

//  One request with such a body on a new connection (see edge_testclient_call).
int edge_testclient_call_bytes (int port, const char *method, const char *path,
                                const char *headers, const void *body, size_t size,
                                edge_response_t *response);

//  Read one response: headers, then Content-Length bytes or, without one, until
//  the connection closes. Returns the status or -1 on timeout or close.
int edge_testclient_response (edge_testclient_t *self, edge_response_t *response,
                              int timeout_ms);
void edge_response_free (edge_response_t *response);

//  Read only the status line and headers of one response (the answer to HEAD,
//  whose Content-Length announces a body that never comes). Returns the status
//  or -1 on timeout or close.
int edge_testclient_response_headers (edge_testclient_t *self, edge_response_t *response,
                                      int timeout_ms);

//  One request on a new connection to 127.0.0.1:port (headers and body may be
//  NULL); returns the status, the response in *response (free it).
int edge_testclient_call (int port, const char *method, const char *path,
                          const char *headers, const char *body,
                          edge_response_t *response);

//  The same for GET without a body.
int edge_testclient_get (int port, const char *path, const char *headers,
                         edge_response_t *response);

//  True when the response's JSON body is an error with this code.
bool edge_response_error_is (edge_response_t *response, const char *code);

//  An access token signed with secret (as the auth service issues them) for
//  user in tenant "tenant-1", session "session-1", with role. Caller frees.
char *edge_testclient_token (const char *secret, const char *user, auth_role_t role);

//  The value of a header in a response (lowercase name), copied into buf.
const char *edge_response_header (edge_response_t *response, const char *name, char *buf,
                                  size_t size);

//  Read until the connection closes (or timeout); returns the bytes (caller frees).
char *edge_testclient_read_all (edge_testclient_t *self, size_t *size, int timeout_ms);

//  True when the server has closed the connection within timeout_ms.
bool edge_testclient_closed (edge_testclient_t *self, int timeout_ms);

//  WebSocket: upgrade on path (returns the status, 101 on success), send a text
//  frame (masked), receive one frame (text payload, caller frees; *opcode gets
//  the opcode; close frames give their payload). NULL on timeout or close.
int edge_testclient_ws_open (edge_testclient_t *self, const char *path);
//  The same with extra request header lines ("Name: value\r\n"...; may be NULL).
int edge_testclient_ws_open_with (edge_testclient_t *self, const char *path,
                                  const char *headers);
int edge_testclient_ws_send (edge_testclient_t *self, const char *text, size_t size);
char *edge_testclient_ws_recv (edge_testclient_t *self, int *opcode, size_t *size,
                               int timeout_ms);

#endif
