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
const size_t edge_server_option_count = sizeof edge_server_options
                                        / sizeof edge_server_options[0];

typedef struct {
    edge_t edge;                       //  state shared with edge_http / edge_ws
    zsock_t *pipe;                     //  actor pipe
    char *host;                        //  listen address
    int port;                          //  bound port, -1 when not listening
    int ready_interval_ms;             //  readiness poll period
    int64_t drain_ms;                  //  drain budget on $TERM
    int64_t drain_deadline_us;         //  when draining must end (0: not draining)
    int64_t next_ready_us;             //  next readiness poll
    bool terminated;                   //  leave the loop
    lws_sorted_usec_list_t sul_bus;    //  bus_client_tick timer
    lws_sorted_usec_list_t sul_house;  //  heartbeats, readiness, drain
    lws_sorted_usec_list_t sul_redis;  //  Redis driving
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
        while (!self->terminated)
            if (lws_service (self->edge.lws, 0) < 0)
                break;
    }
    s_self_destroy (&self);
}

//  --------------------------------------------------------------------------
//  Selftest: a real broker, test services on the bus, the edge on an ephemeral
//  port, and real HTTP / SSE / WebSocket clients.

#include "bus_broker.h"
#include "bus_worker.h"
#include "codec_msgpack.h"
#include "edge_testclient.h"
#include <msgpack.h>

typedef enum { S_NORMAL, S_HOLD, S_BIG } s_mode_t;

typedef struct {
    const char *brokers;  //  broker endpoint
    const char *service;  //  service name
    s_mode_t mode;        //  how ping behaves
} s_svc_config_t;

typedef struct {
    bus_worker_t *worker;  //  the replica
    zloop_t *loop;         //  its loop
    s_mode_t mode;         //  ping behaviour
    const char *service;   //  service name
    int cancels;           //  cancellations seen
    zlistx_t *streams;     //  s_stream_t * in progress
} s_svc_t;

typedef struct {
    s_svc_t *svc;            //  owner
    bus_request_t *request;  //  the request being answered
    uint32_t index;          //  next reply index
    uint32_t count;          //  replies to send
    int timer;               //  zloop timer (-1: none)
} s_stream_t;

//  A reply body: {service, replica, time_ms, index[, pad]}.
static void
s_svc_reply (s_svc_t *svc, s_stream_t *stream, bool final)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, svc->mode == S_BIG ? 5 : 4);
    msgpack_pack_str_with_body (&pk, "service", 7);
    msgpack_pack_str_with_body (&pk, svc->service, strlen (svc->service));
    msgpack_pack_str_with_body (&pk, "replica", 7);
    msgpack_pack_str_with_body (&pk, "test", 4);
    msgpack_pack_str_with_body (&pk, "time_ms", 7);
    msgpack_pack_int64 (&pk, zclock_time ());
    msgpack_pack_str_with_body (&pk, "index", 5);
    msgpack_pack_uint32 (&pk, stream->index++);
    if (svc->mode == S_BIG) {
        char pad[16384];
        memset (pad, 'x', sizeof pad);
        msgpack_pack_str_with_body (&pk, "pad", 3);
        msgpack_pack_str_with_body (&pk, pad, sizeof pad);
    }
    if (final)
        bus_worker_final (svc->worker, &stream->request, sbuf.data, sbuf.size);
    else
        (void) bus_worker_partial (svc->worker, stream->request, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
s_stream_end (s_stream_t *stream)
{
    s_svc_t *svc = stream->svc;
    if (stream->timer >= 0)
        zloop_timer_end (svc->loop, stream->timer);
    void *cursor = zlistx_find (svc->streams, stream);
    if (cursor)
        zlistx_delete (svc->streams, cursor);
    free (stream);
}

static int
s_stream_tick (zloop_t *loop, int timer_id, void *arg)
{
    s_stream_t *stream = (s_stream_t *) arg;
    s_svc_t *svc = stream->svc;
    for (int burst = svc->mode == S_BIG ? 8 : 1; burst > 0 && stream->request; burst--) {
        bool final = stream->index + 1 >= stream->count;
        s_svc_reply (svc, stream, final);
        if (final) {
            s_stream_end (stream);
            break;
        }
    }
    return 0;
}

static void
s_svc_request (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    const char *command = bus_request_command (request);
    if (streq (command, "health")) {
        ChorusBus__HealthReply health = CHORUS_BUS__HEALTH_REPLY__INIT;
        health.service = (char *) svc->service;
        health.status = "ok";
        health.database = true;
        health.redis = true;
        bus_worker_final_msg (worker, &request, &health.base);
        return;
    }
    if (!streq (command, "ping")) {
        bus_worker_error (worker, &request, "unknown_command", "test service");
        return;
    }
    char error[128];
    ChorusBus__PingRequest *ping = (ChorusBus__PingRequest *) codec_decode (
        &chorus_bus__ping_request__descriptor, bus_request_body (request),
        bus_request_size (request), error, sizeof error);
    if (!ping) {
        bus_worker_error (worker, &request, "bad_request", error);
        return;
    }
    s_stream_t *stream = calloc (1, sizeof *stream);
    assert (stream);
    stream->svc = svc;
    stream->request = request;
    stream->count = ping->count ? ping->count : 1;
    stream->timer = -1;
    bus_request_set_data (request, stream);
    zlistx_add_end (svc->streams, stream);
    if (svc->mode == S_HOLD)
        ;  //  never answered: waits for a cancel or the deadline
    else if (stream->count == 1) {
        s_svc_reply (svc, stream, true);
        s_stream_end (stream);
    }
    else
        stream->timer = zloop_timer (svc->loop, ping->interval_ms ? ping->interval_ms : 1,
                                     0, s_stream_tick, stream);
    protobuf_c_message_free_unpacked (&ping->base, NULL);
}

static void
s_svc_cancel (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    svc->cancels++;
    s_stream_t *stream = (s_stream_t *) bus_request_data (request);
    bus_worker_error (worker, &request, "cancelled", "cancelled");
    if (stream)
        s_stream_end (stream);
}

static int
s_svc_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_svc_t *svc = (s_svc_t *) arg;
    char *command = zstr_recv (pipe);
    int rc = 0;
    if (!command || streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "CANCELS"))
        zsock_send (pipe, "i", svc->cancels);
    free (command);
    return rc;
}

//  A test service replica as an actor.
static void
s_svc_actor (zsock_t *pipe, void *args)
{
    s_svc_config_t *config = (s_svc_config_t *) args;
    s_svc_t svc = {0};
    svc.mode = config->mode;
    svc.service = config->service;
    svc.streams = zlistx_new ();
    svc.loop = zloop_new ();
    svc.worker = bus_worker_new (config->brokers, config->service, 16, NULL, 100, 3,
                                 NULL);
    assert (svc.worker);
    bus_worker_set_handlers (svc.worker, s_svc_request, s_svc_cancel, &svc);
    int rc = bus_worker_attach (svc.worker, svc.loop);
    assert (rc == 0);
    zloop_reader (svc.loop, pipe, s_svc_pipe, &svc);
    zsock_signal (pipe, 0);
    zloop_start (svc.loop);
    while (zlistx_size (svc.streams)) {
        s_stream_t *stream = (s_stream_t *) zlistx_first (svc.streams);
        bus_worker_error (svc.worker, &stream->request, "shutting_down", "test ends");
        s_stream_end (stream);
    }
    bus_worker_detach (svc.worker, svc.loop);
    bus_worker_destroy (&svc.worker);
    zloop_destroy (&svc.loop);
    zlistx_destroy (&svc.streams);
}

//  One request on a new connection; returns the status.
static int
s_get (int port, const char *path, const char *headers, edge_response_t *response)
{
    edge_testclient_t *client = edge_testclient_new (port);
    assert (client);
    int rc = edge_testclient_request (client, "GET", path, headers, NULL);
    assert (rc == 0);
    int status = edge_testclient_response (client, response, 5000);
    edge_testclient_destroy (&client);
    return status;
}

//  True when a JSON error body carries code.
static bool
s_error_is (edge_response_t *response, const char *code)
{
    json_t *body = json_loads (response->body, 0, NULL);
    const char *got = json_string_value (
        json_object_get (json_object_get (body, "error"), "code"));
    bool same = got && streq (got, code);
    json_decref (body);
    return same;
}

static int
s_cancels (zactor_t *svc)
{
    zstr_send (svc, "CANCELS");
    int cancels = -1;
    zsock_recv (svc, "i", &cancels);
    return cancels;
}

//  Wait until a service's cancel count passes n; true when it did.
static bool
s_wait_cancels (zactor_t *svc, int n)
{
    for (int i = 0; i < 200; i++) {
        if (s_cancels (svc) > n)
            return true;
        zclock_sleep (10);
    }
    return false;
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
    s_svc_config_t auth_config = {brokers, "auth", S_NORMAL};
    s_svc_config_t hold_config = {brokers, "workflows", S_HOLD};
    s_svc_config_t big_config = {brokers, "rag", S_BIG};
    zactor_t *auth = zactor_new (s_svc_actor, &auth_config);
    zactor_t *hold = zactor_new (s_svc_actor, &hold_config);
    zactor_t *big = zactor_new (s_svc_actor, &big_config);

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
    assert (s_get (port, "/healthz", NULL, &r) == 200);
    assert (streq (r.body, "{\"status\":\"ok\"}"));
    assert (edge_response_header (&r, "x-request-id", value, sizeof value));
    assert (strlen (value) == 36);
    assert (edge_response_header (&r, "content-type", value, sizeof value));
    assert (streq (value, "application/json"));
    edge_response_free (&r);
    assert (s_get (port, "/healthz", "X-Request-Id: trace-42.a\r\n", &r) == 200);
    assert (streq (edge_response_header (&r, "x-request-id", value, sizeof value),
                   "trace-42.a"));
    edge_response_free (&r);
    assert (s_get (port, "/healthz", "X-Request-Id: bad id\r\n", &r) == 200);
    assert (strlen (edge_response_header (&r, "x-request-id", value, sizeof value))
            == 36);
    edge_response_free (&r);

    //  Unknown route, wrong method, unknown service: JSON errors.
    assert (s_get (port, "/nope", NULL, &r) == 404);
    assert (s_error_is (&r, "not_found"));
    assert (edge_response_header (&r, "x-request-id", value, sizeof value));
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services/billing/ping", NULL, &r) == 404);
    assert (s_error_is (&r, "not_found"));
    edge_response_free (&r);
    edge_testclient_t *client = edge_testclient_new (port);
    assert (edge_testclient_request (client, "DELETE", "/healthz", NULL, NULL) == 0);
    assert (edge_testclient_response (client, &r, 5000) == 405);
    assert (s_error_is (&r, "method_not_allowed"));
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
    assert (s_error_is (&r, "invalid_json"));
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
    assert (s_error_is (&r, "payload_too_large"));
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
         i < 100 && s_get (port, "/api/v1/services/auth/ping", NULL, &r) != 200; i++) {
        edge_response_free (&r);
        zclock_sleep (50);
    }
    assert (r.status == 200);
    json_t *json = json_loads (r.body, 0, NULL);
    assert (streq (json_string_value (json_object_get (json, "service")), "auth"));
    json_decref (json);
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services/auth/ping?count=3&interval_ms=5",
                   "X-Request-Id: plain-3\r\n", &r)
            == 200);
    json = json_loads (r.body, 0, NULL);
    assert (json_integer_value (json_object_get (json, "index")) == 2);
    json_decref (json);
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services/auth/ping?count=abc", NULL, &r) == 400);
    assert (s_error_is (&r, "bad_request"));
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services/auth/health", NULL, &r) == 200);
    assert (strstr (r.body, "\"database\":true"));
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services", NULL, &r) == 200);
    assert (strstr (r.body, "\"services\""));
    edge_response_free (&r);
    //  No replica: 503; a replica that never answers: 504 at the deadline.
    assert (s_get (port, "/api/v1/services/chat/ping", NULL, &r) == 503);
    assert (s_error_is (&r, "unavailable"));
    edge_response_free (&r);
    assert (s_get (port, "/api/v1/services/workflows/ping", NULL, &r) == 504);
    assert (s_error_is (&r, "deadline_exceeded"));
    edge_response_free (&r);

    //  SSE: partial, partial, final, each with an id, then the stream ends.
    assert (s_get (port, "/api/v1/services/auth/ping?count=3&interval_ms=5",
                   "Accept: text/event-stream\r\n", &r)
            == 200);
    assert (streq (edge_response_header (&r, "content-type", value, sizeof value),
                   "text/event-stream"));
    assert (strstr (r.body, "id: 1\nevent: partial\ndata: {"));
    assert (strstr (r.body, "id: 2\nevent: partial\ndata: {"));
    assert (strstr (r.body, "id: 3\nevent: final\ndata: {"));
    assert (strstr (r.body, "\"index\":2"));
    edge_response_free (&r);
    //  A quiet stream gets keepalive comments; the client leaving cancels the request.
    int cancels = s_cancels (hold);
    client = edge_testclient_new (port);
    assert (edge_testclient_request (client, "GET", "/api/v1/services/workflows/ping",
                                     "Accept: text/event-stream\r\n", NULL)
            == 0);
    zclock_sleep (100);
    edge_testclient_destroy (&client);
    assert (s_wait_cancels (hold, cancels));
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

    //  A slow SSE client: the bounded queue overflows, the stream is dropped and
    //  counted, and the bus request is cancelled at the service.
    cancels = s_cancels (big);
    client = edge_testclient_new (port);
    int small = 4096;
    setsockopt (edge_testclient_fd (client), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert (edge_testclient_request (client, "GET",
                                     "/api/v1/services/rag/ping?count=1000&interval_ms=1",
                                     "Accept: text/event-stream\r\n", NULL)
            == 0);
    assert (s_wait_cancels (big, cancels));
    edge_testclient_destroy (&client);
    assert (s_get (port, "/metrics", NULL, &r) == 200);
    assert (strstr (r.body, "chorus_sse_dropped_total 1\n"));
    assert (strstr (r.body,
                    "chorus_http_requests_total{route=\"/healthz\",method=\"GET\","
                    "status=\"200\"}"));
    assert (strstr (r.body, "chorus_bus_brokers_alive 1\n"));
    assert (strstr (r.body, "# TYPE chorus_http_request_duration_seconds histogram"));
    edge_response_free (&r);

    //  OpenAPI and readiness (the services report their database; no Redis or a
    //  reachable one).
    assert (s_get (port, "/openapi.json", NULL, &r) == 200);
    json = json_loads (r.body, 0, NULL);
    char check[256];
    assert (json && edge_openapi_check (json, check, sizeof check) == 0);
    json_decref (json);
    edge_response_free (&r);
    for (int i = 0; i < 100 && s_get (port, "/readyz", NULL, &r) != 200; i++) {
        edge_response_free (&r);
        zclock_sleep (50);
    }
    assert (r.status == 200);
    assert (streq (r.body, "{\"status\":\"ready\",\"checks\":{\"broker\":true,"
                           "\"database\":true,\"redis\":true}}"));
    edge_response_free (&r);
    assert (s_get (port, "/metrics", NULL, &r) == 200);
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
    cancels = s_cancels (hold);
    req = "{\"type\":\"request\",\"id\":\"c3\",\"path\":\"/api/v1/services/workflows/"
          "ping\"}";
    assert (edge_testclient_ws_send (client, req, strlen (req)) == 0);
    zclock_sleep (50);
    const char *cancel = "{\"type\":\"cancel\",\"id\":\"c3\"}";
    assert (edge_testclient_ws_send (client, cancel, strlen (cancel)) == 0);
    frame = edge_testclient_ws_recv (client, &opcode, NULL, 5000);
    assert (frame && streq (frame, "{\"type\":\"cancelled\",\"id\":\"c3\"}"));
    free (frame);
    assert (s_wait_cancels (hold, cancels));
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
    assert (s_get (port, "/api/v1/ws", NULL, &r) == 426);
    edge_response_free (&r);

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
