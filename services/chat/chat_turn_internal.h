/*  chat_turn_internal: the turn in progress, shared by chat_turn (messages.send,
    the turn itself) and chat_channel (channel.inbound, which starts a turn for a
    channel's message, and members' replies on channel conversations).          */
#ifndef CHAT_TURN_INTERNAL_H_INCLUDED
#define CHAT_TURN_INTERNAL_H_INCLUDED

#include "chat_call.h"

typedef enum {
    CHAT_TURN_PREPARING,  //  storing the messages, reading the agent and the history
    CHAT_TURN_RUNNING,    //  turn.run in flight
    CHAT_TURN_FINISHING   //  storing the outcome
} chat_turn_phase_t;

typedef struct {
    char *id;         //  the call's id
    char *name;       //  the tool's name
    char *arguments;  //  JSON text, as it arrived
} chat_turn_tool_t;

typedef struct {
    chat_call_t call;                       //  the request (first member)
    chat_turn_phase_t phase;                //  where the turn is
    bool stream;                            //  the caller wants stream events
    bool stop;                              //  stop at the next step (a cancel came)
    bool caller_gone;                       //  the caller cancelled: nobody to answer
    bool grace_armed;                       //  grace_timer runs (the caller is gone)
    int grace_timer;                        //  when to look for a resumed client
    struct _chat_turn_probe_t *probe;       //  that look, while Redis answers it
    bool registered;                        //  in state->turns
    bool inbound;                           //  channel.inbound: answers its reply
    const char *content_in;                 //  the user's message (in the args)
    const char *author_type;                //  who wrote it: user or contact
    uint32_t polled;                        //  heartbeat generation it was part of
    uint32_t seq;                           //  number of the last event
    char message_id[SERVICE_ID_SIZE];       //  the reply
    char user_message_id[SERVICE_ID_SIZE];  //  the user's message
    char agent_id[SERVICE_ID_SIZE];         //  the conversation's agent
    char user_created_at[40];               //  when the user's message was stored
    char created_at[40];                    //  when the reply was
    char *model;                            //  the agent's model, then the turn's
    uint32_t max_tokens;                    //  the agent's reply budget (0: none)
    uint32_t system_tokens;                 //  its system prompt, estimated
    char *content;                          //  the reply so far
    size_t size;                            //  its length
    size_t capacity;                        //  its buffer
    chat_turn_tool_t *tools;                //  tool calls so far
    size_t tool_count;                      //  how many
    bool has_usage;                         //  tokens known
    uint32_t prompt_tokens;                 //  tokens in
    uint32_t completion_tokens;             //  tokens out
    bool has_latency;                       //  the agents service measured it
    uint32_t latency_ms;                    //  first byte asked -> last received
    int64_t started;                        //  turn.run sent (monotonic ms)
    const char *status;                     //  outcome: complete, failed, cancelled
    char *error_code;                       //  why it failed (a bus.md code)
    uint32_t retry_after_s;                 //  when the caller may try again, 0 none
    char *error_message;                    //  the same for people
    char *connection_id;                    //  a channel conversation's connection
    char *contact_id;                       //  its contact
    char *thread_id;                        //  its thread ("" none)
    char previous_status[16];               //  inbound: the stored reply's status
    bool held;                              //  inbound: a member holds it, or waits
    bool reopened;                          //  inbound: it was resolved
    bool created;                           //  inbound: the conversation is new
    struct {                                //  the finished reply's statement texts,
        char updated_at[40];                //  kept until it is stored (its
        char prompt[16];                    //  statements borrow them)
        char completion[16];
        char latency[16];
        char completed[16];
        char *tools;  //  tool calls as JSON, NULL none
    } stored;
} chat_turn_t;

//  Start a turn call for request (taking it) whose args are of args_desc; NULL
//  (answered) on a bad body or without a user.
chat_turn_t *chat_turn_new (chat_state_t *state, bus_request_t **request_p,
                            const ProtobufCMessageDescriptor *args_desc);

//  Run the turn of conversation call.id with agent_id: store the user's message
//  turn->content_in (with external_key when not NULL) and a streaming reply, or,
//  when user_message_id is not NULL, only a new reply to that stored message
//  (created at user_created_at), then ask the agent.
void chat_turn_begin (chat_turn_t *turn, const char *agent_id,
                      const char *user_message_id, const char *user_created_at,
                      const char *external_key);

//  RFC 3339 UTC text with microseconds of now.
void chat_turn_now_text (char *out, size_t size);

#endif
