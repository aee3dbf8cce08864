/*  chat_call: what the chat service's handlers share. The service state (its
    limits, the turns running on this replica, the calls waiting on another
    service, the replies being replayed), a chat request in progress (a
    service_call with the state, a kind the cancel hook reads, and the ids its
    steps carry), requests to other services on behalf of a call, and reading
    message rows. Used by chat_conversations, chat_turn and chat_replay.      */
#ifndef CHAT_CALL_H_INCLUDED
#define CHAT_CALL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "agents.pb-c.h"
#include <msgpack.h>

#include "chat.pb-c.h"
#include "service_call.h"

//  The chat service's state, shared by its handlers.
typedef struct {
    service_runtime_t *runtime;    //  the runtime (bus, database, Redis, log)
    core_log_t *log;               //  its logger
    zhashx_t *turns;               //  reply id -> chat_turn_t * running here
    zlistx_t *waiting;             //  chat_call_t * waiting on another service
    zlistx_t *replays;             //  chat_replay_t * following a reply
    int timer;                     //  heartbeats, cancels, sweeps (zloop timer)
    bool polling;                  //  a heartbeat query is in flight
    uint32_t poll_generation;      //  which heartbeat query a turn was part of
    uint32_t ticks;                //  timer ticks so far
    int64_t turn_timeout_ms;       //  longest agent turn
    int64_t content_max;           //  largest user message (bytes)
    int64_t reply_max;             //  largest reply kept (bytes)
    int64_t history_max;           //  messages loaded into a turn's context
    int64_t context_tokens;        //  context window of models the table lacks
    int64_t tool_calls_max;        //  tool calls kept per reply
    int64_t replay_ttl_s;          //  how long a reply's events stay replayable
    int64_t replay_events_max;     //  events kept per reply for replays
    int64_t replay_poll_ms;        //  how often a replay looks for new events
    int64_t stale_s;               //  a streaming reply nobody touches this long failed
    int64_t resume_grace_ms;       //  a turn whose caller left waits this for a resume
    char *handoff_keywords;        //  comma-separated: a contact asking for a person
    char *handoff_reply;           //  the agent's answer when it hands off
    char origin[SERVICE_ID_SIZE];  //  this replica, in live stream events
    uint64_t live_seq;             //  live stream events published so far
    msgpack_sbuffer delta_buf;     //  a delta's stream event, reused (chat_turn)
    msgpack_sbuffer live_buf;      //  a live stream event, reused (chat_turn)
} chat_state_t;

//  What a call is, for the cancel hook.
typedef enum {
    CHAT_CALL_PLAIN,  //  a request answered from the database (and other services)
    CHAT_CALL_TURN,   //  messages.send running a turn (chat_turn_t)
    CHAT_CALL_REPLAY  //  messages.send replaying a reply (chat_replay_t)
} chat_call_kind_t;

typedef struct _chat_call_t chat_call_t;

//  A step of a call: runs with the last query's result (NULL after a change).
typedef void (chat_step_fn) (chat_call_t *call, PGresult *result);

//  Runs with another service's reply to chat_call_ask (final or error).
typedef void (chat_answer_fn) (chat_call_t *call, const bus_reply_t *reply);

//  A chat request in progress: a service_call with what chat's steps carry.
struct _chat_call_t {
    service_call_t base;                  //  request, args, reply (first member)
    chat_state_t *state;                  //  the service
    chat_call_kind_t kind;                //  what the bigger struct is
    uint64_t handle;                      //  request to another service, 0: none
    void *waiting;                        //  our place in state->waiting, or NULL
    chat_answer_fn *on_answer;            //  runs with that request's answer
    chat_answer_fn *on_partial;           //  runs with its partials, or NULL
    void (*destroy) (chat_call_t *call);  //  frees a bigger struct's own fields
    char tenant_id[SERVICE_ID_SIZE];      //  tenant of the headers
    char user_id[SERVICE_ID_SIZE];        //  user of the headers
    char id[SERVICE_ID_SIZE];             //  conversation concerned
    char other_id[SERVICE_ID_SIZE];       //  agent or message concerned
};

//  Start a call of size bytes (at least sizeof (chat_call_t)) for request
//  (taking it) that needs a user in a tenant. On a bad body or missing identity
//  answers and returns NULL.
chat_call_t *chat_call_new (chat_state_t *state, bus_request_t **request_p,
                            const ProtobufCMessageDescriptor *args_desc, size_t size,
                            chat_call_kind_t kind);

//  Copy id into call->id (lower case); false (after answering not_found "no such
//  <what>") when it is not a UUID, which no row can have.
bool chat_call_take_id (chat_call_t *call, const char *id, const char *what);

//  Ask service/command of another service with the caller's headers and what is
//  left of its deadline (at most timeout_ms, 0: no cap); on_answer runs with the
//  final reply or the error. Partials (streams) go to on_partial when not NULL.
//  When no broker can take the request, answers unavailable and frees the call.
void chat_call_ask (chat_call_t *call, const char *service, const char *command,
                    const ProtobufCMessage *body, int64_t timeout_ms,
                    chat_answer_fn *on_answer, chat_answer_fn *on_partial);

//  Stop waiting for the request chat_call_ask made (no answer will come).
void chat_call_forget (chat_call_t *call);

//  Answer with an error another service gave: not_found and bad_request become
//  not_found "no such <what>", authorisation and load errors pass, anything else
//  is unavailable. Frees the call.
void chat_call_fail_upstream (chat_call_t *call, const bus_reply_t *reply,
                              const char *what);

//  The error code chat answers for another service's code (see above).
const char *chat_call_upstream_code (const char *code);

//  Answer with a msgpack body and free the call.
void chat_call_reply_raw (chat_call_t *call, const void *body, size_t size);

//  Send a partial reply with a msgpack body (the call goes on).
void chat_call_partial_raw (chat_call_t *call, const void *body, size_t size);

//  Free a call whose request has been ended already (or end it with
//  shutting_down when it has not).
void chat_call_discard (chat_call_t *call);

//  Milliseconds left before the caller's deadline.
int64_t chat_call_left_ms (chat_call_t *call);

//  Columns of a Message (table alias m), for chat_message_from_row.
#define CHAT_MESSAGE_COLUMNS                                                             \
    "m.id, m.conversation_id, m.role, m.content, m.author_id, m.author_type, m.status, " \
    "m.model, "                                                                          \
    "m.prompt_tokens, m.completion_tokens, m.latency_ms, m.error, chat.rfc3339 "         \
    "(m.created_at) AS created_at, chat.rfc3339 (m.updated_at) AS updated_at, "          \
    "m.tool_calls::text AS _tool_calls "

//  A Message from row `row` of a result with CHAT_MESSAGE_COLUMNS (tool calls
//  from the _tool_calls JSON). NULL with error filled when the row does not read.
ChorusChat__Message *chat_message_from_row (const PGresult *result, int row, char *error,
                                            size_t error_size);

//  Append every row of result as a Message to the repeated field of msg named
//  field; 0 or -1 with error filled.
int chat_message_append_rows (ProtobufCMessage *msg, const char *field,
                              const PGresult *result, char *error, size_t error_size);

//  Answer a MessageList page of up to limit rows (one more: a next page) whose
//  "_cursor" column pages on. Frees the call.
void chat_call_reply_messages (chat_call_t *call, PGresult *result, uint32_t limit);

//  The tool calls of a message as JSON text [{"id","name","arguments"}] (caller
//  frees).
char *chat_message_tool_calls_json (const ChorusChat__Message *message);

void chat_call_test (bool verbose);

#endif
