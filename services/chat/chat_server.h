/*  chat_server: the chat service actor (schemas/chat.md): conversations with an
    agent and their messages; each user message runs a turn on the agents
    service, streamed back as stream events that can be replayed. On the shared
    service runtime; chorus-chat and chorusd run it.                          */
#ifndef CHAT_SERVER_H_INCLUDED
#define CHAT_SERVER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "core_config.h"

//  The chat service's own options (beside the ones every service has).
extern const core_config_option_t chat_server_options[];
extern const size_t chat_server_option_count;

//  The actor; args is the process's core_config_t * (borrowed).
void chat_server_actor (zsock_t *pipe, void *args);

#endif
