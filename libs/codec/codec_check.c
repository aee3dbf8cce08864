/*  codec_check: the first look at bytes from outside. Checks that a buffer is one
    well-formed msgpack object within the nesting limit whose container counts fit
    the bytes that follow (so msgpack-c never allocates for a lie), then unpacks it;
    also checks UTF-8. Used by codec_msgpack and codec_json.                      */
#include "codec_check.h"

#include <assert.h>
#include <czmq.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

const char *
codec_check_type_name (msgpack_object_type type)
{
    switch (type) {
        case MSGPACK_OBJECT_NIL:
            return "nil";
        case MSGPACK_OBJECT_BOOLEAN:
            return "boolean";
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return "integer";
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return "float";
        case MSGPACK_OBJECT_STR:
            return "string";
        case MSGPACK_OBJECT_BIN:
            return "binary";
        case MSGPACK_OBJECT_ARRAY:
            return "array";
        case MSGPACK_OBJECT_MAP:
            return "map";
        case MSGPACK_OBJECT_EXT:
            return "ext";
    }
    return "unknown";
}

bool
codec_check_utf8 (const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < len) {
        //  ASCII eight bytes a step: most text is
        while (len - i >= 8) {
            uint64_t word;
            memcpy (&word, p + i, 8);
            if (word & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i == len)
            break;
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        }
        else
            return false;  //  continuation byte, overlong lead or > U+10FFFF
        if (len - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

//  Read a big-endian unsigned integer of n bytes.
static uint64_t
s_be (const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int
codec_check_msgpack (const void *data, size_t size, size_t max_depth, char *error,
                     size_t error_size)
{
    const unsigned char *p = data;
    if (!p && size)
        return s_fail (error, error_size, "no data"), -1;
    if (max_depth > CODEC_MAX_DEPTH)
        max_depth = CODEC_MAX_DEPTH;
    uint64_t pending[CODEC_MAX_DEPTH + 1];  //  items still to read, per open container
    size_t depth = 0;                       //  open containers; level 0 is the root
    pending[0] = 1;
    size_t pos = 0;
    while (true) {
        while (depth > 0 && pending[depth] == 0)
            depth--;
        if (pending[depth] == 0)
            break;  //  root object complete
        pending[depth]--;
        if (pos >= size)
            return s_fail (error, error_size, "truncated"), -1;
        unsigned char b = p[pos++];
        size_t head = 0;    //  length bytes after the type byte
        uint64_t body = 0;  //  fixed payload bytes after those
        int kind = 0;       //  0 scalar, 1 str/bin (head = length), 2 ext,
                            //  3 array (head = count), 4 map
        uint64_t count = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ;
        else if (b >= 0x80 && b <= 0x8f) {
            kind = 4;
            count = b & 0x0f;
        }
        else if (b >= 0x90 && b <= 0x9f) {
            kind = 3;
            count = b & 0x0f;
        }
        else if (b >= 0xa0 && b <= 0xbf)
            body = b & 0x1f;
        else
            switch (b) {
                case 0xc4:
                case 0xd9:
                    kind = 1;
                    head = 1;
                    break;
                case 0xc5:
                case 0xda:
                    kind = 1;
                    head = 2;
                    break;
                case 0xc6:
                case 0xdb:
                    kind = 1;
                    head = 4;
                    break;
                case 0xc7:
                    kind = 2;
                    head = 1;
                    break;
                case 0xc8:
                    kind = 2;
                    head = 2;
                    break;
                case 0xc9:
                    kind = 2;
                    head = 4;
                    break;
                case 0xca:
                    body = 4;
                    break;
                case 0xcb:
                    body = 8;
                    break;
                case 0xcc:
                case 0xd0:
                    body = 1;
                    break;
                case 0xcd:
                case 0xd1:
                    body = 2;
                    break;
                case 0xce:
                case 0xd2:
                    body = 4;
                    break;
                case 0xcf:
                case 0xd3:
                    body = 8;
                    break;
                case 0xd4:
                    body = 2;
                    break;
                case 0xd5:
                    body = 3;
                    break;
                case 0xd6:
                    body = 5;
                    break;
                case 0xd7:
                    body = 9;
                    break;
                case 0xd8:
                    body = 17;
                    break;
                case 0xdc:
                    kind = 3;
                    head = 2;
                    break;
                case 0xdd:
                    kind = 3;
                    head = 4;
                    break;
                case 0xde:
                    kind = 4;
                    head = 2;
                    break;
                case 0xdf:
                    kind = 4;
                    head = 4;
                    break;
                default:
                    return s_fail (error, error_size, "malformed msgpack"), -1;
            }
        if (head) {
            if (size - pos < head)
                return s_fail (error, error_size, "truncated"), -1;
            uint64_t n = s_be (p + pos, head);
            pos += head;
            if (kind == 1)
                body = n;
            else if (kind == 2)
                body = n + 1;  //  the type byte
            else
                count = n;
        }
        if (body > size - pos)
            return s_fail (error, error_size, "truncated"), -1;
        pos += (size_t) body;
        if (kind >= 3) {
            if (depth + 1 > max_depth)
                return s_fail (error, error_size, "nesting too deep"), -1;
            uint64_t items = kind == 4 ? count * 2 : count;
            //  Every item takes at least one byte: a count the rest of the buffer
            //  cannot hold is a lie, refused before msgpack-c allocates for it
            if (items > size - pos)
                return s_fail (error, error_size, "truncated"), -1;
            if (items) {
                depth++;
                pending[depth] = items;
            }
        }
    }
    if (pos != size)
        return s_fail (error, error_size, "trailing bytes"), -1;
    return 0;
}

int
codec_check_unpack (const void *data, size_t size, msgpack_unpacked *result, char *error,
                    size_t error_size)
{
    if (codec_check_msgpack (data, size, CODEC_MAX_DEPTH, error, error_size))
        return -1;
    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack_next (result, data, size, &offset);
    if (rc == MSGPACK_UNPACK_CONTINUE)
        return s_fail (error, error_size, "truncated"), -1;
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        return s_fail (error, error_size, "out of memory or nesting too deep"), -1;
    if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES)
        return s_fail (error, error_size, "malformed msgpack"), -1;
    if (offset != size)
        return s_fail (error, error_size, "trailing bytes"), -1;
    return 0;
}

void
codec_check_test (bool verbose)
{
    printf (" * codec_check: ");
    char error[256];
    //  UTF-8 and structure checks
    assert (codec_check_utf8 ("", 0));
    assert (codec_check_utf8 ("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80", 15));
    assert (!codec_check_utf8 ("\xc0\x80", 2));          //  overlong NUL
    assert (!codec_check_utf8 ("\xe0\x80\xaf", 3));      //  overlong '/'
    assert (!codec_check_utf8 ("\xed\xa0\x80", 3));      //  surrogate
    assert (!codec_check_utf8 ("\xf4\x90\x80\x80", 4));  //  > U+10FFFF
    assert (!codec_check_utf8 ("\xe2\x9c", 2));          //  cut short
    assert (!codec_check_utf8 ("\x80", 1));
    assert (codec_check_utf8 ("abcdefghij\xc3\xa9klmnopqrstuvwxyz", 28));
    assert (!codec_check_utf8 ("abcdefghijklmnop\x80", 17));
    assert (!codec_check_utf8 ("abcdefgh\xe2\x9cijklmnop", 18));
    assert (codec_check_msgpack ("\x93\x01\xa1x\xc0", 5, 32, error, sizeof error) == 0);
    assert (codec_check_msgpack ("\x93\x01\xa1x", 4, 32, error, sizeof error) == -1);
    assert (streq (error, "truncated"));
    assert (codec_check_msgpack ("\x91\x91\x90", 3, 2, error, sizeof error) == -1);
    assert (streq (error, "nesting too deep"));
    assert (codec_check_msgpack ("\x91\x91\x90", 3, 3, NULL, 0) == 0);
    assert (codec_check_msgpack ("\xc1", 1, 32, error, sizeof error) == -1);
    assert (streq (error, "malformed msgpack"));
    assert (codec_check_msgpack ("\x01\x02", 2, 32, error, sizeof error) == -1);
    assert (streq (error, "trailing bytes"));
    //  An array claiming 2^32-1 items in 5 bytes is refused before any allocation
    assert (codec_check_msgpack ("\xdd\xff\xff\xff\xff", 5, 32, error, sizeof error)
            == -1);
    assert (streq (error, "truncated"));
    assert (codec_check_msgpack ("\xc7\x02\x05\x61\x62", 5, 32, NULL, 0) == 0);  //  ext8
    assert (codec_check_msgpack ("\xd8\x05", 2, 32, NULL, 0) == -1);  //  fixext16
    assert (codec_check_msgpack ("", 0, 32, NULL, 0) == -1);

    assert (streq (codec_check_type_name (MSGPACK_OBJECT_NEGATIVE_INTEGER), "integer"));
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert (codec_check_unpack ("\x92\x01\xc0", 3, &unpacked, error, sizeof error) == 0);
    assert (unpacked.data.type == MSGPACK_OBJECT_ARRAY
            && unpacked.data.via.array.size == 2);
    assert (codec_check_unpack ("\x92\x01", 2, &unpacked, error, sizeof error) == -1);
    assert (streq (error, "truncated"));
    msgpack_unpacked_destroy (&unpacked);
    printf ("OK\n");
}
