/*  codec_json: schema-free conversions between JSON and msgpack, for the edge (HTTP
    JSON bodies <-> bus msgpack) and the bus inspector (msgpack -> JSON). Built on
    jansson; both directions refuse nesting deeper than CODEC_MAX_DEPTH.

    msgpack -> JSON: bin becomes a base64 string, ext a {"ext": type, "data":
    base64} object, NaN and infinities null, non-string map keys their JSON text,
    invalid UTF-8 is replaced by U+FFFD, integers above INT64_MAX become reals.
    JSON -> msgpack: integers as msgpack ints, reals as float64, duplicate object
    keys and "\u0000" in strings are refused.                                  */
#ifndef CODEC_JSON_H_INCLUDED
#define CODEC_JSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

//  Flags of codec_msgpack_to_json; 0 gives compact JSON in map order.
#define CODEC_JSON_PRETTY 1     //  indent by two spaces
#define CODEC_JSON_SORT_KEYS 2  //  sort object keys

//  Convert one msgpack object (the whole buffer) to malloc'd JSON text the caller
//  frees. NULL on malformed, truncated, too deep or trailing input.
char *codec_msgpack_to_json (const void *data, size_t size, int flags);

//  Text built in pieces (a malloc'd buffer, always NUL-terminated once used).
typedef struct {
    char *data;   //  the text, NULL before the first append
    size_t size;  //  bytes of text
    size_t room;  //  bytes allocated
} codec_text_t;

//  Append an unpacked msgpack object to text as compact JSON, the same text
//  codec_msgpack_to_json gives; the common shapes (nil, booleans, integers,
//  UTF-8 strings, arrays, maps with string keys) are written directly, anything
//  else through jansson. Returns 0, or -1 (text as it was) when nested deeper
//  than CODEC_MAX_DEPTH.
int codec_msgpack_object_json (const msgpack_object *o, codec_text_t *text)
    __attribute__ ((warn_unused_result));

//  Append bytes to text; free its buffer (the text is then empty).
void codec_text_append (codec_text_t *text, const char *data, size_t size);
void codec_text_clear (codec_text_t *text);

//  Parse JSON text (len bytes, at most CODEC_MAX_SIZE) and append it to out as
//  msgpack. Returns 0, or -1 with a reason in error (may be NULL) and out put back
//  to its size on entry.
int codec_json_to_msgpack (const char *json, size_t len, msgpack_sbuffer *out,
                           char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

//  Pack one jansson value. Returns 0, or -1 when nested too deep or the packer
//  fails (the packer's buffer then holds a partial value).
int codec_json_value_to_msgpack (const json_t *value, msgpack_packer *pk)
    __attribute__ ((warn_unused_result));

//  Convert an unpacked msgpack object to a new jansson value (reference owned by
//  the caller); NULL when nested deeper than CODEC_MAX_DEPTH or out of memory.
json_t *codec_msgpack_to_jansson (const msgpack_object *o);

//  Encode size bytes as standard base64 with padding; malloc'd, caller frees.
char *codec_base64_encode (const void *data, size_t size);

void codec_json_test (bool verbose);

#endif
