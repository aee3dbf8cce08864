/*  edge_openapi: OpenAPI 3.1 document generated from the route table.             */
#include "edge_openapi.h"
#include "edge_routes.h"
#include "edge_sse.h"
#include "edge_webhook.h"

#include "agents.pb-c.h"
#include "auth.pb-c.h"
#include "bus.pb-c.h"
#include "channels.pb-c.h"
#include "chat.pb-c.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  The edge's own bodies; the rest are generated from the protobuf descriptors.
static const char s_components[] =
    "{\"schemas\":{"
    "\"Error\":{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":"
    "{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{"
    "\"code\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}}}},"
    "\"OpenAIError\":{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{"
    "\"error\":{\"type\":\"object\",\"required\":[\"message\",\"type\",\"code\"],"
    "\"properties\":{\"message\":{\"type\":\"string\"},\"type\":{\"type\":\"string\","
    "\"enum\":[\"invalid_request_error\",\"authentication_error\",\"permission_error\","
    "\"rate_limit_error\",\"api_error\"]},\"param\":{\"type\":[\"string\",\"null\"],"
    "\"description\":\"The field a 400 refuses, as messages[0].content\"},\"code\":"
    "{\"type\":\"string\"}}}}},"
    "\"Status\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"}}},"
    "\"Ready\":{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},"
    "\"checks\":{\"type\":\"object\",\"properties\":{\"broker\":{\"type\":\"boolean\"},"
    "\"database\":{\"type\":\"boolean\"},\"redis\":{\"type\":\"boolean\"}}}}},"
    "\"WebhookAck\":{\"type\":\"object\",\"description\":\"The channels service's answer "
    "to a webhook it verified: what became of its items (schemas/channels.md)\","
    "\"properties\":{\"ok\":{\"type\":\"boolean\"},\"stored\":{\"type\":\"integer\"},"
    "\"duplicates\":{\"type\":\"integer\"},\"ignored\":{\"type\":\"integer\"},"
    "\"statuses\":{\"type\":\"integer\"}}}},"
    "\"securitySchemes\":{"
    "\"bearerAuth\":{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\","
    "\"description\":\"Authorization: Bearer <access token> (a JWT from a token answer), "
    "or an API key chr_...\"},"
    "\"cookieAuth\":{\"type\":\"apiKey\",\"in\":\"cookie\",\"name\":\"chorus_access\","
    "\"description\":\"The access token in the chorus_access cookie (set by token "
    "answers); the Authorization header wins over it\"}}}";

//  OpenAI's chat completion bodies (schemas/chat.md "The OpenAI-compatible API"):
//  what /v1/chat/completions takes and answers, as OpenAI documents them.
static const char s_openai_schemas[] =
    "{\"OpenAIChatRequest\":{\"type\":\"object\",\"required\":[\"model\",\"messages\"],"
    "\"description\":\"OpenAI's chat completion request; the agent's system prompt comes "
    "first, then messages. It is checked as OpenAI checks it: a refusal is 400 with "
    "param naming the field. OpenAI's other parameters (user, seed, stop, penalties, "
    "response_format, metadata, store, logprobs, ...) are type-checked and not used, as "
    "are top_p, tool_choice and parallel_tool_calls; fields OpenAI does not know are "
    "ignored.\",\"properties\":{\"model\":{\"type\":\"string\",\"description\":\"An "
    "agent's name (or id)\"},\"messages\":{\"type\":\"array\",\"minItems\":1,"
    "\"maxItems\":1000,\"items\":{\"type\":\"object\",\"required\":[\"role\"],"
    "\"properties\":{\"role\":{\"type\":\"string\",\"enum\":[\"system\",\"developer\","
    "\"user\",\"assistant\",\"tool\"]},\"content\":{\"description\":\"Required except on "
    "an assistant message with tool_calls\",\"anyOf\":[{\"type\":\"string\"},"
    "{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"object\","
    "\"required\":[\"type\",\"text\"],\"description\":\"Only text parts are supported: "
    "others (image_url, input_audio, file) are refused with 400\","
    "\"properties\":{\"type\":{\"type\":\"string\",\"enum\":[\"text\"]},"
    "\"text\":{\"type\":\"string\"}}}},{\"type\":\"null\"}]},"
    "\"name\":{\"type\":\"string\"},\"tool_call_id\":{\"type\":\"string\","
    "\"description\":\"Required on tool messages\"},\"tool_calls\":{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/components/schemas/OpenAIToolCall\"}}}}},"
    "\"stream\":{\"type\":\"boolean\",\"description\":\"Answer with "
    "chat.completion.chunk events (SSE) and data: [DONE]\"},"
    "\"stream_options\":{\"type\":\"object\","
    "\"properties\":{\"include_usage\":{\"type\":\"boolean\"}}},"
    "\"temperature\":{\"type\":\"number\",\"minimum\":0,\"maximum\":2},"
    "\"top_p\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "\"max_tokens\":{\"type\":\"integer\",\"minimum\":1},"
    "\"max_completion_tokens\":{\"type\":\"integer\",\"minimum\":1},"
    "\"n\":{\"type\":\"integer\",\"enum\":[1]},"
    "\"parallel_tool_calls\":{\"type\":\"boolean\"},\"tools\":{\"type\":\"array\","
    "\"maxItems\":128,\"items\":{\"type\":\"object\",\"required\":[\"type\","
    "\"function\"],\"properties\":{\"type\":{\"type\":\"string\","
    "\"enum\":[\"function\"]},\"function\":{\"type\":\"object\",\"required\":[\"name\"],"
    "\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[a-zA-Z0-9_-]{1,"
    "64}$\"},\"description\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\"},"
    "\"strict\":{\"type\":\"boolean\"}}}}}},"
    "\"tool_choice\":{\"anyOf\":[{\"type\":\"string\",\"enum\":[\"none\",\"auto\","
    "\"required\"]},{\"type\":\"object\",\"required\":[\"type\",\"function\"],"
    "\"properties\":{\"type\":{\"type\":\"string\",\"enum\":[\"function\"]},"
    "\"function\":{\"type\":\"object\",\"required\":[\"name\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"}}}}}]}}},"
    "\"OpenAIToolCall\":{\"type\":\"object\",\"properties\":{\"index\":{\"type\":"
    "\"integer\"},\"id\":{\"type\":\"string\"},\"type\":{\"type\":\"string\",\"enum\":"
    "[\"function\"]},\"function\":{\"type\":\"object\",\"properties\":{\"name\":{"
    "\"type\":\"string\"},\"arguments\":{\"type\":\"string\"}}}}},"
    "\"OpenAIUsage\":{\"type\":\"object\",\"properties\":{\"prompt_tokens\":{\"type\":"
    "\"integer\"},\"completion_tokens\":{\"type\":\"integer\"},\"total_tokens\":{"
    "\"type\":\"integer\"}}},"
    "\"OpenAIChatCompletion\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":"
    "\"string\"},\"object\":{\"type\":\"string\",\"enum\":[\"chat.completion\"]},"
    "\"created\":{\"type\":\"integer\"},\"model\":{\"type\":\"string\"},\"choices\":{"
    "\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"index\":{"
    "\"type\":\"integer\"},\"message\":{\"type\":\"object\",\"properties\":{\"role\":{"
    "\"type\":\"string\"},\"content\":{\"type\":[\"string\",\"null\"]},\"tool_calls\":"
    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/OpenAIToolCall\"}}}},"
    "\"finish_reason\":{\"type\":\"string\",\"enum\":[\"stop\",\"length\",\"tool_calls\","
    "\"content_filter\"]}}}},\"usage\":{\"$ref\":\"#/components/schemas/OpenAIUsage\"}}},"
    "\"OpenAIChatCompletionChunk\":{\"type\":\"object\",\"description\":\"The data of "
    "each SSE event of a streamed completion\",\"properties\":{\"id\":{\"type\":"
    "\"string\"},\"object\":{\"type\":\"string\",\"enum\":[\"chat.completion.chunk\"]},"
    "\"created\":{\"type\":\"integer\"},\"model\":{\"type\":\"string\"},\"choices\":{"
    "\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"index\":{"
    "\"type\":\"integer\"},\"delta\":{\"type\":\"object\",\"properties\":{\"role\":{"
    "\"type\":\"string\"},\"content\":{\"type\":[\"string\",\"null\"]},\"tool_calls\":"
    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/OpenAIToolCall\"}}}},"
    "\"finish_reason\":{\"type\":[\"string\",\"null\"]}}}},\"usage\":{\"anyOf\":[{"
    "\"$ref\":\"#/components/schemas/OpenAIUsage\"},{\"type\":\"null\"}]}}}}";

//  Message types the routes name, by schema name: the bus's replies, the auth,
//  agents and chat services' requests and replies. Nested messages are added
//  under their own name (agents.proto and chat.proto spell ToolCall alike).
static const ProtobufCMessageDescriptor *const s_messages[] = {
    &chorus_bus__broker_status__descriptor,
    &chorus_bus__ping_reply__descriptor,
    &chorus_bus__health_reply__descriptor,
    &chorus_auth__token_reply__descriptor,
    &chorus_auth__register_request__descriptor,
    &chorus_auth__login_request__descriptor,
    &chorus_auth__refresh_request__descriptor,
    &chorus_auth__switch_request__descriptor,
    &chorus_auth__me_reply__descriptor,
    &chorus_auth__password_change_request__descriptor,
    &chorus_auth__password_forgot_request__descriptor,
    &chorus_auth__password_reset_request__descriptor,
    &chorus_auth__status_reply__descriptor,
    &chorus_auth__invite__descriptor,
    &chorus_auth__invite_create_request__descriptor,
    &chorus_auth__invite_accept_request__descriptor,
    &chorus_auth__invite_list__descriptor,
    &chorus_auth__member__descriptor,
    &chorus_auth__member_list__descriptor,
    &chorus_auth__member_update_request__descriptor,
    &chorus_auth__tenant__descriptor,
    &chorus_auth__tenant_create_request__descriptor,
    &chorus_auth__tenant_update_request__descriptor,
    &chorus_auth__tenant_list__descriptor,
    &chorus_auth__api_key__descriptor,
    &chorus_auth__api_key_create_request__descriptor,
    &chorus_auth__api_key_list__descriptor,
    &chorus_auth__audit_list__descriptor,
    &chorus_agents__agent__descriptor,
    &chorus_agents__agent_list__descriptor,
    &chorus_agents__turn_request__descriptor,
    &chorus_agents__turn_result__descriptor,
    &chorus_agents__provider_setting__descriptor,
    &chorus_agents__provider_list__descriptor,
    &chorus_agents__open_aimodel_list__descriptor,
    &chorus_chat__conversation__descriptor,
    &chorus_chat__conversation_list__descriptor,
    &chorus_chat__conversation_detail__descriptor,
    &chorus_chat__conversation_create_request__descriptor,
    &chorus_chat__conversation_update_request__descriptor,
    &chorus_chat__message__descriptor,
    &chorus_chat__message_list__descriptor,
    &chorus_chat__send_request__descriptor,
    &chorus_chat__cancel_reply__descriptor,
    &chorus_chat__assign_request__descriptor,
    &chorus_channels__connection__descriptor,
    &chorus_channels__connection_list__descriptor,
    &chorus_channels__inbox_list__descriptor,
    &chorus_channels__outbound_list__descriptor,
    &chorus_channels__connection_test__descriptor,
};

static void s_add_message (json_t *schemas, const ProtobufCMessageDescriptor *desc);
static json_t *s_ref (const char *name);

const ProtobufCMessageDescriptor *
edge_openapi_message (const char *name)
{
    for (size_t i = 0; name && i < sizeof s_messages / sizeof s_messages[0]; i++)
        if (strcmp (s_messages[i]->short_name, name) == 0)
            return s_messages[i];
    return NULL;
}

//  The JSON schema of one field's value (without repetition).
static json_t *
s_field_value (json_t *schemas, const ProtobufCFieldDescriptor *field)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_BOOL:
            return json_pack ("{s:s}", "type", "boolean");
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_DOUBLE:
            return json_pack ("{s:s}", "type", "number");
        case PROTOBUF_C_TYPE_STRING:
            return json_pack ("{s:s}", "type", "string");
        case PROTOBUF_C_TYPE_BYTES:
            return json_pack ("{s:s, s:s}", "type", "string", "contentEncoding",
                              "base64");
        case PROTOBUF_C_TYPE_ENUM: {
            const ProtobufCEnumDescriptor *e = field->descriptor;
            json_t *names = json_array ();
            for (unsigned i = 0; i < e->n_values; i++)
                json_array_append_new (names, json_string (e->values[i].name));
            return json_pack ("{s:s, s:o}", "type", "string", "enum", names);
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessageDescriptor *m = field->descriptor;
            s_add_message (schemas, m);
            return s_ref (m->short_name);
        }
        default:  //  every integer type
            return json_pack ("{s:s}", "type", "integer");
    }
}

//  Add the schema of a message (and of the messages it holds) to schemas, under
//  its short name. proto2 optional fields may be null: the codec writes an absent
//  one as nil.
static void
s_add_message (json_t *schemas, const ProtobufCMessageDescriptor *desc)
{
    if (json_object_get (schemas, desc->short_name))
        return;
    json_t *properties = json_object ();
    json_t *schema = json_pack ("{s:s, s:o}", "type", "object", "properties", properties);
    json_object_set_new (schemas, desc->short_name, schema);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        json_t *value = s_field_value (schemas, field);
        if (field->label == PROTOBUF_C_LABEL_REPEATED)
            value = json_pack ("{s:s, s:o}", "type", "array", "items", value);
        else if (field->label == PROTOBUF_C_LABEL_OPTIONAL) {
            json_t *type = json_object_get (value, "type");
            if (json_is_string (type) && !json_object_get (value, "enum"))
                json_object_set_new (
                    value, "type",
                    json_pack ("[s, s]", json_string_value (type), "null"));
            else
                value = json_pack ("{s:[o, {s:s}]}", "anyOf", value, "type", "null");
        }
        json_object_set_new (properties, field->name, value);
    }
}

//  A JSON reference to a component schema.
static json_t *
s_ref (const char *name)
{
    char ref[128];
    snprintf (ref, sizeof ref, "#/components/schemas/%s", name);
    return json_pack ("{s:s}", "$ref", ref);
}

//  An error response object with the body schema named schema.
static json_t *
s_error_response_of (const char *description, const char *schema)
{
    return json_pack ("{s:s, s:{s:{s:o}}}", "description", description, "content",
                      "application/json", "schema", s_ref (schema));
}

//  An error response object: {"error":{"code","message"}}.
static json_t *
s_error_response (const char *description)
{
    return s_error_response_of (description, "Error");
}

//  What a streaming route's text/event-stream answer holds, by its framing.
static const char *
s_stream_description (const edge_route_t *route)
{
    if (route->flags & EDGE_ROUTE_OPENAI)
        return "With \"stream\": true in the body (whatever Accept says): one "
               "'data: <OpenAIChatCompletionChunk JSON>' per chunk (a usage chunk with "
               "choices [] last when stream_options.include_usage), then "
               "'data: [DONE]'; an error mid-stream is 'data: {\"error\":{...}}' (the "
               "OpenAIError object) and ends the stream";
    if (route->flags & EDGE_ROUTE_REPLAY)
        return "Always an event stream (EventSource): the events of the message after "
               "Last-Event-ID, then the live ones, as POST .../messages streams them";
    if (route->flags & EDGE_ROUTE_EVENTS)
        return "With Accept: text/event-stream: events 'id: <message id>:<n>', "
               "'event: <name>', 'data: <JSON>' (schemas/chat.md: message.created, "
               "message.delta {message_id, delta}, tool.call, message.completed); an "
               "error is 'event: error' with {\"error\":{\"code\",\"message\"}}";
    return "With Accept: text/event-stream: events 'partial', 'final' or 'error' "
           "(data {\"error\":{\"code\",\"message\"}}), each with an id, data JSON";
}

//  operationId from method and pattern: get_api_v1_services_name_ping.
static void
s_operation_id (const edge_route_t *route, char *buf, size_t size)
{
    size_t out = 0;
    for (const char *s = route->method; *s && out + 1 < size; s++)
        buf[out++] = (char) tolower ((unsigned char) *s);
    bool underscore = true;
    for (const char *s = route->pattern; *s && out + 1 < size; s++) {
        if (isalnum ((unsigned char) *s)) {
            if (underscore)
                buf[out++] = '_';
            if (out + 1 < size)
                buf[out++] = *s;
            underscore = false;
        }
        else
            underscore = true;
    }
    buf[out] = 0;
}

//  What a webhook route's operation says besides the generic parts: the named
//  headers, any body, the tag, and the answers of schemas/channels.md.
static void
s_webhook_operation (const edge_route_t *route, json_t *op)
{
    json_t *params = json_object_get (op, "parameters");
    for (int h = 0; h < EDGE_WEBHOOK_HEADERS; h++) {
        if (h == EDGE_WEBHOOK_CONTENT_TYPE)
            continue;  //  OpenAPI describes it with the body
        char description[128];
        snprintf (description, sizeof description,
                  "Passed to the channels service as it came (at most %d bytes)",
                  EDGE_WEBHOOK_HEADER_MAX);
        json_array_append_new (
            params,
            json_pack ("{s:s, s:s, s:b, s:s, s:{s:s, s:i}}", "name",
                       edge_webhook_header_name ((edge_webhook_header_t) h), "in",
                       "header", "required", 0, "description", description, "schema",
                       "type", "string", "maxLength", EDGE_WEBHOOK_HEADER_MAX));
    }
    if (strcmp (route->method, "POST") == 0)
        json_object_set_new (
            op, "requestBody",
            json_pack ("{s:b, s:s, s:{s:{s:{}}}}", "required", 0, "description",
                       "Any bytes, passed untouched whatever Content-Type says (at most "
                       "CHORUS_EDGE_WEBHOOK_MAX_BODY, 4 MiB by default); the platforms "
                       "sign them",
                       "content", "*/*", "schema"));
    json_object_set_new (op, "tags", json_pack ("[s]", "webhooks"));
    json_t *responses = json_pack (
        "{s:{s:s, s:{s:{s:{s:s}}, s:{s:o}}}}", "200", "description",
        "The channels service's WebhookReply, written as it is: text/plain for Meta's "
        "hub.challenge and Slack's url_verification challenge, else the WebhookAck",
        "content", "text/plain", "schema", "type", "string", "application/json", "schema",
        s_ref ("WebhookAck"));
    static const char *const answers[][2] = {
        {"400", "bad_request: a query over 4096 bytes or a named header over 1024 (the "
                "edge); a verified body that is not the platform's (the service)"},
        {"401", "unauthorized: the signature or secret token is missing or wrong, or "
                "Slack's timestamp is more than 300 s away"},
        {"403", "forbidden: Meta's GET handshake with a wrong hub.mode or "
                "hub.verify_token, or no hub.challenge"},
        {"404", "not_found: no such platform or connection, a disabled connection or "
                "one of another platform"},
        {"405", "method_not_allowed: not GET or POST (Allow), or GET on Telegram or "
                "Slack"},
        {"413", "payload_too_large: a body over CHORUS_EDGE_WEBHOOK_MAX_BODY (the edge, "
                "without calling the service) or more than 2000 items"},
        {"429", "rate_limited: over CHORUS_EDGE_WEBHOOK_RATE_PER_MIN for this "
                "connection id (Retry-After)"},
        {"500", "Internal error (a secret that does not open, the database)"},
        {"502", "The replica handling it was lost, or its answer was no WebhookReply"},
        {"503", "No live replica, no broker, no database or CHORUS_SECRET_KEY"},
        {"504", "Deadline exceeded (CHORUS_EDGE_WEBHOOK_TIMEOUT_MS)"}};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        json_object_set_new (responses, answers[i][0], s_error_response (answers[i][1]));
    json_object_set_new (op, "responses", responses);
}

//  The operation object of one route.
static json_t *
s_operation (const edge_route_t *route)
{
    char id[128];
    s_operation_id (route, id, sizeof id);
    json_t *op = json_pack ("{s:s, s:s}", "summary", route->summary, "operationId", id);
    json_t *params = json_array ();
    size_t service_count = 0;
    const char *const *services = edge_table_services (&service_count);
    for (const char *p = strchr (route->pattern, '{'); p; p = strchr (p + 1, '{')) {
        const char *close = strchr (p, '}');
        char name[64];
        snprintf (name, sizeof name, "%.*s", (int) (close - p - 1), p + 1);
        json_t *schema = json_pack ("{s:s}", "type", "string");
        if (strcmp (name, "name") == 0) {
            json_t *values = json_array ();
            for (size_t i = 0; i < service_count; i++)
                json_array_append_new (values, json_string (services[i]));
            json_object_set_new (schema, "enum", values);
        }
        else if (strcmp (name, "platform") == 0) {
            size_t platform_count = 0;
            const char *const *platforms = edge_table_platforms (&platform_count);
            json_t *values = json_array ();
            for (size_t i = 0; i < platform_count; i++)
                json_array_append_new (values, json_string (platforms[i]));
            json_object_set_new (schema, "enum", values);
        }
        json_array_append_new (params,
                               json_pack ("{s:s, s:s, s:b, s:o}", "name", name, "in",
                                          "path", "required", 1, "schema", schema));
    }
    for (size_t i = 0; i < EDGE_ROUTE_MAX_QUERY && route->query[i].name; i++) {
        const edge_query_param_t *q = &route->query[i];
        json_t *schema = json_pack ("{s:s}", "type", q->type);
        if (strcmp (q->type, "integer") == 0) {
            json_object_set_new (schema, "minimum", json_integer (q->min));
            json_object_set_new (schema, "maximum", json_integer (q->max));
        }
        json_array_append_new (params,
                               json_pack ("{s:s, s:s, s:b, s:s, s:o}", "name", q->name,
                                          "in", "query", "required", 0, "description",
                                          q->description, "schema", schema));
    }
    json_array_append_new (
        params, json_pack ("{s:s, s:s, s:b, s:s, s:{s:s, s:i}}", "name", "X-Request-Id",
                           "in", "header", "required", 0, "description",
                           "Request id to use (1-64 of A-Za-z0-9-_.:); "
                           "generated when absent, echoed in the response",
                           "schema", "type", "string", "maxLength", 64));
    if (route->flags & EDGE_ROUTE_RESUME)
        json_array_append_new (
            params,
            json_pack ("{s:s, s:s, s:b, s:s, s:{s:s, s:i}}", "name", "Last-Event-ID",
                       "in", "header", "required", 0, "description",
                       "The id of the last event received (<message id>:<n>): no new "
                       "message; the events after it are sent again, then the live ones "
                       "(204 when it was the reply's message.completed)",
                       "schema", "type", "string", "maxLength", EDGE_SSE_ID_MAX));
    json_object_set_new (op, "parameters", params);
    if (route->request_schema) {
        bool optional = route->flags & EDGE_ROUTE_REFRESH_COOKIE;
        json_object_set_new (op, "requestBody",
                             json_pack ("{s:b, s:{s:{s:o}}}", "required", !optional,
                                        "content", "application/json", "schema",
                                        s_ref (route->request_schema)));
    }
    if (route->flags & EDGE_ROUTE_UPLOAD) {
        json_t *types = json_object ();
        const char *const images[] = {"image/png", "image/jpeg", "image/webp",
                                      "image/gif"};
        for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
            json_object_set_new (types, images[i],
                                 json_pack ("{s:{s:s, s:s}}", "schema", "type", "string",
                                            "format", "binary"));
        json_object_set_new (op, "requestBody",
                             json_pack ("{s:b, s:s, s:o}", "required", 1, "description",
                                        "The raw image (at most "
                                        "CHORUS_EDGE_AVATAR_MAX_BODY, 1 MiB by default); "
                                        "its magic bytes must match Content-Type",
                                        "content", types));
    }
    //  Who may call it: public (no security), optional ({} allows anonymous)
    json_t *security = json_array ();
    if (route->need == EDGE_NEED_OPTIONAL)
        json_array_append_new (security, json_object ());
    if (route->need != EDGE_NEED_PUBLIC) {
        json_array_append_new (security, json_pack ("{s:[]}", "bearerAuth"));
        json_array_append_new (security, json_pack ("{s:[]}", "cookieAuth"));
    }
    json_object_set_new (op, "security", security);
    json_object_set_new (op, "x-chorus-auth",
                         json_string (edge_auth_need_name (route->need)));

    json_t *responses = json_object ();
    char status[8];
    snprintf (status, sizeof status, "%d", route->status);
    json_t *ok = json_pack ("{s:s}", "description",
                            route->status == 204 ? "Done: no content" : "Success");
    json_t *content = json_object ();
    if (route->kind == EDGE_ROUTE_METRICS)
        json_object_set_new (content, "text/plain; version=0.0.4",
                             json_pack ("{s:{s:s}}", "schema", "type", "string"));
    else if (route->kind == EDGE_ROUTE_OPENAPI)
        json_object_set_new (content, "application/json",
                             json_pack ("{s:{s:s}}", "schema", "type", "object"));
    else if (route->kind == EDGE_ROUTE_JWKS)
        json_object_set_new (content, "application/jwk-set+json",
                             json_pack ("{s:{s:s}}", "schema", "type", "object"));
    else if (route->flags & EDGE_ROUTE_VERBATIM)
        json_object_set_new (
            content, "image/*",
            json_pack ("{s:{s:s, s:s}}", "schema", "type", "string", "format", "binary"));
    else if (route->reply_schema && route->status != 204)
        json_object_set_new (content, "application/json",
                             json_pack ("{s:o}", "schema", s_ref (route->reply_schema)));
    if (route->streams && route->kind == EDGE_ROUTE_BUS)
        json_object_set_new (content, "text/event-stream",
                             json_pack ("{s:{s:s}, s:s}", "schema", "type", "string",
                                        "description", s_stream_description (route)));
    if (json_object_size (content))
        json_object_set_new (ok, "content", content);
    else
        json_decref (content);
    json_object_set_new (responses, status, ok);
    if (route->flags & EDGE_ROUTE_RESUME)
        json_object_set_new (responses, "204",
                             json_pack ("{s:s}", "description",
                                        "Last-Event-ID names the reply's last event: "
                                        "nothing follows"));
    if (route->kind == EDGE_ROUTE_BUS) {
        //  OpenAI's routes answer errors in OpenAI's shape as well
        const char *error = route->flags & EDGE_ROUTE_OPENAI ? "OpenAIError" : "Error";
        bool completions = (route->flags & EDGE_ROUTE_OPENAI) && route->request_schema;
        json_object_set_new (
            responses, "400",
            s_error_response_of (completions ? "bad_request (invalid_request_error): "
                                               "invalid JSON, or a body OpenAI would "
                                               "refuse; param names the field"
                                             : "Bad request or invalid JSON",
                                 error));
        json_object_set_new (
            responses, "404",
            s_error_response_of (completions ? "model_not_found: no enabled agent of the "
                                               "caller's tenant has that name or id"
                                             : "Unknown route, service, command or id",
                                 error));
        json_object_set_new (responses, "413",
                             s_error_response_of ("Body larger than the limit", error));
        json_object_set_new (responses, "500",
                             s_error_response_of ("Internal error", error));
        //  Routes that run an agent turn meet the LLM provider's errors
        bool llm = route->streams && route->service
                   && (strcmp (route->service, "chat") == 0
                       || strcmp (route->service, "agents") == 0);
        json_object_set_new (
            responses, "502",
            s_error_response_of (llm ? "upstream_error, upstream_unauthorized: the LLM "
                                       "provider failed or refused its key; or the "
                                       "replica handling it was lost"
                                     : "The replica handling it was lost",
                                 error));
        json_object_set_new (
            responses, "503",
            s_error_response_of (
                "No live replica, no broker, or overloaded (Retry-After)", error));
        json_object_set_new (responses, "504",
                             s_error_response_of ("Deadline exceeded", error));
        json_object_set_new (
            responses, "429",
            s_error_response_of (
                llm ? "rate_limited: over the request budget or the "
                      "provider's rate limit (Retry-After)"
                    : "rate_limited: over the request budget (Retry-After)",
                error));
        bool auth = route->service && strcmp (route->service, "auth") == 0;
        if (route->need != EDGE_NEED_PUBLIC || auth)
            json_object_set_new (
                responses, "401",
                s_error_response_of (
                    "unauthorized: no valid credential (WWW-Authenticate: Bearer, "
                    "error=\"invalid_token\" for a bad one); invalid_credentials, "
                    "invalid_token, token_reused from the auth service",
                    error));
        if (route->need != EDGE_NEED_PUBLIC)
            json_object_set_new (
                responses, "403",
                s_error_response_of (
                    "forbidden: the role or the API key's scopes are "
                    "too low, or an API key on a route for user sessions",
                    error));
        if (auth)
            json_object_set_new (
                responses, "409",
                s_error_response ("conflict: taken email, existing member, last admin"));
        else if (route->request_schema && !route->streams && route->service
                 && strcmp (route->service, "agents") == 0)
            json_object_set_new (
                responses, "409",
                s_error_response ("conflict: an agent of that name exists already"));
    }
    else if (route->kind == EDGE_ROUTE_READYZ)
        json_object_set_new (responses, "503",
                             json_pack ("{s:s, s:{s:{s:o}}}", "description", "Not ready",
                                        "content", "application/json", "schema",
                                        s_ref ("Ready")));
    else if (route->kind == EDGE_ROUTE_WS)
        json_object_set_new (responses, "426",
                             s_error_response ("Not a WebSocket upgrade"));
    json_object_set_new (responses, "405", s_error_response ("Method not allowed"));
    json_object_set_new (op, "responses", responses);
    if (route->flags & EDGE_ROUTE_WEBHOOK)
        s_webhook_operation (route, op);
    return op;
}

//  What agents.proto's ToolBinding cannot say: the agents service reads a tool's
//  parameters and config as free JSON (an object, or its JSON text) and answers
//  them as JSON text; type is one of four kinds.
static void
s_tool_binding (json_t *schema)
{
    json_t *properties = json_object_get (schema, "properties");
    assert (properties);
    const char *const free_json[][2] = {
        {"parameters", "The arguments' JSON Schema: an object (OpenAI's shape) or its "
                       "JSON text; answered as JSON text"},
        {"config", "An object or its JSON text; answered as JSON text"}};
    for (size_t i = 0; i < 2; i++)
        json_object_set_new (properties, free_json[i][0],
                             json_pack ("{s:[{s:s}, {s:s}, {s:s}], s:s}", "anyOf", "type",
                                        "object", "type", "string", "type", "null",
                                        "description", free_json[i][1]));
    json_object_set_new (properties, "type",
                         json_pack ("{s:[s, s, s, s, n], s:s}", "enum", "function",
                                    "integration", "workflow", "mcp", "description",
                                    "function when absent"));
    json_object_set_new (schema, "required", json_pack ("[s]", "name"));
}

json_t *
edge_openapi_document (void)
{
    json_t *components = json_loads (s_components, 0, NULL);
    assert (components);
    json_t *schemas = json_object_get (components, "schemas");
    json_t *openai = json_loads (s_openai_schemas, 0, NULL);
    assert (openai);
    json_object_update (schemas, openai);
    json_decref (openai);
    for (size_t i = 0; i < sizeof s_messages / sizeof s_messages[0]; i++)
        s_add_message (schemas, s_messages[i]);
    s_tool_binding (json_object_get (schemas, "ToolBinding"));
    json_t *doc = json_pack (
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o}", "openapi", "3.1.0", "info", "title",
        "Chorus edge API", "version", "0.1.0", "description",
        "HTTP/SSE/WebSocket front door of Chorus. Errors are "
        "{\"error\":{\"code\",\"message\"}} (under /v1/ also OpenAI's type and "
        "param); every response carries X-Request-Id. Agents, conversations and the "
        "OpenAI-compatible API: schemas/chat.md.",
        "servers", "url", "/", "components", components);
    assert (doc);
    json_t *paths = json_object ();
    size_t count = 0;
    const edge_route_t *routes = edge_table_routes (&count);
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_object_get (paths, routes[i].pattern);
        if (!item) {
            item = json_object ();
            json_object_set_new (paths, routes[i].pattern, item);
        }
        char method[16];
        size_t m = 0;
        for (const char *s = routes[i].method; *s && m + 1 < sizeof method; s++)
            method[m++] = (char) tolower ((unsigned char) *s);
        method[m] = 0;
        json_object_set_new (item, method, s_operation (&routes[i]));
    }
    json_object_set_new (doc, "paths", paths);
    return doc;
}

char *
edge_openapi_text (void)
{
    json_t *doc = edge_openapi_document ();
    char *text = json_dumps (doc, JSON_INDENT (2) | JSON_SORT_KEYS);
    json_decref (doc);
    assert (text);
    return text;
}

int
edge_openapi_check (json_t *document, char *error, size_t error_size)
{
    size_t count = 0;
    const edge_route_t *routes = edge_table_routes (&count);
    json_t *paths = json_object_get (document, "paths");
    if (!json_is_object (paths)) {
        snprintf (error, error_size, "document has no paths");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        char method[16];
        size_t m = 0;
        for (const char *s = routes[i].method; *s && m + 1 < sizeof method; s++)
            method[m++] = (char) tolower ((unsigned char) *s);
        method[m] = 0;
        if (!json_object_get (json_object_get (paths, routes[i].pattern), method)) {
            snprintf (error, error_size, "route %s %s is not in the document",
                      routes[i].method, routes[i].pattern);
            return -1;
        }
    }
    const char *path;
    json_t *item;
    json_object_foreach (paths, path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach (item, method, op)
        {
            bool found = false;
            for (size_t i = 0; i < count && !found; i++)
                found = strcmp (routes[i].pattern, path) == 0
                        && strcasecmp (routes[i].method, method) == 0;
            if (!found) {
                snprintf (error, error_size, "%s %s is documented but not a route",
                          method, path);
                return -1;
            }
        }
    }
    return 0;
}

void
edge_openapi_test (bool verbose)
{
    printf (" * edge_openapi: ");
    char error[256];
    json_t *doc = edge_openapi_document ();
    assert (strcmp (json_string_value (json_object_get (doc, "openapi")), "3.1.0") == 0);
    assert (edge_openapi_check (doc, error, sizeof error) == 0);
    json_t *ping = json_object_get (
        json_object_get (json_object_get (doc, "paths"), "/api/v1/services/{name}/ping"),
        "get");
    assert (ping);
    assert (json_array_size (json_object_get (ping, "parameters")) == 4);
    assert (json_object_get (json_object_get (ping, "responses"), "504"));
    assert (json_array_size (json_object_get (ping, "security")) == 0);

    //  Auth routes: bodies and replies from auth.proto, security, lists, 204
    json_t *paths = json_object_get (doc, "paths");
    json_t *schemes = json_object_get (json_object_get (doc, "components"),
                                       "securitySchemes");
    assert (json_object_get (schemes, "bearerAuth")
            && json_object_get (schemes, "cookieAuth"));
    json_t *login = json_object_get (json_object_get (paths, "/api/v1/auth/login"),
                                     "post");
    json_t *body_schema = json_object_get (
        json_object_get (
            json_object_get (json_object_get (login, "requestBody"), "content"),
            "application/json"),
        "schema");
    assert (strcmp (json_string_value (json_object_get (body_schema, "$ref")),
                    "#/components/schemas/LoginRequest")
            == 0);
    json_t *schemas = json_object_get (json_object_get (doc, "components"), "schemas");
    json_t *token_reply = json_object_get (schemas, "TokenReply");
    json_t *expires = json_object_get (json_object_get (token_reply, "properties"),
                                       "expires_in");
    json_t *nullable = json_pack ("[s, s]", "integer", "null");
    assert (json_equal (json_object_get (expires, "type"), nullable));
    json_decref (nullable);
    assert (json_object_get (schemas, "User") && json_object_get (schemas, "TenantRef"));
    json_t *members = json_object_get (json_object_get (paths, "/api/v1/auth/members"),
                                       "get");
    assert (json_array_size (json_object_get (members, "parameters")) == 3);
    assert (json_array_size (json_object_get (members, "security")) == 2);
    assert (strcmp (json_string_value (json_object_get (members, "x-chorus-auth")),
                    "tenant_admin")
            == 0);
    assert (json_object_get (json_object_get (members, "responses"), "403"));
    json_t *removal = json_object_get (
        json_object_get (paths, "/api/v1/auth/members/{id}"), "delete");
    json_t *done = json_object_get (json_object_get (removal, "responses"), "204");
    assert (done && !json_object_get (done, "content"));
    json_t *logout = json_object_get (json_object_get (paths, "/api/v1/auth/logout"),
                                      "post");
    assert (json_object_size (json_array_get (json_object_get (logout, "security"), 0))
            == 0);  //  {}: anonymous allowed

    //  Agents, chat and OpenAI routes: schemas from agents.proto and chat.proto,
    //  OpenAI's bodies and error shape, Last-Event-ID, filters, and every $ref
    //  resolves
    json_t *completions = json_object_get (
        json_object_get (paths, "/v1/chat/completions"), "post");
    assert (completions);
    assert (
        strstr (json_string_value (json_object_get (
                    json_object_get (
                        json_object_get (
                            json_object_get (json_object_get (completions, "requestBody"),
                                             "content"),
                            "application/json"),
                        "schema"),
                    "$ref")),
                "OpenAIChatRequest"));
    json_t *responses = json_object_get (completions, "responses");
    assert (
        json_object_get (json_object_get (json_object_get (responses, "200"), "content"),
                         "text/event-stream"));
    json_t *refused = json_object_get (
        json_object_get (json_object_get (json_object_get (responses, "401"), "content"),
                         "application/json"),
        "schema");
    assert (
        strstr (json_string_value (json_object_get (refused, "$ref")), "OpenAIError"));
    json_t *send = json_object_get (
        json_object_get (paths, "/api/v1/conversations/{id}/messages"), "post");
    json_t *params = json_object_get (send, "parameters");
    assert (json_array_size (params) == 3);  //  id, X-Request-Id, Last-Event-ID
    assert (
        strcmp (json_string_value (json_object_get (json_array_get (params, 2), "name")),
                "Last-Event-ID")
        == 0);
    json_t *conversations = json_object_get (
        json_object_get (paths, "/api/v1/conversations"), "get");
    assert (
        json_array_size (json_object_get (conversations, "parameters"))
        == 8);  //  X-Request-Id, cursor, limit, archived, agent_id, channel, status, assignee_id
    json_t *created = json_object_get (
        json_object_get (json_object_get (paths, "/api/v1/agents"), "post"), "responses");
    assert (json_object_get (created, "201") && json_object_get (created, "409"));
    json_t *replay = json_object_get (
        json_object_get (paths,
                         "/api/v1/conversations/{id}/messages/{message_id}/events"),
        "get");
    json_t *replay_ok = json_object_get (
        json_object_get (json_object_get (replay, "responses"), "200"), "content");
    assert (json_object_size (replay_ok) == 1
            && json_object_get (replay_ok, "text/event-stream"));
    const char *names[] = {"Agent",
                           "AgentList",
                           "TurnRequest",
                           "TurnResult",
                           "ProviderList",
                           "OpenAIModelList",
                           "Conversation",
                           "ConversationDetail",
                           "MessageList",
                           "SendRequest",
                           "CancelReply",
                           "OpenAIChatCompletion",
                           "OpenAIChatCompletionChunk"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert (json_object_get (schemas, names[i]));
    //  A tool's parameters: a JSON Schema object or its text; GET /v1/models/{id}
    json_t *parameters = json_object_get (
        json_object_get (json_object_get (schemas, "ToolBinding"), "properties"),
        "parameters");
    assert (json_array_size (json_object_get (parameters, "anyOf")) == 3);
    json_t *model = json_object_get (json_object_get (paths, "/v1/models/{id}"), "get");
    assert (model && json_object_get (json_object_get (model, "responses"), "404"));
    //  Channels: connections and the inbox from channels.proto; webhooks raw
    json_t *inbox = json_object_get (
        json_object_get (paths, "/api/v1/channels/connections/{id}/inbox"), "get");
    assert (json_array_size (json_object_get (inbox, "parameters")) == 5);
    assert (json_object_get (schemas, "Connection")
            && json_object_get (schemas, "InboxMessage")
            && json_object_get (schemas, "Credentials"));
    json_t *hooks = json_object_get (paths, "/webhooks/{platform}/{connection_id}");
    json_t *hook = json_object_get (hooks, "post");
    assert (hook && json_object_get (hooks, "get") && json_object_size (hooks) == 2);
    assert (json_array_size (json_object_get (hook, "security")) == 0);
    assert (
        strcmp (json_string_value (json_array_get (json_object_get (hook, "tags"), 0)),
                "webhooks")
        == 0);
    json_t *platform = json_array_get (json_object_get (hook, "parameters"), 0);
    assert (strcmp (json_string_value (json_object_get (platform, "name")), "platform")
            == 0);
    assert (
        json_array_size (json_object_get (json_object_get (platform, "schema"), "enum"))
        == 5);
    assert (json_array_size (json_object_get (hook, "parameters")) == 9);
    assert (json_object_get (
        json_object_get (json_object_get (hook, "requestBody"), "content"), "*/*"));
    assert (!json_object_get (json_object_get (hooks, "get"), "requestBody"));
    assert (
        json_array_size (json_object_get (json_object_get (hooks, "get"), "parameters"))
        == 12);  //  and hub.mode, hub.verify_token, hub.challenge
    json_t *answers = json_object_get (hook, "responses");
    assert (json_object_get (
        json_object_get (json_object_get (answers, "200"), "content"), "text/plain"));
    const char *codes[] = {"400", "401", "403", "404", "405", "413",
                           "429", "500", "502", "503", "504"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert (json_object_get (answers, codes[i]));
    char *all = json_dumps (doc, JSON_COMPACT);
    for (const char *ref = strstr (all, "\"$ref\":\""); ref;
         ref = strstr (ref + 1, "\"$ref\":\"")) {
        const char *name = ref + strlen ("\"$ref\":\"#/components/schemas/");
        char wanted[128];
        size_t len = strcspn (name, "\"");
        assert (len < sizeof wanted);
        memcpy (wanted, name, len);
        wanted[len] = 0;
        if (!json_object_get (schemas, wanted))
            fprintf (stderr, "edge_openapi: $ref %s does not resolve\n", wanted);
        assert (json_object_get (schemas, wanted));
    }
    free (all);

    //  A stray operation, and a missing one, are both found.
    json_t *copy = json_deep_copy (doc);
    json_object_set_new (json_object_get (copy, "paths"), "/nope",
                         json_pack ("{s:{}}", "get"));
    assert (edge_openapi_check (copy, error, sizeof error) == -1);
    assert (strstr (error, "/nope"));
    json_object_del (json_object_get (copy, "paths"), "/nope");
    json_object_del (json_object_get (copy, "paths"), "/healthz");
    assert (edge_openapi_check (copy, error, sizeof error) == -1);
    assert (strstr (error, "/healthz"));
    json_decref (copy);

    //  The checked-in copy agrees with the table and with the generated document.
    const char *source = getenv ("CHORUS_SOURCE_DIR");
    if (source) {
        char path[1024];
        snprintf (path, sizeof path, "%s/schemas/openapi.json", source);
        json_error_t jerr;
        json_t *file = json_load_file (path, 0, &jerr);
        if (!file)
            fprintf (stderr, "%s: %s\n", path, jerr.text);
        assert (file);
        if (edge_openapi_check (file, error, sizeof error))
            fprintf (stderr, "%s: %s\n", path, error);
        assert (edge_openapi_check (file, error, sizeof error) == 0);
        if (!json_equal (file, doc))
            fprintf (stderr, "%s is stale: run chorus-edge --openapi > %s\n", path, path);
        assert (json_equal (file, doc));
        json_decref (file);
    }
    else if (verbose)
        printf ("(CHORUS_SOURCE_DIR unset, schemas/openapi.json not checked) ");
    json_decref (doc);
    char *text = edge_openapi_text ();
    assert (strstr (text, "\"openapi\": \"3.1.0\""));
    free (text);
    printf ("OK\n");
}
