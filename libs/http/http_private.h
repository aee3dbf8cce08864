/*  http_private: internals shared by http_request and http_client (the request
    and response structures). Not part of the library's interface.               */
#ifndef HTTP_PRIVATE_H_INCLUDED
#define HTTP_PRIVATE_H_INCLUDED

#include "http_request.h"

#include <curl/curl.h>
#include <stdbool.h>

#include "core_log.h"

#define S_MAX_HEADERS 128               //  headers kept per response
#define S_MAX_HEADER_BYTES (64 * 1024)  //  bytes of headers kept per response

typedef struct {
    char *name;   //  header name as received
    char *value;  //  value, trimmed
} s_header_t;

struct _http_response_t {
    uint64_t id;           //  request id
    long status;           //  HTTP status, 0 before one arrived
    http_error_t error;    //  how the transfer ended
    char *error_text;      //  text for error, NULL when none
    s_header_t *headers;   //  headers of the final response
    size_t header_count;   //  entries used in headers
    size_t header_room;    //  entries allocated (grown as headers come)
    size_t header_bytes;   //  bytes of names and values held
    char *body;            //  buffered body, NUL-terminated
    size_t body_size;      //  bytes in body
    size_t body_capacity;  //  bytes allocated for body
    size_t received;       //  body bytes received, streamed or not
    int64_t started;       //  zclock_mono when the transfer started
    int64_t ended;         //  zclock_mono when it ended
};

struct _http_request_t {
    char *method;                   //  request method
    char *url;                      //  absolute URL
    struct curl_slist *headers;     //  "Name: value" lines
    char *body;                     //  body bytes, NULL when none
    size_t body_size;               //  bytes in body
    char *content_type;             //  Content-Type of body, or NULL
    int64_t timeout_ms;             //  total timeout, 0 for none
    int64_t connect_ms;             //  connect timeout, 0 for none
    int64_t idle_ms;                //  idle timeout, 0 for none
    size_t max_body;                //  body limit, 0 for none
    bool max_body_set;              //  max_body was set by the caller
    int follow;                     //  redirects to follow
    char *request_id;               //  for log lines, or NULL
    http_response_fn *on_response;  //  headers are in, or NULL
    http_data_fn *on_data;          //  streamed body piece, or NULL
    http_done_fn *on_done;          //  transfer ended, or NULL
    void *arg;                      //  argument of the callbacks
};

//  Free and forget the response's headers (a new response began).
void http_response_clear_headers (http_response_t *self);

//  One transfer: a request, its curl easy handle and the response being built
//  (http_transfer.c). http_client keeps them in its active list or its queue.
typedef struct _http_transfer_t http_transfer_t;
struct _http_transfer_t {
    http_request_t *request;       //  what was asked
    http_response_t response;      //  what came back
    CURL *easy;                    //  curl handle
    char *log_url;                 //  URL without query, for logs
    char errbuf[CURL_ERROR_SIZE];  //  curl's detailed error text
    http_transfer_t *prev;         //  in the active list or the queue
    http_transfer_t *next;         //  in the active list or the queue
    bool active;                   //  added to the multi handle
    bool headers_done;             //  final headers are in, on_response ran
    bool cancelled;                //  cancelled: no more callbacks
    bool aborted;                  //  a callback asked to stop
    bool too_large;                //  body or headers over the limits
    int64_t last_activity;         //  zclock_mono of the last byte received
    const int64_t *clock;          //  zclock_mono as curl's current call began (the
                                   //  client's: one reading for all a call brings),
                                   //  or NULL: read the clock
};

//  Build a transfer with this id and its curl handle, taking the request; NULL
//  (and the request destroyed) when the URL is not an absolute http(s) URL.
http_transfer_t *http_transfer_new (core_log_t *log, uint64_t id,
                                    http_request_t **request_p);
void http_transfer_destroy (http_transfer_t **self_p);

//  Map curl's result for this transfer to ours.
http_error_t http_transfer_error (http_transfer_t *self, CURLcode code);

void http_transfer_test (bool verbose);

#endif
