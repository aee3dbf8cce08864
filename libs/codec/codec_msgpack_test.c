/*  codec_msgpack_test: the selftest of codec_msgpack, kept in its own file so the
    codec stays under the size where a module should split (STYLE.md).          */
#include "codec_msgpack.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"

#include "auth.pb-c.h"
#include "bus.pb-c.h"
#include "codec_json.h"
#include "codec_test.pb-c.h"

//  A hand-written proto2-style message (protoc-c 1.4 cannot generate proto3
//  "optional"), to test fields with has_ flags and a static string default.
typedef struct {
    ProtobufCMessage base;         //  protobuf-c header
    protobuf_c_boolean has_count;  //  count is set
    uint32_t count;                //  optional uint32 count = 1
    char *label;                   //  optional string label = 2 [default = "none"]
    protobuf_c_boolean has_blob;   //  blob is set
    ProtobufCBinaryData blob;      //  optional bytes blob = 3
} s_legacy_t;

static char s_legacy_label_default[] = "none";
static const ProtobufCMessageDescriptor s_legacy_descriptor;

static void
s_legacy_init (ProtobufCMessage *message)
{
    s_legacy_t *legacy = (s_legacy_t *) message;
    memset (legacy, 0, sizeof *legacy);
    legacy->base.descriptor = &s_legacy_descriptor;
    legacy->label = s_legacy_label_default;
}

static const ProtobufCFieldDescriptor s_legacy_fields[] = {
    {"count", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_UINT32,
     offsetof (s_legacy_t, has_count), offsetof (s_legacy_t, count), NULL, NULL, 0, 0,
     NULL, NULL},
    {"label", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0,
     offsetof (s_legacy_t, label), NULL, s_legacy_label_default, 0, 0, NULL, NULL},
    {"blob", 3, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_BYTES,
     offsetof (s_legacy_t, has_blob), offsetof (s_legacy_t, blob), NULL, NULL, 0, 0, NULL,
     NULL},
};
static const unsigned s_legacy_by_name[] = {2, 0, 1};
static const ProtobufCIntRange s_legacy_ranges[] = {{1, 0}, {0, 3}};
static const ProtobufCMessageDescriptor s_legacy_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "test.Legacy",
    "Legacy",
    "Test__Legacy",
    "test",
    sizeof (s_legacy_t),
    3,
    s_legacy_fields,
    s_legacy_by_name,
    1,
    s_legacy_ranges,
    s_legacy_init,
    NULL,
    NULL,
    NULL};

//  Decode JSON text (converted to msgpack) as desc; NULL with the reason in error.
static ProtobufCMessage *
s_decode_json (const ProtobufCMessageDescriptor *desc, const char *json, char *error,
               size_t error_size)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    int rc = codec_json_to_msgpack (json, strlen (json), &buf, error, error_size);
    assert (rc == 0);
    ProtobufCMessage *msg = codec_decode (desc, buf.data, buf.size, error, error_size);
    msgpack_sbuffer_destroy (&buf);
    return msg;
}

//  Assert that JSON text fails to decode as desc with exactly this reason.
static void
s_expect_error (const ProtobufCMessageDescriptor *desc, const char *json,
                const char *expected, bool verbose)
{
    char error[256];
    ProtobufCMessage *msg = s_decode_json (desc, json, error, sizeof error);
    if (verbose || msg || strcmp (error, expected))
        printf ("\n   %s -> %s (expected: %s)", json, msg ? "decoded" : error, expected);
    assert (!msg);
    assert (strcmp (error, expected) == 0);
}

//  Assert that raw bytes fail to decode as desc with exactly this reason.
static void
s_expect_raw_error (const ProtobufCMessageDescriptor *desc, const void *data, size_t size,
                    const char *expected)
{
    char error[256];
    ProtobufCMessage *msg = codec_decode (desc, data, size, error, sizeof error);
    if (msg || strcmp (error, expected))
        printf ("\n   got '%s', expected '%s'", msg ? "decoded" : error, expected);
    assert (!msg);
    assert (strcmp (error, expected) == 0);
}

//  Encode msg and return its JSON rendering (caller frees).
static char *
s_to_json (const ProtobufCMessage *msg)
{
    size_t size;
    void *data = codec_encode_alloc (msg, &size);
    assert (data);
    char *json = codec_msgpack_to_json (data, size, 0);
    free (data);
    assert (json);
    return json;
}

//  Encode, decode, re-encode: the second encoding must equal the first. Returns
//  the decoded message.
static ProtobufCMessage *
s_round_trip (const ProtobufCMessage *msg)
{
    size_t size;
    void *data = codec_encode_alloc (msg, &size);
    assert (data);
    char error[256] = "";
    ProtobufCMessage *copy = codec_decode (msg->descriptor, data, size, error,
                                           sizeof error);
    if (!copy)
        printf ("\n   round trip failed: %s\n", error);
    assert (copy);
    size_t size2;
    void *data2 = codec_encode_alloc (copy, &size2);
    assert (data2);
    assert (size2 == size && memcmp (data, data2, size) == 0);
    free (data);
    free (data2);
    return copy;
}

//  A chain of n Inner messages nested through "child", as msgpack.
static void
s_pack_chain (msgpack_sbuffer *buf, int n)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    for (int i = 0; i < n; i++) {
        msgpack_pack_map (&pk, i + 1 < n ? 2 : 1);
        msgpack_pack_str_with_body (&pk, "value", 5);
        msgpack_pack_int (&pk, i);
        if (i + 1 < n)
            msgpack_pack_str_with_body (&pk, "child", 5);
    }
}

void
codec_msgpack_test (bool verbose)
{
    printf (" * codec_msgpack: ");
    char error[256];

    //  Headers: plain proto3 fields are all written, even when empty
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    char *json = s_to_json (&headers.base);
    assert (streq (json, "{\"tenant_id\":\"\",\"user_id\":\"\",\"role\":\"\","
                         "\"request_id\":\"\",\"timeout_ms\":0,\"session_id\":\"\","
                         "\"api_key_id\":\"\",\"client_ip\":\"\"}"));
    free (json);
    headers.tenant_id = "t-1";
    headers.user_id = "u-\xc3\xa9";
    headers.role = "member";
    headers.request_id = "r-42";
    headers.timeout_ms = 5000;
    ChorusBus__Headers *h = (ChorusBus__Headers *) s_round_trip (&headers.base);
    assert (streq (h->tenant_id, "t-1") && streq (h->user_id, "u-\xc3\xa9"));
    assert (streq (h->role, "member") && streq (h->request_id, "r-42"));
    assert (h->timeout_ms == 5000);
    protobuf_c_message_free_unpacked (&h->base, NULL);

    //  Frames
    zframe_t *frame = codec_encode_frame (&headers.base);
    assert (frame);
    h = (ChorusBus__Headers *) codec_decode_frame (&chorus_bus__headers__descriptor,
                                                   frame, error, sizeof error);
    assert (h && h->timeout_ms == 5000);
    protobuf_c_message_free_unpacked (&h->base, NULL);
    zframe_destroy (&frame);
    assert (
        codec_decode_frame (&chorus_bus__headers__descriptor, NULL, error, sizeof error)
        == NULL);

    //  codec_encode appends to what the buffer holds
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_sbuffer_write (&buf, "\x01", 1);
    assert (codec_encode (&headers.base, &buf) == 0);
    assert (buf.size > 1 && buf.data[0] == 1);
    h = (ChorusBus__Headers *) codec_decode (&chorus_bus__headers__descriptor,
                                             buf.data + 1, buf.size - 1, error,
                                             sizeof error);
    assert (h && streq (h->request_id, "r-42"));
    protobuf_c_message_free_unpacked (&h->base, NULL);
    assert (codec_encode (NULL, &buf) == -1);
    msgpack_sbuffer_destroy (&buf);

    //  EventRecord: nested message and bytes with NUL and high bytes
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = "chat";
    meta.seq = UINT64_MAX;
    meta.tenant_id = "t-1";
    meta.time_ms = -1;
    ChorusBus__EventRecord record = CHORUS_BUS__EVENT_RECORD__INIT;
    record.topic = "chat.message.created";
    record.meta = &meta;
    uint8_t payload[] = {0x81, 0xa1, 'a', 0x00, 0xff};
    record.payload.data = payload;
    record.payload.len = sizeof payload;
    ChorusBus__EventRecord *r = (ChorusBus__EventRecord *) s_round_trip (&record.base);
    assert (streq (r->topic, "chat.message.created"));
    assert (r->meta && r->meta->seq == UINT64_MAX && r->meta->time_ms == -1);
    assert (streq (r->meta->publisher, "chat") && streq (r->meta->tenant_id, "t-1"));
    assert (r->payload.len == sizeof payload);
    assert (memcmp (r->payload.data, payload, sizeof payload) == 0);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  An absent sub-message is left out and comes back NULL
    record.meta = NULL;
    record.payload.len = 0;
    record.payload.data = NULL;
    json = s_to_json (&record.base);
    assert (streq (json, "{\"topic\":\"chat.message.created\",\"payload\":\"\"}"));
    free (json);
    r = (ChorusBus__EventRecord *) s_round_trip (&record.base);
    assert (r->meta == NULL && r->payload.len == 0);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  bytes also accept a string
    r = (ChorusBus__EventRecord *) s_decode_json (&chorus_bus__event_record__descriptor,
                                                  "{\"payload\":\"abc\"}", error,
                                                  sizeof error);
    assert (r && r->payload.len == 3 && memcmp (r->payload.data, "abc", 3) == 0);
    protobuf_c_message_free_unpacked (&r->base, NULL);

    //  BrokerStatus: repeated messages
    ChorusBus__ServiceInfo infos[3];
    ChorusBus__ServiceInfo *info_ptrs[3];
    const char *names[3] = {"auth", "chat", "rag"};
    for (int i = 0; i < 3; i++) {
        chorus_bus__service_info__init (&infos[i]);
        infos[i].name = (char *) names[i];
        infos[i].replicas = (uint32_t) i + 1;
        infos[i].credit = UINT32_MAX;
        info_ptrs[i] = &infos[i];
    }
    ChorusBus__BrokerStatus status = CHORUS_BUS__BROKER_STATUS__INIT;
    status.broker = "b1";
    json = s_to_json (&status.base);
    assert (streq (json, "{\"broker\":\"b1\",\"services\":[],\"requests_total\":0,"
                         "\"errors_total\":0}"));
    free (json);
    status.n_services = 3;
    status.services = info_ptrs;
    status.requests_total = 1000;
    ChorusBus__BrokerStatus *s = (ChorusBus__BrokerStatus *) s_round_trip (&status.base);
    assert (s->n_services == 3 && streq (s->services[2]->name, "rag"));
    assert (s->services[1]->replicas == 2 && s->services[0]->credit == UINT32_MAX);
    assert (s->requests_total == 1000);
    protobuf_c_message_free_unpacked (&s->base, NULL);

    //  AllTypes: every scalar at its extremes, enums, oneof, repeated
    Chorus__CodecTest__Inner inner = CHORUS__CODEC_TEST__INNER__INIT;
    inner.name = "in";
    inner.value = -7;
    Chorus__CodecTest__Inner leaf = CHORUS__CODEC_TEST__INNER__INIT;
    leaf.value = 9;
    inner.child = &leaf;
    Chorus__CodecTest__AllTypes all = CHORUS__CODEC_TEST__ALL_TYPES__INIT;
    all.f_int32 = INT32_MIN;
    all.f_int64 = INT64_MIN;
    all.f_uint32 = UINT32_MAX;
    all.f_uint64 = UINT64_MAX;
    all.f_sint32 = INT32_MAX;
    all.f_sint64 = INT64_MAX;
    all.f_fixed32 = 123456789u;
    all.f_fixed64 = (uint64_t) 1 << 63;
    all.f_sfixed32 = -1;
    all.f_sfixed64 = -((int64_t) 1 << 40);
    all.f_bool = 1;
    all.f_float = 1.5f;
    all.f_double = -2.25e300;
    all.f_string = "\xe2\x9c\x93 ok";
    all.f_bytes.data = payload;
    all.f_bytes.len = sizeof payload;
    all.f_enum = CHORUS__CODEC_TEST__COLOR__COLOR_BLUE;
    all.f_inner = &inner;
    int32_t r_int32[] = {0, -1, INT32_MAX};
    uint64_t r_uint64[] = {UINT64_MAX};
    int64_t r_sint64[] = {INT64_MIN, 0};
    protobuf_c_boolean r_bool[] = {1, 0, 1};
    float r_float[] = {0.5f, -1e30f};
    double r_double[] = {1e-300};
    char *r_string[] = {"a", "", "\xc3\xa9"};
    ProtobufCBinaryData r_bytes[] = {{0, NULL}, {2, payload}};
    Chorus__CodecTest__Color r_enum[] = {CHORUS__CODEC_TEST__COLOR__COLOR_RED, 77};
    Chorus__CodecTest__Inner *r_inner[] = {&leaf, &inner};
    uint32_t r_fixed32[] = {1, 2, 3, 4};
    int64_t r_sfixed64[] = {-5};
#define S_SET(name)                                                                      \
    all.n_##name = sizeof name / sizeof name[0];                                         \
    all.name = name
    S_SET (r_int32);
    S_SET (r_uint64);
    S_SET (r_sint64);
    S_SET (r_bool);
    S_SET (r_float);
    S_SET (r_double);
    S_SET (r_string);
    S_SET (r_bytes);
    S_SET (r_enum);
    S_SET (r_inner);
    S_SET (r_fixed32);
    S_SET (r_sfixed64);
#undef S_SET
    for (int variant = 0; variant < 5; variant++) {
        if (variant == 0)
            all.choice_case = CHORUS__CODEC_TEST__ALL_TYPES__CHOICE__NOT_SET;
        else if (variant == 1) {
            all.choice_case = CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_TEXT;
            all.c_text = "chosen";
        }
        else if (variant == 2) {
            all.choice_case = CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_NUMBER;
            all.c_number = 42;
        }
        else if (variant == 3) {
            all.choice_case = CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_INNER;
            all.c_inner = &inner;
        }
        else {
            all.choice_case = CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_BLOB;
            all.c_blob.data = payload;
            all.c_blob.len = 2;
        }
        Chorus__CodecTest__AllTypes *a = (Chorus__CodecTest__AllTypes *) s_round_trip (
            &all.base);
        assert (a->f_int32 == INT32_MIN && a->f_int64 == INT64_MIN);
        assert (a->f_uint32 == UINT32_MAX && a->f_uint64 == UINT64_MAX);
        assert (a->f_sint32 == INT32_MAX && a->f_sint64 == INT64_MAX);
        assert (a->f_fixed32 == 123456789u && a->f_fixed64 == (uint64_t) 1 << 63);
        assert (a->f_sfixed32 == -1 && a->f_sfixed64 == -((int64_t) 1 << 40));
        assert (a->f_bool == 1 && a->f_float == 1.5f && a->f_double == -2.25e300);
        assert (streq (a->f_string, "\xe2\x9c\x93 ok"));
        assert (a->f_bytes.len == sizeof payload);
        assert (a->f_enum == CHORUS__CODEC_TEST__COLOR__COLOR_BLUE);
        assert (a->f_inner && a->f_inner->value == -7 && a->f_inner->child->value == 9);
        assert (a->f_inner->child->child == NULL);
        assert (a->n_r_int32 == 3 && a->r_int32[2] == INT32_MAX);
        assert (a->n_r_uint64 == 1 && a->r_uint64[0] == UINT64_MAX);
        assert (a->n_r_sint64 == 2 && a->r_sint64[0] == INT64_MIN);
        assert (a->n_r_bool == 3 && a->r_bool[0] && !a->r_bool[1]);
        assert (a->n_r_float == 2 && a->r_float[1] == -1e30f);
        assert (a->n_r_double == 1 && a->r_double[0] == 1e-300);
        assert (a->n_r_string == 3 && streq (a->r_string[1], "")
                && streq (a->r_string[2], "\xc3\xa9"));
        assert (a->n_r_bytes == 2 && a->r_bytes[0].len == 0 && a->r_bytes[1].len == 2);
        assert (a->n_r_enum == 2 && a->r_enum[1] == 77);
        assert (a->n_r_inner == 2 && a->r_inner[1]->child->value == 9);
        assert (a->n_r_fixed32 == 4 && a->n_r_sfixed64 == 1 && a->r_sfixed64[0] == -5);
        assert (a->choice_case == all.choice_case);
        if (variant == 1)
            assert (streq (a->c_text, "chosen"));
        if (variant == 2)
            assert (a->c_number == 42);
        if (variant == 3)
            assert (a->c_inner->child->value == 9);
        if (variant == 4)
            assert (a->c_blob.len == 2 && a->c_blob.data[1] == 0xa1);
        protobuf_c_message_free_unpacked (&a->base, NULL);
    }
    //  Enums are written by name; an unknown number stays a number; only the
    //  chosen oneof member is written
    json = s_to_json (&all.base);
    assert (strstr (json, "\"f_enum\":\"COLOR_BLUE\""));
    assert (strstr (json, "\"r_enum\":[\"COLOR_RED\",77]"));
    assert (strstr (json, "\"c_blob\":\"gaE=\"") && !strstr (json, "c_text"));
    if (verbose)
        printf ("\n   %s\n", json);
    free (json);
    //  A NaN double travels as a NaN
    all.f_double = NAN;
    Chorus__CodecTest__AllTypes *a = (Chorus__CodecTest__AllTypes *) s_round_trip (
        &all.base);
    assert (isnan (a->f_double));
    protobuf_c_message_free_unpacked (&a->base, NULL);
    all.f_double = 0;

    //  Lenient readings: nil = absent, unknown keys ignored, enum by number, floats
    //  with integral values for integers, integers for floats
    const ProtobufCMessageDescriptor *at = &chorus__codec_test__all_types__descriptor;
    a = (Chorus__CodecTest__AllTypes *) s_decode_json (
        at,
        "{\"f_string\":null,\"nope\":{\"deep\":[1,2]},\"f_enum\":2,\"f_int64\":5000.0,"
        "\"f_uint64\":1e19,\"f_float\":3,\"f_double\":-4,\"r_enum\":[\"COLOR_BLUE\",-3],"
        "\"f_inner\":null,\"c_text\":null,\"c_number\":7,\"r_string\":[]}",
        error, sizeof error);
    assert (a);
    assert (streq (a->f_string, "")
            && a->f_enum == CHORUS__CODEC_TEST__COLOR__COLOR_GREEN);
    assert (a->f_int64 == 5000 && a->f_uint64 == 10000000000000000000u);
    assert (a->f_float == 3.0f && a->f_double == -4.0);
    assert (a->n_r_enum == 2 && a->r_enum[0] == a->r_enum[1]);
    assert (a->f_inner == NULL && a->n_r_string == 0);
    assert (a->choice_case == CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_NUMBER);
    protobuf_c_message_free_unpacked (&a->base, NULL);
    //  Non-string keys are unknown keys
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    msgpack_pack_int (&pk, 14);
    msgpack_pack_str_with_body (&pk, "x", 1);
    msgpack_pack_nil (&pk);
    msgpack_pack_nil (&pk);
    msgpack_pack_str_with_body (&pk, "f_int32", 7);
    msgpack_pack_int (&pk, -3);
    a = (Chorus__CodecTest__AllTypes *) codec_decode (at, buf.data, buf.size, error,
                                                      sizeof error);
    assert (a && a->f_int32 == -3 && streq (a->f_string, ""));
    protobuf_c_message_free_unpacked (&a->base, NULL);
    msgpack_sbuffer_destroy (&buf);

    //  Type and range errors name the field and its path
    const ProtobufCMessageDescriptor *hd = &chorus_bus__headers__descriptor;
    s_expect_error (hd, "{\"timeout_ms\":\"soon\"}",
                    "field 'timeout_ms': expected integer, got string", verbose);
    s_expect_error (hd, "{\"tenant_id\":5}",
                    "field 'tenant_id': expected string, got integer", verbose);
    s_expect_error (hd, "{\"timeout_ms\":1.5}",
                    "field 'timeout_ms': expected integer, got non-integral float",
                    verbose);
    s_expect_error (hd, "{\"timeout_ms\":1e19}",
                    "field 'timeout_ms': integer 1e+19 out of range", verbose);
    s_expect_error (hd, "[1]", "not a map (got array)", verbose);
    s_expect_error (hd, "\"x\"", "not a map (got string)", verbose);
    s_expect_error (&chorus_bus__event_record__descriptor, "{\"meta\":{\"seq\":\"x\"}}",
                    "field 'meta.seq': expected integer, got string", verbose);
    s_expect_error (&chorus_bus__event_record__descriptor, "{\"meta\":[]}",
                    "field 'meta': expected map, got array", verbose);
    s_expect_error (&chorus_bus__event_record__descriptor, "{\"payload\":1}",
                    "field 'payload': expected binary, got integer", verbose);
    const ProtobufCMessageDescriptor *bs = &chorus_bus__broker_status__descriptor;
    s_expect_error (bs,
                    "{\"broker\":\"b\",\"services\":[{\"name\":\"a\"},{\"name\":\"b\","
                    "\"replicas\":-1},{\"name\":\"c\"}]}",
                    "field 'services[1].replicas': integer -1 out of range", verbose);
    s_expect_error (bs, "{\"services\":{}}", "field 'services': expected array, got map",
                    verbose);
    s_expect_error (bs, "{\"services\":[{},null]}",
                    "field 'services[1]': nil in an array", verbose);
    s_expect_error (bs, "{\"services\":[{\"replicas\":1099511627776}]}",
                    "field 'services[0].replicas': integer 1099511627776 out of range",
                    verbose);
    s_expect_error (at, "{\"f_int32\":2147483648}",
                    "field 'f_int32': integer 2147483648 out of range", verbose);
    s_expect_error (at, "{\"f_int32\":-2147483649}",
                    "field 'f_int32': integer -2147483649 out of range", verbose);
    s_expect_error (at, "{\"f_uint64\":-1}", "field 'f_uint64': integer -1 out of range",
                    verbose);
    s_expect_error (at, "{\"f_uint32\":-1.0}",
                    "field 'f_uint32': integer -1 out of range", verbose);
    s_expect_error (at, "{\"f_uint64\":2e19}",
                    "field 'f_uint64': integer 2e+19 out of range", verbose);
    s_expect_error (
        at, "{\"f_float\":1e300}",
        "field 'f_float': number 1.0000000000000001e+300 out of range for float",
        verbose);
    s_expect_error (at, "{\"f_double\":\"1\"}",
                    "field 'f_double': expected number, got string", verbose);
    s_expect_error (at, "{\"f_bool\":1}", "field 'f_bool': expected boolean, got integer",
                    verbose);
    s_expect_error (at, "{\"f_enum\":\"PURPLE\"}", "field 'f_enum': unknown Color value",
                    verbose);
    s_expect_error (at, "{\"f_enum\":true}",
                    "field 'f_enum': expected enum name or integer, got boolean",
                    verbose);
    s_expect_error (at, "{\"f_enum\":1.0}",
                    "field 'f_enum': expected enum name or integer, got float", verbose);
    s_expect_error (at, "{\"f_enum\":4294967296}",
                    "field 'f_enum': integer 4294967296 out of range", verbose);
    s_expect_error (at, "{\"r_string\":[\"a\",\"b\",7]}",
                    "field 'r_string[2]': expected string, got integer", verbose);
    s_expect_error (at, "{\"r_inner\":[{\"child\":{\"child\":{\"name\":false}}}]}",
                    "field 'r_inner[0].child.child.name': expected string, got boolean",
                    verbose);
    s_expect_error (at, "{\"f_int32\":[1]}",
                    "field 'f_int32': expected integer, got array", verbose);
    s_expect_error (at, "{\"c_text\":\"a\",\"c_inner\":{}}",
                    "field 'c_inner': conflicts with 'c_text' (same oneof)", verbose);
    s_expect_error (at, "{\"c_inner\":{\"name\":\"x\"},\"c_blob\":null,\"c_number\":1}",
                    "field 'c_number': conflicts with 'c_inner' (same oneof)", verbose);

    //  Raw msgpack errors
    size_t size;
    uint8_t *data = codec_encode_alloc (&headers.base, &size);
    assert (data);
    s_expect_raw_error (hd, data, size - 1, "truncated");
    s_expect_raw_error (hd, data, 0, "empty");
    s_expect_raw_error (hd, "\xc1", 1, "malformed msgpack");
    s_expect_raw_error (hd, "\x80\xc0", 2, "trailing bytes");
    s_expect_raw_error (hd, "\xdf\xff\xff\xff\xff", 5, "truncated");
    assert (!codec_decode_max (hd, data, size, 4, error, sizeof error));
    assert (strstr (error, "message too large"));
    assert (!codec_decode (hd, data, CODEC_MAX_SIZE + 1, NULL, 0));
    assert (!codec_decode (NULL, data, size, error, sizeof error));
    assert (streq (error, "no message type"));
    h = (ChorusBus__Headers *) codec_decode_max (hd, data, size, size, NULL, 0);
    assert (h);
    protobuf_c_message_free_unpacked (&h->base, NULL);
    free (data);
    //  Strings must be UTF-8 without NUL; duplicate keys are refused
    const char *bad_strings[][2] = {
        {"\xa2\xff\x41", "field 'tenant_id': string is not valid UTF-8"},
        {"\xa2\xc0\x80", "field 'tenant_id': string is not valid UTF-8"},
        {"\xa3\xed\xa0\x80", "field 'tenant_id': string is not valid UTF-8"},
        {"\xa3\x61\x00\x62", "field 'tenant_id': string contains a NUL byte"},
        {"\xc4\x01\x61", "field 'tenant_id': expected string, got binary"},
        {"\xd4\x01\x61", "field 'tenant_id': expected string, got ext"},
    };
    for (size_t i = 0; i < sizeof bad_strings / sizeof bad_strings[0]; i++) {
        uint8_t raw[32] = "\x81\xa9tenant_id";
        size_t len = strlen (bad_strings[i][0]);
        if (bad_strings[i][0][0] == '\xa3' && bad_strings[i][0][2] == 0)
            len = 4;
        memcpy (raw + 11, bad_strings[i][0], len);
        s_expect_raw_error (hd, raw, 11 + len, bad_strings[i][1]);
    }
    s_expect_raw_error (hd, "\x82\xa4role\xa1x\xa4role\xa1y", 15,
                        "field 'role': duplicate key");

    //  Nesting: 32 containers decode, 33 do not; encoding stops at the same depth
    const ProtobufCMessageDescriptor *id = &chorus__codec_test__inner__descriptor;
    msgpack_sbuffer_init (&buf);
    s_pack_chain (&buf, CODEC_MAX_DEPTH);
    Chorus__CodecTest__Inner *chain = (Chorus__CodecTest__Inner *) codec_decode (
        id, buf.data, buf.size, error, sizeof error);
    assert (chain);
    msgpack_sbuffer_clear (&buf);
    assert (codec_encode (&chain->base, &buf) == 0);
    Chorus__CodecTest__Inner *tail = chain;
    while (tail->child)
        tail = tail->child;
    tail->child = malloc (sizeof *tail);
    assert (tail->child);
    chorus__codec_test__inner__init (tail->child);
    size_t before = buf.size;
    assert (codec_encode (&chain->base, &buf) == -1);
    assert (buf.size == before);
    protobuf_c_message_free_unpacked (&chain->base, NULL);
    msgpack_sbuffer_clear (&buf);
    s_pack_chain (&buf, CODEC_MAX_DEPTH + 1);
    s_expect_raw_error (id, buf.data, buf.size, "nesting too deep");
    msgpack_sbuffer_destroy (&buf);

    //  Many empty sub-messages in a small buffer cannot make the decoder allocate
    //  more than CODEC_MAX_DECODED
    msgpack_sbuffer_init (&buf);
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    size_t many = CODEC_MAX_DECODED / sizeof (Chorus__CodecTest__Inner) + 1;
    msgpack_pack_map (&pk, 1);
    msgpack_pack_str_with_body (&pk, "r_inner", 7);
    msgpack_pack_array (&pk, many);
    for (size_t i = 0; i < many; i++)
        msgpack_pack_map (&pk, 0);
    assert (!codec_decode (at, buf.data, buf.size, error, sizeof error));
    assert (strstr (error, "field 'r_inner[")
            && strstr (error, "too large when decoded"));
    msgpack_sbuffer_destroy (&buf);

    //  Fields with has_ flags (proto2 style): written as nil when absent
    s_legacy_t legacy;
    s_legacy_init (&legacy.base);
    json = s_to_json (&legacy.base);
    assert (streq (json, "{\"count\":null,\"label\":null,\"blob\":null}"));
    free (json);
    s_legacy_t *l = (s_legacy_t *) s_round_trip (&legacy.base);
    assert (!l->has_count && l->label == s_legacy_label_default && !l->has_blob);
    protobuf_c_message_free_unpacked (&l->base, NULL);
    legacy.has_count = 1;
    legacy.count = 0;
    legacy.label = "set";
    json = s_to_json (&legacy.base);
    assert (streq (json, "{\"count\":0,\"label\":\"set\",\"blob\":null}"));
    free (json);
    l = (s_legacy_t *) s_round_trip (&legacy.base);
    assert (l->has_count && l->count == 0 && streq (l->label, "set") && !l->has_blob);
    protobuf_c_message_free_unpacked (&l->base, NULL);
    l = (s_legacy_t *) s_decode_json (&s_legacy_descriptor, "{\"blob\":\"zz\"}", error,
                                      sizeof error);
    assert (l && !l->has_count && l->has_blob && l->blob.len == 2);
    assert (l->label == s_legacy_label_default);
    protobuf_c_message_free_unpacked (&l->base, NULL);

    //  A generated proto2 schema (auth.proto): absent optional strings, scalars and
    //  sub-messages are written as nil (JSON null) and come back absent
    ChorusAuth__InviteList list = CHORUS_AUTH__INVITE_LIST__INIT;
    json = s_to_json (&list.base);
    assert (streq (json, "{\"data\":[],\"next_cursor\":null}"));
    free (json);
    ChorusAuth__InviteList *il = (ChorusAuth__InviteList *) s_round_trip (&list.base);
    assert (il->n_data == 0 && il->next_cursor == NULL);
    protobuf_c_message_free_unpacked (&il->base, NULL);
    ChorusAuth__Invite invites[2] = {CHORUS_AUTH__INVITE__INIT,
                                     CHORUS_AUTH__INVITE__INIT};
    ChorusAuth__Invite *invite_ptrs[2] = {&invites[0], &invites[1]};
    invites[0].id = "i1";
    invites[0].email = "a@example.com";
    invites[0].role = "member";
    invites[0].accepted_at = "";  //  empty is present, unlike NULL
    invites[1].id = "i2";
    list.n_data = 2;
    list.data = invite_ptrs;
    list.next_cursor = "c2";
    json = s_to_json (&list.base);
    assert (streq (json, "{\"data\":[{\"id\":\"i1\",\"email\":\"a@example.com\","
                         "\"role\":\"member\",\"token\":null,\"created_at\":null,"
                         "\"expires_at\":null,\"accepted_at\":\"\",\"invited_by\":null},"
                         "{\"id\":\"i2\",\"email\":null,\"role\":null,\"token\":null,"
                         "\"created_at\":null,\"expires_at\":null,\"accepted_at\":null,"
                         "\"invited_by\":null}],\"next_cursor\":\"c2\"}"));
    free (json);
    il = (ChorusAuth__InviteList *) s_round_trip (&list.base);
    assert (il->n_data == 2 && streq (il->next_cursor, "c2"));
    assert (streq (il->data[0]->email, "a@example.com") && il->data[0]->token == NULL);
    assert (streq (il->data[0]->accepted_at, "") && il->data[1]->accepted_at == NULL);
    assert (streq (il->data[1]->id, "i2") && il->data[1]->email == NULL);
    protobuf_c_message_free_unpacked (&il->base, NULL);

    ChorusAuth__TokenReply reply = CHORUS_AUTH__TOKEN_REPLY__INIT;
    reply.access_token = "jwt";
    json = s_to_json (&reply.base);
    assert (streq (json, "{\"access_token\":\"jwt\",\"token_type\":null,"
                         "\"expires_in\":null,\"refresh_token\":null,"
                         "\"refresh_expires_in\":null,\"user\":null,\"tenant\":null}"));
    free (json);
    ChorusAuth__TokenReply *tr = (ChorusAuth__TokenReply *) s_round_trip (&reply.base);
    assert (streq (tr->access_token, "jwt") && tr->token_type == NULL);
    assert (!tr->has_expires_in && !tr->has_refresh_expires_in);
    assert (tr->user == NULL && tr->tenant == NULL);
    protobuf_c_message_free_unpacked (&tr->base, NULL);
    ChorusAuth__User user = CHORUS_AUTH__USER__INIT;
    user.id = "u1";
    user.has_platform_admin = 1;  //  false, but set
    reply.has_expires_in = 1;
    reply.expires_in = 0;  //  zero, but set
    reply.user = &user;
    json = s_to_json (&reply.base);
    assert (strstr (json, "\"expires_in\":0,"));
    assert (strstr (json, "\"user\":{\"id\":\"u1\",\"email\":null,\"name\":null,"
                          "\"created_at\":null,\"platform_admin\":false},"
                          "\"tenant\":null}"));
    if (verbose)
        printf ("\n   %s\n", json);
    free (json);
    tr = (ChorusAuth__TokenReply *) s_round_trip (&reply.base);
    assert (tr->has_expires_in && tr->expires_in == 0 && !tr->has_refresh_expires_in);
    assert (tr->user && streq (tr->user->id, "u1") && tr->user->email == NULL);
    assert (tr->user->has_platform_admin && !tr->user->platform_admin);
    assert (tr->tenant == NULL);
    protobuf_c_message_free_unpacked (&tr->base, NULL);
    //  Reading: null and a missing key both mean absent
    tr = (ChorusAuth__TokenReply *) s_decode_json (
        &chorus_auth__token_reply__descriptor,
        "{\"token_type\":null,\"expires_in\":null,\"user\":null,"
        "\"refresh_expires_in\":7,\"tenant\":{\"id\":null,\"name\":\"T\"}}",
        error, sizeof error);
    assert (tr && tr->access_token == NULL && tr->token_type == NULL);
    assert (!tr->has_expires_in && tr->has_refresh_expires_in);
    assert (tr->refresh_expires_in == 7 && tr->user == NULL);
    assert (tr->tenant && tr->tenant->id == NULL && streq (tr->tenant->name, "T"));
    protobuf_c_message_free_unpacked (&tr->base, NULL);

    printf ("OK\n");
}
