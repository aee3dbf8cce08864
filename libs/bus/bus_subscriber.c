/*  bus_subscriber: live events with gap detection and catch-up (bus_subscriber.h).
    Per followed publisher: `last` is the newest sequence delivered. A live event
    with seq == last + 1 is delivered; seq <= last is a duplicate (several brokers
    carry the same event, or the replay already had it) and is dropped; seq >
    last + 1 means something was missed, and a replay from last is started. While
    a replay runs, live events of that publisher are dropped: the replay covers
    them, and a new replay follows while the publisher is known to be ahead.     */
#include "bus_subscriber.h"

#include <assert.h>

#include "bus_proto.h"
#include "codec_msgpack.h"

#define S_REPLAY_BATCH 500  //  records asked for per replay request
#define S_RETRY_MS 500      //  wait after a failed replay

typedef struct {
    char *name;               //  publisher name (its service)
    uint64_t last;            //  newest sequence delivered
    uint64_t head;            //  newest sequence known to exist
    uint64_t replay;          //  running replay's handle, 0 when none
    int64_t retry_at;         //  when to retry after a failed replay (ms)
    bus_subscriber_t *owner;  //  back pointer for the replay callback
} s_follow_t;

struct _bus_subscriber_t {
    zsock_t *sub;          //  SUB connected to every broker's events-out
    bus_client_t *client;  //  carries replay requests (borrowed)
    core_log_t *log;       //  borrowed logger
    zhashx_t *follows;     //  publisher -> s_follow_t
    bus_event_fn *fn;      //  event handler
    void *arg;             //  its argument
    zlistx_t *prefixes;    //  topics subscribed by the owner
    zloop_t *loop;         //  loop attached to
    int timer;             //  tick timer
};

static void
s_follow_destroy (void **item)
{
    s_follow_t *follow = (s_follow_t *) *item;
    if (follow) {
        free (follow->name);
        free (follow);
    }
    *item = NULL;
}

bus_subscriber_t *
bus_subscriber_new (const char *brokers, bus_client_t *client, core_log_t *log)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints)
        return NULL;
    bus_subscriber_t *self = calloc (1, sizeof (bus_subscriber_t));
    assert (self);
    self->client = client;
    self->log = log;
    self->timer = -1;
    self->follows = zhashx_new ();
    zhashx_set_destructor (self->follows, s_follow_destroy);
    self->prefixes = zlistx_new ();
    zlistx_set_destructor (self->prefixes, (zlistx_destructor_fn *) zstr_free);
    self->sub = zsock_new (ZMQ_SUB);
    assert (self->sub);
    zsock_set_rcvhwm (self->sub, 100000);
    zsock_set_linger (self->sub, 0);
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints)) {
        char events_out[256];
        if (bus_proto_event_endpoint (endpoint, 2, events_out, sizeof events_out) == 0)
            zsock_connect (self->sub, "%s", events_out);
    }
    zlist_destroy (&endpoints);
    return self;
}

void
bus_subscriber_destroy (bus_subscriber_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_subscriber_t *self = *self_p;
    if (self->loop)
        bus_subscriber_detach (self, self->loop);
    for (s_follow_t *follow = (s_follow_t *) zhashx_first (self->follows); follow;
         follow = (s_follow_t *) zhashx_next (self->follows))
        if (follow->replay)
            bus_client_cancel (self->client, follow->replay);
    zhashx_destroy (&self->follows);
    zlistx_destroy (&self->prefixes);
    zsock_destroy (&self->sub);
    free (self);
    *self_p = NULL;
}

void
bus_subscriber_set_handler (bus_subscriber_t *self, bus_event_fn *fn, void *arg)
{
    self->fn = fn;
    self->arg = arg;
}

void
bus_subscriber_subscribe (bus_subscriber_t *self, const char *prefix)
{
    zsock_set_subscribe (self->sub, prefix);
    zlistx_add_end (self->prefixes, strdup (prefix));
}

static bool
s_wanted (bus_subscriber_t *self, const char *topic)
{
    for (char *prefix = (char *) zlistx_first (self->prefixes); prefix;
         prefix = (char *) zlistx_next (self->prefixes))
        if (strncmp (topic, prefix, strlen (prefix)) == 0)
            return true;
    return false;
}

void
bus_subscriber_follow (bus_subscriber_t *self, const char *publisher, uint64_t after_seq)
{
    s_follow_t *follow = (s_follow_t *) zhashx_lookup (self->follows, publisher);
    if (!follow) {
        follow = calloc (1, sizeof (s_follow_t));
        assert (follow);
        follow->name = strdup (publisher);
        follow->owner = self;
        zhashx_insert (self->follows, publisher, follow);
        char head[BUS_NAME_MAX + 16];
        snprintf (head, sizeof head, "_bus.head.%s", publisher);
        zsock_set_subscribe (self->sub, head);
    }
    follow->last = after_seq;
    //  Anything committed while we were away is fetched at once
    follow->head = after_seq + 1;
}

uint64_t
bus_subscriber_cursor (bus_subscriber_t *self, const char *publisher)
{
    s_follow_t *follow = (s_follow_t *) zhashx_lookup (self->follows, publisher);
    return follow ? follow->last : 0;
}

bool
bus_subscriber_catching_up (bus_subscriber_t *self)
{
    for (s_follow_t *follow = (s_follow_t *) zhashx_first (self->follows); follow;
         follow = (s_follow_t *) zhashx_next (self->follows))
        if (follow->replay || follow->head > follow->last)
            return true;
    return false;
}

static void
s_deliver (bus_subscriber_t *self, const char *topic, const ChorusBus__EventMeta *meta,
           const uint8_t *payload, size_t size)
{
    if (self->fn && s_wanted (self, topic))
        self->fn (self, topic, meta, payload, size, self->arg);
}

static void s_replay_start (bus_subscriber_t *self, s_follow_t *follow);

static void
s_on_replay (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_follow_t *follow = (s_follow_t *) arg;
    bus_subscriber_t *self = follow->owner;
    if (reply->kind == BUS_REPLY_PARTIAL) {
        ChorusBus__EventRecord *record = (ChorusBus__EventRecord *) codec_decode (
            &chorus_bus__event_record__descriptor, reply->body, reply->size, NULL, 0);
        if (!record || !record->meta) {
            if (record)
                protobuf_c_message_free_unpacked (&record->base, NULL);
            return;
        }
        uint64_t seq = record->meta->seq;
        if (seq > follow->last) {
            if (seq != follow->last + 1 && self->log)
                core_log_warn (self->log, NULL,
                               "%s: events %" PRIu64 "..%" PRIu64
                               " are no longer in the outbox",
                               follow->name, follow->last + 1, seq - 1);
            follow->last = seq;
            s_deliver (self, record->topic, record->meta, record->payload.data,
                       record->payload.len);
        }
        protobuf_c_message_free_unpacked (&record->base, NULL);
        return;
    }
    follow->replay = 0;
    if (reply->kind == BUS_REPLY_ERROR) {
        if (self->log)
            core_log_warn (self->log, NULL, "replay from %s failed: %s", follow->name,
                           reply->code);
        follow->retry_at = bus_proto_now () + S_RETRY_MS;
        return;
    }
    ChorusBus__ReplayEnd *end = (ChorusBus__ReplayEnd *) codec_decode (
        &chorus_bus__replay_end__descriptor, reply->body, reply->size, NULL, 0);
    if (end) {
        follow->head = end->last_seq;
        protobuf_c_message_free_unpacked (&end->base, NULL);
    }
    //  A full batch: more is waiting
    if (follow->head > follow->last)
        s_replay_start (self, follow);
}

static void
s_replay_start (bus_subscriber_t *self, s_follow_t *follow)
{
    if (follow->replay || bus_proto_now () < follow->retry_at)
        return;
    ChorusBus__ReplayRequest request = CHORUS_BUS__REPLAY_REQUEST__INIT;
    request.after_seq = follow->last;
    request.limit = S_REPLAY_BATCH;
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "events.replay";
    headers.timeout_ms = 10000;
    follow->replay = bus_client_request_msg (self->client, follow->name, "events.replay",
                                             &headers, &request.base, s_on_replay,
                                             follow);
    if (!follow->replay)
        follow->retry_at = bus_proto_now () + S_RETRY_MS;
}

void
bus_subscriber_process (bus_subscriber_t *self)
{
    zmsg_t *msg;
    while ((msg = bus_proto_recv (self->sub, NULL))) {
        char topic[256] = "";
        zframe_t *frame = zmsg_first (msg);
        zframe_t *meta_frame = zmsg_next (msg);
        zframe_t *payload = zmsg_next (msg);
        if (zmsg_size (msg) != 3 || zframe_size (frame) >= sizeof topic) {
            zmsg_destroy (&msg);
            continue;
        }
        memcpy (topic, zframe_data (frame), zframe_size (frame));
        topic[zframe_size (frame)] = 0;
        ChorusBus__EventMeta *meta = (ChorusBus__EventMeta *) codec_decode_frame (
            &chorus_bus__event_meta__descriptor, meta_frame, NULL, 0);
        if (!meta) {
            zmsg_destroy (&msg);
            continue;
        }
        s_follow_t *follow = meta->publisher ? (s_follow_t *) zhashx_lookup (
                                 self->follows, meta->publisher)
                                             : NULL;
        if (strncmp (topic, "_bus.head.", 10) == 0) {
            if (follow && meta->seq > follow->head)
                follow->head = meta->seq;
        }
        else if (!follow || meta->seq == 0)
            s_deliver (self, topic, meta, zframe_data (payload), zframe_size (payload));
        else {
            if (meta->seq > follow->head)
                follow->head = meta->seq;
            if (!follow->replay && meta->seq == follow->last + 1) {
                follow->last = meta->seq;
                s_deliver (self, topic, meta, zframe_data (payload),
                           zframe_size (payload));
            }
        }
        if (follow && follow->head > follow->last)
            s_replay_start (self, follow);
        protobuf_c_message_free_unpacked (&meta->base, NULL);
        zmsg_destroy (&msg);
    }
}

int
bus_subscriber_tick (bus_subscriber_t *self)
{
    for (s_follow_t *follow = (s_follow_t *) zhashx_first (self->follows); follow;
         follow = (s_follow_t *) zhashx_next (self->follows))
        if (follow->head > follow->last)
            s_replay_start (self, follow);
    return 100;
}

zsock_t *
bus_subscriber_socket (bus_subscriber_t *self)
{
    return self->sub;
}

static int
s_on_socket (zloop_t *loop, zsock_t *reader, void *arg)
{
    bus_subscriber_process ((bus_subscriber_t *) arg);
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    bus_subscriber_tick ((bus_subscriber_t *) arg);
    return 0;
}

int
bus_subscriber_attach (bus_subscriber_t *self, zloop_t *loop)
{
    if (zloop_reader (loop, self->sub, s_on_socket, self))
        return -1;
    self->timer = zloop_timer (loop, 100, 0, s_on_timer, self);
    self->loop = loop;
    return self->timer >= 0 ? 0 : -1;
}

void
bus_subscriber_detach (bus_subscriber_t *self, zloop_t *loop)
{
    zloop_reader_end (loop, self->sub);
    if (self->timer >= 0)
        zloop_timer_end (loop, self->timer);
    self->timer = -1;
    self->loop = NULL;
}
