/*  codec_msgpack: generic protobuf-c message <-> msgpack map codec, driven only by
    the descriptors protoc-c generates. Used by every bus participant.           */
#include "codec_msgpack.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define s_member(type, msg, offset) (*(type *) ((char *) (msg) + (offset)))

//  Decoding state: where errors go and the dotted path of the field being read.
typedef struct {
    char *error;        //  caller's error buffer, may be NULL
    size_t error_size;  //  its size
    char path[256];     //  e.g. "services[2].name"
    size_t path_len;    //  bytes used in path
    size_t budget;      //  bytes the decoded message may still allocate
} s_ctx_t;


static void s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Write a reason into an optional error buffer.
static void
s_fail (char *error, size_t error_size, const char *format, ...)
{
    if (!error || error_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

//  Report an error about the current field; returns -1.
static int s_field_error (s_ctx_t *ctx, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_field_error (s_ctx_t *ctx, const char *format, ...)
{
    char reason[160];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    if (ctx->path_len)
        s_fail (ctx->error, ctx->error_size, "field '%s': %s", ctx->path, reason);
    else
        s_fail (ctx->error, ctx->error_size, "%s", reason);
    return -1;
}

//  Charge an allocation to the decoding budget; -1 (with the error) when spent.
static int
s_charge (s_ctx_t *ctx, size_t bytes)
{
    if (bytes > ctx->budget)
        return s_field_error (ctx, "message too large when decoded");
    ctx->budget -= bytes;
    return 0;
}

//  Append ".name" (or "name" at the top) or "[index]" to the path; returns the old
//  length to restore. A path too long for the buffer ends in "...".
static size_t
s_path_push (s_ctx_t *ctx, const char *name, long index)
{
    //  Runs for every field decoded, so no printf for the common case of a name
    size_t old = ctx->path_len;
    size_t room = sizeof ctx->path - old;
    size_t n;
    if (name) {
        size_t len = strlen (name);
        n = len + (old ? 1 : 0);
        if (n < room) {
            char *at = ctx->path + old;
            if (old)
                *at++ = '.';
            memcpy (at, name, len + 1);
        }
    }
    else {
        int printed = snprintf (ctx->path + old, room, "[%ld]", index);
        n = printed < 0 ? room : (size_t) printed;
    }
    if (n >= room) {
        ctx->path_len = sizeof ctx->path - 1;
        memcpy (ctx->path + sizeof ctx->path - 4, "...", 4);
    }
    else
        ctx->path_len = old + n;
    return old;
}

static void
s_path_pop (s_ctx_t *ctx, size_t old)
{
    ctx->path_len = old;
    ctx->path[old] = 0;
}

//  ---------------------------------------------------------------------------------
//  Encoding

static int s_encode_message (msgpack_packer *pk, const ProtobufCMessage *msg,
                             size_t depth);

//  How a non-repeated field is written: its value, nil, or not at all.
typedef enum {
    S_WRITE_OMIT,   //  left out of the map
    S_WRITE_NIL,    //  written as nil (an absent proto2 optional field)
    S_WRITE_VALUE,  //  written with its value
} s_write_t;

//  How a non-repeated field is written: plain proto3 fields always; oneof members
//  only when selected; proto2 optional fields (label OPTIONAL, which proto3 files
//  never use since protoc-c 1.4 has no proto3 "optional") when set, else as nil;
//  other sub-messages when not NULL.
static s_write_t
s_field_write (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return s_member (uint32_t, msg, field->quantifier_offset) == field->id
                   ? S_WRITE_VALUE
                   : S_WRITE_OMIT;
    bool present;
    if (field->type == PROTOBUF_C_TYPE_MESSAGE)
        present = s_member (const void *, msg, field->offset) != NULL;
    else if (field->label != PROTOBUF_C_LABEL_OPTIONAL)
        present = true;
    else if (field->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = s_member (const char *, msg, field->offset);
        present = s && s != field->default_value;
    }
    else
        present = s_member (protobuf_c_boolean, msg, field->quantifier_offset) != 0;
    if (present)
        return S_WRITE_VALUE;
    return field->label == PROTOBUF_C_LABEL_OPTIONAL ? S_WRITE_NIL : S_WRITE_OMIT;
}

//  Size of one element of a field's type in memory (repeated arrays).
static size_t
s_element_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            return sizeof (uint32_t);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return sizeof (uint64_t);
        case PROTOBUF_C_TYPE_FLOAT:
            return sizeof (float);
        case PROTOBUF_C_TYPE_DOUBLE:
            return sizeof (double);
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
            return sizeof (int);
        case PROTOBUF_C_TYPE_STRING:
            return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (ProtobufCMessage *);
    }
    return 0;
}

//  Write one value of a field's type stored at member, inside depth containers.
static int
s_encode_value (msgpack_packer *pk, const ProtobufCFieldDescriptor *field,
                const void *member, size_t depth)
{
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            return msgpack_pack_int64 (pk, *(const int32_t *) member);
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            return msgpack_pack_uint64 (pk, *(const uint32_t *) member);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            return msgpack_pack_int64 (pk, *(const int64_t *) member);
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return msgpack_pack_uint64 (pk, *(const uint64_t *) member);
        case PROTOBUF_C_TYPE_FLOAT:
            return msgpack_pack_float (pk, *(const float *) member);
        case PROTOBUF_C_TYPE_DOUBLE:
            return msgpack_pack_double (pk, *(const double *) member);
        case PROTOBUF_C_TYPE_BOOL:
            return *(const protobuf_c_boolean *) member ? msgpack_pack_true (pk)
                                                        : msgpack_pack_false (pk);
        case PROTOBUF_C_TYPE_ENUM: {
            int value = *(const int *) member;
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value (
                field->descriptor, value);
            if (!ev)  //  open enum: a value this build does not know stays a number
                return msgpack_pack_int64 (pk, value);
            size_t len = strlen (ev->name);
            return msgpack_pack_str (pk, len)
                   || msgpack_pack_str_body (pk, ev->name, len);
        }
        case PROTOBUF_C_TYPE_STRING: {
            const char *s = *(const char *const *) member;
            if (!s)
                s = "";
            size_t len = strlen (s);
            return msgpack_pack_str (pk, len) || msgpack_pack_str_body (pk, s, len);
        }
        case PROTOBUF_C_TYPE_BYTES: {
            const ProtobufCBinaryData *bd = member;
            if (!bd->data || bd->len == 0)
                return msgpack_pack_bin (pk, 0);
            return msgpack_pack_bin (pk, bd->len)
                   || msgpack_pack_bin_body (pk, bd->data, bd->len);
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *) member;
            if (!sub)
                return msgpack_pack_nil (pk);
            return s_encode_message (pk, sub, depth);
        }
    }
    return -1;
}

//  Write a message as a map; depth counts the containers (maps and arrays) already
//  open around it, so that what we write always passes our own decoder's limit.
static int
s_encode_message (msgpack_packer *pk, const ProtobufCMessage *msg, size_t depth)
{
    if (!msg || !msg->descriptor || depth + 1 > CODEC_MAX_DEPTH)
        return -1;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    size_t count = 0;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        if (field->label == PROTOBUF_C_LABEL_REPEATED
            || s_field_write (msg, field) != S_WRITE_OMIT)
            count++;
    }
    if (msgpack_pack_map (pk, count))
        return -1;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        bool repeated = field->label == PROTOBUF_C_LABEL_REPEATED;
        s_write_t write = repeated ? S_WRITE_VALUE : s_field_write (msg, field);
        if (write == S_WRITE_OMIT)
            continue;
        size_t len = strlen (field->name);
        if (msgpack_pack_str (pk, len) || msgpack_pack_str_body (pk, field->name, len))
            return -1;
        if (write == S_WRITE_NIL) {
            if (msgpack_pack_nil (pk))
                return -1;
            continue;
        }
        const char *member = (const char *) msg + field->offset;
        if (!repeated) {
            if (s_encode_value (pk, field, member, depth + 1))
                return -1;
            continue;
        }
        if (depth + 2 > CODEC_MAX_DEPTH)
            return -1;
        size_t n = s_member (size_t, msg, field->quantifier_offset);
        const char *array = *(const char *const *) member;
        if (!array)
            n = 0;
        if (msgpack_pack_array (pk, n))
            return -1;
        size_t element = s_element_size (field->type);
        for (size_t i = 0; i < n; i++) {
            if (field->type == PROTOBUF_C_TYPE_MESSAGE
                && !((const ProtobufCMessage *const *) array)[i])
                return -1;  //  a hole in a repeated message is our own bug
            if (s_encode_value (pk, field, array + i * element, depth + 2))
                return -1;
        }
    }
    return 0;
}

int
codec_encode (const ProtobufCMessage *msg, msgpack_sbuffer *buf)
{
    if (!msg || !buf)
        return -1;
    size_t start = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    if (s_encode_message (&pk, msg, 0)) {
        buf->size = start;
        return -1;
    }
    return 0;
}

zframe_t *
codec_encode_frame (const ProtobufCMessage *msg)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    zframe_t *frame = NULL;
    if (codec_encode (msg, &buf) == 0)
        frame = zframe_new (buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
    return frame;
}

void
codec_pack_str (msgpack_packer *pk, const char *text)
{
    if (!text) {
        msgpack_pack_nil (pk);
        return;
    }
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

void *
codec_encode_alloc (const ProtobufCMessage *msg, size_t *size)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    if (codec_encode (msg, &buf)) {
        msgpack_sbuffer_destroy (&buf);
        return NULL;
    }
    if (size)
        *size = buf.size;
    //  The sbuffer's storage is malloc'd; hand it over (it is NULL when empty,
    //  which an encoded map never is)
    return msgpack_sbuffer_release (&buf);
}

//  ---------------------------------------------------------------------------------
//  Decoding

static int s_decode_message (s_ctx_t *ctx, const msgpack_object *o, ProtobufCMessage *msg,
                             size_t depth);

//  Read an integer (or an integral float) within [min, max] into *out as int64 (for
//  signed types) or as uint64 bits (unsigned types).
static int
s_decode_integer (s_ctx_t *ctx, const msgpack_object *o, bool is_signed, int64_t min,
                  uint64_t max, uint64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > max)
            return s_field_error (ctx, "integer %llu out of range",
                                  (unsigned long long) o->via.u64);
        *out = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        //  msgpack-c may hand out a non-negative value here for odd encodings
        if (o->via.i64 >= 0 && (uint64_t) o->via.i64 <= max) {
            *out = (uint64_t) o->via.i64;
            return 0;
        }
        if (o->via.i64 >= 0 || !is_signed || o->via.i64 < min)
            return s_field_error (ctx, "integer %lld out of range",
                                  (long long) o->via.i64);
        *out = (uint64_t) o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
        double d = o->via.f64;
        if (!isfinite (d) || d != trunc (d))
            return s_field_error (ctx, "expected integer, got non-integral float");
        if (d < 0) {
            if (!is_signed || d < (double) min)  //  min is -2^k, exact in a double
                return s_field_error (ctx, "integer %.17g out of range", d);
            *out = (uint64_t) (int64_t) d;
            return 0;
        }
        if (d >= 18446744073709551616.0 || (uint64_t) d > max)
            return s_field_error (ctx, "integer %.17g out of range", d);
        *out = (uint64_t) d;
        return 0;
    }
    return s_field_error (ctx, "expected integer, got %s",
                          codec_check_type_name (o->type));
}

//  Read a number into a double (floats, and integers converted).
static int
s_decode_real (s_ctx_t *ctx, const msgpack_object *o, double *out)
{
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        *out = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double) o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double) o->via.i64;
    else
        return s_field_error (ctx, "expected number, got %s",
                              codec_check_type_name (o->type));
    return 0;
}

//  Decode one value of the field's type into the memory at member, which holds the
//  field's initial value (0, NULL, an empty string or a static default).
static int
s_decode_value (s_ctx_t *ctx, const ProtobufCFieldDescriptor *field,
                const msgpack_object *o, void *member, size_t depth)
{
    uint64_t u;
    double d;
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            if (s_decode_integer (ctx, o, true, INT32_MIN, INT32_MAX, &u))
                return -1;
            *(int32_t *) member = (int32_t) (int64_t) u;
            return 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            if (s_decode_integer (ctx, o, true, INT64_MIN, INT64_MAX, &u))
                return -1;
            *(int64_t *) member = (int64_t) u;
            return 0;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            if (s_decode_integer (ctx, o, false, 0, UINT32_MAX, &u))
                return -1;
            *(uint32_t *) member = (uint32_t) u;
            return 0;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            if (s_decode_integer (ctx, o, false, 0, UINT64_MAX, &u))
                return -1;
            *(uint64_t *) member = u;
            return 0;
        case PROTOBUF_C_TYPE_FLOAT:
            if (s_decode_real (ctx, o, &d))
                return -1;
            if (isfinite (d) && fabs (d) > FLT_MAX)
                return s_field_error (ctx, "number %.17g out of range for float", d);
            *(float *) member = (float) d;
            return 0;
        case PROTOBUF_C_TYPE_DOUBLE:
            if (s_decode_real (ctx, o, &d))
                return -1;
            *(double *) member = d;
            return 0;
        case PROTOBUF_C_TYPE_BOOL:
            if (o->type != MSGPACK_OBJECT_BOOLEAN)
                return s_field_error (ctx, "expected boolean, got %s",
                                      codec_check_type_name (o->type));
            *(protobuf_c_boolean *) member = o->via.boolean ? 1 : 0;
            return 0;
        case PROTOBUF_C_TYPE_ENUM: {
            const ProtobufCEnumDescriptor *ed = field->descriptor;
            if (o->type == MSGPACK_OBJECT_STR) {
                for (unsigned i = 0; i < ed->n_values; i++) {
                    const char *name = ed->values[i].name;
                    if (strlen (name) == o->via.str.size
                        && memcmp (name, o->via.str.ptr, o->via.str.size) == 0) {
                        *(int *) member = ed->values[i].value;
                        return 0;
                    }
                }
                return s_field_error (ctx, "unknown %s value", ed->short_name);
            }
            if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                && o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return s_field_error (ctx, "expected enum name or integer, got %s",
                                      codec_check_type_name (o->type));
            if (s_decode_integer (ctx, o, true, INT32_MIN, INT32_MAX, &u))
                return -1;
            *(int *) member = (int) (int64_t) u;  //  open enum: unknown numbers kept
            return 0;
        }
        case PROTOBUF_C_TYPE_STRING: {
            if (o->type != MSGPACK_OBJECT_STR)
                return s_field_error (ctx, "expected string, got %s",
                                      codec_check_type_name (o->type));
            size_t len = o->via.str.size;
            if (len && memchr (o->via.str.ptr, 0, len))
                return s_field_error (ctx, "string contains a NUL byte");
            if (!codec_check_utf8 (o->via.str.ptr, len))
                return s_field_error (ctx, "string is not valid UTF-8");
            if (s_charge (ctx, len + 1))
                return -1;
            char *s = malloc (len + 1);
            assert (s);
            if (len)
                memcpy (s, o->via.str.ptr, len);
            s[len] = 0;
            *(char **) member = s;
            return 0;
        }
        case PROTOBUF_C_TYPE_BYTES: {
            const char *ptr;
            size_t len;
            if (o->type == MSGPACK_OBJECT_BIN) {
                ptr = o->via.bin.ptr;
                len = o->via.bin.size;
            }
            else if (o->type == MSGPACK_OBJECT_STR) {
                ptr = o->via.str.ptr;
                len = o->via.str.size;
            }
            else
                return s_field_error (ctx, "expected binary, got %s",
                                      codec_check_type_name (o->type));
            ProtobufCBinaryData *bd = member;
            bd->len = len;
            bd->data = NULL;
            if (len) {
                if (s_charge (ctx, len))
                    return -1;
                bd->data = malloc (len);
                assert (bd->data);
                memcpy (bd->data, ptr, len);
            }
            return 0;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
            if (o->type != MSGPACK_OBJECT_MAP)
                return s_field_error (ctx, "expected map, got %s",
                                      codec_check_type_name (o->type));
            if (depth + 1 >= CODEC_MAX_DEPTH)
                return s_field_error (ctx, "nesting too deep");
            const ProtobufCMessageDescriptor *sd = field->descriptor;
            if (s_charge (ctx, sd->sizeof_message))
                return -1;
            ProtobufCMessage *sub = malloc (sd->sizeof_message);
            assert (sub);
            protobuf_c_message_init (sd, sub);
            //  Owned by the parent from here, so a failure below frees it
            *(ProtobufCMessage **) member = sub;
            return s_decode_message (ctx, o, sub, depth + 1);
        }
    }
    return s_field_error (ctx, "unsupported field type");
}

//  Find a field by its name, given as length and bytes (not terminated).
static const ProtobufCFieldDescriptor *
s_field_by_name (const ProtobufCMessageDescriptor *desc, const char *name, size_t len)
{
    unsigned lo = 0, hi = desc->n_fields;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const ProtobufCFieldDescriptor
            *field = &desc->fields[desc->fields_sorted_by_name[mid]];
        size_t flen = strlen (field->name);
        size_t common = flen < len ? flen : len;
        int cmp = common ? memcmp (field->name, name, common) : 0;
        if (cmp == 0)
            cmp = flen < len ? -1 : flen > len ? 1 : 0;
        if (cmp == 0)
            return field;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

//  Decode one field's value (not nil) into msg.
static int
s_decode_field (s_ctx_t *ctx, const ProtobufCFieldDescriptor *field,
                const msgpack_object *o, ProtobufCMessage *msg, size_t depth)
{
    void *member = (char *) msg + field->offset;
    if (field->label != PROTOBUF_C_LABEL_REPEATED) {
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *oneof_case = &s_member (uint32_t, msg, field->quantifier_offset);
            if (*oneof_case != 0 && *oneof_case != field->id) {
                const ProtobufCFieldDescriptor
                    *other = protobuf_c_message_descriptor_get_field (msg->descriptor,
                                                                      *oneof_case);
                return s_field_error (ctx, "conflicts with '%s' (same oneof)",
                                      other ? other->name : "?");
            }
            //  Selected before the value is read, so free_unpacked frees it
            *oneof_case = field->id;
        }
        else if (field->label == PROTOBUF_C_LABEL_OPTIONAL
                 && field->type != PROTOBUF_C_TYPE_STRING
                 && field->type != PROTOBUF_C_TYPE_MESSAGE)
            s_member (protobuf_c_boolean, msg, field->quantifier_offset) = 1;
        return s_decode_value (ctx, field, o, member, depth);
    }
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return s_field_error (ctx, "expected array, got %s",
                              codec_check_type_name (o->type));
    size_t n = o->via.array.size;
    if (n == 0)
        return 0;
    size_t element = s_element_size (field->type);
    if (s_charge (ctx, n * element))
        return -1;
    char *array = calloc (n, element);
    assert (array);
    //  Owned by the message from here: free_unpacked frees the zeroed slots too
    *(void **) member = array;
    s_member (size_t, msg, field->quantifier_offset) = n;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *item = &o->via.array.ptr[i];
        size_t old = s_path_push (ctx, NULL, (long) i);
        int rc;
        if (item->type == MSGPACK_OBJECT_NIL)
            rc = s_field_error (ctx, "nil in an array");
        else
            rc = s_decode_value (ctx, field, item, array + i * element, depth);
        s_path_pop (ctx, old);
        if (rc)
            return -1;
    }
    return 0;
}

static int
s_decode_message (s_ctx_t *ctx, const msgpack_object *o, ProtobufCMessage *msg,
                  size_t depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (o->type != MSGPACK_OBJECT_MAP) {
        if (ctx->path_len == 0)
            return s_field_error (ctx, "not a map (got %s)",
                                  codec_check_type_name (o->type));
        return s_field_error (ctx, "expected map, got %s",
                              codec_check_type_name (o->type));
    }
    //  Which fields were given, to refuse duplicate keys
    uint8_t seen_small[64] = {0};
    uint8_t *seen = desc->n_fields <= sizeof seen_small ? seen_small
                                                        : calloc (desc->n_fields, 1);
    assert (seen);
    int rc = 0;
    for (uint32_t i = 0; i < o->via.map.size && rc == 0; i++) {
        const msgpack_object *key = &o->via.map.ptr[i].key;
        const msgpack_object *val = &o->via.map.ptr[i].val;
        if (key->type != MSGPACK_OBJECT_STR)
            continue;  //  not a field name: unknown, ignored
        const ProtobufCFieldDescriptor *field = s_field_by_name (desc, key->via.str.ptr,
                                                                 key->via.str.size);
        if (!field)
            continue;
        size_t index = (size_t) (field - desc->fields);
        size_t old = s_path_push (ctx, field->name, 0);
        if (seen[index])
            rc = s_field_error (ctx, "duplicate key");
        else {
            seen[index] = 1;
            if (val->type != MSGPACK_OBJECT_NIL)
                rc = s_decode_field (ctx, field, val, msg, depth);
        }
        s_path_pop (ctx, old);
    }
    if (seen != seen_small)
        free (seen);
    return rc;
}

ProtobufCMessage *
codec_decode_max (const ProtobufCMessageDescriptor *desc, const void *data, size_t size,
                  size_t max_size, char *error, size_t error_size)
{
    if (error && error_size)
        error[0] = 0;
    if (!desc || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return s_fail (error, error_size, "no message type"), NULL;
    if (max_size > CODEC_MAX_SIZE)
        max_size = CODEC_MAX_SIZE;
    if (size > max_size)
        return s_fail (error, error_size, "message too large (%zu bytes, at most %zu)",
                       size, max_size),
               NULL;
    if (size == 0)
        return s_fail (error, error_size, "empty"), NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    ProtobufCMessage *msg = NULL;
    if (codec_check_unpack (data, size, &unpacked, error, error_size) == 0) {
        msg = malloc (desc->sizeof_message);
        assert (msg);
        protobuf_c_message_init (desc, msg);
        s_ctx_t ctx = {
            .error = error, .error_size = error_size, .budget = CODEC_MAX_DECODED};
        if (s_decode_message (&ctx, &unpacked.data, msg, 0)) {
            protobuf_c_message_free_unpacked (msg, NULL);
            msg = NULL;
        }
    }
    msgpack_unpacked_destroy (&unpacked);
    return msg;
}

ProtobufCMessage *
codec_decode (const ProtobufCMessageDescriptor *desc, const void *data, size_t size,
              char *error, size_t error_size)
{
    return codec_decode_max (desc, data, size, CODEC_MAX_SIZE, error, error_size);
}

ProtobufCMessage *
codec_decode_frame (const ProtobufCMessageDescriptor *desc, zframe_t *frame, char *error,
                    size_t error_size)
{
    if (!frame)
        return s_fail (error, error_size, "no frame"), NULL;
    return codec_decode (desc, zframe_data (frame), zframe_size (frame), error,
                         error_size);
}
