/*  redis_client: one asynchronous Redis connection (hiredis async) for a service's
    loop: rate limits, OAuth state, dedupe keys, short caches. Replies go to a
    callback; every accepted command gets exactly one callback, never hangs (command
    timeout), and the number of commands in flight is bounded. The connection comes
    back by itself after a failure, with backoff; while it is down, commands are
    refused at once (Redis holds nothing that cannot wait or be recomputed).

    Loop integration: `redis_client_attach` drives it from a czmq zloop. Any other
    loop (the edge's libwebsockets loop, poll, epoll) asks `redis_client_pollfd` for
    the one fd and events to watch after every call into the client, calls
    `redis_client_handle` when the fd is ready, and `redis_client_tick` at least every
    REDIS_CLIENT_TICK_MS (for libwebsockets: a foreign fd adopted with
    lws_adopt_descriptor_vhost or a lws_sul timer that polls with zero timeout).
    Pub/sub (SUBSCRIBE, MONITOR) is not supported: replies must be one per command. */
#ifndef REDIS_CLIENT_H_INCLUDED
#define REDIS_CLIENT_H_INCLUDED

#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "core_log.h"

typedef struct _redis_client_t redis_client_t;
typedef struct _zloop_t zloop_t;

//  Called once per accepted command. On success error is NULL and reply is the
//  reply. When Redis answers with an error reply, reply is that reply and error is
//  its text. When there is no reply (connection lost, timeout, client destroyed),
//  reply is NULL and error says why. The reply is borrowed: freed after the call.
//  The callback may send commands; it must not destroy the client.
typedef void (redis_reply_fn) (redisReply *reply, const char *error, void *arg);

//  Create a client for url (redis://[[user]:password@]host[:port][/db]) and start
//  connecting without blocking (use an IP address: name lookup would block). Returns
//  NULL when the URL is invalid (logged).
redis_client_t *redis_client_new (const char *url, core_log_t *log);

//  Close the connection; pending commands fail with "client destroyed".
void redis_client_destroy (redis_client_t **self_p);

//  Limits; defaults: 1000 commands in flight, 5000 ms per command, 3000 ms per
//  connection attempt, reconnect backoff 100 ms doubling to 5000 ms.
void redis_client_set_pending_max (redis_client_t *self, size_t pending_max);
void redis_client_set_command_timeout (redis_client_t *self, int timeout_ms);
void redis_client_set_connect_timeout (redis_client_t *self, int timeout_ms);
void redis_client_set_backoff (redis_client_t *self, int min_ms, int max_ms);

//  Drive the client from a zloop (one fd poller, kept in step with what hiredis
//  wants, and one timer). Returns 0 or -1.
int redis_client_attach (redis_client_t *self, zloop_t *loop)
    __attribute__ ((warn_unused_result));

//  Remove the client's poller and timer from its zloop.
void redis_client_detach (redis_client_t *self);

//  Send a command (hiredis format: "SET %s %b", key, value, len). Returns 0 when
//  accepted (fn will be called once, later), -1 when refused at once (not
//  connected, too many pending, bad format): fn is not called; see
//  redis_client_error.
int redis_client_command (redis_client_t *self, redis_reply_fn *fn, void *arg,
                          const char *format, ...)
    __attribute__ ((warn_unused_result, format (printf, 4, 5)));

//  Same with an argument vector (binary-safe; argvlen may be NULL for C strings).
int redis_client_command_argv (redis_client_t *self, redis_reply_fn *fn, void *arg,
                               int argc, const char **argv, const size_t *argvlen)
    __attribute__ ((warn_unused_result));

//  Why the last command was refused (borrowed).
const char *redis_client_error (redis_client_t *self);

//  True when connected (and ready for commands).
bool redis_client_healthy (redis_client_t *self);

//  Commands sent and not yet answered.
size_t redis_client_pending (redis_client_t *self);

//  Loop-agnostic driving: the fd to watch and its events (POLLIN/POLLOUT) in *pfd;
//  returns false when there is nothing to watch (down, waiting to reconnect).
bool redis_client_pollfd (redis_client_t *self, struct pollfd *pfd);

//  The fd is ready with revents (poll(2) terms).
void redis_client_handle (redis_client_t *self, short revents);

//  Run timeouts and reconnects; call at least every REDIS_CLIENT_TICK_MS.
void redis_client_tick (redis_client_t *self);
#define REDIS_CLIENT_TICK_MS 50

void redis_client_test (bool verbose);

#endif
