/*  chat_turn: agent turns of a conversation (see chat_turn.h).                 */
#include "chat_turn.h"
#include "chat_turn_internal.h"
#include "chat_channel.h"

#include <assert.h>
#include <inttypes.h>
#include <sys/time.h>

#include "bus_proto.h"
#include "chat_context.h"
#include "chat_events.h"
#include "chat_replay.h"
#include "codec_msgpack.h"
#include "db_message.h"


static void s_finish (chat_turn_t *turn);

//  ---------------------------------------------------------------------------------
//  Small helpers

static int64_t
s_now_us (void)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    return (int64_t) now.tv_sec * 1000000 + now.tv_usec;
}

//  RFC 3339 UTC with microseconds of a time in microseconds since the epoch.
static void
s_time_at (int64_t us, char *out, size_t size)
{
    time_t seconds = (time_t) (us / 1000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char text[24];
    strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, size, "%s.%06dZ", text, (int) (us % 1000000));
}

static char *
s_strdup (const char *text)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

//  Append len bytes to a growing NUL-terminated buffer, with a quarter more room
//  than needed rather than twice: a reply's text is held until it is stored, and
//  doubling left a 4.2 KiB reply in 8 KiB.
static void
s_append (char **buffer, size_t *size, size_t *capacity, const char *text, size_t len)
{
    if (*size + len + 1 > *capacity) {
        size_t needed = *size + len + 1;
        size_t wanted = needed + needed / 4;
        wanted = wanted < 256 ? 256 : wanted;
        char *grown = realloc (*buffer, wanted);
        assert (grown);
        *buffer = grown;
        *capacity = wanted;
    }
    memcpy (*buffer + *size, text, len);
    *size += len;
    (*buffer)[*size] = 0;
}

//  Append text to a NUL-terminated string that may be NULL.
static void
s_extend (char **string, const char *text)
{
    size_t size = *string ? strlen (*string) : 0;
    size_t capacity = *string ? size + 1 : 0;
    s_append (string, &size, &capacity, text, strlen (text));
}

static void
s_tools_free (chat_turn_t *turn)
{
    for (size_t i = 0; i < turn->tool_count; i++) {
        free (turn->tools[i].id);
        free (turn->tools[i].name);
        free (turn->tools[i].arguments);
    }
    free (turn->tools);
    turn->tools = NULL;
    turn->tool_count = 0;
}

//  A look in Redis for a resumed client; outlives its turn when Redis is slow.
typedef struct _chat_turn_probe_t {
    chat_turn_t *turn;  //  NULL once the turn is gone
} chat_turn_probe_t;

static void s_grace_end (chat_turn_t *turn);

static void
s_turn_destroy (chat_call_t *call)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    s_grace_end (turn);
    if (turn->probe)
        turn->probe->turn = NULL;
    if (turn->registered)
        zhashx_delete (call->state->turns, turn->message_id);
    free (turn->model);
    free (turn->content);
    free (turn->stored.tools);
    s_tools_free (turn);
    free (turn->error_code);
    free (turn->error_message);
    free (turn->connection_id);
    free (turn->contact_id);
    free (turn->thread_id);
}

//  The chat error code for a turn.run error: errors about the bus itself mean
//  the agents service is not there; the rest pass.
static const char *
s_turn_code (const char *code)
{
    static const char *const gone[] = {
        "unknown_command", "worker_lost", "broker_lost", "broker_unavailable",
        "shutting_down",   "cancelled",   "bad_frame"};
    if (!code)
        return "unavailable";
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        if (streq (code, gone[i]))
            return "unavailable";
    return code;
}

//  Set the outcome (the first error is kept).
static void
s_set_outcome (chat_turn_t *turn, const char *status, const char *code,
               const char *message)
{
    turn->status = status;
    if (code && !turn->error_code) {
        turn->error_code = s_strdup (code);
        turn->error_message = s_strdup (message ? message : code);
    }
}

static void
s_fail (chat_turn_t *turn, const char *code, const char *message)
{
    s_set_outcome (turn, "failed", code, message);
    s_finish (turn);
}

//  Send and log event n (its body in buf): into the reply's event log, and to
//  the caller when it streams. message.completed goes to the caller as the
//  final reply (s_done), not here.
static void
s_event (chat_turn_t *turn, uint32_t n, const char *event, msgpack_sbuffer *buf)
{
    chat_state_t *state = turn->call.state;
    bool last = streq (event, SERVICE_STREAM_COMPLETED);
    int64_t ttl = n == 1 ? state->turn_timeout_ms / 1000 + state->replay_ttl_s
                  : last ? state->replay_ttl_s
                         : 0;
    if (last || n <= state->replay_events_max)
        chat_events_record (service_runtime_redis (turn->call.base.runtime),
                            turn->message_id, n, event, buf->data, buf->size, ttl);
    if (turn->stream && !last && !turn->caller_gone)
        chat_call_partial_raw (&turn->call, buf->data, buf->size);
    //  And to the edges, for WebSocket clients watching the conversation
    service_events_t *events = service_runtime_events (turn->call.base.runtime);
    if (events) {
        msgpack_sbuffer *live = &state->live_buf;  //  its memory kept from the last
        msgpack_sbuffer_clear (live);
        chat_events_live (live, turn->call.id, state->origin, ++state->live_seq,
                          buf->data, buf->size);
        char topic[64];
        snprintf (topic, sizeof topic, "chat.stream.%s", turn->call.id);
        service_events_publish_live (events, turn->call.tenant_id, topic, live->data,
                                     live->size);
    }
}

//  The reply as it stands, as a new Message with status (caller frees); with take
//  the message takes the turn's text over, cut to its size (the turn keeps only
//  the size): at the end, when every turn of a burst may wait for the database
//  at once.
static ChorusChat__Message *
s_reply_message (chat_turn_t *turn, const char *status, bool take)
{
    ChorusChat__Message *message = (ChorusChat__Message *) db_message_new (
        &chorus_chat__message__descriptor);
    message->id = s_strdup (turn->message_id);
    message->conversation_id = s_strdup (turn->call.id);
    message->role = s_strdup ("assistant");
    if (take && turn->content) {
        char *fitted = realloc (turn->content, turn->size + 1);
        message->content = fitted ? fitted : turn->content;
        turn->content = NULL;
        turn->capacity = 0;
    }
    else
        message->content = s_strdup (turn->content ? turn->content : "");
    message->author_id = s_strdup (turn->agent_id);
    message->author_type = s_strdup ("agent");
    message->status = s_strdup (status);
    message->model = s_strdup (turn->model);
    message->created_at = s_strdup (turn->created_at);
    return message;
}

//  ---------------------------------------------------------------------------------
//  The end of a turn

static void
s_done (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    ChorusChat__Message *reply = (ChorusChat__Message *) call->base.reply;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    uint32_t n = ++turn->seq;
    if (service_stream_message (&buf, SERVICE_STREAM_COMPLETED, turn->message_id, n,
                                &reply->base)
        == 0)
        s_event (turn, n, SERVICE_STREAM_COMPLETED, &buf);
    core_log_debug (call->state->log, service_call_request_id (&call->base),
                    "reply %s %s (%zu bytes)", turn->message_id, turn->status,
                    turn->size);
    if (turn->caller_gone)
        service_call_fail (&call->base, "cancelled", "cancelled by the caller");
    else if (turn->inbound && streq (turn->status, "complete")) {
        ChorusChat__ChannelInboundReply answer = CHORUS_CHAT__CHANNEL_INBOUND_REPLY__INIT;
        answer.conversation_id = call->id;
        answer.outcome = "replied";
        answer.reply = reply;
        service_call_reply (&call->base, &answer.base);
    }
    else if (turn->inbound)
        service_call_fail_retry (
            &call->base, turn->error_code ? turn->error_code : "unavailable",
            turn->error_message ? turn->error_message : "the turn did not complete",
            turn->retry_after_s);
    else if (turn->stream && buf.size)
        chat_call_reply_raw (call, buf.data, buf.size);
    else if (streq (turn->status, "failed"))
        service_call_fail_retry (
            &call->base, turn->error_code ? turn->error_code : "internal",
            turn->error_message ? turn->error_message : "the turn failed",
            turn->retry_after_s);
    else
        service_call_reply (&call->base, &reply->base);
    msgpack_sbuffer_destroy (&buf);
}

//  Store the reply with its outcome and the chat.message.completed event, then
//  answer (s_done). Runs once per turn.
static void
s_finish (chat_turn_t *turn)
{
    chat_call_t *call = &turn->call;
    turn->phase = CHAT_TURN_FINISHING;
    s_grace_end (turn);
    chat_call_forget (call);  //  a turn.run still running is cancelled upstream
    if (turn->error_code) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        uint32_t n = ++turn->seq;
        service_stream_error (&buf, turn->message_id, n, turn->error_code,
                              turn->error_message);
        s_event (turn, n, SERVICE_STREAM_ERROR, &buf);
        msgpack_sbuffer_destroy (&buf);
    }
    ChorusChat__Message *reply = s_reply_message (turn, turn->status, true);
    char *updated_at = turn->stored.updated_at, *prompt = turn->stored.prompt,
         *completion = turn->stored.completion, *latency = turn->stored.latency,
         *completed = turn->stored.completed;
    s_time_at (s_now_us (), updated_at, sizeof turn->stored.updated_at);
    reply->updated_at = s_strdup (updated_at);
    reply->error = s_strdup (turn->error_message);
    if (turn->has_usage) {
        reply->has_prompt_tokens = reply->has_completion_tokens = true;
        reply->prompt_tokens = turn->prompt_tokens;
        reply->completion_tokens = turn->completion_tokens;
    }
    if (turn->has_latency || turn->started) {
        reply->has_latency_ms = true;
        reply->latency_ms = turn->has_latency
                                ? turn->latency_ms
                                : (uint32_t) (bus_proto_now () - turn->started);
    }
    if (turn->tool_count) {
        reply->tool_calls = calloc (turn->tool_count, sizeof (ChorusChat__ToolCall *));
        assert (reply->tool_calls);
        for (size_t i = 0; i < turn->tool_count; i++) {
            ChorusChat__ToolCall *tool = malloc (sizeof (ChorusChat__ToolCall));
            assert (tool);
            chorus_chat__tool_call__init (tool);
            tool->id = s_strdup (turn->tools[i].id);
            tool->name = s_strdup (turn->tools[i].name);
            tool->arguments = s_strdup (turn->tools[i].arguments);
            reply->tool_calls[reply->n_tool_calls++] = tool;
        }
    }
    call->base.reply = &reply->base;
    snprintf (prompt, sizeof turn->stored.prompt, "%" PRIu32, reply->prompt_tokens);
    snprintf (completion, sizeof turn->stored.completion, "%" PRIu32,
              reply->completion_tokens);
    snprintf (latency, sizeof turn->stored.latency, "%" PRIu32, reply->latency_ms);
    char *tools = turn->stored.tools = chat_message_tool_calls_json (reply);
    //  s_done numbers message.completed next: nothing else is sent once finishing
    snprintf (completed, sizeof turn->stored.completed, "%" PRIu32, turn->seq + 1);
    const char *params[] = {turn->message_id,
                            call->tenant_id,
                            reply->status,
                            reply->content,
                            reply->model,
                            reply->has_prompt_tokens ? prompt : NULL,
                            reply->has_completion_tokens ? completion : NULL,
                            reply->has_latency_ms ? latency : NULL,
                            reply->error,
                            tools,
                            updated_at,
                            completed};
    const char *conversation[] = {call->id, call->tenant_id};
    db_stmt_t stmts[] = {
        {"UPDATE chat.messages SET status = $3, content = $4, model = $5, prompt_tokens "
         "= $6, completion_tokens = $7, latency_ms = $8, error = $9, tool_calls = "
         "$10::jsonb, updated_at = $11, completed_event = $12::integer WHERE id = $1 AND "
         "tenant_id = $2",
         12, params},
        {"UPDATE chat.conversations SET updated_at = clock_timestamp () WHERE id = $1 "
         "AND tenant_id = $2",
         2, conversation}};
    //  Every string above lives as long as the turn (the reply is the call's):
    //  the statements borrow them while the reply waits for its transaction
    service_call_emit_borrowed (&call->base, (service_step_fn *) s_done, call->tenant_id,
                                "chat.message.completed", &reply->base, stmts, 2);
}

//  Stop a turn with an outcome: at once when nothing of ours is in flight but a
//  bus request, else at its next step.
static void
s_stop (chat_turn_t *turn, const char *status, const char *code, const char *message)
{
    if (turn->phase == CHAT_TURN_FINISHING || turn->stop)
        return;
    s_set_outcome (turn, status, code, message);
    if (turn->phase == CHAT_TURN_RUNNING || turn->call.handle)
        s_finish (turn);
    else
        turn->stop = true;
}

//  ---------------------------------------------------------------------------------
//  The caller gone: a grace for a resume (CHORUS_CHAT_RESUME_GRACE_MS)

static int s_on_grace (zloop_t *loop, int timer_id, void *arg);

static void
s_grace_arm (chat_turn_t *turn, int64_t delay_ms)
{
    turn->grace_timer = zloop_timer (service_runtime_loop (turn->call.base.runtime),
                                     (size_t) delay_ms, 1, s_on_grace, turn);
    assert (turn->grace_timer >= 0);
    turn->grace_armed = true;
}

static void
s_grace_end (chat_turn_t *turn)
{
    if (turn->grace_armed)
        zloop_timer_end (service_runtime_loop (turn->call.base.runtime),
                         turn->grace_timer);
    turn->grace_armed = false;
}

//  Redis answered whether a resumed client follows the reply.
static void
s_followed (redisReply *reply, const char *error, void *arg)
{
    chat_turn_probe_t *probe = (chat_turn_probe_t *) arg;
    chat_turn_t *turn = probe->turn;
    free (probe);
    if (!turn)
        return;
    turn->probe = NULL;
    if (turn->phase == CHAT_TURN_FINISHING)
        return;
    if (!error && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        s_grace_arm (turn, 1000);  //  followed: look again in a second
    else
        s_stop (turn, "cancelled", NULL, NULL);
}

static int
s_on_grace (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    chat_turn_t *turn = (chat_turn_t *) arg;
    turn->grace_armed = false;
    if (turn->phase == CHAT_TURN_FINISHING)
        return 0;
    if (turn->phase == CHAT_TURN_PREPARING) {
        s_stop (turn, "cancelled", NULL, NULL);  //  no reply stored to resume yet
        return 0;
    }
    redis_client_t *redis = service_runtime_redis (turn->call.base.runtime);
    char key[80];
    chat_events_follow_key (key, sizeof key, turn->message_id);
    const char *argv[] = {"EXISTS", key};
    chat_turn_probe_t *probe = calloc (1, sizeof (chat_turn_probe_t));
    assert (probe);
    probe->turn = turn;
    if (redis && redis_client_healthy (redis)
        && redis_client_command_argv (redis, s_followed, probe, 2, argv, NULL) == 0)
        turn->probe = probe;
    else {
        free (probe);
        s_stop (turn, "cancelled", NULL, NULL);  //  without Redis nobody can resume
    }
    return 0;
}

void
chat_turn_caller_gone (chat_call_t *call)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    turn->caller_gone = true;
    if (bus_proto_now () >= bus_request_deadline (call->base.request))
        s_stop (turn, "failed", "deadline_exceeded", "the request's deadline passed");
    else if (call->state->resume_grace_ms == 0 || turn->inbound || !turn->stream)
        s_stop (turn, "cancelled", NULL, NULL);
    else if (!turn->grace_armed && !turn->probe)
        s_grace_arm (turn, call->state->resume_grace_ms);
}

//  ---------------------------------------------------------------------------------
//  The turn on the agents service

static void
s_partial (chat_call_t *call, const bus_reply_t *reply)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    chat_state_t *state = call->state;
    if (turn->phase != CHAT_TURN_RUNNING)
        return;
    char why[160] = "";
    ChorusAgents__TurnEvent *event = (ChorusAgents__TurnEvent *) codec_decode (
        &chorus_agents__turn_event__descriptor, reply->body, reply->size, why,
        sizeof why);
    if (!event) {
        core_log_warn (state->log, service_call_request_id (&call->base),
                       "turn event dropped: %s", why);
        return;
    }
    msgpack_sbuffer *buf = &state->delta_buf;  //  its memory kept from the last
    msgpack_sbuffer_clear (buf);
    if (event->type && streq (event->type, "delta") && event->delta && *event->delta) {
        size_t len = strlen (event->delta);
        if (turn->size + len > (size_t) state->reply_max) {
            protobuf_c_message_free_unpacked (&event->base, NULL);
            s_fail (turn, "internal", "the reply is longer than the service keeps");
            return;
        }
        s_append (&turn->content, &turn->size, &turn->capacity, event->delta, len);
        uint32_t n = ++turn->seq;
        service_stream_delta (buf, turn->message_id, n, event->delta);
        s_event (turn, n, SERVICE_STREAM_DELTA, buf);
    }
    else if (event->type && streq (event->type, "tool_call") && event->tool_call
             && event->index < (uint32_t) state->tool_calls_max) {
        ChorusAgents__ToolCall *piece = event->tool_call;
        if (event->index >= turn->tool_count) {
            chat_turn_tool_t *grown = realloc (
                turn->tools, (event->index + 1) * sizeof (chat_turn_tool_t));
            assert (grown);
            memset (grown + turn->tool_count, 0,
                    (event->index + 1 - turn->tool_count) * sizeof (chat_turn_tool_t));
            turn->tools = grown;
            turn->tool_count = event->index + 1;
        }
        chat_turn_tool_t *tool = &turn->tools[event->index];
        size_t held = tool->arguments ? strlen (tool->arguments) : 0;
        if (piece->arguments
            && held + strlen (piece->arguments) > (size_t) state->reply_max) {
            protobuf_c_message_free_unpacked (&event->base, NULL);
            s_fail (turn, "internal", "the tool call is longer than the service keeps");
            return;
        }
        if (piece->id && *piece->id) {
            free (tool->id);
            tool->id = s_strdup (piece->id);
        }
        if (piece->name)
            s_extend (&tool->name, piece->name);
        if (piece->arguments)
            s_extend (&tool->arguments, piece->arguments);
        uint32_t n = ++turn->seq;
        service_stream_tool_call (buf, turn->message_id, n, event->index, piece->id,
                                  piece->name, piece->arguments);
        s_event (turn, n, SERVICE_STREAM_TOOL_CALL, buf);
    }
    protobuf_c_message_free_unpacked (&event->base, NULL);
}

static void
s_answer (chat_call_t *call, const bus_reply_t *reply)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    if (reply->kind == BUS_REPLY_ERROR) {
        turn->retry_after_s = reply->retry_after_s;
        s_fail (turn, s_turn_code (reply->code),
                reply->message && *reply->message ? reply->message : reply->code);
        return;
    }
    ChorusAgents__TurnResult *result = (ChorusAgents__TurnResult *) codec_decode (
        &chorus_agents__turn_result__descriptor, reply->body, reply->size, NULL, 0);
    if (!result) {
        s_fail (turn, "internal", "the agents service answered something unreadable");
        return;
    }
    if (result->content) {
        turn->size = 0;
        s_append (&turn->content, &turn->size, &turn->capacity, result->content,
                  strlen (result->content));
    }
    if (result->n_tool_calls) {
        s_tools_free (turn);
        turn->tools = calloc (result->n_tool_calls, sizeof (chat_turn_tool_t));
        assert (turn->tools);
        for (size_t i = 0; i < result->n_tool_calls; i++) {
            turn->tools[i].id = s_strdup (result->tool_calls[i]->id);
            turn->tools[i].name = s_strdup (result->tool_calls[i]->name);
            turn->tools[i].arguments = s_strdup (result->tool_calls[i]->arguments);
        }
        turn->tool_count = result->n_tool_calls;
    }
    if (result->model && *result->model) {
        free (turn->model);
        turn->model = s_strdup (result->model);
    }
    if (result->has_prompt_tokens || result->has_completion_tokens) {
        turn->has_usage = true;
        turn->prompt_tokens = result->prompt_tokens;
        turn->completion_tokens = result->completion_tokens;
    }
    if (result->has_latency_ms) {
        turn->has_latency = true;
        turn->latency_ms = result->latency_ms;
    }
    protobuf_c_message_free_unpacked (&result->base, NULL);
    s_set_outcome (turn, "complete", NULL, NULL);
    s_finish (turn);
}

//  The history that fits the model's budget goes to turn.run, oldest first.
static void
s_history (chat_call_t *call, PGresult *result)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    chat_state_t *state = call->state;
    if (turn->stop) {
        s_finish (turn);
        return;
    }
    size_t rows = (size_t) PQntuples (result);
    uint32_t *tokens = calloc (rows + 1, sizeof (uint32_t));
    assert (tokens);
    for (size_t i = 0; i < rows; i++)
        tokens[i] = chat_context_tokens (PQgetvalue (result, (int) i, 1));
    uint32_t budget = chat_context_budget (turn->model, (uint32_t) state->context_tokens,
                                           turn->max_tokens, turn->system_tokens);
    size_t kept = chat_context_fit (tokens, rows, budget);
    core_log_debug (state->log, service_call_request_id (&call->base),
                    "turn %s: %zu of %zu messages fit %" PRIu32 " tokens (%s)",
                    turn->message_id, kept, rows, budget,
                    turn->model ? turn->model : "default");
    ChorusAgents__ChatMessage *messages = calloc (kept + 1,
                                                  sizeof (ChorusAgents__ChatMessage));
    ChorusAgents__ChatMessage **pointers = calloc (kept + 1,
                                                   sizeof (ChorusAgents__ChatMessage *));
    assert (messages && pointers);
    for (size_t i = 0; i < kept; i++) {
        int row = (int) (kept - 1 - i);
        chorus_agents__chat_message__init (&messages[i]);
        messages[i].role = PQgetvalue (result, row, 0);
        messages[i].content = PQgetvalue (result, row, 1);
        pointers[i] = &messages[i];
    }
    ChorusAgents__TurnRequest ask = CHORUS_AGENTS__TURN_REQUEST__INIT;
    ask.agent_id = turn->agent_id;
    ask.n_messages = kept;
    ask.messages = pointers;
    ask.conversation_id = call->id;
    ask.message_id = turn->message_id;
    turn->phase = CHAT_TURN_RUNNING;
    turn->started = bus_proto_now ();
    chat_call_ask (call, "agents", "turn.run", &ask.base, state->turn_timeout_ms,
                   s_answer, s_partial);
    free (pointers);
    free (messages);
    free (tokens);
}

static void
s_agent (chat_call_t *call, const bus_reply_t *reply)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    if (reply->kind == BUS_REPLY_ERROR) {
        const char *code = chat_call_upstream_code (reply->code);
        if (streq (code, "not_found"))  //  the conversation is there; its agent is not
            s_fail (turn, "conflict",
                    "the conversation's agent was deleted: start a new conversation "
                    "with another agent");
        else
            s_fail (turn, code, reply->message ? reply->message : code);
        return;
    }
    ChorusAgents__Agent *agent = (ChorusAgents__Agent *) codec_decode (
        &chorus_agents__agent__descriptor, reply->body, reply->size, NULL, 0);
    if (agent) {
        turn->model = agent->model && *agent->model ? s_strdup (agent->model) : NULL;
        turn->max_tokens = agent->has_max_tokens ? agent->max_tokens : 0;
        turn->system_tokens = chat_context_tokens (agent->system_prompt);
        protobuf_c_message_free_unpacked (&agent->base, NULL);
    }
    char limit[24];
    snprintf (limit, sizeof limit, "%" PRId64, call->state->history_max);
    const char *params[] = {call->id, call->tenant_id, turn->user_created_at, limit};
    service_call_query (&call->base, (service_step_fn *) s_history,
                        "SELECT role, content FROM chat.messages WHERE conversation_id = "
                        "$1 AND tenant_id = $2 AND created_at <= $3::timestamptz AND "
                        "status IN ('complete', 'cancelled') AND content <> '' ORDER BY "
                        "created_at DESC, id DESC LIMIT $4",
                        4, params);
}

//  The user's message as stored.
static void
s_user_message (chat_turn_t *turn, ChorusChat__Message *message)
{
    message->id = turn->user_message_id;
    message->conversation_id = turn->call.id;
    message->role = "user";
    message->content = (char *) turn->content_in;
    message->author_id = turn->inbound ? NULL : turn->call.user_id;
    message->author_type = (char *) turn->author_type;
    message->status = "complete";
    message->created_at = turn->user_created_at;
    message->updated_at = turn->user_created_at;
}

static void
s_stored (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    int rc = zhashx_insert (call->state->turns, turn->message_id, turn);
    assert (rc == 0);
    turn->registered = true;
    if (turn->stop) {
        s_finish (turn);
        return;
    }
    //  message.created: the user's message, then the reply
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    ChorusChat__Message user = CHORUS_CHAT__MESSAGE__INIT;
    s_user_message (turn, &user);
    uint32_t n = ++turn->seq;
    if (service_stream_message (&buf, SERVICE_STREAM_CREATED, turn->message_id, n,
                                &user.base)
        == 0)
        s_event (turn, n, SERVICE_STREAM_CREATED, &buf);
    msgpack_sbuffer_clear (&buf);
    ChorusChat__Message *reply = s_reply_message (turn, "streaming", false);
    reply->updated_at = s_strdup (turn->created_at);
    n = ++turn->seq;
    if (service_stream_message (&buf, SERVICE_STREAM_CREATED, turn->message_id, n,
                                &reply->base)
        == 0)
        s_event (turn, n, SERVICE_STREAM_CREATED, &buf);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    msgpack_sbuffer_destroy (&buf);
    ChorusAgents__IdRequest ask = CHORUS_AGENTS__ID_REQUEST__INIT;
    ask.id = turn->agent_id;
    chat_call_ask (call, "agents", "agents.get", &ask.base, 10000, s_agent, NULL);
}

void
chat_turn_now_text (char *out, size_t size)
{
    s_time_at (s_now_us (), out, size);
}

void
chat_turn_begin (chat_turn_t *turn, const char *agent_id, const char *user_message_id,
                 const char *user_created_at, const char *external_key)
{
    chat_call_t *call = &turn->call;
    if (agent_id != turn->agent_id)
        snprintf (turn->agent_id, sizeof turn->agent_id, "%s", agent_id);
    service_uuid_new (turn->message_id);
    const char *conversation[] = {call->id, call->tenant_id};
    if (user_message_id) {
        //  A reply again to a message stored before (its last reply failed)
        if (user_message_id != turn->user_message_id)
            snprintf (turn->user_message_id, sizeof turn->user_message_id, "%s",
                      user_message_id);
        if (user_created_at != turn->user_created_at)
            snprintf (turn->user_created_at, sizeof turn->user_created_at, "%s",
                      user_created_at);
        s_time_at (s_now_us (), turn->created_at, sizeof turn->created_at);
        const char *reply[] = {turn->message_id, call->tenant_id,       call->id,
                               turn->agent_id,   turn->user_message_id, turn->created_at};
        db_stmt_t stmts[] = {{"INSERT INTO chat.messages (id, tenant_id, "
                              "conversation_id, role, author_id, "
                              "author_type, status, reply_to, heartbeat_at, created_at, "
                              "updated_at) VALUES "
                              "($1, $2, $3, 'assistant', $4, 'agent', 'streaming', $5, "
                              "clock_timestamp (), "
                              "$6, $6)",
                              6, reply},
                             {"UPDATE chat.conversations SET message_count = "
                              "message_count + 1, updated_at "
                              "= clock_timestamp () WHERE id = $1 AND tenant_id = $2",
                              2, conversation}};
        service_call_tx (&call->base, (service_step_fn *) s_stored, stmts, 2);
        return;
    }
    service_uuid_new (turn->user_message_id);
    //  The reply comes one microsecond after the message it answers
    int64_t now = s_now_us ();
    s_time_at (now, turn->user_created_at, sizeof turn->user_created_at);
    s_time_at (now + 1, turn->created_at, sizeof turn->created_at);
    const char *user[] = {turn->user_message_id,
                          call->tenant_id,
                          call->id,
                          turn->content_in,
                          turn->inbound ? NULL : call->user_id,
                          turn->user_created_at,
                          turn->author_type,
                          external_key};
    const char *reply[] = {turn->message_id, call->tenant_id,       call->id,
                           turn->agent_id,   turn->user_message_id, turn->created_at};
    db_stmt_t stmts[] = {
        {"INSERT INTO chat.messages (id, tenant_id, conversation_id, role, content, "
         "author_id, status, created_at, updated_at, author_type, external_key) VALUES "
         "($1, $2, $3, 'user', $4, $5, 'complete', $6, $6, $7, $8)",
         8, user},
        {"INSERT INTO chat.messages (id, tenant_id, conversation_id, role, author_id, "
         "author_type, status, reply_to, heartbeat_at, created_at, updated_at) VALUES "
         "($1, "
         "$2, $3, 'assistant', $4, 'agent', 'streaming', $5, clock_timestamp (), $6, $6)",
         6, reply},
        {"UPDATE chat.conversations SET message_count = message_count + 2, updated_at = "
         "clock_timestamp () WHERE id = $1 AND tenant_id = $2",
         2, conversation}};
    ChorusChat__Message event = CHORUS_CHAT__MESSAGE__INIT;
    s_user_message (turn, &event);
    service_call_emit (&call->base, (service_step_fn *) s_stored, call->tenant_id,
                       "chat.message.created", &event.base, stmts, 3);
}

static void
s_found (chat_call_t *call, PGresult *result)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such conversation");
        return;
    }
    if (turn->stop) {
        service_call_fail (&call->base, turn->error_code ? turn->error_code : "cancelled",
                           turn->error_message ? turn->error_message : "cancelled");
        return;
    }
    if (!PQgetisnull (result, 0, 1)) {
        //  A channel's conversation: a member writes to its contact
        chat_channel_member_reply (turn, result);
        return;
    }
    chat_turn_begin (turn, PQgetvalue (result, 0, 0), NULL, NULL, NULL);
}

chat_turn_t *
chat_turn_new (chat_state_t *state, bus_request_t **request_p,
               const ProtobufCMessageDescriptor *args_desc)
{
    chat_turn_t *turn = (chat_turn_t *) chat_call_new (
        state, request_p, args_desc, sizeof (chat_turn_t), CHAT_CALL_TURN);
    if (!turn)
        return NULL;
    turn->call.destroy = s_turn_destroy;
    turn->status = "streaming";
    turn->author_type = "user";
    return turn;
}

void
chat_turn_send (service_runtime_t *runtime, bus_request_t *request, void *state_)
{
    (void) runtime;
    chat_state_t *state = (chat_state_t *) state_;
    //  A Last-Event-ID resumes a reply instead
    ChorusChat__SendRequest *peek = (ChorusChat__SendRequest *) codec_decode (
        &chorus_chat__send_request__descriptor, bus_request_body (request),
        bus_request_size (request), NULL, 0);
    bool replay = peek && peek->last_event_id && *peek->last_event_id;
    if (peek)
        protobuf_c_message_free_unpacked (&peek->base, NULL);
    if (replay) {
        chat_replay_start (state, request);
        return;
    }
    chat_turn_t *turn = chat_turn_new (state, &request,
                                       &chorus_chat__send_request__descriptor);
    if (!turn)
        return;
    chat_call_t *call = &turn->call;
    ChorusChat__SendRequest *args = (ChorusChat__SendRequest *) call->base.args;
    if (!chat_call_take_id (call, args->id, "conversation"))
        return;
    if (!args->content || !*args->content) {
        service_call_fail (&call->base, "bad_request", "content is required");
        return;
    }
    if (strlen (args->content) > (size_t) state->content_max) {
        char message[96];
        snprintf (message, sizeof message, "content must be at most %" PRId64 " bytes",
                  state->content_max);
        service_call_fail (&call->base, "bad_request", message);
        return;
    }
    turn->stream = args->has_stream && args->stream;
    turn->content_in = args->content;
    const char *params[] = {call->id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_found,
                        "SELECT agent_id, connection_id, contact_id, thread_id, "
                        "assignee_id FROM chat.conversations WHERE id = $1 AND "
                        "tenant_id = $2",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  conversations.cancel

static void
s_cancelled (chat_call_t *call, PGresult *result)
{
    int rows = PQntuples (result);
    for (int i = 0; i < rows; i++) {
        chat_turn_t *turn = (chat_turn_t *) zhashx_lookup (call->state->turns,
                                                           PQgetvalue (result, i, 0));
        if (turn)
            s_stop (turn, "cancelled", NULL, NULL);
    }
    ChorusChat__CancelReply reply = CHORUS_CHAT__CANCEL_REPLY__INIT;
    reply.has_cancelled = true;
    reply.cancelled = rows > 0;
    service_call_reply (&call->base, &reply.base);
}

void
chat_turn_cancel (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new ((chat_state_t *) state, &request,
                                       &chorus_chat__id_request__descriptor,
                                       sizeof (chat_call_t), CHAT_CALL_PLAIN);
    if (!call
        || !chat_call_take_id (call, ((ChorusChat__IdRequest *) call->base.args)->id,
                               "conversation"))
        return;
    const char *params[] = {call->id, call->tenant_id};
    db_stmt_t stmts[] = {
        {"SELECT chat.require (EXISTS (SELECT 1 FROM chat.conversations WHERE id = $1 "
         "AND tenant_id = $2), 'not_found', 'no such conversation')",
         2, params},
        {"UPDATE chat.messages SET cancel_requested = true WHERE conversation_id = $1 "
         "AND "
         "tenant_id = $2 AND status = 'streaming' RETURNING id::text",
         2, params}};
    service_call_tx (&call->base, (service_step_fn *) s_cancelled, stmts, 2);
}

void
chat_turn_stop_conversation (chat_state_t *state, const char *conversation_id)
{
    zlistx_t *stopping = zlistx_new ();
    for (chat_turn_t *turn = (chat_turn_t *) zhashx_first (state->turns); turn;
         turn = (chat_turn_t *) zhashx_next (state->turns))
        if (streq (turn->call.id, conversation_id))
            zlistx_add_end (stopping, turn);
    for (chat_turn_t *turn = (chat_turn_t *) zlistx_first (stopping); turn;
         turn = (chat_turn_t *) zlistx_next (stopping))
        s_stop (turn, "cancelled", NULL, NULL);
    zlistx_destroy (&stopping);
}

//  ---------------------------------------------------------------------------------
//  Heartbeats, cross-replica cancels and the sweep

static void
s_polled (PGresult *result, const char *error, void *arg)
{
    chat_state_t *state = (chat_state_t *) arg;
    state->polling = false;
    if (error)
        return;
    //  A turn of this poll stops when its row is cancelled, gone or finished
    //  elsewhere (swept)
    zlistx_t *stopping = zlistx_new ();
    zhashx_t *running = zhashx_new ();  //  ids still streaming, not cancelled
    int rows = PQntuples (result);
    for (int row = 0; row < rows; row++)
        if (streq (PQgetvalue (result, row, 1), "f"))
            zhashx_insert (running, PQgetvalue (result, row, 0), state);
    for (chat_turn_t *turn = (chat_turn_t *) zhashx_first (state->turns); turn;
         turn = (chat_turn_t *) zhashx_next (state->turns)) {
        if (turn->polled != state->poll_generation || turn->phase == CHAT_TURN_FINISHING)
            continue;
        if (!zhashx_lookup (running, turn->message_id))
            zlistx_add_end (stopping, turn);
    }
    zhashx_destroy (&running);
    for (chat_turn_t *turn = (chat_turn_t *) zlistx_first (stopping); turn;
         turn = (chat_turn_t *) zlistx_next (stopping)) {
        core_log_debug (state->log, service_call_request_id (&turn->call.base),
                        "turn %s cancelled", turn->message_id);
        s_stop (turn, "cancelled", NULL, NULL);
    }
    zlistx_destroy (&stopping);
}

static void
s_swept (PGresult *result, const char *error, void *arg)
{
    chat_state_t *state = (chat_state_t *) arg;
    if (!error && result && *PQcmdTuples (result) && !streq (PQcmdTuples (result), "0"))
        core_log_warn (state->log, NULL,
                       "%s replies whose replica stopped were marked failed",
                       PQcmdTuples (result));
}

void
chat_turn_tick (chat_state_t *state)
{
    db_pool_t *db = service_runtime_db (state->runtime);
    state->ticks++;
    if (!db)
        return;
    if (!state->polling && zhashx_size (state->turns)) {
        state->poll_generation++;
        size_t count = 0;
        char *ids = malloc (zhashx_size (state->turns) * SERVICE_ID_SIZE + 3);
        assert (ids);
        char *at = ids;
        *at++ = '{';
        for (chat_turn_t *turn = (chat_turn_t *) zhashx_first (state->turns); turn;
             turn = (chat_turn_t *) zhashx_next (state->turns)) {
            if (turn->phase == CHAT_TURN_FINISHING)
                continue;
            turn->polled = state->poll_generation;
            if (count++)
                *at++ = ',';
            memcpy (at, turn->message_id, SERVICE_ID_SIZE - 1);
            at += SERVICE_ID_SIZE - 1;
        }
        *at++ = '}';
        *at = 0;
        const char *params[] = {ids};
        //  Cancels from other replicas are looked for every tick; the heartbeat
        //  the sweep goes by is written a third of CHORUS_CHAT_STALE_S apart (each
        //  write is a new row version of every streaming reply)
        int64_t every = state->stale_s / 3 > 1 ? state->stale_s / 3 : 1;
        bool beat = state->ticks % every == 0;
        if (count
            && db_pool_query (
                   db,
                   beat ? "UPDATE chat.messages SET heartbeat_at = clock_timestamp () "
                          "WHERE id = ANY ($1::uuid[]) AND status = 'streaming' "
                          "RETURNING id::text, cancel_requested"
                        : "SELECT id::text, cancel_requested FROM chat.messages "
                          "WHERE id = ANY ($1::uuid[]) AND status = 'streaming'",
                   1, params, s_polled, state)
                   == 0)
            state->polling = true;
        free (ids);
    }
    if (state->ticks % 10 == 0) {
        char stale[24];
        snprintf (stale, sizeof stale, "%" PRId64, state->stale_s);
        const char *params[] = {stale};
        if (db_pool_query (
                db,
                "UPDATE chat.messages SET status = 'failed', error = 'the "
                "reply was interrupted', updated_at = clock_timestamp () WHERE "
                "status = 'streaming' AND heartbeat_at < clock_timestamp () - "
                "make_interval (secs => $1::integer)",
                1, params, s_swept, state))
            core_log_debug (state->log, NULL, "sweep skipped: %s", db_pool_error (db));
    }
}

void
chat_turn_shutdown (chat_state_t *state)
{
    zlistx_t *ending = zlistx_new ();
    for (chat_turn_t *turn = (chat_turn_t *) zhashx_first (state->turns); turn;
         turn = (chat_turn_t *) zhashx_next (state->turns))
        zlistx_add_end (ending, turn);
    for (chat_turn_t *turn = (chat_turn_t *) zlistx_first (ending); turn;
         turn = (chat_turn_t *) zlistx_next (ending))
        chat_call_discard (&turn->call);
    zlistx_purge (ending);
    //  Calls still waiting on another service (their turns ended above)
    for (chat_call_t *call = (chat_call_t *) zlistx_first (state->waiting); call;
         call = (chat_call_t *) zlistx_next (state->waiting))
        zlistx_add_end (ending, call);
    for (chat_call_t *call = (chat_call_t *) zlistx_first (ending); call;
         call = (chat_call_t *) zlistx_next (ending))
        chat_call_discard (call);
    zlistx_destroy (&ending);
}

void
chat_turn_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_turn: ");
    char text[40];
    s_time_at (1700000000123456LL, text, sizeof text);
    assert (streq (text, "2023-11-14T22:13:20.123456Z"));
    s_time_at (1700000000000000LL + 1, text, sizeof text);
    assert (streq (text, "2023-11-14T22:13:20.000001Z"));
    char *buffer = NULL;
    size_t size = 0, capacity = 0;
    for (int i = 0; i < 100; i++)
        s_append (&buffer, &size, &capacity, "abc", 3);
    assert (size == 300 && strlen (buffer) == 300 && capacity >= 301);
    free (buffer);
    char *name = NULL;
    s_extend (&name, "look");
    s_extend (&name, "up");
    assert (streq (name, "lookup"));
    free (name);
    assert (streq (s_turn_code ("worker_lost"), "unavailable"));
    assert (streq (s_turn_code ("unknown_command"), "unavailable"));
    assert (streq (s_turn_code ("rate_limited"), "rate_limited"));
    assert (streq (s_turn_code (NULL), "unavailable"));
    printf ("OK\n");
}
