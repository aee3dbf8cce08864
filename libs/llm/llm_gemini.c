/*  llm_gemini: request builder and stream parser of Gemini streamGenerateContent. */
#include "llm_gemini.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Builder

//  Model name without a "models/" prefix.
static const char *
s_model (llm_request_t *request)
{
    const char *model = request->model;
    return llm_starts_with (model, "models/") ? model + 7 : model;
}

//  Percent-encode a path segment into a new string.
static char *
s_escape (const char *text)
{
    size_t size = strlen (text) * 3 + 1;
    char *out = malloc (size);
    assert (out);
    size_t used = 0;
    for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
        if (isalnum (*c) || strchr ("-._~", *c))
            out[used++] = (char) *c;
        else
            used += (size_t) snprintf (out + used, size - used, "%%%02X", *c);
    }
    out[used] = 0;
    return out;
}

//  Append a part to the last content when it has this role, else start one.
static void
s_add_part (json_t *contents, const char *role, json_t *part)
{
    json_t *last = json_array_get (contents, json_array_size (contents) - 1);
    const char *last_role = json_string_value (json_object_get (last, "role"));
    if (!last_role || strcmp (last_role, role) != 0) {
        last = json_pack ("{s:s, s:[]}", "role", role, "parts");
        json_array_append_new (contents, last);
    }
    json_array_append_new (json_object_get (last, "parts"), part);
}

//  A text part.
static json_t *
s_text (const char *text)
{
    json_t *part = json_object ();
    llm_json_set_string (part, "text", text);
    return part;
}

//  What the replay holds under key ("signature", "id") for a tool call index
//  (-1: the text), or NULL.
static const char *
s_replayed (json_t *replay, int index, const char *key)
{
    json_t *entry;
    size_t i;
    json_array_foreach (replay, i, entry)
    {
        json_t *at = json_object_get (entry, "index");
        if (json_is_integer (at) && json_integer_value (at) == index)
            return json_string_value (json_object_get (entry, key));
    }
    return NULL;
}

static const char *
s_signature (json_t *replay, int index)
{
    return s_replayed (replay, index, "signature");
}

//  The id Gemini gave the call a tool message answers (the history's assistant
//  turn recorded it), or NULL when the call has none of Gemini's (our own id, or
//  a call another model made).
static const char *
s_response_id (llm_request_t *request, size_t message_index)
{
    const char *id = request->messages[message_index].tool_call_id;
    for (size_t i = message_index; id && *id && i-- > 0;) {
        llm_message_t *earlier = &request->messages[i];
        for (size_t j = 0; j < earlier->call_count; j++) {
            if (strcmp (earlier->calls[j].id, id) != 0)
                continue;
            json_t *replay = earlier->replay ? json_loads (earlier->replay, 0, NULL)
                                             : NULL;
            const char *given = s_replayed (replay, (int) j, "id");
            bool gemini = given && strcmp (given, id) == 0;
            json_decref (replay);
            return gemini ? earlier->calls[j].id : NULL;
        }
    }
    return NULL;
}

//  The conversation as Gemini contents; system turns are joined to *system_p.
static json_t *
s_contents (llm_request_t *request, char **system_p)
{
    json_t *contents = json_array ();
    for (size_t i = 0; i < request->message_count; i++) {
        llm_message_t *m = &request->messages[i];
        if (m->role == LLM_ROLE_SYSTEM) {
            char *joined = zsys_sprintf ("%s%s%s", *system_p, **system_p ? "\n\n" : "",
                                         m->content);
            assert (joined);
            zstr_free (system_p);
            *system_p = joined;
        }
        else if (m->role == LLM_ROLE_USER) {
            if (*m->content)
                s_add_part (contents, "user", s_text (m->content));
        }
        else if (m->role == LLM_ROLE_TOOL) {
            json_t *response = llm_json_object (m->content);
            if (!response) {
                response = json_object ();
                llm_json_set_string (response, "result", m->content);
            }
            json_t *call = json_object ();
            const char *id = s_response_id (request, i);
            if (id)
                llm_json_set_string (call, "id", id);
            llm_json_set_string (call, "name", llm_request_tool_name (request, i));
            json_object_set_new (call, "response", response);
            s_add_part (contents, "user", json_pack ("{s:o}", "functionResponse", call));
        }
        else {
            json_t *replay = m->replay ? json_loads (m->replay, 0, NULL) : NULL;
            if (*m->content) {
                json_t *part = s_text (m->content);
                const char *signature = s_signature (replay, -1);
                if (signature)
                    llm_json_set_string (part, "thoughtSignature", signature);
                s_add_part (contents, "model", part);
            }
            for (size_t j = 0; j < m->call_count; j++) {
                json_t *args = llm_json_object (m->calls[j].arguments);
                json_t *call = json_object ();
                const char *id = s_replayed (replay, (int) j, "id");
                if (id && strcmp (id, m->calls[j].id) == 0)
                    llm_json_set_string (call, "id", id);  //  Gemini's own id
                llm_json_set_string (call, "name", m->calls[j].name);
                json_object_set_new (call, "args", args ? args : json_object ());
                json_t *part = json_pack ("{s:o}", "functionCall", call);
                const char *signature = s_signature (replay, (int) j);
                //  Gemini 3 refuses a step's first call without its signature; one
                //  we do not have (history from another model, an OpenAI-style
                //  client) gets Google's documented stand-in
                if (!signature && j == 0
                    && llm_starts_with (s_model (request), "gemini-3"))
                    signature = "skip_thought_signature_validator";
                if (signature)
                    llm_json_set_string (part, "thoughtSignature", signature);
                s_add_part (contents, "model", part);
            }
            json_decref (replay);
        }
    }
    return contents;
}

//  The thinkingConfig for the model and mode, or NULL for none.
static json_t *
s_thinking (const char *model, llm_thinking_t thinking)
{
    if (thinking == LLM_THINKING_DEFAULT)
        return NULL;
    if (llm_starts_with (model, "gemini-3")) {
        bool flash = strstr (model, "flash") != NULL;
        const char *level = thinking == LLM_THINKING_QUICK  ? "low"
                            : thinking == LLM_THINKING_DEEP ? "high"
                            : flash                         ? "medium"
                                                            : NULL;
        return level ? json_pack ("{s:s}", "thinkingLevel", level) : NULL;
    }
    if (!llm_starts_with (model, "gemini-2.5") || thinking == LLM_THINKING_BALANCED)
        return NULL;
    bool pro = strstr (model, "-pro") != NULL;
    int budget = thinking == LLM_THINKING_QUICK ? (pro ? 128 : 0) : (pro ? 32768 : 24576);
    return json_pack ("{s:i}", "thinkingBudget", budget);
}

int
llm_gemini_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size)
{
    assert (request && wire);
    const char *model = s_model (request);
    if (!*model) {
        snprintf (error, size, "gemini: no model is set");
        return -1;
    }
    char *escaped = s_escape (model);
    llm_wire_set_url (wire, request->base_url,
                      "https://generativelanguage.googleapis.com",
                      "/v1beta/models/%s:streamGenerateContent?alt=sse", escaped);
    free (escaped);
    if (*request->api_key)
        llm_wire_add_header (wire, "x-goog-api-key", request->api_key);
    llm_wire_add_header (wire, "Accept", "text/event-stream");

    char *system = zsys_sprintf ("%s", request->system);
    assert (system);
    json_t *root = json_object ();
    json_object_set_new (root, "contents", s_contents (request, &system));
    if (*system) {
        json_t *instruction = json_pack ("{s:[]}", "parts");
        json_array_append_new (json_object_get (instruction, "parts"), s_text (system));
        json_object_set_new (root, "systemInstruction", instruction);
    }
    zstr_free (&system);
    if (request->tool_count) {
        json_t *declarations = json_array ();
        for (size_t i = 0; i < request->tool_count; i++) {
            json_t *declaration = json_object ();
            llm_json_set_string (declaration, "name", request->tools[i].name);
            llm_json_set_string (declaration, "description",
                                 request->tools[i].description);
            json_object_set_new (declaration, "parametersJsonSchema",
                                 llm_json_object (request->tools[i].parameters));
            json_array_append_new (declarations, declaration);
        }
        json_object_set_new (root, "tools",
                             json_pack ("[{s:o}]", "functionDeclarations", declarations));
    }
    json_t *config = json_object ();
    if (request->has_temperature)
        json_object_set_new (config, "temperature", json_real (request->temperature));
    json_t *thinking = s_thinking (model, request->thinking);
    //  maxOutputTokens counts the thoughts too: a thinking budget comes on top of
    //  the answer's, as for Claude
    json_int_t budget = json_integer_value (json_object_get (thinking, "thinkingBudget"));
    if (request->max_tokens)
        json_object_set_new (
            config, "maxOutputTokens",
            json_integer (request->max_tokens + (budget > 0 ? budget : 0)));
    if (thinking)
        json_object_set_new (config, "thinkingConfig", thinking);
    if (json_object_size (config))
        json_object_set_new (root, "generationConfig", config);
    else
        json_decref (config);
    llm_wire_set_body (wire, &root);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Parser

//  Map a finishReason to ours.
static const char *
s_finish (const char *reason)
{
    if (!reason || strcmp (reason, "FINISH_REASON_UNSPECIFIED") == 0)
        return NULL;
    if (strcmp (reason, "STOP") == 0)
        return "stop";
    if (strcmp (reason, "MAX_TOKENS") == 0)
        return "length";
    const char *filtered[] = {"SAFETY",
                              "RECITATION",
                              "BLOCKLIST",
                              "PROHIBITED_CONTENT",
                              "SPII",
                              "IMAGE_SAFETY",
                              "IMAGE_PROHIBITED_CONTENT"};
    for (size_t i = 0; i < sizeof filtered / sizeof filtered[0]; i++)
        if (strcmp (reason, filtered[i]) == 0)
            return "content_filter";
    return "error";
}

//  One part of the candidate's content.
static int
s_part (llm_parser_t *parser, json_t *part)
{
    json_t *signature = json_object_get (part, "thoughtSignature");
    json_t *call = json_object_get (part, "functionCall");
    if (json_is_object (call)) {
        if (parser->tools >= LLM_MAX_TOOL_CALLS)
            return llm_parser_bad (parser, "too many tool calls");
        int index = parser->tools++;
        const char *name = json_string_value (json_object_get (call, "name"));
        const char *id = json_string_value (json_object_get (call, "id"));
        char made[40];
        if (!id || !*id) {
            llm_parser_call_id (parser, index, made, sizeof made);
            id = made;
        }
        json_t *args = json_object_get (call, "args");
        char *text = json_is_object (args) ? json_dumps (args, JSON_COMPACT) : NULL;
        int rc = llm_parser_emit_tool (parser, index, id, name ? name : "",
                                       text ? text : "{}", text ? strlen (text) : 2);
        free (text);
        //  The replay keeps the call's signature and Gemini's id, echoed back
        //  with the call and its functionResponse in the next request
        bool given = id != made;
        if (rc == 0 && (json_is_string (signature) || given)) {
            json_t *entry = json_pack ("{s:i}", "index", index);
            if (json_is_string (signature))
                json_object_set (entry, "signature", signature);
            if (given)
                llm_json_set_string (entry, "id", id);
            rc = llm_parser_replay_append (
                parser, entry,
                (json_is_string (signature) ? json_string_length (signature) : 0)
                    + (given ? strlen (id) : 0));
        }
        return rc;
    }
    json_t *text = json_object_get (part, "text");
    if (!json_is_string (text) || json_is_true (json_object_get (part, "thought")))
        return 0;
    if (json_is_string (signature) && !parser->text_signed) {
        parser->text_signed = true;  //  the first text signature is the one kept
        if (llm_parser_replay_append (
                parser, json_pack ("{s:i, s:O}", "index", -1, "signature", signature),
                json_string_length (signature)))
            return -1;
    }
    return llm_parser_emit_delta (parser, json_string_value (text),
                                  json_string_length (text));
}

int
llm_gemini_on_event (llm_parser_t *parser, const http_sse_event_t *event)
{
    if (event->data_size == 0)
        return 0;
    json_t *root = llm_parser_json (parser, event->data, event->data_size);
    if (!root)
        return -1;
    int rc = 0;
    json_t *error = json_object_get (root, "error");
    if (!json_is_object (root))
        rc = llm_parser_bad (parser, "an event is not a JSON object");
    else if (error && !json_is_null (error)) {
        char message[512];
        int64_t retry_after = -1;
        llm_error_t code = llm_error_from_json (root, 0, message, sizeof message,
                                                &retry_after);
        rc = llm_parser_emit_error (parser, code, message, 0, retry_after);
    }
    else {
        json_t *candidate = json_array_get (json_object_get (root, "candidates"), 0);
        json_t *part;
        size_t i;
        json_array_foreach (
            json_object_get (json_object_get (candidate, "content"), "parts"), i, part)
        {
            if ((rc = s_part (parser, part)))
                break;
        }
        const char *reason = s_finish (
            json_string_value (json_object_get (candidate, "finishReason")));
        if (reason && strcmp (reason, "stop") == 0 && parser->tools)
            reason = "tool_calls";
        llm_parser_set_finish (parser, reason);
        json_t *feedback = json_object_get (root, "promptFeedback");
        if (json_is_string (json_object_get (feedback, "blockReason")))
            llm_parser_set_finish (parser, "content_filter");
        json_t *usage = json_object_get (root, "usageMetadata");
        if (json_is_object (usage)) {
            json_t *prompt = json_object_get (usage, "promptTokenCount");
            parser->usage = true;
            parser->prompt_tokens = json_is_integer (prompt) ? json_integer_value (prompt)
                                                             : -1;
            parser->completion_tokens = json_integer_value (json_object_get (
                                            usage, "candidatesTokenCount"))
                                        + json_integer_value (json_object_get (
                                            usage, "thoughtsTokenCount"));
        }
    }
    json_decref (root);
    return rc;
}

void
llm_gemini_finish (llm_parser_t *parser)
{
    if (parser->finish[0])
        llm_parser_emit_done (parser, NULL);
}

//  ---------------------------------------------------------------------------
//  Selftest

void
llm_gemini_test (bool verbose)
{
    printf (" * llm_gemini: ");
    //  @selftest
    llm_request_t *request = llm_request_new (LLM_PROVIDER_GEMINI);
    llm_request_set_model (request, "models/gemini-2.5-flash");
    llm_request_set_api_key (request, "AIza-test");
    llm_request_set_system (request, "You are terse.");
    int rc = llm_request_add_message (request, "user", "Weather in Paris?");
    rc |= llm_request_add_message (request, "assistant", "");
    rc |= llm_request_add_tool_call (request, "call_1", "get_weather",
                                     "{\"city\":\"Paris\"}");
    llm_request_set_replay (request, "[{\"index\":0,\"signature\":\"c2ln\"}]");
    rc |= llm_request_add_message (request, "tool", "{\"temp_c\":21}");
    rc |= llm_request_set_tool_call_id (request, "call_1", NULL);
    rc |= llm_request_add_tool (
        request, "get_weather", "Current weather",
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
        "\"additionalProperties\":false}");
    assert (rc == 0);
    llm_request_set_temperature (request, 0.25);
    llm_request_set_max_tokens (request, 500);
    llm_request_set_thinking (request, LLM_THINKING_QUICK);
    llm_wire_t wire = {0};
    char error[128];
    rc = llm_gemini_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    assert (strcmp (wire.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                              "gemini-2.5-flash:streamGenerateContent?alt=sse")
            == 0);
    assert (strcmp (wire.headers[0].name, "x-goog-api-key") == 0);
    assert (strcmp (wire.headers[0].value, "AIza-test") == 0);
    assert (llm_json_same (
        wire.body,
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Weather in Paris?\"}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\","
        "\"args\":{\"city\":\"Paris\"}},\"thoughtSignature\":\"c2ln\"}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"get_weather\","
        "\"response\":{\"temp_c\":21}}}]}],"
        "\"systemInstruction\":{\"parts\":[{\"text\":\"You are terse.\"}]},"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":"
        "\"Current "
        "weather\",\"parametersJsonSchema\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"}},\"additionalProperties\":false}}]}],"
        "\"generationConfig\":{\"temperature\":0.25,\"maxOutputTokens\":500,"
        "\"thinkingConfig\":{\"thinkingBudget\":0}}}"));
    llm_wire_clear (&wire);
    //  Thinking per model family
    struct {
        const char *model;        //  model name
        llm_thinking_t thinking;  //  mode asked
        const char *expect;       //  thinkingConfig, or NULL for none
    } cases[] = {
        {"gemini-2.5-pro", LLM_THINKING_QUICK, "{\"thinkingBudget\":128}"},
        {"gemini-2.5-pro", LLM_THINKING_DEEP, "{\"thinkingBudget\":32768}"},
        {"gemini-2.5-flash-lite", LLM_THINKING_DEEP, "{\"thinkingBudget\":24576}"},
        {"gemini-2.5-flash", LLM_THINKING_BALANCED, NULL},
        {"gemini-3-pro-preview", LLM_THINKING_QUICK, "{\"thinkingLevel\":\"low\"}"},
        {"gemini-3-pro-preview", LLM_THINKING_BALANCED, NULL},
        {"gemini-3-flash-preview", LLM_THINKING_BALANCED,
         "{\"thinkingLevel\":\"medium\"}"},
        {"gemini-2.0-flash", LLM_THINKING_DEEP, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llm_request_set_model (request, cases[i].model);
        llm_request_set_thinking (request, cases[i].thinking);
        rc = llm_gemini_build (request, &wire, error, sizeof error);
        assert (rc == 0);
        json_t *body = json_loads (wire.body, 0, NULL);
        json_t *config = json_object_get (json_object_get (body, "generationConfig"),
                                          "thinkingConfig");
        char *text = config ? json_dumps (config, JSON_COMPACT) : NULL;
        assert (cases[i].expect ? text && strcmp (text, cases[i].expect) == 0 : !text);
        free (text);
        //  a thinking budget comes on top of the answer's 500
        json_int_t budget = json_integer_value (
            json_object_get (config, "thinkingBudget"));
        assert (json_integer_value (json_object_get (
                    json_object_get (body, "generationConfig"), "maxOutputTokens"))
                == 500 + budget);
        json_decref (body);
        llm_wire_clear (&wire);
    }
    //  Gemini 3 without the call's signature (history from elsewhere): the stand-in
    llm_request_set_model (request, "gemini-3-pro-preview");
    free (request->messages[1].replay);
    request->messages[1].replay = NULL;
    rc = llm_gemini_build (request, &wire, error, sizeof error);
    assert (rc == 0
            && strstr (wire.body, "\"thoughtSignature\":\"skip_thought_signature_"
                                  "validator\""));
    llm_wire_clear (&wire);
    llm_request_set_model (request, "gemini-2.5-flash");
    rc = llm_gemini_build (request, &wire, error, sizeof error);
    assert (rc == 0 && !strstr (wire.body, "thoughtSignature"));
    llm_wire_clear (&wire);
    //  A call with Gemini's own id: the call and its response echo it; our ids
    //  (call_1 above) and ids another model made stay off the wire
    free (request->messages[1].replay);
    request->messages[1].replay = strdup ("[{\"index\":0,\"id\":\"fc-9\"}]");
    free (request->messages[1].calls[0].id);
    request->messages[1].calls[0].id = strdup ("fc-9");
    rc = llm_request_set_tool_call_id (request, "fc-9", NULL);
    assert (rc == 0);
    rc = llm_gemini_build (request, &wire, error, sizeof error);
    assert (rc == 0);
    json_t *sent = json_loads (wire.body, 0, NULL);
    json_t *turns = json_object_get (sent, "contents");
    json_t *made = json_object_get (
        json_array_get (json_object_get (json_array_get (turns, 1), "parts"), 0),
        "functionCall");
    json_t *answered = json_object_get (
        json_array_get (json_object_get (json_array_get (turns, 2), "parts"), 0),
        "functionResponse");
    assert (streq (json_string_value (json_object_get (made, "id")), "fc-9"));
    assert (streq (json_string_value (json_object_get (answered, "id")), "fc-9"));
    json_decref (sent);
    llm_wire_clear (&wire);
    free (request->messages[1].replay);
    request->messages[1].replay = strdup ("[{\"index\":0,\"id\":\"fc-8\"}]");
    rc = llm_gemini_build (request, &wire, error, sizeof error);
    assert (rc == 0 && !strstr (wire.body, "\"id\""));
    llm_wire_clear (&wire);
    llm_request_set_model (request, "");
    assert (llm_gemini_build (request, &wire, error, sizeof error) == -1);
    llm_wire_clear (&wire);
    llm_request_destroy (&request);

    //  Text in pieces, usage on the last chunk; the end of the body completes it
    const char *stream =
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The sky\"}],"
        "\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
        "\"candidatesTokenCount\": 2,\"totalTokenCount\": 10},\"modelVersion\": "
        "\"gemini-2.5-flash\"}\r\n\r\n"
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is blue.\"}],"
        "\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],"
        "\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 5,"
        "\"thoughtsTokenCount\": 3,\"totalTokenCount\": 16}}\r\n\r\n";
    char *log = llm_parser_run (LLM_PROVIDER_GEMINI, NULL, stream, 5);
    assert (strcmp (log, "delta The sky\ndelta  is blue.\nusage 8 8\ndone stop\n") == 0);
    free (log);
    //  A whole functionCall with its thought signature; thought parts skipped
    const char *call =
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hidden\", "
        "\"thought\": true}, {\"functionCall\": {\"name\": \"get_weather\",\"args\": "
        "{\"city\": \"Paris\"}},\"thoughtSignature\": \"CqQB\"}],\"role\": \"model\"},"
        "\"finishReason\": \"STOP\",\"index\": 0}]}\n\n";
    log = llm_parser_run (LLM_PROVIDER_GEMINI, NULL, call, 0);
    assert (strcmp (log,
                    "tool_call 0 id=call_000000000000000000000000 name=get_weather "
                    "args={\"city\":\"Paris\"}\n"
                    "done tool_calls replay=[{\"index\":0,\"signature\":\"CqQB\"}]\n")
            == 0);
    free (log);
    //  Gemini's own call id is kept, and recorded for the next request
    log = llm_parser_run (
        LLM_PROVIDER_GEMINI, NULL,
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": "
        "{\"id\": \"fc-9\", \"name\": \"get_weather\", \"args\": {}}}], \"role\": "
        "\"model\"}, \"finishReason\": \"STOP\", \"index\": 0}]}\n\n",
        0);
    assert (strcmp (log, "tool_call 0 id=fc-9 name=get_weather args={}\n"
                         "done tool_calls replay=[{\"index\":0,\"id\":\"fc-9\"}]\n")
            == 0);
    free (log);
    //  No finishReason before the end: broken; an error mid-stream; blocked prompt
    log = llm_parser_run (LLM_PROVIDER_GEMINI, NULL,
                          "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
                          "\"Hi\"}]}}]}\n\n",
                          0);
    assert (strstr (log, "delta Hi\nerror stream_broken"));
    free (log);
    log = llm_parser_run (LLM_PROVIDER_GEMINI, NULL,
                          "data: {\"error\": {\"code\": 503, \"message\": \"The model is "
                          "overloaded.\", \"status\": \"UNAVAILABLE\"}}\n\n",
                          0);
    assert (strcmp (log, "error upstream_error 0 -1 The model is overloaded.\n") == 0);
    free (log);
    log = llm_parser_run (LLM_PROVIDER_GEMINI, NULL,
                          "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"}}\n\n",
                          0);
    assert (strcmp (log, "done content_filter\n") == 0);
    free (log);
    //  @end
    printf ("OK\n");
}
