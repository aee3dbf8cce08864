/*  chat_events: the stream events of a reply (schemas/chat.md, "Sending a
    message") as the bodies the edge renders into SSE: msgpack maps {"event":
    name, "id": "<message id>:<n>", "data": ...}; parsing a Last-Event-ID; and
    the reply's event log in Redis (a stream per reply message, entry id 0-n,
    field the event name, value the body) that replays read on any replica.
    Used by chat_turn (writing) and chat_replay (reading).                     */
#ifndef CHAT_EVENTS_H_INCLUDED
#define CHAT_EVENTS_H_INCLUDED

#include <msgpack.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "redis_client.h"

//  Event names.
#define CHAT_EVENT_CREATED "message.created"
#define CHAT_EVENT_DELTA "message.delta"
#define CHAT_EVENT_TOOL_CALL "tool.call"
#define CHAT_EVENT_COMPLETED "message.completed"
#define CHAT_EVENT_ERROR "error"

//  Append event n of reply message_id to buf with data a message (encoded by the
//  codec). Returns 0 or -1 (buf back as it was).
//  The payload of a live bus event (topic chat.stream.<conversation>, not
//  durable) that carries stream event `event` (size bytes of msgpack, as
//  chat_events_* wrote it) of a conversation to the edges: {conversation_id,
//  origin, n, stream}. origin and n (counting from 1 per origin) let a receiver
//  drop the copies that come through several brokers.
void chat_events_live (msgpack_sbuffer *out, const char *conversation_id,
                       const char *origin, uint64_t n, const void *event, size_t size);

int chat_events_message (msgpack_sbuffer *buf, const char *event, const char *message_id,
                         uint32_t n, const ProtobufCMessage *data)
    __attribute__ ((warn_unused_result));

//  message.delta: data {"message_id", "delta"}.
void chat_events_delta (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                        const char *delta);

//  tool.call: data {"message_id", "index", "id", "name", "arguments"} (NULL: nil).
void chat_events_tool_call (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                            uint32_t index, const char *id, const char *name,
                            const char *arguments);

//  error: data {"error": {"code", "message"}}.
void chat_events_error (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                        const char *code, const char *message);

//  Parse a Last-Event-ID "<message id>:<n>" (or a bare "<message id>": n 0) into
//  message_id (lower case, SERVICE_ID_SIZE bytes) and *n. -1 when it is neither.
int chat_events_parse_id (const char *text, char *message_id, uint32_t *n)
    __attribute__ ((warn_unused_result));

//  The Redis key of a reply's event log into key.
void chat_events_key (char *key, size_t size, const char *message_id);

//  The Redis key a replay following a streaming reply keeps alive (PX
//  CHAT_EVENTS_FOLLOW_MS, set every second), so the replica running the turn,
//  its own caller gone, knows a resumed client still reads it.
#define CHAT_EVENTS_FOLLOW_MS 3000
void chat_events_follow_key (char *key, size_t size, const char *message_id);

//  Set (or refresh) that key. Fire and forget; -1 when Redis refused it.
int chat_events_follow (redis_client_t *redis, const char *message_id);

//  Append event n (name event, body) to the reply's event log; ttl_s > 0 also
//  (re)sets the log's lifetime. Fire and forget: Redis holds nothing that cannot
//  be derived again from the stored message. redis may be NULL.
void chat_events_record (redis_client_t *redis, const char *message_id, uint32_t n,
                         const char *event, const void *body, size_t size, int64_t ttl_s);

void chat_events_test (bool verbose);

#endif
