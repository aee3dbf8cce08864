/*  http_client: outbound HTTP for services (LLM provider streams, webhooks, OAuth
    token calls) on curl's multi interface, driven from the service's zloop: curl's
    sockets become zloop pollers and its timer a zloop timer, so a thousand
    concurrent streams need no threads and the loop never blocks (DNS runs in
    curl's threaded resolver). Connections are kept and reused per client.

    A request is built with http_request_*, handed to http_client_send, and ends
    in exactly one on_done call, unless it is cancelled (http_client_cancel) or the
    client is destroyed first, after which it makes no further calls at all.
    Without on_data the body is buffered (up to max_body); with on_data it is
    streamed piece by piece as it arrives. Callbacks run on the loop's thread.     */
#ifndef HTTP_CLIENT_H_INCLUDED
#define HTTP_CLIENT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_log.h"
#include "http_request.h"

typedef struct _http_client_t http_client_t;
//  ---------------------------------------------------------------------------
//  Client

//  Create a client that logs to log (borrowed, may be NULL).
http_client_t *http_client_new (core_log_t *log);

//  Destroy the client: transfers in flight and queued are dropped without
//  callbacks. Call it while its loop is not running, or from one of the loop's
//  reader or poller handlers (a timer handler should then return -1). Never from
//  inside one of the client's own callbacks.
void http_client_destroy (http_client_t **self_p);

//  Attach the client to the loop that will drive it (once, before sending).
int http_client_attach (http_client_t *self, zloop_t *loop)
    __attribute__ ((warn_unused_result));

//  Limits: transfers running at once (default 256), more wait in a queue of at
//  most max_queued (default 1024; 0 refuses what cannot start at once).
void http_client_set_max_active (http_client_t *self, size_t max_active);
void http_client_set_max_queued (http_client_t *self, size_t max_queued);

//  Connection limits: per host (0: none, the default), in all (0: none) and kept
//  idle in the cache for reuse (default 64).
void http_client_set_max_host_connections (http_client_t *self, long max);
void http_client_set_max_total_connections (http_client_t *self, long max);
void http_client_set_max_cached_connections (http_client_t *self, long max);

//  How often idle timeouts are checked, in ms (default 100).
void http_client_set_idle_resolution (http_client_t *self, int64_t ms);

//  Called once curl has handed over all that one socket event or timer brought
//  (every on_data of that pass), before the transfers that ended get their
//  on_done: a streaming user can join the pieces of one pass into one event.
//  One function per client (NULL: none).
typedef void (http_pass_fn) (http_client_t *client, void *arg);
void http_client_set_pass_fn (http_client_t *self, http_pass_fn *fn, void *arg);

//  Start a request; takes ownership of it and NULLs the caller's pointer. Returns
//  its id (> 0), or 0 when it was refused (client not attached, URL not http(s),
//  queue full); a refused request makes no callback. May be called from any of
//  the client's callbacks.
uint64_t http_client_send (http_client_t *self, http_request_t **request_p)
    __attribute__ ((warn_unused_result));

//  Abort a queued or running request at once; its connection is closed and none
//  of its callbacks runs again (on_done included). Returns 0, or -1 when no such
//  request is pending (it already ended). May be called from any callback,
//  including the request's own on_response and on_data.
int http_client_cancel (http_client_t *self, uint64_t id);

//  Requests running and waiting.
size_t http_client_active (http_client_t *self);
size_t http_client_queued (http_client_t *self);

void http_client_test (bool verbose);

#endif
