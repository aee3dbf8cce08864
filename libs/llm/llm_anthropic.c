/*  llm_anthropic: request builder and stream parser of Anthropic Messages.     */
#include "llm_anthropic.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_OUTPUT 32000  //  max_tokens every thinking model accepts

//  Kinds of content blocks the parser tracks.
#define S_BLOCK_NONE 0
#define S_BLOCK_TEXT 't'
#define S_BLOCK_TOOL 'u'
#define S_BLOCK_TOOL_ARGS 'a'  //  a tool_use block that got arguments
#define S_BLOCK_THINKING 'k'
#define S_BLOCK_OTHER 'x'

//  ---------------------------------------------------------------------------
//  Builder

//  Claude model version as major * 10 + minor (claude-3-7-sonnet: 37,
//  claude-sonnet-4-5-20250929: 45, claude-opus-4-20250514: 40); 0 unknown.
static int
s_claude_version (const char *model)
{
    if (!llm_starts_with (model, "claude-"))
        return 0;
    int numbers[2] = {-1, -1}, found = 0;
    const char *p = model + 7;
    while (*p && found < 2) {
        size_t len = strcspn (p, "-");
        bool digits = len > 0 && len <= 2;
        for (size_t i = 0; digits && i < len; i++)
            digits = isdigit ((unsigned char) p[i]);
        if (digits)
            numbers[found++] = (int) strtol (p, NULL, 10);
        else if (found)
            break;  //  the version's numbers are adjacent
        p += len + (p[len] == '-');
    }
    if (numbers[0] < 0)
        return 0;
    return numbers[0] * 10 + (numbers[1] < 0 ? 0 : numbers[1]);
}

//  True when the last assistant turn is a tool call still being answered and
//  brought no thinking blocks back: thinking must then stay off.
static bool
s_in_plain_tool_loop (llm_request_t *request)
{
    for (size_t i = request->message_count; i-- > 0;) {
        llm_message_t *m = &request->messages[i];
        if (m->role == LLM_ROLE_USER)
            return false;
        if (m->role == LLM_ROLE_ASSISTANT)
            return m->call_count && !(m->replay && strstr (m->replay, "thinking"));
    }
    return false;
}

//  Append a block to the last message when it has this role, else start one.
static void
s_add_block (json_t *messages, const char *role, json_t *block)
{
    json_t *last = json_array_get (messages, json_array_size (messages) - 1);
    const char *last_role = json_string_value (json_object_get (last, "role"));
    if (!last_role || strcmp (last_role, role) != 0) {
        last = json_pack ("{s:s, s:[]}", "role", role, "content");
        json_array_append_new (messages, last);
    }
    json_array_append_new (json_object_get (last, "content"), block);
}

//  A text block.
static json_t *
s_text (const char *text)
{
    json_t *block = json_object ();
    llm_json_set_string (block, "type", "text");
    llm_json_set_string (block, "text", text);
    return block;
}

//  The conversation as Messages turns; system turns are joined to *system_p.
static json_t *
s_messages (llm_request_t *request, char **system_p)
{
    json_t *messages = json_array ();
    for (size_t i = 0; i < request->message_count; i++) {
        llm_message_t *m = &request->messages[i];
        if (m->role == LLM_ROLE_SYSTEM) {
            //  No system turns here: they join the system prompt
            char *joined = zsys_sprintf ("%s%s%s", *system_p, **system_p ? "\n\n" : "",
                                         m->content);
            assert (joined);
            zstr_free (system_p);
            *system_p = joined;
        }
        else if (m->role == LLM_ROLE_USER) {
            if (*m->content)
                s_add_block (messages, "user", s_text (m->content));
        }
        else if (m->role == LLM_ROLE_TOOL) {
            json_t *block = json_object ();
            llm_json_set_string (block, "type", "tool_result");
            llm_json_set_string (block, "tool_use_id", m->tool_call_id);
            llm_json_set_string (block, "content", m->content);
            s_add_block (messages, "user", block);
        }
        else {
            json_t *replay = m->replay ? json_loads (m->replay, 0, NULL) : NULL;
            json_t *block;
            size_t j;
            json_array_foreach (replay, j, block)
            {
                //  Only Claude's own thinking blocks (a replay another provider
                //  left, its agent since moved here, would be refused)
                const char *type = json_string_value (json_object_get (block, "type"));
                if (type
                    && (streq (type, "thinking") || streq (type, "redacted_thinking")))
                    s_add_block (messages, "assistant", json_incref (block));
            }
            json_decref (replay);
            if (*m->content)
                s_add_block (messages, "assistant", s_text (m->content));
            for (j = 0; j < m->call_count; j++) {
                json_t *input = llm_json_object (m->calls[j].arguments);
                block = json_object ();
                llm_json_set_string (block, "type", "tool_use");
                llm_json_set_string (block, "id", m->calls[j].id);
                llm_json_set_string (block, "name", m->calls[j].name);
                json_object_set_new (block, "input", input ? input : json_object ());
                s_add_block (messages, "assistant", block);
            }
        }
    }
    return messages;
}

int
llm_anthropic_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size)
{
    assert (request && wire);
    if (!*request->model) {
        snprintf (error, size, "anthropic: no model is set");
        return -1;
    }
    llm_wire_set_url (wire, request->base_url, "https://api.anthropic.com",
                      "/v1/messages");
    if (*request->api_key)
        llm_wire_add_header (wire, "x-api-key", request->api_key);
    llm_wire_add_header (wire, "anthropic-version", "2023-06-01");
    llm_wire_add_header (wire, "Accept", "text/event-stream");

    char *system = zsys_sprintf ("%s", request->system);
    assert (system);
    json_t *messages = s_messages (request, &system);
    int max_tokens = request->max_tokens ? request->max_tokens : LLM_DEFAULT_MAX_TOKENS;
    int version = s_claude_version (request->model);
    //  balanced is the model's own default, as on the other providers: Claude
    //  thinks only when asked (deep; quick is low effort where effort exists)
    bool thinking = request->thinking != LLM_THINKING_DEFAULT
                    && request->thinking != LLM_THINKING_BALANCED && version >= 37
                    && !s_in_plain_tool_loop (request);
    bool adaptive = thinking && version >= 46;
    int budget = 0;
    if (thinking && !adaptive) {
        budget = request->thinking == LLM_THINKING_DEEP ? 16384 : 0;
        int total = max_tokens + budget;
        if (total > S_MAX_OUTPUT) {
            total = S_MAX_OUTPUT;
            if (budget > total - 1024)
                budget = total - 1024;
        }
        if (budget < 1024)
            budget = 0;
        else
            max_tokens = total;
        thinking = budget > 0;
    }

    json_t *root = json_object ();
    llm_json_set_string (root, "model", request->model);
    json_object_set_new (root, "max_tokens", json_integer (max_tokens));
    if (*system)
        llm_json_set_string (root, "system", system);
    zstr_free (&system);
    json_object_set_new (root, "messages", messages);
    json_object_set_new (root, "stream", json_true ());
    if (request->tool_count) {
        json_t *tools = json_array ();
        for (size_t i = 0; i < request->tool_count; i++) {
            json_t *tool = json_object ();
            llm_json_set_string (tool, "name", request->tools[i].name);
            if (*request->tools[i].description)
                llm_json_set_string (tool, "description", request->tools[i].description);
            json_object_set_new (tool, "input_schema",
                                 llm_json_object (request->tools[i].parameters));
            json_array_append_new (tools, tool);
        }
        json_object_set_new (root, "tools", tools);
    }
    if (request->has_temperature && !thinking)
        //  Agents take OpenAI's 0..2; the Messages API refuses more than 1
        json_object_set_new (
            root, "temperature",
            json_real (request->temperature > 1.0 ? 1.0 : request->temperature));
    if (adaptive) {
        const char *effort[] = {"", "low", "medium", "high"};
        json_object_set_new (root, "thinking", json_pack ("{s:s}", "type", "adaptive"));
        json_object_set_new (root, "output_config",
                             json_pack ("{s:s}", "effort", effort[request->thinking]));
    }
    else if (thinking)
        json_object_set_new (
            root, "thinking",
            json_pack ("{s:s, s:i}", "type", "enabled", "budget_tokens", budget));
    llm_wire_set_body (wire, &root);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Parser

//  Map a stop_reason to ours.
static const char *
s_finish (const char *reason)
{
    if (!reason)
        return NULL;
    if (strcmp (reason, "max_tokens") == 0
        || strcmp (reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp (reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp (reason, "refusal") == 0)
        return "content_filter";
    return "stop";
}

//  Content block index of an event, or -1 (after a bad_response) when absent
//  or out of range.
static int
s_block (llm_parser_t *parser, json_t *root)
{
    json_t *index = json_object_get (root, "index");
    if (!json_is_integer (index) || json_integer_value (index) < 0
        || json_integer_value (index) >= LLM_MAX_BLOCKS) {
        llm_parser_bad (parser, "a content block index is missing or out of range");
        return -1;
    }
    if (!parser->blocks) {
        parser->blocks = calloc (1, sizeof *parser->blocks);
        assert (parser->blocks);
    }
    return (int) json_integer_value (index);
}

//  content_block_start: note the block's kind; text and tool_use start events,
//  thinking blocks start the replay.
static int
s_block_start (llm_parser_t *parser, json_t *root)
{
    int index = s_block (parser, root);
    if (index < 0)
        return -1;
    json_t *block = json_object_get (root, "content_block");
    const char *type = json_string_value (json_object_get (block, "type"));
    type = type ? type : "";
    parser->blocks->kind[index] = S_BLOCK_OTHER;
    if (strcmp (type, "text") == 0) {
        parser->blocks->kind[index] = S_BLOCK_TEXT;
        json_t *text = json_object_get (block, "text");
        if (json_is_string (text))
            return llm_parser_emit_delta (parser, json_string_value (text),
                                          json_string_length (text));
    }
    else if (strcmp (type, "tool_use") == 0) {
        if (parser->tools >= LLM_MAX_TOOL_CALLS)
            return llm_parser_bad (parser, "too many tool calls");
        parser->blocks->kind[index] = S_BLOCK_TOOL;
        parser->blocks->tool[index] = parser->tools++;
        const char *id = json_string_value (json_object_get (block, "id"));
        const char *name = json_string_value (json_object_get (block, "name"));
        return llm_parser_emit_tool (parser, parser->blocks->tool[index], id ? id : "",
                                     name ? name : "", "", 0);
    }
    else if (strcmp (type, "thinking") == 0 || strcmp (type, "redacted_thinking") == 0) {
        parser->blocks->kind[index] = S_BLOCK_THINKING;
        parser->blocks->tool[index] = (int) json_array_size (parser->replay);
        json_t *copy = json_deep_copy (block);
        if (strcmp (type, "thinking") == 0) {
            if (!json_is_string (json_object_get (copy, "thinking")))
                json_object_set_new (copy, "thinking", json_string (""));
            if (!json_is_string (json_object_get (copy, "signature")))
                json_object_set_new (copy, "signature", json_string (""));
        }
        return llm_parser_replay_append (parser, copy, 64);
    }
    return 0;
}

//  Append a piece to a string member of a replay block, bounded.
static int
s_replay_extend (llm_parser_t *parser, int index, const char *key, json_t *piece)
{
    json_t *block = json_array_get (parser->replay, (size_t) parser->blocks->tool[index]);
    json_t *held = json_object_get (block, key);
    if (!json_is_string (piece) || !json_is_string (held))
        return 0;
    size_t add = json_string_length (piece);
    if (parser->replay_bytes + add > parser->max_event * 4)
        return llm_parser_bad (parser, "the thinking is over the size limit");
    char *joined = zsys_sprintf ("%s%s", json_string_value (held),
                                 json_string_value (piece));
    assert (joined);
    json_object_set_new (block, key, json_string (joined));
    zstr_free (&joined);
    parser->replay_bytes += add;
    return 0;
}

//  content_block_delta: text, tool arguments, thinking or its signature.
static int
s_block_delta (llm_parser_t *parser, json_t *root)
{
    int index = s_block (parser, root);
    if (index < 0)
        return -1;
    json_t *delta = json_object_get (root, "delta");
    const char *type = json_string_value (json_object_get (delta, "type"));
    type = type ? type : "";
    char kind = parser->blocks->kind[index];
    if (strcmp (type, "text_delta") == 0 && kind == S_BLOCK_TEXT) {
        json_t *text = json_object_get (delta, "text");
        if (json_is_string (text))
            return llm_parser_emit_delta (parser, json_string_value (text),
                                          json_string_length (text));
    }
    else if (strcmp (type, "input_json_delta") == 0
             && (kind == S_BLOCK_TOOL || kind == S_BLOCK_TOOL_ARGS)) {
        json_t *partial = json_object_get (delta, "partial_json");
        if (json_is_string (partial) && json_string_length (partial)) {
            parser->blocks->kind[index] = S_BLOCK_TOOL_ARGS;
            return llm_parser_emit_tool (parser, parser->blocks->tool[index], NULL, NULL,
                                         json_string_value (partial),
                                         json_string_length (partial));
        }
    }
    else if (strcmp (type, "thinking_delta") == 0 && kind == S_BLOCK_THINKING)
        return s_replay_extend (parser, index, "thinking",
                                json_object_get (delta, "thinking"));
    else if (strcmp (type, "signature_delta") == 0 && kind == S_BLOCK_THINKING)
        return s_replay_extend (parser, index, "signature",
                                json_object_get (delta, "signature"));
    return 0;
}

int
llm_anthropic_on_event (llm_parser_t *parser, const http_sse_event_t *event)
{
    if (event->data_size == 0 || strcmp (event->type, "ping") == 0)
        return 0;
    json_t *root = llm_parser_json (parser, event->data, event->data_size);
    if (!root)
        return -1;
    const char *type = json_string_value (json_object_get (root, "type"));
    if (!type)
        type = event->type;
    int rc = 0;
    if (!json_is_object (root))
        rc = llm_parser_bad (parser, "an event is not a JSON object");
    else if (strcmp (type, "message_start") == 0) {
        json_t *usage = json_object_get (json_object_get (root, "message"), "usage");
        if (json_is_object (usage)) {
            const char *inputs[] = {"input_tokens", "cache_creation_input_tokens",
                                    "cache_read_input_tokens"};
            int64_t prompt = 0;
            for (size_t i = 0; i < 3; i++)
                prompt += json_integer_value (json_object_get (usage, inputs[i]));
            json_t *output = json_object_get (usage, "output_tokens");
            parser->usage = true;
            parser->prompt_tokens = prompt;
            parser->completion_tokens = json_is_integer (output)
                                            ? json_integer_value (output)
                                            : -1;
        }
    }
    else if (strcmp (type, "content_block_start") == 0)
        rc = s_block_start (parser, root);
    else if (strcmp (type, "content_block_delta") == 0)
        rc = s_block_delta (parser, root);
    else if (strcmp (type, "content_block_stop") == 0) {
        int index = s_block (parser, root);
        if (index < 0)
            rc = -1;
        else if (parser->blocks->kind[index] == S_BLOCK_TOOL) {
            parser->blocks->kind[index] = S_BLOCK_TOOL_ARGS;
            rc = llm_parser_emit_tool (parser, parser->blocks->tool[index], NULL, NULL,
                                       "{}", 2);
        }
    }
    else if (strcmp (type, "message_delta") == 0) {
        json_t *delta = json_object_get (root, "delta");
        llm_parser_set_finish (parser, s_finish (json_string_value (
                                           json_object_get (delta, "stop_reason"))));
        json_t *output = json_object_get (json_object_get (root, "usage"),
                                          "output_tokens");
        if (json_is_integer (output)) {
            parser->usage = true;
            parser->completion_tokens = json_integer_value (output);
        }
    }
    else if (strcmp (type, "message_stop") == 0)
        rc = llm_parser_emit_done (parser, NULL);
    else if (strcmp (type, "error") == 0) {
        char message[512];
        int64_t retry_after = -1;
        llm_error_t code = llm_error_from_json (root, 0, message, sizeof message,
                                                &retry_after);
        rc = llm_parser_emit_error (parser, code, message, 0, retry_after);
    }
    json_decref (root);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Selftest

void
llm_anthropic_test (bool verbose)
{
    printf (" * llm_anthropic: ");
    //  @selftest
    assert (s_claude_version ("claude-3-7-sonnet-20250219") == 37);
    assert (s_claude_version ("claude-sonnet-4-5-20250929") == 45);
    assert (s_claude_version ("claude-opus-4-20250514") == 40);
    assert (s_claude_version ("claude-opus-4-6") == 46);
    assert (s_claude_version ("claude-3-5-haiku-latest") == 35);
    assert (s_claude_version ("gpt-4o") == 0);

    llm_request_t *request = llm_request_new (LLM_PROVIDER_ANTHROPIC);
    llm_request_set_model (request, "claude-3-5-haiku-20241022");
    llm_request_set_api_key (request, "sk-ant-test");
    llm_request_set_system (request, "You are terse.");
    int rc = llm_request_add_message (request, "system", "Answer in French.");
    rc |= llm_request_add_message (request, "user", "Weather in Paris and Rome?");
    rc |= llm_request_add_message (request, "assistant", "Let me check.");
    rc |= llm_request_add_tool_call (request, "toolu_1", "get_weather",
                                     "{\"city\":\"Paris\"}");
    rc |= llm_request_add_tool_call (request, "toolu_2", "get_weather", "not json");
    rc |= llm_request_add_message (request, "tool", "21C");
    rc |= llm_request_set_tool_call_id (request, "toolu_1", NULL);
    rc |= llm_request_add_message (request, "tool", "25C");
    rc |= llm_request_set_tool_call_id (request, "toolu_2", NULL);
    rc |= llm_request_add_message (request, "user", "Thanks");
    rc |= llm_request_add_tool (request, "get_weather", "Current weather",
                                "{\"type\":\"object\",\"properties\":{}}");
    assert (rc == 0);
    llm_request_set_temperature (request, 0.5);
    llm_request_set_thinking (request, LLM_THINKING_DEEP);  //  3.5: no thinking
    llm_wire_t wire = {0};
    char error[128];
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "https://api.anthropic.com/v1/messages") == 0);
    assert (wire.header_count == 3);
    assert (strcmp (wire.headers[0].name, "x-api-key") == 0);
    assert (strcmp (wire.headers[1].value, "2023-06-01") == 0);
    assert (llm_json_same (
        wire.body,
        "{\"model\":\"claude-3-5-haiku-20241022\",\"max_tokens\":4096,"
        "\"system\":\"You are terse.\\n\\nAnswer in French.\",\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Weather in Paris and Rome?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"Let me check.\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
        "\"get_weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\","
        "\"id\":\"toolu_2\",\"name\":\"get_weather\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"toolu_1\",\"content\":\"21C\"},{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"toolu_2\",\"content\":\"25C\"},{\"type\":\"text\",\"text\":\"Thanks\"}]}],"
        "\"stream\":true,\"tools\":[{\"name\":\"get_weather\",\"description\":"
        "\"Current weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],"
        "\"temperature\":0.5}"));
    llm_wire_clear (&wire);

    //  Extended thinking on Claude 4.5: budget added to max_tokens, no temperature
    llm_request_set_model (request, "claude-sonnet-4-5-20250929");
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    json_t *body = json_loads (wire.body, 0, NULL);
    assert (json_integer_value (json_object_get (body, "max_tokens")) == 4096 + 16384);
    assert (json_integer_value (
                json_object_get (json_object_get (body, "thinking"), "budget_tokens"))
            == 16384);
    assert (!json_object_get (body, "temperature"));
    json_decref (body);
    llm_wire_clear (&wire);
    //  Quick: no thinking on a budget model; adaptive effort on 4.6
    llm_request_set_thinking (request, LLM_THINKING_QUICK);
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0 && !strstr (wire.body, "thinking")
            && strstr (wire.body, "temperature"));
    llm_wire_clear (&wire);
    llm_request_set_model (request, "claude-opus-4-6");
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strstr (wire.body, "\"thinking\":{\"type\":\"adaptive\"}"));
    assert (strstr (wire.body, "\"output_config\":{\"effort\":\"low\"}"));
    llm_wire_clear (&wire);
    llm_request_destroy (&request);

    //  balanced is the model's default: no thinking, the temperature kept (at
    //  most 1, the Messages API's limit)
    request = llm_request_new (LLM_PROVIDER_ANTHROPIC);
    llm_request_set_model (request, "claude-sonnet-4-20250514");
    llm_request_set_thinking (request, LLM_THINKING_BALANCED);
    llm_request_set_temperature (request, 1.6);
    rc = llm_request_add_message (request, "user", "Hi");
    assert (rc == 0);
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0 && !strstr (wire.body, "thinking"));
    assert (strstr (wire.body, "\"temperature\":1.0")
            || strstr (wire.body, "\"temperature\":1,")
            || strstr (wire.body, "\"temperature\":1}"));
    llm_wire_clear (&wire);
    llm_request_destroy (&request);

    //  Mid tool loop without thinking blocks: thinking stays off; with them it
    //  goes on and the blocks come first (another provider's replay is left out)
    request = llm_request_new (LLM_PROVIDER_ANTHROPIC);
    llm_request_set_model (request, "claude-sonnet-4-20250514");
    llm_request_set_thinking (request, LLM_THINKING_DEEP);
    rc = llm_request_add_message (request, "user", "Weather?");
    rc |= llm_request_add_message (request, "assistant", "");
    rc |= llm_request_add_tool_call (request, "toolu_1", "get_weather", "{}");
    rc |= llm_request_add_message (request, "tool", "21C");
    rc |= llm_request_set_tool_call_id (request, "toolu_1", "get_weather");
    assert (rc == 0);
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0 && !strstr (wire.body, "\"thinking\""));
    llm_wire_clear (&wire);
    request->messages[1].replay = strdup (
        "[{\"type\":\"thinking\",\"thinking\":\"Hmm.\",\"signature\":\"sig\"},"
        "{\"index\":0,\"signature\":\"gemini's\"}]");
    rc = llm_anthropic_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strstr (wire.body, "\"budget_tokens\":16384"));
    assert (!strstr (wire.body, "gemini's"));
    assert (strstr (wire.body,
                    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\","
                    "\"thinking\":\"Hmm.\",\"signature\":\"sig\"},{\"type\":"
                    "\"tool_use\""));
    llm_wire_clear (&wire);
    llm_request_destroy (&request);

    //  The documented stream: ping, text, tool_use with input_json_delta, usage
    const char *stream =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":"
        "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"
        "\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
        "{\"input_tokens\":472,\"output_tokens\":2}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"Okay, let me check.\"}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    char *log = llm_parser_run (LLM_PROVIDER_ANTHROPIC, NULL, stream, 7);
    assert (strcmp (log, "delta Okay, let me check.\n"
                         "tool_call 0 id=toolu_01 name=get_weather args=\n"
                         "tool_call 0 id=- name=- args={\"location\":\n"
                         "tool_call 0 id=- name=- args= \"Paris\"}\n"
                         "usage 472 89\ndone tool_calls\n")
            == 0);
    free (log);
    //  Thinking blocks come back as replay; a tool without arguments gets {}
    const char *thinking =
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"thinking\",\"thinking\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"thinking_delta\",\"thinking\":\"Let me \"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"thinking_delta\",\"thinking\":\"think.\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"signature_delta\",\"signature\":\"EqQB\"}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"toolu_02\",\"name\":\"now\",\"input\":{}}}\n\n"
        "event: content_block_stop\ndata: "
        "{\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    log = llm_parser_run (LLM_PROVIDER_ANTHROPIC, NULL, thinking, 1);
    assert (strcmp (log, "tool_call 0 id=toolu_02 name=now args=\n"
                         "tool_call 0 id=- name=- args={}\n"
                         "done tool_calls replay=[{\"type\":\"thinking\",\"thinking\":"
                         "\"Let me think.\",\"signature\":\"EqQB\"}]\n")
            == 0);
    free (log);
    //  event: error mid-stream; cut before message_stop
    log = llm_parser_run (
        LLM_PROVIDER_ANTHROPIC, NULL,
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n"
        "event: error\ndata: "
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}\n\n",
        0);
    assert (strcmp (log, "delta Hi\nerror upstream_error 0 -1 Overloaded\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_ANTHROPIC, NULL,
                          "event: content_block_start\ndata: {\"type\":"
                          "\"content_block_start\",\"index\":0,\"content_block\":"
                          "{\"type\":\"text\",\"text\":\"Hi\"}}\n\n",
                          0);
    assert (strstr (log, "delta Hi\nerror stream_broken"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_ANTHROPIC, NULL,
                          "event: content_block_delta\ndata: {\"type\":"
                          "\"content_block_delta\",\"index\":9999}\n\n",
                          0);
    assert (strstr (log, "error bad_response"));
    free (log);
    //  @end
    printf ("OK\n");
}
