/*  llm_request: the provider-neutral description of one model call, and the
    small helpers the provider builders share (wire requests, JSON, names).     */
#include "llm_request.h"
#include "llm_private.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *s_providers[LLM_PROVIDER_COUNT] = {"openai", "anthropic", "gemini",
                                                      "ollama", "n8n",       "offline"};
static const char *s_thinking[] = {"", "quick", "balanced", "deep"};
static const char *s_roles[] = {"system", "user", "assistant", "tool"};

//  Copy a string, NULL as "".
static char *
s_dup (const char *text)
{
    char *copy = strdup (text ? text : "");
    assert (copy);
    return copy;
}

//  Replace *field with a copy of text.
static void
s_set (char **field, const char *text)
{
    free (*field);
    *field = s_dup (text);
}

int
llm_provider_parse (const char *name)
{
    for (int i = 0; name && i < LLM_PROVIDER_COUNT; i++)
        if (strcasecmp (name, s_providers[i]) == 0)
            return i;
    return -1;
}

const char *
llm_provider_name (llm_provider_t provider)
{
    return provider < LLM_PROVIDER_COUNT ? s_providers[provider] : "unknown";
}

int
llm_thinking_parse (const char *name)
{
    if (!name || !*name)
        return LLM_THINKING_DEFAULT;
    for (int i = 1; i < 4; i++)
        if (strcasecmp (name, s_thinking[i]) == 0)
            return i;
    return -1;
}

const char *
llm_thinking_name (llm_thinking_t thinking)
{
    return thinking <= LLM_THINKING_DEEP ? s_thinking[thinking] : "";
}

const char *
llm_role_name (llm_role_t role)
{
    return role <= LLM_ROLE_TOOL ? s_roles[role] : "user";
}

llm_request_t *
llm_request_new (llm_provider_t provider)
{
    assert (provider < LLM_PROVIDER_COUNT);
    llm_request_t *self = calloc (1, sizeof (llm_request_t));
    assert (self);
    self->provider = provider;
    self->base_url = s_dup ("");
    self->api_key = s_dup ("");
    self->model = s_dup ("");
    self->system = s_dup ("");
    self->timeout_ms = 120000;
    self->idle_ms = 60000;
    return self;
}

void
llm_request_destroy (llm_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    llm_request_t *self = *self_p;
    for (size_t i = 0; i < self->message_count; i++) {
        llm_message_t *m = &self->messages[i];
        for (size_t j = 0; j < m->call_count; j++) {
            free (m->calls[j].id);
            free (m->calls[j].name);
            free (m->calls[j].arguments);
        }
        free (m->calls);
        free (m->content);
        free (m->tool_call_id);
        free (m->tool_name);
        free (m->replay);
    }
    free (self->messages);
    for (size_t i = 0; i < self->tool_count; i++) {
        free (self->tools[i].name);
        free (self->tools[i].description);
        free (self->tools[i].parameters);
    }
    free (self->tools);
    for (size_t i = 0; i < self->passage_count; i++) {
        free (self->passages[i].title);
        free (self->passages[i].text);
        free (self->passages[i].source);
    }
    free (self->passages);
    free (self->base_url);
    free (self->api_key);
    free (self->model);
    free (self->system);
    free (self->extra);
    free (self->session_id);
    free (self->request_id);
    free (self);
    *self_p = NULL;
}

llm_provider_t
llm_request_provider (llm_request_t *self)
{
    assert (self);
    return self->provider;
}

void
llm_request_set_base_url (llm_request_t *self, const char *base_url)
{
    assert (self);
    s_set (&self->base_url, base_url);
    size_t len = strlen (self->base_url);
    while (len && self->base_url[len - 1] == '/')
        self->base_url[--len] = 0;
}

void
llm_request_set_api_key (llm_request_t *self, const char *api_key)
{
    assert (self);
    s_set (&self->api_key, api_key);
}

void
llm_request_set_model (llm_request_t *self, const char *model)
{
    assert (self);
    s_set (&self->model, model);
}

void
llm_request_set_system (llm_request_t *self, const char *system)
{
    assert (self);
    s_set (&self->system, system);
}

int
llm_request_add_message (llm_request_t *self, const char *role, const char *content)
{
    assert (self);
    int index = -1;
    for (int i = 0; role && i < 4; i++)
        if (strcmp (role, s_roles[i]) == 0)
            index = i;
    if (index < 0 || self->message_count >= LLM_MAX_MESSAGES)
        return -1;
    llm_message_t *grown = realloc (self->messages,
                                    (self->message_count + 1) * sizeof (llm_message_t));
    assert (grown);
    self->messages = grown;
    llm_message_t *m = &self->messages[self->message_count++];
    memset (m, 0, sizeof *m);
    m->role = (llm_role_t) index;
    m->content = s_dup (content);
    return 0;
}

int
llm_request_add_tool_call (llm_request_t *self, const char *id, const char *name,
                           const char *arguments)
{
    assert (self);
    if (!self->message_count)
        return -1;
    llm_message_t *m = &self->messages[self->message_count - 1];
    if (m->role != LLM_ROLE_ASSISTANT || m->call_count >= LLM_MAX_TOOL_CALLS)
        return -1;
    llm_tool_call_t *grown = realloc (m->calls, (m->call_count + 1) * sizeof *grown);
    assert (grown);
    m->calls = grown;
    llm_tool_call_t *call = &m->calls[m->call_count++];
    call->id = s_dup (id);
    call->name = s_dup (name);
    call->arguments = s_dup (arguments && *arguments ? arguments : "{}");
    return 0;
}

int
llm_request_set_tool_call_id (llm_request_t *self, const char *tool_call_id,
                              const char *name)
{
    assert (self);
    if (!self->message_count)
        return -1;
    llm_message_t *m = &self->messages[self->message_count - 1];
    if (m->role != LLM_ROLE_TOOL)
        return -1;
    s_set (&m->tool_call_id, tool_call_id);
    if (name)
        s_set (&m->tool_name, name);
    return 0;
}

void
llm_request_set_replay (llm_request_t *self, const char *replay)
{
    assert (self);
    if (!self->message_count)
        return;
    llm_message_t *m = &self->messages[self->message_count - 1];
    if (m->role != LLM_ROLE_ASSISTANT)
        return;
    free (m->replay);
    m->replay = replay && *replay ? s_dup (replay) : NULL;
}

const char *
llm_request_tool_name (llm_request_t *self, size_t message_index)
{
    assert (self);
    assert (message_index < self->message_count);
    llm_message_t *m = &self->messages[message_index];
    if (m->tool_name && *m->tool_name)
        return m->tool_name;
    for (size_t i = message_index; m->tool_call_id && i-- > 0;) {
        llm_message_t *earlier = &self->messages[i];
        for (size_t j = 0; j < earlier->call_count; j++)
            if (strcmp (earlier->calls[j].id, m->tool_call_id) == 0)
                return earlier->calls[j].name;
    }
    return "tool";
}

int
llm_request_add_tool (llm_request_t *self, const char *name, const char *description,
                      const char *parameters)
{
    assert (self);
    if (self->tool_count >= LLM_MAX_TOOLS || !name || !*name)
        return -1;
    const char *schema = parameters && *parameters
                             ? parameters
                             : "{\"type\":\"object\",\"properties\":{}}";
    json_t *check = llm_json_object (schema);
    if (!check)
        return -1;
    json_decref (check);
    llm_tool_t *grown = realloc (self->tools, (self->tool_count + 1) * sizeof *grown);
    assert (grown);
    self->tools = grown;
    llm_tool_t *tool = &self->tools[self->tool_count++];
    tool->name = s_dup (name);
    tool->description = s_dup (description);
    tool->parameters = s_dup (schema);
    return 0;
}

void
llm_request_set_temperature (llm_request_t *self, double temperature)
{
    assert (self);
    self->has_temperature = true;
    self->temperature = temperature;
}

void
llm_request_set_max_tokens (llm_request_t *self, int max_tokens)
{
    assert (self);
    self->max_tokens = max_tokens > 0 ? max_tokens : 0;
}

void
llm_request_set_thinking (llm_request_t *self, llm_thinking_t thinking)
{
    assert (self);
    self->thinking = thinking <= LLM_THINKING_DEEP ? thinking : LLM_THINKING_DEFAULT;
}

void
llm_request_set_timeout (llm_request_t *self, int64_t total_ms)
{
    assert (self);
    self->timeout_ms = total_ms > 0 ? total_ms : 0;
}

void
llm_request_set_idle_timeout (llm_request_t *self, int64_t idle_ms)
{
    assert (self);
    self->idle_ms = idle_ms > 0 ? idle_ms : 0;
}

int
llm_request_set_extra (llm_request_t *self, const char *extra)
{
    assert (self);
    if (extra && *extra) {
        json_t *check = llm_json_object (extra);
        if (!check)
            return -1;
        json_decref (check);
    }
    free (self->extra);
    self->extra = extra && *extra ? s_dup (extra) : NULL;
    return 0;
}

void
llm_request_set_session_id (llm_request_t *self, const char *session_id)
{
    assert (self);
    s_set (&self->session_id, session_id);
}

int
llm_request_add_passage (llm_request_t *self, const char *title, const char *text,
                         const char *source)
{
    assert (self);
    if (self->passage_count >= LLM_MAX_PASSAGES)
        return -1;
    llm_passage_t *grown = realloc (self->passages,
                                    (self->passage_count + 1) * sizeof *grown);
    assert (grown);
    self->passages = grown;
    llm_passage_t *p = &self->passages[self->passage_count++];
    p->title = s_dup (title);
    p->text = s_dup (text);
    p->source = s_dup (source);
    return 0;
}

void
llm_request_set_request_id (llm_request_t *self, const char *request_id)
{
    assert (self);
    s_set (&self->request_id, request_id);
}

size_t
llm_request_message_count (llm_request_t *self)
{
    assert (self);
    return self->message_count;
}

size_t
llm_request_tool_count (llm_request_t *self)
{
    assert (self);
    return self->tool_count;
}

size_t
llm_request_passage_count (llm_request_t *self)
{
    assert (self);
    return self->passage_count;
}

//  ---------------------------------------------------------------------------
//  Helpers for the builders

void
llm_wire_add_header (llm_wire_t *wire, const char *name, const char *value)
{
    assert (wire);
    assert (wire->header_count < LLM_MAX_HEADERS);
    wire->headers[wire->header_count].name = s_dup (name);
    wire->headers[wire->header_count].value = s_dup (value);
    wire->header_count++;
}

void
llm_wire_set_url (llm_wire_t *wire, const char *base, const char *fallback,
                  const char *format, ...)
{
    assert (wire);
    const char *prefix = base && *base ? base : fallback;
    va_list args;
    va_start (args, format);
    char *rest = zsys_vprintf (format, args);
    va_end (args);
    assert (rest);
    size_t size = strlen (prefix) + strlen (rest) + 1;
    free (wire->url);
    wire->url = malloc (size);
    assert (wire->url);
    snprintf (wire->url, size, "%s%s", prefix, rest);
    zstr_free (&rest);
}

void
llm_wire_set_body (llm_wire_t *wire, json_t **root_p)
{
    assert (wire);
    assert (root_p && *root_p);
    free (wire->body);
    wire->body = json_dumps (*root_p, JSON_COMPACT | JSON_REAL_PRECISION (6));
    assert (wire->body);
    wire->body_size = strlen (wire->body);
    json_decref (*root_p);
    *root_p = NULL;
}

void
llm_wire_clear (llm_wire_t *wire)
{
    if (!wire)
        return;
    free (wire->url);
    free (wire->body);
    for (size_t i = 0; i < wire->header_count; i++) {
        free (wire->headers[i].name);
        free (wire->headers[i].value);
    }
    memset (wire, 0, sizeof *wire);
}

json_t *
llm_json_object (const char *text)
{
    if (!text)
        return NULL;
    json_t *value = json_loads (text, 0, NULL);
    if (value && !json_is_object (value)) {
        json_decref (value);
        value = NULL;
    }
    return value;
}

void
llm_json_set_string (json_t *object, const char *key, const char *text)
{
    int rc = json_object_set_new (object, key, json_string (text ? text : ""));
    if (rc) {
        //  Not valid UTF-8: keep what can be kept rather than refuse the turn
        size_t size = text ? strlen (text) : 0;
        char *clean = malloc (size + 1);
        assert (clean);
        size_t used = 0;
        for (size_t i = 0; i < size; i++)
            clean[used++] = (unsigned char) text[i] < 0x80 ? text[i] : '?';
        clean[used] = 0;
        rc = json_object_set_new (object, key, json_string (clean));
        assert (rc == 0);
        free (clean);
    }
}

bool
llm_starts_with (const char *text, const char *prefix)
{
    return text && strncasecmp (text, prefix, strlen (prefix)) == 0;
}

void
llm_make_call_id (char *buf, size_t size)
{
    zuuid_t *uuid = zuuid_new ();
    assert (uuid);
    char hex[33];
    snprintf (hex, sizeof hex, "%s", zuuid_str (uuid));
    for (char *c = hex; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    snprintf (buf, size, "call_%.24s", hex);
    zuuid_destroy (&uuid);
}

//  ---------------------------------------------------------------------------
//  Selftest

void
llm_request_test (bool verbose)
{
    printf (" * llm_request: ");
    //  @selftest
    assert (llm_provider_parse ("OpenAI") == LLM_PROVIDER_OPENAI);
    assert (llm_provider_parse ("n8n") == LLM_PROVIDER_N8N);
    assert (llm_provider_parse ("bard") == -1);
    assert (llm_provider_parse (NULL) == -1);
    assert (strcmp (llm_provider_name (LLM_PROVIDER_GEMINI), "gemini") == 0);
    assert (llm_thinking_parse ("deep") == LLM_THINKING_DEEP);
    assert (llm_thinking_parse ("") == LLM_THINKING_DEFAULT);
    assert (llm_thinking_parse ("huge") == -1);
    assert (strcmp (llm_thinking_name (LLM_THINKING_QUICK), "quick") == 0);

    llm_request_t *request = llm_request_new (LLM_PROVIDER_OPENAI);
    assert (llm_request_provider (request) == LLM_PROVIDER_OPENAI);
    llm_request_set_base_url (request, "http://localhost:8000/v1//");
    assert (strcmp (request->base_url, "http://localhost:8000/v1") == 0);
    llm_request_set_model (request, "gpt-4o-mini");
    llm_request_set_system (request, "Be brief.");
    assert (llm_request_add_tool_call (request, "c", "n", "{}") == -1);  //  no message
    assert (llm_request_add_message (request, "user", "Weather in Paris?") == 0);
    assert (llm_request_add_message (request, "robot", "x") == -1);
    assert (llm_request_add_tool_call (request, "c", "n", "{}") == -1);  //  not assistant
    assert (llm_request_add_message (request, "assistant", NULL) == 0);
    assert (llm_request_add_tool_call (request, "call_1", "get_weather",
                                       "{\"city\":\"Paris\"}")
            == 0);
    llm_request_set_replay (request, "[{\"type\":\"thinking\"}]");
    assert (llm_request_set_tool_call_id (request, "call_1", NULL) == -1);
    assert (llm_request_add_message (request, "tool", "{\"temp\":21}") == 0);
    assert (llm_request_set_tool_call_id (request, "call_1", NULL) == 0);
    assert (strcmp (llm_request_tool_name (request, 2), "get_weather") == 0);
    assert (llm_request_message_count (request) == 3);
    assert (request->messages[1].calls[0].arguments[0] == '{');
    assert (strcmp (request->messages[1].replay, "[{\"type\":\"thinking\"}]") == 0);

    assert (llm_request_add_tool (request, "get_weather", "Weather now",
                                  "{\"type\":\"object\",\"properties\":{}}")
            == 0);
    assert (llm_request_add_tool (request, "bad", "x", "[1,2]") == -1);
    assert (llm_request_add_tool (request, "bad", "x", "{oops") == -1);
    assert (llm_request_add_tool (request, "noargs", NULL, NULL) == 0);
    assert (llm_request_tool_count (request) == 2);
    assert (llm_request_set_extra (request, "[]") == -1);
    assert (llm_request_set_extra (request, "{\"k\":1}") == 0);
    assert (llm_request_add_passage (request, "FAQ", "Open 9-5.", NULL) == 0);
    assert (llm_request_passage_count (request) == 1);
    llm_request_set_temperature (request, 0.5);
    llm_request_set_max_tokens (request, -3);
    assert (request->max_tokens == 0);
    llm_request_set_thinking (request, LLM_THINKING_DEEP);
    llm_request_set_timeout (request, 5000);
    llm_request_set_idle_timeout (request, 1000);
    llm_request_set_session_id (request, "conv-1");
    llm_request_set_request_id (request, "req-1");

    llm_wire_t wire = {0};
    llm_wire_set_url (&wire, "", "https://api.example.com", "/v1/%s", "chat");
    assert (strcmp (wire.url, "https://api.example.com/v1/chat") == 0);
    llm_wire_add_header (&wire, "Authorization", "Bearer k");
    json_t *root = json_pack ("{s:s, s:f}", "a", "b", "t", 0.7);
    llm_wire_set_body (&wire, &root);
    assert (root == NULL);
    assert (strcmp (wire.body, "{\"a\":\"b\",\"t\":0.7}") == 0);
    llm_wire_clear (&wire);
    llm_wire_clear (&wire);

    json_t *object = json_object ();
    llm_json_set_string (object, "bad", "caf\xe9");
    assert (strcmp (json_string_value (json_object_get (object, "bad")), "caf?") == 0);
    json_decref (object);
    char id[40];
    llm_make_call_id (id, sizeof id);
    assert (strlen (id) == 29 && llm_starts_with (id, "call_"));

    llm_request_destroy (&request);
    llm_request_destroy (&request);
    //  @end
    printf ("OK\n");
}
