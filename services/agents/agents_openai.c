/*  agents_openai: the checks of an OpenAI chat completion request (see
    agents_openai.h). Used by agents_turn before a turn starts.                 */
#include "agents_openai.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Most stop sequences, and the longest tool name (OpenAI's limits).
#define S_STOP_MAX 4
#define S_TOOL_NAME_MAX 64

//  What a top-level parameter must be (null is always taken).
typedef enum {
    S_BOOLEAN = 0,  //  true or false
    S_STRING,       //  any string
    S_OBJECT,       //  any object
    S_ARRAY,        //  any array
    S_NUMBER,       //  a number from min to max
    S_INTEGER       //  an integer from min to max
} s_kind_t;

//  One top-level parameter of OpenAI's request that is checked by its type alone.
typedef struct {
    const char *name;  //  its key
    s_kind_t kind;     //  what it must be
    double min;        //  S_NUMBER, S_INTEGER: least value (-INFINITY: none)
    double max;        //  S_NUMBER, S_INTEGER: greatest value (INFINITY: none)
} s_param_t;

static const s_param_t s_params[] = {
    {"stream", S_BOOLEAN, 0, 0},
    {"parallel_tool_calls", S_BOOLEAN, 0, 0},
    {"store", S_BOOLEAN, 0, 0},
    {"logprobs", S_BOOLEAN, 0, 0},
    {"temperature", S_NUMBER, 0, 2},
    {"top_p", S_NUMBER, 0, 1},
    {"frequency_penalty", S_NUMBER, -2, 2},
    {"presence_penalty", S_NUMBER, -2, 2},
    {"max_tokens", S_INTEGER, 1, INFINITY},
    {"max_completion_tokens", S_INTEGER, 1, INFINITY},
    {"top_logprobs", S_INTEGER, 0, 20},
    {"seed", S_INTEGER, -INFINITY, INFINITY},
    {"user", S_STRING, 0, 0},
    {"service_tier", S_STRING, 0, 0},
    {"reasoning_effort", S_STRING, 0, 0},
    {"verbosity", S_STRING, 0, 0},
    {"safety_identifier", S_STRING, 0, 0},
    {"prompt_cache_key", S_STRING, 0, 0},
    {"stream_options", S_OBJECT, 0, 0},
    {"response_format", S_OBJECT, 0, 0},
    {"metadata", S_OBJECT, 0, 0},
    {"logit_bias", S_OBJECT, 0, 0},
    {"prediction", S_OBJECT, 0, 0},
    {"audio", S_OBJECT, 0, 0},
    {"web_search_options", S_OBJECT, 0, 0},
    {"modalities", S_ARRAY, 0, 0},
};

//  The roles a message may have.
static const char *const s_roles[] = {"system", "developer", "user", "assistant", "tool"};

//  How a JSON value's type reads in a refusal (NULL: absent).
static const char *
s_type (const json_t *value)
{
    if (!value)
        return "nothing";
    switch (json_typeof (value)) {
        case JSON_OBJECT:
            return "an object";
        case JSON_ARRAY:
            return "an array";
        case JSON_STRING:
            return "a string";
        case JSON_INTEGER:
            return "an integer";
        case JSON_REAL:
            return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        default:
            return "null";
    }
}

//  Write "<param>: <why>" into error and return -1.
static int __attribute__ ((format (printf, 4, 5)))
s_refuse (char *error, size_t size, const char *param, const char *format, ...)
{
    int used = snprintf (error, size, "%s: ", param);
    if (used < 0 || (size_t) used >= size)
        return -1;
    va_list args;
    va_start (args, format);
    vsnprintf (error + used, size - (size_t) used, format, args);
    va_end (args);
    return -1;
}

//  Whether value is present and not null.
static bool
s_given (const json_t *value)
{
    return value && !json_is_null (value);
}

//  Check a parameter of s_params; absent and null pass.
static int
s_check_param (const s_param_t *param, const json_t *value, char *error, size_t size)
{
    if (!s_given (value))
        return 0;
    switch (param->kind) {
        case S_BOOLEAN:
            if (!json_is_boolean (value))
                return s_refuse (error, size, param->name, "expected a boolean, got %s",
                                 s_type (value));
            return 0;
        case S_STRING:
            if (!json_is_string (value))
                return s_refuse (error, size, param->name, "expected a string, got %s",
                                 s_type (value));
            return 0;
        case S_OBJECT:
            if (!json_is_object (value))
                return s_refuse (error, size, param->name, "expected an object, got %s",
                                 s_type (value));
            return 0;
        case S_ARRAY:
            if (!json_is_array (value))
                return s_refuse (error, size, param->name, "expected an array, got %s",
                                 s_type (value));
            return 0;
        case S_NUMBER:
        case S_INTEGER:
            break;
    }
    bool integer = param->kind == S_INTEGER;
    bool typed = integer ? json_is_integer (value) : json_is_number (value);
    double number = json_number_value (value);
    if (typed && number >= param->min && number <= param->max)
        return 0;
    const char *what = integer ? "an integer" : "a number";
    char got[32];
    if (typed)
        snprintf (got, sizeof got, "%g", number);
    else
        snprintf (got, sizeof got, "%s", s_type (value));
    if (isinf (param->min))
        return s_refuse (error, size, param->name, "expected %s, got %s", what, got);
    if (isinf (param->max))
        return s_refuse (error, size, param->name, "expected %s of at least %g, got %s",
                         what, param->min, got);
    return s_refuse (error, size, param->name, "expected %s from %g to %g, got %s", what,
                     param->min, param->max, got);
}

//  Check one part of a message's content: only text parts are taken.
static int
s_check_part (const json_t *part, const char *at, char *error, size_t size)
{
    if (!json_is_object (part))
        return s_refuse (error, size, at, "expected a content part object, got %s",
                         s_type (part));
    char param[128];
    snprintf (param, sizeof param, "%s.type", at);
    const char *type = json_string_value (json_object_get (part, "type"));
    if (!type)
        return s_refuse (error, size, param, "a content part needs a type (\"text\")");
    if (!streq (type, "text"))
        return s_refuse (error, size, param,
                         "'%.40s' content parts are not supported, only 'text' parts",
                         type);
    snprintf (param, sizeof param, "%s.text", at);
    if (!json_is_string (json_object_get (part, "text")))
        return s_refuse (error, size, param, "expected a string, got %s",
                         s_type (json_object_get (part, "text")));
    return 0;
}

//  Check the tool calls of an assistant message: [{id, type?, function: {name,
//  arguments}}].
static int
s_check_calls (const json_t *calls, const char *at, char *error, size_t size)
{
    char param[128];
    snprintf (param, sizeof param, "%s.tool_calls", at);
    if (!json_is_array (calls))
        return s_refuse (error, size, param, "expected an array, got %s", s_type (calls));
    size_t index;
    const json_t *call;
    json_array_foreach (calls, index, call)
    {
        snprintf (param, sizeof param, "%s.tool_calls[%zu]", at, index);
        if (!json_is_object (call))
            return s_refuse (error, size, param, "expected an object, got %s",
                             s_type (call));
        const json_t *id = json_object_get (call, "id");
        const json_t *type = json_object_get (call, "type");
        const json_t *function = json_object_get (call, "function");
        const json_t *name = json_object_get (function, "name");
        const json_t *arguments = json_object_get (function, "arguments");
        if (!json_is_string (id) || json_string_length (id) == 0)
            return s_refuse (error, size, param, "a tool call needs an id (a string)");
        if (s_given (type)
            && !(json_is_string (type) && streq (json_string_value (type), "function")))
            return s_refuse (error, size, param, "type: expected 'function'");
        if (!json_is_object (function))
            return s_refuse (error, size, param, "a tool call needs a function object");
        if (!json_is_string (name) || json_string_length (name) == 0)
            return s_refuse (error, size, param, "function.name: expected a string");
        if (s_given (arguments) && !json_is_string (arguments))
            return s_refuse (
                error, size, param,
                "function.arguments: expected a JSON text (a string), got %s",
                s_type (arguments));
    }
    return 0;
}

//  Check message index of messages.
static int
s_check_message (const json_t *message, size_t index, char *error, size_t size)
{
    char at[32];
    snprintf (at, sizeof at, "messages[%zu]", index);
    if (!json_is_object (message))
        return s_refuse (error, size, at, "expected a message object, got %s",
                         s_type (message));
    char param[64];
    snprintf (param, sizeof param, "%s.role", at);
    const char *role = json_string_value (json_object_get (message, "role"));
    bool known = false;
    for (size_t i = 0; role && i < sizeof s_roles / sizeof s_roles[0]; i++)
        known = known || streq (role, s_roles[i]);
    if (!known)
        return s_refuse (error, size, param,
                         "expected one of 'system', 'developer', 'user', 'assistant', "
                         "'tool'");
    bool assistant = streq (role, "assistant");
    const json_t *calls = json_object_get (message, "tool_calls");
    if (s_given (calls) && !assistant) {
        snprintf (param, sizeof param, "%s.tool_calls", at);
        return s_refuse (error, size, param, "only assistant messages have tool calls");
    }
    if (s_given (calls) && s_check_calls (calls, at, error, size))
        return -1;
    snprintf (param, sizeof param, "%s.content", at);
    const json_t *content = json_object_get (message, "content");
    if (!s_given (content)) {
        if (assistant && json_array_size (calls) > 0)
            return 0;
        return s_refuse (error, size, param, "%s messages need content%s", role,
                         assistant ? " (or tool_calls)" : "");
    }
    if (json_is_array (content)) {
        if (json_array_size (content) == 0)
            return s_refuse (error, size, param, "expected a non-empty array of parts");
        size_t part_index;
        const json_t *part;
        json_array_foreach (content, part_index, part)
        {
            char part_at[96];
            snprintf (part_at, sizeof part_at, "%s[%zu]", param, part_index);
            if (s_check_part (part, part_at, error, size))
                return -1;
        }
    }
    else if (!json_is_string (content))
        return s_refuse (error, size, param,
                         "expected a string or an array of content parts, got %s",
                         s_type (content));
    const json_t *name = json_object_get (message, "name");
    if (s_given (name) && !json_is_string (name)) {
        snprintf (param, sizeof param, "%s.name", at);
        return s_refuse (error, size, param, "expected a string, got %s", s_type (name));
    }
    const json_t *answers = json_object_get (message, "tool_call_id");
    if (streq (role, "tool")
        && (!json_is_string (answers) || json_string_length (answers) == 0)) {
        snprintf (param, sizeof param, "%s.tool_call_id", at);
        return s_refuse (error, size, param,
                         "tool messages need the id of the call they answer");
    }
    return 0;
}

//  Whether name is a tool name OpenAI takes: 1 to 64 of a-z A-Z 0-9 _ -.
static bool
s_tool_name_valid (const char *name)
{
    size_t length = strlen (name);
    if (length == 0 || length > S_TOOL_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
              || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return false;
    return true;
}

//  Check tools: [{type: "function", function: {name, description?, parameters?,
//  strict?}}].
static int
s_check_tools (const json_t *tools, char *error, size_t size)
{
    if (!s_given (tools))
        return 0;
    if (!json_is_array (tools) || json_array_size (tools) > AGENTS_OPENAI_TOOLS_MAX)
        return s_refuse (error, size, "tools", "expected an array of at most %d tools",
                         AGENTS_OPENAI_TOOLS_MAX);
    char param[64];
    size_t index;
    const json_t *tool;
    json_array_foreach (tools, index, tool)
    {
        snprintf (param, sizeof param, "tools[%zu]", index);
        if (!json_is_object (tool))
            return s_refuse (error, size, param, "expected an object, got %s",
                             s_type (tool));
        const char *type = json_string_value (json_object_get (tool, "type"));
        if (!type || !streq (type, "function"))
            return s_refuse (error, size, param,
                             "type: expected 'function' (only function tools are "
                             "supported)");
        const json_t *function = json_object_get (tool, "function");
        if (!json_is_object (function))
            return s_refuse (error, size, param, "function: expected an object");
        const char *name = json_string_value (json_object_get (function, "name"));
        if (!name || !s_tool_name_valid (name))
            return s_refuse (error, size, param,
                             "function.name: expected 1 to 64 of a-z A-Z 0-9 _ -");
        const json_t *description = json_object_get (function, "description");
        if (s_given (description) && !json_is_string (description))
            return s_refuse (error, size, param,
                             "function.description: expected a string");
        const json_t *parameters = json_object_get (function, "parameters");
        if (s_given (parameters) && !json_is_object (parameters))
            return s_refuse (error, size, param,
                             "function.parameters: expected a JSON schema object, got %s",
                             s_type (parameters));
        const json_t *strict = json_object_get (function, "strict");
        if (s_given (strict) && !json_is_boolean (strict))
            return s_refuse (error, size, param, "function.strict: expected a boolean");
    }
    return 0;
}

//  Check tool_choice: "none", "auto", "required" or {type: "function", function:
//  {name}}.
static int
s_check_tool_choice (const json_t *choice, char *error, size_t size)
{
    if (!s_given (choice))
        return 0;
    const char *mode = json_string_value (choice);
    if (mode
        && (streq (mode, "none") || streq (mode, "auto") || streq (mode, "required")))
        return 0;
    const char *type = json_string_value (json_object_get (choice, "type"));
    const json_t *name = json_object_get (json_object_get (choice, "function"), "name");
    if (json_is_object (choice) && type && streq (type, "function")
        && json_is_string (name))
        return 0;
    return s_refuse (error, size, "tool_choice",
                     "expected 'none', 'auto', 'required' or {\"type\": \"function\", "
                     "\"function\": {\"name\": ...}}");
}

//  Check stop: a string or an array of at most four strings.
static int
s_check_stop (const json_t *stop, char *error, size_t size)
{
    if (!s_given (stop) || json_is_string (stop))
        return 0;
    bool strings = json_is_array (stop) && json_array_size (stop) <= S_STOP_MAX;
    size_t index;
    const json_t *item;
    json_array_foreach (stop, index, item) strings = strings && json_is_string (item);
    if (strings)
        return 0;
    return s_refuse (error, size, "stop",
                     "expected a string or an array of at most %d "
                     "strings",
                     S_STOP_MAX);
}

int
agents_openai_check (const json_t *body, char *error, size_t error_size)
{
    if (!json_is_object (body)) {
        snprintf (error, error_size, "the body must be a JSON object");
        return -1;
    }
    const json_t *model = json_object_get (body, "model");
    if (!json_is_string (model) || json_string_length (model) == 0)
        return s_refuse (error, error_size, "model",
                         "you must provide a model (an agent's name or id)");
    const json_t *messages = json_object_get (body, "messages");
    if (!json_is_array (messages) || json_array_size (messages) == 0
        || json_array_size (messages) > AGENTS_OPENAI_MESSAGES_MAX)
        return s_refuse (error, error_size, "messages",
                         "expected a non-empty array of at most %d messages",
                         AGENTS_OPENAI_MESSAGES_MAX);
    size_t index;
    const json_t *message;
    json_array_foreach (
        messages, index,
        message) if (s_check_message (message, index, error, error_size)) return -1;
    for (size_t i = 0; i < sizeof s_params / sizeof s_params[0]; i++)
        if (s_check_param (&s_params[i], json_object_get (body, s_params[i].name), error,
                           error_size))
            return -1;
    const json_t *n = json_object_get (body, "n");
    if (s_given (n) && !(json_is_integer (n) && json_integer_value (n) == 1))
        return s_refuse (error, error_size, "n", "only 1 is supported");
    const json_t *usage = json_object_get (json_object_get (body, "stream_options"),
                                           "include_usage");
    if (s_given (usage) && !json_is_boolean (usage))
        return s_refuse (error, error_size, "stream_options.include_usage",
                         "expected a boolean, got %s", s_type (usage));
    const json_t *format = json_object_get (body, "response_format");
    if (json_is_object (format) && !json_is_string (json_object_get (format, "type")))
        return s_refuse (error, error_size, "response_format.type",
                         "expected 'text', 'json_object' or 'json_schema'");
    if (s_check_tools (json_object_get (body, "tools"), error, error_size)
        || s_check_tool_choice (json_object_get (body, "tool_choice"), error, error_size)
        || s_check_stop (json_object_get (body, "stop"), error, error_size))
        return -1;
    return 0;
}

char *
agents_openai_content (const json_t *message)
{
    const json_t *content = json_object_get (message, "content");
    if (json_is_string (content))
        return strdup (json_string_value (content));
    size_t size = 0;
    size_t index;
    const json_t *part;
    json_array_foreach (content, index, part)
        size += json_string_length (json_object_get (part, "text"));
    char *text = malloc (size + 1);
    assert (text);
    size_t used = 0;
    json_array_foreach (content, index, part)
    {
        const json_t *piece = json_object_get (part, "text");
        memcpy (text + used, json_string_value (piece) ? json_string_value (piece) : "",
                json_string_length (piece));
        used += json_string_length (piece);
    }
    text[used] = 0;
    return text;
}

//  The refusal of the body in text (JSON), "" when it passes.
static const char *
s_verdict (const char *text, char *error, size_t size)
{
    json_t *body = json_loads (text, 0, NULL);
    assert (body);
    *error = 0;
    if (agents_openai_check (body, error, size))
        assert (*error);
    json_decref (body);
    return error;
}

void
agents_openai_test (bool verbose)
{
    (void) verbose;
    printf (" * agents_openai: ");
    char error[256];
#define S_HI "\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
    //  What SDKs send passes
    assert (streq (s_verdict ("{" S_HI "}", error, sizeof error), ""));
    assert (streq (
        s_verdict ("{" S_HI ",\"temperature\":0.2,\"top_p\":1,\"max_tokens\":5,"
                   "\"max_completion_tokens\":null,\"stream\":true,\"stream_options\":"
                   "{\"include_usage\":true},\"user\":\"u\",\"seed\":-3,\"stop\":[\"a\"],"
                   "\"frequency_penalty\":-2,\"presence_penalty\":0,\"metadata\":{},"
                   "\"store\":false,\"logprobs\":false,\"response_format\":{\"type\":"
                   "\"text\"},\"parallel_tool_calls\":true,\"tool_choice\":\"auto\","
                   "\"n\":1,\"unknown_to_openai\":[]}",
                   error, sizeof error),
        ""));
    assert (streq (
        s_verdict (
            "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":"
            "[{\"type\":\"text\",\"text\":\"be brief\"}]},{\"role\":\"assistant\","
            "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":"
            "\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}],\"tools\":[{"
            "\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}"
            "],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
            "\"f\"}}}",
            error, sizeof error),
        ""));
    //  What OpenAI refuses, named by its param
    struct {
        const char *body;   //  JSON text
        const char *start;  //  the refusal starts so
    } bad[] = {
        {"{\"messages\":[]}", "model: "},
        {"{\"model\":\"m\",\"messages\":[]}", "messages: "},
        {"{\"model\":\"m\",\"messages\":[5]}", "messages[0]: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         "messages[0].content: expected a string or an array"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null}]}",
         "messages[0].content: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
         "messages[0].role: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "messages[0].tool_call_id: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
         "messages[0].content[0].type: 'image_url' content parts are not supported"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"text\",\"text\":1}]}]}",
         "messages[0].content[0].text: "},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"text\"}]}]}",
         "messages[0].content[0].text: expected a string, got nothing"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\","
         "\"tool_calls\":[]}]}",
         "messages[0].tool_calls: "},
        {"{" S_HI ",\"temperature\":\"hot\"}",
         "temperature: expected a number from 0 to 2, got a string"},
        {"{" S_HI ",\"temperature\":5}",
         "temperature: expected a number from 0 to 2, got 5"},
        {"{" S_HI ",\"top_p\":1.5}", "top_p: "},
        {"{" S_HI ",\"max_tokens\":-1}",
         "max_tokens: expected an integer of at least 1, got -1"},
        {"{" S_HI ",\"max_tokens\":\"10\"}", "max_tokens: "},
        {"{" S_HI ",\"max_completion_tokens\":0}", "max_completion_tokens: "},
        {"{" S_HI ",\"max_tokens\":2.5}", "max_tokens: "},
        {"{" S_HI ",\"stream\":\"yes\"}", "stream: expected a boolean, got a string"},
        {"{" S_HI ",\"stream_options\":{\"include_usage\":\"yes\"}}",
         "stream_options.include_usage: "},
        {"{" S_HI ",\"stream_options\":5}", "stream_options: "},
        {"{" S_HI ",\"parallel_tool_calls\":1}", "parallel_tool_calls: "},
        {"{" S_HI ",\"tools\":\"x\"}", "tools: "},
        {"{" S_HI ",\"tools\":[{\"type\":\"function\"}]}", "tools[0]: function"},
        {"{" S_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]}",
         "tools[0]: function.name"},
        {"{" S_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
         "\"parameters\":\"{}\"}}]}",
         "tools[0]: function.parameters"},
        {"{" S_HI ",\"tool_choice\":\"any\"}", "tool_choice: "},
        {"{" S_HI ",\"n\":2}", "n: "},
        {"{" S_HI ",\"user\":5}", "user: "},
        {"{" S_HI ",\"seed\":1.5}", "seed: expected an integer"},
        {"{" S_HI ",\"stop\":[1]}", "stop: "},
        {"{" S_HI ",\"response_format\":\"json\"}", "response_format: "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_verdict (bad[i].body, error, sizeof error);
        if (strncmp (error, bad[i].start, strlen (bad[i].start)) != 0) {
            printf ("\n%s: %s\n", bad[i].body, error);
            assert (false);
        }
    }
#undef S_HI
    assert (agents_openai_check (NULL, error, sizeof error) == -1);

    //  Content as text: a string, or the text of the parts in order
    json_t *message = json_loads ("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                                  "{\"type\":\"text\",\"text\":\"bc\"}]}",
                                  0, NULL);
    char *text = agents_openai_content (message);
    assert (streq (text, "abc"));
    free (text);
    json_object_set_new (message, "content", json_string ("hi"));
    text = agents_openai_content (message);
    assert (streq (text, "hi"));
    free (text);
    json_object_set_new (message, "content", json_null ());
    text = agents_openai_content (message);
    assert (streq (text, ""));
    free (text);
    json_decref (message);
    printf ("OK\n");
}
