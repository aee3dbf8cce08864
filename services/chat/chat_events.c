/*  chat_events: stream event bodies and the reply event log (see chat_events.h). */
#include "chat_events.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <inttypes.h>

#include "chat.pb-c.h"
#include "codec_msgpack.h"
#include "service_call.h"

static void
s_pack_str (msgpack_packer *pk, const char *text)
{
    if (!text) {
        msgpack_pack_nil (pk);
        return;
    }
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

//  The head of every event: a map of three whose "data" value comes next.
static void
s_head (msgpack_packer *pk, const char *event, const char *message_id, uint32_t n)
{
    char id[64];
    snprintf (id, sizeof id, "%s:%" PRIu32, message_id, n);
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "event");
    s_pack_str (pk, event);
    s_pack_str (pk, "id");
    s_pack_str (pk, id);
    s_pack_str (pk, "data");
}

int
chat_events_message (msgpack_sbuffer *buf, const char *event, const char *message_id,
                     uint32_t n, const ProtobufCMessage *data)
{
    size_t at = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, event, message_id, n);
    if (codec_encode (data, buf)) {
        buf->size = at;
        return -1;
    }
    return 0;
}

void
chat_events_delta (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                   const char *delta)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, CHAT_EVENT_DELTA, message_id, n);
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "message_id");
    s_pack_str (&pk, message_id);
    s_pack_str (&pk, "delta");
    s_pack_str (&pk, delta ? delta : "");
}

void
chat_events_tool_call (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                       uint32_t index, const char *id, const char *name,
                       const char *arguments)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, CHAT_EVENT_TOOL_CALL, message_id, n);
    msgpack_pack_map (&pk, 5);
    s_pack_str (&pk, "message_id");
    s_pack_str (&pk, message_id);
    s_pack_str (&pk, "index");
    msgpack_pack_uint32 (&pk, index);
    s_pack_str (&pk, "id");
    s_pack_str (&pk, id);
    s_pack_str (&pk, "name");
    s_pack_str (&pk, name);
    s_pack_str (&pk, "arguments");
    s_pack_str (&pk, arguments);
}

void
chat_events_error (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                   const char *code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, CHAT_EVENT_ERROR, message_id, n);
    msgpack_pack_map (&pk, 1);
    s_pack_str (&pk, "error");
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "code");
    s_pack_str (&pk, code);
    s_pack_str (&pk, "message");
    s_pack_str (&pk, message);
}

void
chat_events_live (msgpack_sbuffer *out, const char *conversation_id, const char *origin,
                  uint64_t n, const void *event, size_t size)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    s_pack_str (&pk, "conversation_id");
    s_pack_str (&pk, conversation_id);
    s_pack_str (&pk, "origin");
    s_pack_str (&pk, origin);
    s_pack_str (&pk, "n");
    msgpack_pack_uint64 (&pk, n);
    s_pack_str (&pk, "stream");
    msgpack_sbuffer_write (out, event, size);  //  the event's own map, as it is
}

int
chat_events_parse_id (const char *text, char *message_id, uint32_t *n)
{
    if (!text || strlen (text) < 36)
        return -1;
    char id[SERVICE_ID_SIZE];
    memcpy (id, text, 36);
    id[36] = 0;
    if (!service_uuid_valid (id))
        return -1;
    const char *rest = text + 36;
    uint64_t value = 0;
    if (*rest == ':') {
        rest++;
        if (!*rest || strlen (rest) > 10)
            return -1;
        for (; *rest; rest++) {
            if (!isdigit ((unsigned char) *rest))
                return -1;
            value = value * 10 + (uint64_t) (*rest - '0');
        }
        if (value > UINT32_MAX)
            return -1;
    }
    else if (*rest)
        return -1;
    for (char *p = id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    memcpy (message_id, id, SERVICE_ID_SIZE);
    *n = (uint32_t) value;
    return 0;
}

void
chat_events_key (char *key, size_t size, const char *message_id)
{
    snprintf (key, size, "chorus:chat:events:%s", message_id);
}

void
chat_events_follow_key (char *key, size_t size, const char *message_id)
{
    snprintf (key, size, "chorus:chat:follow:%s", message_id);
}

//  Event log writes are fire and forget; the callback must not touch anything
//  that may be gone by the time Redis answers (or the client is destroyed).
static void
s_ignored (redisReply *reply, const char *error, void *arg)
{
    (void) reply;
    (void) error;
    (void) arg;
}

void
chat_events_record (redis_client_t *redis, const char *message_id, uint32_t n,
                    const char *event, const void *body, size_t size, int64_t ttl_s)
{
    if (!redis || !redis_client_healthy (redis))
        return;
    char key[80], id[24];
    chat_events_key (key, sizeof key, message_id);
    snprintf (id, sizeof id, "0-%" PRIu32, n);
    const char *argv[] = {"XADD", key, id, event, (const char *) body};
    size_t lengths[] = {4, strlen (key), strlen (id), strlen (event), size};
    if (redis_client_command_argv (redis, s_ignored, NULL, 5, argv, lengths))
        return;
    if (ttl_s > 0) {
        char seconds[24];
        snprintf (seconds, sizeof seconds, "%" PRId64, ttl_s);
        const char *expire[] = {"EXPIRE", key, seconds};
        if (redis_client_command_argv (redis, s_ignored, NULL, 3, expire, NULL))
            return;
    }
}

int
chat_events_follow (redis_client_t *redis, const char *message_id)
{
    char key[80], ttl[16];
    chat_events_follow_key (key, sizeof key, message_id);
    snprintf (ttl, sizeof ttl, "%d", CHAT_EVENTS_FOLLOW_MS);
    const char *argv[] = {"SET", key, "1", "PX", ttl};
    return redis_client_command_argv (redis, s_ignored, NULL, 5, argv, NULL);
}

//  Read back a map entry of an unpacked object by key (NULL when absent).
static msgpack_object *
s_get (msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen (key)
            && memcmp (kv->key.via.str.ptr, key, strlen (key)) == 0)
            return &kv->val;
    }
    return NULL;
}

static bool
s_is (msgpack_object *object, const char *text)
{
    return object && object->type == MSGPACK_OBJECT_STR
           && object->via.str.size == strlen (text)
           && memcmp (object->via.str.ptr, text, strlen (text)) == 0;
}

void
chat_events_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_events: ");
    const char *id = "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d";
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object root;

    //  A message event carries the codec's map of the message as data
    ChorusChat__Message message = CHORUS_CHAT__MESSAGE__INIT;
    message.id = (char *) id;
    message.role = "assistant";
    message.status = "streaming";
    int rc = chat_events_message (&buf, CHAT_EVENT_CREATED, id, 2, &message.base);
    assert (rc == 0);
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (root.type == MSGPACK_OBJECT_MAP && root.via.map.size == 3);
    assert (s_is (s_get (&root, "event"), "message.created"));
    assert (s_is (s_get (&root, "id"), "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:2"));
    msgpack_object *data = s_get (&root, "data");
    assert (s_is (s_get (data, "status"), "streaming"));
    assert (s_is (s_get (data, "role"), "assistant"));
    assert (s_get (data, "content")->type == MSGPACK_OBJECT_NIL);

    //  A delta
    msgpack_sbuffer_clear (&buf);
    chat_events_delta (&buf, id, 3, "Hel");
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (s_is (s_get (&root, "event"), "message.delta"));
    data = s_get (&root, "data");
    assert (data->via.map.size == 2);
    assert (s_is (s_get (data, "message_id"), id));
    assert (s_is (s_get (data, "delta"), "Hel"));

    //  A tool call piece: absent parts are nil
    msgpack_sbuffer_clear (&buf);
    chat_events_tool_call (&buf, id, 4, 1, "call_9", NULL, "{\"a\":");
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (s_is (s_get (&root, "event"), "tool.call"));
    data = s_get (&root, "data");
    assert (s_get (data, "index")->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert (s_get (data, "index")->via.u64 == 1);
    assert (s_is (s_get (data, "id"), "call_9"));
    assert (s_get (data, "name")->type == MSGPACK_OBJECT_NIL);
    assert (s_is (s_get (data, "arguments"), "{\"a\":"));

    //  An error
    msgpack_sbuffer_clear (&buf);
    chat_events_error (&buf, id, 5, "unavailable", "no agent");
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (s_is (s_get (&root, "event"), "error"));
    assert (s_is (s_get (&root, "id"), "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:5"));
    msgpack_object *error = s_get (s_get (&root, "data"), "error");
    assert (s_is (s_get (error, "code"), "unavailable"));
    assert (s_is (s_get (error, "message"), "no agent"));
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&buf);

    //  Last-Event-ID
    char parsed[SERVICE_ID_SIZE];
    uint32_t n = 99;
    assert (chat_events_parse_id ("0B8E2A4C-5D6F-4A1B-9C3D-2E4F6A8B0C1D:17", parsed, &n)
            == 0);
    assert (streq (parsed, id) && n == 17);
    assert (chat_events_parse_id (id, parsed, &n) == 0 && n == 0);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:1x", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:99999999999",
                                  parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d;1", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("nope", parsed, &n) == -1);
    assert (chat_events_parse_id (NULL, parsed, &n) == -1);
    char key[80];
    chat_events_key (key, sizeof key, id);
    assert (streq (key, "chorus:chat:events:0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    printf ("OK\n");
}
