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
    size_t old = ctx->path_len;
    size_t room = sizeof ctx->path - old;
    int n;
    if (name)
        n = snprintf (ctx->path + old, room, "%s%s", old ? "." : "", name);
    else
        n = snprintf (ctx->path + old, room, "[%ld]", index);
    if (n < 0 || (size_t) n >= room) {
        ctx->path_len = sizeof ctx->path - 1;
        memcpy (ctx->path + sizeof ctx->path - 4, "...", 4);
    }
    else
        ctx->path_len = old + (size_t) n;
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

//  True when a non-repeated field is written: plain proto3 fields always, oneof
//  members when selected, optional ones when set, sub-messages when not NULL.
static bool
s_field_present (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field)
{
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return s_member (uint32_t, msg, field->quantifier_offset) == field->id;
    if (field->type == PROTOBUF_C_TYPE_MESSAGE)
        return s_member (const void *, msg, field->offset) != NULL;
    if (field->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (field->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = s_member (const char *, msg, field->offset);
            return s && s != field->default_value;
        }
        return s_member (protobuf_c_boolean, msg, field->quantifier_offset) != 0;
    }
    return true;
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
        if (field->label == PROTOBUF_C_LABEL_REPEATED || s_field_present (msg, field))
            count++;
    }
    if (msgpack_pack_map (pk, count))
        return -1;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        bool repeated = field->label == PROTOBUF_C_LABEL_REPEATED;
        if (!repeated && !s_field_present (msg, field))
            continue;
        size_t len = strlen (field->name);
        if (msgpack_pack_str (pk, len) || msgpack_pack_str_body (pk, field->name, len))
            return -1;
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

//  ---------------------------------------------------------------------------------
//  Selftest

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
                         "\"request_id\":\"\",\"timeout_ms\":0}"));
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

    //  Fields with has_ flags (proto2 style): written only when set
    s_legacy_t legacy;
    s_legacy_init (&legacy.base);
    json = s_to_json (&legacy.base);
    assert (streq (json, "{}"));
    free (json);
    legacy.has_count = 1;
    legacy.count = 0;
    legacy.label = "set";
    json = s_to_json (&legacy.base);
    assert (streq (json, "{\"count\":0,\"label\":\"set\"}"));
    free (json);
    s_legacy_t *l = (s_legacy_t *) s_round_trip (&legacy.base);
    assert (l->has_count && l->count == 0 && streq (l->label, "set") && !l->has_blob);
    protobuf_c_message_free_unpacked (&l->base, NULL);
    l = (s_legacy_t *) s_decode_json (&s_legacy_descriptor, "{\"blob\":\"zz\"}", error,
                                      sizeof error);
    assert (l && !l->has_count && l->has_blob && l->blob.len == 2);
    assert (l->label == s_legacy_label_default);
    protobuf_c_message_free_unpacked (&l->base, NULL);

    printf ("OK\n");
}
