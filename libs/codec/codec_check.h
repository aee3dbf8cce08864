/*  codec_check: validation of untrusted msgpack bytes and UTF-8 before anything
    else looks at them, and the limits every codec shares. Used by codec_msgpack
    and codec_json; the bus can use it to check a frame it only forwards.       */
#ifndef CODEC_CHECK_H_INCLUDED
#define CODEC_CHECK_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

//  Most containers (maps, arrays) nested in one decoded buffer, the outer map
//  included; also msgpack-c's own parser limit.
#define CODEC_MAX_DEPTH 32
//  Largest buffer codec_decode accepts (callers may pass a tighter limit).
#define CODEC_MAX_SIZE (8u * 1024u * 1024u)
//  Most memory one decoded message may allocate (strings, bytes, arrays and
//  sub-messages), so a small input cannot make the decoder allocate gigabytes.
#define CODEC_MAX_DECODED (64u * 1024u * 1024u)

//  Check that data holds exactly one well-formed msgpack object nested at most
//  max_depth containers deep, whose every container count fits in the bytes that
//  follow it (so parsing it allocates at most a small multiple of size). Returns
//  0, or -1 with a reason ("truncated", "nesting too deep", "trailing bytes",
//  "malformed msgpack") in error.
int codec_check_msgpack (const void *data, size_t size, size_t max_depth, char *error,
                         size_t error_size) __attribute__ ((warn_unused_result));

//  Unpack a buffer that passes codec_check_msgpack (CODEC_MAX_DEPTH) into result
//  (msgpack_unpacked_init'ed by the caller, destroyed by the caller). Returns 0 or
//  -1 with a reason in error.
int codec_check_unpack (const void *data, size_t size, msgpack_unpacked *result,
                        char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

//  True when the len bytes at s are valid UTF-8 (no overlongs, no surrogates).
bool codec_check_utf8 (const char *s, size_t len);

//  Name of a msgpack object type for error texts: "integer", "string", "map"...
const char *codec_check_type_name (msgpack_object_type type);

void codec_check_test (bool verbose);

#endif
