/*  channels_inbox: processing after the answer (see channels_inbox.h).         */
#include "channels_inbox.h"

#include <assert.h>
#include <inttypes.h>

#include "channels_outbound.h"
#include "channels_split.h"
#include "chat.pb-c.h"
#include "codec_msgpack.h"

//  An inbox row in flight.
typedef struct {
    channels_state_t *state;
    void *place;                      //  in state->inbox_jobs
    uint64_t handle;                  //  channel.inbound in flight, 0 none
    char id[SERVICE_ID_SIZE];         //  the inbox row
    char tenant_id[SERVICE_ID_SIZE];  //  its connection's tenant
    char connection_id[SERVICE_ID_SIZE];
    char agent_id[SERVICE_ID_SIZE];
    char request_id[SERVICE_ID_SIZE];  //  for the logs and chat
    char *platform;
    char *chat_id;
    char *thread_id;
    char *sender_name;
    char *content;     //  what chat stores
    int64_t attempts;  //  this attempt's number
    bool finishing;    //  inbox_finish in flight
} s_job_t;

static void
s_job_destroy (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job)
        return;
    if (job->handle)
        bus_client_cancel (service_runtime_client (job->state->runtime), job->handle);
    if (job->place)
        zlistx_delete (job->state->inbox_jobs, job->place);
    free (job->platform);
    free (job->chat_id);
    free (job->thread_id);
    free (job->sender_name);
    free (job->content);
    free (job);
    *job_p = NULL;
}

bool
channels_inbox_retryable (const char *code)
{
    static const char *const final[] = {"bad_request", "not_found", "forbidden",
                                        "unauthorized"};
    for (size_t i = 0; code && i < sizeof final / sizeof final[0]; i++)
        if (streq (code, final[i]))
            return false;
    return true;
}

int64_t
channels_inbox_backoff_ms (int64_t attempt, uint32_t retry_after_s)
{
    int64_t wait = 2000;
    for (int64_t i = 1; i < attempt && wait < 600000; i++)
        wait *= 2;
    if (wait > 600000)
        wait = 600000;
    if (retry_after_s && (int64_t) retry_after_s * 1000 > wait)
        wait = (int64_t) retry_after_s * 1000;
    return wait;
}

//  ---------------------------------------------------------------------------------
//  The end of a row

static void
s_finished (PGresult *result, const char *error, void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    channels_state_t *state = job->state;
    (void) result;
    if (error)
        core_log_warn (state->log, job->request_id,
                       "inbox %s: its outcome was not stored (%s): it is taken again "
                       "when its lease ends",
                       job->id, error);
    s_job_destroy (&job);
    if (error)
        return;  //  the database is gone or going (the pool fails what it held)
    channels_outbound_kick (state);
    channels_inbox_kick (state);
}

//  End the row: outcome done (conversation, and the reply's parts when message
//  is set), received (again after delay_ms) or failed.
static void
s_finish (s_job_t *job, const char *outcome, const char *conversation,
          const char *message, const char *text, const char *error, int64_t delay_ms)
{
    channels_state_t *state = job->state;
    job->finishing = true;
    //  The parts as a PostgreSQL text[] literal
    char **parts = NULL;
    size_t count = 0;
    if (message && text && *text) {
        size_t limit;
        channels_count_t unit;
        if (channels_split_limit (job->platform, &limit, &unit))
            count = channels_split (text, limit, unit, &parts);
    }
    char *array = channels_outbound_array (parts, count);
    channels_split_free (&parts, count);
    char taken[24], delay[24];
    snprintf (taken, sizeof taken, "%" PRId64, job->attempts);
    snprintf (delay, sizeof delay, "%" PRId64, delay_ms);
    const char *params[] = {job->id, taken, outcome, conversation, count ? message : NULL,
                            array,   error, delay};
    db_pool_t *db = service_runtime_db (state->runtime);
    if (!db
        || db_pool_query (db,
                          "SELECT channels.inbox_finish ($1, $2::integer, $3, $4::uuid, "
                          "$5::uuid, $6::text[], $7, $8::bigint)",
                          8, params, s_finished, job)
               != 0) {
        core_log_warn (state->log, job->request_id, "inbox %s: cannot store its outcome",
                       job->id);
        s_job_destroy (&job);
    }
    free (array);
}

//  A failed attempt: again later, or failed for good.
static void
s_failed (s_job_t *job, const char *code, const char *message, uint32_t retry_after_s)
{
    char error[600];
    snprintf (error, sizeof error, "%s: %s", code ? code : "error",
              message && *message ? message : "the message could not be processed");
    bool again = channels_inbox_retryable (code)
                 && job->attempts < job->state->inbox_attempts;
    core_log_warn (job->state->log, job->request_id, "inbox %s attempt %" PRId64 ": %s%s",
                   job->id, job->attempts, error, again ? " (will try again)" : "");
    if (again)
        s_finish (job, "received", NULL, NULL, NULL, error,
                  channels_inbox_backoff_ms (job->attempts, retry_after_s));
    else
        s_finish (job, "failed", NULL, NULL, NULL, error, 0);
}

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    (void) client;
    s_job_t *job = (s_job_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    job->handle = 0;
    if (reply->kind == BUS_REPLY_ERROR) {
        s_failed (job, reply->code, reply->message, reply->retry_after_s);
        return;
    }
    char why[160] = "";
    ChorusChat__ChannelInboundReply *answer = (ChorusChat__ChannelInboundReply *)
        codec_decode (&chorus_chat__channel_inbound_reply__descriptor, reply->body,
                      reply->size, why, sizeof why);
    if (!answer || !answer->conversation_id) {
        s_failed (job, "internal", "chat answered something unreadable", 0);
        if (answer)
            protobuf_c_message_free_unpacked (&answer->base, NULL);
        return;
    }
    const ChorusChat__Message *message = answer->reply;
    core_log_debug (job->state->log, job->request_id, "inbox %s: %s", job->id,
                    answer->outcome ? answer->outcome : "?");
    s_finish (job, "done", answer->conversation_id,
              message && message->content && *message->content ? message->id : NULL,
              message ? message->content : NULL, NULL, 0);
    protobuf_c_message_free_unpacked (&answer->base, NULL);
}

//  Ask chat to take the message.
static void
s_process (s_job_t *job)
{
    channels_state_t *state = job->state;
    ChorusChat__ChannelInboundRequest ask = CHORUS_CHAT__CHANNEL_INBOUND_REQUEST__INIT;
    ask.connection_id = job->connection_id;
    ask.channel = job->platform;
    ask.agent_id = job->agent_id;
    ask.contact_id = job->chat_id;
    ask.contact_name = *job->sender_name ? job->sender_name : NULL;
    ask.thread_id = job->thread_id;
    ask.external_key = job->id;
    ask.content = job->content;
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.tenant_id = job->tenant_id;
    headers.user_id = job->connection_id;
    headers.role = "member";
    headers.request_id = job->request_id;
    headers.timeout_ms = state->turn_timeout_ms;
    job->handle = bus_client_request_msg (service_runtime_client (state->runtime), "chat",
                                          "channel.inbound", &headers, &ask.base,
                                          s_on_reply, job);
    if (!job->handle)
        s_failed (job, "unavailable", "no broker is reachable", 0);
}

//  ---------------------------------------------------------------------------------
//  Taking rows

static char *
s_dup (const char *text)
{
    char *copy = strdup (text ? text : "");
    assert (copy);
    return copy;
}

static void
s_claimed (PGresult *result, const char *error, void *arg)
{
    channels_state_t *state = (channels_state_t *) arg;
    state->inbox_claiming = false;
    if (error) {
        core_log_debug (state->log, NULL, "inbox claim: %s", error);
        return;
    }
    int rows = PQntuples (result);
    for (int row = 0; row < rows; row++) {
        s_job_t *job = calloc (1, sizeof (s_job_t));
        assert (job);
        job->state = state;
        snprintf (job->id, sizeof job->id, "%s", PQgetvalue (result, row, 0));
        snprintf (job->tenant_id, sizeof job->tenant_id, "%s",
                  PQgetvalue (result, row, 1));
        snprintf (job->connection_id, sizeof job->connection_id, "%s",
                  PQgetvalue (result, row, 2));
        snprintf (job->agent_id, sizeof job->agent_id, "%s", PQgetvalue (result, row, 3));
        bool enabled = streq (PQgetvalue (result, row, 4), "t");
        job->platform = s_dup (PQgetvalue (result, row, 5));
        job->chat_id = s_dup (PQgetvalue (result, row, 6));
        job->thread_id = s_dup (PQgetvalue (result, row, 7));
        job->sender_name = s_dup (PQgetvalue (result, row, 8));
        const char *text = PQgetvalue (result, row, 9);
        const char *type = PQgetvalue (result, row, 10);
        //  A message without text (a photo, a voice note) is stored as its kind
        job->content = *text ? s_dup (text) : zsys_sprintf ("[%s]", *type ? type : "?");
        assert (job->content);
        job->attempts = strtoll (PQgetvalue (result, row, 11), NULL, 10);
        service_uuid_new (job->request_id);
        job->place = zlistx_add_end (state->inbox_jobs, job);
        if (!enabled)
            s_finish (job, "failed", NULL, NULL, NULL, "the connection is disabled", 0);
        else
            s_process (job);
    }
    //  A full batch: there may be more
    if (state->inbox_again || rows > 0)
        channels_inbox_kick (state);
}

void
channels_inbox_kick (channels_state_t *state)
{
    db_pool_t *db = service_runtime_db (state->runtime);
    size_t active = zlistx_size (state->inbox_jobs);
    if (!db || !state->process || active >= (size_t) state->inbox_concurrency)
        return;
    if (state->inbox_claiming) {
        state->inbox_again = true;
        return;
    }
    state->inbox_again = false;
    char limit[24], lease[24];
    snprintf (limit, sizeof limit, "%zu", (size_t) state->inbox_concurrency - active);
    snprintf (lease, sizeof lease, "%" PRId64, state->lease_s);
    const char *params[] = {limit, lease};
    if (db_pool_query (
            db,
            "WITH due AS (SELECT i.id FROM channels.inbox i WHERE i.status IN "
            "('received', 'processing') AND i.next_attempt_at <= clock_timestamp () AND "
            "(i.status = 'received' OR i.locked_until < clock_timestamp ()) AND NOT "
            "EXISTS (SELECT 1 FROM channels.inbox p WHERE p.connection_id = "
            "i.connection_id AND p.chat_id = i.chat_id AND p.thread_id = i.thread_id AND "
            "p.status IN ('received', 'processing') AND (p.received_at, p.id) < "
            "(i.received_at, i.id)) ORDER BY i.received_at, i.id LIMIT $1::integer FOR "
            "UPDATE OF i SKIP LOCKED) UPDATE channels.inbox i SET status = 'processing', "
            "attempts = i.attempts + 1, locked_until = clock_timestamp () + "
            "make_interval (secs => $2::integer), updated_at = clock_timestamp () FROM "
            "due, channels.connections c WHERE i.id = due.id AND c.id = i.connection_id "
            "RETURNING i.id, i.tenant_id, i.connection_id, c.agent_id, c.enabled, "
            "i.platform, i.chat_id, i.thread_id, i.sender_name, i.text, i.message_type, "
            "i.attempts",
            2, params, s_claimed, state)
        == 0)
        state->inbox_claiming = true;
}

static void
s_renewed (PGresult *result, const char *error, void *arg)
{
    (void) result;
    channels_state_t *state = (channels_state_t *) arg;
    state->renewing = false;
    if (error)
        core_log_warn (state->log, NULL, "inbox leases not renewed: %s", error);
}

void
channels_inbox_tick (channels_state_t *state)
{
    channels_inbox_kick (state);
    //  Renew the leases about three times per lease
    int64_t every = state->lease_s * 1000 / 3 / (state->poll_ms ? state->poll_ms : 1);
    if (every < 1)
        every = 1;
    db_pool_t *db = service_runtime_db (state->runtime);
    if (!db || state->renewing || state->ticks % (uint32_t) every != 0
        || zlistx_size (state->inbox_jobs) == 0)
        return;
    char *ids = malloc (zlistx_size (state->inbox_jobs) * SERVICE_ID_SIZE + 3);
    assert (ids);
    char *at = ids;
    *at++ = '{';
    for (s_job_t *job = (s_job_t *) zlistx_first (state->inbox_jobs); job;
         job = (s_job_t *) zlistx_next (state->inbox_jobs)) {
        if (at > ids + 1)
            *at++ = ',';
        memcpy (at, job->id, SERVICE_ID_SIZE - 1);
        at += SERVICE_ID_SIZE - 1;
    }
    *at++ = '}';
    *at = 0;
    char lease[24];
    snprintf (lease, sizeof lease, "%" PRId64, state->lease_s);
    const char *params[] = {ids, lease};
    if (db_pool_query (db,
                       "UPDATE channels.inbox SET locked_until = clock_timestamp () + "
                       "make_interval (secs => $2::integer) WHERE id = ANY ($1::uuid[]) "
                       "AND status = 'processing'",
                       2, params, s_renewed, state)
        == 0)
        state->renewing = true;
    free (ids);
}

void
channels_inbox_shutdown (channels_state_t *state)
{
    //  Rows whose outcome is being stored keep their query's callback: only the
    //  pool's end frees them, so leave those to it
    s_job_t *job = (s_job_t *) zlistx_first (state->inbox_jobs);
    while (job) {
        s_job_t *next = (s_job_t *) zlistx_next (state->inbox_jobs);
        if (!job->finishing)
            s_job_destroy (&job);
        job = next;
    }
}

void
channels_inbox_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_inbox: ");
    assert (channels_inbox_retryable ("unavailable"));
    assert (channels_inbox_retryable ("deadline_exceeded"));
    assert (channels_inbox_retryable (NULL));
    assert (!channels_inbox_retryable ("bad_request"));
    assert (!channels_inbox_retryable ("not_found"));
    assert (channels_inbox_backoff_ms (1, 0) == 2000);
    assert (channels_inbox_backoff_ms (3, 0) == 8000);
    assert (channels_inbox_backoff_ms (3, 30) == 30000);
    assert (channels_inbox_backoff_ms (40, 0) == 600000);
    printf ("OK\n");
}
