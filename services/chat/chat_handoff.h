/*  chat_handoff: who answers a conversation (schemas/chat.md, "Channels and
    handoff"). conversations.assign gives it to a member of the tenant (checked
    with auth members.get) or back to the agent, unassign gives it back,
    resolve and reopen set its status. Each change is one event:
    chat.conversation.assigned, .unassigned, .resolved, .reopened.            */
#ifndef CHAT_HANDOFF_H_INCLUDED
#define CHAT_HANDOFF_H_INCLUDED

#include "chat_call.h"

void chat_handoff_assign (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void chat_handoff_unassign (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void chat_handoff_resolve (service_runtime_t *runtime, bus_request_t *request,
                           void *state);
void chat_handoff_reopen (service_runtime_t *runtime, bus_request_t *request,
                          void *state);

#endif
