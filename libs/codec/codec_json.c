/*  codec_json: schema-free JSON <-> msgpack conversions over jansson, used by the
    edge for HTTP bodies and by the bus inspector to print traffic.              */
#include "codec_json.h"
#include "codec_msgpack.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

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

char *
codec_base64_encode (const void *data, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t out_len = (size + 2) / 3 * 4;
    char *out = malloc (out_len + 1);
    assert (out);
    size_t o = 0;
    size_t i = 0;
    for (; i + 2 < size; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < size) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < size)
            v |= (uint32_t) p[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

//  A jansson string from bytes that may not be UTF-8: each invalid byte becomes
//  U+FFFD. NUL bytes are kept (jansson writes them as \u0000).
static json_t *
s_json_string (const char *s, size_t len)
{
    if (len == 0)  //  msgpack-c may give NULL for an empty string
        return json_string ("");
    if (codec_check_utf8 (s, len))
        return json_stringn (s, len);
    char *clean = malloc (len * 3 + 1);
    assert (clean);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char) s[i];
        size_t seq = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (seq && seq <= len - i && codec_check_utf8 (s + i, seq)) {
            memcpy (clean + o, s + i, seq);
            o += seq;
            i += seq;
        }
        else {
            memcpy (clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *value = json_stringn (clean, o);
    free (clean);
    return value;
}

static json_t *s_to_jansson (const msgpack_object *o, size_t depth);

#define S_MAX_KEY_TEXT 128  //  longest rendering of a non-string map key

//  The text of a map key: strings as they are, anything else as its compact JSON
//  (at most S_MAX_KEY_TEXT bytes, cut with "...").
//  Returns a malloc'd, UTF-8 clean key, or NULL.
static char *
s_key_text (const msgpack_object *key, size_t depth, size_t *len)
{
    json_t *value = s_to_jansson (key, depth);
    if (!value)
        return NULL;
    char *text;
    if (json_is_string (value)) {
        *len = json_string_length (value);
        text = malloc (*len + 1);
        assert (text);
        memcpy (text, json_string_value (value), *len + 1);
    }
    else {
        text = json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT);
        *len = text ? strlen (text) : 0;
        //  Keys inside keys would be escaped again at every level: cap the text so
        //  the output stays linear in the input (the fuzzer found the blow-up)
        if (*len > S_MAX_KEY_TEXT) {
            size_t cut = S_MAX_KEY_TEXT - 3;
            while (cut > 0 && ((unsigned char) text[cut] & 0xc0) == 0x80)
                cut--;  //  not inside a UTF-8 sequence
            memcpy (text + cut, "...", 4);
            *len = cut + 3;
        }
    }
    json_decref (value);
    return text;
}

static json_t *
s_to_jansson (const msgpack_object *o, size_t depth)
{
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null ();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean (o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (o->via.u64 > INT64_MAX)  //  beyond json_int_t: the nearest real
                return json_real ((double) o->via.u64);
            return json_integer ((json_int_t) o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer (o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return isfinite (o->via.f64) ? json_real (o->via.f64) : json_null ();
        case MSGPACK_OBJECT_STR:
            return s_json_string (o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_BIN: {
            char *text = codec_base64_encode (o->via.bin.ptr, o->via.bin.size);
            json_t *value = json_string (text);
            free (text);
            return value;
        }
        case MSGPACK_OBJECT_EXT: {
            char *text = codec_base64_encode (o->via.ext.ptr, o->via.ext.size);
            json_t *value = json_pack ("{s:i,s:s}", "ext", (int) o->via.ext.type, "data",
                                       text);
            free (text);
            return value;
        }
        case MSGPACK_OBJECT_ARRAY: {
            if (depth + 1 > CODEC_MAX_DEPTH)
                return NULL;
            json_t *array = json_array ();
            for (uint32_t i = 0; array && i < o->via.array.size; i++) {
                json_t *item = s_to_jansson (&o->via.array.ptr[i], depth + 1);
                if (!item || json_array_append_new (array, item)) {
                    json_decref (array);
                    array = NULL;
                }
            }
            return array;
        }
        case MSGPACK_OBJECT_MAP: {
            if (depth + 1 > CODEC_MAX_DEPTH)
                return NULL;
            json_t *object = json_object ();
            for (uint32_t i = 0; object && i < o->via.map.size; i++) {
                size_t len = 0;
                char *key = s_key_text (&o->via.map.ptr[i].key, depth + 1, &len);
                json_t *val = key ? s_to_jansson (&o->via.map.ptr[i].val, depth + 1)
                                  : NULL;
                //  A repeated key keeps the last value, as most readers do
                if (!val || json_object_setn_new (object, key, len, val)) {
                    json_decref (object);
                    object = NULL;
                }
                free (key);
            }
            return object;
        }
    }
    return NULL;
}

json_t *
codec_msgpack_to_jansson (const msgpack_object *o)
{
    return o ? s_to_jansson (o, 0) : NULL;
}

//  ---------------------------------------------------------------------------
//  msgpack -> compact JSON text without a jansson tree, for the streaming paths

//  Append bytes to a text under construction.
static void
s_put (codec_text_t *text, const char *data, size_t size)
{
    if (text->size + size + 1 > text->room) {
        size_t room = text->room ? text->room : 256;
        while (room < text->size + size + 1)
            room *= 2;
        char *grown = realloc (text->data, room);
        assert (grown);
        text->data = grown;
        text->room = room;
    }
    memcpy (text->data + text->size, data, size);
    text->size += size;
    text->data[text->size] = 0;
}

//  Append a JSON string of UTF-8 bytes, escaped as jansson escapes (", \, and
//  control characters; the rest as it is).
static void
s_put_string (codec_text_t *text, const char *s, size_t len)
{
    s_put (text, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put (text, s + from, i - from);
        char escape[8];
        switch (c) {
            case '"':
                s_put (text, "\\\"", 2);
                break;
            case '\\':
                s_put (text, "\\\\", 2);
                break;
            case '\b':
                s_put (text, "\\b", 2);
                break;
            case '\f':
                s_put (text, "\\f", 2);
                break;
            case '\n':
                s_put (text, "\\n", 2);
                break;
            case '\r':
                s_put (text, "\\r", 2);
                break;
            case '\t':
                s_put (text, "\\t", 2);
                break;
            default:
                snprintf (escape, sizeof escape, "\\u%04X", c);
                s_put (text, escape, 6);
        }
        from = i + 1;
    }
    s_put (text, s + from, len - from);
    s_put (text, "\"", 1);
}

#define S_DIRECT_MAP_MAX 32  //  larger maps go through jansson (repeated keys)

//  Append o as JSON; -1 for what only the jansson path renders (reals, bin,
//  ext, non-string or repeated keys, invalid UTF-8, big maps, too deep).
static int
s_put_object (codec_text_t *text, const msgpack_object *o, size_t depth)
{
    char number[32];
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            s_put (text, "null", 4);
            return 0;
        case MSGPACK_OBJECT_BOOLEAN:
            if (o->via.boolean)
                s_put (text, "true", 4);
            else
                s_put (text, "false", 5);
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (o->via.u64 > INT64_MAX)
                return -1;
            s_put (text, number,
                   (size_t) snprintf (number, sizeof number, "%" PRIu64, o->via.u64));
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            s_put (text, number,
                   (size_t) snprintf (number, sizeof number, "%" PRId64, o->via.i64));
            return 0;
        case MSGPACK_OBJECT_STR:
            if (!codec_check_utf8 (o->via.str.ptr, o->via.str.size))
                return -1;
            s_put_string (text, o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
            return 0;
        case MSGPACK_OBJECT_ARRAY:
            if (depth + 1 > CODEC_MAX_DEPTH)
                return -1;
            s_put (text, "[", 1);
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (i)
                    s_put (text, ",", 1);
                if (s_put_object (text, &o->via.array.ptr[i], depth + 1))
                    return -1;
            }
            s_put (text, "]", 1);
            return 0;
        case MSGPACK_OBJECT_MAP:
            if (depth + 1 > CODEC_MAX_DEPTH || o->via.map.size > S_DIRECT_MAP_MAX)
                return -1;
            s_put (text, "{", 1);
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object *key = &o->via.map.ptr[i].key;
                if (key->type != MSGPACK_OBJECT_STR)
                    return -1;
                for (uint32_t j = 0; j < i; j++)  //  a key twice: jansson's way
                    if (o->via.map.ptr[j].key.via.str.size == key->via.str.size
                        && (key->via.str.size == 0
                            || memcmp (o->via.map.ptr[j].key.via.str.ptr,
                                       key->via.str.ptr, key->via.str.size)
                                   == 0))
                        return -1;
                if (i)
                    s_put (text, ",", 1);
                if (s_put_object (text, key, depth + 1))
                    return -1;
                s_put (text, ":", 1);
                if (s_put_object (text, &o->via.map.ptr[i].val, depth + 1))
                    return -1;
            }
            s_put (text, "}", 1);
            return 0;
        default:
            return -1;
    }
}

int
codec_msgpack_object_json (const msgpack_object *o, codec_text_t *text)
{
    assert (o && text);
    size_t start = text->size;
    if (s_put_object (text, o, 0) == 0)
        return 0;
    //  The general path; a map with a key twice keeps the last value there
    text->size = start;
    json_t *value = s_to_jansson (o, 0);
    char *dumped = value ? json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref (value);
    if (!dumped) {
        if (text->data)
            text->data[start] = 0;
        return -1;
    }
    s_put (text, dumped, strlen (dumped));
    free (dumped);
    return 0;
}

void
codec_text_append (codec_text_t *text, const char *data, size_t size)
{
    assert (text);
    s_put (text, data, size);
}

void
codec_text_clear (codec_text_t *text)
{
    assert (text);
    free (text->data);
    text->data = NULL;
    text->size = text->room = 0;
}

char *
codec_msgpack_to_json (const void *data, size_t size, int flags)
{
    if (size > CODEC_MAX_SIZE)
        return NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    char *text = NULL;
    if (codec_check_unpack (data, size, &unpacked, NULL, 0) == 0) {
        json_t *value = s_to_jansson (&unpacked.data, 0);
        if (value) {
            size_t jflags = JSON_ENCODE_ANY;
            jflags |= (flags & CODEC_JSON_PRETTY) ? JSON_INDENT (2) : JSON_COMPACT;
            if (flags & CODEC_JSON_SORT_KEYS)
                jflags |= JSON_SORT_KEYS;
            text = json_dumps (value, jflags);
            json_decref (value);
        }
    }
    msgpack_unpacked_destroy (&unpacked);
    return text;
}

//  Pack a jansson value; -1 when the packer fails, -2 when nested too deep.
static int
s_pack_json (const json_t *value, msgpack_packer *pk, size_t depth)
{
    switch (json_typeof (value)) {
        case JSON_NULL:
            return msgpack_pack_nil (pk) ? -1 : 0;
        case JSON_TRUE:
            return msgpack_pack_true (pk) ? -1 : 0;
        case JSON_FALSE:
            return msgpack_pack_false (pk) ? -1 : 0;
        case JSON_INTEGER:
            return msgpack_pack_int64 (pk, json_integer_value (value)) ? -1 : 0;
        case JSON_REAL:
            return msgpack_pack_double (pk, json_real_value (value)) ? -1 : 0;
        case JSON_STRING: {
            size_t len = json_string_length (value);
            return msgpack_pack_str (pk, len)
                           || msgpack_pack_str_body (pk, json_string_value (value), len)
                       ? -1
                       : 0;
        }
        case JSON_ARRAY: {
            if (depth + 1 > CODEC_MAX_DEPTH)
                return -2;
            size_t n = json_array_size (value);
            if (msgpack_pack_array (pk, n))
                return -1;
            for (size_t i = 0; i < n; i++) {
                int rc = s_pack_json (json_array_get (value, i), pk, depth + 1);
                if (rc)
                    return rc;
            }
            return 0;
        }
        case JSON_OBJECT: {
            if (depth + 1 > CODEC_MAX_DEPTH)
                return -2;
            if (msgpack_pack_map (pk, json_object_size (value)))
                return -1;
            const char *key;
            size_t key_len;
            json_t *item;
            //  The macro wants a non-const object; iterating does not modify it
            json_t *object = (json_t *) value;
            json_object_keylen_foreach (object, key, key_len, item)
            {
                if (msgpack_pack_str (pk, key_len)
                    || msgpack_pack_str_body (pk, key, key_len))
                    return -1;
                int rc = s_pack_json (item, pk, depth + 1);
                if (rc)
                    return rc;
            }
            return 0;
        }
    }
    return -1;
}

int
codec_json_value_to_msgpack (const json_t *value, msgpack_packer *pk)
{
    if (!value || !pk)
        return -1;
    return s_pack_json (value, pk, 0) ? -1 : 0;
}

int
codec_json_to_msgpack (const char *json, size_t len, msgpack_sbuffer *out, char *error,
                       size_t error_size)
{
    if (error && error_size)
        error[0] = 0;
    if (!json || !out)
        return s_fail (error, error_size, "no input"), -1;
    if (len > CODEC_MAX_SIZE)
        return s_fail (error, error_size, "JSON too large (%zu bytes, at most %u)", len,
                       CODEC_MAX_SIZE),
               -1;
    json_error_t jerror;
    json_t *root = json_loadb (json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                               &jerror);
    if (!root)
        return s_fail (error, error_size, "invalid JSON at line %d column %d: %s",
                       jerror.line, jerror.column, jerror.text),
               -1;
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    int rc = s_pack_json (root, &pk, 0);
    json_decref (root);
    if (rc) {
        out->size = start;
        s_fail (error, error_size, "%s", rc == -2 ? "nesting too deep" : "out of memory");
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------
//  Selftest

//  Convert JSON to msgpack and back; returns the JSON text (caller frees).
static char *
s_json_round_trip (const char *json, int flags)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    char error[200];
    int rc = codec_json_to_msgpack (json, strlen (json), &buf, error, sizeof error);
    if (rc)
        printf ("\n   %s: %s\n", json, error);
    assert (rc == 0);
    char *text = codec_msgpack_to_json (buf.data, buf.size, flags);
    msgpack_sbuffer_destroy (&buf);
    assert (text);
    return text;
}

//  Assert JSON text is refused with a reason containing expected.
static void
s_json_refused (const char *json, size_t len, const char *expected, bool verbose)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_sbuffer_write (&buf, "\x90", 1);
    char error[200];
    int rc = codec_json_to_msgpack (json, len, &buf, error, sizeof error);
    if (verbose || rc == 0 || !strstr (error, expected))
        printf ("\n   %.40s -> %s", json, rc ? error : "accepted");
    assert (rc == -1);
    assert (strstr (error, expected));
    assert (buf.size == 1);  //  left as it was
    msgpack_sbuffer_destroy (&buf);
}

//  Nested arrays n deep, as JSON text (caller frees).
static char *
s_nested_json (int n)
{
    char *text = malloc ((size_t) n * 2 + 1);
    assert (text);
    for (int i = 0; i < n; i++) {
        text[i] = '[';
        text[n + i] = ']';
    }
    text[2 * n] = 0;
    return text;
}

void
codec_json_test (bool verbose)
{
    printf (" * codec_json: ");

    //  base64
    const char *b64[][2] = {
        {"", ""},        {"f", "Zg=="},        {"fo", "Zm8="},
        {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"\xff\xfe\xfd", "//79"}};
    for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
        char *text = codec_base64_encode (b64[i][0], strlen (b64[i][0]));
        assert (streq (text, b64[i][1]));
        free (text);
    }

    //  JSON -> msgpack -> JSON keeps values, types and key order
    const char *same[] = {
        ("{\"a\":1,\"b\":2.5,\"c\":\"s\xc3\xa9\\n\",\"d\":[true,false,null],\"e\":{},"
         "\"f\":[]}"),
        "[-9223372036854775808,9223372036854775807,0.0,-0.125,1.0000000000000001e300]",
        "\"top-level string\"",
        "42",
        "null",
        "{\"z\":{\"y\":{\"x\":[[[]]]}},\"a\":\"\"}",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *text = s_json_round_trip (same[i], 0);
        if (verbose || !streq (text, same[i]))
            printf ("\n   %s -> %s", same[i], text);
        assert (streq (text, same[i]));
        free (text);
    }
    char *text = s_json_round_trip ("{\"b\":1,\"a\":[1]}", CODEC_JSON_SORT_KEYS);
    assert (streq (text, "{\"a\":[1],\"b\":1}"));
    free (text);
    text = s_json_round_trip ("{\"a\":[1]}", CODEC_JSON_PRETTY);
    assert (streq (text, "{\n  \"a\": [\n    1\n  ]\n}"));
    free (text);

    //  JSON refused: syntax, duplicates, NUL, depth, size, numbers out of range
    s_json_refused ("{\"a\":1,\"a\":2}", 13, "duplicate object key", verbose);
    s_json_refused ("{\"a\":", 5, "invalid JSON at line 1", verbose);
    s_json_refused ("", 0, "invalid JSON", verbose);
    s_json_refused ("[1] [2]", 7, "invalid JSON", verbose);
    s_json_refused ("\"a\\u0000b\"", 10, "invalid JSON", verbose);
    s_json_refused ("\"a\0b\"", 5, "invalid JSON", verbose);
    s_json_refused ("99999999999999999999", 20, "too big", verbose);
    s_json_refused ("1e400", 5, "invalid JSON", verbose);
    s_json_refused ("\"\xff\"", 3, "invalid JSON", verbose);
    char *deep = s_nested_json (CODEC_MAX_DEPTH + 1);
    s_json_refused (deep, strlen (deep), "nesting too deep", verbose);
    free (deep);
    deep = s_nested_json (CODEC_MAX_DEPTH);
    text = s_json_round_trip (deep, 0);
    assert (streq (text, deep));
    free (text);
    free (deep);
    deep = s_nested_json (5000);  //  beyond jansson's own parser limit
    s_json_refused (deep, strlen (deep), "invalid JSON", verbose);
    free (deep);
    s_json_refused ("1", (size_t) CODEC_MAX_SIZE + 1, "JSON too large", verbose);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    assert (codec_json_to_msgpack (NULL, 0, &buf, NULL, 0) == -1);

    //  msgpack -> JSON for what JSON lacks: bin, ext, non-string keys, NaN, big
    //  unsigned integers, invalid UTF-8
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 11);
    msgpack_pack_str_with_body (&pk, "bin", 3);
    msgpack_pack_bin_with_body (&pk, "\x00\xff", 2);
    msgpack_pack_str_with_body (&pk, "ext", 3);
    msgpack_pack_ext_with_body (&pk, "ab", 2, 5);
    msgpack_pack_int (&pk, -7);
    msgpack_pack_str_with_body (&pk, "int key", 7);
    msgpack_pack_true (&pk);
    msgpack_pack_nil (&pk);
    msgpack_pack_array (&pk, 1);
    msgpack_pack_int (&pk, 1);
    msgpack_pack_float (&pk, 0.5f);
    msgpack_pack_str_with_body (&pk, "nan", 3);
    msgpack_pack_double (&pk, NAN);
    msgpack_pack_str_with_body (&pk, "inf", 3);
    msgpack_pack_float (&pk, -INFINITY);
    msgpack_pack_str_with_body (&pk, "big", 3);
    msgpack_pack_uint64 (&pk, UINT64_MAX);
    msgpack_pack_str_with_body (&pk, "bad \xff", 5);
    msgpack_pack_str_with_body (&pk, "\xe2\x9c\x93\xe2\x9c", 5);
    msgpack_pack_str_with_body (&pk, "nul", 3);
    msgpack_pack_str_with_body (&pk, "a\0b", 3);
    msgpack_pack_bin (&pk, 1);
    msgpack_pack_bin_body (&pk, "k", 1);
    msgpack_pack_int (&pk, 3);
    text = codec_msgpack_to_json (buf.data, buf.size, 0);
    assert (text);
    const char
        *expected = "{\"bin\":\"AP8=\",\"ext\":{\"ext\":5,\"data\":\"YWI=\"},"
                    "\"-7\":\"int key\",\"true\":null,\"[1]\":0.5,\"nan\":null,"
                    "\"inf\":null,\"big\":1.8446744073709552e19,"
                    "\"bad \xef\xbf\xbd\":\"\xe2\x9c\x93\xef\xbf\xbd\xef\xbf\xbd\","
                    "\"nul\":\"a\\u0000b\",\"aw==\":3}";
    if (verbose || !streq (text, expected))
        printf ("\n   %s\n", text);
    assert (streq (text, expected));
    free (text);

    //  A long non-string key is cut
    msgpack_sbuffer_clear (&buf);
    msgpack_pack_map (&pk, 1);
    msgpack_pack_array (&pk, 100);
    for (int i = 0; i < 100; i++)
        msgpack_pack_int (&pk, 1000 + i);
    msgpack_pack_nil (&pk);
    text = codec_msgpack_to_json (buf.data, buf.size, 0);
    assert (text && strlen (text) == 2 + S_MAX_KEY_TEXT + 7);
    assert (strncmp (text, "{\"[1000,1001,", 13) == 0);
    assert (strstr (text, "...\":null}"));
    free (text);
    msgpack_sbuffer_clear (&buf);
    msgpack_sbuffer_write (&buf, "\x81\x01\x02", 3);

    //  The direct writer: the same text, reals and bin through jansson
    {
        msgpack_sbuffer_clear (&buf);
        msgpack_pack_map (&pk, 6);
        msgpack_pack_str_with_body (&pk, "s", 1);
        msgpack_pack_str_with_body (&pk, "q\"\\\x01\t\xc3\xa9", 7);
        msgpack_pack_str_with_body (&pk, "n", 1);
        msgpack_pack_array (&pk, 4);
        msgpack_pack_int64 (&pk, -5);
        msgpack_pack_uint64 (&pk, 7);
        msgpack_pack_nil (&pk);
        msgpack_pack_false (&pk);
        msgpack_pack_str_with_body (&pk, "r", 1);
        msgpack_pack_double (&pk, 0.25);
        msgpack_pack_str_with_body (&pk, "b", 1);
        msgpack_pack_bin (&pk, 2);
        msgpack_pack_bin_body (&pk, "\x00\xff", 2);
        msgpack_pack_str_with_body (&pk, "e", 1);
        msgpack_pack_map (&pk, 0);
        msgpack_pack_str_with_body (&pk, "s", 1);  //  repeated: the last one
        msgpack_pack_true (&pk);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        assert (codec_check_unpack (buf.data, buf.size, &unpacked, NULL, 0) == 0);
        codec_text_t direct = {0};
        assert (codec_msgpack_object_json (&unpacked.data.via.map.ptr[0].val, &direct)
                == 0);
        assert (streq (direct.data, "\"q\\\"\\\\\\u0001\\t\xc3\xa9\""));
        direct.size = 0;
        assert (codec_msgpack_object_json (&unpacked.data.via.map.ptr[1].val, &direct)
                == 0);
        assert (streq (direct.data, "[-5,7,null,false]"));
        direct.size = 0;
        assert (codec_msgpack_object_json (&unpacked.data, &direct) == 0);
        text = codec_msgpack_to_json (buf.data, buf.size, 0);
        assert (streq (direct.data, text));
        assert (streq (text, "{\"s\":true,\"n\":[-5,7,null,false],\"r\":0.25,"
                             "\"b\":\"AP8=\",\"e\":{}}"));
        free (text);
        codec_text_clear (&direct);
        assert (direct.data == NULL && direct.size == 0);
        msgpack_unpacked_destroy (&unpacked);
        msgpack_sbuffer_clear (&buf);
        msgpack_sbuffer_write (&buf, "\x81\x01\x02", 3);
    }

    //  Malformed msgpack gives NULL
    assert (codec_msgpack_to_json (buf.data, buf.size - 1, 0) == NULL);
    msgpack_sbuffer_write (&buf, "\xc0", 1);
    assert (codec_msgpack_to_json (buf.data, buf.size, 0) == NULL);
    assert (codec_msgpack_to_json ("\xc1", 1, 0) == NULL);
    assert (codec_msgpack_to_json ("", 0, 0) == NULL);
    assert (codec_msgpack_to_json (NULL, 0, 0) == NULL);
    assert (codec_msgpack_to_json ("\xdd\xff\xff\xff\xff", 5, 0) == NULL);
    msgpack_sbuffer_destroy (&buf);

    //  The jansson-level helpers refuse values nested too deep, whoever built them
    json_t *value = json_array ();
    for (int i = 0; i < CODEC_MAX_DEPTH + 2; i++)
        value = json_pack ("[o]", value);
    msgpack_sbuffer_init (&buf);
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    assert (codec_json_value_to_msgpack (value, &pk) == -1);
    json_decref (value);
    value = json_pack ("{s:[i,f,b,n]}", "k", 1, 0.25, 1);
    msgpack_sbuffer_clear (&buf);
    assert (codec_json_value_to_msgpack (value, &pk) == 0);
    json_decref (value);
    text = codec_msgpack_to_json (buf.data, buf.size, 0);
    assert (streq (text, "{\"k\":[1,0.25,true,null]}"));
    free (text);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert (codec_check_unpack (buf.data, buf.size, &unpacked, NULL, 0) == 0);
    value = codec_msgpack_to_jansson (&unpacked.data);
    assert (json_is_object (value));
    assert (json_integer_value (json_array_get (json_object_get (value, "k"), 0)) == 1);
    json_decref (value);
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buf);
    //  A hand-built msgpack_object deeper than the limit
    msgpack_object chain[CODEC_MAX_DEPTH + 2];
    for (int i = 0; i < CODEC_MAX_DEPTH + 2; i++) {
        chain[i].type = MSGPACK_OBJECT_ARRAY;
        chain[i].via.array.size = i + 1 < CODEC_MAX_DEPTH + 2 ? 1 : 0;
        chain[i].via.array.ptr = i + 1 < CODEC_MAX_DEPTH + 2 ? &chain[i + 1] : NULL;
    }
    assert (codec_msgpack_to_jansson (&chain[0]) == NULL);
    value = codec_msgpack_to_jansson (&chain[2]);
    assert (value);
    json_decref (value);
    assert (codec_msgpack_to_jansson (NULL) == NULL);

    printf ("OK\n");
}
