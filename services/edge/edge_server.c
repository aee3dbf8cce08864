/*  edge_server: the edge actor: libwebsockets and the bus client in one thread.  */
#include "edge_server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge_context.h"
#include "edge_http.h"
#include "edge_openapi.h"
#include "edge_ready.h"
#include "edge_ws.h"

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
     "1024", "Most client connections at once (more wait in the listen backlog)"},
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
};
const size_t edge_server_option_count =
    sizeof edge_server_options / sizeof edge_server_options[0];

typedef struct {
    edge_t edge;                         //  state shared with edge_http / edge_ws
    zsock_t *pipe;                       //  actor pipe
    char *host;                          //  listen address
    int port;                            //  bound port, -1 when not listening
    int ready_interval_ms;               //  readiness poll period
    int64_t drain_ms;                    //  drain budget on $TERM
    int64_t drain_deadline_us;           //  when draining must end (0: not draining)
    int64_t next_ready_us;               //  next readiness poll
    bool terminated;                     //  leave the loop
    lws_sorted_usec_list_t sul_bus;      //  bus_client_tick timer
    lws_sorted_usec_list_t sul_house;    //  heartbeats, readiness, drain
    lws_sorted_usec_list_t sul_redis;    //  Redis driving
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
        return edge_ws_callback (&self->edge, wsi, reason, (edge_session_t *) user, in,
                                 len);
    default:
        return edge_http_callback (&self->edge, wsi, reason, (edge_session_t *) user, in,
                                   len);
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
                core_log_info (self->edge.log, NULL, "draining: %zu bus requests in flight",
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
        if (self->terminated)
            lws_cancel_service (self->edge.lws);
    }
    return 0;
}

//  Timer: heartbeats and deadlines of the bus client.
static void
s_on_bus_timer (lws_sorted_usec_list_t *sul)
{
    self_t *self = lws_container_of (sul, self_t, sul_bus);
    int ms = bus_client_tick (self->edge.bus);
    bus_client_process (self->edge.bus);
    if (ms < 1)
        ms = 1;
    if (ms > 1000)
        ms = 1000;
    lws_sul_schedule (self->edge.lws, 0, &self->sul_bus, s_on_bus_timer,
                      (lws_usec_t) ms * LWS_US_PER_MS);
}

//  Timer, every 100 ms: SSE heartbeats, readiness polls, the end of a drain.
static void
s_on_house_timer (lws_sorted_usec_list_t *sul)
{
    self_t *self = lws_container_of (sul, self_t, sul_house);
    int64_t now = edge_now_us ();
    edge_http_heartbeat (&self->edge);
    if (!self->edge.draining && now >= self->next_ready_us) {
        edge_ready_poll (self->edge.ready);
        self->next_ready_us = now + (int64_t) self->ready_interval_ms * 1000;
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
    lws_sul_schedule (self->edge.lws, 0, &self->sul_house, s_on_house_timer,
                      100 * LWS_US_PER_MS);
}

//  Timer: drive the Redis connection.
static void
s_on_redis_timer (lws_sorted_usec_list_t *sul)
{
    self_t *self = lws_container_of (sul, self_t, sul_redis);
    edge_ready_tick (self->edge.ready);
    lws_sul_schedule (self->edge.lws, 0, &self->sul_redis, s_on_redis_timer,
                      50 * LWS_US_PER_MS);
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
    struct lws *wsi = lws_adopt_descriptor_vhost (lws_get_vhost_by_name (self->edge.lws,
                                                                         "default"),
                                                  LWS_ADOPT_RAW_FILE_DESC, desc,
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
    //  Clients, plus the listener, the adopted ZMQ fds and lws's own.
    info.fd_limit_per_thread = (unsigned) max_connections + 64;
    info.timeout_secs = 10;
    info.timeout_secs_ah_idle = 10;
    info.keepalive_timeout = (int) core_config_int (config, "edge_idle_timeout_s");
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
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
    edge->keepalive_ms = core_config_int (config, "edge_sse_keepalive_ms");
    edge->max_connections = (int) core_config_int (config, "edge_max_connections");
    self->ready_interval_ms = (int) core_config_int (config, "edge_ready_interval_ms");
    self->drain_ms = core_config_int (config, "edge_drain_ms");
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
    self->port = s_listen (self, config);
    if (self->port < 0) {
        core_log_error (edge->log, NULL, "cannot listen on %s:%d", self->host,
                        (int) core_config_int (config, "edge_port"));
        if (edge->lws)
            lws_context_destroy (edge->lws);
        edge->lws = NULL;
        return self;
    }
    zsock_t *sockets[16];
    size_t count = bus_client_sockets (edge->bus, sockets, 16);
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
    lws_sul_schedule (edge->lws, 0, &self->sul_bus, s_on_bus_timer, 1);
    lws_sul_schedule (edge->lws, 0, &self->sul_house, s_on_house_timer, 1);
    if (*core_config_str (config, "redis_url"))
        lws_sul_schedule (edge->lws, 0, &self->sul_redis, s_on_redis_timer, 1);
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
        lws_sul_cancel (&self->sul_bus);
        lws_sul_cancel (&self->sul_house);
        lws_sul_cancel (&self->sul_redis);
        lws_context_destroy (edge->lws);
        edge->lws = NULL;
    }
    edge_ready_destroy (&edge->ready);
    bus_client_destroy (&edge->bus);
    zlistx_destroy (&edge->streams);
    edge_metrics_destroy (&edge->metrics);
    free (edge->openapi);
    core_log_destroy (&edge->log);
    free (self->host);
    free (self);
    *self_p = NULL;
}

void
edge_server_actor (zsock_t *pipe, void *args)
{
    lws_set_log_level (LLL_ERR, NULL);   //  process-wide; idempotent
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
        while (!self->terminated)
            if (lws_service (self->edge.lws, 0) < 0)
                break;
    }
    s_self_destroy (&self);
}

void
edge_server_test (bool verbose)
{
}
