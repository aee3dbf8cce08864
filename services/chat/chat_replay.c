/*  chat_replay: replaying a reply's stream events (see chat_replay.h).        */
#include "chat_replay.h"

#include <assert.h>
#include <inttypes.h>

#include "bus_proto.h"
#include "chat_events.h"

//  Events asked from the log at once.
#define S_BATCH 200

typedef struct {
    chat_call_t call;  //  the request (first member)
    uint32_t after;    //  the caller has the events up to this one
    bool stream;       //  the caller wants stream events (else: the final Message)
    bool gone;         //  the caller went away
    bool busy;         //  a Redis command or a query is in flight
    bool orphaned;     //  the service stopped while Redis was busy: free on reply
    bool finished;     //  the stored reply is no longer streaming
    uint32_t last;     //  the stored reply's message.completed number (0: none known)
    int quiet;         //  polls without events since finished
    int timer;         //  zloop timer, -1: none
    int64_t checked;   //  last look at the stored reply (monotonic ms)
    int64_t followed;  //  last refresh of the reply's follow key (monotonic ms)
    void *entry;       //  our place in state->replays
} chat_replay_t;

static void s_poll (chat_replay_t *replay);

static void
s_destroy (chat_call_t *call)
{
    chat_replay_t *replay = (chat_replay_t *) call;
    if (replay->timer >= 0)
        zloop_timer_end (service_runtime_loop (call->base.runtime), replay->timer);
    if (replay->entry)
        zlistx_delete (call->state->replays, replay->entry);
}

//  The caller left while we waited: end (nobody hears it).
static bool
s_gone (chat_replay_t *replay)
{
    replay->busy = false;
    if (!replay->gone)
        return false;
    service_call_fail (&replay->call.base, "cancelled", "cancelled by the caller");
    return true;
}

//  ---------------------------------------------------------------------------------
//  The end derived from the stored reply

static void
s_derived (chat_call_t *call, PGresult *result)
{
    chat_replay_t *replay = (chat_replay_t *) call;
    if (s_gone (replay))
        return;
    ChorusChat__Message *user = NULL, *reply = NULL;
    char error[200] = "";
    for (int row = 0; row < PQntuples (result); row++) {
        ChorusChat__Message *message = chat_message_from_row (result, row, error,
                                                              sizeof error);
        if (message && message->role && streq (message->role, "assistant") && !reply)
            reply = message;
        else if (message && message->role && streq (message->role, "user") && !user)
            user = message;
        else if (message)
            protobuf_c_message_free_unpacked (&message->base, NULL);
    }
    if (!reply)
        service_call_fail (&call->base, "not_found", "no such message");
    else if (!replay->stream)
        service_call_reply (&call->base, &reply->base);
    else {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        if (replay->after < 1 && user
            && service_stream_message (&buf, SERVICE_STREAM_CREATED, reply->id, 1,
                                       &user->base)
                   == 0)
            chat_call_partial_raw (call, buf.data, buf.size);
        msgpack_sbuffer_clear (&buf);
        if (replay->after < 2) {
            //  The reply as it was created: streaming, nothing in it yet
            ChorusChat__Message created = *reply;
            created.status = "streaming";
            created.content = "";
            created.model = NULL;
            created.error = NULL;
            created.has_prompt_tokens = created.has_completion_tokens = false;
            created.has_latency_ms = false;
            created.n_tool_calls = 0;
            created.updated_at = created.created_at;
            if (service_stream_message (&buf, SERVICE_STREAM_CREATED, reply->id, 2,
                                        &created.base)
                == 0)
                chat_call_partial_raw (call, buf.data, buf.size);
            msgpack_sbuffer_clear (&buf);
        }
        uint32_t n = replay->last > replay->after
                         ? replay->last
                         : (replay->after > 2 ? replay->after : 2) + 1;
        if (service_stream_message (&buf, SERVICE_STREAM_COMPLETED, reply->id, n,
                                    &reply->base))
            service_call_fail (&call->base, "internal", "the reply could not be encoded");
        else
            chat_call_reply_raw (call, buf.data, buf.size);
        msgpack_sbuffer_destroy (&buf);
    }
    if (user)
        protobuf_c_message_free_unpacked (&user->base, NULL);
    if (reply)
        protobuf_c_message_free_unpacked (&reply->base, NULL);
}

static void
s_derive (chat_replay_t *replay)
{
    chat_call_t *call = &replay->call;
    replay->busy = true;
    const char *params[] = {call->other_id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_derived,
                        "SELECT " CHAT_MESSAGE_COLUMNS
                        "FROM chat.messages m WHERE m.tenant_id = $2 AND (m.id = $1 OR "
                        "m.id = (SELECT reply_to FROM chat.messages WHERE id = $1 AND "
                        "tenant_id = $2)) ORDER BY m.created_at, m.id",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  Following the log

//  Take the stored reply's status and end number (row 0 of result).
static void
s_status (chat_replay_t *replay, PGresult *result)
{
    replay->finished = !streq (PQgetvalue (result, 0, 0), "streaming");
    replay->last = PQgetisnull (result, 0, 1)
                       ? 0
                       : (uint32_t) strtoul (PQgetvalue (result, 0, 1), NULL, 10);
    replay->checked = bus_proto_now ();
}

static void
s_checked (chat_call_t *call, PGresult *result)
{
    chat_replay_t *replay = (chat_replay_t *) call;
    if (s_gone (replay))
        return;
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "the message is gone");
        return;
    }
    s_status (replay, result);
    s_poll (replay);
}

//  Look at the stored reply's status.
static void
s_check (chat_replay_t *replay)
{
    chat_call_t *call = &replay->call;
    replay->busy = true;
    const char *params[] = {call->other_id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_checked,
                        "SELECT status, completed_event FROM chat.messages WHERE id = $1 "
                        "AND tenant_id = $2",
                        2, params);
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    chat_replay_t *replay = (chat_replay_t *) arg;
    replay->timer = -1;
    if (!replay->finished && bus_proto_now () - replay->checked >= 1000)
        s_check (replay);
    else
        s_poll (replay);
    return 0;
}

static void
s_schedule (chat_replay_t *replay)
{
    chat_state_t *state = replay->call.state;
    replay->timer = zloop_timer (service_runtime_loop (state->runtime),
                                 (size_t) state->replay_poll_ms, 1, s_on_timer, replay);
    assert (replay->timer >= 0);
}

static void
s_ranged (redisReply *reply, const char *error, void *arg)
{
    chat_replay_t *replay = (chat_replay_t *) arg;
    if (replay->orphaned) {
        chat_call_discard (&replay->call);
        return;
    }
    if (s_gone (replay))
        return;
    chat_call_t *call = &replay->call;
    size_t got = 0;
    size_t entries = !error && reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements
                                                                         : 0;
    for (size_t i = 0; i < entries; i++) {
        redisReply *entry = reply->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2
            || entry->element[0]->type != REDIS_REPLY_STRING
            || entry->element[1]->type != REDIS_REPLY_ARRAY
            || entry->element[1]->elements < 2
            || entry->element[1]->element[0]->type != REDIS_REPLY_STRING
            || entry->element[1]->element[1]->type != REDIS_REPLY_STRING)
            continue;
        unsigned long long n = 0;
        if (sscanf (entry->element[0]->str, "0-%llu", &n) != 1 || n <= replay->after
            || n > UINT32_MAX)
            continue;
        redisReply *event = entry->element[1]->element[0];
        redisReply *body = entry->element[1]->element[1];
        replay->after = (uint32_t) n;
        got++;
        if (streq (event->str, SERVICE_STREAM_COMPLETED)) {
            chat_call_reply_raw (call, body->str, body->len);
            return;
        }
        chat_call_partial_raw (call, body->str, body->len);
    }
    if (got)
        replay->quiet = 0;
    else if (replay->finished && ++replay->quiet >= 2) {
        //  Finished, and the log has no end: it is gone or was cut short
        s_derive (replay);
        return;
    }
    if (entries == S_BATCH)
        s_poll (replay);
    else
        s_schedule (replay);
}

//  Read the log after the caller's last event; without a log, wait for the
//  stored reply to end.
static void
s_poll (chat_replay_t *replay)
{
    chat_call_t *call = &replay->call;
    redis_client_t *redis = service_runtime_redis (call->base.runtime);
    int64_t now = bus_proto_now ();
    if (replay->stream && !replay->finished && redis && now - replay->followed >= 1000) {
        //  Tell the turn, whose own caller may be gone, that we read it
        if (chat_events_follow (redis, call->other_id) == 0)
            replay->followed = now;
    }
    if (replay->stream && redis && redis_client_healthy (redis)) {
        char key[80], start[24], count[16];
        chat_events_key (key, sizeof key, call->other_id);
        snprintf (start, sizeof start, "0-%" PRIu32, replay->after + 1);
        snprintf (count, sizeof count, "%d", S_BATCH);
        const char *argv[] = {"XRANGE", key, start, "+", "COUNT", count};
        if (redis_client_command_argv (redis, s_ranged, replay, 6, argv, NULL) == 0) {
            replay->busy = true;
            return;
        }
    }
    if (replay->finished)
        s_derive (replay);
    else
        s_schedule (replay);
}

static void
s_found (chat_call_t *call, PGresult *result)
{
    chat_replay_t *replay = (chat_replay_t *) call;
    if (s_gone (replay))
        return;
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such message");
        return;
    }
    s_status (replay, result);
    if (replay->stream && replay->finished && replay->last
        && replay->after >= replay->last) {
        //  The caller has the end already: nothing follows (HTTP 204, which also
        //  tells an EventSource to stop reconnecting)
        service_call_fail (&call->base, "no_content",
                           "the reply has ended; no event follows this one");
        return;
    }
    s_poll (replay);
}

void
chat_replay_start (chat_state_t *state, bus_request_t *request)
{
    chat_replay_t *replay = (chat_replay_t *) chat_call_new (
        state, &request, &chorus_chat__send_request__descriptor, sizeof (chat_replay_t),
        CHAT_CALL_REPLAY);
    if (!replay)
        return;
    chat_call_t *call = &replay->call;
    replay->timer = -1;
    call->destroy = s_destroy;
    ChorusChat__SendRequest *args = (ChorusChat__SendRequest *) call->base.args;
    if (!chat_call_take_id (call, args->id, "conversation"))
        return;
    if (chat_events_parse_id (args->last_event_id, call->other_id, &replay->after)) {
        service_call_fail (&call->base, "bad_request",
                           "last_event_id must be <message id>:<n>");
        return;
    }
    replay->stream = args->has_stream && args->stream;
    replay->entry = zlistx_add_end (state->replays, replay);
    replay->busy = true;
    const char *params[] = {call->other_id, call->id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_found,
                        "SELECT status, completed_event FROM chat.messages WHERE id = "
                        "$1 AND conversation_id = $2 AND tenant_id = $3 AND role = "
                        "'assistant'",
                        3, params);
}

void
chat_replay_caller_gone (chat_call_t *call)
{
    chat_replay_t *replay = (chat_replay_t *) call;
    replay->gone = true;
    if (!replay->busy)
        service_call_fail (&call->base, "cancelled", "cancelled by the caller");
}

void
chat_replay_shutdown (chat_state_t *state)
{
    zlistx_t *ending = zlistx_new ();
    for (chat_replay_t *replay = (chat_replay_t *) zlistx_first (state->replays); replay;
         replay = (chat_replay_t *) zlistx_next (state->replays))
        zlistx_add_end (ending, replay);
    for (chat_replay_t *replay = (chat_replay_t *) zlistx_first (ending); replay;
         replay = (chat_replay_t *) zlistx_next (ending)) {
        if (!replay->busy) {
            chat_call_discard (&replay->call);
            continue;
        }
        //  Redis answers (or fails) after we are gone: the reply frees it then
        bus_worker_error (service_runtime_worker (replay->call.base.runtime),
                          &replay->call.base.request, "shutting_down",
                          "the service is stopping");
        if (replay->timer >= 0)
            zloop_timer_end (service_runtime_loop (state->runtime), replay->timer);
        replay->timer = -1;
        zlistx_delete (state->replays, replay->entry);
        replay->entry = NULL;
        replay->orphaned = true;
    }
    zlistx_destroy (&ending);
}
