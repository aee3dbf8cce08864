/*  edge_server: the edge actor: libwebsockets and the bus client in one thread.  */
#include "edge_server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/crypto.h>

#include "edge_context.h"
#include "edge_http.h"
#include "edge_live.h"
#include "edge_openapi.h"
#include "edge_ready.h"
#include "edge_ws.h"

#include "auth_keys.h"

const core_config_option_t edge_server_options[] = {
    {"edge_host", "CHORUS_EDGE_HOST", CORE_CONFIG_STRING, 0, 0, "127.0.0.1",
     "Address the edge listens on (an IP address)"},
    {"edge_port", "CHORUS_EDGE_PORT", CORE_CONFIG_INT, 0, 65535, "8080",
     "HTTP port of the edge (0: any free port)"},
    {"edge_max_body", "CHORUS_EDGE_MAX_BODY", CORE_CONFIG_INT, 0, 1073741824, "1048576",
     "Largest request body in bytes (larger: 413)"},
    {"edge_max_header", "CHORUS_EDGE_MAX_HEADER", CORE_CONFIG_INT, 1024, 65535, "8192",
     "Largest request header block in bytes"},
    {"edge_max_connections", "CHORUS_EDGE_MAX_CONNECTIONS", CORE_CONFIG_INT, 1, 1000000,
     "1024",
     "Most client connections at once (more wait in the listen backlog); chorus-edge "
     "sets its open-file limit to this plus 256"},
    {"edge_stream_queue", "CHORUS_EDGE_STREAM_QUEUE", CORE_CONFIG_INT, 1024, 1073741824,
     "1048576",
     "Bytes queued per SSE stream or WebSocket before a slow client is dropped"},
    {"edge_ws_max_message", "CHORUS_EDGE_WS_MAX_MESSAGE", CORE_CONFIG_INT, 64, 67108864,
     "65536", "Largest WebSocket message accepted, in bytes (larger: close 1009)"},
    {"edge_timeout_ms", "CHORUS_EDGE_TIMEOUT_MS", CORE_CONFIG_INT, 10, 3600000, "30000",
     "Bus deadline of a request made through the edge, in milliseconds"},
    {"edge_sse_keepalive_ms", "CHORUS_EDGE_SSE_KEEPALIVE_MS", CORE_CONFIG_INT, 100,
     3600000, "15000", "Idle time before an SSE stream gets a keepalive comment (ms)"},
    {"edge_idle_timeout_s", "CHORUS_EDGE_IDLE_TIMEOUT_S", CORE_CONFIG_INT, 1, 3600, "30",
     "Seconds an idle keep-alive connection stays open"},
    {"edge_ready_interval_ms", "CHORUS_EDGE_READY_INTERVAL_MS", CORE_CONFIG_INT, 100,
     60000, "2000", "How often readiness is polled over the bus and Redis (ms)"},
    {"edge_drain_ms", "CHORUS_EDGE_DRAIN_MS", CORE_CONFIG_INT, 0, 600000, "10000",
     "On stop, how long requests in flight may take to finish (ms)"},
    {"edge_api_key_cache_ms", "CHORUS_EDGE_API_KEY_CACHE_MS", CORE_CONFIG_INT, 0, 3600000,
     "2000",
     "How long an API key's api_keys.verify answer is used (ms; 0: ask each time)"},
    {"edge_revocation_poll_ms", "CHORUS_EDGE_REVOCATION_POLL_MS", CORE_CONFIG_INT, 50,
     600000, "1000", "How often revoked sessions, users and keys are asked for (ms)"},
    {"edge_trust_proxy", "CHORUS_EDGE_TRUST_PROXY", CORE_CONFIG_BOOL, 0, 0, "false",
     "The client address is X-Forwarded-For's last hop (behind a reverse proxy only)"},
    {"edge_cookie_secure", "CHORUS_EDGE_COOKIE_SECURE", CORE_CONFIG_BOOL, 0, 0, "false",
     "Token cookies (chorus_access, chorus_refresh) carry Secure (HTTPS sites)"},
    {"edge_rate_user_per_min", "CHORUS_EDGE_RATE_USER_PER_MIN", CORE_CONFIG_INT, 0,
     100000000, "1200", "Requests per minute per user or API key (0: no limit)"},
    {"edge_rate_ip_per_min", "CHORUS_EDGE_RATE_IP_PER_MIN", CORE_CONFIG_INT, 0, 100000000,
     "300", "Requests per minute per client address without credentials (0: no limit)"},
    {"edge_webhook_rate_per_min", "CHORUS_EDGE_WEBHOOK_RATE_PER_MIN", CORE_CONFIG_INT, 0,
     100000000, "6000", "Webhooks per minute per connection id (0: no limit)"},
    {"edge_webhook_max_body", "CHORUS_EDGE_WEBHOOK_MAX_BODY", CORE_CONFIG_INT, 0, 8323072,
     "4194304",
     "Largest webhook body in bytes (larger: 413; at most 8 MiB less 64 KiB, the rest "
     "of a bus request)"},
    {"edge_avatar_max_body", "CHORUS_EDGE_AVATAR_MAX_BODY", CORE_CONFIG_INT, 0, 8323072,
     "1048576", "Largest avatar upload in bytes (larger: 413)"},
    {"edge_webhook_timeout_ms", "CHORUS_EDGE_WEBHOOK_TIMEOUT_MS", CORE_CONFIG_INT, 10,
     600000, "2500", "Bus deadline of a webhook (ms; Slack wants its answer within 3 s)"},
    {"edge_rate_fail_open", "CHORUS_EDGE_RATE_FAIL_OPEN", CORE_CONFIG_BOOL, 0, 0, "true",
     "When Redis is down or slow, requests pass (false: 503)"},
    {"edge_rate_timeout_ms", "CHORUS_EDGE_RATE_TIMEOUT_MS", CORE_CONFIG_INT, 1, 10000,
     "100",
     "Longest wait for Redis on a request's budget before failing open/closed (ms)"},
};
const size_t edge_server_option_count = sizeof edge_server_options
                                        / sizeof edge_server_options[0];

typedef struct {
    edge_t edge;                //  state shared with edge_http / edge_ws
    zsock_t *pipe;              //  actor pipe
    char *host;                 //  listen address
    int port;                   //  bound port, -1 when not listening
    int ready_interval_ms;      //  readiness poll period
    int64_t drain_ms;           //  drain budget on $TERM
    int64_t drain_deadline_us;  //  when draining must end (0: not draining)
    int64_t next_ready_us;      //  next readiness poll
    bool terminated;            //  leave the loop
    ev_timer bus_timer;         //  bus_client_tick timer
    ev_timer house_timer;       //  heartbeats, readiness, drain (100 ms)
    ev_timer redis_timer;       //  Redis driving (50 ms)
    struct ev_loop *loop;       //  libev loop (epoll) lws runs on
} self_t;

static int s_callback_http (struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len);
static int s_callback_zmq (struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len);

static const struct lws_protocols s_protocols[] = {
    {"http", s_callback_http, sizeof (edge_session_t), 0, 0, NULL, 0},
    {"chorus-zmq", s_callback_zmq, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

//  HTTP and WebSocket callbacks of protocol 0.
static int
s_callback_http (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    self_t *self = (self_t *) lws_context_user (lws_get_context (wsi));
    if (!self)
        return lws_callback_http_dummy (wsi, reason, user, in, len);
    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        case LWS_CALLBACK_ESTABLISHED:
        case LWS_CALLBACK_RECEIVE:
        case LWS_CALLBACK_SERVER_WRITEABLE:
        case LWS_CALLBACK_CLOSED:
            return edge_ws_callback (&self->edge, wsi, reason, (edge_session_t *) user,
                                     in, len);
        default:
            return edge_http_callback (&self->edge, wsi, reason, (edge_session_t *) user,
                                       in, len);
    }
}

//  Commands on the actor pipe: PORT, $TERM.
static void
s_handle_pipe (self_t *self)
{
    while (zsock_events (self->pipe) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (self->pipe);
        if (!msg)
            break;
        char *command = zmsg_popstr (msg);
        if (command && strcmp (command, "PORT") == 0)
            zsock_send (self->pipe, "i", self->port);
        else if (command && strcmp (command, "$TERM") == 0) {
            if (!self->edge.lws || self->drain_ms == 0)
                self->terminated = true;
            else if (!self->drain_deadline_us) {
                self->edge.draining = true;
                self->drain_deadline_us = edge_now_us () + self->drain_ms * 1000;
                core_log_info (self->edge.log, NULL,
                               "draining: %zu bus requests in flight",
                               bus_client_in_flight (self->edge.bus));
            }
        }
        else
            core_log_warn (self->edge.log, NULL, "unknown pipe command %s",
                           command ? command : "(null)");
        free (command);
        zmsg_destroy (&msg);
    }
}

//  An adopted ZMQ_FD became readable: drain the pipe and the bus sockets. ZMQ_FD is
//  edge-triggered, so everything readable is read now.
static int
s_callback_zmq (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len)
{
    self_t *self = (self_t *) lws_context_user (lws_get_context (wsi));
    if (reason == LWS_CALLBACK_RAW_RX_FILE && self) {
        s_handle_pipe (self);
        bus_client_process (self->edge.bus);
        if (self->edge.live)
            edge_live_process (self->edge.live);
        //  An API key's answer may have parked requests for their budget
        if (self->edge.guard && edge_guard_busy (self->edge.guard))
            edge_wake_guard (&self->edge);
        if (self->terminated)
            lws_cancel_service (self->edge.lws);
    }
    return 0;
}

//  Run a one-shot timer again after ms milliseconds.
static void
s_timer_again (struct ev_loop *loop, ev_timer *timer, int ms)
{
    ev_timer_stop (loop, timer);
    ev_timer_set (timer, ms / 1000., 0.);
    ev_timer_start (loop, timer);
}

//  Timer: heartbeats and deadlines of the bus client.
static void
s_on_bus_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void) revents;
    self_t *self = (self_t *) timer->data;
    int ms = bus_client_tick (self->edge.bus);
    bus_client_process (self->edge.bus);
    if (ms < 1)
        ms = 1;
    if (ms > 1000)
        ms = 1000;
    s_timer_again (loop, timer, ms);
}

//  Timer, every 100 ms: SSE heartbeats, readiness polls, the end of a drain.
static void
s_on_house_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void) loop;
    (void) revents;
    self_t *self = (self_t *) timer->data;
    int64_t now = edge_now_us ();
    edge_http_heartbeat (&self->edge);
    if (self->edge.live)
        edge_live_tick (self->edge.live);
    if (!self->edge.draining && now >= self->next_ready_us) {
        bool asked = edge_ready_poll (self->edge.ready);
        int64_t wait_ms = asked ? self->ready_interval_ms : 100;
        self->next_ready_us = now + wait_ms * 1000;
    }
    if (self->drain_deadline_us) {
        //  Readiness polls stop; what is left in flight is client work.
        edge_ready_cancel (self->edge.ready);
        if (bus_client_in_flight (self->edge.bus) == 0
            && edge_http_streams_open (&self->edge) == 0)
            self->terminated = true;
        else if (now >= self->drain_deadline_us) {
            core_log_warn (self->edge.log, NULL, "drain timeout: %zu requests abandoned",
                           bus_client_in_flight (self->edge.bus));
            self->terminated = true;
        }
    }
}

//  Timer, every 50 ms: drive the Redis connection.
static void
s_on_redis_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void) loop;
    (void) revents;
    self_t *self = (self_t *) timer->data;
    edge_ready_tick (self->edge.ready);
}

//  Timer: revocation polls, budget checks waiting for Redis, cache pruning.
static void
s_on_guard_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void) revents;
    self_t *self = (self_t *) timer->data;
    int ms = edge_guard_tick (self->edge.guard);
    bus_client_process (self->edge.bus);
    s_timer_again (loop, timer, ms > 0 ? ms : 1);
}

//  The guard from the configuration: the JWT key set (auth_keys) and the budgets.
//  Returns -1 (logged) when the keys are misconfigured; with no key at all the
//  edge runs and refuses every access token.
static int
s_guard_new (edge_t *edge, core_config_t *config)
{
    char *error = NULL;
    auth_jwt_t *jwt = auth_keys_jwt_new (config, &error);
    if (!jwt && auth_keys_configured (config)) {
        core_log_error (edge->log, NULL, "%s", error ? error : "bad JWT keys");
        free (error);
        return -1;
    }
    if (!jwt)
        core_log_warn (edge->log, NULL,
                       "no access-token key is configured (CHORUS_JWT_SECRET, "
                       "CHORUS_SECRET_KEY, or the EdDSA keys): every access token is "
                       "refused");
    free (error);
    //  Served at /.well-known/jwks.json; the key set is read once, at start
    edge->jwks = jwt ? auth_jwt_jwks (jwt) : NULL;
    edge_guard_config_t guard = {
        .jwt = jwt,
        .api_key_cache_ms = core_config_int (config, "edge_api_key_cache_ms"),
        .revocation_poll_ms = core_config_int (config, "edge_revocation_poll_ms"),
        .redis_url = core_config_str (config, "redis_url"),
        .rate_user_per_min = core_config_int (config, "edge_rate_user_per_min"),
        .rate_ip_per_min = core_config_int (config, "edge_rate_ip_per_min"),
        .rate_webhook_per_min = core_config_int (config, "edge_webhook_rate_per_min"),
        .rate_fail_open = core_config_bool (config, "edge_rate_fail_open"),
        .rate_timeout_ms = (int) core_config_int (config, "edge_rate_timeout_ms"),
        .timeout_ms = edge->timeout_ms};
    edge->guard = edge_guard_new (edge->bus, edge->metrics, edge->log, &guard);
    return 0;
}

//  Adopt a ZeroMQ socket's ZMQ_FD into lws. lws closes what it adopts, and libzmq
//  asserts if its fd is closed under it, so lws gets a duplicate.
static int
s_adopt (self_t *self, zsock_t *sock)
{
    int fd = dup (zsock_fd (sock));
    if (fd < 0)
        return -1;
    lws_sock_file_fd_type desc;
    memset (&desc, 0, sizeof desc);
    desc.filefd = fd;
    struct lws *wsi = lws_adopt_descriptor_vhost (
        lws_get_vhost_by_name (self->edge.lws, "default"), LWS_ADOPT_RAW_FILE_DESC, desc,
        "chorus-zmq", NULL);
    if (!wsi) {
        close (fd);
        return -1;
    }
    return 0;
}

//  Start libwebsockets listening; returns the port or -1.
static int
s_listen (self_t *self, core_config_t *config)
{
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    int max_connections = (int) core_config_int (config, "edge_max_connections");
    int max_header = (int) core_config_int (config, "edge_max_header");
    info.port = (int) core_config_int (config, "edge_port");
    info.iface = self->host;
    info.protocols = s_protocols;
    info.user = self;
    info.vhost_name = "default";
    info.max_http_header_data = (unsigned short) max_header;
    info.max_http_header_pool = (unsigned short) (max_connections < 4096 ? max_connections
                                                                         : 4096);
    //  Clients, plus the listener, the adopted ZMQ fds and lws's own. With a limit
    //  below the process's open-file limit, lws 4.1 finds a descriptor's
    //  connection by scanning them all (wsi_from_fd: 9% of the CPU with 10,000
    //  streams); with the limit equal to it, by index. So the limit that
    //  edge_server_fit_fd_limit set is taken as it is.
    unsigned limit = (unsigned) max_connections + 64;
    struct rlimit files;
    if (getrlimit (RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
        && files.rlim_cur >= limit
        && files.rlim_cur <= (rlim_t) max_connections + EDGE_SERVER_FD_RESERVE)
        limit = (unsigned) files.rlim_cur;
    info.fd_limit_per_thread = limit;
    info.timeout_secs = 10;
    info.timeout_secs_ah_idle = 10;
    info.keepalive_timeout = (int) core_config_int (config, "edge_idle_timeout_s");
    //  lws's own loop poll()s every connection at each wake-up; on libev (epoll)
    //  a pass costs what is ready, not what is open. Our loop, not one lws makes:
    //  that one takes the process's SIGINT and allows one context per process.
    self->loop = ev_loop_new (EVFLAG_AUTO);
    if (!self->loop)
        return -1;
    void *foreign_loops[1] = {self->loop};
    info.foreign_loops = foreign_loops;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    if (!strchr (self->host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    self->edge.lws = lws_create_context (&info);
    if (!self->edge.lws)
        return -1;
    struct lws_vhost *vhost = lws_get_vhost_by_name (self->edge.lws, "default");
    return vhost ? lws_get_vhost_listen_port (vhost) : -1;
}

static self_t *
s_self_new (zsock_t *pipe, core_config_t *config)
{
    self_t *self = calloc (1, sizeof *self);
    assert (self);
    self->pipe = pipe;
    edge_t *edge = &self->edge;
    edge->log = core_log_new ("edge", core_config_str (config, "log_level"));
    edge->max_body = (size_t) core_config_int (config, "edge_max_body");
    edge->stream_queue = (size_t) core_config_int (config, "edge_stream_queue");
    edge->ws_max_message = (size_t) core_config_int (config, "edge_ws_max_message");
    edge->timeout_ms = core_config_int (config, "edge_timeout_ms");
    edge->webhook_max_body = (size_t) core_config_int (config, "edge_webhook_max_body");
    edge->webhook_timeout_ms = core_config_int (config, "edge_webhook_timeout_ms");
    edge->avatar_max_body = (size_t) core_config_int (config, "edge_avatar_max_body");
    edge->keepalive_ms = core_config_int (config, "edge_sse_keepalive_ms");
    edge->max_connections = (int) core_config_int (config, "edge_max_connections");
    self->ready_interval_ms = (int) core_config_int (config, "edge_ready_interval_ms");
    self->drain_ms = core_config_int (config, "edge_drain_ms");
    edge->trust_proxy = core_config_bool (config, "edge_trust_proxy");
    edge->cookie_secure = core_config_bool (config, "edge_cookie_secure");
    self->host = strdup (core_config_str (config, "edge_host"));
    edge->metrics = edge_metrics_new ();
    edge->streams = zlistx_new ();
    edge->openapi = edge_openapi_text ();
    edge->openapi_size = strlen (edge->openapi);
    edge->bus = bus_client_new (core_config_str (config, "brokers"),
                                (int) core_config_int (config, "heartbeat_ms"),
                                (int) core_config_int (config, "heartbeat_liveness"),
                                edge->log);
    self->port = -1;
    if (!edge->bus) {
        core_log_error (edge->log, NULL, "bad CHORUS_BROKERS: %s",
                        core_config_str (config, "brokers"));
        return self;
    }
    bus_client_set_default_timeout (edge->bus, edge->timeout_ms);
    edge->ready = edge_ready_new (edge->bus, edge->log,
                                  core_config_str (config, "redis_url"),
                                  self->ready_interval_ms);
    if (s_guard_new (edge, config))
        return self;
    self->port = s_listen (self, config);
    if (self->port < 0) {
        core_log_error (edge->log, NULL, "cannot listen on %s:%d", self->host,
                        (int) core_config_int (config, "edge_port"));
        if (edge->lws)
            lws_context_destroy (edge->lws);
        edge->lws = NULL;
        return self;
    }
    zsock_t *sockets[17];
    size_t count = bus_client_sockets (edge->bus, sockets, 16);
    edge->live = edge_live_new (core_config_str (config, "brokers"), edge->log);
    if (edge->live)
        sockets[count++] = edge_live_socket (edge->live);
    int rc = s_adopt (self, pipe);
    for (size_t i = 0; i < count; i++)
        rc |= s_adopt (self, sockets[i]);
    if (rc) {
        core_log_error (edge->log, NULL, "cannot adopt the bus sockets into lws");
        lws_context_destroy (edge->lws);
        edge->lws = NULL;
        self->port = -1;
        return self;
    }
    //  Our timers are libev's, not lws_sul: lws 4.1 on libev does not bring its
    //  one timer forward when a sul is scheduled sooner than it (a parked request's
    //  Redis answer waited up to 50 ms for the next pass)
    edge->loop = self->loop;
    ev_timer_init (&self->bus_timer, s_on_bus_timer, 0.001, 0.);
    ev_timer_init (&self->house_timer, s_on_house_timer, 0.001, 0.1);
    ev_timer_init (&edge->guard_timer, s_on_guard_timer, 0.001, 0.);
    self->bus_timer.data = self->house_timer.data = edge->guard_timer.data = self;
    ev_timer_start (self->loop, &self->bus_timer);
    ev_timer_start (self->loop, &self->house_timer);
    ev_timer_start (self->loop, &edge->guard_timer);
    if (*core_config_str (config, "redis_url")) {
        ev_timer_init (&self->redis_timer, s_on_redis_timer, 0.001, 0.05);
        self->redis_timer.data = self;
        ev_timer_start (self->loop, &self->redis_timer);
    }
    core_log_info (edge->log, NULL, "edge listening on %s:%d, brokers %s", self->host,
                   self->port, core_config_str (config, "brokers"));
    return self;
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    edge_t *edge = &self->edge;
    if (edge->lws) {
        //  Closing every connection cancels its bus requests: the bus is still up.
        ev_timer_stop (self->loop, &self->bus_timer);
        ev_timer_stop (self->loop, &self->house_timer);
        ev_timer_stop (self->loop, &self->redis_timer);
        ev_timer_stop (self->loop, &edge->guard_timer);
        edge->loop = NULL;
        lws_context_destroy (edge->lws);
        edge->lws = NULL;
    }
    if (self->loop)
        ev_loop_destroy (self->loop);
    edge_guard_destroy (&edge->guard);
    edge_ready_destroy (&edge->ready);
    bus_client_destroy (&edge->bus);
    edge_live_destroy (&edge->live);  //  after the connections that watched
    zlistx_destroy (&edge->streams);
    edge_metrics_destroy (&edge->metrics);
    free (edge->openapi);
    free (edge->jwks);
    free (edge->direct);
    core_log_destroy (&edge->log);
    free (self->host);
    free (self);
    *self_p = NULL;
}

//  libwebsockets' own error lines, as JSON log lines like ours.
static void
s_lws_emit (int level, const char *line)
{
    char message[512];
    size_t len = core_json_escape (message, sizeof message, line);
    while (len >= 2 && message[len - 2] == '\\' && message[len - 1] == 'n')
        message[len -= 2] = 0;  //  drop the trailing newline
    fprintf (stderr,
             "{\"level\":\"error\",\"service\":\"edge\",\"message\":\"lws: %s\"}\n",
             message);
}

int
edge_server_fit_fd_limit (int max_connections)
{
    struct rlimit files;
    if (getrlimit (RLIMIT_NOFILE, &files))
        return -1;
    rlim_t want = (rlim_t) max_connections + EDGE_SERVER_FD_RESERVE;
    if (files.rlim_max != RLIM_INFINITY && want > files.rlim_max)
        want = files.rlim_max;
    files.rlim_cur = want;
    return setrlimit (RLIMIT_NOFILE, &files) ? -1 : (int) want;
}

void
edge_server_actor (zsock_t *pipe, void *args)
{
    lws_set_log_level (LLL_ERR, s_lws_emit);  //  process-wide; idempotent
    self_t *self = s_self_new (pipe, (core_config_t *) args);
    zsock_signal (pipe, 0);
    if (!self->edge.lws) {
        //  Could not start: answer PORT with -1 until told to end.
        while (!self->terminated) {
            zmsg_t *msg = zmsg_recv (pipe);
            if (!msg)
                break;
            char *command = zmsg_popstr (msg);
            if (command && strcmp (command, "PORT") == 0)
                zsock_send (pipe, "i", -1);
            else if (command && strcmp (command, "$TERM") == 0)
                self->terminated = true;
            free (command);
            zmsg_destroy (&msg);
        }
    }
    else {
        //  Anything that arrived before the fds were adopted sets no edge: read now.
        s_handle_pipe (self);
        bus_client_process (self->edge.bus);
        //  One pass of libev per turn: everything that ends us runs inside it
        while (!self->terminated)
            ev_run (self->loop, EVRUN_ONCE);
    }
    s_self_destroy (&self);
    //  Free this thread's OpenSSL state (lws and libjwt use it) now: czmq's actor
    //  threads are detached, so the thread-exit destructor could run after the
    //  process has ended and LeakSanitizer would count it as a leak.
    OPENSSL_thread_stop ();
}

//  --------------------------------------------------------------------------
//  Selftest: a real broker, test services on the bus, the edge on an ephemeral
//  port, and real HTTP / SSE / WebSocket clients.

#include "bus_broker.h"
#include "edge_testclient.h"
#include "edge_testservice.h"

#define S_JWT_SECRET "edge-server-test-secret-0123456789abcdef"

//  The authentication of bus routes over HTTP and WebSocket (edge_guard decides;
//  here: the answers, headers and identity that reach the service).
static void
s_test_auth (int port, bool verbose)
{
    edge_response_t r;
    char value[256], headers[1024];
    //  No credential: 401 with a bare challenge; a bad one: invalid_token
    assert (edge_testclient_get (port, "/api/v1/auth/me", NULL, &r) == 401);
    assert (edge_response_error_is (&r, "unauthorized"));
    assert (streq (edge_response_header (&r, "www-authenticate", value, sizeof value),
                   "Bearer realm=\"chorus\""));
    edge_response_free (&r);
    const char *bad[] = {"Authorization: Bearer garbage\r\n",
                         "Authorization: Basic YTpi\r\n",
                         "Cookie: a=1; chorus_access=x.y.z\r\n"};
    for (size_t i = 0; i < 3; i++) {
        assert (edge_testclient_get (port, "/api/v1/auth/me", bad[i], &r) == 401);
        assert (edge_response_error_is (&r, "unauthorized"));
        assert (
            strstr (edge_response_header (&r, "www-authenticate", value, sizeof value),
                    "error=\"invalid_token\""));
        edge_response_free (&r);
    }
    //  A valid token passes: the service sees its identity (and answers with the
    //  generic unknown_command); the role decides, the header wins over the cookie
    char *member = edge_testclient_token (S_JWT_SECRET, "user-1", AUTH_ROLE_MEMBER);
    snprintf (headers, sizeof headers,
              "Authorization: Bearer %s\r\nCookie: chorus_access=garbage\r\n", member);
    assert (edge_testclient_get (port, "/api/v1/auth/me", headers, &r) == 404);
    assert (edge_response_error_is (&r, "unknown_command"));
    if (verbose)
        printf ("\n   %s", r.body);
    assert (strstr (r.body, "user=user-1 tenant=tenant-1 role=member session=session-1 "
                            "key= ip=127.0.0.1"));
    edge_response_free (&r);
    snprintf (headers, sizeof headers, "Cookie: chorus_access=%s\r\n", member);
    assert (edge_testclient_get (port, "/api/v1/auth/members", headers, &r) == 403);
    assert (edge_response_error_is (&r, "forbidden"));
    edge_response_free (&r);
    //  Public routes do not look at credentials
    assert (edge_testclient_get (port, "/api/v1/services/auth/health",
                                 "Authorization: Bearer x\r\n", &r)
            == 200);
    edge_response_free (&r);
    //  An API key waits for api_keys.verify: the generic answer is no answer (503)
    snprintf (headers, sizeof headers, "Authorization: Bearer chr_%043d\r\n", 7);
    assert (edge_testclient_get (port, "/api/v1/auth/me", headers, &r) == 503);
    assert (edge_response_error_is (&r, "unavailable"));
    edge_response_free (&r);

    //  WebSocket: anonymous requests are refused, an auth message sets the
    //  credential, a bad one clears it
    edge_testclient_t *client = edge_testclient_new (port);
    assert (edge_testclient_ws_open (client, "/api/v1/ws") == 101);
    const char *me = "{\"type\":\"request\",\"id\":\"m1\",\"path\":\"/api/v1/auth/me\"}";
    assert (edge_testclient_ws_send (client, me, strlen (me)) == 0);
    int opcode = 0;
    char *frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"id\":\"m1\"") && strstr (frame, "unauthorized"));
    free (frame);
    char *auth = NULL;
    assert (asprintf (&auth, "{\"type\":\"auth\",\"id\":\"a1\",\"token\":\"%s\"}", member)
            > 0);
    assert (edge_testclient_ws_send (client, auth, strlen (auth)) == 0);
    free (auth);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"type\":\"authenticated\""));
    assert (strstr (frame, "\"user_id\":\"user-1\"") && strstr (frame, "\"id\":\"a1\""));
    free (frame);
    assert (edge_testclient_ws_send (client, me, strlen (me)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "unknown_command") && strstr (frame, "user=user-1"));
    free (frame);
    const char *wrong = "{\"type\":\"auth\",\"token\":\"a.b.c\"}";
    assert (edge_testclient_ws_send (client, wrong, strlen (wrong)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"type\":\"error\"")
            && strstr (frame, "unauthorized"));
    free (frame);
    assert (edge_testclient_ws_send (client, me, strlen (me)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "unauthorized"));
    free (frame);
    edge_testclient_destroy (&client);
    //  Credentials of the upgrade request: the access cookie
    client = edge_testclient_new (port);
    snprintf (headers, sizeof headers, "Cookie: chorus_access=%s\r\n", member);
    assert (edge_testclient_ws_open_with (client, "/api/v1/ws", headers) == 101);
    assert (edge_testclient_ws_send (client, me, strlen (me)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "unknown_command") && strstr (frame, "user=user-1"));
    free (frame);
    edge_testclient_destroy (&client);
    free (member);

    //  Refusals are counted
    assert (edge_testclient_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_auth_refusals_total{reason=\"forbidden\"} 1\n"));
    assert (!strstr (r.body, "chorus_auth_refusals_total{reason=\"invalid\"} 0\n"));
    edge_response_free (&r);
}

//  A second edge with a budget of 2 requests per minute and user: the third
//  answers 429 with Retry-After (needs Redis). The user is new each run, so that
//  runs within one minute do not share a window.
static void
s_test_budget (const char *brokers, const char *redis)
{
    char *error = NULL;
    core_config_t *config = core_config_new (edge_server_options,
                                             edge_server_option_count, &error);
    const char *settings[][2] = {{"edge_port", "0"},
                                 {"brokers", brokers},
                                 {"log_level", "off"},
                                 {"redis_url", redis},
                                 {"jwt_secret", S_JWT_SECRET},
                                 {"edge_rate_user_per_min", "2"},
                                 {"edge_rate_fail_open", "false"},
                                 {"edge_rate_timeout_ms", "2000"},
                                 {"edge_drain_ms", "0"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (core_config_set (config, settings[i][0], settings[i][1], &error))
            assert (false);
    zactor_t *edge = zactor_new (edge_server_actor, config);
    core_config_destroy (&config);
    zstr_send (edge, "PORT");
    int port = -1;
    zsock_recv (edge, "i", &port);
    assert (port > 0);
    char user[64], headers[1024];
    snprintf (user, sizeof user, "budget-%d-%lld", getpid (),
              (long long) zclock_usecs ());
    char *token = edge_testclient_token (S_JWT_SECRET, user, AUTH_ROLE_MEMBER);
    snprintf (headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    free (token);
    edge_response_t r;
    int passed = 0, status = 0;
    //  Until Redis is connected the budget fails closed (503); passing requests
    //  get the service's generic answer (404)
    for (int i = 0; i < 200 && status != 429; i++) {
        status = edge_testclient_get (port, "/api/v1/auth/me", headers, &r);
        if (status == 404)
            passed++;
        else if (status == 503 && edge_response_error_is (&r, "unavailable"))
            zclock_sleep (10);
        else
            assert (status == 429);
        if (status != 429)
            edge_response_free (&r);
    }
    assert (status == 429 && passed >= 1 && passed <= 4);  //  4: the minute turned
    assert (edge_response_error_is (&r, "rate_limited"));
    char value[16];
    long seconds = strtol (edge_response_header (&r, "retry-after", value, sizeof value),
                           NULL, 10);
    assert (seconds >= 1 && seconds <= 60);
    edge_response_free (&r);
    //  Built-in routes have no budget
    assert (edge_testclient_get (port, "/healthz", NULL, &r) == 200);
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_rate_limited_total{scope=\"user\"} 1\n"));
    edge_response_free (&r);
    zactor_destroy (&edge);
}

void
edge_server_test (bool verbose)
{
    printf (" * edge_server: ");
    //  A broker on an ephemeral TCP port, and three test services.
    bus_broker_config_t broker_config = {
        .id = "edge-test", .log_level = "error", .heartbeat_ms = 100};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    zstr_sendx (broker, "BIND", "tcp://127.0.0.1:*", NULL);
    int broker_port = -1;
    zsock_recv (broker, "i", &broker_port);
    assert (broker_port > 0);
    char brokers[64];
    snprintf (brokers, sizeof brokers, "tcp://127.0.0.1:%d", broker_port);
    edge_testservice_config_t auth_config = {brokers, "auth", EDGE_TESTSERVICE_NORMAL};
    edge_testservice_config_t hold_config = {brokers, "workflows", EDGE_TESTSERVICE_HOLD};
    edge_testservice_config_t big_config = {brokers, "rag", EDGE_TESTSERVICE_BIG};
    zactor_t *auth = zactor_new (edge_testservice_actor, &auth_config);
    zactor_t *hold = zactor_new (edge_testservice_actor, &hold_config);
    zactor_t *big = zactor_new (edge_testservice_actor, &big_config);

    //  The edge on port 0, with small limits so the tests reach them.
    char *error = NULL;
    core_config_t *config = core_config_new (edge_server_options,
                                             edge_server_option_count, &error);
    assert (config);
    const char *redis = getenv ("CHORUS_TEST_REDIS_URL");
    const char *settings[][2] = {
        {"edge_port", "0"},
        {"brokers", brokers},
        {"heartbeat_ms", "100"},
        {"log_level", verbose ? "info" : "off"},
        {"edge_timeout_ms", "1000"},
        {"edge_stream_queue", "65536"},
        {"edge_ready_interval_ms", "200"},
        {"edge_sse_keepalive_ms", "300"},
        {"edge_max_body", "1048576"},
        {"edge_ws_max_message", "4096"},
        {"redis_url", redis ? redis : ""},
        {"edge_drain_ms", "2000"},
        {"jwt_secret", S_JWT_SECRET},
        {"secret_key", ""},
        {"jwt_previous_secrets", ""},
        {"edge_rate_ip_per_min", "100000"},
        {"edge_rate_user_per_min", "100000"},
        {"edge_revocation_poll_ms", "200"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (core_config_set (config, settings[i][0], settings[i][1], &error))
            assert (false);
    zactor_t *edge = zactor_new (edge_server_actor, config);
    core_config_destroy (&config);
    zstr_send (edge, "PORT");
    int port = -1;
    zsock_recv (edge, "i", &port);
    assert (port > 0);
    edge_response_t r;
    char value[128];

    //  healthz, with a generated request id; a sane client id is kept.
    assert (edge_testclient_get (port, "/healthz", NULL, &r) == 200);
    assert (streq (r.body, "{\"status\":\"ok\"}"));
    assert (edge_response_header (&r, "x-request-id", value, sizeof value));
    assert (strlen (value) == 36);
    assert (edge_response_header (&r, "content-type", value, sizeof value));
    assert (streq (value, "application/json"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/healthz", "X-Request-Id: trace-42.a\r\n", &r)
            == 200);
    assert (streq (edge_response_header (&r, "x-request-id", value, sizeof value),
                   "trace-42.a"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/healthz", "X-Request-Id: bad id\r\n", &r)
            == 200);
    assert (strlen (edge_response_header (&r, "x-request-id", value, sizeof value))
            == 36);
    edge_response_free (&r);

    //  Unknown route, wrong method, unknown service: JSON errors.
    assert (edge_testclient_get (port, "/nope", NULL, &r) == 404);
    assert (edge_response_error_is (&r, "not_found"));
    assert (edge_response_header (&r, "x-request-id", value, sizeof value));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services/billing/ping", NULL, &r) == 404);
    assert (edge_response_error_is (&r, "not_found"));
    edge_response_free (&r);
    edge_testclient_t *client = edge_testclient_new (port);
    assert (edge_testclient_request (client, "DELETE", "/healthz", NULL, NULL) == 0);
    assert (edge_testclient_response (client, &r, 5000) == 405);
    assert (edge_response_error_is (&r, "method_not_allowed"));
    assert (streq (edge_response_header (&r, "allow", value, sizeof value), "GET"));
    edge_response_free (&r);

    //  Keep-alive: more requests on the same connection, one with a body.
    assert (edge_testclient_request (client, "GET", "/healthz", NULL, NULL) == 0);
    assert (edge_testclient_response (client, &r, 5000) == 200);
    edge_response_free (&r);
    assert (edge_testclient_request (client, "GET", "/api/v1/services/auth/ping", NULL,
                                     "{bad json")
            == 0);
    assert (edge_testclient_response (client, &r, 5000) == 400);
    assert (edge_response_error_is (&r, "invalid_json"));
    edge_response_free (&r);
    assert (edge_testclient_request (client, "GET", "/api/v1/services/auth/ping", NULL,
                                     "[1,2]")
            == 0);
    assert (edge_testclient_response (client, &r, 5000) == 400);
    edge_response_free (&r);
    assert (edge_testclient_request (client, "GET", "/healthz", NULL, NULL) == 0);
    assert (edge_testclient_response (client, &r, 5000) == 200);
    edge_response_free (&r);
    edge_testclient_destroy (&client);

    //  Oversized body: 413 from the headers alone, then the connection closes.
    client = edge_testclient_new (port);
    const char *big_headers = "POST /api/v1/services/auth/ping HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 10000000\r\n\r\n";
    assert (edge_testclient_send (client, big_headers, strlen (big_headers)) == 0);
    char *chunk = calloc (1, 65536);
    memset (chunk, '{', 65535);
    (void) edge_testclient_send (client, chunk, 65535);
    assert (edge_testclient_response (client, &r, 5000) == 413);
    assert (edge_response_error_is (&r, "payload_too_large"));
    edge_response_free (&r);
    assert (edge_testclient_closed (client, 5000));
    edge_testclient_destroy (&client);
    free (chunk);

    //  Headers past the limit do not get served.
    client = edge_testclient_new (port);
    char *huge = malloc (20000);
    memset (huge, 'a', 19999);
    huge[19999] = 0;
    char *request = NULL;
    assert (asprintf (&request, "GET /healthz HTTP/1.1\r\nX-Big: %s\r\n\r\n", huge) > 0);
    (void) edge_testclient_send (client, request, strlen (request));
    int status = edge_testclient_response (client, &r, 3000);
    assert (status == -1 || status >= 400);
    edge_response_free (&r);
    edge_testclient_destroy (&client);
    free (request);
    free (huge);

    //  Through the bus: wait for the service, then plain JSON answers.
    for (int i = 0;
         i < 100
         && edge_testclient_get (port, "/api/v1/services/auth/ping", NULL, &r) != 200;
         i++) {
        edge_response_free (&r);
        zclock_sleep (50);
    }
    assert (r.status == 200);
    json_t *json = json_loads (r.body, 0, NULL);
    assert (streq (json_string_value (json_object_get (json, "service")), "auth"));
    json_decref (json);
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services/auth/ping?count=3&interval_ms=5",
                                 "X-Request-Id: plain-3\r\n", &r)
            == 200);
    json = json_loads (r.body, 0, NULL);
    assert (json_integer_value (json_object_get (json, "index")) == 2);
    json_decref (json);
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services/auth/ping?count=abc", NULL, &r)
            == 400);
    assert (edge_response_error_is (&r, "bad_request"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services/auth/health", NULL, &r) == 200);
    assert (strstr (r.body, "\"database\":true"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services", NULL, &r) == 200);
    assert (strstr (r.body, "\"services\""));
    edge_response_free (&r);
    //  No replica: 503; a replica that never answers: 504 at the deadline.
    assert (edge_testclient_get (port, "/api/v1/services/chat/ping", NULL, &r) == 503);
    assert (edge_response_error_is (&r, "unavailable"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/api/v1/services/workflows/ping", NULL, &r)
            == 504);
    assert (edge_response_error_is (&r, "deadline_exceeded"));
    edge_response_free (&r);

    //  SSE: partial, partial, final, each with an id, then the stream ends.
    assert (edge_testclient_get (port, "/api/v1/services/auth/ping?count=3&interval_ms=5",
                                 "Accept: text/event-stream\r\n", &r)
            == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/event-stream"));
    assert (strstr (r.body, "id: 1\nevent: partial\ndata: {"));
    assert (strstr (r.body, "id: 2\nevent: partial\ndata: {"));
    assert (strstr (r.body, "id: 3\nevent: final\ndata: {"));
    assert (strstr (r.body, "\"index\":2"));
    edge_response_free (&r);
    //  300 of them, the most written at once as they come: all there, in order
    assert (edge_testclient_get (port,
                                 "/api/v1/services/auth/ping?count=300&interval_ms=1",
                                 "Accept: text/event-stream\r\n", &r)
            == 200);
    const char *at = r.body;
    for (int i = 1; i <= 300; i++) {
        char expect[64];
        snprintf (expect, sizeof expect, "id: %d\nevent: %s\ndata: {", i,
                  i < 300 ? "partial" : "final");
        at = strstr (at, expect);
        assert (at);
        snprintf (expect, sizeof expect, "\"index\":%d", i - 1);
        at = strstr (at, expect);
        assert (at);
    }
    edge_response_free (&r);
    //  A quiet stream gets keepalive comments; the client leaving cancels the request.
    int cancels = edge_testservice_cancels (hold);
    client = edge_testclient_new (port);
    assert (edge_testclient_request (client, "GET", "/api/v1/services/workflows/ping",
                                     "Accept: text/event-stream\r\n", NULL)
            == 0);
    zclock_sleep (100);
    edge_testclient_destroy (&client);
    assert (edge_testservice_wait_cancels (hold, cancels));
    //  Keepalive: an SSE stream open longer than the keepalive interval.
    client = edge_testclient_new (port);
    assert (edge_testclient_request (client, "GET",
                                     "/api/v1/services/auth/ping?count=2&interval_ms=450",
                                     "Accept: text/event-stream\r\n", NULL)
            == 0);
    assert (edge_testclient_response (client, &r, 5000) == 200);
    assert (strstr (r.body, ": keepalive\n\n"));
    assert (strstr (r.body, "event: final"));
    edge_response_free (&r);
    edge_testclient_destroy (&client);

    //  A slow SSE client: once lws holds back what the socket did not take, the
    //  blocks queue; the bounded queue overflows, the stream is dropped and
    //  counted, and the bus request is cancelled at the service.
    cancels = edge_testservice_cancels (big);
    client = edge_testclient_new (port);
    int small = 4096;
    setsockopt (edge_testclient_fd (client), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert (edge_testclient_request (client, "GET",
                                     "/api/v1/services/rag/ping?count=1000&interval_ms=1",
                                     "Accept: text/event-stream\r\n", NULL)
            == 0);
    assert (edge_testservice_wait_cancels (big, cancels));
    edge_testclient_destroy (&client);
    assert (edge_testclient_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_sse_dropped_total 1\n"));
    assert (strstr (r.body,
                    "chorus_http_requests_total{route=\"/healthz\",method=\"GET\","
                    "status=\"200\"}"));
    assert (strstr (r.body, "chorus_bus_brokers_alive 1\n"));
    assert (strstr (r.body, "# TYPE chorus_http_request_duration_seconds histogram"));
    edge_response_free (&r);

    //  OpenAPI and readiness (the services report their database; no Redis or a
    //  reachable one).
    assert (edge_testclient_get (port, "/openapi.json", NULL, &r) == 200);
    json = json_loads (r.body, 0, NULL);
    char check[256];
    assert (json && edge_openapi_check (json, check, sizeof check) == 0);
    json_decref (json);
    edge_response_free (&r);
    for (int i = 0; i < 100 && edge_testclient_get (port, "/readyz", NULL, &r) != 200;
         i++) {
        edge_response_free (&r);
        zclock_sleep (50);
    }
    assert (r.status == 200);
    assert (streq (r.body, "{\"status\":\"ready\",\"checks\":{\"broker\":true,"
                           "\"database\":true,\"redis\":true}}"));
    edge_response_free (&r);
    assert (edge_testclient_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_service_replicas{service=\"auth\"} 1\n"));
    edge_response_free (&r);

    //  WebSocket: ping, a streamed request, bad JSON without closing, cancel.
    client = edge_testclient_new (port);
    assert (edge_testclient_ws_open (client, "/api/v1/ws") == 101);
    const char *ping = "{\"type\":\"ping\"}";
    assert (edge_testclient_ws_send (client, ping, strlen (ping)) == 0);
    int opcode = 0;
    char *frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && opcode == 1 && streq (frame, "{\"type\":\"pong\"}"));
    free (frame);
    const char *req = "{\"type\":\"request\",\"id\":\"c1\",\"method\":\"GET\","
                      "\"path\":\"/api/v1/services/auth/ping?count=3&interval_ms=5\"}";
    assert (edge_testclient_ws_send (client, req, strlen (req)) == 0);
    const char *kinds[] = {"partial", "partial", "final"};
    for (int i = 0; i < 3; i++) {
        frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
        assert (frame);
        json = json_loads (frame, 0, NULL);
        assert (streq (json_string_value (json_object_get (json, "type")), kinds[i]));
        assert (streq (json_string_value (json_object_get (json, "id")), "c1"));
        assert (
            json_integer_value (json_object_get (json_object_get (json, "data"), "index"))
            == i);
        json_decref (json);
        free (frame);
    }
    assert (edge_testclient_ws_send (client, "{nope", 5) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"type\":\"error\"")
            && strstr (frame, "invalid_json"));
    free (frame);
    req = "{\"type\":\"request\",\"id\":\"c2\",\"path\":\"/api/v1/services/nope/ping\"}";
    assert (edge_testclient_ws_send (client, req, strlen (req)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && strstr (frame, "\"id\":\"c2\"") && strstr (frame, "not_found"));
    free (frame);
    cancels = edge_testservice_cancels (hold);
    req = "{\"type\":\"request\",\"id\":\"c3\",\"path\":\"/api/v1/services/workflows/"
          "ping\"}";
    assert (edge_testclient_ws_send (client, req, strlen (req)) == 0);
    zclock_sleep (50);
    const char *cancel = "{\"type\":\"cancel\",\"id\":\"c3\"}";
    assert (edge_testclient_ws_send (client, cancel, strlen (cancel)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && streq (frame, "{\"type\":\"cancelled\",\"id\":\"c3\"}"));
    free (frame);
    assert (edge_testservice_wait_cancels (hold, cancels));
    assert (edge_testclient_ws_send (client, ping, strlen (ping)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && streq (frame, "{\"type\":\"pong\"}"));
    free (frame);
    //  A message past the limit closes with 1009.
    char *large = malloc (8192);
    memset (large, ' ', 8191);
    large[8191] = 0;
    assert (edge_testclient_ws_send (client, large, 8191) == 0);
    free (large);
    size_t size = 0;
    frame = edge_testclient_ws_recv (client, &opcode, &size, 5000);
    assert (frame && opcode == 8 && size >= 2);
    assert ((((unsigned char) frame[0] << 8) | (unsigned char) frame[1]) == 1009);
    free (frame);
    edge_testclient_destroy (&client);
    //  The WebSocket route without an upgrade: 426.
    assert (edge_testclient_get (port, "/api/v1/ws", NULL, &r) == 426);
    edge_response_free (&r);

    //  Authentication, and the budget on a second edge.
    s_test_auth (port, verbose);
    if (redis && *redis)
        s_test_budget (brokers, redis);

    //  Stop: the actor drains and ends.
    int64_t start = zclock_mono ();
    zactor_destroy (&edge);
    assert (zclock_mono () - start < 3000);
    zactor_destroy (&big);
    zactor_destroy (&hold);
    zactor_destroy (&auth);
    zactor_destroy (&broker);
    printf ("OK\n");
}
