/*  redis_client: hiredis async connection with reconnects, timeouts and a bounded
    number of commands in flight (see redis_client.h).

    The event hooks hiredis calls (addRead, delRead, addWrite, delWrite, cleanup) only
    record what it wants; s_sync then makes the zloop poller match, ending it and
    registering it again when the events or the fd change (zloop has no "modify").
    Commands are answered in order, so the oldest command is the only one whose
    deadline needs checking; when it passes, the connection is reset: every pending
    command fails, and the client reconnects at once.                              */
#include "redis_client.h"

#include "core_waiter.h"

#include <assert.h>
#include <czmq.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { S_DOWN, S_CONNECTING, S_CONNECTED } s_state_t;

typedef struct _s_cmd_t s_cmd_t;
struct _s_cmd_t {
    redis_client_t *client;  //  owner
    redis_reply_fn *fn;      //  user callback
    void *arg;               //  its argument
    int64_t deadline;        //  monotonic ms
    s_cmd_t *prev, *next;    //  pending list, oldest first
};

struct _redis_client_t {
    core_log_t *log;           //  borrowed logger
    char *host;                //  server address
    int port;                  //  server port
    char *user;                //  AUTH user or NULL
    char *password;            //  AUTH password or NULL
    int db;                    //  SELECT db when not 0
    size_t pending_max;        //  commands in flight limit
    int command_timeout_ms;    //  per command
    int connect_timeout_ms;    //  per attempt
    int backoff_min_ms;        //  first reconnect delay
    int backoff_max_ms;        //  reconnect delay cap
    int backoff_ms;            //  next reconnect delay
    s_state_t state;           //  connection state
    redisAsyncContext *ac;     //  hiredis context, NULL when DOWN
    int64_t retry_at;          //  DOWN: reconnect then
    int64_t connect_deadline;  //  CONNECTING: give up then
    bool want_read;            //  hiredis wants input events
    bool want_write;           //  hiredis wants output events
    s_cmd_t *oldest, *newest;  //  pending commands
    size_t pending;            //  their count
    const char *closing;       //  reason given to callbacks while we reset
    char reason[256];          //  why the connection went down
    char error[320];           //  why the last command was refused
    zloop_t *loop;             //  attached zloop or NULL
    int timer_id;              //  zloop timer
    int reg_fd;                //  fd registered in zloop, -1 when none
    int reg_events;            //  events registered
};

static int64_t
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_on_fd (zloop_t *loop, zmq_pollitem_t *item, void *arg);

//  Make the zloop poller match what hiredis wants.
static void
s_sync (redis_client_t *self)
{
    if (!self->loop)
        return;
    int fd = self->ac ? self->ac->c.fd : -1;
    int events = (self->want_read ? ZMQ_POLLIN : 0)
                 | (self->want_write ? ZMQ_POLLOUT : 0);
    if (fd < 0)
        events = 0;
    if (fd == self->reg_fd && events == self->reg_events)
        return;
    if (self->reg_fd >= 0) {
        zmq_pollitem_t old = {NULL, self->reg_fd, 0, 0};
        zloop_poller_end (self->loop, &old);
        self->reg_fd = -1;
        self->reg_events = 0;
    }
    if (fd >= 0 && events) {
        zmq_pollitem_t item = {NULL, fd, (short) events, 0};
        if (zloop_poller (self->loop, &item, s_on_fd, self) == 0) {
            zloop_poller_set_tolerant (self->loop, &item);
            self->reg_fd = fd;
            self->reg_events = events;
        }
        else
            core_log_error (self->log, NULL, "redis_client: zloop_poller failed on fd %d",
                            fd);
    }
}

static void
s_add_read (void *data)
{
    redis_client_t *self = (redis_client_t *) data;
    self->want_read = true;
    s_sync (self);
}

static void
s_del_read (void *data)
{
    redis_client_t *self = (redis_client_t *) data;
    self->want_read = false;
    s_sync (self);
}

static void
s_add_write (void *data)
{
    redis_client_t *self = (redis_client_t *) data;
    self->want_write = true;
    s_sync (self);
}

static void
s_del_write (void *data)
{
    redis_client_t *self = (redis_client_t *) data;
    self->want_write = false;
    s_sync (self);
}

//  hiredis is about to close the fd: drop the poller first.
static void
s_cleanup (void *data)
{
    redis_client_t *self = (redis_client_t *) data;
    self->want_read = self->want_write = false;
    if (self->loop && self->reg_fd >= 0) {
        zmq_pollitem_t old = {NULL, self->reg_fd, 0, 0};
        zloop_poller_end (self->loop, &old);
    }
    self->reg_fd = -1;
    self->reg_events = 0;
}

//  The connection is gone (or going): schedule a reconnect.
static void
s_went_down (redis_client_t *self, const char *why, bool failure)
{
    if (self->state != S_DOWN)
        core_log_warn (self->log, NULL, "redis_client: %s:%d down: %s", self->host,
                       self->port, why);
    snprintf (self->reason, sizeof self->reason, "%s", why);
    self->ac = NULL;
    self->state = S_DOWN;
    if (failure) {
        self->retry_at = s_now () + self->backoff_ms;
        self->backoff_ms *= 2;
        if (self->backoff_ms > self->backoff_max_ms)
            self->backoff_ms = self->backoff_max_ms;
    }
    else
        self->retry_at = s_now ();
}

static void
s_unlink (redis_client_t *self, s_cmd_t *cmd)
{
    if (cmd->prev)
        cmd->prev->next = cmd->next;
    else
        self->oldest = cmd->next;
    if (cmd->next)
        cmd->next->prev = cmd->prev;
    else
        self->newest = cmd->prev;
    self->pending--;
}

static void
s_on_reply (redisAsyncContext *ac, void *reply_p, void *privdata)
{
    s_cmd_t *cmd = (s_cmd_t *) privdata;
    redis_client_t *self = cmd->client;
    redisReply *reply = (redisReply *) reply_p;
    s_unlink (self, cmd);
    if (!reply) {
        //  the context is being freed; make sure nothing is sent to it any more
        char why[256];
        snprintf (why, sizeof why, "%s",
                  self->closing   ? self->closing
                  : ac->errstr[0] ? ac->errstr
                                  : "connection closed");
        if (self->ac == ac)
            s_went_down (self, why, true);
        char message[320];
        snprintf (message, sizeof message, "redis: %s", why);
        cmd->fn (NULL, message, cmd->arg);
    }
    else if (reply->type == REDIS_REPLY_ERROR)
        cmd->fn (reply, reply->str ? reply->str : "redis error", cmd->arg);
    else
        cmd->fn (reply, NULL, cmd->arg);
    free (cmd);
}

static void
s_on_connect (const redisAsyncContext *ac, int status)
{
    redis_client_t *self = (redis_client_t *) ac->ev.data;
    if (self->ac != ac)
        return;
    if (status != REDIS_OK) {
        s_went_down (self, ac->errstr[0] ? ac->errstr : "connect failed", true);
        return;
    }
    self->state = S_CONNECTED;
    self->backoff_ms = self->backoff_min_ms;
    core_log_debug (self->log, NULL, "redis_client: connected to %s:%d", self->host,
                    self->port);
}

static void
s_on_disconnect (const redisAsyncContext *ac, int status)
{
    redis_client_t *self = (redis_client_t *) ac->ev.data;
    if (self->ac == ac)
        s_went_down (self, ac->errstr[0] ? ac->errstr : "disconnected",
                     status != REDIS_OK);
}

static void
s_on_setup_reply (redisAsyncContext *ac, void *reply_p, void *privdata)
{
    redis_client_t *self = (redis_client_t *) privdata;
    redisReply *reply = (redisReply *) reply_p;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        core_log_error (self->log, NULL, "redis_client: %s: %s", self->host,
                        reply->str ? reply->str : "setup command failed");
}

static void
s_connect (redis_client_t *self)
{
    redisAsyncContext *ac = redisAsyncConnect (self->host, self->port);
    if (!ac) {
        s_went_down (self, "out of memory", true);
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf (why, sizeof why, "%s", ac->errstr);
        redisAsyncFree (ac);
        s_went_down (self, why, true);
        return;
    }
    self->ac = ac;
    self->state = S_CONNECTING;
    self->connect_deadline = s_now () + self->connect_timeout_ms;
    ac->ev.data = self;
    ac->ev.addRead = s_add_read;
    ac->ev.delRead = s_del_read;
    ac->ev.addWrite = s_add_write;
    ac->ev.delWrite = s_del_write;
    ac->ev.cleanup = s_cleanup;
    redisAsyncSetDisconnectCallback (ac, s_on_disconnect);
    redisAsyncSetConnectCallback (ac, s_on_connect);  //  asks for write: connect done
    //  queued ahead of any user command
    if (self->password) {
        if (self->user)
            redisAsyncCommand (ac, s_on_setup_reply, self, "AUTH %s %s", self->user,
                               self->password);
        else
            redisAsyncCommand (ac, s_on_setup_reply, self, "AUTH %s", self->password);
    }
    if (self->db)
        redisAsyncCommand (ac, s_on_setup_reply, self, "SELECT %d", self->db);
}

//  Reset the connection (we decided to); pending commands fail with why.
static void
s_reset (redis_client_t *self, const char *why, bool failure)
{
    redisAsyncContext *ac = self->ac;
    s_went_down (self, why, failure);
    if (ac) {
        self->closing = why;
        redisAsyncFree (ac);
        self->closing = NULL;
    }
}

void
redis_client_tick (redis_client_t *self)
{
    assert (self);
    int64_t now = s_now ();
    if (self->state == S_DOWN && now >= self->retry_at)
        s_connect (self);
    else if (self->state == S_CONNECTING && now >= self->connect_deadline)
        s_reset (self, "connect timed out", true);
    else if (self->oldest && now >= self->oldest->deadline) {
        char why[128];
        snprintf (why, sizeof why, "command timed out after %d ms; connection reset",
                  self->command_timeout_ms);
        s_reset (self, why, false);
    }
    s_sync (self);
}

static int
s_on_fd (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    redis_client_t *self = (redis_client_t *) arg;
    short revents = 0;
    if (item->revents & ZMQ_POLLIN)
        revents |= POLLIN;
    if (item->revents & ZMQ_POLLOUT)
        revents |= POLLOUT;
    if (item->revents & ZMQ_POLLERR)
        revents |= POLLERR;
    redis_client_handle (self, revents);
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    redis_client_tick ((redis_client_t *) arg);
    return 0;
}

void
redis_client_handle (redis_client_t *self, short revents)
{
    assert (self);
    redisAsyncContext *ac = self->ac;
    if (ac && (revents & (POLLIN | POLLERR | POLLHUP)))
        redisAsyncHandleRead (ac);
    //  the context may have been freed by the read: look again
    ac = self->ac;
    if (ac && (revents & (POLLOUT | POLLERR | POLLHUP)))
        redisAsyncHandleWrite (ac);
    s_sync (self);
}

bool
redis_client_pollfd (redis_client_t *self, struct pollfd *pfd)
{
    assert (self);
    assert (pfd);
    if (!self->ac || self->ac->c.fd < 0 || (!self->want_read && !self->want_write))
        return false;
    pfd->fd = self->ac->c.fd;
    pfd->events = (short) ((self->want_read ? POLLIN : 0)
                           | (self->want_write ? POLLOUT : 0));
    pfd->revents = 0;
    return true;
}

//  Parse redis://[[user]:password@]host[:port][/db]; returns 0 or -1.
static int
s_parse_url (redis_client_t *self, const char *url)
{
    const char *prefix = "redis://";
    if (!url || strncmp (url, prefix, strlen (prefix)) != 0)
        return -1;
    const char *rest = url + strlen (prefix);
    const char *slash = strchr (rest, '/');
    const char *end = slash ? slash : rest + strlen (rest);
    const char *at = NULL;
    for (const char *c = rest; c < end; c++)
        if (*c == '@')
            at = c;
    if (at) {
        const char *colon = memchr (rest, ':', (size_t) (at - rest));
        if (colon) {
            if (colon > rest)
                self->user = strndup (rest, (size_t) (colon - rest));
            self->password = strndup (colon + 1, (size_t) (at - colon - 1));
        }
        else
            self->password = strndup (rest, (size_t) (at - rest));
        rest = at + 1;
    }
    const char *colon = memchr (rest, ':', (size_t) (end - rest));
    const char *host_end = colon ? colon : end;
    if (host_end == rest || host_end - rest > 255)
        return -1;
    self->host = strndup (rest, (size_t) (host_end - rest));
    self->port = 6379;
    if (colon) {
        char *stop = NULL;
        long port = strtol (colon + 1, &stop, 10);
        if (stop != end || port < 1 || port > 65535)
            return -1;
        self->port = (int) port;
    }
    if (slash && slash[1]) {
        char *stop = NULL;
        long db = strtol (slash + 1, &stop, 10);
        if (*stop || db < 0 || db > 65535)
            return -1;
        self->db = (int) db;
    }
    return 0;
}

redis_client_t *
redis_client_new (const char *url, core_log_t *log)
{
    assert (log);
    redis_client_t *self = calloc (1, sizeof (redis_client_t));
    assert (self);
    self->log = log;
    if (s_parse_url (self, url)) {
        core_log_error (
            log, NULL,
            "redis_client: bad URL (want redis://[:password@]host[:port][/db])");
        self->loop = NULL;
        redis_client_destroy (&self);
        return NULL;
    }
    self->pending_max = 1000;
    self->command_timeout_ms = 5000;
    self->connect_timeout_ms = 3000;
    self->backoff_min_ms = 100;
    self->backoff_max_ms = 5000;
    self->backoff_ms = self->backoff_min_ms;
    self->reg_fd = -1;
    self->state = S_DOWN;
    s_connect (self);
    return self;
}

void
redis_client_destroy (redis_client_t **self_p)
{
    assert (self_p);
    redis_client_t *self = *self_p;
    if (!self)
        return;
    redis_client_detach (self);
    if (self->ac) {
        self->state = S_DOWN;  //  deliberate: no "down" warning
        s_reset (self, "client destroyed", false);
    }
    assert (self->pending == 0);
    free (self->host);
    free (self->user);
    free (self->password);
    free (self);
    *self_p = NULL;
}

void
redis_client_set_pending_max (redis_client_t *self, size_t pending_max)
{
    assert (self);
    self->pending_max = pending_max > 0 ? pending_max : 1;
}

void
redis_client_set_command_timeout (redis_client_t *self, int timeout_ms)
{
    assert (self);
    self->command_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

void
redis_client_set_connect_timeout (redis_client_t *self, int timeout_ms)
{
    assert (self);
    self->connect_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

void
redis_client_set_backoff (redis_client_t *self, int min_ms, int max_ms)
{
    assert (self);
    self->backoff_min_ms = min_ms > 0 ? min_ms : 1;
    self->backoff_max_ms = max_ms >= self->backoff_min_ms ? max_ms : self->backoff_min_ms;
    self->backoff_ms = self->backoff_min_ms;
}

int
redis_client_attach (redis_client_t *self, zloop_t *loop)
{
    assert (self);
    assert (loop);
    if (self->loop)
        return -1;
    self->timer_id = zloop_timer (loop, REDIS_CLIENT_TICK_MS, 0, s_on_timer, self);
    if (self->timer_id < 0)
        return -1;
    self->loop = loop;
    s_sync (self);
    return 0;
}

void
redis_client_detach (redis_client_t *self)
{
    assert (self);
    if (!self->loop)
        return;
    if (self->reg_fd >= 0) {
        zmq_pollitem_t old = {NULL, self->reg_fd, 0, 0};
        zloop_poller_end (self->loop, &old);
        self->reg_fd = -1;
        self->reg_events = 0;
    }
    zloop_timer_end (self->loop, self->timer_id);
    self->loop = NULL;
}

//  Checks shared by both command forms; returns a new command or NULL (refused).
static s_cmd_t *
s_cmd_new (redis_client_t *self, redis_reply_fn *fn, void *arg)
{
    if (!fn) {
        snprintf (self->error, sizeof self->error, "no callback");
        return NULL;
    }
    if (!self->ac) {
        snprintf (self->error, sizeof self->error, "redis unavailable: %s",
                  self->reason[0] ? self->reason : "not connected");
        return NULL;
    }
    if (self->pending >= self->pending_max) {
        snprintf (self->error, sizeof self->error,
                  "too many pending redis commands (%zu)", self->pending_max);
        return NULL;
    }
    s_cmd_t *cmd = calloc (1, sizeof (s_cmd_t));
    assert (cmd);
    cmd->client = self;
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->deadline = s_now () + self->command_timeout_ms;
    return cmd;
}

static void
s_cmd_link (redis_client_t *self, s_cmd_t *cmd)
{
    cmd->prev = self->newest;
    if (self->newest)
        self->newest->next = cmd;
    else
        self->oldest = cmd;
    self->newest = cmd;
    self->pending++;
}

int
redis_client_command (redis_client_t *self, redis_reply_fn *fn, void *arg,
                      const char *format, ...)
{
    assert (self);
    s_cmd_t *cmd = s_cmd_new (self, fn, arg);
    if (!cmd)
        return -1;
    va_list args;
    va_start (args, format);
    int rc = redisvAsyncCommand (self->ac, s_on_reply, cmd, format, args);
    va_end (args);
    if (rc != REDIS_OK) {
        snprintf (self->error, sizeof self->error,
                  "redis command refused (bad format or closing)");
        free (cmd);
        return -1;
    }
    s_cmd_link (self, cmd);
    s_sync (self);
    return 0;
}

int
redis_client_command_argv (redis_client_t *self, redis_reply_fn *fn, void *arg, int argc,
                           const char **argv, const size_t *argvlen)
{
    assert (self);
    if (argc < 1 || !argv) {
        snprintf (self->error, sizeof self->error, "empty redis command");
        return -1;
    }
    s_cmd_t *cmd = s_cmd_new (self, fn, arg);
    if (!cmd)
        return -1;
    if (redisAsyncCommandArgv (self->ac, s_on_reply, cmd, argc, argv, argvlen)
        != REDIS_OK) {
        snprintf (self->error, sizeof self->error, "redis command refused (closing)");
        free (cmd);
        return -1;
    }
    s_cmd_link (self, cmd);
    s_sync (self);
    return 0;
}

const char *
redis_client_error (redis_client_t *self)
{
    assert (self);
    return self->error;
}

bool
redis_client_healthy (redis_client_t *self)
{
    assert (self);
    return self->state == S_CONNECTED;
}

size_t
redis_client_pending (redis_client_t *self)
{
    assert (self);
    return self->pending;
}

//  --------------------------------------------------------------------------
//  Selftest: needs a real server in CHORUS_TEST_REDIS_URL.

typedef struct {
    int done;           //  callbacks seen
    int ok;             //  without error
    int failed;         //  with error
    int no_reply;       //  with error and no reply at all
    long long integer;  //  last integer reply
    char text[128];     //  last string/status reply
    char error[256];    //  last error
    int out_of_order;   //  pipelined INCR replies not in sequence
} s_tally_t;

static void
s_tally_fn (redisReply *reply, const char *error, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    tally->done++;
    if (error) {
        tally->failed++;
        if (!reply)
            tally->no_reply++;
        snprintf (tally->error, sizeof tally->error, "%s", error);
        return;
    }
    tally->ok++;
    if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer != tally->integer + 1)
            tally->out_of_order++;
        tally->integer = reply->integer;
    }
    else if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
        snprintf (tally->text, sizeof tally->text, "%.*s", (int) reply->len, reply->str);
}


static bool
s_is_healthy (void *arg)
{
    return redis_client_healthy ((redis_client_t *) arg);
}

//  A blocking side connection to the same server, for the test's own commands.
static redisContext *
s_side_connect (const char *url)
{
    redis_client_t parsed = {0};
    assert (s_parse_url (&parsed, url) == 0);
    redisContext *ctx = redisConnect (parsed.host, parsed.port);
    assert (ctx && !ctx->err);
    free (parsed.host);
    free (parsed.user);
    free (parsed.password);
    return ctx;
}

void
redis_client_test (bool verbose)
{
    printf (" * redis_client: ");
    const char *url = getenv ("CHORUS_TEST_REDIS_URL");
    if (!url || !*url) {
        fprintf (stderr,
                 "\nCHORUS_TEST_REDIS_URL is not set: these tests need a real "
                 "server. Run them through `tools/chorus test`, or start one with "
                 "tools/dev/redis start and export CHORUS_TEST_REDIS_URL=<its URL>.\n");
        exit (1);
    }
    core_log_t *log = core_log_new ("redis_client_test", verbose ? "debug" : "off");
    zloop_t *loop = zloop_new ();
    assert (loop);
    core_waiter_t *waiter = core_waiter_new (loop);
    char key[64];
    snprintf (key, sizeof key, "redis_client_test:%d", (int) getpid ());

    //  URL parsing
    redis_client_t parsed = {0};
    assert (s_parse_url (&parsed, "redis://u:secret@10.0.0.1:6380/3") == 0);
    assert (streq (parsed.host, "10.0.0.1") && parsed.port == 6380 && parsed.db == 3);
    assert (streq (parsed.user, "u") && streq (parsed.password, "secret"));
    free (parsed.host);
    free (parsed.user);
    free (parsed.password);
    assert (redis_client_new ("http://127.0.0.1", log) == NULL);
    assert (redis_client_new ("redis://127.0.0.1:99999/0", log) == NULL);
    assert (redis_client_new ("redis://:/0", log) == NULL);

    //  @selftest
    //  Connect inside a zloop, set and get, error replies, binary-safe argv
    redis_client_t *client = redis_client_new (url, log);
    assert (client);
    assert (redis_client_attach (client, loop) == 0);
    assert (core_waiter_wait (waiter, s_is_healthy, client, 5000));
    s_tally_t tally = {0};
    assert (redis_client_command (client, s_tally_fn, &tally, "SET %s %s", key, "hello")
            == 0);
    assert (redis_client_command (client, s_tally_fn, &tally, "GET %s", key) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 2, 5000));
    assert (tally.ok == 2 && streq (tally.text, "hello"));
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "LPUSH %s x", key) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && tally.no_reply == 0
            && strstr (tally.error, "WRONGTYPE"));
    const char *argv[] = {"SET", key, "a\0b"};
    size_t argvlen[] = {3, strlen (key), 3};
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command_argv (client, s_tally_fn, &tally, 3, argv, argvlen)
            == 0);
    assert (redis_client_command (client, s_tally_fn, &tally, "STRLEN %s", key) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 2, 5000));
    assert (tally.ok == 2 && tally.integer == 3);

    //  Pipelining: 5000 commands in flight at once, answered in order
    redis_client_set_pending_max (client, 5000);
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "DEL %s", key) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    memset (&tally, 0, sizeof tally);
    for (int i = 0; i < 5000; i++)
        assert (redis_client_command (client, s_tally_fn, &tally, "INCR %s", key) == 0);
    assert (redis_client_pending (client) == 5000);
    //  one more is refused at once
    assert (redis_client_command (client, s_tally_fn, &tally, "PING") == -1);
    assert (strstr (redis_client_error (client), "too many pending"));
    assert (core_waiter_wait_count (waiter, &tally.done, 5000, 10000));
    assert (tally.ok == 5000 && tally.integer == 5000 && tally.out_of_order == 0);
    assert (redis_client_pending (client) == 0);

    //  The server kills our connection: commands fail, then the client is back.
    //  (CLIENT KILL ID, not TYPE normal: other tests may share this server.)
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "CLIENT ID") == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && tally.integer > 0);
    redisContext *side = s_side_connect (url);
    redisReply *killed = redisCommand (side, "CLIENT KILL ID %lld", tally.integer);
    assert (killed && killed->type == REDIS_REPLY_INTEGER && killed->integer == 1);
    freeReplyObject (killed);
    int attempts = 0;
    memset (&tally, 0, sizeof tally);
    int64_t deadline = s_now () + 5000;
    while (tally.ok == 0 && s_now () < deadline) {
        attempts++;
        int before = tally.done;
        if (redis_client_command (client, s_tally_fn, &tally, "PING") == 0)
            assert (core_waiter_wait_count (waiter, &tally.done, before + 1, 5000));
        else {
            //  down: refused at once; let the loop reconnect
            core_waiter_wait (waiter, s_is_healthy, client, 1000);
        }
    }
    assert (tally.ok == 1 && streq (tally.text, "PONG"));
    assert (redis_client_healthy (client));

    //  A command past its timeout fails, the connection is reset and comes back
    redis_client_set_command_timeout (client, 200);
    memset (&tally, 0, sizeof tally);
    int64_t started = s_now ();
    assert (redis_client_command (client, s_tally_fn, &tally, "BLPOP %s:empty 5", key)
            == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && tally.no_reply == 1
            && strstr (tally.error, "timed out"));
    assert (s_now () - started < 2000);
    assert (core_waiter_wait (waiter, s_is_healthy, client, 5000));
    redis_client_set_command_timeout (client, 5000);
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "DEL %s", key) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1);
    redis_client_destroy (&client);
    assert (client == NULL);

    //  Outside zloop: poll(2) over redis_client_pollfd, _handle and _tick
    client = redis_client_new (url, log);
    assert (client);
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "ECHO %s", "polled") == 0);
    deadline = s_now () + 5000;
    while (tally.done == 0 && s_now () < deadline) {
        struct pollfd pfd;
        if (redis_client_pollfd (client, &pfd)
            && poll (&pfd, 1, REDIS_CLIENT_TICK_MS) > 0)
            redis_client_handle (client, pfd.revents);
        redis_client_tick (client);
    }
    assert (tally.ok == 1 && streq (tally.text, "polled"));
    //  destroying fails what is still pending
    memset (&tally, 0, sizeof tally);
    assert (redis_client_command (client, s_tally_fn, &tally, "PING") == 0);
    redis_client_destroy (&client);
    assert (tally.failed == 1 && strstr (tally.error, "destroyed"));

    //  An unreachable server: the error callback comes, nothing hangs
    client = redis_client_new ("redis://127.0.0.1:1/0", log);
    assert (client);
    redis_client_set_backoff (client, 50, 200);
    assert (redis_client_attach (client, loop) == 0);
    memset (&tally, 0, sizeof tally);
    if (redis_client_command (client, s_tally_fn, &tally, "PING") == 0)
        assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    else
        tally.failed = 1;  //  refused at once: connect failed immediately
    assert (tally.failed == 1 && tally.ok == 0);
    assert (!redis_client_healthy (client));
    //  while down, commands are refused at once with the reason
    zclock_sleep (10);
    int rc = redis_client_command (client, s_tally_fn, &tally, "PING");
    if (rc == -1)
        assert (strstr (redis_client_error (client), "unavailable"));
    else {
        //  caught between attempts: the reconnect attempt fails it
        assert (core_waiter_wait_count (waiter, &tally.done, tally.done + 1, 5000));
        assert (tally.ok == 0);
    }
    redis_client_destroy (&client);
    //  @end

    redisFree (side);
    core_waiter_destroy (&waiter);
    zloop_destroy (&loop);
    core_log_destroy (&log);
    printf ("OK\n");
}
