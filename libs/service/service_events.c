/*  service_events: outbox-backed event publishing and replay (service_events.h).
    The sequence comes from a one-row counter updated inside the event's own
    transaction: its row lock orders event-writing transactions, so sequence
    numbers are dense and committed in order, and a rolled-back event frees its
    number for the next.

    That lock makes event transactions run one after the other, each waiting for
    the commit (the WAL flush) before it, so emits are grouped: at most
    S_IN_FLIGHT transactions are sent, and the events emitted meanwhile wait here
    and go together in the next one, one commit for the group. A group takes the
    counter's row first, then runs its callers' statements in order, then one
    insert numbers all its events: groups of different callers' rows would
    otherwise lock them in any order and could deadlock, which single-event
    transactions never did; taken first, the row makes them wait in line instead
    (the second group's statements already at the server). An idle publisher
    writes an event at once. When a statement of a group's transaction fails,
    each of its events is tried again on its own, so one caller's bad statement
    fails only its own event.

    The socket that publishes is an XPUB: ZeroMQ hands it the subscriptions the
    brokers pass on (the first for a prefix, and its end when the last
    subscriber of it is gone), so a live event that nobody subscribes to is not
    built at all; a reply's stream events with no WebSocket client watching were
    half of what chat allocated per delta.                                      */
#include "service_events.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>

#include "bus_proto.h"
#include "codec_msgpack.h"

#define S_REPLAY_MAX 1000            //  most records one replay answer carries
#define S_HEAD_MS 1000               //  how often the newest sequence is announced
#define S_IN_FLIGHT 2                //  event transactions running at once
#define S_GROUP_MAX 64               //  events one transaction writes at most
#define S_GROUP_BYTES (1024 * 1024)  //  payload bytes one transaction writes, about
#define S_QUEUE_MAX 1000             //  events waiting, when no limit is given
#define S_BYTEA_OID 17               //  PostgreSQL's type bytea (pg_type.oid)
#define S_PREFIX_MAX 255             //  longest subscription followed; longer: all

typedef struct _s_emit_t s_emit_t;

struct _service_events_t {
    char *publisher;    //  our name in EventMeta.publisher
    char *claim_sql;    //  a group's first statement: takes the counter's row
    char *insert_sql;   //  outbox insert of a group, schema-qualified
    char *replay_sql;   //  outbox read for replay
    char *head_sql;     //  newest sequence
    db_pool_t *db;      //  borrowed database pool
    zsock_t *pub;       //  XPUB connected to every broker's events-in
    bool following;     //  its subscriptions are read (attached to a loop)
    bool wants_long;    //  a subscription longer than S_PREFIX_MAX is held
    zhashx_t *wanted;   //  subscribed prefixes (keys; values unused)
    core_log_t *log;    //  borrowed logger
    zloop_t *loop;      //  loop we are attached to
    int timer;          //  head announcement timer
    bool head_busy;     //  a head query is running
    uint64_t last_seq;  //  newest sequence we know of
    s_emit_t *head;     //  events waiting for a transaction, oldest first
    s_emit_t *tail;     //  the newest of them
    size_t queued;      //  events waiting
    size_t queue_max;   //  most events waiting
    int in_flight;      //  event transactions running
    bool stopping;      //  service_events_stop was called
    uint32_t lengths[S_PREFIX_MAX + 1];  //  how many wanted prefixes have each length
};

//  One event, with a copy of its caller's statements (one block).
struct _s_emit_t {
    service_events_t *self;        //  owner
    char *topic;                   //  event topic
    char *tenant_id;               //  event tenant
    zframe_t *payload;             //  event payload
    db_stmt_t *before;             //  the caller's statements, copied
    size_t count;                  //  how many
    bool alone;                    //  its group failed: it goes on its own
    service_events_done_fn *done;  //  completion
    void *arg;                     //  its argument
    s_emit_t *next;                //  in the queue
};

//  One transaction: a group of events.
typedef struct {
    service_events_t *self;  //  owner
    s_emit_t **emits;        //  the events, in emit order
    size_t count;            //  how many
    db_stmt_t *stmts;        //  the transaction (borrows the events' copies)
    size_t stmt_count;       //  statements in it
    char *params[4];         //  the insert's: count, topics, tenants, payloads
    db_binary_t binary;      //  the payloads: a binary bytea[], and its bytes
} s_group_t;

typedef struct {
    service_events_t *self;  //  owner
    bus_worker_t *worker;    //  replica answering
    bus_request_t *request;  //  the replay request
    char params[2][24];      //  after_seq, limit as text
} s_replay_t;

service_events_t *
service_events_new (const char *publisher, const char *schema, db_pool_t *db,
                    const char *brokers, size_t queue_max, core_log_t *log)
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
    self->queue_max = queue_max ? queue_max : S_QUEUE_MAX;
    int rc = asprintf (&self->claim_sql,
                       "UPDATE \"%s\".outbox_state SET last_seq = last_seq + $1::bigint "
                       "WHERE id = 1",
                       schema);
    assert (rc > 0);
    rc = asprintf (
        &self->insert_sql,
        "INSERT INTO \"%s\".outbox (seq, topic, tenant_id, payload) "
        "SELECT s.last_seq - $1::bigint + e.ord, e.topic, e.tenant_id, e.payload "
        "FROM \"%s\".outbox_state s, unnest ($2::text[], $3::text[], $4::bytea[]) "
        "WITH ORDINALITY AS e (topic, tenant_id, payload, ord) WHERE s.id = 1 "
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
    self->pub = zsock_new (ZMQ_XPUB);
    assert (self->pub);
    self->wanted = zhashx_new ();
    assert (self->wanted);
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
    service_events_stop (self);
    if (self->loop && self->timer >= 0)
        zloop_timer_end (self->loop, self->timer);
    if (self->loop && self->following)
        zloop_reader_end (self->loop, self->pub);
    zsock_destroy (&self->pub);
    zhashx_destroy (&self->wanted);
    free (self->publisher);
    free (self->claim_sql);
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

//  Whether some subscription is a prefix of topic: always, until we follow them.
static bool
s_wanted (service_events_t *self, const char *topic)
{
    if (!self->following || self->wants_long)
        return true;
    char key[S_PREFIX_MAX + 1];
    size_t len = strnlen (topic, S_PREFIX_MAX);
    memcpy (key, topic, len);
    key[len] = 0;
    for (size_t n = 0; n <= len; n++)
        if (self->lengths[n]) {
            char kept = key[n];
            key[n] = 0;
            bool found = zhashx_lookup (self->wanted, key) != NULL;
            key[n] = kept;
            if (found)
                return true;
        }
    return false;
}

//  Subscriptions arriving from the brokers: 1 or 0, then the prefix.
static int
s_on_subscription (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    service_events_t *self = (service_events_t *) arg;
    for (int batch = 0; batch < 256; batch++) {
        zframe_t *frame = zframe_recv_nowait (reader);
        if (!frame)
            break;
        size_t size = zframe_size (frame);
        const char *data = (const char *) zframe_data (frame);
        if (size >= 1 && (data[0] == 0 || data[0] == 1)) {
            size_t len = size - 1;
            if (len > S_PREFIX_MAX || memchr (data + 1, 0, len))
                self->wants_long = true;  //  not followed: everything goes out
            else {
                char key[S_PREFIX_MAX + 1];
                memcpy (key, data + 1, len);
                key[len] = 0;
                bool held = zhashx_lookup (self->wanted, key) != NULL;
                if (data[0] == 1 && !held) {
                    zhashx_insert (self->wanted, key, self);
                    self->lengths[len]++;
                }
                else if (data[0] == 0 && held) {
                    zhashx_delete (self->wanted, key);
                    self->lengths[len]--;
                }
            }
        }
        zframe_destroy (&frame);
    }
    return 0;
}

void
service_events_publish_live (service_events_t *self, const char *tenant_id,
                             const char *topic, const void *payload, size_t size)
{
    if (!self || !self->pub || !s_wanted (self, topic))
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
    free (emit->before);
    free (emit);
    *emit_p = NULL;
}

//  The event is over: tell its caller, free it.
static void
s_emit_end (s_emit_t *emit, const char *error, uint64_t seq)
{
    if (emit->done)
        emit->done (error, seq, emit->arg);
    s_emit_free (&emit);
}

//  A copy of count statements in one block: the db_stmt_t array, then the
//  parameter pointer arrays, then every string (with deep; else the strings are
//  the caller's).
static db_stmt_t *
s_stmts_copy (const db_stmt_t *stmts, size_t count, bool deep)
{
    size_t pointers = 0, bytes = 0;
    for (size_t i = 0; i < count; i++) {
        bytes += deep ? strlen (stmts[i].sql) + 1 : 0;
        pointers += (size_t) stmts[i].nparams;
        for (int p = 0; deep && p < stmts[i].nparams; p++)
            if (stmts[i].params[p])
                bytes += strlen (stmts[i].params[p]) + 1;
    }
    size_t head = count * sizeof (db_stmt_t) + pointers * sizeof (char *);
    char *block = malloc (head + bytes + 1);
    assert (block);
    db_stmt_t *copy = (db_stmt_t *) block;
    const char **slots = (const char **) (block + count * sizeof (db_stmt_t));
    char *text = block + head;
    for (size_t i = 0; i < count; i++) {
        copy[i].nparams = stmts[i].nparams;
        copy[i].params = slots;
        if (!deep) {
            copy[i].sql = stmts[i].sql;
            for (int p = 0; p < stmts[i].nparams; p++)
                *slots++ = stmts[i].params[p];
            continue;
        }
        size_t len = strlen (stmts[i].sql) + 1;
        memcpy (text, stmts[i].sql, len);
        copy[i].sql = text;
        text += len;
        for (int p = 0; p < stmts[i].nparams; p++) {
            const char *param = stmts[i].params[p];
            if (!param) {
                *slots++ = NULL;
                continue;
            }
            len = strlen (param) + 1;
            memcpy (text, param, len);
            *slots++ = text;
            text += len;
        }
    }
    return copy;
}

//  Append one element to a text array literal: in double quotes, a backslash
//  before each quote or backslash.
static void
s_array_add (char **out, const char *data, size_t size)
{
    char *at = *out;
    *at++ = '"';
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '"' || data[i] == '\\')
            *at++ = '\\';
        *at++ = data[i];
    }
    *at++ = '"';
    *out = at;
}

static void
s_group_free (s_group_t **group_p)
{
    s_group_t *group = *group_p;
    for (int i = 0; i < 4; i++)
        free (group->params[i]);
    free (group->stmts);
    free (group->emits);
    free (group);
    *group_p = NULL;
}

static void s_flush (service_events_t *self);

static void
s_on_group (PGresult *result, const char *error, void *arg)
{
    s_group_t *group = (s_group_t *) arg;
    service_events_t *self = group->self;
    self->in_flight--;
    //  An error with the server's result: a statement failed, the transaction
    //  rolled back
    bool rolled_back = error && result;
    if (!error && (!result || PQntuples (result) != (int) group->count))
        error = "the outbox insert returned other rows than it was given";
    if (error) {
        if (group->count > 1 && rolled_back && !self->stopping) {
            //  Each event again on its own, ahead of the events waiting, since one
            //  caller's statement may be what failed. A lost connection (no
            //  result) leaves the commit's outcome unknown: not retried.
            for (size_t i = group->count; i-- > 0;) {
                s_emit_t *emit = group->emits[i];
                emit->alone = true;
                emit->next = self->head;
                self->head = emit;
                if (!self->tail)
                    self->tail = emit;
                self->queued++;
            }
        }
        else {
            core_log_warn (self->log, NULL, "event %s not written: %s",
                           group->emits[0]->topic, error);
            for (size_t i = 0; i < group->count; i++)
                s_emit_end (group->emits[i], error, 0);
        }
        s_group_free (&group);
        s_flush (self);
        return;
    }
    //  The sequence numbers are consecutive in emit order
    uint64_t first = UINT64_MAX;
    for (int row = 0; row < PQntuples (result); row++) {
        uint64_t seq = strtoull (PQgetvalue (result, row, 0), NULL, 10);
        first = seq < first ? seq : first;
    }
    int64_t *times = calloc (group->count, sizeof (int64_t));
    assert (times);
    for (int row = 0; row < PQntuples (result); row++) {
        uint64_t seq = strtoull (PQgetvalue (result, row, 0), NULL, 10);
        if (seq - first < group->count)
            times[seq - first] = strtoll (PQgetvalue (result, row, 1), NULL, 10);
    }
    uint64_t last = first + group->count - 1;
    if (last > self->last_seq)
        self->last_seq = last;
    for (size_t i = 0; i < group->count; i++) {
        s_emit_t *emit = group->emits[i];
        s_publish (self, emit->topic, emit->tenant_id, first + i, times[i],
                   emit->payload);
        s_emit_end (emit, NULL, first + i);
    }
    free (times);
    s_group_free (&group);
    s_flush (self);
}

//  Take the next group off the queue: up to S_GROUP_MAX events and about
//  S_GROUP_BYTES of payload; an event retried alone goes on its own.
static s_group_t *
s_group_take (service_events_t *self)
{
    s_group_t *group = calloc (1, sizeof (s_group_t));
    assert (group);
    group->self = self;
    size_t room = self->queued < S_GROUP_MAX ? self->queued : S_GROUP_MAX;
    group->emits = calloc (room, sizeof (s_emit_t *));
    assert (group->emits);
    size_t bytes = 0, stmts = 0;
    while (self->head && group->count < room) {
        s_emit_t *emit = self->head;
        size_t size = zframe_size (emit->payload);
        if (group->count
            && (emit->alone || group->emits[0]->alone || bytes + size > S_GROUP_BYTES))
            break;
        self->head = emit->next;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
        emit->next = NULL;
        group->emits[group->count++] = emit;
        bytes += size;
        stmts += emit->count;
    }
    //  The insert's parameters: how many, two text array literals, and the
    //  payloads as one bytea[] in PostgreSQL's binary array format
    size_t topics = 3, tenants = 3, payloads = 20;
    for (size_t i = 0; i < group->count; i++) {
        s_emit_t *emit = group->emits[i];
        topics += strlen (emit->topic) * 2 + 3;
        tenants += strlen (emit->tenant_id) * 2 + 3;
        payloads += 4 + zframe_size (emit->payload);
    }
    char *lists[2] = {malloc (topics), malloc (tenants)};
    char *at[2] = {lists[0], lists[1]};
    for (int k = 0; k < 2; k++) {
        assert (lists[k]);
        *at[k]++ = '{';
    }
    uint8_t *array = malloc (payloads);
    assert (array);
    //  ndim 1, no NULLs, element type bytea, then the dimension: size, lower bound
    uint32_t head[5] = {htonl (1), 0, htonl (S_BYTEA_OID),
                        htonl ((uint32_t) group->count), htonl (1)};
    memcpy (array, head, sizeof head);
    uint8_t *put = array + sizeof head;
    for (size_t i = 0; i < group->count; i++) {
        s_emit_t *emit = group->emits[i];
        for (int k = 0; i && k < 2; k++)
            *at[k]++ = ',';
        s_array_add (&at[0], emit->topic, strlen (emit->topic));
        s_array_add (&at[1], emit->tenant_id, strlen (emit->tenant_id));
        uint32_t size = htonl ((uint32_t) zframe_size (emit->payload));
        memcpy (put, &size, 4);
        if (zframe_size (emit->payload))
            memcpy (put + 4, zframe_data (emit->payload), zframe_size (emit->payload));
        put += 4 + zframe_size (emit->payload);
    }
    for (int k = 0; k < 2; k++) {
        *at[k]++ = '}';
        *at[k] = 0;
        group->params[k + 1] = lists[k];
    }
    group->params[3] = (char *) array;
    group->binary.length = (int) (put - array);
    group->params[0] = zsys_sprintf ("%zu", group->count);
    assert (group->params[0]);
    group->stmts = calloc (stmts + 2, sizeof (db_stmt_t));
    assert (group->stmts);
    //  The counter's row first: a group waits for the one before it to commit
    //  before it locks anything of its callers', so event transactions never
    //  wait for each other in a cycle
    group->stmts[0].sql = self->claim_sql;
    group->stmts[0].nparams = 1;
    group->stmts[0].params = (const char *const *) group->params;
    size_t n = 1;
    for (size_t i = 0; i < group->count; i++)
        for (size_t j = 0; j < group->emits[i]->count; j++)
            group->stmts[n++] = group->emits[i]->before[j];
    group->stmts[n].sql = self->insert_sql;
    group->stmts[n].nparams = 4;
    group->stmts[n].params = (const char *const *) group->params;
    group->binary.stmt = n;
    group->binary.param = 3;
    group->stmt_count = n + 1;
    return group;
}

//  Start transactions for the events waiting, while fewer than S_IN_FLIGHT run.
static void
s_flush (service_events_t *self)
{
    while (self->head && self->in_flight < S_IN_FLIGHT && !self->stopping) {
        s_group_t *group = s_group_take (self);
        //  Everything the statements name lives as long as the group
        if (db_pool_tx_borrowed (self->db, 0, group->stmts, group->stmt_count,
                                 &group->binary, 1, s_on_group, group)) {
            const char *error = db_pool_error (self->db);
            core_log_warn (self->log, NULL, "event %s not written: %s",
                           group->emits[0]->topic, error);
            for (size_t i = 0; i < group->count; i++)
                s_emit_end (group->emits[i], error, 0);
            s_group_free (&group);
            continue;
        }
        self->in_flight++;
    }
}

static int
s_emit (service_events_t *self, const char *tenant_id, const char *topic,
        const void *payload, size_t size, const db_stmt_t *before, size_t count,
        bool deep, service_events_done_fn *done, void *arg)
{
    if (self->stopping || self->queued >= self->queue_max)
        return -1;
    s_emit_t *emit = calloc (1, sizeof (s_emit_t));
    assert (emit);
    emit->self = self;
    emit->topic = strdup (topic);
    emit->tenant_id = strdup (tenant_id ? tenant_id : "");
    assert (emit->topic && emit->tenant_id);
    emit->payload = zframe_new (payload, size);
    emit->before = count ? s_stmts_copy (before, count, deep) : NULL;
    emit->count = count;
    emit->done = done;
    emit->arg = arg;
    if (self->tail)
        self->tail->next = emit;
    else
        self->head = emit;
    self->tail = emit;
    self->queued++;
    s_flush (self);
    return 0;
}

int
service_events_emit (service_events_t *self, const char *tenant_id, const char *topic,
                     const void *payload, size_t size, const db_stmt_t *before,
                     size_t count, service_events_done_fn *done, void *arg)
{
    return s_emit (self, tenant_id, topic, payload, size, before, count, true, done, arg);
}

int
service_events_emit_borrowed (service_events_t *self, const char *tenant_id,
                              const char *topic, const void *payload, size_t size,
                              const db_stmt_t *before, size_t count,
                              service_events_done_fn *done, void *arg)
{
    return s_emit (self, tenant_id, topic, payload, size, before, count, false, done,
                   arg);
}

void
service_events_stop (service_events_t *self)
{
    if (!self || self->stopping)
        return;
    self->stopping = true;
    while (self->head) {
        s_emit_t *emit = self->head;
        self->head = emit->next;
        self->queued--;
        s_emit_end (emit, "the service is stopping", 0);
    }
    self->tail = NULL;
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
    if (self->timer < 0)
        return -1;
    //  The subscriptions that came before are queued in the socket: none is missed
    self->following = zloop_reader (loop, self->pub, s_on_subscription, self) == 0;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Selftest

#include "core_waiter.h"
#include "db_testing.h"

typedef struct {
    uint64_t seq;     //  what it got
    char error[160];  //  or why not
    int *done;        //  callbacks so far, shared
} s_probe_t;

static void
s_probe_done (const char *error, uint64_t seq, void *arg)
{
    s_probe_t *probe = (s_probe_t *) arg;
    probe->seq = seq;
    snprintf (probe->error, sizeof probe->error, "%s", error ? error : "");
    (*probe->done)++;
}

//  Send a subscription change (on 1, off 0) for prefix as a broker's XSUB does,
//  then read what the publisher gets until topic is wanted as expected (topic
//  NULL: a change that passes nothing on; read for a moment).
static void
s_test_change (service_events_t *events, zsock_t *xsub, int on, const char *prefix,
               const char *topic, bool expected)
{
    size_t len = strlen (prefix);
    zframe_t *change = zframe_new (NULL, len + 1);
    zframe_data (change)[0] = (byte) on;
    memcpy (zframe_data (change) + 1, prefix, len);
    assert (zframe_send (&change, xsub, 0) == 0);
    for (int tries = 0; tries < 400; tries++) {
        if (zsock_events (events->pub) & ZMQ_POLLIN)
            s_on_subscription (NULL, events->pub, events);
        if (topic && s_wanted (events, topic) == expected)
            return;
        zclock_sleep (5);
        if (!topic && tries == 10)
            return;
    }
    assert (false);
}

static long
s_count (PGconn *pg, const char *sql)
{
    PGresult *result = PQexec (pg, sql);
    assert (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) == 1);
    long value = strtol (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);
    return value;
}

void
service_events_test (bool verbose)
{
    printf (" * service_events: ");
    const char *url = db_testing_url ();
    core_log_t *log = core_log_new ("service_events_test", verbose ? "debug" : "off");
    zloop_t *loop = zloop_new ();
    assert (loop);
    core_waiter_t *waiter = core_waiter_new (loop);
    char schema[64], sql[1024];
    snprintf (schema, sizeof schema, "service_events_test_%d", (int) getpid ());
    PGconn *admin = db_testing_connect (url);
    snprintf (sql, sizeof sql,
              "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
              "CREATE TABLE %s.outbox_state (id integer PRIMARY KEY CHECK (id = 1),"
              " last_seq bigint NOT NULL);"
              "INSERT INTO %s.outbox_state VALUES (1, 0);"
              "CREATE TABLE %s.outbox (seq bigint PRIMARY KEY, topic text NOT NULL,"
              " tenant_id text NOT NULL DEFAULT '', payload bytea NOT NULL,"
              " created_at timestamptz NOT NULL DEFAULT now());"
              "CREATE TABLE %s.items (id int PRIMARY KEY, name text NOT NULL)",
              schema, schema, schema, schema, schema, schema);
    db_testing_exec (admin, sql);
    db_pool_config_t config = {.conninfo = url, .size = 3, .queue_max = 1000};
    db_pool_t *pool = db_pool_new (&config, log);
    assert (pool && db_pool_attach (pool, loop) == 0);

    //  @selftest
    //  300 events emitted at once, each with its caller's insert: one caller's
    //  statement fails (a duplicate key), only its event fails; the others are
    //  numbered 1..299 densely and written with their payloads, topics and
    //  tenants as given (quotes and backslashes included)
    service_events_t *events = service_events_new ("evself", schema, pool,
                                                   "tcp://127.0.0.1:1", 0, log);
    assert (events && service_events_attach (events, loop) == 0);
    enum { N = 300, BAD = 137 };
    s_probe_t *probes = calloc (N, sizeof (s_probe_t));
    assert (probes);
    int done = 0;
    char insert[128];
    snprintf (insert, sizeof insert, "INSERT INTO %s.items VALUES ($1::int, $2)", schema);
    for (int i = 0; i < N; i++) {
        probes[i] = (s_probe_t){.done = &done};
        char id[16], name[32], topic[48];
        snprintf (id, sizeof id, "%d", i == BAD ? 5 : i);
        snprintf (name, sizeof name, "item \"%d\" \\", i);
        snprintf (topic, sizeof topic, "test.\"quoted\\\".%d", i);
        const char *params[] = {id, name};
        db_stmt_t before[] = {{insert, 2, params}};
        uint8_t payload[3] = {0x81, (uint8_t) (i & 0xff), 0};
        assert (service_events_emit (events, i % 2 ? "tenant \"b\"" : "", topic, payload,
                                     sizeof payload, before, 1, s_probe_done, &probes[i])
                == 0);
    }
    assert (core_waiter_wait_count (waiter, &done, N, 20000));
    char *seen = calloc (N + 1, 1);
    assert (seen);
    for (int i = 0; i < N; i++) {
        if (i == BAD) {
            assert (probes[i].seq == 0 && strstr (probes[i].error, "duplicate key"));
            continue;
        }
        assert (probes[i].error[0] == 0);
        assert (probes[i].seq >= 1 && probes[i].seq < N && !seen[probes[i].seq]);
        seen[probes[i].seq] = 1;
        snprintf (sql, sizeof sql,
                  "SELECT count(*) FROM %s.outbox WHERE seq = %" PRIu64 " AND topic = "
                  "'test.\"quoted\\\".%d' AND tenant_id = '%s' AND payload = "
                  "'\\x81%02x00'::bytea",
                  schema, probes[i].seq, i, i % 2 ? "tenant \"b\"" : "", i & 0xff);
        assert (s_count (admin, sql) == 1);
    }
    free (seen);
    snprintf (sql, sizeof sql, "SELECT count(*) FROM %s.items", schema);
    assert (s_count (admin, sql) == N - 1);
    snprintf (sql, sizeof sql, "SELECT last_seq FROM %s.outbox_state", schema);
    assert (s_count (admin, sql) == N - 1);
    //  Fewer transactions than events: those emitted while others were being
    //  written went together (a transaction's rows share its now ())
    snprintf (sql, sizeof sql, "SELECT count(DISTINCT created_at) FROM %s.outbox",
              schema);
    assert (s_count (admin, sql) < N / 2);

    //  An idle publisher writes at once; the queue has a limit; stopping fails
    //  the waiting ones and refuses new ones
    service_events_destroy (&events);
    events = service_events_new ("evself", schema, pool, "tcp://127.0.0.1:1", 3, log);
    assert (events);
    done = 0;
    for (int i = 0; i < 5; i++) {
        probes[i] = (s_probe_t){.done = &done};
        int rc = service_events_emit (events, "", "test.limit", "\x80", 1, NULL, 0,
                                      s_probe_done, &probes[i]);
        //  two are sent at once, three wait: the sixth is refused
        assert (rc == 0);
    }
    assert (service_events_emit (events, "", "test.limit", "\x80", 1, NULL, 0,
                                 s_probe_done, &probes[5])
            == -1);
    service_events_stop (events);
    assert (done == 3);
    for (int i = 2; i < 5; i++)
        assert (probes[i].seq == 0 && streq (probes[i].error, "the service is stopping"));
    assert (service_events_emit (events, "", "test.limit", "\x80", 1, NULL, 0,
                                 s_probe_done, &probes[5])
            == -1);
    assert (core_waiter_wait_count (waiter, &done, 5, 5000));
    assert (probes[0].seq + probes[1].seq == 2 * N + 1);
    assert (probes[0].seq == N || probes[0].seq == N + 1);

    //  Borrowed statements: the caller's strings, read when the group is sent
    service_events_destroy (&events);
    events = service_events_new ("evself", schema, pool, "tcp://127.0.0.1:1", 0, log);
    assert (events);
    done = 0;
    char *id = strdup ("1000"), *name = strdup ("borrowed");
    const char *borrowed[3][2] = {{id, name}, {"1001", "kept"}, {"1002", "kept"}};
    for (int i = 0; i < 3; i++) {
        probes[i] = (s_probe_t){.done = &done};
        db_stmt_t before[] = {{insert, 2, borrowed[i]}};
        assert (service_events_emit_borrowed (events, "", "test.borrowed", "\x80", 1,
                                              before, 1, s_probe_done, &probes[i])
                == 0);
    }
    assert (core_waiter_wait_count (waiter, &done, 3, 5000));
    for (int i = 0; i < 3; i++)
        assert (probes[i].error[0] == 0 && probes[i].seq > N + 1);
    free (id);
    free (name);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM %s.items WHERE (id = 1000 AND name = 'borrowed') OR "
              "(id IN (1001, 1002) AND name = 'kept')",
              schema);
    assert (s_count (admin, sql) == 3);

    //  Live events: built only for a topic some subscription is a prefix of, as
    //  the broker's XSUB passes them on (here the test's own XSUB); before it
    //  follows the subscriptions (not attached yet) a publisher sends everything
    service_events_destroy (&events);
    zsock_t *xsub = zsock_new (ZMQ_XSUB);
    assert (xsub && zsock_bind (xsub, "inproc://evself-live-events-in") == 0);
    events = service_events_new ("evself", schema, pool, "inproc://evself-live", 0, log);
    assert (events && s_wanted (events, "chat.stream.a"));
    assert (service_events_attach (events, loop) == 0);
    assert (!s_wanted (events, "chat.stream.a"));
    //  The XSUB counts a prefix's subscribers (a broker's: every edge watching)
    //  and passes its end on after the last one's
    s_test_change (events, xsub, 1, "chat.stream.a", "chat.stream.ab", true);
    assert (s_wanted (events, "chat.stream.a") && !s_wanted (events, "chat.stream.b"));
    s_test_change (events, xsub, 1, "chat.stream.a", NULL, true);
    s_test_change (events, xsub, 1, "", "edge.typing.a", true);
    s_test_change (events, xsub, 0, "", "edge.typing.a", false);
    assert (s_wanted (events, "chat.stream.a"));
    s_test_change (events, xsub, 0, "chat.stream.a", NULL, false);
    assert (s_wanted (events, "chat.stream.a"));
    s_test_change (events, xsub, 0, "chat.stream.a", "chat.stream.a", false);
    s_test_change (events, xsub, 1, "chat.", "chat.stream.b", true);
    assert (s_wanted (events, "chat.stream.b") && !s_wanted (events, "edge.typing.a"));
    service_events_publish_live (events, "t1", "edge.typing.a", "\x80", 1);
    service_events_publish_live (events, "t1", "chat.stream.b", "\x81\xa1n\x01", 4);
    zmsg_t *live = zmsg_recv (xsub);  //  the first one sent is the one wanted
    assert (live && zmsg_size (live) == 3);
    char *live_topic = zmsg_popstr (live);
    assert (streq (live_topic, "chat.stream.b"));
    zstr_free (&live_topic);
    zmsg_destroy (&live);
    service_events_destroy (&events);
    zsock_destroy (&xsub);
    //  @end
    db_pool_destroy (&pool);
    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    db_testing_exec (admin, sql);
    PQfinish (admin);
    free (probes);
    core_waiter_destroy (&waiter);
    zloop_destroy (&loop);
    core_log_destroy (&log);
    printf ("OK\n");
}
