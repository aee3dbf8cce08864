/*  llm_openai: request builder and stream parser of OpenAI Chat Completions.   */
#include "llm_openai.h"
#include "llm_openai_chunk.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  True for OpenAI's reasoning models, which refuse temperature and max_tokens.
static bool
s_reasoning_model (const char *model)
{
    if (llm_starts_with (model, "gpt-5"))
        return !strstr (model, "-chat");
    return llm_starts_with (model, "o1") || llm_starts_with (model, "o3")
           || llm_starts_with (model, "o4");
}

//  True when the model also takes reasoning_effort.
static bool
s_takes_effort (const char *model)
{
    return s_reasoning_model (model) && !llm_starts_with (model, "o1-mini")
           && !llm_starts_with (model, "o1-preview") && !strstr (model, "-pro");
}

//  max_completion_tokens of a reasoning model counts its hidden reasoning too: the
//  answer's max_tokens plus room for the reasoning of the effort asked (OpenAI
//  advises reserving tens of thousands of tokens), within the model's output limit.
static json_int_t
s_completion_tokens (const char *model, llm_thinking_t thinking, int max_tokens)
{
    json_int_t room = thinking == LLM_THINKING_QUICK  ? 4096
                      : thinking == LLM_THINKING_DEEP ? 32768
                                                      : 16384;
    json_int_t limit = llm_starts_with (model, "gpt-5")        ? 128000
                       : llm_starts_with (model, "o1-mini")    ? 65536
                       : llm_starts_with (model, "o1-preview") ? 32768
                                                               : 100000;
    json_int_t total = (json_int_t) max_tokens + room;
    if (total > limit)
        total = limit > max_tokens ? limit : max_tokens;
    return total;
}

//  The message list in Chat Completions form. o1-mini and o1-preview take no
//  system (or developer) message: there the system prompt leads the first user turn.
static json_t *
s_messages (llm_request_t *request)
{
    json_t *messages = json_array ();
    bool no_system = llm_starts_with (request->model, "o1-mini")
                     || llm_starts_with (request->model, "o1-preview");
    const char *lead = no_system && *request->system ? request->system : NULL;
    if (*request->system && !no_system) {
        json_t *m = json_object ();
        llm_json_set_string (m, "role", "system");
        llm_json_set_string (m, "content", request->system);
        json_array_append_new (messages, m);
    }
    for (size_t i = 0; i < request->message_count; i++) {
        llm_message_t *message = &request->messages[i];
        json_t *m = json_object ();
        llm_json_set_string (m, "role", llm_role_name (message->role));
        if (message->role == LLM_ROLE_ASSISTANT && message->call_count
            && !*message->content)
            json_object_set_new (m, "content", json_null ());
        else if (lead && message->role == LLM_ROLE_USER) {
            char *joined = zsys_sprintf ("%s\n\n%s", lead, message->content);
            assert (joined);
            llm_json_set_string (m, "content", joined);
            zstr_free (&joined);
            lead = NULL;
        }
        else
            llm_json_set_string (m, "content", message->content);
        if (message->call_count) {
            json_t *calls = json_array ();
            for (size_t j = 0; j < message->call_count; j++) {
                json_t *function = json_object ();
                llm_json_set_string (function, "name", message->calls[j].name);
                llm_json_set_string (function, "arguments", message->calls[j].arguments);
                json_t *call = json_object ();
                llm_json_set_string (call, "id", message->calls[j].id);
                llm_json_set_string (call, "type", "function");
                json_object_set_new (call, "function", function);
                json_array_append_new (calls, call);
            }
            json_object_set_new (m, "tool_calls", calls);
        }
        if (message->role == LLM_ROLE_TOOL)
            llm_json_set_string (m, "tool_call_id", message->tool_call_id);
        json_array_append_new (messages, m);
    }
    return messages;
}

int
llm_openai_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size)
{
    assert (request && wire);
    if (!*request->model) {
        snprintf (error, size, "openai: no model is set");
        return -1;
    }
    llm_wire_set_url (wire, request->base_url, "https://api.openai.com/v1",
                      "/chat/completions");
    if (*request->api_key) {
        char *bearer = malloc (strlen (request->api_key) + 8);
        assert (bearer);
        snprintf (bearer, strlen (request->api_key) + 8, "Bearer %s", request->api_key);
        llm_wire_add_header (wire, "Authorization", bearer);
        free (bearer);
    }
    llm_wire_add_header (wire, "Accept", "text/event-stream");

    bool reasoning = s_reasoning_model (request->model);
    json_t *root = json_object ();
    llm_json_set_string (root, "model", request->model);
    json_object_set_new (root, "messages", s_messages (request));
    json_object_set_new (root, "stream", json_true ());
    json_object_set_new (root, "stream_options", json_pack ("{s:b}", "include_usage", 1));
    if (request->tool_count) {
        json_t *tools = json_array ();
        for (size_t i = 0; i < request->tool_count; i++) {
            json_t *function = json_object ();
            llm_json_set_string (function, "name", request->tools[i].name);
            llm_json_set_string (function, "description", request->tools[i].description);
            json_object_set_new (function, "parameters",
                                 llm_json_object (request->tools[i].parameters));
            json_array_append_new (tools, json_pack ("{s:s, s:o}", "type", "function",
                                                     "function", function));
        }
        json_object_set_new (root, "tools", tools);
    }
    if (request->has_temperature && !reasoning)
        json_object_set_new (root, "temperature", json_real (request->temperature));
    if (request->max_tokens && reasoning)
        json_object_set_new (
            root, "max_completion_tokens",
            json_integer (s_completion_tokens (request->model, request->thinking,
                                               request->max_tokens)));
    else if (request->max_tokens)
        json_object_set_new (root, "max_tokens", json_integer (request->max_tokens));
    if (request->thinking != LLM_THINKING_DEFAULT && s_takes_effort (request->model)) {
        const char *effort[] = {"", "low", "medium", "high"};
        llm_json_set_string (root, "reasoning_effort", effort[request->thinking]);
    }
    llm_wire_set_body (wire, &root);
    return 0;
}

const char *
llm_openai_finish (const char *reason)
{
    if (!reason)
        return NULL;
    if (strcmp (reason, "function_call") == 0)
        return "tool_calls";
    const char *known[] = {"stop", "length", "tool_calls", "content_filter"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp (reason, known[i]) == 0)
            return known[i];
    return "stop";
}

//  One chunk's first choice: text, tool-call fragments, finish reason.
static int
s_choice (llm_parser_t *parser, json_t *choice)
{
    json_t *delta = json_object_get (choice, "delta");
    json_t *content = json_object_get (delta, "content");
    if (json_is_string (content)
        && llm_parser_emit_delta (parser, json_string_value (content),
                                  json_string_length (content)))
        return -1;
    //  A refusal (structured outputs) is the answer the user gets: shown as text
    json_t *refusal = json_object_get (delta, "refusal");
    if (json_is_string (refusal)
        && llm_parser_emit_delta (parser, json_string_value (refusal),
                                  json_string_length (refusal)))
        return -1;
    json_t *call;
    size_t i;
    json_array_foreach (json_object_get (delta, "tool_calls"), i, call)
    {
        json_t *index = json_object_get (call, "index");
        json_t *function = json_object_get (call, "function");
        json_t *arguments = json_object_get (function, "arguments");
        int at = json_is_integer (index) ? (int) json_integer_value (index) : (int) i;
        if (json_is_integer (index)
            && (json_integer_value (index) < 0
                || json_integer_value (index) >= LLM_MAX_TOOL_CALLS))
            return llm_parser_bad (parser, "a tool call index is out of range");
        if (llm_parser_emit_tool_delta (
                parser, at, json_string_value (json_object_get (call, "id")),
                json_string_value (json_object_get (function, "name")),
                json_is_string (arguments) ? json_string_value (arguments) : "",
                json_is_string (arguments) ? json_string_length (arguments) : 0))
            return -1;
    }
    llm_parser_set_finish (parser, llm_openai_finish (json_string_value (
                                       json_object_get (choice, "finish_reason"))));
    return 0;
}

int
llm_openai_on_event (llm_parser_t *parser, const http_sse_event_t *event)
{
    if (event->data_size == 6 && memcmp (event->data, "[DONE]", 6) == 0)
        return llm_parser_emit_done (parser, NULL);
    if (event->data_size == 0)
        return 0;
    int rc = 0;
    if (!parser->general_json
        && llm_openai_chunk_read (parser, event->data, event->data_size, &rc))
        return rc;
    json_t *root = llm_parser_json (parser, event->data, event->data_size);
    if (!root)
        return -1;
    json_t *error = json_object_get (root, "error");
    if (!json_is_object (root))
        rc = llm_parser_bad (parser, "a chunk is not a JSON object");
    else if (error && !json_is_null (error)) {
        char message[512];
        int64_t retry_after = -1;
        llm_error_t code = llm_error_from_json (root, 0, message, sizeof message,
                                                &retry_after);
        rc = llm_parser_emit_error (parser, code, message, 0, retry_after);
    }
    else {
        json_t *usage = json_object_get (root, "usage");
        if (json_is_object (usage)) {
            json_t *prompt = json_object_get (usage, "prompt_tokens");
            json_t *completion = json_object_get (usage, "completion_tokens");
            parser->usage = true;
            parser->prompt_tokens = json_is_integer (prompt) ? json_integer_value (prompt)
                                                             : -1;
            parser->completion_tokens = json_is_integer (completion)
                                            ? json_integer_value (completion)
                                            : -1;
        }
        json_t *choice;
        size_t i;
        json_array_foreach (json_object_get (root, "choices"), i, choice)
        {
            json_t *index = json_object_get (choice, "index");
            if (json_is_integer (index) && json_integer_value (index) != 0)
                continue;  //  we ask for one choice
            if ((rc = s_choice (parser, choice)))
                break;
        }
    }
    json_decref (root);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Selftest: the request body against a golden copy, and canned streams from
//  OpenAI's documentation

void
llm_openai_test (bool verbose)
{
    printf (" * llm_openai: ");
    //  @selftest
    llm_request_t *request = llm_request_new (LLM_PROVIDER_OPENAI);
    llm_wire_t wire = {0};
    char error[128];
    assert (llm_openai_build (request, &wire, error, sizeof error) == -1);
    assert (strstr (error, "model"));
    llm_request_set_model (request, "gpt-4o-mini");
    llm_request_set_api_key (request, "sk-test");
    llm_request_set_system (request, "You are terse.");
    int rc = llm_request_add_message (request, "user", "Weather in Paris?");
    rc |= llm_request_add_message (request, "assistant", "");
    rc |= llm_request_add_tool_call (request, "call_abc", "get_weather",
                                     "{\"city\":\"Paris\"}");
    rc |= llm_request_add_message (request, "tool", "{\"temp_c\":21}");
    rc |= llm_request_set_tool_call_id (request, "call_abc", NULL);
    rc |= llm_request_add_tool (
        request, "get_weather", "Current weather",
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}");
    assert (rc == 0);
    llm_request_set_temperature (request, 0.2);
    llm_request_set_max_tokens (request, 300);
    llm_request_set_thinking (request, LLM_THINKING_DEEP);  //  not a reasoning model
    rc = llm_openai_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "https://api.openai.com/v1/chat/completions") == 0);
    assert (wire.header_count == 2);
    assert (strcmp (wire.headers[0].value, "Bearer sk-test") == 0);
    assert (llm_json_same (
        wire.body,
        "{\"model\":\"gpt-4o-mini\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are terse.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_abc\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"content\":\"{\\\"temp_c\\\":21}\","
        "\"tool_call_id\":\"call_abc\"}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
        "\"temperature\":0.2,\"max_tokens\":300}"));
    llm_wire_clear (&wire);

    //  A reasoning model: effort, max_completion_tokens, no temperature; a
    //  compatible server without key
    llm_request_set_model (request, "o4-mini");
    llm_request_set_base_url (request, "http://127.0.0.1:8000/v1/");
    llm_request_set_api_key (request, "");
    rc = llm_openai_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "http://127.0.0.1:8000/v1/chat/completions") == 0);
    assert (wire.header_count == 1);
    json_t *body = json_loads (wire.body, 0, NULL);
    assert (
        strcmp (json_string_value (json_object_get (body, "reasoning_effort")), "high")
        == 0);
    //  deep: the answer's 300 and 32768 of reasoning
    assert (json_integer_value (json_object_get (body, "max_completion_tokens"))
            == 300 + 32768);
    assert (!json_object_get (body, "temperature")
            && !json_object_get (body, "max_tokens"));
    json_decref (body);
    llm_wire_clear (&wire);
    llm_request_set_thinking (request, LLM_THINKING_QUICK);
    rc = llm_openai_build (request, &wire, error, sizeof error);
    body = json_loads (wire.body, 0, NULL);
    assert (rc == 0
            && json_integer_value (json_object_get (body, "max_completion_tokens"))
                   == 300 + 4096);
    json_decref (body);
    llm_wire_clear (&wire);
    //  o1-mini: no system message, the prompt leads the first user turn
    llm_request_set_model (request, "o1-mini");
    rc = llm_openai_build (request, &wire, error, sizeof error);
    body = json_loads (wire.body, 0, NULL);
    json_t *first = json_array_get (json_object_get (body, "messages"), 0);
    assert (rc == 0
            && streq (json_string_value (json_object_get (first, "role")), "user"));
    assert (strstr (json_string_value (json_object_get (first, "content")), "\n\n"));
    assert (!strstr (wire.body, "\"system\""));
    json_decref (body);
    llm_wire_clear (&wire);
    const char *no_effort[] = {"o1-mini", "gpt-5-chat-latest", "o3-pro", "gpt-4.1"};
    for (size_t i = 0; i < 4; i++) {
        llm_request_set_model (request, no_effort[i]);
        rc = llm_openai_build (request, &wire, error, sizeof error);
        assert (rc == 0 && !strstr (wire.body, "reasoning_effort"));
        llm_wire_clear (&wire);
    }
    llm_request_destroy (&request);

    //  Text, usage, [DONE]; whole and byte by byte
    const char *text =
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n"
        ": keep-alive comment\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"Hello\"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\" world\"},\"finish_reason\":null}],\"usage\":null}\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":2,\"total_tokens\":11}}\n\n"
        "data: [DONE]\n\n";
    const char *expect = "delta Hello\ndelta  world\nusage 9 2\ndone stop\n";
    for (size_t step = 0; step < 2; step++) {
        char *log = llm_parser_run (LLM_PROVIDER_OPENAI, NULL, text, step);
        assert (strcmp (log, expect) == 0);
        free (log);
    }
    //  Tool-call deltas, two calls
    const char *tools =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},"
        "\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},"
        "\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
        "\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
        "\"tool_calls\"}]}\n\n"
        "data: [DONE]\n\n";
    char *log = llm_parser_run (LLM_PROVIDER_OPENAI, NULL, tools, 3);
    assert (strcmp (log, "tool_call 0 id=call_1 name=get_weather args=\n"
                         "tool_call 0 id=- name=- args={\"ci\n"
                         "tool_call 0 id=- name=- args=ty\":\"Paris\"}\n"
                         "tool_call 1 id=call_2 name=get_time args={}\n"
                         "done tool_calls\n")
            == 0);
    free (log);
    //  An error member mid-stream; a stream cut before [DONE]; not JSON
    log = llm_parser_run (
        LLM_PROVIDER_OPENAI, NULL,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}"
        "\n\ndata: {\"error\":{\"message\":\"The server had an error\","
        "\"type\":\"server_error\"}}\n\n",
        0);
    assert (strcmp (log, "delta Hi\nerror upstream_error 0 -1 The server had an error\n")
            == 0);
    free (log);
    log = llm_parser_run (
        LLM_PROVIDER_OPENAI, NULL,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
        "\"finish_reason\":\"length\"}]}\n\n",
        0);
    assert (strstr (log, "delta Hi\nerror stream_broken"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_OPENAI, NULL, "data: {oops\n\n", 0);
    assert (strstr (log, "error bad_response"));
    free (log);
    //  A refusal is the text the user sees
    log = llm_parser_run (
        LLM_PROVIDER_OPENAI, NULL,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't "
        "help.\"}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n",
        0);
    assert (strcmp (log, "delta I can't help.\ndone stop\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_OPENAI, NULL,
                          "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":"
                          "99999}]}}]}\n\n",
                          0);
    assert (strstr (log, "error bad_response"));
    free (log);
    //  @end
    printf ("OK\n");
}
