/*  bus_broker: the broker actor (schemas/bus.md). One ROUTER socket serves clients
    (CHC1) and workers (CHW1); an XSUB/XPUB pair proxies events. Requests wait in a
    bounded queue per service until a live replica has credit; the replica with the
    lowest load (in flight / credit) gets the work. Every request has a deadline and
    ends with exactly one FINAL or ERROR to its client.                            */
#include "bus_broker.h"

#include <assert.h>
#include <unistd.h>

#include "bus.pb-c.h"
#include "bus_proto.h"
#include "codec_msgpack.h"
#include "core_log.h"

typedef struct _service_t service_t;
typedef struct _worker_t worker_t;

//  A request the broker holds, from its arrival until the worker ends it.
typedef struct {
    uint64_t id;                  //  broker task id, sent to the worker
    char key[24];                 //  id as text, the tasks table key
    zframe_t *client;             //  client routing id
    char *client_request;         //  the client's id of the request
    service_t *service;           //  target service
    char command[BUS_NAME_MAX];   //  command name
    char request_id[BUS_ID_MAX];  //  headers.request_id, for logs and traces
    zframe_t *headers;            //  kept until dispatched
    zframe_t *body;               //  kept until dispatched
    int64_t started;              //  when the broker accepted it (ms)
    int64_t started_us;           //  same, microseconds, for traces
    int64_t deadline;             //  when it fails with deadline_exceeded (ms)
    worker_t *worker;             //  replica handling it, NULL while queued
    void *queue_handle;           //  position in service->queue while queued
    bool orphaned;                //  client already answered; waiting for the worker
} task_t;

struct _worker_t {
    char key[32];                //  routing id as hex, the workers table key
    zframe_t *identity;          //  routing id
    service_t *service;          //  service it serves
    char replica[BUS_NAME_MAX];  //  replica id it announced
    uint32_t credit;             //  requests it accepts at once
    uint32_t in_flight;          //  requests handed to it and not ended
    int64_t expiry;              //  dead when silent past this (ms)
    int64_t last_sent;           //  when we last sent it anything (ms)
    int fd;                      //  its TCP connection's fd, -1 if unknown
};

struct _service_t {
    char *name;         //  service name
    zlistx_t *workers;  //  worker_t * (owned by the workers table)
    zlistx_t *queue;    //  task_t * waiting for credit (owned by tasks)
};

typedef struct {
    zsock_t *pipe;            //  actor pipe
    zsock_t *router;          //  requests: clients and workers
    zsock_t *xsub;            //  events in (publishers connect)
    zsock_t *xpub;            //  events out (subscribers connect)
    zsock_t *monitor;         //  router disconnect events
    zloop_t *loop;            //  our reactor
    core_log_t *log;          //  logger
    char id[BUS_NAME_MAX];    //  broker id
    int heartbeat_ms;         //  heartbeat interval
    int liveness;             //  missed heartbeats before death
    uint32_t queue_max;       //  bound of each service queue
    int hwm;                  //  socket HWM
    int64_t max_message;      //  ZMQ_MAXMSGSIZE
    zhashx_t *services;       //  name -> service_t
    zhashx_t *workers;        //  key -> worker_t
    zhashx_t *tasks;          //  key -> task_t
    int64_t tasks_due;        //  no task's deadline (or orphan's give-up) before this
    uint64_t next_task;       //  next task id
    uint64_t requests_total;  //  requests accepted
    uint64_t errors_total;    //  requests ended by an error
    uint64_t bad_frames;      //  malformed messages dropped or refused
    zlistx_t *trace_topics;   //  subscriptions that want traces
    bool terminated;          //  $TERM received
} self_t;

static void s_task_end (self_t *self, task_t *task);
static void s_dispatch (self_t *self, service_t *service);

static void
s_service_destroy (void **item)
{
    service_t *service = (service_t *) *item;
    if (!service)
        return;
    zlistx_destroy (&service->workers);
    zlistx_destroy (&service->queue);
    free (service->name);
    free (service);
    *item = NULL;
}

static void
s_worker_destroy (void **item)
{
    worker_t *worker = (worker_t *) *item;
    if (!worker)
        return;
    zframe_destroy (&worker->identity);
    free (worker);
    *item = NULL;
}

static void
s_task_destroy (void **item)
{
    task_t *task = (task_t *) *item;
    if (!task)
        return;
    zframe_destroy (&task->client);
    zframe_destroy (&task->headers);
    zframe_destroy (&task->body);
    free (task->client_request);
    free (task);
    *item = NULL;
}

static self_t *
s_self_new (zsock_t *pipe, const bus_broker_config_t *config)
{
    self_t *self = calloc (1, sizeof (self_t));
    assert (self);
    self->pipe = pipe;
    if (config->id)
        snprintf (self->id, sizeof self->id, "%s", config->id);
    else {
        char host[40] = "broker";
        gethostname (host, sizeof host - 1);
        snprintf (self->id, sizeof self->id, "%.40s:%d", host, (int) getpid ());
    }
    self->log = core_log_new ("broker", config->log_level);
    self->heartbeat_ms = config->heartbeat_ms > 0 ? config->heartbeat_ms : 500;
    self->liveness = config->liveness > 0 ? config->liveness : 4;
    self->queue_max = config->queue_max > 0 ? config->queue_max : 10000;
    self->hwm = config->hwm > 0 ? config->hwm : 100000;
    self->max_message = config->max_message > 0 ? config->max_message : 16 << 20;
    self->services = zhashx_new ();
    zhashx_set_destructor (self->services, s_service_destroy);
    self->workers = zhashx_new ();
    zhashx_set_destructor (self->workers, s_worker_destroy);
    self->tasks = zhashx_new ();
    self->tasks_due = INT64_MAX;
    zhashx_set_destructor (self->tasks, s_task_destroy);
    self->trace_topics = zlistx_new ();
    zlistx_set_destructor (self->trace_topics, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (self->trace_topics, (zlistx_duplicator_fn *) strdup);
    self->loop = zloop_new ();
    self->next_task = 1;
    return self;
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    zloop_destroy (&self->loop);
    zhashx_destroy (&self->tasks);
    zhashx_destroy (&self->services);
    zhashx_destroy (&self->workers);
    zlistx_destroy (&self->trace_topics);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->router);
    zsock_destroy (&self->xsub);
    zsock_destroy (&self->xpub);
    core_log_destroy (&self->log);
    free (self);
    *self_p = NULL;
}

static void
s_identity_key (const bus_part_t *identity, char *key, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = identity->size;
    const uint8_t *data = (const uint8_t *) identity->data;
    size_t n = 0;
    for (size_t i = 0; i < len && n + 2 < size; i++) {
        key[n++] = hex[data[i] >> 4];
        key[n++] = hex[data[i] & 15];
    }
    key[n] = 0;
}

static service_t *
s_service_require (self_t *self, const char *name)
{
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    if (!service) {
        service = calloc (1, sizeof (service_t));
        assert (service);
        service->name = strdup (name);
        service->workers = zlistx_new ();
        service->queue = zlistx_new ();
        zhashx_insert (self->services, name, service);
    }
    return service;
}

//  Trace publishing: only while a subscriber wants "_bus.trace".
static bool
s_tracing (self_t *self)
{
    return zlistx_size (self->trace_topics) > 0;
}

static void
s_trace (self_t *self, task_t *task, const char *phase, size_t size, const char *error)
{
    ChorusBus__Trace trace = CHORUS_BUS__TRACE__INIT;
    trace.broker = self->id;
    trace.phase = (char *) phase;
    trace.service = task->service->name;
    trace.command = task->command;
    trace.request_id = task->request_id;
    trace.replica = task->worker ? task->worker->replica : "";
    trace.size = size;
    trace.error = (char *) (error ? error : "");
    trace.elapsed_us = zclock_usecs () - task->started_us;
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = self->id;
    meta.time_ms = zclock_time ();
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "_bus.trace");
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&meta.base)});
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&trace.base)});
    bus_proto_send (&msg, self->xpub);
}

//  Send a message to the client of a task; a client that went away makes the
//  broker stop the work (ROUTER_MANDATORY reports it).
static int
s_send_client (self_t *self, task_t *task, uint8_t command, const void *body, size_t size)
{
    bus_part_t parts[] = {{zframe_data (task->client), zframe_size (task->client)},
                          {BUS_PROTO_CLIENT, 4},
                          {&command, 1},
                          {task->client_request, strlen (task->client_request)},
                          {body, size}};
    return bus_proto_sendv (self->router, parts, 5);
}

//  Send [identity, CHW1, command, args...] to a worker.
static void
s_send_worker (self_t *self, worker_t *worker, uint8_t command, const bus_part_t *args,
               size_t count)
{
    bus_part_t parts[3 + 4] = {
        {zframe_data (worker->identity), zframe_size (worker->identity)},
        {BUS_PROTO_WORKER, 4},
        {&command, 1}};
    for (size_t i = 0; i < count && i < 4; i++)
        parts[3 + i] = args[i];
    worker->last_sent = bus_proto_now ();
    bus_proto_sendv (self->router, parts, 3 + (count < 4 ? count : 4));
}

//  End a task towards its client with an error (if the client is still waiting).
static void
s_fail_client (self_t *self, task_t *task, const char *code, const char *message)
{
    if (task->orphaned)
        return;
    task->orphaned = true;
    self->errors_total++;
    core_log_debug (self->log, task->request_id, "%s/%s failed: %s", task->service->name,
                    task->command, code);
    if (s_tracing (self))
        s_trace (self, task, "error", 0, code);
    zframe_t *frame = bus_proto_error_frame (code, message);
    s_send_client (self, task, BUS_ERROR, zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
}

//  Tell a worker to stop a task; it answers with an ERROR that frees the credit.
static void
s_cancel_worker (self_t *self, task_t *task)
{
    bus_part_t key = {task->key, strlen (task->key)};
    s_send_worker (self, task->worker, BUS_CANCEL, &key, 1);
}

//  Forget a task entirely: off its queue or its worker, out of the table.
static void
s_task_end (self_t *self, task_t *task)
{
    if (task->queue_handle) {
        zlistx_delete (task->service->queue, task->queue_handle);
        task->queue_handle = NULL;
    }
    worker_t *worker = task->worker;
    if (worker && worker->in_flight > 0)
        worker->in_flight--;
    service_t *service = task->service;
    zhashx_delete (self->tasks, task->key);
    if (worker)
        s_dispatch (self, service);
}

static void
s_worker_delete (self_t *self, worker_t *worker, const char *why)
{
    core_log_info (self->log, NULL, "replica %s of %s removed: %s", worker->replica,
                   worker->service ? worker->service->name : "?", why);
    //  Fail every task it holds
    zlistx_t *held = zlistx_new ();
    for (task_t *task = (task_t *) zhashx_first (self->tasks); task;
         task = (task_t *) zhashx_next (self->tasks))
        if (task->worker == worker)
            zlistx_add_end (held, task);
    for (task_t *task = (task_t *) zlistx_first (held); task;
         task = (task_t *) zlistx_next (held)) {
        s_fail_client (self, task, BUS_ERR_WORKER_LOST,
                       "the replica handling this request went away");
        task->worker = NULL;
        s_task_end (self, task);
    }
    zlistx_destroy (&held);
    if (worker->service) {
        void *handle = zlistx_find (worker->service->workers, worker);
        if (handle)
            zlistx_delete (worker->service->workers, handle);
    }
    zhashx_delete (self->workers, worker->key);
}

//  Pick the least-loaded live replica with free credit, or NULL.
static worker_t *
s_pick (service_t *service)
{
    worker_t *best = NULL;
    for (worker_t *worker = (worker_t *) zlistx_first (service->workers); worker;
         worker = (worker_t *) zlistx_next (service->workers)) {
        if (worker->in_flight >= worker->credit)
            continue;
        //  Compare in_flight/credit without division
        if (!best
            || (uint64_t) worker->in_flight * best->credit
                   < (uint64_t) best->in_flight * worker->credit)
            best = worker;
    }
    //  Rotate so equal loads share work in turn
    if (best) {
        void *handle = zlistx_find (service->workers, best);
        zlistx_move_end (service->workers, handle);
    }
    return best;
}

static void
s_dispatch (self_t *self, service_t *service)
{
    while (zlistx_size (service->queue)) {
        worker_t *worker = s_pick (service);
        if (!worker)
            return;
        task_t *task = (task_t *) zlistx_first (service->queue);
        zlistx_delete (service->queue, task->queue_handle);
        task->queue_handle = NULL;
        task->worker = worker;
        worker->in_flight++;
        //  The worker gets the time left: a request that waited in the queue has
        //  its headers re-encoded with it (one dispatched on arrival goes as is)
        int64_t now = bus_proto_now ();
        zframe_t *headers_frame = task->headers;
        task->headers = NULL;
        if (now > task->started) {
            ChorusBus__Headers *headers = (ChorusBus__Headers *) codec_decode_frame (
                &chorus_bus__headers__descriptor, headers_frame, NULL, 0);
            if (headers) {
                int64_t left = task->deadline - now;
                headers->timeout_ms = left > 1 ? left : 1;
                zframe_destroy (&headers_frame);
                headers_frame = codec_encode_frame (&headers->base);
                protobuf_c_message_free_unpacked (&headers->base, NULL);
            }
        }
        bus_part_t args[] = {{task->key, strlen (task->key)},
                             {task->command, strlen (task->command)},
                             {zframe_data (headers_frame), zframe_size (headers_frame)},
                             {zframe_data (task->body), zframe_size (task->body)}};
        s_send_worker (self, worker, BUS_REQUEST, args, 4);
        zframe_destroy (&headers_frame);
        zframe_destroy (&task->body);
    }
}

//  The broker's own service: status and ping.
static void
s_handle_own (self_t *self, task_t *task)
{
    zframe_t *reply = NULL;
    if (streq (task->command, "status")) {
        ChorusBus__BrokerStatus status = CHORUS_BUS__BROKER_STATUS__INIT;
        status.broker = self->id;
        status.requests_total = self->requests_total;
        status.errors_total = self->errors_total;
        size_t count = zhashx_size (self->services);
        ChorusBus__ServiceInfo *infos = calloc (count + 1, sizeof *infos);
        ChorusBus__ServiceInfo **list = calloc (count + 1, sizeof *list);
        assert (infos && list);
        size_t n = 0;
        for (service_t *service = (service_t *) zhashx_first (self->services); service;
             service = (service_t *) zhashx_next (self->services)) {
            if (streq (service->name, "broker"))
                continue;  //  the broker itself is not a service with replicas
            ChorusBus__ServiceInfo *info = &infos[n];
            chorus_bus__service_info__init (info);
            info->name = service->name;
            info->replicas = (uint32_t) zlistx_size (service->workers);
            info->queued = (uint32_t) zlistx_size (service->queue);
            for (worker_t *worker = (worker_t *) zlistx_first (service->workers); worker;
                 worker = (worker_t *) zlistx_next (service->workers)) {
                info->credit += worker->credit;
                info->in_flight += worker->in_flight;
            }
            list[n++] = info;
        }
        status.n_services = n;
        status.services = list;
        reply = codec_encode_frame (&status.base);
        free (list);
        free (infos);
    }
    else if (streq (task->command, "ping")) {
        ChorusBus__PingReply ping = CHORUS_BUS__PING_REPLY__INIT;
        ping.service = "broker";
        ping.replica = self->id;
        ping.time_ms = zclock_time ();
        reply = codec_encode_frame (&ping.base);
    }
    if (reply) {
        if (s_tracing (self))
            s_trace (self, task, "final", zframe_size (reply), NULL);
        s_send_client (self, task, BUS_FINAL, zframe_data (reply), zframe_size (reply));
        zframe_destroy (&reply);
    }
    else
        s_fail_client (self, task, BUS_ERR_UNKNOWN_COMMAND,
                       "the broker knows only 'status' and 'ping'");
    s_task_end (self, task);
}

static void
s_refuse (self_t *self, const bus_part_t *client, const bus_part_t *id, const char *code,
          const char *message)
{
    self->errors_total++;
    uint8_t command = BUS_ERROR;
    zframe_t *error = bus_proto_error_frame (code, message);
    bus_part_t parts[] = {*client,
                          {BUS_PROTO_CLIENT, 4},
                          {&command, 1},
                          id ? *id : (bus_part_t){"", 0},
                          {zframe_data (error), zframe_size (error)}};
    bus_proto_sendv (self->router, parts, 5);
    zframe_destroy (&error);
}

//  Tell a worker we do not know it (or refused it) to announce itself again.
static void
s_send_disconnect (self_t *self, const bus_part_t *identity)
{
    uint8_t command = BUS_DISCONNECT;
    bus_part_t parts[] = {*identity, {BUS_PROTO_WORKER, 4}, {&command, 1}};
    bus_proto_sendv (self->router, parts, 3);
}

static void
s_handle_client_request (self_t *self, bus_frames_t *frames)
{
    char service_name[BUS_NAME_MAX], command[BUS_NAME_MAX], client_id[BUS_ID_MAX];
    if (bus_proto_name (&frames->args[0], client_id, sizeof client_id)) {
        self->bad_frames++;
        s_refuse (self, &frames->identity, NULL, BUS_ERR_BAD_FRAME, "bad request id");
        return;
    }
    if (bus_proto_name (&frames->args[1], service_name, sizeof service_name)
        || bus_proto_name (&frames->args[2], command, sizeof command)) {
        self->bad_frames++;
        s_refuse (self, &frames->identity, &frames->args[0], BUS_ERR_BAD_FRAME,
                  "service and command must be short printable names");
        return;
    }
    char why[128];
    ChorusBus__Headers *headers = (ChorusBus__Headers *) codec_decode (
        &chorus_bus__headers__descriptor, frames->args[3].data, frames->args[3].size, why,
        sizeof why);
    if (!headers) {
        self->bad_frames++;
        char message[200];
        snprintf (message, sizeof message, "bad headers: %s", why);
        s_refuse (self, &frames->identity, &frames->args[0], BUS_ERR_BAD_FRAME, message);
        return;
    }
    int64_t timeout = headers->timeout_ms;
    task_t *task = calloc (1, sizeof (task_t));
    assert (task);
    snprintf (task->request_id, sizeof task->request_id, "%s",
              headers->request_id ? headers->request_id : "");
    protobuf_c_message_free_unpacked (&headers->base, NULL);
    if (timeout <= 0) {
        free (task);
        s_refuse (self, &frames->identity, &frames->args[0], BUS_ERR_BAD_REQUEST,
                  "headers.timeout_ms must be positive");
        return;
    }
    bool own = streq (service_name, "broker");
    service_t *service = own ? s_service_require (self, "broker")
                             : (service_t *) zhashx_lookup (self->services, service_name);
    if (!own && (!service || zlistx_size (service->workers) == 0)) {
        //  No task is made: unknown names must not grow the broker's tables
        char message[160];
        snprintf (message, sizeof message, "no live replica of service '%s'",
                  service_name);
        free (task);
        self->requests_total++;
        s_refuse (self, &frames->identity, &frames->args[0], BUS_ERR_UNAVAILABLE,
                  message);
        return;
    }
    task->id = self->next_task++;
    snprintf (task->key, sizeof task->key, "%" PRIu64, task->id);
    task->client = zframe_new (frames->identity.data, frames->identity.size);
    task->client_request = strdup (client_id);
    snprintf (task->command, sizeof task->command, "%s", command);
    task->started = bus_proto_now ();
    task->started_us = zclock_usecs ();
    task->deadline = task->started + timeout;
    if (task->deadline < self->tasks_due)
        self->tasks_due = task->deadline;
    task->service = service;
    self->requests_total++;
    zhashx_insert (self->tasks, task->key, task);
    if (s_tracing (self))
        s_trace (self, task, "request", frames->args[4].size, NULL);
    if (own) {
        s_handle_own (self, task);
        return;
    }
    if (zlistx_size (service->queue) >= self->queue_max) {
        s_fail_client (self, task, BUS_ERR_OVERLOADED, "service queue is full");
        s_task_end (self, task);
        return;
    }
    //  A replica with free credit and nobody queued ahead: straight through, the
    //  frames go out from the received message without being stored
    worker_t *worker = zlistx_size (service->queue) ? NULL : s_pick (service);
    if (worker) {
        task->worker = worker;
        worker->in_flight++;
        bus_part_t args[] = {{task->key, strlen (task->key)},
                             {task->command, strlen (task->command)},
                             frames->args[3],
                             frames->args[4]};
        s_send_worker (self, worker, BUS_REQUEST, args, 4);
        return;
    }
    task->headers = zframe_new (frames->args[3].data, frames->args[3].size);
    task->body = zframe_new (frames->args[4].data, frames->args[4].size);
    task->queue_handle = zlistx_add_end (service->queue, task);
    s_dispatch (self, service);
}

static void
s_handle_client_cancel (self_t *self, bus_frames_t *frames)
{
    //  Tasks are found by client routing id + client request id
    char client_id[BUS_ID_MAX];
    if (bus_proto_name (&frames->args[0], client_id, sizeof client_id))
        return;
    for (task_t *task = (task_t *) zhashx_first (self->tasks); task;
         task = (task_t *) zhashx_next (self->tasks)) {
        if (!task->orphaned && zframe_size (task->client) == frames->identity.size
            && memcmp (zframe_data (task->client), frames->identity.data,
                       frames->identity.size)
                   == 0
            && streq (task->client_request, client_id)) {
            task->orphaned = true;
            if (s_tracing (self))
                s_trace (self, task, "error", 0, BUS_ERR_CANCELLED);
            if (task->worker)
                s_cancel_worker (self, task);
            else
                s_task_end (self, task);
            return;
        }
    }
}

static void
s_handle_client (self_t *self, bus_frames_t *frames)
{
    switch (frames->command) {
        case BUS_REQUEST:
            s_handle_client_request (self, frames);
            break;
        case BUS_CANCEL:
            s_handle_client_cancel (self, frames);
            break;
        case BUS_HEARTBEAT: {
            uint8_t command = BUS_HEARTBEAT;
            bus_part_t parts[] = {frames->identity, {BUS_PROTO_CLIENT, 4}, {&command, 1}};
            bus_proto_sendv (self->router, parts, 3);
            break;
        }
        default:
            self->bad_frames++;
            s_refuse (self, &frames->identity, NULL, BUS_ERR_BAD_FRAME,
                      "command not valid from a client");
    }
}

static int
s_decode_ready (const bus_part_t *frame, uint32_t *credit, char *replica, size_t size)
{
    char why[64];
    ChorusBus__WorkerReady *ready = (ChorusBus__WorkerReady *) codec_decode (
        &chorus_bus__worker_ready__descriptor, frame->data, frame->size, why, sizeof why);
    if (!ready)
        return -1;
    *credit = ready->credit;
    if (replica)
        snprintf (replica, size, "%s", ready->replica ? ready->replica : "");
    protobuf_c_message_free_unpacked (&ready->base, NULL);
    return 0;
}

static void
s_handle_worker (self_t *self, bus_frames_t *frames, int fd)
{
    char key[32];
    s_identity_key (&frames->identity, key, sizeof key);
    worker_t *worker = (worker_t *) zhashx_lookup (self->workers, key);

    if (frames->command == BUS_READY) {
        char service_name[BUS_NAME_MAX], replica[BUS_NAME_MAX];
        uint32_t credit;
        if (worker)
            s_worker_delete (self, worker, "announced itself again");
        if (bus_proto_name (&frames->args[0], service_name, sizeof service_name)
            || streq (service_name, "broker")
            || s_decode_ready (&frames->args[1], &credit, replica, sizeof replica)) {
            self->bad_frames++;
            core_log_warn (self->log, NULL, "refused a malformed READY");
            s_send_disconnect (self, &frames->identity);
            return;
        }
        worker = calloc (1, sizeof (worker_t));
        assert (worker);
        snprintf (worker->key, sizeof worker->key, "%s", key);
        worker->identity = zframe_new (frames->identity.data, frames->identity.size);
        worker->service = s_service_require (self, service_name);
        snprintf (worker->replica, sizeof worker->replica, "%s", replica);
        worker->credit = credit;
        worker->fd = fd;
        worker->expiry = bus_proto_now () + (int64_t) self->heartbeat_ms * self->liveness;
        zhashx_insert (self->workers, key, worker);
        zlistx_add_end (worker->service->workers, worker);
        core_log_info (self->log, NULL, "replica %s of %s ready, credit %u, fd %d",
                       replica, service_name, credit, fd);
        s_dispatch (self, worker->service);
        return;
    }
    if (!worker) {
        //  Unknown worker (we restarted, or it was purged): ask it to announce again
        if (frames->command != BUS_DISCONNECT)
            s_send_disconnect (self, &frames->identity);
        return;
    }
    worker->expiry = bus_proto_now () + (int64_t) self->heartbeat_ms * self->liveness;
    if (fd >= 0)
        worker->fd = fd;
    switch (frames->command) {
        case BUS_HEARTBEAT:
            break;
        case BUS_DISCONNECT:
            s_worker_delete (self, worker, "disconnected");
            break;
        case BUS_CREDIT: {
            uint32_t credit;
            if (s_decode_ready (&frames->args[0], &credit, NULL, 0) == 0) {
                worker->credit = credit;
                s_dispatch (self, worker->service);
            }
            else
                self->bad_frames++;
            break;
        }
        case BUS_PARTIAL:
        case BUS_FINAL:
        case BUS_ERROR: {
            char task_key[24];
            task_t *task = NULL;
            if (bus_proto_name (&frames->args[0], task_key, sizeof task_key) == 0)
                task = (task_t *) zhashx_lookup (self->tasks, task_key);
            if (!task || task->worker != worker) {
                self->bad_frames++;
                break;
            }
            if (task->orphaned) {
                if (frames->command != BUS_PARTIAL)
                    s_task_end (self, task);
                break;
            }
            const bus_part_t *body = &frames->args[1];
            if (frames->command == BUS_ERROR) {
                self->errors_total++;
                if (s_tracing (self)) {
                    char code[64], message[16];
                    bus_proto_error_decode (body->data, body->size, code, sizeof code,
                                            message, sizeof message);
                    s_trace (self, task, "error", 0, code);
                }
            }
            else if (s_tracing (self))
                s_trace (self, task, frames->command == BUS_FINAL ? "final" : "partial",
                         body->size, NULL);
            int rc = s_send_client (self, task, frames->command, body->data, body->size);
            if (frames->command != BUS_PARTIAL)
                s_task_end (self, task);
            else if (rc != 0) {
                //  The client is gone: stop the work
                task->orphaned = true;
                s_cancel_worker (self, task);
            }
            break;
        }
        default:
            self->bad_frames++;
            break;
    }
}

static int
s_on_router (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    //  Drain what is there, bounded so the other sockets get their turn. Frames
    //  stay in ZeroMQ's own messages: the broker only looks at them
    for (int batch = 0; batch < 256; batch++) {
        zmq_msg_t msgs[BUS_MAX_PARTS];
        size_t count;
        int fd;
        if (bus_proto_recv_parts (self->router, msgs, BUS_MAX_PARTS, &count, &fd))
            break;
        size_t held = count > BUS_MAX_PARTS ? BUS_MAX_PARTS : count;
        bus_part_t parts[BUS_MAX_PARTS];
        for (size_t i = 0; i < held; i++)
            parts[i] = (bus_part_t){zmq_msg_data (&msgs[i]), zmq_msg_size (&msgs[i])};
        bus_frames_t frames;
        char error[128] = "too many frames";
        if (count > BUS_MAX_PARTS
            || bus_proto_parse_parts (parts, held, true, &frames, error, sizeof error)) {
            self->bad_frames++;
            core_log_debug (self->log, NULL, "bad frame: %s", error);
            //  Answer clients that can be answered; a broken worker is dropped
            if (held >= 2 && parts[1].size == 4
                && memcmp (parts[1].data, BUS_PROTO_CLIENT, 4) == 0)
                s_refuse (self, &parts[0], NULL, BUS_ERR_BAD_FRAME, error);
        }
        else if (frames.worker)
            s_handle_worker (self, &frames, fd);
        else
            s_handle_client (self, &frames);
        for (size_t i = 0; i < held; i++)
            zmq_msg_close (&msgs[i]);
    }
    return 0;
}

static int
s_on_monitor (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    zmsg_t *msg = zmsg_recv (reader);
    if (!msg)
        return 0;
    zframe_t *event = zmsg_first (msg);
    if (event && zframe_size (event) == 6) {
        uint16_t id;
        int32_t value;
        memcpy (&id, zframe_data (event), 2);
        memcpy (&value, zframe_data (event) + 2, 4);
        core_log_debug (self->log, NULL, "monitor event %d value %d", id, value);
        if (id == ZMQ_EVENT_DISCONNECTED && value >= 0) {
            zlistx_t *dead = zlistx_new ();
            for (worker_t *worker = (worker_t *) zhashx_first (self->workers); worker;
                 worker = (worker_t *) zhashx_next (self->workers))
                if (worker->fd == value)
                    zlistx_add_end (dead, worker);
            for (worker_t *worker = (worker_t *) zlistx_first (dead); worker;
                 worker = (worker_t *) zlistx_next (dead))
                s_worker_delete (self, worker, "connection closed");
            zlistx_destroy (&dead);
        }
    }
    zmsg_destroy (&msg);
    return 0;
}

//  Events: publishers -> subscribers, as is.
static int
s_on_xsub (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    for (int batch = 0; batch < 256; batch++) {
        zmsg_t *msg = bus_proto_recv (reader, NULL);
        if (!msg)
            break;
        bus_proto_send (&msg, self->xpub);
    }
    return 0;
}

//  Subscriptions: subscribers -> publishers; note who wants traces.
static int
s_on_xpub (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    zmsg_t *msg = bus_proto_recv (reader, NULL);
    if (!msg)
        return 0;
    zframe_t *frame = zmsg_first (msg);
    if (frame && zframe_size (frame) >= 1) {
        const char *trace = "_bus.trace";
        size_t len = zframe_size (frame) - 1;
        const char *topic = (const char *) zframe_data (frame) + 1;
        if (len <= strlen (trace) && memcmp (topic, trace, len) == 0) {
            char *copy = strndup (topic, len);
            void *handle = zlistx_find (self->trace_topics, copy);
            if (zframe_data (frame)[0] == 1 && !handle)
                zlistx_add_end (self->trace_topics, copy);
            else if (zframe_data (frame)[0] == 0 && handle)
                zlistx_delete (self->trace_topics, handle);
            free (copy);
        }
    }
    bus_proto_send (&msg, self->xsub);
    return 0;
}

//  Heartbeats, dead replicas and deadlines.
static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = bus_proto_now ();
    zlistx_t *dead = zlistx_new ();
    for (worker_t *worker = (worker_t *) zhashx_first (self->workers); worker;
         worker = (worker_t *) zhashx_next (self->workers)) {
        if (worker->expiry < now)
            zlistx_add_end (dead, worker);
        else if (now - worker->last_sent >= self->heartbeat_ms)
            s_send_worker (self, worker, BUS_HEARTBEAT, NULL, 0);
    }
    for (worker_t *worker = (worker_t *) zlistx_first (dead); worker;
         worker = (worker_t *) zlistx_next (dead))
        s_worker_delete (self, worker, "heartbeats stopped");
    zlistx_purge (dead);
    //  The tasks are looked through only when one can be due: tasks_due is the
    //  earliest deadline seen since the last look (a task that ended before it
    //  costs one look), so thousands of streams in flight are not scanned every tick
    if (now < self->tasks_due) {
        zlistx_destroy (&dead);
        return 0;
    }

    for (task_t *task = (task_t *) zhashx_first (self->tasks); task;
         task = (task_t *) zhashx_next (self->tasks))
        if (task->deadline <= now && !task->orphaned)
            zlistx_add_end (dead, task);
    for (task_t *task = (task_t *) zlistx_first (dead); task;
         task = (task_t *) zlistx_next (dead)) {
        s_fail_client (self, task, BUS_ERR_DEADLINE,
                       "the request's deadline passed before it ended");
        if (task->worker)
            s_cancel_worker (self, task);
        else
            s_task_end (self, task);
    }
    //  A worker that never ends a cancelled task is given up one heartbeat window
    //  after the deadline: its credit must not leak
    zlistx_purge (dead);
    //  The same pass finds when the next look is due: the earliest deadline, or
    //  give-up of an orphan, among the tasks that stay
    int64_t grace = (int64_t) self->heartbeat_ms * self->liveness;
    self->tasks_due = INT64_MAX;
    for (task_t *task = (task_t *) zhashx_first (self->tasks); task;
         task = (task_t *) zhashx_next (self->tasks)) {
        int64_t due = task->orphaned ? task->deadline + grace : task->deadline;
        if (task->orphaned && due < now)
            zlistx_add_end (dead, task);
        else if (due < self->tasks_due)
            self->tasks_due = due;
    }
    for (task_t *task = (task_t *) zlistx_first (dead); task;
         task = (task_t *) zlistx_next (dead))
        s_task_end (self, task);
    zlistx_destroy (&dead);
    return 0;
}

static void s_bind (self_t *self, const char *endpoint);

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    zmsg_t *msg = zmsg_recv (reader);
    if (!msg)
        return -1;
    char *command = zmsg_popstr (msg);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    else if (command && streq (command, "BIND")) {
        char *endpoint = zmsg_popstr (msg);
        s_bind (self, endpoint ? endpoint : "");
        zstr_free (&endpoint);
    }
    else if (command && streq (command, "STATS"))
        zsock_send (self->pipe, "888", self->requests_total, self->errors_total,
                    self->bad_frames);
    zstr_free (&command);
    zmsg_destroy (&msg);
    return self->terminated ? -1 : 0;
}

static int
s_bind_three (self_t *self, const char *host, int port)
{
    char endpoint[256];
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", host, port);
    if (zsock_bind (self->router, "%s", endpoint) < 0)
        return -1;
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", host, port + 1);
    if (zsock_bind (self->xsub, "%s", endpoint) < 0) {
        zsock_unbind (self->router, "tcp://%s:%d", host, port);
        return -1;
    }
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", host, port + 2);
    if (zsock_bind (self->xpub, "%s", endpoint) < 0) {
        zsock_unbind (self->router, "tcp://%s:%d", host, port);
        zsock_unbind (self->xsub, "tcp://%s:%d", host, port + 1);
        return -1;
    }
    return port;
}

//  Bind the three endpoints; answer the port (0 for non-tcp) or -1 on the pipe.
static void
s_bind (self_t *self, const char *endpoint)
{
    int port = -1;
    if (strncmp (endpoint, "tcp://", 6) == 0) {
        const char *colon = strrchr (endpoint, ':');
        char host[200];
        if (colon && colon > endpoint + 6
            && (size_t) (colon - endpoint - 6) < sizeof host) {
            snprintf (host, sizeof host, "%.*s", (int) (colon - endpoint - 6),
                      endpoint + 6);
            if (streq (colon + 1, "*")) {
                for (int attempt = 0; attempt < 200 && port < 0; attempt++)
                    port = s_bind_three (self, host, 20000 + randof (40000));
            }
            else {
                char *end = NULL;
                long wanted = strtol (colon + 1, &end, 10);
                if (end != colon + 1 && !*end && wanted > 0 && wanted < 65534)
                    port = s_bind_three (self, host, (int) wanted);
            }
        }
    }
    else {
        char in[256], out[256];
        if (bus_proto_event_endpoint (endpoint, 1, in, sizeof in) == 0
            && bus_proto_event_endpoint (endpoint, 2, out, sizeof out) == 0
            && zsock_bind (self->router, "%s", endpoint) == 0
            && zsock_bind (self->xsub, "%s", in) == 0
            && zsock_bind (self->xpub, "%s", out) == 0)
            port = 0;
    }
    if (port < 0)
        core_log_error (self->log, NULL, "cannot bind %s (and the two ports after it)",
                        endpoint);
    else
        core_log_info (self->log, NULL, "broker %s bound %s", self->id, endpoint);
    zsock_send (self->pipe, "i", port);
}

void
bus_broker_actor (zsock_t *pipe, void *args)
{
    self_t *self = s_self_new (pipe, (const bus_broker_config_t *) args);
    self->router = zsock_new (ZMQ_ROUTER);
    self->xsub = zsock_new (ZMQ_XSUB);
    self->xpub = zsock_new (ZMQ_XPUB);
    assert (self->router && self->xsub && self->xpub);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, self->hwm);
    zsock_set_rcvhwm (self->router, self->hwm);
    zsock_set_maxmsgsize (self->router, self->max_message);
    zsock_set_sndhwm (self->xpub, self->hwm);
    zsock_set_rcvhwm (self->xsub, self->hwm);
    zsock_set_maxmsgsize (self->xsub, self->max_message);
    zsock_set_linger (self->router, 0);
    zsock_set_linger (self->xpub, 0);
    zsock_set_linger (self->xsub, 0);

    //  Disconnects of the router's peers, to notice dead replicas at once
    //  A unique name: an address can be reused while the last monitor still closes
    char monitor[80];
    zuuid_t *unique = zuuid_new ();
    snprintf (monitor, sizeof monitor, "inproc://broker-monitor-%s", zuuid_str (unique));
    zuuid_destroy (&unique);
    int rc = zmq_socket_monitor (zsock_resolve (self->router), monitor,
                                 ZMQ_EVENT_DISCONNECTED);
    assert (rc == 0);
    self->monitor = zsock_new_pair (monitor);
    assert (self->monitor);

    zloop_reader (self->loop, self->pipe, s_on_pipe, self);
    zloop_reader (self->loop, self->router, s_on_router, self);
    zloop_reader (self->loop, self->monitor, s_on_monitor, self);
    zloop_reader (self->loop, self->xsub, s_on_xsub, self);
    zloop_reader (self->loop, self->xpub, s_on_xpub, self);
    int tick = self->heartbeat_ms / 5 > 10 ? 10 : self->heartbeat_ms / 5;
    zloop_timer (self->loop, (size_t) (tick > 1 ? tick : 1), 0, s_on_timer, self);
    zsock_signal (pipe, 0);
    //  Signals are the owner's business: only $TERM ends the loop
    zloop_set_nonstop (self->loop, true);
    zloop_start (self->loop);
    //  Clients waiting on us get a clear answer before we go
    for (task_t *task = (task_t *) zhashx_first (self->tasks); task;
         task = (task_t *) zhashx_next (self->tasks))
        s_fail_client (self, task, BUS_ERR_BROKER_LOST, "the broker is shutting down");
    zmq_socket_monitor (zsock_resolve (self->router), NULL, 0);
    s_self_destroy (&self);
}

int
bus_broker_bind_all (zactor_t *broker, const char *list)
{
    assert (broker);
    zlist_t *endpoints = bus_proto_endpoints (list);
    int rc = endpoints ? 0 : -1;
    for (const char *endpoint = endpoints ? (const char *) zlist_first (endpoints) : NULL;
         endpoint && rc == 0; endpoint = (const char *) zlist_next (endpoints)) {
        zstr_sendx (broker, "BIND", endpoint, NULL);
        int port = -1;
        zsock_recv (broker, "i", &port);
        rc = port < 0 ? -1 : 0;
    }
    zlist_destroy (&endpoints);
    return rc;
}

//  --------------------------------------------------------------------------
//  Selftest: malformed traffic never crashes the broker and gets clear answers.
//  (Routing, streaming, deadlines, cancels and replica loss: bus_client_test.)

void
bus_broker_test (bool verbose)
{
    printf (" * bus_broker: ");
    bus_broker_config_t config = {.id = "bt", .log_level = verbose ? "debug" : "error"};
    zactor_t *broker = zactor_new (bus_broker_actor, &config);
    zstr_sendx (broker, "BIND", "inproc://broker-test", NULL);
    int port;
    zsock_recv (broker, "i", &port);
    assert (port == 0);
    zsock_t *raw = zsock_new_dealer ("inproc://broker-test");
    assert (raw);
    zsock_set_rcvtimeo (raw, 2000);

    //  Garbage of every shape: the broker answers clients it can, drops the rest
    const char *junk[][3] = {{"", NULL, NULL},
                             {"CHC1", NULL, NULL},
                             {"CHC1", "\x7f", NULL},
                             {"XXXX", "\x01", NULL},
                             {"CHW1", "\x11", "nope"}};
    for (size_t i = 0; i < 5; i++) {
        zmsg_t *msg = zmsg_new ();
        for (size_t j = 0; j < 3 && junk[i][j]; j++)
            zmsg_addstr (msg, junk[i][j]);
        zmsg_send (&msg, raw);
    }
    //  A client request with undecodable headers
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, BUS_PROTO_CLIENT);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addstr (msg, "7");
    zmsg_addstr (msg, "echo");
    zmsg_addstr (msg, "ping");
    zmsg_addmem (msg, "\xc1\xc1", 2);
    zmsg_addmem (msg, "\x80", 1);
    zmsg_send (&msg, raw);
    //  Answers: CHC1 ones arrive as errors with bad_frame
    int bad_frames = 0;
    bool headers_refused = false;
    while ((msg = zmsg_recv (raw))) {
        zframe_t *proto = zmsg_first (msg);
        zframe_t *command = zmsg_next (msg);
        zframe_t *id = zmsg_next (msg);
        zframe_t *body = zmsg_next (msg);
        assert (zframe_streq (proto, BUS_PROTO_CLIENT));
        assert (zframe_size (command) == 1 && zframe_data (command)[0] == BUS_ERROR);
        char code[64], message[200];
        bus_proto_error_decode (zframe_data (body), zframe_size (body), code, sizeof code,
                                message, sizeof message);
        assert (streq (code, BUS_ERR_BAD_FRAME));
        if (zframe_streq (id, "7"))
            headers_refused = true;
        bad_frames++;
        zmsg_destroy (&msg);
        if (headers_refused)
            break;
    }
    assert (headers_refused && bad_frames >= 2);

    //  The broker still works: its own status answers
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.timeout_ms = 1000;
    msg = zmsg_new ();
    zmsg_addstr (msg, BUS_PROTO_CLIENT);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addstr (msg, "8");
    zmsg_addstr (msg, "broker");
    zmsg_addstr (msg, "status");
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&headers.base)});
    zmsg_addmem (msg, "\x80", 1);
    zmsg_send (&msg, raw);
    msg = zmsg_recv (raw);
    assert (msg && zmsg_size (msg) == 4);
    zframe_t *command = zmsg_next (zmsg_first (msg) ? msg : msg);
    assert (zframe_data (command)[0] == BUS_FINAL);
    zframe_t *body = zmsg_last (msg);
    ChorusBus__BrokerStatus *status = (ChorusBus__BrokerStatus *) codec_decode (
        &chorus_bus__broker_status__descriptor, zframe_data (body), zframe_size (body),
        NULL, 0);
    assert (status && streq (status->broker, "bt"));
    protobuf_c_message_free_unpacked (&status->base, NULL);
    zmsg_destroy (&msg);

    //  A zero timeout is refused
    headers.timeout_ms = 0;
    msg = zmsg_new ();
    zmsg_addstr (msg, BUS_PROTO_CLIENT);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addstr (msg, "9");
    zmsg_addstr (msg, "broker");
    zmsg_addstr (msg, "status");
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&headers.base)});
    zmsg_addmem (msg, "\x80", 1);
    zmsg_send (&msg, raw);
    msg = zmsg_recv (raw);
    assert (msg);
    zframe_t *last = zmsg_last (msg);
    char code[64], message[200];
    bus_proto_error_decode (zframe_data (last), zframe_size (last), code, sizeof code,
                            message, sizeof message);
    assert (streq (code, BUS_ERR_BAD_REQUEST));
    zmsg_destroy (&msg);

    uint64_t requests, errors, bad;
    zstr_send (broker, "STATS");
    zsock_recv (broker, "888", &requests, &errors, &bad);
    assert (bad >= 5);
    zsock_destroy (&raw);
    zactor_destroy (&broker);
    printf ("OK\n");
}
