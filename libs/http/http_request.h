/*  http_request: how a service describes an outbound HTTP request (method, URL,
    headers, body, timeouts, limits, callbacks) for http_client, and how the
    callbacks read the response (status, headers, Retry-After, body, error).     */
#ifndef HTTP_REQUEST_H_INCLUDED
#define HTTP_REQUEST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _http_request_t http_request_t;
typedef struct _http_response_t http_response_t;

//  How a transfer ended. HTTP_OK means a complete response arrived, whatever its
//  status; everything else means it did not.
typedef enum {
    HTTP_OK = 0,         //  response complete: look at the status
    HTTP_ERR_CONNECT,    //  refused, unreachable or connect timeout: nothing was sent
    HTTP_ERR_RESOLVE,    //  host name not found
    HTTP_ERR_TLS,        //  TLS handshake or certificate failure
    HTTP_ERR_TIMEOUT,    //  total timeout passed
    HTTP_ERR_IDLE,       //  no bytes received for the idle timeout
    HTTP_ERR_TOO_LARGE,  //  body over max_body, or headers over their limits
    HTTP_ERR_ABORTED,    //  on_response or on_data asked to stop
    HTTP_ERR_NETWORK,    //  connection broke while sending or receiving
    HTTP_ERR_PROTOCOL,   //  malformed response, too many redirects
    HTTP_ERR_INTERNAL    //  anything else (out of memory, curl failure)
} http_error_t;

//  Called once when the final response's status and headers are in (interim 1xx
//  responses and followed redirects are skipped). Return non-zero to abort: the
//  request then ends with HTTP_ERR_ABORTED.
typedef int (http_response_fn) (http_response_t *response, void *arg);

//  Called for each piece of a streamed body as it arrives. Return non-zero to
//  abort: the request then ends with HTTP_ERR_ABORTED.
typedef int (http_data_fn) (http_response_t *response, const char *data, size_t size,
                            void *arg);

//  Called once when the request ends, successfully or not. The response and what
//  it points to is freed when this returns (see http_response_take_body).
typedef void (http_done_fn) (http_response_t *response, void *arg);

//  Create a request; method is GET, POST, PUT, PATCH, DELETE, HEAD or another
//  token, url is absolute http:// or https://. Both are copied.
http_request_t *http_request_new (const char *method, const char *url);
void http_request_destroy (http_request_t **self_p);

//  Add a header. Returns -1 when the name is not a token or either part holds CR,
//  LF or NUL (nothing is added then).
int http_request_add_header (http_request_t *self, const char *name, const char *value)
    __attribute__ ((warn_unused_result));

//  Set the body (copied) and, when not NULL, its Content-Type.
void http_request_set_body (http_request_t *self, const void *data, size_t size,
                            const char *content_type);

//  Timeouts in ms, 0 for none. total: the whole transfer (default 30 s); connect:
//  until the connection is up (default 10 s); idle: no byte received for that
//  long, counted from the start and reset by every header or body byte (default
//  none; set it on streams).
void http_request_set_timeout (http_request_t *self, int64_t total_ms);
void http_request_set_connect_timeout (http_request_t *self, int64_t connect_ms);
void http_request_set_idle_timeout (http_request_t *self, int64_t idle_ms);

//  Largest body accepted, in bytes; 0 for no limit. Default 8 MiB when buffered,
//  no limit when streamed.
void http_request_set_max_body (http_request_t *self, size_t max_body);

//  Follow up to max redirects (default 0: a 3xx is the response).
void http_request_set_follow (http_request_t *self, int max_redirects);

//  Request id written on log lines about this request (copied).
void http_request_set_request_id (http_request_t *self, const char *request_id);

//  Set the callbacks; on_response and on_data may be NULL. With on_data the
//  body is streamed to it and not buffered.
void http_request_set_callbacks (http_request_t *self, http_response_fn *on_response,
                                 http_data_fn *on_data, http_done_fn *on_done, void *arg);

//  ---------------------------------------------------------------------------
//  Responses, as callbacks see them

//  Id http_client_send returned for this request.
uint64_t http_response_id (http_response_t *self);

//  HTTP status, 0 when no response arrived.
long http_response_status (http_response_t *self);

//  How the transfer ended, and a human text for it ("" when HTTP_OK).
http_error_t http_response_error (http_response_t *self);
const char *http_response_error_text (http_response_t *self);

//  Value of the first header with this name (any case), or NULL.
const char *http_response_header (http_response_t *self, const char *name);

//  Number of headers, and the name and value of the index-th, in arrival order.
size_t http_response_header_count (http_response_t *self);
const char *http_response_header_name (http_response_t *self, size_t index);
const char *http_response_header_value (http_response_t *self, size_t index);

//  Seconds a Retry-After header asks to wait (delta-seconds or HTTP date), or -1
//  when there is none or it does not parse.
int64_t http_response_retry_after (http_response_t *self);

//  Buffered body (NUL-terminated, may hold NULs) and its size; "" when streamed.
const char *http_response_body (http_response_t *self);
size_t http_response_body_size (http_response_t *self);

//  Take the buffered body, NUL-terminated; the caller frees it. NULL when empty.
char *http_response_take_body (http_response_t *self, size_t *size_p);

//  Milliseconds from start to end of the transfer, and bytes of body received.
int64_t http_response_elapsed (http_response_t *self);
size_t http_response_received (http_response_t *self);

//  Short name of an error code, e.g. "idle_timeout".
const char *http_error_name (http_error_t error);

void http_request_test (bool verbose);

#endif
