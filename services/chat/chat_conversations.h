/*  chat_conversations: the conversation commands of the chat service
    (schemas/chat.md): create (the agent must exist in the tenant: the agents
    service is asked), list, get (with the newest page of messages), update
    (rename, archive), delete, and messages.list. Every query is scoped by the
    tenant of the headers; another tenant's id answers not_found.             */
#ifndef CHAT_CONVERSATIONS_H_INCLUDED
#define CHAT_CONVERSATIONS_H_INCLUDED

#include "chat_call.h"

void chat_conversations_create (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void chat_conversations_list (service_runtime_t *runtime, bus_request_t *request,
                              void *state);
void chat_conversations_get (service_runtime_t *runtime, bus_request_t *request,
                             void *state);
void chat_conversations_update (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void chat_conversations_delete (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void chat_conversations_messages (service_runtime_t *runtime, bus_request_t *request,
                                  void *state);

//  The longest conversation title in characters.
#define CHAT_TITLE_MAX 200

//  NULL when title is acceptable (1..CHAT_TITLE_MAX characters), else the problem.
const char *chat_conversations_title_problem (const char *title);

//  A step that answers conversation call->id of the tenant (after a change).
void chat_conversations_answer (chat_call_t *call, PGresult *result);

//  Whether channel is a platform a conversation can come from.
bool chat_conversations_channel_known (const char *channel);

void chat_conversations_test (bool verbose);

#endif
