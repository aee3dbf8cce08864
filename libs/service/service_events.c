/*  service_events: outbox-backed event publishing and replay (service_events.h).
    The sequence comes from a one-row counter updated inside the event's own
    transaction: its row lock orders event-writing transactions, so sequence
    numbers are dense and committed in order, and a rolled-back event frees its
    number for the next.                                                          */
#include "service_events.h"

#include <assert.h>
#include <inttypes.h>

#include "bus_proto.h"
#include "codec_msgpack.h"

#define S_REPLAY_MAX 1000  //  most records one replay answer carries
#define S_HEAD_MS 1000     //  how often the newest sequence is announced

struct _service_events_t {
    char *publisher;    //  our name in EventMeta.publisher
    char *insert_sql;   //  outbox insert, schema-qualified
    char *replay_sql;   //  outbox read for replay
    char *head_sql;     //  newest sequence
    db_pool_t *db;      //  borrowed database pool
    zsock_t *pub;       //  PUB connected to every broker's events-in
    core_log_t *log;    //  borrowed logger
    zloop_t *loop;      //  loop we are attached to
    int timer;          //  head announcement timer
    bool head_busy;     //  a head query is running
    uint64_t last_seq;  //  newest sequence we know of
};

typedef struct {
    service_events_t *self;        //  owner
    char *topic;                   //  event topic
    char *tenant_id;               //  event tenant
    zframe_t *payload;             //  event payload
    char *params[3];               //  topic, tenant, hex payload
    db_stmt_t *stmts;              //  the transaction
    service_events_done_fn *done;  //  completion
    void *arg;                     //  its argument
} s_emit_t;

typedef struct {
    service_events_t *self;  //  owner
    bus_worker_t *worker;    //  replica answering
    bus_request_t *request;  //  the replay request
    char params[2][24];      //  after_seq, limit as text
} s_replay_t;

service_events_t *
service_events_new (const char *publisher, const char *schema, db_pool_t *db,
                    const char *brokers, core_log_t *log)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints)
        return NULL;
    service_events_t *self = calloc (1, sizeof (service_events_t));
    assert (self);
    self->publisher = strdup (publisher);
    self->db = db;
    self->log = log;
    self->timer = -1;
    int rc = asprintf (
        &self->insert_sql,
        "WITH next AS (UPDATE \"%s\".outbox_state SET last_seq = last_seq + 1 "
        "WHERE id = 1 RETURNING last_seq) "
        "INSERT INTO \"%s\".outbox (seq, topic, tenant_id, payload) "
        "SELECT last_seq, $1, $2, decode($3, 'hex') FROM next "
        "RETURNING seq, (extract(epoch FROM created_at) * 1000)::bigint",
        schema, schema);
    assert (rc > 0);
    rc = asprintf (&self->replay_sql,
                   "SELECT s.last_seq, o.seq, o.topic, o.tenant_id, "
                   "encode(o.payload, 'hex'), o.ms FROM \"%s\".outbox_state s "
                   "LEFT JOIN LATERAL (SELECT seq, topic, tenant_id, payload, "
                   "(extract(epoch FROM created_at) * 1000)::bigint AS ms "
                   "FROM \"%s\".outbox WHERE seq > $1::bigint ORDER BY seq "
                   "LIMIT $2::int) o ON true WHERE s.id = 1 ORDER BY o.seq",
                   schema, schema);
    assert (rc > 0);
    rc = asprintf (&self->head_sql,
                   "SELECT last_seq FROM \"%s\".outbox_state WHERE id = 1", schema);
    assert (rc > 0);
    self->pub = zsock_new (ZMQ_PUB);
    assert (self->pub);
    zsock_set_sndhwm (self->pub, 100000);
    zsock_set_linger (self->pub, 1000);
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints)) {
        char events_in[256];
        if (bus_proto_event_endpoint (endpoint, 1, events_in, sizeof events_in) == 0)
            zsock_connect (self->pub, "%s", events_in);
    }
    zlist_destroy (&endpoints);
    return self;
}

void
service_events_destroy (service_events_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    service_events_t *self = *self_p;
    if (self->loop && self->timer >= 0)
        zloop_timer_end (self->loop, self->timer);
    zsock_destroy (&self->pub);
    free (self->publisher);
    free (self->insert_sql);
    free (self->replay_sql);
    free (self->head_sql);
    free (self);
    *self_p = NULL;
}

static void
s_publish (service_events_t *self, const char *topic, const char *tenant_id, uint64_t seq,
           int64_t time_ms, zframe_t *payload)
{
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = self->publisher;
    meta.seq = seq;
    meta.tenant_id = (char *) tenant_id;
    meta.time_ms = time_ms;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&meta.base)});
    zmsg_append (msg, &(zframe_t *){zframe_dup (payload)});
    bus_proto_send (&msg, self->pub);
}

void
service_events_publish_live (service_events_t *self, const char *tenant_id,
                             const char *topic, const void *payload, size_t size)
{
    if (!self || !self->pub)
        return;
    zframe_t *frame = zframe_new (payload, size);
    s_publish (self, topic, tenant_id ? tenant_id : "", 0, (int64_t) zclock_time (),
               frame);
    zframe_destroy (&frame);
}

static void
s_emit_free (s_emit_t **emit_p)
{
    s_emit_t *emit = *emit_p;
    free (emit->topic);
    free (emit->tenant_id);
    zframe_destroy (&emit->payload);
    free (emit->params[2]);
    free (emit->stmts);
    free (emit);
    *emit_p = NULL;
}

static void
s_on_emitted (PGresult *result, const char *error, void *arg)
{
    s_emit_t *emit = (s_emit_t *) arg;
    service_events_t *self = emit->self;
    uint64_t seq = 0;
    if (!error && result && PQntuples (result) == 1) {
        seq = strtoull (PQgetvalue (result, 0, 0), NULL, 10);
        int64_t time_ms = strtoll (PQgetvalue (result, 0, 1), NULL, 10);
        if (seq > self->last_seq)
            self->last_seq = seq;
        s_publish (self, emit->topic, emit->tenant_id, seq, time_ms, emit->payload);
    }
    else if (!error)
        error = "the outbox insert returned no row";
    if (error)
        core_log_warn (self->log, NULL, "event %s not written: %s", emit->topic, error);
    if (emit->done)
        emit->done (error, seq, emit->arg);
    s_emit_free (&emit);
}

int
service_events_emit (service_events_t *self, const char *tenant_id, const char *topic,
                     const void *payload, size_t size, const db_stmt_t *before,
                     size_t count, service_events_done_fn *done, void *arg)
{
    s_emit_t *emit = calloc (1, sizeof (s_emit_t));
    assert (emit);
    emit->self = self;
    emit->topic = strdup (topic);
    emit->tenant_id = strdup (tenant_id ? tenant_id : "");
    emit->payload = zframe_new (payload, size);
    emit->done = done;
    emit->arg = arg;
    char *hex = malloc (size * 2 + 1);
    assert (hex);
    static const char digits[] = "0123456789abcdef";
    const uint8_t *bytes = (const uint8_t *) payload;
    for (size_t i = 0; i < size; i++) {
        hex[i * 2] = digits[bytes[i] >> 4];
        hex[i * 2 + 1] = digits[bytes[i] & 15];
    }
    hex[size * 2] = 0;
    emit->params[0] = emit->topic;
    emit->params[1] = emit->tenant_id;
    emit->params[2] = hex;
    emit->stmts = calloc (count + 1, sizeof (db_stmt_t));
    assert (emit->stmts);
    for (size_t i = 0; i < count; i++)
        emit->stmts[i] = before[i];
    emit->stmts[count].sql = self->insert_sql;
    emit->stmts[count].nparams = 3;
    emit->stmts[count].params = (const char *const *) emit->params;
    if (db_pool_tx (self->db, emit->stmts, count + 1, s_on_emitted, emit)) {
        s_emit_free (&emit);
        return -1;
    }
    return 0;
}

bool
service_events_handles (const char *command)
{
    return streq (command, "events.replay");
}

static int
s_unhex (const char *hex, zframe_t **frame_p)
{
    size_t len = strlen (hex);
    if (len % 2)
        return -1;
    zframe_t *frame = zframe_new (NULL, len / 2);
    uint8_t *data = zframe_data (frame);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned value;
        if (sscanf (hex + i * 2, "%2x", &value) != 1) {
            zframe_destroy (&frame);
            return -1;
        }
        data[i] = (uint8_t) value;
    }
    *frame_p = frame;
    return 0;
}

static void
s_on_replayed (PGresult *result, const char *error, void *arg)
{
    s_replay_t *replay = (s_replay_t *) arg;
    bus_request_t *request = replay->request;
    bus_worker_t *worker = replay->worker;
    if (error || !result || PQntuples (result) < 1) {
        bus_worker_error (worker, &request, BUS_ERR_INTERNAL,
                          error ? error : "the outbox has no state row");
        free (replay);
        return;
    }
    ChorusBus__ReplayEnd end = CHORUS_BUS__REPLAY_END__INIT;
    end.last_seq = strtoull (PQgetvalue (result, 0, 0), NULL, 10);
    for (int row = 0; row < PQntuples (result); row++) {
        if (PQgetisnull (result, row, 1))
            continue;
        zframe_t *payload = NULL;
        if (s_unhex (PQgetvalue (result, row, 4), &payload))
            continue;
        ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
        meta.publisher = replay->self->publisher;
        meta.seq = strtoull (PQgetvalue (result, row, 1), NULL, 10);
        meta.tenant_id = PQgetvalue (result, row, 3);
        meta.time_ms = strtoll (PQgetvalue (result, row, 5), NULL, 10);
        ChorusBus__EventRecord record = CHORUS_BUS__EVENT_RECORD__INIT;
        record.topic = PQgetvalue (result, row, 2);
        record.meta = &meta;
        record.payload.data = zframe_data (payload);
        record.payload.len = zframe_size (payload);
        bus_worker_partial_msg (worker, request, &record.base);
        zframe_destroy (&payload);
        end.count++;
    }
    bus_worker_final_msg (worker, &request, &end.base);
    free (replay);
}

void
service_events_handle (service_events_t *self, bus_worker_t *worker,
                       bus_request_t *request)
{
    char why[128];
    ChorusBus__ReplayRequest *body = (ChorusBus__ReplayRequest *) codec_decode (
        &chorus_bus__replay_request__descriptor, bus_request_body (request),
        bus_request_size (request), why, sizeof why);
    if (!body) {
        bus_worker_error (worker, &request, BUS_ERR_BAD_REQUEST, why);
        return;
    }
    s_replay_t *replay = calloc (1, sizeof (s_replay_t));
    assert (replay);
    replay->self = self;
    replay->worker = worker;
    replay->request = request;
    uint32_t limit = body->limit == 0 || body->limit > S_REPLAY_MAX ? S_REPLAY_MAX
                                                                    : body->limit;
    snprintf (replay->params[0], sizeof replay->params[0], "%" PRIu64, body->after_seq);
    snprintf (replay->params[1], sizeof replay->params[1], "%u", limit);
    protobuf_c_message_free_unpacked (&body->base, NULL);
    const char *params[2] = {replay->params[0], replay->params[1]};
    if (db_pool_query (self->db, self->replay_sql, 2, params, s_on_replayed, replay)) {
        bus_worker_error (worker, &replay->request, BUS_ERR_OVERLOADED,
                          "the database queue is full");
        free (replay);
    }
}

static void
s_on_head (PGresult *result, const char *error, void *arg)
{
    service_events_t *self = (service_events_t *) arg;
    self->head_busy = false;
    if (error || !result || PQntuples (result) != 1)
        return;
    uint64_t seq = strtoull (PQgetvalue (result, 0, 0), NULL, 10);
    if (seq > self->last_seq)
        self->last_seq = seq;
    char topic[BUS_NAME_MAX + 16];
    snprintf (topic, sizeof topic, "_bus.head.%s", self->publisher);
    zframe_t *empty = zframe_new ("\x80", 1);
    s_publish (self, topic, "", self->last_seq, zclock_time (), empty);
    zframe_destroy (&empty);
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    service_events_t *self = (service_events_t *) arg;
    if (!self->head_busy
        && db_pool_query (self->db, self->head_sql, 0, NULL, s_on_head, self) == 0)
        self->head_busy = true;
    return 0;
}

int
service_events_attach (service_events_t *self, zloop_t *loop)
{
    self->loop = loop;
    self->timer = zloop_timer (loop, S_HEAD_MS, 0, s_on_timer, self);
    return self->timer >= 0 ? 0 : -1;
}
