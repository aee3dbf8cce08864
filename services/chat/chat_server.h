/*  chat_server: the chat service actor. The chat service owns conversations, messages, participants and handoff state
    (DESIGN.md, "Services"). Run by services/chat/main.c and by chorusd.            */
#ifndef CHAT_SERVER_H_INCLUDED
#define CHAT_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void chat_server_actor (zsock_t *pipe, void *args);

#endif
