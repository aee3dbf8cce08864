/*  llm_ollama: request builder and stream parser of Ollama's /api/chat.        */
#include "llm_ollama.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Builder

//  The "think" value for the model and mode, or NULL to send none.
static json_t *
s_think (const char *model, llm_thinking_t thinking)
{
    if (thinking == LLM_THINKING_DEFAULT)
        return NULL;
    const char *name = strrchr (model, '/') ? strrchr (model, '/') + 1 : model;
    if (llm_starts_with (name, "gpt-oss")) {
        const char *levels[] = {"", "low", "medium", "high"};
        return json_string (levels[thinking]);
    }
    bool switchable = llm_starts_with (name, "deepseek-r1")
                      || llm_starts_with (name, "deepseek-v3.1")
                      || llm_starts_with (name, "magistral")
                      || (llm_starts_with (name, "qwen3") && !strstr (name, "coder")
                          && !strstr (name, "instruct") && !strstr (name, "-vl"));
    if (!switchable || thinking == LLM_THINKING_BALANCED)
        return NULL;
    return json_boolean (thinking == LLM_THINKING_DEEP);
}

int
llm_ollama_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size)
{
    assert (request && wire);
    if (!*request->model) {
        snprintf (error, size, "ollama: no model is set");
        return -1;
    }
    llm_wire_set_url (wire, request->base_url, "http://127.0.0.1:11434", "/api/chat");
    if (*request->api_key) {
        char *bearer = zsys_sprintf ("Bearer %s", request->api_key);
        assert (bearer);
        llm_wire_add_header (wire, "Authorization", bearer);
        zstr_free (&bearer);
    }
    llm_wire_add_header (wire, "Accept", "application/x-ndjson");

    json_t *messages = json_array ();
    if (*request->system) {
        json_t *system = json_object ();
        llm_json_set_string (system, "role", "system");
        llm_json_set_string (system, "content", request->system);
        json_array_append_new (messages, system);
    }
    for (size_t i = 0; i < request->message_count; i++) {
        llm_message_t *m = &request->messages[i];
        json_t *message = json_object ();
        llm_json_set_string (message, "role", llm_role_name (m->role));
        llm_json_set_string (message, "content", m->content);
        if (m->call_count) {
            json_t *calls = json_array ();
            for (size_t j = 0; j < m->call_count; j++) {
                json_t *args = llm_json_object (m->calls[j].arguments);
                json_t *function = json_object ();
                llm_json_set_string (function, "name", m->calls[j].name);
                json_object_set_new (function, "arguments", args ? args : json_object ());
                json_array_append_new (calls, json_pack ("{s:o}", "function", function));
            }
            json_object_set_new (message, "tool_calls", calls);
        }
        if (m->role == LLM_ROLE_TOOL)
            llm_json_set_string (message, "tool_name",
                                 llm_request_tool_name (request, i));
        json_array_append_new (messages, message);
    }
    json_t *root = json_object ();
    llm_json_set_string (root, "model", request->model);
    json_object_set_new (root, "messages", messages);
    json_object_set_new (root, "stream", json_true ());
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
    json_t *think = s_think (request->model, request->thinking);
    if (think)
        json_object_set_new (root, "think", think);
    json_t *options = json_object ();
    if (request->has_temperature)
        json_object_set_new (options, "temperature", json_real (request->temperature));
    if (request->max_tokens)
        json_object_set_new (options, "num_predict", json_integer (request->max_tokens));
    if (json_object_size (options))
        json_object_set_new (root, "options", options);
    else
        json_decref (options);
    llm_wire_set_body (wire, &root);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Parser

int
llm_ollama_on_line (llm_parser_t *parser, const char *line, size_t size)
{
    size_t blank = 0;
    while (blank < size && (line[blank] == ' ' || line[blank] == '\t'))
        blank++;
    if (blank == size)
        return 0;
    json_t *root = llm_parser_json (parser, line, size);
    if (!root)
        return -1;
    int rc = 0;
    json_t *error = json_object_get (root, "error");
    if (!json_is_object (root))
        rc = llm_parser_bad (parser, "a line is not a JSON object");
    else if (error && !json_is_null (error)) {
        char message[512];
        llm_error_t code = llm_error_from_json (root, 0, message, sizeof message, NULL);
        rc = llm_parser_emit_error (parser, code, message, 0, -1);
    }
    else {
        json_t *message = json_object_get (root, "message");
        json_t *content = json_object_get (message, "content");
        if (json_is_string (content))
            rc = llm_parser_emit_delta (parser, json_string_value (content),
                                        json_string_length (content));
        json_t *call;
        size_t i;
        json_array_foreach (json_object_get (message, "tool_calls"), i, call)
        {
            if (rc)
                break;
            if (parser->tools >= LLM_MAX_TOOL_CALLS) {
                rc = llm_parser_bad (parser, "too many tool calls");
                break;
            }
            int index = parser->tools++;
            json_t *function = json_object_get (call, "function");
            const char *name = json_string_value (json_object_get (function, "name"));
            const char *id = json_string_value (json_object_get (call, "id"));
            char made[40];
            if (!id || !*id) {
                llm_parser_call_id (parser, index, made, sizeof made);
                id = made;
            }
            json_t *args = json_object_get (function, "arguments");
            char *text = json_is_object (args)   ? json_dumps (args, JSON_COMPACT)
                         : json_is_string (args) ? strdup (json_string_value (args))
                                                 : NULL;
            rc = llm_parser_emit_tool (parser, index, id, name ? name : "",
                                       text ? text : "{}", text ? strlen (text) : 2);
            free (text);
        }
        if (rc == 0 && json_is_true (json_object_get (root, "done"))) {
            json_t *prompt = json_object_get (root, "prompt_eval_count");
            json_t *eval = json_object_get (root, "eval_count");
            if (json_is_integer (prompt) || json_is_integer (eval)) {
                parser->usage = true;
                parser->prompt_tokens = json_is_integer (prompt)
                                            ? json_integer_value (prompt)
                                            : -1;
                parser->completion_tokens = json_is_integer (eval)
                                                ? json_integer_value (eval)
                                                : -1;
            }
            const char *reason = json_string_value (
                json_object_get (root, "done_reason"));
            rc = llm_parser_emit_done (parser, parser->tools ? "tool_calls"
                                               : reason && strcmp (reason, "length") == 0
                                                   ? "length"
                                                   : "stop");
        }
    }
    json_decref (root);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Selftest

void
llm_ollama_test (bool verbose)
{
    printf (" * llm_ollama: ");
    //  @selftest
    llm_request_t *request = llm_request_new (LLM_PROVIDER_OLLAMA);
    llm_request_set_model (request, "llama3.2");
    llm_request_set_system (request, "You are terse.");
    int rc = llm_request_add_message (request, "user", "Weather in Paris?");
    rc |= llm_request_add_message (request, "assistant", "");
    rc |= llm_request_add_tool_call (request, "call_1", "get_weather",
                                     "{\"city\":\"Paris\"}");
    rc |= llm_request_add_message (request, "tool", "21C");
    rc |= llm_request_set_tool_call_id (request, "call_1", NULL);
    rc |= llm_request_add_tool (request, "get_weather", "Current weather",
                                "{\"type\":\"object\",\"properties\":{}}");
    assert (rc == 0);
    llm_request_set_temperature (request, 0.5);
    llm_request_set_max_tokens (request, 200);
    llm_request_set_thinking (request, LLM_THINKING_DEEP);  //  llama3.2 cannot think
    llm_wire_t wire = {0};
    char error[128];
    rc = llm_ollama_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "http://127.0.0.1:11434/api/chat") == 0);
    assert (wire.header_count == 1);
    assert (llm_json_same (
        wire.body,
        "{\"model\":\"llama3.2\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are terse.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":"
        "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
        "{\"role\":\"tool\",\"content\":\"21C\",\"tool_name\":\"get_weather\"}],"
        "\"stream\":true,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Current weather\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{}}}}],"
        "\"options\":{\"temperature\":0.5,\"num_predict\":200}}"));
    llm_wire_clear (&wire);
    struct {
        const char *model;        //  model name
        llm_thinking_t thinking;  //  mode asked
        const char *expect;       //  "think" member, or NULL
    } cases[] = {
        {"gpt-oss:20b", LLM_THINKING_BALANCED, "\"think\":\"medium\""},
        {"qwen3:8b", LLM_THINKING_QUICK, "\"think\":false"},
        {"deepseek-r1:7b", LLM_THINKING_DEEP, "\"think\":true"},
        {"qwen3:8b", LLM_THINKING_BALANCED, NULL},
        {"qwen3-coder:30b", LLM_THINKING_DEEP, NULL},
        {"library/llama3.1", LLM_THINKING_QUICK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llm_request_set_model (request, cases[i].model);
        llm_request_set_thinking (request, cases[i].thinking);
        rc = llm_ollama_build (request, &wire, error, sizeof error);
        assert (rc == 0);
        assert (cases[i].expect ? strstr (wire.body, cases[i].expect) != NULL
                                : strstr (wire.body, "\"think\"") == NULL);
        llm_wire_clear (&wire);
    }
    llm_request_destroy (&request);

    //  Documented stream: content pieces, the done line with counts
    const char *stream =
        "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n"
        "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.4Z\","
        "\"message\":{\"role\":\"assistant\",\"content\":\" sky\",\"thinking\":\"x\"},"
        "\"done\":false}\n"
        "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
        "\"done_reason\":\"stop\",\"total_duration\":4883583458,\"load_duration\":"
        "1334875,"
        "\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,"
        "\"eval_duration\":4535599000}\n";
    char *log = llm_parser_run (LLM_PROVIDER_OLLAMA, NULL, stream, 1);
    assert (strcmp (log, "delta The\ndelta  sky\nusage 26 282\ndone stop\n") == 0);
    free (log);
    //  Tool calls with object arguments; a last line without newline still counts
    log = llm_parser_run (
        LLM_PROVIDER_OLLAMA, NULL,
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{"
        "\"function\":"
        "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},\"done\":false}"
        "\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
        "\"done_reason\":\"stop\"}",
        4);
    assert (strcmp (log, "tool_call 0 id=call_000000000000000000000000 name=get_weather "
                         "args={\"city\":\"Paris\"}\ndone tool_calls\n")
            == 0);
    free (log);
    //  Error line; cut before done; garbage
    log = llm_parser_run (
        LLM_PROVIDER_OLLAMA, NULL,
        "{\"message\":{\"content\":\"Hi\"},\"done\":false}\n"
        "{\"error\":\"an error was encountered while running the model\"}\n",
        0);
    assert (strcmp (log, "delta Hi\nerror upstream_error 0 -1 an error was encountered "
                         "while running the model\n")
            == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_OLLAMA, NULL,
                          "{\"message\":{\"content\":\"Hi\"},\"done\":false}\n", 0);
    assert (strstr (log, "delta Hi\nerror stream_broken"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_OLLAMA, NULL, "<html>\n", 0);
    assert (strstr (log, "error bad_response"));
    free (log);
    //  @end
    printf ("OK\n");
}
