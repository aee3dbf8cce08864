/*  chat_call: chat requests in progress (see chat_call.h).                     */
#include "chat_call.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>

#include "bus_proto.h"
#include "db_message.h"

//  Runs when service_call frees the call: stop waiting, free the bigger struct.
static void
s_free (service_call_t *base)
{
    chat_call_t *call = (chat_call_t *) base;
    chat_call_forget (call);
    if (call->destroy)
        call->destroy (call);
}

chat_call_t *
chat_call_new (chat_state_t *state, bus_request_t **request_p,
               const ProtobufCMessageDescriptor *args_desc, size_t size,
               chat_call_kind_t kind)
{
    assert (size >= sizeof (chat_call_t));
    service_call_t *base = service_call_new (state->runtime, state, request_p, args_desc,
                                             size);
    if (!base)
        return NULL;
    chat_call_t *call = (chat_call_t *) base;
    call->state = state;
    call->kind = kind;
    base->free_fn = s_free;
    bus_request_set_data (base->request, call);
    if (!service_call_require_user (base))
        return NULL;
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", service_call_tenant (base));
    snprintf (call->user_id, sizeof call->user_id, "%s", service_call_user (base));
    for (char *p = call->tenant_id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    for (char *p = call->user_id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    return call;
}

bool
chat_call_take_id (chat_call_t *call, const char *id, const char *what)
{
    return service_call_take_id (&call->base, id, call->id, what);
}

int64_t
chat_call_left_ms (chat_call_t *call)
{
    return bus_request_deadline (call->base.request) - bus_proto_now ();
}

//  ---------------------------------------------------------------------------------
//  Requests to other services

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    (void) client;
    chat_call_t *call = (chat_call_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL) {
        if (call->on_partial)
            call->on_partial (call, reply);
        return;
    }
    //  The request is over: no cancel for it any more
    call->handle = 0;
    chat_call_forget (call);
    call->on_answer (call, reply);
}

void
chat_call_ask (chat_call_t *call, const char *service, const char *command,
               const ProtobufCMessage *body, int64_t timeout_ms,
               chat_answer_fn *on_answer, chat_answer_fn *on_partial)
{
    assert (call->handle == 0);
    ChorusBus__Headers headers = *call->base.headers;
    //  Keep a little of the caller's time to answer it after the other service
    int64_t left = chat_call_left_ms (call);
    int64_t timeout = left > 400 ? left - 200 : left / 2;
    if (timeout_ms > 0 && timeout > timeout_ms)
        timeout = timeout_ms;
    headers.timeout_ms = timeout > 0 ? timeout : 1;
    call->on_answer = on_answer;
    call->on_partial = on_partial;
    bus_client_t *client = service_runtime_client (call->base.runtime);
    call->handle = bus_client_request_msg (client, service, command, &headers, body,
                                           s_on_reply, call);
    if (!call->handle) {
        service_call_fail (&call->base, "unavailable", "no broker is reachable");
        return;
    }
    call->waiting = zlistx_add_end (call->state->waiting, call);
}

void
chat_call_forget (chat_call_t *call)
{
    if (call->handle) {
        bus_client_cancel (service_runtime_client (call->base.runtime), call->handle);
        call->handle = 0;
    }
    if (call->waiting) {
        zlistx_delete (call->state->waiting, call->waiting);
        call->waiting = NULL;
    }
}

const char *
chat_call_upstream_code (const char *code)
{
    static const char *const passed[] = {
        "not_found",    "unauthorized",      "forbidden",  "overloaded",
        "rate_limited", "deadline_exceeded", "unavailable"};
    if (!code)
        return "unavailable";
    if (streq (code, "bad_request"))
        return "not_found";
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++)
        if (streq (code, passed[i]))
            return passed[i];
    return "unavailable";
}

void
chat_call_fail_upstream (chat_call_t *call, const bus_reply_t *reply, const char *what)
{
    const char *code = chat_call_upstream_code (reply->code);
    char message[300];
    if (streq (code, "not_found"))
        snprintf (message, sizeof message, "no such %s", what);
    else if (reply->code && streq (reply->code, "unknown_command"))
        snprintf (message, sizeof message, "the %s service cannot answer yet", what);
    else
        snprintf (message, sizeof message, "%s", reply->message ? reply->message : code);
    service_call_fail_retry (&call->base, code, message, reply->retry_after_s);
}

//  ---------------------------------------------------------------------------------
//  Ending calls with raw bodies

//  Free a call whose request is over already, as service_call does when it
//  answers (it has no way to free without answering).
static void
s_free_call (chat_call_t *call)
{
    service_call_t *base = &call->base;
    if (base->free_fn)
        base->free_fn (base);
    if (base->reply)
        protobuf_c_message_free_unpacked (base->reply, NULL);
    if (base->args)
        protobuf_c_message_free_unpacked (base->args, NULL);
    free (call);
}

void
chat_call_reply_raw (chat_call_t *call, const void *body, size_t size)
{
    service_call_reply_raw (&call->base, body, size);
}

void
chat_call_partial_raw (chat_call_t *call, const void *body, size_t size)
{
    if (call->base.request)
        service_call_partial_raw (&call->base, body, size);
}

void
chat_call_discard (chat_call_t *call)
{
    if (call->base.request)
        service_call_fail (&call->base, "shutting_down", "the service is stopping");
    else
        s_free_call (call);
}

//  ---------------------------------------------------------------------------------
//  Message rows

//  Set the tool calls of message from JSON text [{"id","name","arguments"}];
//  anything else in the text is ignored.
static void
s_set_tool_calls (ChorusChat__Message *message, const char *text)
{
    json_t *calls = json_loads (text, 0, NULL);
    size_t count = json_is_array (calls) ? json_array_size (calls) : 0;
    if (count) {
        message->tool_calls = calloc (count, sizeof (ChorusChat__ToolCall *));
        assert (message->tool_calls);
    }
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_array_get (calls, i);
        ChorusChat__ToolCall *call = malloc (sizeof (ChorusChat__ToolCall));
        assert (call);
        chorus_chat__tool_call__init (call);
        const char *names[] = {"id", "name", "arguments"};
        char **slots[] = {&call->id, &call->name, &call->arguments};
        for (size_t f = 0; f < 3; f++) {
            const char *value = json_string_value (json_object_get (item, names[f]));
            if (value) {
                *slots[f] = strdup (value);
                assert (*slots[f]);
            }
        }
        message->tool_calls[message->n_tool_calls++] = call;
    }
    json_decref (calls);
}

ChorusChat__Message *
chat_message_from_row (const PGresult *result, int row, char *error, size_t error_size)
{
    ChorusChat__Message *message = (ChorusChat__Message *) db_message_from_row (
        &chorus_chat__message__descriptor, result, row, error, error_size);
    if (!message)
        return NULL;
    int column = PQfnumber (result, "_tool_calls");
    if (column >= 0 && !PQgetisnull (result, row, column))
        s_set_tool_calls (message, PQgetvalue (result, row, column));
    return message;
}

int
chat_message_append_rows (ProtobufCMessage *msg, const char *field,
                          const PGresult *result, char *error, size_t error_size)
{
    const ProtobufCFieldDescriptor
        *slot = protobuf_c_message_descriptor_get_field_by_name (msg->descriptor, field);
    assert (slot && slot->label == PROTOBUF_C_LABEL_REPEATED
            && slot->descriptor == &chorus_chat__message__descriptor);
    size_t *count = (size_t *) ((char *) msg + slot->quantifier_offset);
    ChorusChat__Message ***items = (ChorusChat__Message ***) ((char *) msg
                                                              + slot->offset);
    int rows = PQntuples (result);
    if (rows == 0)
        return 0;
    ChorusChat__Message **grown = realloc (*items, (*count + (size_t) rows)
                                                       * sizeof (ChorusChat__Message *));
    assert (grown);
    *items = grown;
    for (int row = 0; row < rows; row++) {
        ChorusChat__Message *message = chat_message_from_row (result, row, error,
                                                              error_size);
        if (!message)
            return -1;
        grown[(*count)++] = message;
    }
    return 0;
}

//  One message of a list page.
static ProtobufCMessage *
s_message_row (service_call_t *call, PGresult *result, int row)
{
    char error[200] = "";
    ChorusChat__Message *message = chat_message_from_row (result, row, error,
                                                          sizeof error);
    if (!message)
        core_log_error (service_runtime_log (call->runtime),
                        service_call_request_id (call), "messages: %s", error);
    return message ? &message->base : NULL;
}

void
chat_call_reply_messages (chat_call_t *call, PGresult *result, uint32_t limit)
{
    service_call_reply_list_with (&call->base, &chorus_chat__message_list__descriptor,
                                  result, limit, s_message_row);
}

char *
chat_message_tool_calls_json (const ChorusChat__Message *message)
{
    json_t *calls = json_array ();
    for (size_t i = 0; i < message->n_tool_calls; i++) {
        const ChorusChat__ToolCall *call = message->tool_calls[i];
        json_t *item = json_object ();
        json_object_set_new (item, "id",
                             call->id ? json_string (call->id) : json_null ());
        json_object_set_new (item, "name",
                             call->name ? json_string (call->name) : json_null ());
        json_object_set_new (item, "arguments",
                             call->arguments ? json_string (call->arguments)
                                             : json_null ());
        json_array_append_new (calls, item);
    }
    char *text = json_dumps (calls, JSON_COMPACT);
    json_decref (calls);
    assert (text);
    return text;
}

void
chat_call_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_call: ");
    assert (streq (chat_call_upstream_code ("bad_request"), "not_found"));
    assert (streq (chat_call_upstream_code ("rate_limited"), "rate_limited"));
    assert (streq (chat_call_upstream_code ("internal"), "unavailable"));
    assert (streq (chat_call_upstream_code ("unknown_command"), "unavailable"));
    assert (streq (chat_call_upstream_code (NULL), "unavailable"));

    //  Tool calls go to JSON and come back from a row's _tool_calls column
    ChorusChat__Message message = CHORUS_CHAT__MESSAGE__INIT;
    ChorusChat__ToolCall call = CHORUS_CHAT__TOOL_CALL__INIT;
    call.id = "call_1";
    call.name = "lookup";
    call.arguments = "{\"q\":\"\\\"x\\\"\"}";
    ChorusChat__ToolCall *calls[] = {&call};
    message.tool_calls = calls;
    message.n_tool_calls = 1;
    char *json = chat_message_tool_calls_json (&message);
    ChorusChat__Message *back = (ChorusChat__Message *) db_message_new (
        &chorus_chat__message__descriptor);
    s_set_tool_calls (back, json);
    assert (back->n_tool_calls == 1);
    assert (streq (back->tool_calls[0]->id, "call_1"));
    assert (streq (back->tool_calls[0]->name, "lookup"));
    assert (streq (back->tool_calls[0]->arguments, call.arguments));
    s_set_tool_calls (back, "not json");
    assert (back->n_tool_calls == 1);
    protobuf_c_message_free_unpacked (&back->base, NULL);
    free (json);
    printf ("OK\n");
}
