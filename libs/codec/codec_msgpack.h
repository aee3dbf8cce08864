/*  codec_msgpack: the one generic bus codec. It walks protobuf-c descriptors to write
    any generated message as a msgpack map keyed by field name, and to read such a
    map back into a message that protobuf_c_message_free_unpacked (msg, NULL) frees.
    No per-message code: bus clients, services, the edge and the bus inspector all
    use it with the types protoc-c generates from schemas.

    Mapping: integers, floats and bools as msgpack numbers and booleans; strings as
    str (valid UTF-8 without NUL); bytes as bin; enums as the value name; messages as
    maps; repeated fields as arrays. Plain proto3 fields are always written; oneof
    members and proto3 sub-messages only when present. A proto2 `optional` field
    (schemas/auth.proto) is always written: as nil when absent (string NULL or its
    default, has_ flag 0, sub-message NULL), so JSON shows null.
    Decoding ignores unknown keys, treats nil as "absent", checks integer ranges and
    UTF-8, and never trusts its input (limits: CODEC_MAX_DEPTH, CODEC_MAX_SIZE).   */
#ifndef CODEC_MSGPACK_H_INCLUDED
#define CODEC_MSGPACK_H_INCLUDED

#include "codec_check.h"

#include <czmq.h>
#include <msgpack.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

//  Append msg to buf as one msgpack map keyed by field name. Returns 0, or -1 (NULL
//  message, nesting deeper than CODEC_MAX_DEPTH, out of memory) after putting buf
//  back to its size on entry.
int codec_encode (const ProtobufCMessage *msg, msgpack_sbuffer *buf)
    __attribute__ ((warn_unused_result));

//  Encode msg into a new frame; NULL on error.
zframe_t *codec_encode_frame (const ProtobufCMessage *msg);

//  Encode msg into a malloc'd buffer the caller frees; its length goes to *size.
//  NULL on error.
void *codec_encode_alloc (const ProtobufCMessage *msg, size_t *size);

//  Pack text as a msgpack string, NULL as nil (for bodies written by hand).
void codec_pack_str (msgpack_packer *pk, const char *text);

//  Decode one msgpack map holding exactly size bytes into a new message of type
//  desc, freed with protobuf_c_message_free_unpacked (msg, NULL). On failure returns
//  NULL and writes a one-line reason into error (when error is not NULL), such as
//  "field 'meta.seq': expected integer, got string", "not a map", "truncated".
ProtobufCMessage *codec_decode (const ProtobufCMessageDescriptor *desc, const void *data,
                                size_t size, char *error, size_t error_size);

//  codec_decode with a caller's size limit instead of CODEC_MAX_SIZE (the smaller
//  of both applies).
ProtobufCMessage *codec_decode_max (const ProtobufCMessageDescriptor *desc,
                                    const void *data, size_t size, size_t max_size,
                                    char *error, size_t error_size);

//  Decode a frame's content (see codec_decode).
ProtobufCMessage *codec_decode_frame (const ProtobufCMessageDescriptor *desc,
                                      zframe_t *frame, char *error, size_t error_size);

void codec_msgpack_test (bool verbose);

#endif
