/*  agents_store: agents, provider settings and /v1/models.                     */
#include "agents_store.h"
#include "agents_body.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>

#include "codec_json.h"
#include "codec_msgpack.h"
#include "db_message.h"

static const char *const s_providers[] = {"openai", "anthropic", "gemini",
                                          "ollama", "n8n",       "offline"};

bool
agents_store_provider_known (const char *provider)
{
    for (size_t i = 0; provider && i < sizeof s_providers / sizeof s_providers[0]; i++)
        if (streq (provider, s_providers[i]))
            return true;
    return false;
}

//  The page condition of every list: rows after the cursor ($2, "" for the start).
#define S_AFTER(ts, id)                                                                  \
    "($2 = '' OR (agents.ts_us (" ts "), " id ") < (agents.cursor_ts ($2), "             \
    "agents.cursor_id ($2)))"

//  Parse a JSON array of tool bindings into agent->tools (replacing none there).
static int
s_read_tools (ChorusAgents__Agent *agent, const char *json, char *error, size_t size)
{
    if (!json || !*json || streq (json, "[]"))
        return 0;
    //  Decode {"tools": [...]} as an Agent with the generic codec: typed, checked
    size_t len = strlen (json);
    char *wrapped = malloc (len + 16);
    assert (wrapped);
    snprintf (wrapped, len + 16, "{\"tools\":%s}", json);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    int rc = codec_json_to_msgpack (wrapped, strlen (wrapped), &buf, error, size);
    free (wrapped);
    ChorusAgents__Agent *holder = NULL;
    if (rc == 0)
        holder = (ChorusAgents__Agent *) codec_decode (&chorus_agents__agent__descriptor,
                                                       buf.data, buf.size, error, size);
    msgpack_sbuffer_destroy (&buf);
    if (!holder)
        return -1;
    agent->tools = holder->tools;
    agent->n_tools = holder->n_tools;
    holder->tools = NULL;
    holder->n_tools = 0;
    protobuf_c_message_free_unpacked (&holder->base, NULL);
    return 0;
}

ChorusAgents__Agent *
agents_store_read (const PGresult *result, int row, char *error, size_t error_size)
{
    ChorusAgents__Agent *agent = (ChorusAgents__Agent *) db_message_from_row (
        &chorus_agents__agent__descriptor, result, row, error, error_size);
    if (!agent)
        return NULL;
    int column = PQfnumber (result, "_tools");
    if (column >= 0 && !PQgetisnull (result, row, column)
        && s_read_tools (agent, PQgetvalue (result, row, column), error, error_size)) {
        protobuf_c_message_free_unpacked (&agent->base, NULL);
        return NULL;
    }
    return agent;
}

//  The tools of a request as the JSON text stored, or NULL (caller frees).
static char *
s_tools_json (const ChorusAgents__Agent *agent)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < agent->n_tools; i++) {
        const ChorusAgents__ToolBinding *tool = agent->tools[i];
        json_t *item = json_object ();
        const char *names[] = {"type", "name", "description", "parameters", "config"};
        const char *values[] = {tool->type, tool->name, tool->description,
                                tool->parameters, tool->config};
        for (size_t f = 0; f < 5; f++)
            if (values[f])
                json_object_set_new (item, names[f], json_string (values[f]));
        json_array_append_new (array, item);
    }
    char *text = json_dumps (array, JSON_COMPACT);
    json_decref (array);
    return text;
}

//  A networked provider needs a model: the agent's own, or the platform's default
//  (CHORUS_LLM_MODEL, for CHORUS_LLM_PROVIDER's agents).
#define S_NO_MODEL "model is required for this provider (it has no default model)"

//  True when an agent on provider with model (as stored) has a model to ask for.
static bool
s_model_set (const agents_state_t *self, const char *provider, const char *model)
{
    if (model && *model)
        return true;
    if (!streq (provider, "openai") && !streq (provider, "anthropic")
        && !streq (provider, "gemini") && !streq (provider, "ollama"))
        return true;  //  offline and n8n need none
    return streq (provider, self->default_provider) && self->default_model
           && *self->default_model;
}

//  Why an agent's fields are not acceptable, or NULL. creating: name and
//  system_prompt are required.
static const char *
s_agent_problem (const ChorusAgents__Agent *agent, bool creating)
{
    if (creating && (!agent->name || !*agent->name))
        return "name is required";
    if (agent->name && (!*agent->name || strlen (agent->name) > 100))
        return "name must be 1 to 100 characters";
    if (creating && !agent->system_prompt)
        return "system_prompt is required";
    if (agent->system_prompt && strlen (agent->system_prompt) > 100000)
        return "system_prompt must be at most 100000 characters";
    if (agent->description && strlen (agent->description) > 2000)
        return "description must be at most 2000 characters";
    if (agent->provider && *agent->provider
        && !agents_store_provider_known (agent->provider))
        return "provider must be openai, anthropic, gemini, ollama, n8n or offline";
    if (agent->model && strlen (agent->model) > 200)
        return "model must be at most 200 characters";
    if (agent->has_temperature
        && (isnan (agent->temperature) || agent->temperature < 0
            || agent->temperature > 2))
        return "temperature must be between 0 and 2";
    if (agent->has_max_tokens && (agent->max_tokens < 1 || agent->max_tokens > 200000))
        return "max_tokens must be between 1 and 200000";
    if (agent->thinking_mode && !streq (agent->thinking_mode, "quick")
        && !streq (agent->thinking_mode, "balanced")
        && !streq (agent->thinking_mode, "deep"))
        return "thinking_mode must be quick, balanced or deep";
    if (agent->knowledge_base_id && *agent->knowledge_base_id
        && !service_uuid_valid (agent->knowledge_base_id))
        return "knowledge_base_id must be a UUID";
    if (agent->webhook_url && *agent->webhook_url
        && strncmp (agent->webhook_url, "http://", 7) != 0
        && strncmp (agent->webhook_url, "https://", 8) != 0)
        return "webhook_url must be an http:// or https:// URL";
    if (agent->n_tools > 64)
        return "at most 64 tools";
    for (size_t i = 0; i < agent->n_tools; i++)
        if (!agent->tools[i]->name || !*agent->tools[i]->name)
            return "every tool needs a name";
    return NULL;
}

//  ---------------------------------------------------------------------------------
//  Agents

//  One agent of a list page, its tools included.
static ProtobufCMessage *
s_agent_row (service_call_t *call, PGresult *result, int row)
{
    char error[200] = "";
    ChorusAgents__Agent *agent = agents_store_read (result, row, error, sizeof error);
    if (!agent)
        core_log_error (service_runtime_log (call->runtime),
                        service_call_request_id (call), "agents.list: %s", error);
    return agent ? &agent->base : NULL;
}

static void
s_list_read (service_call_t *call, PGresult *result)
{
    service_call_reply_list_with (call, &chorus_agents__agent_list__descriptor, result,
                                  call->limit, s_agent_row);
}

void
agents_store_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__list_request__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_user (call))
        return;
    ChorusAgents__ListRequest *args = (ChorusAgents__ListRequest *) call->args;
    if (!service_call_take_cursor (call, args->cursor))
        return;
    call->limit = service_call_page_limit (args->has_limit, args->limit);
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->limit + 1);
    const char *params[] = {service_call_tenant (call), args->cursor ? args->cursor : "",
                            limit};
    service_call_query (
        call, s_list_read,
        "SELECT " AGENTS_COLUMNS ", agents.cursor_of (a.created_at, a.id) "
        "AS _cursor FROM agents.agents a WHERE a.tenant_id = $1 AND " S_AFTER (
            "a.created_at", "a.id") " ORDER BY a.created_at DESC, a.id DESC LIMIT $3",
        3, params);
}

static void
s_agent_read (service_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (call, "not_found", "no such agent");
        return;
    }
    char error[200] = "";
    ChorusAgents__Agent *agent = agents_store_read (result, 0, error, sizeof error);
    if (!agent) {
        core_log_error (service_runtime_log (call->runtime),
                        service_call_request_id (call), "agent: %s", error);
        service_call_fail (call, "internal", "the agent could not be read");
        return;
    }
    service_call_reply (call, &agent->base);
    protobuf_c_message_free_unpacked (&agent->base, NULL);
}

//  Answer the agent whose id is in params[0] (tenant params[1]).
static void
s_agent_get (service_call_t *call, const char *id)
{
    const char *params[] = {id, service_call_tenant (call)};
    service_call_query (call, s_agent_read,
                        "SELECT " AGENTS_COLUMNS
                        "FROM agents.agents a WHERE a.id = $1 AND a.tenant_id = $2",
                        2, params);
}

void
agents_store_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__id_request__descriptor,
                                             sizeof (service_call_t));
    char id[SERVICE_ID_SIZE];
    if (!call || !service_call_require_user (call)
        || !service_call_take_id (call, ((ChorusAgents__IdRequest *) call->args)->id, id,
                                  "agent"))
        return;
    s_agent_get (call, id);
}

//  A call that remembers the id of the agent it changes.
typedef struct {
    service_call_t base;       //  the call
    char id[SERVICE_ID_SIZE];  //  agent id
    agents_body_t *body;       //  create/update: what the body said, or NULL
} s_agent_call_t;

static void
s_agent_call_free (service_call_t *call)
{
    agents_body_destroy (&((s_agent_call_t *) call)->body);
}

//  Start a create or update call: the Agent of its body (agents_body) becomes its
//  args, the rest stays in the call's body. NULL when the call was answered (a bad
//  body, not an admin).
static s_agent_call_t *
s_agent_call_new (service_runtime_t *runtime, void *state, bus_request_t **request_p)
{
    char error[200] = "";
    agents_body_t *body = agents_body_new (bus_request_body (*request_p),
                                           bus_request_size (*request_p), error,
                                           sizeof error);
    //  The call decodes an IdRequest (unknown keys ignored); the Agent replaces it
    service_call_t *call = service_call_new (runtime, state, request_p,
                                             &chorus_agents__id_request__descriptor,
                                             sizeof (s_agent_call_t));
    if (!call) {
        agents_body_destroy (&body);
        return NULL;
    }
    s_agent_call_t *change = (s_agent_call_t *) call;
    change->body = body;
    call->free_fn = s_agent_call_free;
    if (body) {
        protobuf_c_message_free_unpacked (call->args, NULL);
        call->args = &agents_body_take_agent (body)->base;
    }
    if (!service_call_require_admin (call))
        return NULL;
    if (!body) {
        service_call_fail (call, "bad_request", error);
        return NULL;
    }
    return change;
}

static void
s_agent_changed (service_call_t *call, PGresult *result)
{
    (void) result;
    s_agent_get (call, ((s_agent_call_t *) call)->id);
}

//  The text of an optional number for a SQL parameter.
static const char *
s_number (char *buf, size_t size, bool has, double value, bool integer)
{
    if (!has)
        return NULL;
    if (integer)
        snprintf (buf, size, "%lld", (long long) value);
    else
        snprintf (buf, size, "%.17g", value);
    return buf;
}

void
agents_store_create (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    agents_state_t *self = (agents_state_t *) state;
    s_agent_call_t *change = s_agent_call_new (runtime, state, &request);
    if (!change)
        return;
    service_call_t *call = &change->base;
    ChorusAgents__Agent *agent = (ChorusAgents__Agent *) call->args;
    const char *problem = s_agent_problem (agent, true);
    const char *provider = agent->provider && *agent->provider ? agent->provider
                                                               : self->default_provider;
    if (!problem && streq (provider, "n8n")
        && (!agent->webhook_url || !*agent->webhook_url))
        problem = "an n8n agent needs webhook_url";
    const char *model = agent->model                               ? agent->model
                        : streq (provider, self->default_provider) ? self->default_model
                                                                   : "";
    if (!problem && !s_model_set (self, provider, model))
        problem = S_NO_MODEL;
    if (problem) {
        service_call_fail (call, "bad_request", problem);
        return;
    }
    service_uuid_new (change->id);
    char temperature[32], max_tokens[16];
    char *tools = s_tools_json (agent);
    const char *params[] = {
        change->id,
        service_call_tenant (call),
        agent->name,
        agent->description ? agent->description : "",
        agent->system_prompt,
        provider,
        model,
        s_number (temperature, sizeof temperature, agent->has_temperature,
                  agent->temperature, false),
        s_number (max_tokens, sizeof max_tokens, agent->has_max_tokens, agent->max_tokens,
                  true),
        agent->thinking_mode ? agent->thinking_mode : "balanced",
        tools,
        agent->knowledge_base_id && *agent->knowledge_base_id ? agent->knowledge_base_id
                                                              : NULL,
        agent->has_enabled && !agent->enabled ? "false" : "true",
        agent->webhook_url && *agent->webhook_url ? agent->webhook_url : NULL};
    db_stmt_t stmts[] = {
        {"INSERT INTO agents.agents (id, tenant_id, name, description, system_prompt, "
         "provider, model, temperature, max_tokens, thinking_mode, tools, "
         "knowledge_base_id, enabled, webhook_url) VALUES ($1, $2, $3, $4, $5, $6, $7, "
         "$8::float8, $9::integer, $10, $11::jsonb, $12::uuid, $13::boolean, $14)",
         14, params}};
    ChorusAgents__Agent event = CHORUS_AGENTS__AGENT__INIT;
    event.id = change->id;
    event.name = agent->name;
    event.provider = (char *) provider;
    event.model = (char *) model;
    call->conflict = "an agent with this name exists in the tenant";
    service_call_emit (call, s_agent_changed, service_call_tenant (call),
                       "agents.agent.created", &event.base, stmts, 1);
    free (tools);
}

void
agents_store_update (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    agents_state_t *self = (agents_state_t *) state;
    s_agent_call_t *change = s_agent_call_new (runtime, state, &request);
    if (!change)
        return;
    service_call_t *call = &change->base;
    const agents_body_t *body = change->body;
    if (!service_call_take_id (call, ((ChorusAgents__Agent *) call->args)->id, change->id,
                               "agent"))
        return;
    ChorusAgents__Agent *agent = (ChorusAgents__Agent *) call->args;
    const char *problem = s_agent_problem (agent, false);
    if (!problem && agents_body_null (body, "name"))
        problem = "name cannot be null";
    if (!problem && agents_body_null (body, "system_prompt"))
        problem = "system_prompt cannot be null";
    if (problem) {
        service_call_fail (call, "bad_request", problem);
        return;
    }
    //  Absent fields stay; null puts back the default (temperature and max_tokens:
    //  none; provider: the platform's); tools [] or null clears them
    char temperature[32], max_tokens[16], enabled[8];
    char *tools = agents_body_tools_given (body) ? s_tools_json (agent) : NULL;
    snprintf (enabled, sizeof enabled, "%s",
              agents_body_null (body, "enabled") || agent->enabled ? "true" : "false");
    const char *provider = agent->provider && *agent->provider   ? agent->provider
                           : agents_body_null (body, "provider") ? self->default_provider
                                                                 : NULL;
    const char *params[] = {
        change->id,
        service_call_tenant (call),
        agent->name,
        agents_body_null (body, "description") ? "" : agent->description,
        agent->system_prompt,
        provider,
        agents_body_null (body, "model") ? "" : agent->model,
        agents_body_null (body, "temperature")
            ? ""
            : s_number (temperature, sizeof temperature, agent->has_temperature,
                        agent->temperature, false),
        agents_body_null (body, "max_tokens")
            ? ""
            : s_number (max_tokens, sizeof max_tokens, agent->has_max_tokens,
                        agent->max_tokens, true),
        agents_body_null (body, "thinking_mode") ? "balanced" : agent->thinking_mode,
        tools,
        agents_body_null (body, "knowledge_base_id") ? "" : agent->knowledge_base_id,
        agent->has_enabled || agents_body_null (body, "enabled") ? enabled : NULL,
        agents_body_null (body, "webhook_url") ? "" : agent->webhook_url,
        self->default_provider,
        self->default_model ? self->default_model : ""};
    //  "" clears the nullable ones; a change of provider or model must leave one
    //  that can run a turn (other changes pass, so an agent stored before that
    //  rule can still be edited or disabled)
    db_stmt_t stmts[] = {
        {"WITH changed AS (UPDATE agents.agents SET name = COALESCE ($3, name), "
         "description = COALESCE ($4, description), system_prompt = COALESCE ($5, "
         "system_prompt), provider = COALESCE ($6, provider), model = COALESCE ($7, "
         "model), temperature = CASE WHEN $8::text IS NULL THEN temperature ELSE "
         "NULLIF ($8, '')::float8 END, max_tokens = CASE WHEN $9::text IS NULL THEN "
         "max_tokens ELSE NULLIF ($9, '')::integer END, thinking_mode = COALESCE ($10, "
         "thinking_mode), tools = COALESCE ($11::jsonb, tools), knowledge_base_id = "
         "CASE WHEN $12::text IS NULL THEN knowledge_base_id ELSE NULLIF ($12, "
         "'')::uuid END, enabled = COALESCE ($13::boolean, enabled), webhook_url = CASE "
         "WHEN $14::text IS NULL THEN webhook_url ELSE NULLIF ($14, '') END, "
         "updated_at = clock_timestamp () WHERE id = $1 AND tenant_id = $2 RETURNING "
         "provider, model, webhook_url) SELECT agents.require (count (*) = 1, "
         "'not_found', 'no such agent') AND agents.require (bool_and (provider <> 'n8n' "
         "OR webhook_url IS NOT NULL) IS NOT FALSE, 'bad_request', 'an n8n agent needs "
         "webhook_url') AND agents.require (bool_and (($6::text IS NULL AND $7::text "
         "IS NULL) OR provider NOT IN ('openai', 'anthropic', 'gemini', 'ollama') OR "
         "model <> '' OR (provider = $15 AND $16 <> '')) IS NOT FALSE, 'bad_request', "
         "'" S_NO_MODEL "') FROM changed",
         16, params}};
    ChorusAgents__Agent event = CHORUS_AGENTS__AGENT__INIT;
    event.id = change->id;
    call->conflict = "an agent with this name exists in the tenant";
    service_call_emit (call, s_agent_changed, service_call_tenant (call),
                       "agents.agent.updated", &event.base, stmts, 1);
    free (tools);
}

void
agents_store_delete (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__id_request__descriptor,
                                             sizeof (s_agent_call_t));
    s_agent_call_t *change = (s_agent_call_t *) call;
    if (!call || !service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusAgents__IdRequest *) call->args)->id,
                                  change->id, "agent"))
        return;
    const char *params[] = {change->id, service_call_tenant (call)};
    db_stmt_t stmts[] = {
        {"WITH gone AS (DELETE FROM agents.agents WHERE id = $1 AND tenant_id = $2 "
         "RETURNING 1) SELECT agents.require (count (*) = 1, 'not_found', 'no such "
         "agent') FROM gone",
         2, params}};
    ChorusAgents__Agent event = CHORUS_AGENTS__AGENT__INIT;
    event.id = change->id;
    service_call_emit (call, service_call_done_empty, service_call_tenant (call),
                       "agents.agent.deleted", &event.base, stmts, 1);
}

//  ---------------------------------------------------------------------------------
//  Avatars

const char *
agents_store_avatar_type (const uint8_t *data, size_t size)
{
    if (!data)
        return NULL;
    if (size >= 8 && memcmp (data, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (size >= 3 && memcmp (data, "\xff\xd8\xff", 3) == 0)
        return "image/jpeg";
    if (size >= 12 && memcmp (data, "RIFF", 4) == 0 && memcmp (data + 8, "WEBP", 4) == 0)
        return "image/webp";
    if (size >= 6 && (memcmp (data, "GIF87a", 6) == 0 || memcmp (data, "GIF89a", 6) == 0))
        return "image/gif";
    return NULL;
}

//  The type/subtype of a Content-Type value into out, lower case, without its
//  parameters and the spaces around it (RFC 9110 8.3.1); "" when too long.
static void
s_media_type (const char *value, char *out, size_t size)
{
    assert (size > 0);
    const char *start = value ? value : "";
    while (*start == ' ' || *start == '\t')
        start++;
    size_t len = strcspn (start, ";");
    while (len && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len >= size)
        len = 0;
    for (size_t i = 0; i < len; i++)
        out[i] = (char) tolower ((unsigned char) start[i]);
    out[len] = 0;
}

//  Why an avatar upload is not acceptable, or NULL: the declared type (its
//  type/subtype in any case; parameters are ignored) must be one we store and the
//  bytes must be of that type.
static const char *
s_avatar_problem (const ChorusAgents__AvatarRequest *args)
{
    char declared[32];
    s_media_type (args->content_type, declared, sizeof declared);
    if (!streq (declared, "image/png") && !streq (declared, "image/jpeg")
        && !streq (declared, "image/webp") && !streq (declared, "image/gif"))
        return "Content-Type must be image/png, image/jpeg, image/webp or image/gif";
    const char *found = args->has_data
                            ? agents_store_avatar_type (args->data.data, args->data.len)
                            : NULL;
    if (!found)
        return "the body is not a PNG, JPEG, WebP or GIF image";
    if (!streq (found, declared))
        return "the image does not match its Content-Type";
    return NULL;
}

void
agents_store_avatar_put (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__avatar_request__descriptor,
                                             sizeof (s_agent_call_t));
    s_agent_call_t *change = (s_agent_call_t *) call;
    if (!call || !service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusAgents__AvatarRequest *) call->args)->id,
                                  change->id, "agent"))
        return;
    ChorusAgents__AvatarRequest *args = (ChorusAgents__AvatarRequest *) call->args;
    const char *problem = s_avatar_problem (args);
    if (problem) {
        service_call_fail (call, "bad_request", problem);
        return;
    }
    //  bytea in PostgreSQL's hex text form: \x and two digits a byte
    size_t hex_size = 2 + args->data.len * 2 + 1;
    char *hex = malloc (hex_size);
    assert (hex);
    hex[0] = '\\';
    hex[1] = 'x';
    sodium_bin2hex (hex + 2, hex_size - 2, args->data.data, args->data.len);
    //  Stored as the bytes are: its type, served back as Content-Type
    const char *type = agents_store_avatar_type (args->data.data, args->data.len);
    const char *params[] = {change->id, service_call_tenant (call), type, hex};
    db_stmt_t stmts[] = {
        {"WITH saved AS (INSERT INTO agents.agent_avatars (agent_id, content_type, data) "
         "SELECT a.id, $3, $4::bytea FROM agents.agents a WHERE a.id = $1 AND "
         "a.tenant_id = $2 ON CONFLICT (agent_id) DO UPDATE SET content_type = "
         "EXCLUDED.content_type, data = EXCLUDED.data, updated_at = clock_timestamp () "
         "RETURNING 1) SELECT agents.require (count (*) = 1, 'not_found', 'no such "
         "agent') FROM saved",
         4, params}};
    ChorusAgents__Agent event = CHORUS_AGENTS__AGENT__INIT;
    event.id = change->id;
    service_call_emit (call, s_agent_changed, service_call_tenant (call),
                       "agents.agent.updated", &event.base, stmts, 1);
    free (hex);
}

static void
s_avatar_read (service_call_t *call, PGresult *result)
{
    service_call_reply_row (call, result, &chorus_agents__avatar_reply__descriptor,
                            "avatar");
}

void
agents_store_avatar_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__avatar_request__descriptor,
                                             sizeof (service_call_t));
    char id[SERVICE_ID_SIZE];
    if (!call || !service_call_require_user (call)
        || !service_call_take_id (call, ((ChorusAgents__AvatarRequest *) call->args)->id,
                                  id, "avatar"))
        return;
    const char *params[] = {id, service_call_tenant (call)};
    service_call_query (call, s_avatar_read,
                        "SELECT 200 AS status, v.content_type, v.data AS body FROM "
                        "agents.agent_avatars v JOIN agents.agents a ON a.id = "
                        "v.agent_id WHERE a.id = $1 AND a.tenant_id = $2",
                        2, params);
}

void
agents_store_avatar_delete (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__avatar_request__descriptor,
                                             sizeof (s_agent_call_t));
    s_agent_call_t *change = (s_agent_call_t *) call;
    if (!call || !service_call_require_admin (call)
        || !service_call_take_id (call, ((ChorusAgents__AvatarRequest *) call->args)->id,
                                  change->id, "avatar"))
        return;
    const char *params[] = {change->id, service_call_tenant (call)};
    db_stmt_t stmts[] = {
        {"WITH gone AS (DELETE FROM agents.agent_avatars v USING agents.agents a WHERE "
         "v.agent_id = a.id AND a.id = $1 AND a.tenant_id = $2 RETURNING 1) SELECT "
         "agents.require (count (*) = 1, 'not_found', 'no such avatar') FROM gone",
         2, params}};
    ChorusAgents__Agent event = CHORUS_AGENTS__AGENT__INIT;
    event.id = change->id;
    service_call_emit (call, service_call_done_empty, service_call_tenant (call),
                       "agents.agent.updated", &event.base, stmts, 1);
}

//  ---------------------------------------------------------------------------------
//  Provider settings

static void
s_providers_read (service_call_t *call, PGresult *result)
{
    ChorusAgents__ProviderList *list = (ChorusAgents__ProviderList *) db_message_new (
        &chorus_agents__provider_list__descriptor);
    char error[200] = "";
    if (db_message_append_rows (&list->base, "data", result, error, sizeof error)) {
        protobuf_c_message_free_unpacked (&list->base, NULL);
        service_call_fail (call, "internal", "the providers could not be read");
        return;
    }
    service_call_reply (call, &list->base);
    protobuf_c_message_free_unpacked (&list->base, NULL);
}

#define S_PROVIDER_COLUMNS                                                               \
    "provider, base_url, api_key_sealed IS NOT NULL AS has_api_key, agents.rfc3339 "     \
    "(updated_at) AS updated_at FROM agents.provider_settings "

void
agents_store_providers_list (service_runtime_t *runtime, bus_request_t *request,
                             void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__list_request__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_admin (call))
        return;
    const char *params[] = {service_call_tenant (call)};
    service_call_query (
        call, s_providers_read,
        "SELECT " S_PROVIDER_COLUMNS "WHERE tenant_id = $1 ORDER BY provider", 1, params);
}

static void
s_provider_read (service_call_t *call, PGresult *result)
{
    service_call_reply_row (call, result, &chorus_agents__provider_setting__descriptor,
                            "provider setting");
}

void
agents_store_providers_put (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    agents_state_t *self = (agents_state_t *) state;
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__provider_setting__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_admin (call))
        return;
    ChorusAgents__ProviderSetting *setting = (ChorusAgents__ProviderSetting *) call->args;
    if (!agents_store_provider_known (setting->provider)
        || streq (setting->provider, "offline")) {
        service_call_fail (call, "not_found",
                           "no such provider (openai, anthropic, gemini, ollama, n8n)");
        return;
    }
    if (setting->base_url && *setting->base_url
        && strncmp (setting->base_url, "http://", 7) != 0
        && strncmp (setting->base_url, "https://", 8) != 0) {
        service_call_fail (call, "bad_request", "base_url must be an http(s) URL");
        return;
    }
    char *sealed = NULL;
    if (setting->api_key && *setting->api_key) {
        if (!self->box) {
            service_call_fail (call, "unavailable",
                               "CHORUS_SECRET_KEY is not set: keys cannot be stored");
            return;
        }
        sealed = auth_secretbox_seal (self->box, setting->api_key);
        if (!sealed) {
            service_call_fail (call, "bad_request", "api_key is too long");
            return;
        }
    }
    //  Absent fields stay as they were; "" clears
    const char *params[] = {service_call_tenant (call), setting->provider,
                            setting->api_key ? (sealed ? sealed : "") : NULL,
                            setting->base_url};
    service_call_query (
        call, s_provider_read,
        "WITH saved AS (INSERT INTO agents.provider_settings (tenant_id, provider, "
        "api_key_sealed, base_url) VALUES ($1, $2, NULLIF ($3, ''), NULLIF ($4, '')) ON "
        "CONFLICT (tenant_id, provider) DO UPDATE SET api_key_sealed = CASE WHEN "
        "$3::text "
        "IS NULL THEN provider_settings.api_key_sealed ELSE NULLIF ($3, '') END, "
        "base_url "
        "= CASE WHEN $4::text IS NULL THEN provider_settings.base_url ELSE NULLIF ($4, "
        "'') "
        "END, updated_at = clock_timestamp () RETURNING *) SELECT provider, base_url, "
        "api_key_sealed IS NOT NULL AS has_api_key, agents.rfc3339 (updated_at) AS "
        "updated_at FROM saved",
        4, params);
    if (sealed) {
        sodium_memzero (sealed, strlen (sealed));
        free (sealed);
    }
}

static void
s_provider_deleted (service_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1)
        service_call_fail (call, "not_found", "no such provider setting");
    else
        service_call_reply (call, NULL);
}

void
agents_store_providers_delete (service_runtime_t *runtime, bus_request_t *request,
                               void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__provider_setting__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_admin (call))
        return;
    ChorusAgents__ProviderSetting *setting = (ChorusAgents__ProviderSetting *) call->args;
    const char *params[] = {service_call_tenant (call),
                            setting->provider ? setting->provider : ""};
    service_call_query (call, s_provider_deleted,
                        "DELETE FROM agents.provider_settings WHERE tenant_id = $1 AND "
                        "provider = $2 RETURNING provider",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  GET /v1/models

static void
s_models_read (service_call_t *call, PGresult *result)
{
    ChorusAgents__OpenAIModelList *list = (ChorusAgents__OpenAIModelList *)
        db_message_new (&chorus_agents__open_aimodel_list__descriptor);
    list->object = strdup ("list");
    assert (list->object);
    char error[200] = "";
    if (db_message_append_rows (&list->base, "data", result, error, sizeof error)) {
        protobuf_c_message_free_unpacked (&list->base, NULL);
        service_call_fail (call, "internal", "the models could not be read");
        return;
    }
    service_call_reply (call, &list->base);
    protobuf_c_message_free_unpacked (&list->base, NULL);
}

void
agents_store_openai_models (service_runtime_t *runtime, bus_request_t *request,
                            void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__list_request__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_user (call))
        return;
    const char *params[] = {service_call_tenant (call)};
    service_call_query (call, s_models_read,
                        "SELECT name AS id, 'model' AS object, extract (epoch FROM "
                        "created_at)::bigint AS created, 'chorus' AS owned_by FROM "
                        "agents.agents WHERE tenant_id = $1 AND enabled ORDER BY "
                        "created_at, id",
                        1, params);
}

static void
s_model_read (service_call_t *call, PGresult *result)
{
    char error[200] = "";
    ProtobufCMessage *model = PQntuples (result) == 1 ? db_message_from_row (
                                  &chorus_agents__open_aimodel__descriptor, result, 0,
                                  error, sizeof error)
                                                      : NULL;
    if (!model) {
        //  OpenAI's words and code for a model the caller cannot use
        const char *asked = ((ChorusAgents__IdRequest *) call->args)->id;
        char message[200];
        snprintf (message, sizeof message,
                  "The model '%.100s' does not exist or you do not have access to it.",
                  asked ? asked : "");
        service_call_fail (call, "model_not_found", message);
        return;
    }
    service_call_reply (call, model);
    protobuf_c_message_free_unpacked (model, NULL);
}

void
agents_store_openai_model (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    service_call_t *call = service_call_new (runtime, state, &request,
                                             &chorus_agents__id_request__descriptor,
                                             sizeof (service_call_t));
    if (!call || !service_call_require_user (call))
        return;
    const char *asked = ((ChorusAgents__IdRequest *) call->args)->id;
    //  As /v1/chat/completions finds an agent: its id or its name (any case)
    const char *params[] = {service_call_tenant (call), asked ? asked : ""};
    service_call_query (call, s_model_read,
                        "SELECT name AS id, 'model' AS object, extract (epoch FROM "
                        "created_at)::bigint AS created, 'chorus' AS owned_by FROM "
                        "agents.agents WHERE tenant_id = $1 AND enabled AND (id::text = "
                        "lower ($2) OR lower (name) = lower ($2)) ORDER BY id::text = "
                        "lower ($2) DESC LIMIT 1",
                        2, params);
}

void
agents_store_test (bool verbose)
{
    (void) verbose;
    printf (" * agents_store: ");
    assert (agents_store_provider_known ("openai"));
    assert (agents_store_provider_known ("offline"));
    assert (!agents_store_provider_known ("bard"));
    assert (!agents_store_provider_known (NULL));
    ChorusAgents__Agent agent = CHORUS_AGENTS__AGENT__INIT;
    assert (s_agent_problem (&agent, true));
    agent.name = "Helper";
    assert (s_agent_problem (&agent, true));  //  no system prompt
    agent.system_prompt = "Be helpful.";
    assert (s_agent_problem (&agent, true) == NULL);
    agent.has_temperature = 1;
    agent.temperature = 2.5;
    assert (s_agent_problem (&agent, true));
    agent.temperature = 0.7;
    agent.thinking_mode = "lazy";
    assert (s_agent_problem (&agent, true));
    agent.thinking_mode = "deep";
    agent.webhook_url = "ftp://x";
    assert (s_agent_problem (&agent, true));
    agent.webhook_url = NULL;
    assert (s_agent_problem (&agent, false) == NULL);

    //  Tools go out as JSON and come back through the codec
    ChorusAgents__ToolBinding tool = CHORUS_AGENTS__TOOL_BINDING__INIT;
    tool.type = "function";
    tool.name = "get_weather";
    tool.parameters = "{\"type\":\"object\"}";
    ChorusAgents__ToolBinding *tools[] = {&tool};
    agent.tools = tools;
    agent.n_tools = 1;
    char *json = s_tools_json (&agent);
    assert (json && strstr (json, "get_weather"));
    ChorusAgents__Agent *read = (ChorusAgents__Agent *) db_message_new (
        &chorus_agents__agent__descriptor);
    char error[200];
    assert (s_read_tools (read, json, error, sizeof error) == 0);
    assert (read->n_tools == 1 && streq (read->tools[0]->name, "get_weather"));
    assert (streq (read->tools[0]->parameters, "{\"type\":\"object\"}"));
    assert (s_read_tools (read, "{not json", error, sizeof error) == -1);
    protobuf_c_message_free_unpacked (&read->base, NULL);
    free (json);

    //  A networked provider needs a model, its own or the platform's
    agents_state_t state = {.default_provider = "openai", .default_model = ""};
    assert (!s_model_set (&state, "openai", ""));
    assert (s_model_set (&state, "openai", "gpt-4o"));
    assert (s_model_set (&state, "n8n", "") && s_model_set (&state, "offline", ""));
    assert (!s_model_set (&state, "anthropic", NULL));
    state.default_model = "gpt-4o-mini";
    assert (s_model_set (&state, "openai", "") && !s_model_set (&state, "gemini", ""));

    //  Avatars: the type is the file's magic bytes, and must be the declared one
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0};
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0};
    static const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ";
    assert (streq (agents_store_avatar_type (png, sizeof png), "image/png"));
    assert (!agents_store_avatar_type (png, 7));
    assert (streq (agents_store_avatar_type (jpeg, sizeof jpeg), "image/jpeg"));
    assert (streq (agents_store_avatar_type (webp, sizeof webp), "image/webp"));
    assert (!agents_store_avatar_type ((const uint8_t *) "RIFF\0\0\0\0WAVE", 12));
    assert (
        streq (agents_store_avatar_type ((const uint8_t *) "GIF87a", 6), "image/gif"));
    assert (
        streq (agents_store_avatar_type ((const uint8_t *) "GIF89a..", 8), "image/gif"));
    assert (!agents_store_avatar_type ((const uint8_t *) "GIF88a", 6));
    assert (!agents_store_avatar_type ((const uint8_t *) "<svg", 4));
    assert (!agents_store_avatar_type (NULL, 0));
    ChorusAgents__AvatarRequest upload = CHORUS_AGENTS__AVATAR_REQUEST__INIT;
    upload.content_type = "image/png";
    upload.has_data = 1;
    upload.data.data = (uint8_t *) png;
    upload.data.len = sizeof png;
    assert (s_avatar_problem (&upload) == NULL);
    upload.content_type = "image/gif";  //  a PNG said to be a GIF
    assert (s_avatar_problem (&upload));
    upload.content_type = "image/svg+xml";
    assert (s_avatar_problem (&upload));
    upload.content_type = "IMAGE/PNG";  //  media types are case-insensitive
    assert (s_avatar_problem (&upload) == NULL);
    upload.content_type = " image/png ; charset=binary";  //  parameters are ignored
    assert (s_avatar_problem (&upload) == NULL);
    upload.content_type = "image/pngx";
    assert (s_avatar_problem (&upload));
    upload.content_type = NULL;
    assert (s_avatar_problem (&upload));
    upload.content_type = "image/jpeg";
    upload.data.data = (uint8_t *) jpeg;
    upload.data.len = sizeof jpeg;
    assert (s_avatar_problem (&upload) == NULL);
    upload.has_data = 0;
    assert (s_avatar_problem (&upload));
    printf ("OK\n");
}
