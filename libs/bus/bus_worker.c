/*  bus_worker: a service replica on the bus. One DEALER per broker; the credit is
    shared out between the brokers that are up, so that all of them together never
    hand this replica more than it can hold (at least one each).                  */
#include "bus_worker.h"

#include <assert.h>
#include <inttypes.h>
#include <unistd.h>

#include "bus_link.h"
#include "bus_proto.h"
#include "codec_msgpack.h"

typedef struct {
    bus_link_t *link;    //  connection to this broker
    bool connected;      //  transport is up
    bool registered;     //  READY sent since the transport came up
    uint32_t announced;  //  credit this broker was last told
} s_broker_t;

struct _bus_request_t {
    char key[40];                 //  "<broker>:<task>", the requests table key
    char task[24];                //  the broker's task id
    s_broker_t *broker;           //  broker it came through
    char command[BUS_NAME_MAX];   //  command name
    ChorusBus__Headers *headers;  //  decoded headers (never NULL)
    zmq_msg_t body;               //  msgpack body, as received
    int64_t deadline;             //  monotonic ms
    bool cancelled;               //  ended towards the broker already
    void *data;                   //  owner's data
};

struct _bus_worker_t {
    s_broker_t *brokers;         //  one per broker endpoint
    size_t count;                //  number of brokers
    char *service;               //  service we serve
    char replica[BUS_NAME_MAX];  //  our replica id
    uint32_t credit;             //  requests we hold at once, in total
    bool draining;               //  stop taking work
    bool said_goodbye;           //  DISCONNECT sent after draining
    zhashx_t *requests;          //  key -> bus_request_t (owned by the owner)
    int heartbeat_ms;            //  heartbeat interval
    int liveness;                //  missed heartbeats before a broker is dead
    bus_worker_fn *on_request;   //  new request callback
    bus_worker_fn *on_cancel;    //  cancel callback
    void *arg;                   //  their argument
    core_log_t *log;             //  logger (borrowed)
    int timer;                   //  zloop timer id
    int64_t last_tick;           //  when tick last ran (ms)
};

bus_worker_t *
bus_worker_new (const char *brokers, const char *service, uint32_t credit,
                const char *replica, int heartbeat_ms, int liveness, core_log_t *log)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints || !service || strlen (service) >= BUS_NAME_MAX) {
        zlist_destroy (&endpoints);
        return NULL;
    }
    bus_worker_t *self = calloc (1, sizeof (bus_worker_t));
    assert (self);
    self->service = strdup (service);
    if (replica)
        snprintf (self->replica, sizeof self->replica, "%s", replica);
    else {
        char host[40] = "host";
        gethostname (host, sizeof host - 1);
        snprintf (self->replica, sizeof self->replica, "%.40s:%d", host, (int) getpid ());
    }
    self->credit = credit > 0 ? credit : 1;
    self->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 500;
    self->liveness = liveness > 0 ? liveness : 4;
    self->log = log;
    self->timer = -1;
    self->requests = zhashx_new ();
    self->count = zlist_size (endpoints);
    self->brokers = calloc (self->count, sizeof (s_broker_t));
    assert (self->brokers);
    size_t i = 0;
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints), i++) {
        s_broker_t *broker = &self->brokers[i];
        broker->link = bus_link_new (endpoint, BUS_PROTO_WORKER, log);
        broker->connected = bus_link_unmonitored (broker->link);
    }
    zlist_destroy (&endpoints);
    return self;
}

static void
s_request_free (bus_request_t **request_p)
{
    bus_request_t *request = *request_p;
    if (!request)
        return;
    if (request->headers)
        protobuf_c_message_free_unpacked (&request->headers->base, NULL);
    zmq_msg_close (&request->body);
    free (request);
    *request_p = NULL;
}

void
bus_worker_destroy (bus_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_worker_t *self = *self_p;
    //  Requests the owner never ended are freed here
    for (bus_request_t *request = (bus_request_t *) zhashx_first (self->requests);
         request; request = (bus_request_t *) zhashx_next (self->requests))
        s_request_free (&request);
    zhashx_destroy (&self->requests);
    for (size_t i = 0; i < self->count; i++) {
        bus_link_destroy (&self->brokers[i].link);
    }
    free (self->brokers);
    free (self->service);
    free (self);
    *self_p = NULL;
}

void
bus_worker_set_handlers (bus_worker_t *self, bus_worker_fn *on_request,
                         bus_worker_fn *on_cancel, void *arg)
{
    self->on_request = on_request;
    self->on_cancel = on_cancel;
    self->arg = arg;
}

static int
s_send (s_broker_t *broker, uint8_t command, zmsg_t **args_p)
{
    return bus_link_send (broker->link, command, args_p);
}

//  Credit each broker should hold now: ours shared out, at least one each.
static uint32_t
s_share (bus_worker_t *self)
{
    if (self->draining)
        return 0;
    uint32_t up = 0;
    for (size_t i = 0; i < self->count; i++)
        up += self->brokers[i].connected;
    if (up == 0)
        up = 1;
    uint32_t share = (self->credit + up - 1) / up;
    return share > 0 ? share : 1;
}

static zframe_t *
s_ready_frame (bus_worker_t *self, uint32_t credit)
{
    ChorusBus__WorkerReady ready = CHORUS_BUS__WORKER_READY__INIT;
    ready.credit = credit;
    ready.replica = self->replica;
    return codec_encode_frame (&ready.base);
}

static void
s_register (bus_worker_t *self, s_broker_t *broker)
{
    uint32_t share = s_share (self);
    zmsg_t *args = zmsg_new ();
    zmsg_addstr (args, self->service);
    zmsg_append (args, &(zframe_t *){s_ready_frame (self, share)});
    //  Not sent (the connection is not up yet): the next tick tries again
    broker->registered = s_send (broker, BUS_READY, &args) == 0;
    broker->announced = share;
    bus_link_touch (broker->link);
}

//  Tell registered brokers about a changed share.
static void
s_announce (bus_worker_t *self)
{
    uint32_t share = s_share (self);
    for (size_t i = 0; i < self->count; i++) {
        s_broker_t *broker = &self->brokers[i];
        if (broker->registered && broker->announced != share) {
            zmsg_t *args = zmsg_new ();
            zmsg_append (args, &(zframe_t *){s_ready_frame (self, share)});
            s_send (broker, BUS_CREDIT, &args);
            broker->announced = share;
        }
    }
}

//  End a request towards its broker with an error, and tell the owner.
static void
s_cancel (bus_worker_t *self, bus_request_t *request, const char *code,
          const char *message)
{
    if (request->cancelled)
        return;
    request->cancelled = true;
    if (request->broker->connected) {
        zmsg_t *args = zmsg_new ();
        zmsg_addstr (args, request->task);
        zmsg_append (args, &(zframe_t *){bus_proto_error_frame (code, message)});
        s_send (request->broker, BUS_ERROR, &args);
    }
    if (self->on_cancel)
        self->on_cancel (self, request, self->arg);
}

static void
s_broker_lost (bus_worker_t *self, s_broker_t *broker, const char *why)
{
    if (self->log && broker->registered)
        core_log_warn (self->log, NULL, "broker %s lost: %s",
                       bus_link_endpoint (broker->link), why);
    broker->registered = false;
    zlistx_t *held = zlistx_new ();
    for (bus_request_t *request = (bus_request_t *) zhashx_first (self->requests);
         request; request = (bus_request_t *) zhashx_next (self->requests))
        if (request->broker == broker && !request->cancelled)
            zlistx_add_end (held, request);
    for (bus_request_t *request = (bus_request_t *) zlistx_first (held); request;
         request = (bus_request_t *) zlistx_next (held))
        //  worker_lost, not broker_lost: a broker that is alive after all relays
        //  the error, and its clients take broker_lost for that broker going away
        s_cancel (self, request, BUS_ERR_WORKER_LOST, why);
    zlistx_destroy (&held);
}

static void
s_handle_request (bus_worker_t *self, s_broker_t *broker, bus_frames_t *frames,
                  zmq_msg_t *body)
{
    bus_request_t *request = calloc (1, sizeof (bus_request_t));
    assert (request);
    zmq_msg_init (&request->body);
    request->broker = broker;
    char why[128] = "";
    if (bus_proto_name (&frames->args[0], request->task, sizeof request->task)
        || bus_proto_name (&frames->args[1], request->command, sizeof request->command)) {
        zmq_msg_close (&request->body);
        free (request);
        return;  //  the broker sent junk; it will time the request out
    }
    snprintf (request->key, sizeof request->key, "%zu:%s",
              (size_t) (broker - self->brokers), request->task);
    request->headers = (ChorusBus__Headers *) codec_decode (
        &chorus_bus__headers__descriptor, frames->args[2].data, frames->args[2].size, why,
        sizeof why);
    int64_t timeout = request->headers ? request->headers->timeout_ms : 0;
    request->deadline = bus_proto_now () + (timeout > 0 ? timeout : 1);
    //  The body stays in ZeroMQ's message: moved, not copied
    zmq_msg_move (&request->body, body);
    zhashx_insert (self->requests, request->key, request);
    if (!request->headers) {
        char message[200];
        snprintf (message, sizeof message, "bad headers: %s", why);
        request->headers = malloc (sizeof (ChorusBus__Headers));
        assert (request->headers);
        chorus_bus__headers__init (request->headers);
        bus_worker_error (self, &request, BUS_ERR_BAD_REQUEST, message);
        return;
    }
    if (self->on_request)
        self->on_request (self, request, self->arg);
    else
        bus_worker_error (self, &request, BUS_ERR_UNKNOWN_COMMAND, "no handler");
}

//  One message from a broker: parts are views of msgs (the request body is moved
//  out of msgs into the request).
static void
s_handle_message (bus_worker_t *self, s_broker_t *broker, const bus_part_t *parts,
                  size_t count, zmq_msg_t *msgs)
{
    bus_frames_t frames;
    char error[128];
    if (bus_proto_parse_parts (parts, count, false, &frames, error, sizeof error)
        || !frames.worker) {
        if (self->log)
            core_log_warn (self->log, NULL, "bad frame from broker: %s", error);
        return;
    }
    switch (frames.command) {
        case BUS_REQUEST:
            //  [CHW1, REQUEST, task, command, headers, body]
            s_handle_request (self, broker, &frames, &msgs[5]);
            break;
        case BUS_CANCEL: {
            char task[24], key[40];
            if (bus_proto_name (&frames.args[0], task, sizeof task))
                break;
            snprintf (key, sizeof key, "%zu:%s", (size_t) (broker - self->brokers), task);
            bus_request_t *request = (bus_request_t *) zhashx_lookup (self->requests,
                                                                      key);
            if (request)
                s_cancel (self, request, BUS_ERR_CANCELLED, "cancelled by the client");
            break;
        }
        case BUS_DISCONNECT:
            //  The broker does not know us (it restarted, or dropped us)
            s_broker_lost (self, broker, "broker asked us to register again");
            if (!self->said_goodbye)
                s_register (self, broker);
            break;
        default:
            break;
    }
}

static void
s_handle_events (bus_worker_t *self, s_broker_t *broker)
{
    bus_link_event_t event;
    while ((event = bus_link_event (broker->link)) != BUS_LINK_NONE) {
        broker->connected = event == BUS_LINK_UP;
        if (event == BUS_LINK_UP && !self->said_goodbye)
            s_register (self, broker);
        else if (event == BUS_LINK_DOWN)
            s_broker_lost (self, broker, "connection closed");
        s_announce (self);
    }
}

void
bus_worker_process (bus_worker_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        s_broker_t *broker = &self->brokers[i];
        s_handle_events (self, broker);
        zmq_msg_t msgs[BUS_MAX_PARTS];
        size_t count;
        while (bus_link_recv_parts (broker->link, msgs, BUS_MAX_PARTS, &count) == 0) {
            size_t held = count > BUS_MAX_PARTS ? BUS_MAX_PARTS : count;
            bus_part_t parts[BUS_MAX_PARTS];
            for (size_t p = 0; p < held; p++)
                parts[p] = (bus_part_t){zmq_msg_data (&msgs[p]), zmq_msg_size (&msgs[p])};
            if (count <= BUS_MAX_PARTS)
                s_handle_message (self, broker, parts, held, msgs);
            for (size_t p = 0; p < held; p++)
                zmq_msg_close (&msgs[p]);
        }
    }
}

int
bus_worker_tick (bus_worker_t *self)
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
        if (!broker->connected || self->said_goodbye)
            continue;
        if (!broker->registered) {
            s_register (self, broker);
            continue;
        }
        if (now - bus_link_last_recv (broker->link) > window) {
            //  A silent broker: start over with it
            s_broker_lost (self, broker, "heartbeats stopped");
            s_register (self, broker);
        }
        else if (now - bus_link_last_sent (broker->link) >= self->heartbeat_ms)
            s_send (broker, BUS_HEARTBEAT, NULL);
    }
    zlistx_t *late = zlistx_new ();
    for (bus_request_t *request = (bus_request_t *) zhashx_first (self->requests);
         request; request = (bus_request_t *) zhashx_next (self->requests))
        if (!request->cancelled && request->deadline <= now)
            zlistx_add_end (late, request);
    for (bus_request_t *request = (bus_request_t *) zlistx_first (late); request;
         request = (bus_request_t *) zlistx_next (late))
        s_cancel (self, request, BUS_ERR_DEADLINE, "deadline passed in the worker");
    zlistx_destroy (&late);
    int wait = self->heartbeat_ms / 4;
    return wait > 0 ? wait : 1;
}

//  After an answer: say goodbye once drained.
static void
s_after_end (bus_worker_t *self)
{
    if (self->draining && !self->said_goodbye && zhashx_size (self->requests) == 0) {
        for (size_t i = 0; i < self->count; i++)
            if (self->brokers[i].registered) {
                s_send (&self->brokers[i], BUS_DISCONNECT, NULL);
                self->brokers[i].registered = false;
            }
        self->said_goodbye = true;
    }
}

static void
s_reply (bus_worker_t *self, bus_request_t *request, uint8_t command, zframe_t **body_p)
{
    if (request->cancelled || !request->broker->connected) {
        zframe_destroy (body_p);
        return;
    }
    bus_part_t args[] = {{request->task, strlen (request->task)},
                         {zframe_data (*body_p), zframe_size (*body_p)}};
    bus_link_sendv (request->broker->link, command, args, 2);
    zframe_destroy (body_p);
}

int
bus_worker_partial (bus_worker_t *self, bus_request_t *request, const void *body,
                    size_t size)
{
    if (request->cancelled)
        return -1;
    zframe_t *frame = zframe_new (body, size);
    s_reply (self, request, BUS_PARTIAL, &frame);
    return 0;
}

int
bus_worker_partial_msg (bus_worker_t *self, bus_request_t *request,
                        const ProtobufCMessage *body)
{
    if (request->cancelled)
        return -1;
    zframe_t *frame = codec_encode_frame (body);
    s_reply (self, request, BUS_PARTIAL, &frame);
    return 0;
}

static void
s_end (bus_worker_t *self, bus_request_t **request_p, uint8_t command, zframe_t **body_p)
{
    bus_request_t *request = *request_p;
    s_reply (self, request, command, body_p);
    zhashx_delete (self->requests, request->key);
    s_request_free (request_p);
    s_after_end (self);
}

void
bus_worker_final (bus_worker_t *self, bus_request_t **request_p, const void *body,
                  size_t size)
{
    zframe_t *frame = body && size ? zframe_new (body, size) : zframe_new ("\x80", 1);
    s_end (self, request_p, BUS_FINAL, &frame);
}

void
bus_worker_final_msg (bus_worker_t *self, bus_request_t **request_p,
                      const ProtobufCMessage *body)
{
    zframe_t *frame = codec_encode_frame (body);
    s_end (self, request_p, BUS_FINAL, &frame);
}

void
bus_worker_error (bus_worker_t *self, bus_request_t **request_p, const char *code,
                  const char *message)
{
    bus_worker_error_retry (self, request_p, code, message, 0);
}

void
bus_worker_error_retry (bus_worker_t *self, bus_request_t **request_p, const char *code,
                        const char *message, uint32_t retry_after_s)
{
    zframe_t *frame = bus_proto_error_frame_retry (code, message, retry_after_s);
    s_end (self, request_p, BUS_ERROR, &frame);
}

void
bus_worker_drain (bus_worker_t *self)
{
    if (self->draining)
        return;
    self->draining = true;
    s_announce (self);
    s_after_end (self);
}

bool
bus_worker_drained (bus_worker_t *self)
{
    return self->draining && zhashx_size (self->requests) == 0;
}

size_t
bus_worker_in_flight (bus_worker_t *self)
{
    return zhashx_size (self->requests);
}

uint32_t
bus_worker_credit (bus_worker_t *self)
{
    return self->credit;
}

const char *
bus_worker_replica (bus_worker_t *self)
{
    return self->replica;
}

size_t
bus_worker_brokers_alive (bus_worker_t *self)
{
    size_t alive = 0;
    for (size_t i = 0; i < self->count; i++)
        alive += self->brokers[i].registered;
    return alive;
}

const char *
bus_request_command (bus_request_t *request)
{
    return request->command;
}

const ChorusBus__Headers *
bus_request_headers (bus_request_t *request)
{
    return request->headers;
}

const uint8_t *
bus_request_body (bus_request_t *request)
{
    return (const uint8_t *) zmq_msg_data (&request->body);
}

size_t
bus_request_size (bus_request_t *request)
{
    return zmq_msg_size (&request->body);
}

void
bus_request_drop_body (bus_request_t *request)
{
    zmq_msg_close (&request->body);
    zmq_msg_init (&request->body);
}

int64_t
bus_request_deadline (bus_request_t *request)
{
    return request->deadline;
}

bool
bus_request_cancelled (bus_request_t *request)
{
    return request->cancelled;
}

void
bus_request_set_data (bus_request_t *request, void *data)
{
    request->data = data;
}

void *
bus_request_data (bus_request_t *request)
{
    return request->data;
}

size_t
bus_worker_sockets (bus_worker_t *self, zsock_t **sockets, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += bus_link_sockets (self->brokers[i].link, sockets + n, max - n);
    return n;
}

static int
s_on_socket (zloop_t *loop, zsock_t *reader, void *arg)
{
    bus_worker_process ((bus_worker_t *) arg);
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    bus_worker_tick ((bus_worker_t *) arg);
    return 0;
}

int
bus_worker_attach (bus_worker_t *self, zloop_t *loop)
{
    zsock_t *sockets[64];
    size_t count = bus_worker_sockets (self, sockets, 64);
    for (size_t i = 0; i < count; i++)
        if (zloop_reader (loop, sockets[i], s_on_socket, self))
            return -1;
    int wait = self->heartbeat_ms / 4;
    self->timer = zloop_timer (loop, (size_t) (wait > 0 ? wait : 1), 0, s_on_timer, self);
    bus_worker_tick (self);
    return self->timer >= 0 ? 0 : -1;
}

void
bus_worker_detach (bus_worker_t *self, zloop_t *loop)
{
    zsock_t *sockets[64];
    size_t count = bus_worker_sockets (self, sockets, 64);
    for (size_t i = 0; i < count; i++)
        zloop_reader_end (loop, sockets[i]);
    if (self->timer >= 0)
        zloop_timer_end (loop, self->timer);
    self->timer = -1;
}

//  --------------------------------------------------------------------------
//  Selftest: draining. A draining replica takes no new work, finishes what it
//  holds, then leaves the broker, which then has no replica of the service.

#include "bus_broker.h"
#include "bus_client.h"

static void
s_count_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    int *counts = (int *) arg;
    counts[reply->kind]++;
    if (reply->kind == BUS_REPLY_ERROR)
        counts[0] = streq (reply->code, BUS_ERR_UNAVAILABLE) ? 1 : -1;
}

static void
s_hold (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    zlistx_add_end ((zlistx_t *) arg, request);
}

//  Records the error code and retry_after_s of a reply.
static void
s_retry_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    char *seen = (char *) arg;
    if (reply->kind == BUS_REPLY_ERROR)
        snprintf (seen, 64, "%s %u", reply->code, reply->retry_after_s);
}

//  Pump worker and client until held has more than n requests or the time is up.
static void
s_pump (bus_worker_t *worker, bus_client_t *client, zlistx_t *held, size_t n)
{
    for (int i = 0; i < 200 && zlistx_size (held) <= n; i++) {
        zclock_sleep (5);
        bus_worker_process (worker);
        bus_client_process (client);
    }
}

void
bus_worker_test (bool verbose)
{
    printf (" * bus_worker: ");
    bus_broker_config_t config = {.id = "bw", .log_level = "error", .heartbeat_ms = 100};
    zactor_t *broker = zactor_new (bus_broker_actor, &config);
    zstr_sendx (broker, "BIND", "inproc://worker-test", NULL);
    int port;
    zsock_recv (broker, "i", &port);
    assert (port == 0);
    core_log_t *log = core_log_new ("test", "error");
    bus_worker_t *worker = bus_worker_new ("inproc://worker-test", "held", 4, "w1", 100,
                                           3, log);
    assert (worker);
    zlistx_t *held = zlistx_new ();
    bus_worker_set_handlers (worker, s_hold, NULL, held);
    bus_client_t *client = bus_client_new ("inproc://worker-test", 100, 3, log);
    bus_worker_tick (worker);

    int counts[4] = {0};
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.timeout_ms = 5000;
    for (int attempt = 0; attempt < 100 && zlistx_size (held) == 0; attempt++) {
        if (bus_worker_brokers_alive (worker))
            bus_client_request (client, "held", "x", &headers, NULL, 0, s_count_reply,
                                counts);
        zclock_sleep (20);
        bus_worker_process (worker);
        bus_client_process (client);
        bus_worker_tick (worker);
        bus_client_tick (client);
    }
    assert (zlistx_size (held) >= 1);
    assert (streq (bus_request_command ((bus_request_t *) zlistx_first (held)), "x"));
    //  Identity headers reach the worker; an error with retry advice reaches the
    //  client with it
    ChorusBus__Headers identity = CHORUS_BUS__HEADERS__INIT;
    identity.timeout_ms = 5000;
    identity.tenant_id = "t1";
    identity.session_id = "s1";
    identity.api_key_id = "k1";
    identity.client_ip = "192.0.2.7";
    char seen[64] = "";
    size_t before = zlistx_size (held);
    assert (bus_client_request (client, "held", "limited", &identity, NULL, 0,
                                s_retry_reply, seen));
    s_pump (worker, client, held, before);
    bus_request_t *limited = (bus_request_t *) zlistx_last (held);
    zlistx_detach_cur (held);
    assert (limited && streq (bus_request_command (limited), "limited"));
    const ChorusBus__Headers *got = bus_request_headers (limited);
    assert (streq (got->session_id, "s1") && streq (got->api_key_id, "k1"));
    assert (streq (got->client_ip, "192.0.2.7") && streq (got->tenant_id, "t1"));
    bus_worker_error_retry (worker, &limited, "rate_limited", "slow down", 17);
    assert (limited == NULL);
    for (int i = 0; i < 200 && !*seen; i++) {
        zclock_sleep (5);
        bus_client_process (client);
    }
    assert (streq (seen, "rate_limited 17"));
    bus_worker_drain (worker);
    assert (!bus_worker_drained (worker));
    //  Answer what we hold: the client gets finals
    while (zlistx_size (held)) {
        bus_request_t *request = (bus_request_t *) zlistx_detach (held, NULL);
        bus_worker_partial (worker, request, "\x80", 1);
        bus_worker_final (worker, &request, NULL, 0);
        assert (request == NULL);
    }
    assert (bus_worker_drained (worker));
    for (int i = 0; i < 50 && counts[BUS_REPLY_FINAL] == 0; i++) {
        zclock_sleep (10);
        bus_client_process (client);
    }
    assert (counts[BUS_REPLY_FINAL] >= 1 && counts[BUS_REPLY_PARTIAL] >= 1);
    //  Gone from the broker now: a new request is unavailable
    zclock_sleep (50);
    bus_client_request (client, "held", "x", &headers, NULL, 0, s_count_reply, counts);
    for (int i = 0; i < 100 && counts[BUS_REPLY_ERROR] == 0; i++) {
        zclock_sleep (10);
        bus_client_process (client);
    }
    assert (counts[BUS_REPLY_ERROR] == 1 && counts[0] == 1);

    bus_client_destroy (&client);
    bus_worker_destroy (&worker);
    bus_worker_destroy (&worker);
    zlistx_destroy (&held);
    core_log_destroy (&log);
    zactor_destroy (&broker);
    printf ("OK\n");
}
