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
#include "service_stream.h"

//  The payload of a live bus event (topic chat.stream.<conversation>, not
//  durable) that carries stream event `event` (size bytes of msgpack, as
//  service_stream_* wrote it) of a conversation to the edges: {conversation_id,
//  origin, n, stream}. origin and n (counting from 1 per origin) let a receiver
//  drop the copies that come through several brokers.
void chat_events_live (msgpack_sbuffer *out, const char *conversation_id,
                       const char *origin, uint64_t n, const void *event, size_t size);

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
