/*  chat_replay: messages.send with last_event_id "<message id>:<n>" (the
    Last-Event-ID of a client that reconnects): no new message; the reply's
    events after n are sent again from its Redis event log, then the live ones
    as they are logged (on any replica: the log is shared), until
    message.completed. When the log is gone (expired, Redis down or lost) the
    end is derived from the stored message: the message.created events the
    caller lacks, then message.completed with the stored reply.               */
#ifndef CHAT_REPLAY_H_INCLUDED
#define CHAT_REPLAY_H_INCLUDED

#include "chat_call.h"

//  Answer request (taken) by replaying the reply its last_event_id names.
void chat_replay_start (chat_state_t *state, bus_request_t *request);

//  The caller of a replay cancelled, or its deadline passed.
void chat_replay_caller_gone (chat_call_t *call);

//  The service stops: end every replay.
void chat_replay_shutdown (chat_state_t *state);

#endif
