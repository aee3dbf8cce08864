/*  agents_store: the agents service's configuration commands (schemas/chat.md):
    agents.list/get/create/update/delete, agents.avatar_put/get/delete,
    providers.list/put/delete, openai_models (GET /v1/models) and openai_model
    (GET /v1/models/{id}). Every query is scoped by the tenant of the
    request's headers; an id of another tenant is not_found like a missing one. */
#ifndef AGENTS_STORE_H_INCLUDED
#define AGENTS_STORE_H_INCLUDED

#include "agents_state.h"

void agents_store_list (service_runtime_t *runtime, bus_request_t *request, void *state);
void agents_store_get (service_runtime_t *runtime, bus_request_t *request, void *state);
void agents_store_create (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void agents_store_update (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void agents_store_delete (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void agents_store_providers_list (service_runtime_t *runtime, bus_request_t *request,
                                  void *state);
void agents_store_providers_put (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
void agents_store_providers_delete (service_runtime_t *runtime, bus_request_t *request,
                                    void *state);
//  agents.avatar_put (tenant admin): store the image of an AvatarRequest (its type
//  checked by its magic bytes) and answer the Agent; avatar_get: the AvatarReply
//  the edge writes out; avatar_delete: an empty answer.
void agents_store_avatar_put (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void agents_store_avatar_get (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void agents_store_avatar_delete (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
void agents_store_openai_models (service_runtime_t *runtime, bus_request_t *request,
                                 void *state);
//  openai_model (GET /v1/models/{id}): one enabled agent of the tenant, by name (any
//  case) or id, as an OpenAIModel; model_not_found otherwise.
void agents_store_openai_model (service_runtime_t *runtime, bus_request_t *request,
                                void *state);

//  The columns of an agent row by Agent's field names (its tools as "_tools"),
//  from agents.agents a.
#define AGENTS_COLUMNS                                                                   \
    "a.id, a.name, a.description, CASE WHEN EXISTS (SELECT 1 FROM agents.agent_avatars " \
    "v WHERE v.agent_id = a.id) THEN '/api/v1/agents/' || a.id || '/avatar' END AS "     \
    "avatar_url, a.system_prompt, a.provider, a.model, a.temperature, a.max_tokens, "    \
    "a.thinking_mode, a.knowledge_base_id, a.enabled, a.webhook_url, agents.rfc3339 "    \
    "(a.created_at) AS created_at, agents.rfc3339 (a.updated_at) AS updated_at, "        \
    "a.tools::text AS _tools "

//  Read row of result (AGENTS_COLUMNS) into a new Agent, tools included. NULL with
//  error filled when the row does not fit.
ChorusAgents__Agent *agents_store_read (const PGresult *result, int row, char *error,
                                        size_t error_size);

//  The image type of data by its magic bytes: "image/png", "image/jpeg",
//  "image/webp" (RIFF....WEBP), "image/gif" (GIF87a, GIF89a), or NULL.
const char *agents_store_avatar_type (const uint8_t *data, size_t size);

//  True when provider is one Chorus speaks.
bool agents_store_provider_known (const char *provider);

void agents_store_test (bool verbose);

#endif
