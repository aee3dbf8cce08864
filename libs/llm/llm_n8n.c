/*  llm_n8n: request builder and reply parser of an n8n webhook brain.          */
#include "llm_n8n.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Builder

int
llm_n8n_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size)
{
    assert (request && wire);
    if (!llm_starts_with (request->base_url, "http://")
        && !llm_starts_with (request->base_url, "https://")) {
        snprintf (error, size, "n8n: the webhook URL is missing or not http(s)");
        return -1;
    }
    llm_wire_set_url (wire, request->base_url, "", "%s", "");
    if (*request->api_key) {
        char *bearer = zsys_sprintf ("Bearer %s", request->api_key);
        assert (bearer);
        llm_wire_add_header (wire, "Authorization", bearer);
        zstr_free (&bearer);
    }
    llm_wire_add_header (wire, "Accept",
                         "application/json, application/x-ndjson, text/event-stream, "
                         "text/plain");
    const char *input = "";
    json_t *messages = json_array ();
    for (size_t i = 0; i < request->message_count; i++) {
        llm_message_t *m = &request->messages[i];
        json_t *message = json_object ();
        llm_json_set_string (message, "role", llm_role_name (m->role));
        llm_json_set_string (message, "content", m->content);
        if (m->role == LLM_ROLE_USER)
            input = m->content;
        if (m->call_count) {
            json_t *calls = json_array ();
            for (size_t j = 0; j < m->call_count; j++) {
                json_t *call = json_object ();
                llm_json_set_string (call, "id", m->calls[j].id);
                llm_json_set_string (call, "name", m->calls[j].name);
                llm_json_set_string (call, "arguments", m->calls[j].arguments);
                json_array_append_new (calls, call);
            }
            json_object_set_new (message, "tool_calls", calls);
        }
        if (m->role == LLM_ROLE_TOOL)
            llm_json_set_string (message, "tool_call_id", m->tool_call_id);
        json_array_append_new (messages, message);
    }
    json_t *root = json_object ();
    llm_json_set_string (root, "action", "sendMessage");
    llm_json_set_string (root, "sessionId", request->session_id);
    llm_json_set_string (root, "chatInput", input);
    llm_json_set_string (root, "system_prompt", request->system);
    json_object_set_new (root, "messages", messages);
    if (*request->model)
        llm_json_set_string (root, "model", request->model);
    if (request->thinking != LLM_THINKING_DEFAULT)
        llm_json_set_string (root, "thinking", llm_thinking_name (request->thinking));
    if (request->tool_count) {
        json_t *tools = json_array ();
        for (size_t i = 0; i < request->tool_count; i++) {
            json_t *tool = json_object ();
            llm_json_set_string (tool, "name", request->tools[i].name);
            llm_json_set_string (tool, "description", request->tools[i].description);
            json_object_set_new (tool, "parameters",
                                 llm_json_object (request->tools[i].parameters));
            json_array_append_new (tools, tool);
        }
        json_object_set_new (root, "tools", tools);
    }
    if (request->extra)
        json_object_set_new (root, "config", llm_json_object (request->extra));
    llm_wire_set_body (wire, &root);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Parser

//  An n8n typed object ({type: begin|item|end|error, content?, metadata}).
static int
s_typed (llm_parser_t *parser, json_t *root)
{
    const char *type = json_string_value (json_object_get (root, "type"));
    parser->n8n_typed = true;
    if (strcmp (type, "begin") == 0)
        parser->n8n_open++;
    else if (strcmp (type, "item") == 0) {
        json_t *content = json_object_get (root, "content");
        if (json_is_string (content))
            return llm_parser_emit_delta (parser, json_string_value (content),
                                          json_string_length (content));
    }
    else if (strcmp (type, "end") == 0) {
        parser->terminal = true;
        if (parser->n8n_open > 0)
            parser->n8n_open--;
    }
    else if (strcmp (type, "error") == 0) {
        char message[512];
        llm_error_from_json (root, 0, message, sizeof message, NULL);
        return llm_parser_emit_error (parser, LLM_ERROR_UPSTREAM,
                                      *message ? message : "the workflow failed", 0, -1);
    }
    return 0;  //  keepalive and types yet unknown
}

//  True for a JSON object with a type (in an n8n stream: unknown ones ignored).
static bool
s_is_typed (json_t *root)
{
    return json_is_string (json_object_get (root, "type"));
}

//  True for one of n8n's own stream objects (begin, item, end, error): what tells
//  a stream from a one-object answer that happens to have a "type", such as
//  {"type":"message","output":"..."}.
static bool
s_is_n8n (json_t *root)
{
    const char *type = json_string_value (json_object_get (root, "type"));
    return type
           && (streq (type, "begin") || streq (type, "item") || streq (type, "end")
               || streq (type, "error"));
}

int
llm_n8n_on_line (llm_parser_t *parser, const char *line, size_t size)
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
    if (!json_is_object (root))
        rc = llm_parser_bad (parser, "a line is not a JSON object");
    else if (s_is_typed (root))
        rc = s_typed (parser, root);
    json_decref (root);
    return rc;
}

int
llm_n8n_on_event (llm_parser_t *parser, const http_sse_event_t *event)
{
    if (event->data_size == 0)
        return 0;
    if (event->data_size == 6 && memcmp (event->data, "[DONE]", 6) == 0) {
        parser->terminal = true;
        return 0;
    }
    json_t *root = json_loadb (event->data, event->data_size, JSON_DECODE_ANY, NULL);
    int rc = 0;
    if (json_is_object (root) && s_is_n8n (root))
        rc = s_typed (parser, root);
    else if (json_is_object (root)) {
        const char *keys[] = {"delta", "content", "text", "output"};
        for (size_t i = 0; i < 4; i++) {
            json_t *text = json_object_get (root, keys[i]);
            if (json_is_string (text)) {
                rc = llm_parser_emit_delta (parser, json_string_value (text),
                                            json_string_length (text));
                break;
            }
        }
    }
    else if (json_is_string (root))
        rc = llm_parser_emit_delta (parser, json_string_value (root),
                                    json_string_length (root));
    else
        rc = llm_parser_emit_delta (parser, event->data, event->data_size);
    json_decref (root);
    return rc;
}

//  http_lines callback: one NDJSON line.
static int
s_on_line (const char *line, size_t size, void *arg)
{
    llm_parser_t *parser = (llm_parser_t *) arg;
    return parser->ended ? -1 : llm_n8n_on_line (parser, line, size);
}

//  http_sse_parser callback: one SSE event.
static int
s_on_event (const http_sse_event_t *event, void *arg)
{
    llm_parser_t *parser = (llm_parser_t *) arg;
    return parser->ended ? -1 : llm_n8n_on_event (parser, event);
}

//  Feed NDJSON lines; -1 when the stream ended.
static int
s_feed_lines (llm_parser_t *parser, const void *data, size_t size)
{
    if (http_lines_feed (parser->lines, data, size, s_on_line, parser) && !parser->ended
        && http_lines_overflow (parser->lines))
        llm_parser_bad (parser, "a line is over the size limit");
    return parser->ended ? -1 : 0;
}

//  While undecided: does the buffered body start with an n8n typed line?
//  Decides at the first complete non-blank line (or at the end, with whole).
static void
s_decide (llm_parser_t *parser, bool whole)
{
    size_t start = 0;
    while (start < parser->body_size) {
        char *end = memchr (parser->body + start, '\n', parser->body_size - start);
        if (!end && !whole)
            return;
        size_t len = end ? (size_t) (end - parser->body) - start
                         : parser->body_size - start;
        size_t blank = 0;
        while (blank < len && strchr (" \t\r", parser->body[start + blank]))
            blank++;
        if (blank == len) {
            start += len + 1;
            continue;
        }
        json_t *root = json_loadb (parser->body + start, len, 0, NULL);
        bool typed = json_is_object (root) && s_is_n8n (root);
        const char *type = json_string_value (json_object_get (root, "type"));
        bool keepalive = end && type && streq (type, "keepalive");
        json_decref (root);
        if (keepalive) {  //  a keepalive before begin: the next line decides
            start += len + 1;
            continue;
        }
        parser->n8n_mode = typed ? LLM_N8N_NDJSON : LLM_N8N_BODY;
        return;
    }
    if (whole)
        parser->n8n_mode = LLM_N8N_BODY;
}

//  Buffer body bytes; -1 (after bad_response) past the limit.
static int
s_buffer (llm_parser_t *parser, const char *data, size_t size)
{
    if (parser->body_size + size > parser->max_event * 4)
        return llm_parser_bad (parser, "the body is over the size limit");
    char *grown = realloc (parser->body, parser->body_size + size + 1);
    assert (grown);
    parser->body = grown;
    memcpy (parser->body + parser->body_size, data, size);
    parser->body_size += size;
    parser->body[parser->body_size] = 0;
    return 0;
}

//  Leave the undecided state for NDJSON: replay the buffered body as lines.
static int
s_to_lines (llm_parser_t *parser)
{
    char *body = parser->body;
    size_t size = parser->body_size;
    parser->body = NULL;
    parser->body_size = 0;
    int rc = s_feed_lines (parser, body, size);
    free (body);
    return rc;
}

int
llm_n8n_feed (llm_parser_t *parser, const void *data, size_t size)
{
    const char *bytes = (const char *) data;
    if (parser->n8n_mode == LLM_N8N_UNKNOWN) {
        if (strcmp (parser->content_type, "text/event-stream") == 0)
            parser->n8n_mode = LLM_N8N_SSE;
        else if (strcmp (parser->content_type, "application/x-ndjson") == 0)
            parser->n8n_mode = LLM_N8N_NDJSON;
    }
    if (parser->n8n_mode == LLM_N8N_SSE) {
        if (http_sse_parser_feed (parser->sse, data, size, s_on_event, parser)
            && !parser->ended && http_sse_parser_overflow (parser->sse))
            llm_parser_bad (parser, "an event is over the size limit");
        return parser->ended ? -1 : 0;
    }
    if (parser->n8n_mode == LLM_N8N_NDJSON)
        return s_feed_lines (parser, data, size);
    if (parser->n8n_mode == LLM_N8N_BODY)
        return s_buffer (parser, bytes, size);
    //  Undecided: buffer line by line until the first non-blank line decides
    while (size && parser->n8n_mode == LLM_N8N_UNKNOWN) {
        const char *newline = memchr (bytes, '\n', size);
        size_t take = newline ? (size_t) (newline - bytes) + 1 : size;
        if (s_buffer (parser, bytes, take))
            return -1;
        bytes += take;
        size -= take;
        if (newline)
            s_decide (parser, false);
    }
    if (parser->n8n_mode == LLM_N8N_NDJSON && s_to_lines (parser))
        return -1;
    return size ? llm_n8n_feed (parser, bytes, size) : 0;
}

//  The answer's text in a one-body JSON reply, or NULL.
static const char *
s_answer (json_t *root, int depth)
{
    if (json_is_string (root))
        return json_string_value (root);
    if (json_is_array (root) && depth < 3)
        return s_answer (json_array_get (root, 0), depth + 1);
    const char *keys[] = {"output", "text",    "response", "answer",
                          "reply",  "message", "content",  "result"};
    for (size_t i = 0; json_is_object (root) && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *value = json_object_get (root, keys[i]);
        const char *text = depth < 3 && (json_is_string (value) || json_is_object (value))
                               ? s_answer (value, depth + 1)
                               : NULL;
        if (text)
            return text;
    }
    return NULL;
}

//  A reply that was one body: JSON with the answer somewhere, or plain text.
static void
s_finish_body (llm_parser_t *parser)
{
    size_t blank = 0;
    while (blank < parser->body_size && strchr (" \t\r\n", parser->body[blank]))
        blank++;
    if (blank == parser->body_size) {
        llm_parser_bad (parser, "the webhook answered with an empty body");
        return;
    }
    json_t *root = json_loadb (parser->body, parser->body_size, JSON_DECODE_ANY, NULL);
    if (!root) {
        if (strcmp (parser->content_type, "application/json") == 0)
            llm_parser_bad (parser, "the body is not JSON");
        else if (llm_parser_emit_delta (parser, parser->body, parser->body_size) == 0)
            llm_parser_emit_done (parser, "stop");
        return;
    }
    const char *text = s_answer (root, 0);
    json_t *error = json_object_get (root, "error");
    if (!text && error && !json_is_null (error)) {
        char message[512];
        llm_error_t code = llm_error_from_json (root, 0, message, sizeof message, NULL);
        llm_parser_emit_error (parser, code, message, 0, -1);
    }
    else if (!text)
        llm_parser_bad (parser, "no answer in the webhook's reply");
    else if (llm_parser_emit_delta (parser, text, strlen (text)) == 0)
        llm_parser_emit_done (parser, "stop");
    json_decref (root);
}

void
llm_n8n_finish (llm_parser_t *parser)
{
    if (parser->n8n_mode == LLM_N8N_UNKNOWN) {
        s_decide (parser, true);
        if (parser->n8n_mode == LLM_N8N_NDJSON && s_to_lines (parser))
            return;
    }
    if (parser->n8n_mode == LLM_N8N_BODY) {
        s_finish_body (parser);
        return;
    }
    if (parser->n8n_mode == LLM_N8N_NDJSON) {
        int rc = http_lines_finish (parser->lines, s_on_line, parser);
        (void) rc;
        if (parser->ended)
            return;
    }
    bool typed = parser->n8n_typed || parser->n8n_mode == LLM_N8N_NDJSON;
    if (!typed || (parser->terminal && parser->n8n_open == 0))
        llm_parser_emit_done (parser, "stop");
}

//  ---------------------------------------------------------------------------
//  Selftest

void
llm_n8n_test (bool verbose)
{
    printf (" * llm_n8n: ");
    //  @selftest
    llm_request_t *request = llm_request_new (LLM_PROVIDER_N8N);
    llm_wire_t wire = {0};
    char error[128];
    assert (llm_n8n_build (request, &wire, error, sizeof error) == -1);
    llm_request_set_base_url (request, "https://n8n.example.com/webhook/abc");
    llm_request_set_api_key (request, "secret");
    llm_request_set_system (request, "You are terse.");
    llm_request_set_session_id (request, "conv-1");
    llm_request_set_thinking (request, LLM_THINKING_DEEP);
    int rc = llm_request_add_message (request, "user", "Hello");
    rc |= llm_request_add_message (request, "assistant", "Hi! How can I help?");
    rc |= llm_request_add_message (request, "user", "Open hours?");
    rc |= llm_request_set_extra (request, "{\"workflow\":\"support\",\"lang\":\"en\"}");
    assert (rc == 0);
    rc = llm_n8n_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "https://n8n.example.com/webhook/abc") == 0);
    assert (strcmp (wire.headers[0].value, "Bearer secret") == 0);
    assert (llm_json_same (
        wire.body, "{\"action\":\"sendMessage\",\"sessionId\":\"conv-1\",\"chatInput\":"
                   "\"Open hours?\",\"system_prompt\":\"You are terse.\",\"messages\":["
                   "{\"role\":\"user\",\"content\":\"Hello\"},{\"role\":\"assistant\","
                   "\"content\":\"Hi! How can I help?\"},{\"role\":\"user\",\"content\":"
                   "\"Open hours?\"}],\"thinking\":\"deep\",\"config\":{\"workflow\":"
                   "\"support\",\"lang\":\"en\"}}"));
    llm_wire_clear (&wire);
    llm_request_destroy (&request);

    //  Streaming NDJSON as n8n sends it (application/json), with a keepalive
    const char *stream =
        "{\"type\":\"begin\",\"metadata\":{\"nodeId\":\"n1\",\"nodeName\":\"AI Agent\","
        "\"timestamp\":1,\"runIndex\":0,\"itemIndex\":0}}\n"
        "{\"type\":\"item\",\"content\":\"We open \",\"metadata\":{\"nodeId\":\"n1\"}}\n"
        "{\"type\":\"keepalive\"}\n"
        "{\"type\":\"item\",\"content\":\"at 9.\",\"metadata\":{\"nodeId\":\"n1\"}}\n"
        "{\"type\":\"end\",\"metadata\":{\"nodeId\":\"n1\"}}\n";
    for (size_t step = 0; step < 3; step++) {
        char *log = llm_parser_run (LLM_PROVIDER_N8N, "application/json", stream, step);
        assert (strcmp (log, "delta We open \ndelta at 9.\ndone stop\n") == 0);
        free (log);
    }
    //  Cut before end; an error item
    char *log = llm_parser_run (LLM_PROVIDER_N8N, "application/json",
                                "{\"type\":\"begin\"}\n{\"type\":\"item\",\"content\":"
                                "\"We\"}\n",
                                2);
    assert (strstr (log, "delta We\nerror stream_broken"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, NULL,
                          "{\"type\":\"keepalive\"}\n{\"type\":\"begin\"}\n{\"type\":"
                          "\"item\",\"content\":\"Hi\"}\n{\"type\":\"end\"}\n",
                          0);
    assert (strcmp (log, "delta Hi\ndone stop\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, NULL,
                          "{\"type\":\"begin\"}\n{\"type\":\"error\",\"content\":"
                          "\"Node failed\"}\n",
                          0);
    assert (strcmp (log, "error upstream_error 0 -1 Node failed\n") == 0);
    free (log);
    //  One JSON body, in the usual shapes; plain text; SSE
    const char *bodies[] = {
        "{\"output\":\"We open at 9.\"}",
        "[{\"output\":\"We open at 9.\"}]",
        "{\n  \"text\": \"We open at 9.\"\n}\n",
        "{\"response\":{\"text\":\"We open at 9.\"}}",
        "\"We open at 9.\"",
        "{\"type\":\"message\",\"output\":\"We open at 9.\"}"};  //  a type, not n8n's
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        log = llm_parser_run (LLM_PROVIDER_N8N, "application/json", bodies[i], 1);
        assert (strcmp (log, "delta We open at 9.\ndone stop\n") == 0);
        free (log);
    }
    log = llm_parser_run (LLM_PROVIDER_N8N, "text/plain", "We open at 9.", 3);
    assert (strcmp (log, "delta We open at 9.\ndone stop\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, "text/event-stream",
                          "data: {\"delta\":\"We open \"}\n\ndata: at 9.\n\n", 0);
    assert (strcmp (log, "delta We open \ndelta at 9.\ndone stop\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, "application/json", "{\"ok\":true}", 0);
    assert (strstr (log, "error bad_response"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, "application/json", "", 0);
    assert (strstr (log, "error bad_response"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_N8N, "application/json", "{\"output\":", 0);
    assert (strstr (log, "error bad_response"));
    free (log);
    //  @end
    printf ("OK\n");
}
