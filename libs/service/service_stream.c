/*  service_stream: a reply's stream events as the edge renders them into SSE
    (see service_stream.h).                                                     */
#include "service_stream.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bus.pb-c.h"
#include "codec_msgpack.h"

//  The head of every event: a map of three whose "data" value comes next.
static void
s_head (msgpack_packer *pk, const char *event, const char *message_id, uint32_t n)
{
    char id[64];
    snprintf (id, sizeof id, "%s:%" PRIu32, message_id, n);
    msgpack_pack_map (pk, 3);
    codec_pack_str (pk, "event");
    codec_pack_str (pk, event);
    codec_pack_str (pk, "id");
    codec_pack_str (pk, id);
    codec_pack_str (pk, "data");
}

int
service_stream_message (msgpack_sbuffer *buf, const char *event, const char *message_id,
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
service_stream_delta (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                      const char *delta)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, SERVICE_STREAM_DELTA, message_id, n);
    msgpack_pack_map (&pk, 2);
    codec_pack_str (&pk, "message_id");
    codec_pack_str (&pk, message_id);
    codec_pack_str (&pk, "delta");
    codec_pack_str (&pk, delta ? delta : "");
}

void
service_stream_tool_call (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                          uint32_t index, const char *id, const char *name,
                          const char *arguments)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, SERVICE_STREAM_TOOL_CALL, message_id, n);
    msgpack_pack_map (&pk, 5);
    codec_pack_str (&pk, "message_id");
    codec_pack_str (&pk, message_id);
    codec_pack_str (&pk, "index");
    msgpack_pack_uint32 (&pk, index);
    codec_pack_str (&pk, "id");
    codec_pack_str (&pk, id);
    codec_pack_str (&pk, "name");
    codec_pack_str (&pk, name);
    codec_pack_str (&pk, "arguments");
    codec_pack_str (&pk, arguments);
}

void
service_stream_error (msgpack_sbuffer *buf, const char *message_id, uint32_t n,
                      const char *code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    s_head (&pk, SERVICE_STREAM_ERROR, message_id, n);
    msgpack_pack_map (&pk, 1);
    codec_pack_str (&pk, "error");
    msgpack_pack_map (&pk, 2);
    codec_pack_str (&pk, "code");
    codec_pack_str (&pk, code);
    codec_pack_str (&pk, "message");
    codec_pack_str (&pk, message);
}


//  ---------------------------------------------------------------------------
//  Selftest

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
service_stream_test (bool verbose)
{
    (void) verbose;
    printf (" * service_stream: ");
    //  @selftest
    const char *id = "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d";
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object root;

    //  A message event carries the codec's map of the message as data
    ChorusBus__PingReply message = CHORUS_BUS__PING_REPLY__INIT;
    message.service = "chat";
    message.replica = "r1";
    int rc = service_stream_message (&buf, SERVICE_STREAM_CREATED, id, 2, &message.base);
    assert (rc == 0);
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (root.type == MSGPACK_OBJECT_MAP && root.via.map.size == 3);
    assert (s_is (s_get (&root, "event"), "message.created"));
    assert (s_is (s_get (&root, "id"), "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:2"));
    msgpack_object *data = s_get (&root, "data");
    assert (s_is (s_get (data, "service"), "chat"));
    assert (s_is (s_get (data, "replica"), "r1"));

    //  A delta
    msgpack_sbuffer_clear (&buf);
    service_stream_delta (&buf, id, 3, "Hel");
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (s_is (s_get (&root, "event"), "message.delta"));
    data = s_get (&root, "data");
    assert (data->via.map.size == 2);
    assert (s_is (s_get (data, "message_id"), id));
    assert (s_is (s_get (data, "delta"), "Hel"));

    //  A tool call piece: absent parts are nil
    msgpack_sbuffer_clear (&buf);
    service_stream_tool_call (&buf, id, 4, 1, "call_9", NULL, "{\"a\":");
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
    service_stream_error (&buf, id, 5, "unavailable", "no agent");
    assert (msgpack_unpack (buf.data, buf.size, NULL, &zone, &root)
            == MSGPACK_UNPACK_SUCCESS);
    assert (s_is (s_get (&root, "event"), "error"));
    assert (s_is (s_get (&root, "id"), "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:5"));
    msgpack_object *error = s_get (s_get (&root, "data"), "error");
    assert (s_is (s_get (error, "code"), "unavailable"));
    assert (s_is (s_get (error, "message"), "no agent"));
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&buf);

    printf ("OK\n");
}
