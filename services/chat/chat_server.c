/*  chat_server: the chat service on the shared runtime. Its state holds the
    limits, the turns running on this replica and the replies being replayed;
    a timer drives heartbeats, cross-replica cancels and the sweep; the cancel
    hook stops a turn or a replay whose caller went away.

    The chat options are read through this table from the environment by the
    state itself, so the actor runs the same in chorus-chat (whose main also
    checks them at start) and in chorusd (which does not declare them).      */
#include "chat_server.h"

#include <assert.h>

#include "chat_channel.h"
#include "chat_conversations.h"
#include "chat_handoff.h"
#include "chat_replay.h"
#include "chat_turn.h"

const core_config_option_t chat_server_options[] = {
    {"chat_turn_timeout_ms", "CHORUS_CHAT_TURN_TIMEOUT_MS", CORE_CONFIG_INT, 1000,
     3600000, "300000", "chat: longest agent turn in milliseconds"},
    {"chat_content_max", "CHORUS_CHAT_CONTENT_MAX", CORE_CONFIG_INT, 1, 4194304, "65536",
     "chat: largest user message in bytes"},
    {"chat_reply_max", "CHORUS_CHAT_REPLY_MAX", CORE_CONFIG_INT, 1024, 16777216,
     "1048576", "chat: largest reply kept in bytes (a longer one fails)"},
    {"chat_history_max", "CHORUS_CHAT_HISTORY_MAX", CORE_CONFIG_INT, 1, 10000, "200",
     "chat: most messages read for a turn's context (before the token budget)"},
    {"chat_context_tokens", "CHORUS_CHAT_CONTEXT_TOKENS", CORE_CONFIG_INT, 256, 10000000,
     "8192", "chat: context window of models the budget table does not know"},
    {"chat_tool_calls_max", "CHORUS_CHAT_TOOL_CALLS_MAX", CORE_CONFIG_INT, 1, 1000, "64",
     "chat: tool calls kept per reply"},
    {"chat_replay_ttl_s", "CHORUS_CHAT_REPLAY_TTL_S", CORE_CONFIG_INT, 10, 604800, "3600",
     "chat: how long a finished reply's stream events stay in Redis for replays"},
    {"chat_replay_events_max", "CHORUS_CHAT_REPLAY_EVENTS_MAX", CORE_CONFIG_INT, 10,
     10000000, "100000", "chat: stream events kept per reply for replays"},
    {"chat_replay_poll_ms", "CHORUS_CHAT_REPLAY_POLL_MS", CORE_CONFIG_INT, 10, 10000,
     "100", "chat: how often a replay looks for new events"},
    {"chat_stale_s", "CHORUS_CHAT_STALE_S", CORE_CONFIG_INT, 5, 86400, "30",
     "chat: a streaming reply no replica touched this long is marked failed"},
    {"chat_resume_grace_ms", "CHORUS_CHAT_RESUME_GRACE_MS", CORE_CONFIG_INT, 0, 600000,
     "2000",
     "chat: how long a reply whose client went away goes on, waiting for the client to "
     "resume it (Last-Event-ID); then, unless a resumed client follows it, the turn is "
     "cancelled up to the provider (0: at once)"},
    {"chat_handoff_keywords", "CHORUS_CHAT_HANDOFF_KEYWORDS", CORE_CONFIG_STRING, 0, 0,
     "human,real person,operator,representative,live agent,talk to someone,speak to "
     "someone",
     "chat: words or phrases (comma-separated, any case, whole words) with which a "
     "channel's contact asks for a person: the agent hands the conversation off "
     "(empty: never)"},
    {"chat_handoff_reply", "CHORUS_CHAT_HANDOFF_REPLY", CORE_CONFIG_STRING, 0, 0,
     "I'm passing you to a member of our team. Someone will reply here soon.",
     "chat: what the agent answers when it hands a conversation off"},
};
const size_t chat_server_option_count = sizeof chat_server_options
                                        / sizeof chat_server_options[0];

static const service_command_t s_commands[] = {
    {"conversations.create", chat_conversations_create},
    {"conversations.list", chat_conversations_list},
    {"conversations.get", chat_conversations_get},
    {"conversations.update", chat_conversations_update},
    {"conversations.delete", chat_conversations_delete},
    {"conversations.cancel", chat_turn_cancel},
    {"messages.list", chat_conversations_messages},
    {"messages.send", chat_turn_send},
    {"conversations.assign", chat_handoff_assign},
    {"conversations.unassign", chat_handoff_unassign},
    {"conversations.resolve", chat_handoff_resolve},
    {"conversations.reopen", chat_handoff_reopen},
    {"channel.inbound", chat_channel_inbound},
};

//  Read chat's options from the environment (the defaults when one is bad: only
//  chorusd gets this far with a bad one).
static void
s_read_options (chat_state_t *state)
{
    int64_t *slots[] = {
        &state->turn_timeout_ms, &state->content_max,       &state->reply_max,
        &state->history_max,     &state->context_tokens,    &state->tool_calls_max,
        &state->replay_ttl_s,    &state->replay_events_max, &state->replay_poll_ms,
        &state->stale_s,         &state->resume_grace_ms};
    assert (sizeof slots / sizeof slots[0] + 2 == chat_server_option_count);
    char *error = NULL;
    core_config_t *own = core_config_new (chat_server_options, chat_server_option_count,
                                          &error);
    if (!own) {
        core_log_error (state->log, NULL, "chat options: %s (using the defaults)",
                        error ? error : "?");
        free (error);
    }
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        const core_config_option_t *option = &chat_server_options[i];
        *slots[i] = own ? core_config_int (own, option->name)
                        : strtoll (option->fallback, NULL, 10);
    }
    const char *keywords = own ? core_config_str (own, "chat_handoff_keywords") : NULL;
    const char *reply = own ? core_config_str (own, "chat_handoff_reply") : NULL;
    state->handoff_keywords = strdup (
        keywords ? keywords : chat_server_options[chat_server_option_count - 2].fallback);
    state->handoff_reply = strdup (
        reply && *reply ? reply
                        : chat_server_options[chat_server_option_count - 1].fallback);
    assert (state->handoff_keywords && state->handoff_reply);
    core_config_destroy (&own);
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    chat_turn_tick ((chat_state_t *) arg);
    return 0;
}

static void *
s_state_new (service_runtime_t *runtime)
{
    chat_state_t *state = calloc (1, sizeof (chat_state_t));
    assert (state);
    state->runtime = runtime;
    state->log = service_runtime_log (runtime);
    s_read_options (state);
    service_uuid_new (state->origin);
    state->turns = zhashx_new ();
    state->waiting = zlistx_new ();
    state->replays = zlistx_new ();
    msgpack_sbuffer_init (&state->delta_buf);
    msgpack_sbuffer_init (&state->live_buf);
    state->timer = zloop_timer (service_runtime_loop (runtime), 1000, 0, s_on_tick,
                                state);
    assert (state->timer >= 0);
    return state;
}

static void
s_state_destroy (void **state_p)
{
    chat_state_t *state = (chat_state_t *) *state_p;
    if (!state)
        return;
    zloop_timer_end (service_runtime_loop (state->runtime), state->timer);
    chat_turn_shutdown (state);
    chat_replay_shutdown (state);
    zhashx_destroy (&state->turns);
    zlistx_destroy (&state->waiting);
    zlistx_destroy (&state->replays);
    msgpack_sbuffer_destroy (&state->delta_buf);
    msgpack_sbuffer_destroy (&state->live_buf);
    free (state->handoff_keywords);
    free (state->handoff_reply);
    free (state);
    *state_p = NULL;
}

//  The caller of a request cancelled or its deadline passed: a turn stops (and
//  its turn.run upstream), a replay ends; other calls end at their next step.
static void
s_on_cancel (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    (void) state;
    chat_call_t *call = (chat_call_t *) bus_request_data (request);
    if (!call)
        return;
    if (call->kind == CHAT_CALL_TURN)
        chat_turn_caller_gone (call);
    else if (call->kind == CHAT_CALL_REPLAY)
        chat_replay_caller_gone (call);
}

static const service_definition_t s_definition = {
    .name = "chat",
    .schema = "chat",
    .uses_redis = true,
    .commands = s_commands,
    .command_count = sizeof s_commands / sizeof s_commands[0],
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .on_cancel = s_on_cancel,
};

void
chat_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
