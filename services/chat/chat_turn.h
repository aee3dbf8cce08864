/*  chat_turn: messages.send and conversations.cancel (schemas/chat.md, "Sending
    a message"). A turn stores the user message and a streaming reply, asks the
    agents service for the agent (its model sets the context budget), sends the
    history that fits to agents turn.run as a streamed request with the caller's
    headers, forwards each partial as a stream event (and into the reply's
    Redis event log for replays), and stores the reply complete, failed or
    cancelled with a chat.message.completed event.

    A turn stops when its caller goes away, on conversations.cancel on this
    replica at once, and on any other replica within about a second: the cancel
    marks the reply's row, and every replica touches the rows of its running
    turns once a second (a heartbeat) and reads the mark. Replies whose replica
    stopped touching them are marked failed by a sweep.                        */
#ifndef CHAT_TURN_H_INCLUDED
#define CHAT_TURN_H_INCLUDED

#include "chat_call.h"

//  messages.send (with last_event_id: a replay, see chat_replay).
void chat_turn_send (service_runtime_t *runtime, bus_request_t *request, void *state);

//  conversations.cancel.
void chat_turn_cancel (service_runtime_t *runtime, bus_request_t *request, void *state);

//  The caller of a turn cancelled, or its deadline passed.
void chat_turn_caller_gone (chat_call_t *call);

//  Stop the turns of a conversation that run here.
void chat_turn_stop_conversation (chat_state_t *state, const char *conversation_id);

//  Once a second: heartbeats of running turns, cross-replica cancels, the sweep.
void chat_turn_tick (chat_state_t *state);

//  The service stops: end every turn and every call still waiting.
void chat_turn_shutdown (chat_state_t *state);

void chat_turn_test (bool verbose);

#endif
