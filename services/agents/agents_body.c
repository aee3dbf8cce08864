/*  agents_body: what agents.create and agents.update read from their msgpack body.
    The codec reads the Agent but its tools, which are read here as JSON (OpenAI's
    shape: parameters a JSON Schema object, or its JSON text) and checked; the body
    also says which fields came as null, so that an update tells absent (kept) from
    null (the default). Used by agents_store.                                      */
#include "agents_body.h"

#include <assert.h>
#include <jansson.h>

#include "codec_json.h"
#include "codec_msgpack.h"

//  The tool types an agent may bind.
static const char *const s_tool_types[] = {"function", "integration", "workflow", "mcp"};

//  A string member of a tool as a new string into *out (absent or null: none),
//  an object as its JSON text when object_ok. -1 when it is of another type.
static int
s_tool_text (const json_t *tool, const char *key, bool object_ok, char **out)
{
    const json_t *value = json_object_get (tool, key);
    if (!value || json_is_null (value))
        return 0;
    if (json_is_string (value))
        *out = strdup (json_string_value (value));
    else if (object_ok && json_is_object (value))
        *out = json_dumps (value, JSON_COMPACT);
    else
        return -1;
    assert (*out);
    return 0;
}

//  Read the tools of a request body (JSON: OpenAI's shape, parameters a JSON Schema
//  object or its JSON text) into agent->tools, checked. -1 with error naming the
//  field when one is not acceptable.
static int
s_tools_from_json (ChorusAgents__Agent *agent, const json_t *tools, char *error,
                   size_t size)
{
    if (!json_is_array (tools)) {
        snprintf (error, size, "tools must be an array");
        return -1;
    }
    size_t count = json_array_size (tools);
    if (count > 64) {
        snprintf (error, size, "at most 64 tools");
        return -1;
    }
    if (count == 0)
        return 0;
    agent->tools = calloc (count, sizeof (ChorusAgents__ToolBinding *));
    assert (agent->tools);
    agent->n_tools = count;  //  free_unpacked frees the slots filled so far
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get (tools, i);
        if (!json_is_object (item)) {
            snprintf (error, size, "tools[%zu] must be an object", i);
            return -1;
        }
        ChorusAgents__ToolBinding *tool = malloc (sizeof *tool);
        assert (tool);
        chorus_agents__tool_binding__init (tool);
        agent->tools[i] = tool;
        const char *field = NULL;
        if (s_tool_text (item, "name", false, &tool->name) || !tool->name || !*tool->name)
            field = "name is required (a string)";
        else if (s_tool_text (item, "type", false, &tool->type))
            field = "type must be function, integration, workflow or mcp";
        else if (s_tool_text (item, "description", false, &tool->description))
            field = "description must be a string";
        else if (s_tool_text (item, "config", true, &tool->config))
            field = "config must be an object or its JSON text";
        if (!field) {
            bool known = !tool->type;
            for (size_t t = 0; !known && t < sizeof s_tool_types / sizeof *s_tool_types;
                 t++)
                known = streq (tool->type, s_tool_types[t]);
            if (!known)
                field = "type must be function, integration, workflow or mcp";
            else if (!tool->type) {
                tool->type = strdup ("function");  //  OpenAI's only kind
                assert (tool->type);
            }
        }
        //  parameters: a JSON Schema object, given as such or as its JSON text
        const json_t *parameters = json_object_get (item, "parameters");
        if (!field && parameters && !json_is_null (parameters)) {
            json_t *parsed = json_is_string (parameters)
                                 ? json_loads (json_string_value (parameters),
                                               JSON_DECODE_ANY, NULL)
                                 : json_incref ((json_t *) parameters);
            if (json_is_object (parsed)) {
                tool->parameters = json_dumps (parsed, JSON_COMPACT);
                assert (tool->parameters);
            }
            else
                field = "parameters must be a JSON Schema object (or its JSON text)";
            json_decref (parsed);
        }
        if (field) {
            snprintf (error, size, "tools[%zu].%s", i, field);
            return -1;
        }
    }
    return 0;
}

struct _agents_body_t {
    ChorusAgents__Agent *agent;  //  the body's Agent, tools included (until taken)
    bool tools_given;            //  "tools" was in the body (null: none)
    uint32_t nulls;              //  bit (1 << field number) per field given as null
};

//  Read a body into body (zeroed). -1 with error filled when it is not an
//  acceptable Agent.
static int
s_read (const uint8_t *data, size_t size, agents_body_t *body, char *error,
        size_t error_size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    static const uint8_t empty_map = 0x80;
    if (size == 0) {
        data = &empty_map;
        size = 1;
    }
    if (codec_check_unpack (data, size, &unpacked, error, error_size)) {
        msgpack_unpacked_destroy (&unpacked);
        return -1;
    }
    const msgpack_object *root = &unpacked.data;
    if (root->type != MSGPACK_OBJECT_MAP) {
        snprintf (error, error_size, "not a map (got %s)",
                  codec_check_type_name (root->type));
        msgpack_unpacked_destroy (&unpacked);
        return -1;
    }
    //  The body again without its tools, for the codec; nulls noted on the way
    const msgpack_object *tools = NULL;
    int rc = 0;
    uint32_t others = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *key = &root->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == 5
            && memcmp (key->via.str.ptr, "tools", 5) == 0) {
            if (tools) {
                snprintf (error, error_size, "field 'tools': duplicate key");
                rc = -1;
            }
            tools = &root->via.map.ptr[i].val;
        }
        else
            others++;
    }
    msgpack_sbuffer rest;
    msgpack_sbuffer_init (&rest);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &rest, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, others);
    for (uint32_t i = 0; rc == 0 && i < root->via.map.size; i++) {
        const msgpack_object *key = &root->via.map.ptr[i].key;
        const msgpack_object *val = &root->via.map.ptr[i].val;
        if (val == tools)
            continue;
        msgpack_pack_object (&pk, *key);
        msgpack_pack_object (&pk, *val);
        if (key->type == MSGPACK_OBJECT_STR && val->type == MSGPACK_OBJECT_NIL
            && key->via.str.size < 32) {
            char name[32];
            memcpy (name, key->via.str.ptr, key->via.str.size);
            name[key->via.str.size] = 0;
            const ProtobufCFieldDescriptor
                *field = protobuf_c_message_descriptor_get_field_by_name (
                    &chorus_agents__agent__descriptor, name);
            if (field && field->id < 32)
                body->nulls |= 1u << field->id;
        }
    }
    if (rc == 0)
        body->agent = (ChorusAgents__Agent *) codec_decode (
            &chorus_agents__agent__descriptor, rest.data, rest.size, error, error_size);
    msgpack_sbuffer_destroy (&rest);
    if (body->agent && tools) {
        body->tools_given = true;
        json_t *json = tools->type == MSGPACK_OBJECT_NIL
                           ? NULL
                           : codec_msgpack_to_jansson (tools);
        if (tools->type != MSGPACK_OBJECT_NIL
            && (!json || s_tools_from_json (body->agent, json, error, error_size))) {
            if (!json)
                snprintf (error, error_size, "tools: nested too deep");
            protobuf_c_message_free_unpacked (&body->agent->base, NULL);
            body->agent = NULL;
        }
        json_decref (json);
    }
    msgpack_unpacked_destroy (&unpacked);
    return body->agent ? 0 : -1;
}

agents_body_t *
agents_body_new (const uint8_t *data, size_t size, char *error, size_t error_size)
{
    agents_body_t *self = calloc (1, sizeof *self);
    assert (self);
    if (s_read (data, size, self, error, error_size))
        agents_body_destroy (&self);
    return self;
}

void
agents_body_destroy (agents_body_t **self_p)
{
    agents_body_t *self = *self_p;
    if (!self)
        return;
    if (self->agent)
        protobuf_c_message_free_unpacked (&self->agent->base, NULL);
    free (self);
    *self_p = NULL;
}

ChorusAgents__Agent *
agents_body_take_agent (agents_body_t *self)
{
    ChorusAgents__Agent *agent = self->agent;
    self->agent = NULL;
    return agent;
}

bool
agents_body_tools_given (const agents_body_t *self)
{
    return self->tools_given;
}

bool
agents_body_null (const agents_body_t *self, const char *field)
{
    const ProtobufCFieldDescriptor
        *found = protobuf_c_message_descriptor_get_field_by_name (
            &chorus_agents__agent__descriptor, field);
    assert (found && found->id < 32);
    return (self->nulls >> found->id) & 1;
}

void
agents_body_test (bool verbose)
{
    (void) verbose;
    printf (" * agents_body: ");
    char error[200];
    const char *const good[] = {
        "{\"name\":\"a\",\"tools\":[{\"name\":\"t\",\"parameters\":{\"type\":"
        "\"object\"}}],\"temperature\":null}",
        "{\"tools\":[{\"type\":\"mcp\",\"name\":\"t\",\"parameters\":\"{\\\"type\\\":"
        "\\\"object\\\"}\"}]}",
        "{\"tools\":[],\"max_tokens\":null}", "{\"tools\":null}", "{}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        assert (codec_json_to_msgpack (good[i], strlen (good[i]), &buf, NULL, 0) == 0);
        agents_body_t *body = agents_body_new ((const uint8_t *) buf.data, buf.size,
                                               error, sizeof error);
        msgpack_sbuffer_destroy (&buf);
        assert (body);
        assert (agents_body_tools_given (body) == (i < 4));
        assert (agents_body_null (body, "temperature") == (i == 0));
        assert (agents_body_null (body, "max_tokens") == (i == 2));
        assert (!agents_body_null (body, "tools") || i == 3);
        ChorusAgents__Agent *agent = agents_body_take_agent (body);
        assert (agent && !agents_body_take_agent (body));
        assert (agent->n_tools == (i < 2 ? 1u : 0u));
        if (i < 2)
            assert (streq (agent->tools[0]->parameters, "{\"type\":\"object\"}")
                    && streq (agent->tools[0]->type, i ? "mcp" : "function"));
        protobuf_c_message_free_unpacked (&agent->base, NULL);
        agents_body_destroy (&body);
        agents_body_destroy (&body);  //  harmless on NULL
    }
    const char *const bad[][2] = {
        {"{\"tools\":[{\"name\":\"t\",\"parameters\":\"not json\"}]}",
         "tools[0].parameters"},
        {"{\"tools\":[{\"name\":\"t\",\"parameters\":[1]}]}", "tools[0].parameters"},
        {"{\"tools\":[{\"name\":\"t\",\"parameters\":\"[1]\"}]}", "tools[0].parameters"},
        {"{\"tools\":[{\"name\":\"t\"},{\"name\":\"u\",\"type\":\"weird\"}]}",
         "tools[1].type"},
        {"{\"tools\":[{\"type\":\"function\"}]}", "tools[0].name"},
        {"{\"tools\":{}}", "tools must be an array"},
        {"{\"tools\":[\"t\"]}", "tools[0] must be an object"},
        {"{\"name\":1,\"tools\":[]}", "name"},
        {"[]", "not a map"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        assert (codec_json_to_msgpack (bad[i][0], strlen (bad[i][0]), &buf, NULL, 0)
                == 0);
        agents_body_t *body = agents_body_new ((const uint8_t *) buf.data, buf.size,
                                               error, sizeof error);
        msgpack_sbuffer_destroy (&buf);
        if (!strstr (error, bad[i][1]))
            fprintf (stderr, "%s: %s\n", bad[i][0], error);
        assert (!body && strstr (error, bad[i][1]));
    }

    printf ("OK\n");
}
