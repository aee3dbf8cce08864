/*  fuzz_codec_decode: codec_decode on arbitrary bytes. The first byte picks the
    message type (bus.proto and codec_test.proto types), the rest is the msgpack.
    Whatever decodes must re-encode, decode again to the same bytes, render as
    JSON, and survive protobuf-c's own pack/unpack (so it is a well-formed
    message that protobuf_c_message_free_unpacked can free).                     */
#include "bus.pb-c.h"
#include "codec_json.h"
#include "codec_msgpack.h"
#include "codec_test.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ProtobufCMessageDescriptor *const s_types[] = {
    &chorus_bus__headers__descriptor,
    &chorus_bus__event_record__descriptor,
    &chorus_bus__broker_status__descriptor,
    &chorus_bus__health_reply__descriptor,
    &chorus__codec_test__all_types__descriptor,
    &chorus__codec_test__inner__descriptor,
    &chorus_bus__echo__descriptor,
    &chorus_bus__empty__descriptor,
};

//  Stop on a broken property, with a reason.
static void
s_fail (const char *what, const char *detail)
{
    fprintf (stderr, "fuzz_codec_decode: %s %s\n", what, detail ? detail : "");
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor
        *desc = s_types[data[0] % (sizeof s_types / sizeof s_types[0])];
    char error[256];
    memset (error, 'x', sizeof error);
    ProtobufCMessage *msg = codec_decode (desc, data + 1, size - 1, error, sizeof error);
    if (!msg) {
        if (!memchr (error, 0, sizeof error) || error[0] == 0)
            s_fail ("failure without a reason", NULL);
        return 0;
    }
    size_t size1, size2;
    uint8_t *encoded1 = codec_encode_alloc (msg, &size1);
    if (!encoded1)
        s_fail ("cannot re-encode a decoded message", NULL);
    ProtobufCMessage *again = codec_decode (desc, encoded1, size1, error, sizeof error);
    if (!again)
        s_fail ("cannot decode our own encoding:", error);
    uint8_t *encoded2 = codec_encode_alloc (again, &size2);
    if (!encoded2 || size1 != size2 || memcmp (encoded1, encoded2, size1))
        s_fail ("encoding is not stable", NULL);
    char *json = codec_msgpack_to_json (encoded1, size1, CODEC_JSON_SORT_KEYS);
    if (!json)
        s_fail ("cannot render our own encoding as JSON", NULL);

    //  protobuf-c itself must find the message well formed
    size_t packed_size = protobuf_c_message_get_packed_size (msg);
    uint8_t *packed = malloc (packed_size ? packed_size : 1);
    if (protobuf_c_message_pack (msg, packed) != packed_size)
        s_fail ("protobuf-c pack size mismatch", NULL);
    ProtobufCMessage *unpacked = protobuf_c_message_unpack (desc, NULL, packed_size,
                                                            packed);
    if (!unpacked)
        s_fail ("protobuf-c cannot unpack the message", NULL);
    protobuf_c_message_free_unpacked (unpacked, NULL);

    free (packed);
    free (json);
    free (encoded1);
    free (encoded2);
    protobuf_c_message_free_unpacked (again, NULL);
    protobuf_c_message_free_unpacked (msg, NULL);
    return 0;
}
