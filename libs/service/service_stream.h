/*  service_stream: the stream events of a reply (schemas/chat.md, "Sending a
    message") as the bodies the edge renders into SSE: msgpack maps {"event":
    name, "id": "<message id>:<n>", "data": ...}. chat writes them for the
    replies of conversations, agents for a trial turn (agents.test), so a client
    reads both streams alike.                                                   */
#ifndef SERVICE_STREAM_H_INCLUDED
#define SERVICE_STREAM_H_INCLUDED

#include <msgpack.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

//  Event names.
#define SERVICE_STREAM_CREATED "message.created"
#define SERVICE_STREAM_DELTA "message.delta"
#define SERVICE_STREAM_TOOL_CALL "tool.call"
#define SERVICE_STREAM_COMPLETED "message.completed"
#define SERVICE_STREAM_ERROR "error"

//  Append event n of reply message_id to buf with data a message (encoded by the
//  codec). Returns 0 or -1 (buf back as it was).
int service_stream_message (msgpack_sbuffer *buf, const char *event,
                            const char *message_id, uint32_t n,
                            const ProtobufCMessage *data)
    __attribute__ ((warn_unused_result));

//  message.delta: data {"message_id", "delta"}.
void service_stream_delta (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                           const char *delta);

//  tool.call: data {"message_id", "index", "id", "name", "arguments"} (NULL: nil).
void service_stream_tool_call (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                               uint32_t index, const char *id, const char *name,
                               const char *arguments);

//  error: data {"error": {"code", "message"}}.
void service_stream_error (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                           const char *code, const char *message);

void service_stream_test (bool verbose);

#endif
