/*  bus_client: requests to services through one or more brokers (schemas/bus.md).
    One DEALER per broker, so the client always knows which broker holds which
    request; a socket monitor notices a broker's connection dropping at once, and
    heartbeats notice a broker that hangs. New requests go round-robin to the live
    brokers; a request held by a broker that dies ends with broker_lost.          */
#include "bus_client.h"

#include <assert.h>
#include <inttypes.h>

#include "bus_link.h"
#include "bus_proto.h"
#include "codec_msgpack.h"

typedef struct {
    bus_link_t *link;  //  connection to this broker
    bool connected;    //  transport is up (always true for inproc)
    bool alive;        //  connected and answering heartbeats
    size_t in_flight;  //  our requests it holds
} s_broker_t;

typedef struct {
    uint64_t handle;     //  our handle, also the request id on the wire
    s_broker_t *broker;  //  broker holding it
    bus_reply_fn *fn;    //  reply callback
    void *arg;           //  its argument
    int64_t deadline;    //  local safety net (ms)
    zmsg_t *retry;       //  idempotent: the request frames, to resend once
    bool replied;        //  a partial reply has arrived (no retry then)
} s_request_t;

struct _bus_client_t {
    s_broker_t *brokers;      //  one per broker endpoint
    size_t count;             //  number of brokers
    size_t next;              //  round-robin position
    zhashx_t *requests;       //  handle text -> s_request_t
    uint64_t next_handle;     //  next handle
    int heartbeat_ms;         //  heartbeat interval
    int liveness;             //  missed heartbeats before a broker is dead
    int64_t default_timeout;  //  deadline when headers carry none
    int64_t last_tick;        //  when tick last ran (ms)
    core_log_t *log;          //  logger (borrowed)
    zloop_t *loop;            //  loop we are attached to, if any
    int timer;                //  its timer id
};

static void
s_request_free (void **item)
{
    s_request_t *request = (s_request_t *) *item;
    if (request)
        zmsg_destroy (&request->retry);
    free (request);
    *item = NULL;
}

bus_client_t *
bus_client_new (const char *brokers, int heartbeat_ms, int liveness, core_log_t *log)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints)
        return NULL;
    bus_client_t *self = calloc (1, sizeof (bus_client_t));
    assert (self);
    self->log = log;
    self->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 500;
    self->liveness = liveness > 0 ? liveness : 4;
    self->default_timeout = 30000;
    self->next_handle = 1;
    self->requests = zhashx_new ();
    zhashx_set_destructor (self->requests, s_request_free);
    self->count = zlist_size (endpoints);
    self->brokers = calloc (self->count, sizeof (s_broker_t));
    assert (self->brokers);
    size_t i = 0;
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints), i++) {
        s_broker_t *broker = &self->brokers[i];
        broker->link = bus_link_new (endpoint, BUS_PROTO_CLIENT, log);
        if (bus_link_unmonitored (broker->link))
            broker->connected = broker->alive = true;
    }
    zlist_destroy (&endpoints);
    return self;
}

void
bus_client_destroy (bus_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_client_t *self = *self_p;
    if (self->loop)
        bus_client_detach (self, self->loop);
    for (size_t i = 0; i < self->count; i++) {
        bus_link_destroy (&self->brokers[i].link);
    }
    free (self->brokers);
    zhashx_destroy (&self->requests);
    free (self);
    *self_p = NULL;
}

static int
s_send (s_broker_t *broker, uint8_t command, zmsg_t **args_p)
{
    return bus_link_send (broker->link, command, args_p);
}

//  Pick the next live broker in turn, or NULL.
static s_broker_t *
s_pick (bus_client_t *self)
{
    for (size_t tries = 0; tries < self->count; tries++) {
        s_broker_t *broker = &self->brokers[self->next++ % self->count];
        if (broker->alive)
            return broker;
    }
    return NULL;
}

uint64_t
bus_client_request (bus_client_t *self, const char *service, const char *command,
                    const ChorusBus__Headers *headers, const void *body, size_t size,
                    bus_reply_fn *fn, void *arg)
{
    return bus_client_request_ex (self, service, command, headers, body, size, 0, fn,
                                  arg);
}

uint64_t
bus_client_request_ex (bus_client_t *self, const char *service, const char *command,
                       const ChorusBus__Headers *headers, const void *body, size_t size,
                       int flags, bus_reply_fn *fn, void *arg)
{
    assert (self && service && command && fn);
    s_broker_t *broker = s_pick (self);
    if (!broker)
        return 0;
    ChorusBus__Headers copy = CHORUS_BUS__HEADERS__INIT;
    if (headers)
        copy = *headers;
    if (copy.timeout_ms <= 0)
        copy.timeout_ms = self->default_timeout;
    s_request_t *request = calloc (1, sizeof (s_request_t));
    assert (request);
    request->handle = self->next_handle++;
    request->broker = broker;
    request->fn = fn;
    request->arg = arg;
    //  The broker answers at the deadline; this only covers a broker that cannot
    request->deadline = bus_proto_now () + copy.timeout_ms + self->heartbeat_ms;
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, request->handle);
    zhashx_insert (self->requests, key, request);
    broker->in_flight++;

    //  Sent from borrowed parts, without building a message
    msgpack_sbuffer sbuf = {0};
    if (codec_encode (&copy.base, &sbuf)) {
        free (sbuf.data);
        broker->in_flight--;
        zhashx_delete (self->requests, key);
        return 0;
    }
    bus_part_t args[] = {{key, strlen (key)},
                         {service, strlen (service)},
                         {command, strlen (command)},
                         {sbuf.data, sbuf.size},
                         {body && size ? body : "\x80", body && size ? size : 1}};
    if (flags & BUS_REQUEST_IDEMPOTENT) {
        request->retry = zmsg_new ();
        for (size_t i = 0; i < 5; i++)
            zmsg_addmem (request->retry, args[i].data, args[i].size);
    }
    //  A connection that is full, or gone before its monitor said so (a broker
    //  just killed), refuses at once: the next live broker takes the request
    int rc = bus_link_sendv (broker->link, BUS_REQUEST, args, 5);
    for (size_t tries = 1; rc && tries < self->count; tries++) {
        s_broker_t *next = s_pick (self);
        if (!next || next == broker)
            break;
        broker->in_flight--;
        broker = request->broker = next;
        broker->in_flight++;
        rc = bus_link_sendv (broker->link, BUS_REQUEST, args, 5);
    }
    free (sbuf.data);
    if (rc) {
        //  No connection takes it: the caller hears it at once
        broker->in_flight--;
        zhashx_delete (self->requests, key);
        return 0;
    }
    return request->handle;
}

uint64_t
bus_client_request_msg (bus_client_t *self, const char *service, const char *command,
                        const ChorusBus__Headers *headers, const ProtobufCMessage *body,
                        bus_reply_fn *fn, void *arg)
{
    zframe_t *frame = body ? codec_encode_frame (body) : NULL;
    uint64_t handle = bus_client_request (self, service, command, headers,
                                          frame ? zframe_data (frame) : NULL,
                                          frame ? zframe_size (frame) : 0, fn, arg);
    zframe_destroy (&frame);
    return handle;
}

void
bus_client_cancel (bus_client_t *self, uint64_t handle)
{
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, handle);
    s_request_t *request = (s_request_t *) zhashx_lookup (self->requests, key);
    if (!request)
        return;
    s_broker_t *broker = request->broker;
    if (broker->alive) {
        zmsg_t *args = zmsg_new ();
        zmsg_addstr (args, key);
        s_send (broker, BUS_CANCEL, &args);
    }
    broker->in_flight--;
    zhashx_delete (self->requests, key);
}

//  End a request with an error from our side (broker lost, deadline).
static void
s_fail (bus_client_t *self, s_request_t *request, const char *code, const char *message)
{
    bus_reply_t reply = {.handle = request->handle,
                         .kind = BUS_REPLY_ERROR,
                         .code = code,
                         .message = message};
    bus_reply_fn *fn = request->fn;
    void *arg = request->arg;
    char key[24];
    snprintf (key, sizeof key, "%" PRIu64, request->handle);
    request->broker->in_flight--;
    zhashx_delete (self->requests, key);
    fn (self, &reply, arg);
}

//  Resend an idempotent request that has had no reply through another live broker,
//  once; the deadline is what was left of it. Returns true when resent.
static bool
s_retry (bus_client_t *self, s_request_t *request)
{
    if (!request->retry || request->replied)
        return false;
    s_broker_t *broker = s_pick (self);
    int64_t left = request->deadline - self->heartbeat_ms - bus_proto_now ();
    if (!broker || left <= 0) {
        zmsg_destroy (&request->retry);
        return false;
    }
    zmsg_t *args = request->retry;
    request->retry = NULL;
    //  Headers are the fourth frame: set the time left
    zframe_t *frame = zmsg_first (args);
    for (int i = 0; i < 3 && frame; i++)
        frame = zmsg_next (args);
    ChorusBus__Headers *headers = frame ? (ChorusBus__Headers *) codec_decode_frame (
                                      &chorus_bus__headers__descriptor, frame, NULL, 0)
                                        : NULL;
    if (headers) {
        headers->timeout_ms = left;
        zframe_t *fresh = codec_encode_frame (&headers->base);
        zframe_reset (frame, zframe_data (fresh), zframe_size (fresh));
        zframe_destroy (&fresh);
        protobuf_c_message_free_unpacked (&headers->base, NULL);
    }
    request->broker->in_flight--;
    request->broker = broker;
    broker->in_flight++;
    if (self->log)
        core_log_info (self->log, NULL, "request %" PRIu64 " resent to %s",
                       request->handle, bus_link_endpoint (broker->link));
    return s_send (broker, BUS_REQUEST, &args) == 0;
}

//  A broker went away: every request it held ends with broker_lost, but idempotent
//  ones without a reply yet are resent through another broker.
static void
s_broker_lost (bus_client_t *self, s_broker_t *broker, const char *why)
{
    if (broker->alive && self->log)
        core_log_warn (self->log, NULL, "broker %s lost: %s",
                       bus_link_endpoint (broker->link), why);
    broker->alive = false;
    zlistx_t *held = zlistx_new ();
    for (s_request_t *request = (s_request_t *) zhashx_first (self->requests); request;
         request = (s_request_t *) zhashx_next (self->requests))
        if (request->broker == broker)
            zlistx_add_end (held, (void *) (uintptr_t) request->handle);
    for (void *item = zlistx_first (held); item; item = zlistx_next (held)) {
        char key[24];
        snprintf (key, sizeof key, "%" PRIu64, (uint64_t) (uintptr_t) item);
        s_request_t *request = (s_request_t *) zhashx_lookup (self->requests, key);
        if (request && !s_retry (self, request))
            s_fail (self, request, BUS_ERR_BROKER_LOST,
                    "the broker holding this request went away");
    }
    zlistx_destroy (&held);
}

static void
s_handle_message (bus_client_t *self, s_broker_t *broker, const bus_part_t *parts,
                  size_t count)
{
    bus_frames_t frames;
    char error[128];
    if (bus_proto_parse_parts (parts, count, false, &frames, error, sizeof error)
        || frames.worker) {
        if (self->log)
            core_log_warn (self->log, NULL, "bad frame from broker: %s", error);
        return;
    }
    if (frames.command == BUS_HEARTBEAT)
        return;
    if (frames.command != BUS_PARTIAL && frames.command != BUS_FINAL
        && frames.command != BUS_ERROR)
        return;
    char key[24];
    if (frames.args[0].size >= sizeof key)
        return;
    memcpy (key, frames.args[0].data, frames.args[0].size);
    key[frames.args[0].size] = 0;
    s_request_t *request = (s_request_t *) zhashx_lookup (self->requests, key);
    if (!request)
        return;  //  cancelled or already ended
    bus_reply_t reply = {.handle = request->handle};
    char code[64], message[256];
    bus_reply_fn *fn = request->fn;
    void *arg = request->arg;
    if (frames.command == BUS_ERROR) {
        bus_proto_error_decode_retry (frames.args[1].data, frames.args[1].size, code,
                                      sizeof code, message, sizeof message,
                                      &reply.retry_after_s);
        if (streq (code, BUS_ERR_BROKER_LOST)) {
            //  The broker is going away: use it no more, and resend if we may
            broker->alive = false;
            broker->connected = false;  //  until its connection comes back
            if (s_retry (self, request))
                return;
        }
        reply.kind = BUS_REPLY_ERROR;
        reply.code = code;
        reply.message = message;
    }
    else {
        reply.kind = frames.command == BUS_FINAL ? BUS_REPLY_FINAL : BUS_REPLY_PARTIAL;
        request->replied = true;
        reply.body = (const uint8_t *) frames.args[1].data;
        reply.size = frames.args[1].size;
    }
    if (reply.kind != BUS_REPLY_PARTIAL) {
        request->broker->in_flight--;
        zhashx_delete (self->requests, key);
    }
    fn (self, &reply, arg);
}

static void
s_handle_events (bus_client_t *self, s_broker_t *broker)
{
    bus_link_event_t event;
    while ((event = bus_link_event (broker->link)) != BUS_LINK_NONE) {
        if (event == BUS_LINK_UP) {
            broker->connected = broker->alive = true;
            if (self->log)
                core_log_info (self->log, NULL, "broker %s connected",
                               bus_link_endpoint (broker->link));
        }
        else {
            broker->connected = false;
            s_broker_lost (self, broker, "connection closed");
        }
    }
}

void
bus_client_process (bus_client_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        s_broker_t *broker = &self->brokers[i];
        s_handle_events (self, broker);
        zmq_msg_t msgs[BUS_MAX_PARTS];
        size_t count;
        while (bus_link_recv_parts (broker->link, msgs, BUS_MAX_PARTS, &count) == 0) {
            if (!broker->alive && broker->connected) {
                broker->alive = true;
                if (self->log)
                    core_log_info (self->log, NULL, "broker %s answers again",
                                   bus_link_endpoint (broker->link));
            }
            //  Replies are read in place: the callback borrows the body
            size_t held = count > BUS_MAX_PARTS ? BUS_MAX_PARTS : count;
            bus_part_t parts[BUS_MAX_PARTS];
            for (size_t p = 0; p < held; p++)
                parts[p] = (bus_part_t){zmq_msg_data (&msgs[p]), zmq_msg_size (&msgs[p])};
            if (count <= BUS_MAX_PARTS)
                s_handle_message (self, broker, parts, held);
            for (size_t p = 0; p < held; p++)
                zmq_msg_close (&msgs[p]);
        }
    }
}

int
bus_client_tick (bus_client_t *self)
{
    int64_t now = bus_proto_now ();
    int64_t window = (int64_t) self->heartbeat_ms * self->liveness;
    //  If our own loop stalled, we sent no heartbeats: silence proves nothing
    bool stalled = self->last_tick && now - self->last_tick > self->heartbeat_ms;
    self->last_tick = now;
    for (size_t i = 0; i < self->count; i++) {
        s_broker_t *broker = &self->brokers[i];
        if (stalled)
            bus_link_touch (broker->link);
        if (!broker->connected)
            continue;
        if (broker->alive && now - bus_link_last_recv (broker->link) > window)
            s_broker_lost (self, broker, "heartbeats stopped");
        if (now - bus_link_last_sent (broker->link) >= self->heartbeat_ms)
            s_send (broker, BUS_HEARTBEAT, NULL);
    }
    //  Safety net for deadlines a broker failed to enforce
    zlistx_t *late = zlistx_new ();
    for (s_request_t *request = (s_request_t *) zhashx_first (self->requests); request;
         request = (s_request_t *) zhashx_next (self->requests))
        if (request->deadline <= now)
            zlistx_add_end (late, (void *) (uintptr_t) request->handle);
    for (void *item = zlistx_first (late); item; item = zlistx_next (late)) {
        char key[24];
        snprintf (key, sizeof key, "%" PRIu64, (uint64_t) (uintptr_t) item);
        s_request_t *request = (s_request_t *) zhashx_lookup (self->requests, key);
        if (!request)
            continue;
        if (request->broker->alive) {
            zmsg_t *args = zmsg_new ();
            zmsg_addstr (args, key);
            s_send (request->broker, BUS_CANCEL, &args);
        }
        s_fail (self, request, BUS_ERR_DEADLINE,
                "the request's deadline passed before it ended");
    }
    zlistx_destroy (&late);
    int wait = self->heartbeat_ms / 4;
    return wait > 0 ? wait : 1;
}

void
bus_client_set_default_timeout (bus_client_t *self, int64_t timeout_ms)
{
    if (timeout_ms > 0)
        self->default_timeout = timeout_ms;
}

size_t
bus_client_in_flight (bus_client_t *self)
{
    return zhashx_size (self->requests);
}

size_t
bus_client_brokers_alive (bus_client_t *self)
{
    size_t alive = 0;
    for (size_t i = 0; i < self->count; i++)
        alive += self->brokers[i].alive;
    return alive;
}

size_t
bus_client_sockets (bus_client_t *self, zsock_t **sockets, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += bus_link_sockets (self->brokers[i].link, sockets + n, max - n);
    return n;
}

static int
s_on_socket (zloop_t *loop, zsock_t *reader, void *arg)
{
    bus_client_process ((bus_client_t *) arg);
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    bus_client_tick ((bus_client_t *) arg);
    return 0;
}

int
bus_client_attach (bus_client_t *self, zloop_t *loop)
{
    zsock_t *sockets[64];
    size_t count = bus_client_sockets (self, sockets, 64);
    for (size_t i = 0; i < count; i++)
        if (zloop_reader (loop, sockets[i], s_on_socket, self))
            return -1;
    int wait = self->heartbeat_ms / 4;
    self->timer = zloop_timer (loop, (size_t) (wait > 0 ? wait : 1), 0, s_on_timer, self);
    self->loop = loop;
    return self->timer >= 0 ? 0 : -1;
}

void
bus_client_detach (bus_client_t *self, zloop_t *loop)
{
    zsock_t *sockets[64];
    size_t count = bus_client_sockets (self, sockets, 64);
    for (size_t i = 0; i < count; i++)
        zloop_reader_end (loop, sockets[i]);
    zloop_timer_end (loop, self->timer);
    self->loop = NULL;
}

//  --------------------------------------------------------------------------
//  Selftest: a client against a real broker and real echo replicas over tcp.

#include "bus_broker.h"
#include "bus_echo.h"

typedef struct {
    int partials;      //  partial replies seen
    int finals;        //  final replies seen
    int errors;        //  errors seen
    char code[64];     //  last error code
    char replica[64];  //  replica of the last final
} s_tally_t;

static void
s_tally (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        tally->partials++;
    else if (reply->kind == BUS_REPLY_FINAL) {
        tally->finals++;
        ChorusBus__Echo *echo = (ChorusBus__Echo *) codec_decode (
            &chorus_bus__echo__descriptor, reply->body, reply->size, NULL, 0);
        if (echo) {
            snprintf (tally->replica, sizeof tally->replica, "%s", echo->replica);
            protobuf_c_message_free_unpacked (&echo->base, NULL);
        }
    }
    else {
        tally->errors++;
        snprintf (tally->code, sizeof tally->code, "%s", reply->code);
    }
}

//  Run the client's loop until done() or the time is up.
static void
s_run_until (bus_client_t *client, s_tally_t *tally, int want, int64_t max_ms)
{
    zsock_t *sockets[16];
    size_t count = bus_client_sockets (client, sockets, 16);
    zpoller_t *poller = zpoller_new (NULL);
    for (size_t i = 0; i < count; i++)
        zpoller_add (poller, sockets[i]);
    int64_t end = bus_proto_now () + max_ms;
    while (tally->finals + tally->errors < want && bus_proto_now () < end) {
        zpoller_wait (poller, 10);
        bus_client_process (client);
        bus_client_tick (client);
    }
    zpoller_destroy (&poller);
}

static uint64_t
s_echo (bus_client_t *client, const char *service, uint32_t parts, uint32_t delay,
        int64_t timeout, s_tally_t *tally)
{
    ChorusBus__Echo echo = CHORUS_BUS__ECHO__INIT;
    echo.data.data = (uint8_t *) "hello";
    echo.data.len = 5;
    echo.parts = parts;
    echo.delay_ms = delay;
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "test";
    headers.timeout_ms = timeout;
    return bus_client_request_msg (client, service, "echo", &headers, &echo.base, s_tally,
                                   tally);
}

//  Two brokers, one replica on both: when a broker dies, idempotent requests it
//  held are answered through the other one; the others end with broker_lost;
//  new ones go to the other one, also before the client heard of the loss.
static void
s_test_retry (bool verbose)
{
    bus_broker_config_t config = {
        .log_level = "error", .heartbeat_ms = 100, .liveness = 3};
    zactor_t *brokers[2];
    char endpoints[2][64];
    for (int i = 0; i < 2; i++) {
        brokers[i] = zactor_new (bus_broker_actor, &config);
        zstr_sendx (brokers[i], "BIND", "tcp://127.0.0.1:*", NULL);
        int port;
        zsock_recv (brokers[i], "i", &port);
        assert (port > 0);
        snprintf (endpoints[i], sizeof endpoints[i], "tcp://127.0.0.1:%d", port);
    }
    char both[140];
    snprintf (both, sizeof both, "%s,%s", endpoints[0], endpoints[1]);
    bus_echo_config_t echo_config = {.brokers = both,
                                     .service = "echo",
                                     .credit = 8,
                                     .replica = "r",
                                     .heartbeat_ms = 100,
                                     .liveness = 3,
                                     .log_level = "error"};
    zactor_t *echo = zactor_new (bus_echo_actor, &echo_config);
    core_log_t *log = core_log_new ("retry", verbose ? "debug" : "error");
    bus_client_t *client = bus_client_new (both, 100, 3, log);
    s_tally_t probe = {0};
    for (int i = 0; i < 200 && bus_client_brokers_alive (client) < 2; i++)
        s_run_until (client, &probe, 1, 10);
    zclock_sleep (200);  //  the replica registers with both
    ChorusBus__Echo body = CHORUS_BUS__ECHO__INIT;
    body.delay_ms = 300;
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.timeout_ms = 5000;
    zframe_t *frame = codec_encode_frame (&body.base);
    //  Round robin: requests alternate between the brokers
    s_tally_t idem[4] = {{0}}, plain[2] = {{0}};
    for (int i = 0; i < 4; i++)
        assert (bus_client_request_ex (client, "echo", "echo", &headers,
                                       zframe_data (frame), zframe_size (frame),
                                       BUS_REQUEST_IDEMPOTENT, s_tally, &idem[i]));
    for (int i = 0; i < 2; i++)
        assert (bus_client_request (client, "echo", "echo", &headers, zframe_data (frame),
                                    zframe_size (frame), s_tally, &plain[i]));
    s_run_until (client, &probe, 1, 50);
    zactor_destroy (&brokers[0]);
    //  Its connection is gone before we read the monitor's word of it: requests
    //  that pick it go through the other broker instead of being refused
    zclock_sleep (300);
    s_tally_t late[4] = {{0}};
    for (int i = 0; i < 4; i++)
        assert (bus_client_request (client, "echo", "echo", &headers, zframe_data (frame),
                                    zframe_size (frame), s_tally, &late[i]));
    zframe_destroy (&frame);
    int64_t end = bus_proto_now () + 3000;
    int done = 0;
    while (done < 10 && bus_proto_now () < end) {
        s_run_until (client, &probe, 1, 10);
        done = 0;
        for (int i = 0; i < 4; i++)
            done += idem[i].finals + idem[i].errors + late[i].finals + late[i].errors;
        for (int i = 0; i < 2; i++)
            done += plain[i].finals + plain[i].errors;
    }
    for (int i = 0; i < 4; i++)
        assert (late[i].finals == 1 && late[i].errors == 0);
    for (int i = 0; i < 4; i++) {
        if (verbose || idem[i].finals != 1)
            printf ("idem %d: finals %d errors %d %s\n", i, idem[i].finals,
                    idem[i].errors, idem[i].code);
        assert (idem[i].finals == 1 && idem[i].errors == 0);
    }
    assert (plain[0].errors + plain[1].errors == 1);
    assert (streq (plain[0].errors ? plain[0].code : plain[1].code, BUS_ERR_BROKER_LOST));
    bus_client_destroy (&client);
    zactor_destroy (&echo);
    zactor_destroy (&brokers[1]);
    core_log_destroy (&log);
}

void
bus_client_test (bool verbose)
{
    printf (" * bus_client: ");
    s_test_retry (verbose);
    bus_broker_config_t broker_config = {.id = "b1",
                                         .log_level = verbose ? "debug" : "error",
                                         .heartbeat_ms = 100,
                                         .liveness = 3};
    zactor_t *broker = zactor_new (bus_broker_actor, &broker_config);
    zstr_sendx (broker, "BIND", "tcp://127.0.0.1:*", NULL);
    int port;
    zsock_recv (broker, "i", &port);
    assert (port > 0);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    bus_echo_config_t echo_config = {.brokers = endpoint,
                                     .service = "echo",
                                     .credit = 2,
                                     .replica = "r1",
                                     .heartbeat_ms = 100,
                                     .liveness = 3,
                                     .log_level = "error"};
    zactor_t *echo1 = zactor_new (bus_echo_actor, &echo_config);
    core_log_t *log = core_log_new ("test", verbose ? "debug" : "error");
    bus_client_t *client = bus_client_new (endpoint, 100, 3, log);
    assert (client);

    //  Wait until the broker is connected and the replica registered
    s_tally_t tally = {0};
    for (int attempt = 0; attempt < 100; attempt++) {
        memset (&tally, 0, sizeof tally);
        s_run_until (client, &tally, 1, 20);
        if (bus_client_brokers_alive (client) == 0)
            continue;
        if (s_echo (client, "echo", 0, 0, 1000, &tally) == 0)
            continue;
        s_run_until (client, &tally, 1, 2000);
        if (tally.finals == 1)
            break;
        zclock_sleep (20);
    }
    assert (tally.finals == 1);

    //  A streamed reply: partials in order, then the final
    memset (&tally, 0, sizeof tally);
    assert (s_echo (client, "echo", 5, 0, 2000, &tally));
    s_run_until (client, &tally, 1, 2000);
    assert (tally.partials == 5 && tally.finals == 1 && tally.errors == 0);

    //  Unknown service: unavailable at once
    memset (&tally, 0, sizeof tally);
    assert (s_echo (client, "nobody", 0, 0, 2000, &tally));
    s_run_until (client, &tally, 1, 2000);
    assert (tally.errors == 1 && streq (tally.code, BUS_ERR_UNAVAILABLE));

    //  Deadline: a slow reply ends with deadline_exceeded at its deadline
    memset (&tally, 0, sizeof tally);
    int64_t start = bus_proto_now ();
    assert (s_echo (client, "echo", 0, 2000, 150, &tally));
    s_run_until (client, &tally, 1, 3000);
    assert (tally.errors == 1 && streq (tally.code, BUS_ERR_DEADLINE));
    assert (bus_proto_now () - start < 1000);

    //  Cancel reaches the worker, and no callback comes afterwards
    memset (&tally, 0, sizeof tally);
    uint64_t handle = s_echo (client, "echo", 0, 1000, 5000, &tally);
    s_run_until (client, &tally, 1, 100);
    bus_client_cancel (client, handle);
    s_run_until (client, &tally, 1, 300);
    assert (tally.finals == 0 && tally.errors == 0);
    uint64_t handled, cancels = 0;
    for (int attempt = 0; attempt < 50 && cancels < 2; attempt++) {
        zstr_send (echo1, "STATS");
        zsock_recv (echo1, "88", &handled, &cancels);
        zclock_sleep (10);
    }
    assert (cancels >= 2);  //  the deadline above and this cancel

    //  Two replicas share the load by credit: with 8 slow requests and credit 2
    //  each, both replicas answer
    echo_config.replica = "r2";
    zactor_t *echo2 = zactor_new (bus_echo_actor, &echo_config);
    zclock_sleep (200);
    s_tally_t many[8];
    memset (many, 0, sizeof many);
    for (int i = 0; i < 8; i++)
        assert (s_echo (client, "echo", 0, 50, 5000, &many[i]));
    int64_t end = bus_proto_now () + 3000;
    int done = 0, r1 = 0, r2 = 0;
    while (done < 8 && bus_proto_now () < end) {
        s_tally_t none = {0};
        s_run_until (client, &none, 1, 10);
        done = 0;
        for (int i = 0; i < 8; i++)
            done += many[i].finals + many[i].errors;
    }
    for (int i = 0; i < 8; i++) {
        assert (many[i].finals == 1);
        r1 += streq (many[i].replica, "r1");
        r2 += streq (many[i].replica, "r2");
    }
    assert (r1 >= 2 && r2 >= 2 && r1 + r2 == 8);

    //  A replica that dies mid-request: worker_lost, fast; the next request goes to
    //  the other replica
    memset (&tally, 0, sizeof tally);
    s_tally_t second = {0};
    uint64_t first_handle = s_echo (client, "echo", 0, 3000, 10000, &tally);
    uint64_t second_handle = s_echo (client, "echo", 0, 3000, 10000, &second);
    assert (first_handle && second_handle);
    s_run_until (client, &tally, 1, 100);
    start = bus_proto_now ();
    zactor_destroy (&echo1);
    s_tally_t both = {0};
    end = bus_proto_now () + 2000;
    while (tally.errors + second.errors < 1 && bus_proto_now () < end)
        s_run_until (client, &both, 1, 10);
    assert (tally.errors + second.errors == 1);
    assert (streq (tally.errors ? tally.code : second.code, BUS_ERR_WORKER_LOST));
    bus_client_cancel (client, first_handle);
    bus_client_cancel (client, second_handle);
    //  well within the heartbeat window (100 ms x 3 in this test), because the
    //  closed connection is noticed, not the missing heartbeats
    if (verbose)
        printf ("worker lost after %d ms ", (int) (bus_proto_now () - start));
    assert (bus_proto_now () - start < 250);
    memset (&tally, 0, sizeof tally);
    assert (s_echo (client, "echo", 0, 0, 2000, &tally));
    s_run_until (client, &tally, 1, 2000);
    assert (tally.finals == 1 && streq (tally.replica, "r2"));

    //  The broker goes away: held requests end with broker_lost, new ones find none
    memset (&tally, 0, sizeof tally);
    assert (s_echo (client, "echo", 0, 3000, 10000, &tally));
    s_run_until (client, &tally, 1, 50);
    zactor_destroy (&broker);
    s_run_until (client, &tally, 1, 2000);
    if (tally.errors != 1 || !streq (tally.code, BUS_ERR_BROKER_LOST))
        printf ("finals %d errors %d code %s ", tally.finals, tally.errors, tally.code);
    assert (tally.errors == 1 && streq (tally.code, BUS_ERR_BROKER_LOST));
    for (int i = 0; i < 100 && bus_client_brokers_alive (client); i++)
        s_run_until (client, &tally, 2, 10);
    assert (bus_client_brokers_alive (client) == 0);
    assert (s_echo (client, "echo", 0, 0, 1000, &tally) == 0);

    bus_client_destroy (&client);
    bus_client_destroy (&client);
    zactor_destroy (&echo2);
    core_log_destroy (&log);
    printf ("OK\n");
}
