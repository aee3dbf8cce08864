/*  chat_channel: conversations a channel brings (schemas/chat.md, "Channels and
    handoff"). channel.inbound (from the channels service) finds or makes the
    conversation of a connection's contact and thread, stores the contact's
    message once per key, and then: runs the agent's turn and answers its reply;
    or hands the conversation off when the contact asks for a person (a
    keyword), answering the notice; or, while a member holds the conversation or
    it waits for one, answers "held" and the agent stays silent. A member's
    message on such a conversation (messages.send) is not a turn: it is stored
    as the member's and queued for the contact with channels outbound.enqueue,
    and the member takes the conversation when nobody held it.                */
#ifndef CHAT_CHANNEL_H_INCLUDED
#define CHAT_CHANNEL_H_INCLUDED

#include "chat_turn_internal.h"

//  channel.inbound.
void chat_channel_inbound (service_runtime_t *runtime, bus_request_t *request,
                           void *state);

//  messages.send on a channel's conversation: row 0 of result has agent_id,
//  connection_id, contact_id, thread_id, assignee_id.
void chat_channel_member_reply (chat_turn_t *turn, PGresult *result);

//  Whether content asks for a person: one of the comma-separated keywords
//  (ASCII case ignored) appears in it as whole words.
bool chat_channel_wants_person (const char *keywords, const char *content);

void chat_channel_test (bool verbose);

#endif
