/*  agents_turn: agent turns through libs/llm (see agents_turn.h).              */
#include "agents_turn.h"

#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>

#include "agents_openai.h"
#include "agents_store.h"
#include "codec_json.h"
#include "codec_msgpack.h"
#include "http_client.h"
#include "llm_client.h"
#include "service_stream.h"

//  Most text kept of one answer, and most tool calls in one answer.
#define S_CONTENT_MAX (4u * 1024u * 1024u)
#define S_TOOL_CALLS_MAX 32
//  Most messages of a history taken from a request.
#define S_MESSAGES_MAX 1000

//  How a turn answers.
typedef enum {
    S_MODE_RUN = 0,  //  turn.run: TurnEvent partials, TurnResult final
    S_MODE_TRY,      //  agents.test: TurnResult, or stream events
    S_MODE_OPENAI    //  openai_chat: OpenAI's bodies
} s_mode_t;

//  One tool call being assembled from its fragments.
typedef struct {
    char *id;         //  call id
    char *name;       //  tool name
    char *arguments;  //  JSON text so far
    size_t size;      //  bytes in arguments
    size_t room;      //  bytes allocated for them
} s_tool_call_t;

//  A turn in progress: a service_call with its stream.
typedef struct {
    service_call_t base;                    //  the request
    s_mode_t mode;                          //  how it answers
    bool stream;                            //  stream events (try) / chunks (openai)
    bool include_usage;                     //  openai: a usage chunk at the end
    llm_stream_t *llm;                      //  the upstream stream, NULL when done
    json_t *openai;                         //  openai: the request body
    char agent_id[SERVICE_ID_SIZE];         //  the agent
    char *provider;                         //  its provider
    char *model;                            //  the model asked for
    char *model_shown;                      //  openai: the model name the client gave
    char completion_id[48];                 //  openai: chatcmpl-...
    char trial_id[SERVICE_ID_SIZE];         //  try: the unsaved reply's id in events
    uint32_t trial_seq;                     //  try: number of the last event
    int64_t created;                        //  openai: unix seconds
    char *content;                          //  the answer so far
    size_t content_size;                    //  its bytes
    size_t content_room;                    //  bytes allocated for it
    s_tool_call_t *calls;                   //  tool calls so far (S_TOOL_CALLS_MAX
                                            //  made at the first), or NULL
    int call_count;                         //  how many
    int64_t prompt_tokens;                  //  usage, -1 unknown
    int64_t completion_tokens;              //  usage, -1 unknown
    int64_t started_us;                     //  when the stream started
    int64_t first_token_us;                 //  first delta, 0 none yet
    bool role_sent;                         //  openai: the role chunk went out
    char conversation_id[SERVICE_ID_SIZE];  //  for the event
    char *replay;                           //  the provider's record of the turn
} s_turn_t;

//  ---------------------------------------------------------------------------------
//  The LLM client

int
agents_turn_start (agents_state_t *state)
{
    http_client_t *http = http_client_new (state->log);
    if (!http || http_client_attach (http, service_runtime_loop (state->runtime))) {
        http_client_destroy (&http);
        return -1;
    }
    //  Each turn this replica holds (its credit) is one upstream stream: none waits
    //  behind the client's own limit
    size_t credit = (size_t) core_config_int (service_runtime_config (state->runtime),
                                              "credit");
    http_client_set_max_active (http, credit > 256 ? credit : 256);
    http_client_set_max_queued (http, credit > 1024 ? credit : 1024);
    //  and as many connections kept for the next turns: after a burst, the next
    //  turns reuse them instead of connecting (and shaking hands) again, and the
    //  burst's end closes none while other turns still stream
    http_client_set_max_cached_connections (http, (long) (credit > 64 ? credit : 64));
    state->http = http;
    state->llm = llm_client_new (service_runtime_loop (state->runtime), http, state->log);
    return state->llm ? 0 : -1;
}

void
agents_turn_stop (agents_state_t *state)
{
    llm_client_t *llm = (llm_client_t *) state->llm;
    llm_client_destroy (&llm);
    state->llm = NULL;
    http_client_t *http = (http_client_t *) state->http;
    http_client_destroy (&http);
    state->http = NULL;
}

//  ---------------------------------------------------------------------------------
//  A turn's life

static void
s_turn_free (service_call_t *base)
{
    s_turn_t *turn = (s_turn_t *) base;
    if (turn->llm)
        llm_stream_cancel (&turn->llm);
    if (turn->base.request)
        bus_request_set_data (turn->base.request, NULL);
    json_decref (turn->openai);
    free (turn->provider);
    free (turn->model);
    free (turn->model_shown);
    free (turn->content);
    free (turn->replay);
    for (int i = 0; i < turn->call_count; i++) {
        free (turn->calls[i].id);
        free (turn->calls[i].name);
        free (turn->calls[i].arguments);
    }
    free (turn->calls);
}

static s_turn_t *
s_turn_new (service_runtime_t *runtime, void *state, bus_request_t **request_p,
            const ProtobufCMessageDescriptor *desc, s_mode_t mode)
{
    bus_request_t *request = *request_p;
    s_turn_t *turn = (s_turn_t *) service_call_new (runtime, state, request_p, desc,
                                                    sizeof (s_turn_t));
    if (!turn)
        return NULL;
    turn->base.free_fn = s_turn_free;
    turn->mode = mode;
    turn->prompt_tokens = -1;
    turn->completion_tokens = -1;
    bus_request_set_data (request, turn);
    return turn;
}

//  Append to a growable text of room bytes (bounded by S_CONTENT_MAX; beyond, text
//  is dropped). It grows by a quarter more than it needs: a long answer is not
//  copied whole again for every piece, and holds little room it does not use.
static void
s_append (char **text, size_t *size, size_t *room, const char *piece, size_t len)
{
    if (*size + len > S_CONTENT_MAX)
        len = S_CONTENT_MAX - *size;
    if (*size + len + 1 > *room) {
        size_t need = *size + len + 1;
        *room = need + need / 4;
        char *grown = realloc (*text, *room);
        assert (grown);
        *text = grown;
    }
    memcpy (*text + *size, piece, len);
    *size += len;
    (*text)[*size] = 0;
}

//  Send a msgpack body as a partial (final false) or as the final reply (which
//  frees the turn).
static void
s_send_raw (s_turn_t *turn, const msgpack_sbuffer *buf, bool final)
{
    if (final)
        service_call_reply_raw (&turn->base, buf->data, buf->size);
    else
        service_call_partial_raw (&turn->base, buf->data, buf->size);
}

//  agents.test's stream: the events of chat's replies (schemas/chat.md), under
//  an id of their own, as nothing is stored. buf holds an event body.
static void
s_send_trial (s_turn_t *turn, msgpack_sbuffer *buf, bool final)
{
    s_send_raw (turn, buf, final);
    msgpack_sbuffer_destroy (buf);
}

//  Send a JSON value as a body (openai mode).
static void
s_send_json (s_turn_t *turn, json_t *value, bool final)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    int rc = codec_json_value_to_msgpack (value, &pk);
    assert (rc == 0);
    json_decref (value);
    s_send_raw (turn, &buf, final);
    msgpack_sbuffer_destroy (&buf);
}

//  ---------------------------------------------------------------------------------
//  Answers

//  The TurnResult of what arrived (fields borrowed from the turn).
static void
s_result (s_turn_t *turn, ChorusAgents__TurnResult *result, ChorusAgents__ToolCall *calls,
          ChorusAgents__ToolCall **pointers, const char *finish)
{
    chorus_agents__turn_result__init (result);
    result->content = turn->content ? turn->content : "";
    result->finish_reason = (char *) finish;
    result->provider = turn->provider;
    result->model = turn->model;
    int64_t now = zclock_usecs ();
    if (turn->prompt_tokens >= 0) {
        result->has_prompt_tokens = 1;
        result->prompt_tokens = (uint32_t) turn->prompt_tokens;
    }
    if (turn->completion_tokens >= 0) {
        result->has_completion_tokens = 1;
        result->completion_tokens = (uint32_t) turn->completion_tokens;
    }
    result->has_latency_ms = 1;
    result->latency_ms = (uint32_t) ((now - turn->started_us) / 1000);
    if (turn->first_token_us) {
        result->has_first_token_ms = 1;
        result->first_token_ms = (uint32_t) ((turn->first_token_us - turn->started_us)
                                             / 1000);
    }
    for (int i = 0; i < turn->call_count; i++) {
        chorus_agents__tool_call__init (&calls[i]);
        calls[i].id = turn->calls[i].id;
        calls[i].name = turn->calls[i].name;
        calls[i].arguments = turn->calls[i].arguments ? turn->calls[i].arguments : "{}";
        pointers[i] = &calls[i];
    }
    result->tool_calls = pointers;
    result->n_tool_calls = (size_t) turn->call_count;
    result->agent_id = turn->agent_id;
    result->replay = turn->replay;
    result->conversation_id = turn->conversation_id[0] ? turn->conversation_id : NULL;
}

static void
s_emitted (const char *error, uint64_t seq, void *arg)
{
    (void) error;
    (void) seq;
    (void) arg;
}

//  Tell analytics (and anyone listening) that a turn ended.
static void
s_emit_completed (s_turn_t *turn, ChorusAgents__TurnResult *result, const char *status,
                  const char *error)
{
    service_events_t *events = service_runtime_events (turn->base.runtime);
    if (!events)
        return;
    result->status = (char *) status;
    result->error = (char *) error;
    size_t size = 0;
    void *payload = codec_encode_alloc (&result->base, &size);
    assert (payload);
    if (service_events_emit (events, service_call_tenant (&turn->base),
                             "agents.turn.completed", payload, size, NULL, 0, s_emitted,
                             NULL))
        core_log_warn (service_runtime_log (turn->base.runtime),
                       service_call_request_id (&turn->base),
                       "agents.turn.completed not recorded: outbox full");
    free (payload);
    result->status = NULL;
    result->error = NULL;
}

//  openai: one chat.completion.chunk with choices [choice] (or [] for usage).
static json_t *
s_chunk (s_turn_t *turn, json_t *choice)
{
    json_t *chunk = json_pack ("{s:s, s:s, s:I, s:s, s:n}", "id", turn->completion_id,
                               "object", "chat.completion.chunk", "created",
                               (json_int_t) turn->created, "model", turn->model_shown,
                               "system_fingerprint");
    json_t *choices = json_array ();
    if (choice)
        json_array_append_new (choices, choice);
    json_object_set_new (chunk, "choices", choices);
    if (turn->include_usage && choice)
        json_object_set_new (chunk, "usage", json_null ());
    return chunk;
}

//  openai: the usage object.
static json_t *
s_usage_json (s_turn_t *turn)
{
    json_int_t prompt = turn->prompt_tokens > 0 ? turn->prompt_tokens : 0;
    json_int_t completion = turn->completion_tokens > 0 ? turn->completion_tokens : 0;
    return json_pack ("{s:I, s:I, s:I}", "prompt_tokens", prompt, "completion_tokens",
                      completion, "total_tokens", prompt + completion);
}

//  openai: the role chunk, once, before any content.
static void
s_openai_role (s_turn_t *turn)
{
    if (turn->role_sent)
        return;
    turn->role_sent = true;
    json_t *choice = json_pack ("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", 0, "delta",
                                "role", "assistant", "content", "", "logprobs",
                                "finish_reason");
    s_send_json (turn, s_chunk (turn, choice), false);
}

//  The turn is done: answer in its mode, emit the event, free it.
static void
s_finish (s_turn_t *turn, const char *finish)
{
    ChorusAgents__TurnResult result;
    ChorusAgents__ToolCall calls[S_TOOL_CALLS_MAX];
    ChorusAgents__ToolCall *pointers[S_TOOL_CALLS_MAX];
    s_result (turn, &result, calls, pointers, finish);
    s_emit_completed (turn, &result, "complete", NULL);
    if (turn->mode == S_MODE_RUN || (turn->mode == S_MODE_TRY && !turn->stream)) {
        service_call_reply (&turn->base, &result.base);
        return;
    }
    if (turn->mode == S_MODE_TRY) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        int rc = service_stream_message (&buf, SERVICE_STREAM_COMPLETED, turn->trial_id,
                                         ++turn->trial_seq, &result.base);
        assert (rc == 0);
        s_send_trial (turn, &buf, true);
        return;
    }
    //  openai
    if (turn->stream) {
        s_openai_role (turn);
        json_t *choice = json_pack ("{s:i, s:{}, s:n, s:s}", "index", 0, "delta",
                                    "logprobs", "finish_reason", finish);
        if (!turn->include_usage) {
            s_send_json (turn, s_chunk (turn, choice), true);
            return;
        }
        s_send_json (turn, s_chunk (turn, choice), false);
        json_t *usage = s_chunk (turn, NULL);
        json_object_set_new (usage, "usage", s_usage_json (turn));
        s_send_json (turn, usage, true);
        return;
    }
    json_t *message = json_pack ("{s:s, s:s, s:n}", "role", "assistant", "content",
                                 turn->content ? turn->content : "", "refusal");
    if (turn->call_count) {
        json_t *tool_calls = json_array ();
        for (int i = 0; i < turn->call_count; i++)
            json_array_append_new (
                tool_calls,
                json_pack ("{s:s, s:s, s:{s:s, s:s}}", "id",
                           turn->calls[i].id ? turn->calls[i].id : "", "type", "function",
                           "function", "name",
                           turn->calls[i].name ? turn->calls[i].name : "", "arguments",
                           turn->calls[i].arguments ? turn->calls[i].arguments : "{}"));
        json_object_set_new (message, "tool_calls", tool_calls);
        if (!turn->content_size)
            json_object_set_new (message, "content", json_null ());
    }
    json_t *completion = json_pack (
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:o, s:n}", "id",
        turn->completion_id, "object", "chat.completion", "created",
        (json_int_t) turn->created, "model", turn->model_shown, "choices", "index", 0,
        "message", message, "logprobs", "finish_reason", finish, "usage",
        s_usage_json (turn), "system_fingerprint");
    s_send_json (turn, completion, true);
}

//  The bus error code of an LLM error.
static const char *
s_error_code (llm_error_t code)
{
    switch (code) {
        case LLM_ERROR_UNAUTHORIZED:
            return "upstream_unauthorized";
        case LLM_ERROR_RATE_LIMITED:
            return "rate_limited";
        case LLM_ERROR_TIMEOUT:
            return "deadline_exceeded";
        case LLM_ERROR_CANCELLED:
            return "cancelled";
        default:
            return "upstream_error";
    }
}

//  The turn failed upstream: answer the error, emit the event, free it.
static void
s_fail (s_turn_t *turn, const llm_event_t *event)
{
    ChorusAgents__TurnResult result;
    ChorusAgents__ToolCall calls[S_TOOL_CALLS_MAX];
    ChorusAgents__ToolCall *pointers[S_TOOL_CALLS_MAX];
    s_result (turn, &result, calls, pointers, "error");
    const char *code = s_error_code (event->code);
    s_emit_completed (turn, &result, "failed", llm_error_name (event->code));
    char message[512];
    snprintf (message, sizeof message, "%s: %s%s%.*s", turn->provider,
              llm_error_name (event->code), event->text_size ? ": " : "",
              (int) (event->text_size < 400 ? event->text_size : 400),
              event->text ? event->text : "");
    service_call_fail_retry (&turn->base, code, message,
                             event->retry_after > 0 ? (uint32_t) event->retry_after : 0);
}

//  One event of the upstream stream.
static void
s_on_event (llm_stream_t *stream, const llm_event_t *event, void *arg)
{
    (void) stream;
    s_turn_t *turn = (s_turn_t *) arg;
    switch (event->type) {
        case LLM_EVENT_DELTA: {
            if (!turn->first_token_us)
                turn->first_token_us = zclock_usecs ();
            s_append (&turn->content, &turn->content_size, &turn->content_room,
                      event->text, event->text_size);
            ChorusAgents__TurnEvent delta = CHORUS_AGENTS__TURN_EVENT__INIT;
            delta.type = "delta";
            delta.delta = (char *) event->text;
            if (turn->mode == S_MODE_RUN)
                service_call_partial (&turn->base, &delta.base);
            else if (turn->mode == S_MODE_TRY && turn->stream) {
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                service_stream_delta (&buf, turn->trial_id, ++turn->trial_seq,
                                      event->text);
                s_send_trial (turn, &buf, false);
            }
            else if (turn->mode == S_MODE_OPENAI && turn->stream) {
                s_openai_role (turn);
                json_t *choice = json_pack (
                    "{s:i, s:{s:s%}, s:n, s:n}", "index", 0, "delta", "content",
                    event->text, event->text_size, "logprobs", "finish_reason");
                s_send_json (turn, s_chunk (turn, choice), false);
            }
            break;
        }
        case LLM_EVENT_TOOL_CALL: {
            if (event->index < 0 || event->index >= S_TOOL_CALLS_MAX)
                break;
            if (!turn->calls) {
                turn->calls = calloc (S_TOOL_CALLS_MAX, sizeof *turn->calls);
                assert (turn->calls);
            }
            s_tool_call_t *call = &turn->calls[event->index];
            if (event->index >= turn->call_count)
                turn->call_count = event->index + 1;
            if (event->id && !call->id)
                call->id = strdup (event->id);
            if (event->name && !call->name)
                call->name = strdup (event->name);
            if (event->arguments_size)
                s_append (&call->arguments, &call->size, &call->room, event->arguments,
                          event->arguments_size);
            ChorusAgents__ToolCall piece = CHORUS_AGENTS__TOOL_CALL__INIT;
            piece.id = (char *) event->id;
            piece.name = (char *) event->name;
            piece.arguments = (char *) (event->arguments ? event->arguments : "");
            ChorusAgents__TurnEvent fragment = CHORUS_AGENTS__TURN_EVENT__INIT;
            fragment.type = "tool_call";
            fragment.has_index = 1;
            fragment.index = (uint32_t) event->index;
            fragment.tool_call = &piece;
            if (turn->mode == S_MODE_RUN)
                service_call_partial (&turn->base, &fragment.base);
            else if (turn->mode == S_MODE_TRY && turn->stream) {
                msgpack_sbuffer buf;
                msgpack_sbuffer_init (&buf);
                service_stream_tool_call (&buf, turn->trial_id, ++turn->trial_seq,
                                          (uint32_t) event->index, event->id, event->name,
                                          piece.arguments);
                s_send_trial (turn, &buf, false);
            }
            else if (turn->mode == S_MODE_OPENAI && turn->stream) {
                s_openai_role (turn);
                json_t *function = json_pack ("{s:s%}", "arguments",
                                              event->arguments ? event->arguments : "",
                                              event->arguments_size);
                if (event->name)
                    json_object_set_new (function, "name", json_string (event->name));
                json_t *tool = json_pack ("{s:i}", "index", event->index);
                if (event->id) {
                    json_object_set_new (tool, "id", json_string (event->id));
                    json_object_set_new (tool, "type", json_string ("function"));
                }
                json_object_set_new (tool, "function", function);
                json_t *choice = json_pack ("{s:i, s:{s:[o]}, s:n, s:n}", "index", 0,
                                            "delta", "tool_calls", tool, "logprobs",
                                            "finish_reason");
                s_send_json (turn, s_chunk (turn, choice), false);
            }
            break;
        }
        case LLM_EVENT_USAGE:
            if (event->prompt_tokens >= 0)
                turn->prompt_tokens = event->prompt_tokens;
            if (event->completion_tokens >= 0)
                turn->completion_tokens = event->completion_tokens;
            break;
        case LLM_EVENT_DONE:
            if (event->replay) {
                free (turn->replay);
                turn->replay = strdup (event->replay);
            }
            //  Answering frees the turn, and the turn frees its stream
            s_finish (turn, event->finish ? event->finish : "stop");
            break;
        case LLM_EVENT_ERROR:
            s_fail (turn, event);
            break;
    }
}

void
agents_turn_cancel (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    (void) state;
    s_turn_t *turn = (s_turn_t *) bus_request_data (request);
    if (!turn)
        return;  //  still reading the agent: the query's step sees the cancel
    if (turn->llm)
        llm_stream_cancel (&turn->llm);
    ChorusAgents__TurnResult result;
    ChorusAgents__ToolCall calls[S_TOOL_CALLS_MAX];
    ChorusAgents__ToolCall *pointers[S_TOOL_CALLS_MAX];
    s_result (turn, &result, calls, pointers, "cancelled");
    s_emit_completed (turn, &result, "cancelled", NULL);
    service_call_fail (&turn->base, "cancelled", "the turn was cancelled");
}

//  ---------------------------------------------------------------------------------
//  Starting a turn

//  openai: the model is none of the caller's enabled agents (OpenAI's answer).
static void
s_model_not_found (s_turn_t *turn)
{
    char message[300];
    snprintf (message, sizeof message,
              "The model `%.200s` does not exist or you do not have access to it.",
              turn->model_shown);
    service_call_fail (&turn->base, "model_not_found", message);
}

//  The agent row arrived: build the LLM request and start streaming. The history
//  comes from the TurnRequest (run/try) or the OpenAI body.
static void
s_agent_read (service_call_t *call, PGresult *result)
{
    s_turn_t *turn = (s_turn_t *) call;
    agents_state_t *state = (agents_state_t *) call->state;
    if (bus_request_cancelled (call->request)) {
        service_call_fail (call, "cancelled", "the turn was cancelled");
        return;
    }
    if (PQntuples (result) != 1) {
        if (turn->mode == S_MODE_OPENAI)
            s_model_not_found (turn);
        else
            service_call_fail (call, "not_found", "no such agent");
        return;
    }
    char error[256] = "";
    ChorusAgents__Agent *agent = agents_store_read (result, 0, error, sizeof error);
    if (!agent) {
        service_call_fail (call, "internal", "the agent could not be read");
        return;
    }
    if (agent->has_enabled && !agent->enabled) {
        protobuf_c_message_free_unpacked (&agent->base, NULL);
        //  /v1 does not list it: it is no model there, as OpenAI hides what one
        //  cannot use
        if (turn->mode == S_MODE_OPENAI)
            s_model_not_found (turn);
        else
            service_call_fail (call, "forbidden", "the agent is disabled");
        return;
    }
    snprintf (turn->agent_id, sizeof turn->agent_id, "%s", agent->id);
    int provider = llm_provider_parse (agent->provider);
    if (provider < 0)
        provider = LLM_PROVIDER_OFFLINE;
    llm_request_t *request = llm_request_new ((llm_provider_t) provider);
    //  Key and endpoint: the tenant's own, else the platform's for its provider
    int sealed = PQfnumber (result, "_api_key_sealed");
    int base = PQfnumber (result, "_base_url");
    char *key = NULL;
    if (sealed >= 0 && !PQgetisnull (result, 0, sealed) && state->box)
        key = auth_secretbox_open (state->box, PQgetvalue (result, 0, sealed));
    bool platform = streq (agent->provider, state->default_provider);
    llm_request_set_api_key (request, key ? key : platform ? state->default_api_key : "");
    if (key) {
        sodium_memzero (key, strlen (key));
        free (key);
    }
    if (provider == LLM_PROVIDER_N8N)
        llm_request_set_base_url (request, agent->webhook_url);
    else if (base >= 0 && !PQgetisnull (result, 0, base))
        llm_request_set_base_url (request, PQgetvalue (result, 0, base));
    else if (platform)
        llm_request_set_base_url (request, state->default_base_url);
    const char *model = agent->model && *agent->model ? agent->model
                        : platform                    ? state->default_model
                                                      : "";
    turn->provider = strdup (agent->provider);
    turn->model = strdup (model);
    llm_request_set_model (request, model);
    llm_request_set_system (request, agent->system_prompt);
    if (agent->has_temperature)
        llm_request_set_temperature (request, agent->temperature);
    if (agent->has_max_tokens)
        llm_request_set_max_tokens (request, (int) agent->max_tokens);
    int thinking = llm_thinking_parse (agent->thinking_mode);
    if (thinking > 0)
        llm_request_set_thinking (request, (llm_thinking_t) thinking);
    llm_request_set_request_id (request, service_call_request_id (call));
    for (size_t i = 0; i < agent->n_tools; i++)
        if (llm_request_add_tool (request, agent->tools[i]->name,
                                  agent->tools[i]->description,
                                  agent->tools[i]->parameters))
            core_log_warn (state->log, service_call_request_id (call),
                           "agent %s: tool %s has bad parameters, left out", agent->id,
                           agent->tools[i]->name);
    protobuf_c_message_free_unpacked (&agent->base, NULL);

    int rc = 0;
    if (turn->mode == S_MODE_OPENAI) {
        json_t *body = turn->openai;
        json_t *value = json_object_get (body, "temperature");
        if (json_is_number (value))
            llm_request_set_temperature (request, json_number_value (value));
        value = json_object_get (body, "max_completion_tokens");
        if (!json_is_integer (value))
            value = json_object_get (body, "max_tokens");
        if (json_is_integer (value))
            llm_request_set_max_tokens (request, json_integer_value (value) < INT_MAX
                                                     ? (int) json_integer_value (value)
                                                     : INT_MAX);
        json_t *tools = json_object_get (body, "tools");
        size_t index;
        json_t *tool;
        json_array_foreach (tools, index, tool)
        {
            json_t *function = json_object_get (tool, "function");
            const char *name = json_string_value (json_object_get (function, "name"));
            char *parameters = NULL;
            json_t *schema = json_object_get (function, "parameters");
            if (json_is_object (schema))
                parameters = json_dumps (schema, JSON_COMPACT);
            if (!name
                || llm_request_add_tool (
                    request, name,
                    json_string_value (json_object_get (function, "description")),
                    parameters))
                rc = -1;
            free (parameters);
        }
        //  The body passed agents_openai_check: roles, contents and calls are sound
        json_t *message;
        json_array_foreach (json_object_get (body, "messages"), index, message)
        {
            const char *role = json_string_value (json_object_get (message, "role"));
            if (streq (role, "developer"))
                role = "system";
            char *text = agents_openai_content (message);
            if (llm_request_add_message (request, role, text))
                rc = -1;
            free (text);
            size_t call_index;
            json_t *tool_call;
            json_array_foreach (json_object_get (message, "tool_calls"), call_index,
                                tool_call)
            {
                json_t *function = json_object_get (tool_call, "function");
                if (llm_request_add_tool_call (
                        request, json_string_value (json_object_get (tool_call, "id")),
                        json_string_value (json_object_get (function, "name")),
                        json_string_value (json_object_get (function, "arguments"))))
                    rc = -1;
            }
            const char *answers = json_string_value (
                json_object_get (message, "tool_call_id"));
            if (streq (role, "tool")
                && llm_request_set_tool_call_id (request, answers, NULL))
                rc = -1;
        }
    }
    else {
        ChorusAgents__TurnRequest *args = (ChorusAgents__TurnRequest *) call->args;
        for (size_t i = 0; i < args->n_messages && rc == 0; i++) {
            ChorusAgents__ChatMessage *message = args->messages[i];
            if (!message->role
                || llm_request_add_message (request, message->role, message->content))
                rc = -1;
            for (size_t c = 0; c < message->n_tool_calls && rc == 0; c++)
                rc = llm_request_add_tool_call (request, message->tool_calls[c]->id,
                                                message->tool_calls[c]->name,
                                                message->tool_calls[c]->arguments);
            if (rc == 0 && message->replay && streq (message->role, "assistant"))
                llm_request_set_replay (request, message->replay);
            if (rc == 0 && message->tool_call_id)
                rc = llm_request_set_tool_call_id (request, message->tool_call_id,
                                                   message->name);
        }
        if (rc == 0 && args->content && *args->content)
            rc = llm_request_add_message (request, "user", args->content);
        if (args->conversation_id && service_uuid_valid (args->conversation_id))
            snprintf (turn->conversation_id, sizeof turn->conversation_id, "%s",
                      args->conversation_id);
        if (args->conversation_id)
            llm_request_set_session_id (request, args->conversation_id);
    }
    if (rc || llm_request_message_count (request) == 0) {
        llm_request_destroy (&request);
        service_call_fail (call, "bad_request",
                           "messages must be a non-empty history of system, user, "
                           "assistant and tool messages with valid tool calls");
        return;
    }
    //  The stream may not outlive the request's deadline
    int64_t left = bus_request_deadline (call->request) - zclock_mono ();
    if (left > 0)
        llm_request_set_timeout (request, left);
    turn->started_us = zclock_usecs ();
    turn->llm = state->llm ? llm_stream_start ((llm_client_t *) state->llm, request,
                                               s_on_event, turn, error, sizeof error)
                           : NULL;
    llm_request_destroy (&request);
    if (!turn->llm) {
        service_call_fail (call, "upstream_error", error);
        return;
    }
    //  The history is in the stream's wire request now: not held twice more
    protobuf_c_message_free_unpacked (call->args, NULL);
    call->args = NULL;
    json_decref (turn->openai);
    turn->openai = NULL;
}

//  Read the agent (by id, or by name for openai) with its provider setting.
static void
s_read_agent (s_turn_t *turn, const char *id_or_name)
{
    const char *params[] = {service_call_tenant (&turn->base), id_or_name};
    service_call_query (
        &turn->base, s_agent_read,
        "SELECT " AGENTS_COLUMNS ", p.api_key_sealed AS _api_key_sealed, "
        "p.base_url AS _base_url FROM agents.agents a LEFT JOIN "
        "agents.provider_settings p ON p.tenant_id = a.tenant_id AND "
        "p.provider = a.provider WHERE a.tenant_id = $1 AND (a.id::text = "
        "lower ($2) OR lower (a.name) = lower ($2)) ORDER BY a.id::text = "
        "lower ($2) DESC LIMIT 1",
        2, params);
}

void
agents_turn_run (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    s_turn_t *turn = s_turn_new (runtime, state, &request,
                                 &chorus_agents__turn_request__descriptor, S_MODE_RUN);
    if (!turn || !service_call_require_user (&turn->base))
        return;
    ChorusAgents__TurnRequest *args = (ChorusAgents__TurnRequest *) turn->base.args;
    if (!service_uuid_valid (args->agent_id)) {
        service_call_fail (&turn->base, "not_found", "no such agent");
        return;
    }
    if (args->n_messages == 0 || args->n_messages > S_MESSAGES_MAX) {
        service_call_fail (&turn->base, "bad_request", "messages: 1 to 1000 messages");
        return;
    }
    s_read_agent (turn, args->agent_id);
}

void
agents_turn_try (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    s_turn_t *turn = s_turn_new (runtime, state, &request,
                                 &chorus_agents__turn_request__descriptor, S_MODE_TRY);
    if (!turn || !service_call_require_admin (&turn->base))
        return;
    ChorusAgents__TurnRequest *args = (ChorusAgents__TurnRequest *) turn->base.args;
    turn->stream = args->has_stream && args->stream;
    service_uuid_new (turn->trial_id);
    //  The route's path names the agent as {id}
    if (!args->agent_id && args->id) {
        args->agent_id = args->id;
        args->id = NULL;
    }
    if (!service_uuid_valid (args->agent_id)) {
        service_call_fail (&turn->base, "not_found", "no such agent");
        return;
    }
    if ((!args->content || !*args->content) && args->n_messages == 0) {
        service_call_fail (&turn->base, "bad_request", "content is required");
        return;
    }
    s_read_agent (turn, args->agent_id);
}

void
agents_turn_openai_chat (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    //  OpenAI's body has unions (content: string or parts) and free JSON (tool
    //  parameters): it is read as JSON, not through a proto type
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    char error[256] = "";
    json_t *body = NULL;
    if (codec_check_unpack (bus_request_body (request), bus_request_size (request),
                            &unpacked, error, sizeof error)
        == 0)
        body = codec_msgpack_to_jansson (&unpacked.data);
    msgpack_unpacked_destroy (&unpacked);
    //  The turn itself decodes an empty TurnRequest: its args are unused here
    bus_request_t *copy = request;
    s_turn_t *turn = s_turn_new (runtime, state, &copy,
                                 &chorus_agents__id_request__descriptor, S_MODE_OPENAI);
    if (!turn) {
        json_decref (body);
        return;
    }
    turn->openai = body;
    if (!service_call_require_user (&turn->base))
        return;
    if (agents_openai_check (body, error, sizeof error)) {
        service_call_fail (&turn->base, "bad_request", error);
        return;
    }
    const char *model = json_string_value (json_object_get (body, "model"));
    turn->stream = json_is_true (json_object_get (body, "stream"));
    turn->include_usage = turn->stream
                          && json_is_true (json_object_get (
                              json_object_get (body, "stream_options"), "include_usage"));
    turn->model_shown = strdup (model);
    char id[SERVICE_ID_SIZE];
    service_uuid_new (id);
    snprintf (turn->completion_id, sizeof turn->completion_id,
              "chatcmpl-%.8s%.4s%.4s%.4s%.12s", id, id + 9, id + 14, id + 19, id + 24);
    turn->created = (int64_t) time (NULL);
    s_read_agent (turn, model);
}

void
agents_turn_test (bool verbose)
{
    (void) verbose;
    printf (" * agents_turn: ");
    char *text = NULL;
    size_t size = 0, room = 0;
    s_append (&text, &size, &room, "Hello", 5);
    s_append (&text, &size, &room, ", world", 7);
    assert (room >= size + 1);
    assert (size == 12 && streq (text, "Hello, world"));
    free (text);
    assert (streq (s_error_code (LLM_ERROR_RATE_LIMITED), "rate_limited"));
    assert (streq (s_error_code (LLM_ERROR_UNAUTHORIZED), "upstream_unauthorized"));
    assert (streq (s_error_code (LLM_ERROR_STREAM_BROKEN), "upstream_error"));
    assert (streq (s_error_code (LLM_ERROR_TIMEOUT), "deadline_exceeded"));
    printf ("OK\n");
}
