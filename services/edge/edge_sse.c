/*  edge_sse: bus replies as Server-Sent Events (see the header).                */
#include "edge_sse.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "codec_json.h"
#include "edge_call.h"

//  Longest event name passed on as "event:"; longer ones make a plain body.
#define S_EVENT_MAX 128

bool
edge_sse_id_valid (const char *s, size_t len)
{
    if (len == 0 || len > EDGE_SSE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

static char *s_format (size_t *size, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  A new string from printf-style arguments, its length in *size.
static char *
s_format (size_t *size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    int n = vasprintf (&text, format, args);
    va_end (args);
    assert (n >= 0 && text);
    *size = (size_t) n;
    return text;
}

//  The value of a map's string key (the last one when it repeats), or NULL.
static const msgpack_object *
s_map_get (const msgpack_object *map, const char *key)
{
    size_t len = strlen (key);
    const msgpack_object *found = NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len
            && memcmp (k->via.str.ptr, key, len) == 0)
            found = &map->via.map.ptr[i].val;
    }
    return found;
}

//  The named event a body stands for, or false: a map with "event" a string fit
//  for an event line and "data"; *id is its "id" (a string fit for an id line, or
//  an integer, written into id_buf), or NULL. A key given twice: the last one.
static bool
s_event_of_object (const msgpack_object *body, const char **event, size_t *event_len,
                   const char **id, size_t *id_len, char *id_buf, size_t id_size,
                   const msgpack_object **data)
{
    if (body->type != MSGPACK_OBJECT_MAP || !(*data = s_map_get (body, "data")))
        return false;
    const msgpack_object *name = s_map_get (body, "event");
    if (!name || name->type != MSGPACK_OBJECT_STR)
        return false;
    size_t len = name->via.str.size;
    if (len == 0 || len > S_EVENT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) name->via.str.ptr[i] < 0x21
            || (unsigned char) name->via.str.ptr[i] > 0x7e)
            return false;
    *event = name->via.str.ptr;
    *event_len = len;
    *id = NULL;
    *id_len = 0;
    const msgpack_object *value = s_map_get (body, "id");
    if (value && value->type == MSGPACK_OBJECT_STR
        && edge_sse_id_valid (value->via.str.ptr, value->via.str.size)) {
        *id = value->via.str.ptr;
        *id_len = value->via.str.size;
    }
    else if (value
             && (value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                 || (value->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                     && value->via.u64 <= INT64_MAX))) {
        int n = snprintf (id_buf, id_size, "%lld", (long long) value->via.i64);
        *id = id_buf;
        *id_len = (size_t) n;
    }
    return true;
}

char *
edge_sse_reply (edge_sse_mode_t mode, const void *body, size_t size, bool final,
                uint64_t *counter, size_t *out_size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    const msgpack_object *root = &empty;  //  no body: {}
    if (size > 0) {
        if (size > CODEC_MAX_SIZE
            || codec_check_unpack (body, size, &unpacked, NULL, 0)) {
            msgpack_unpacked_destroy (&unpacked);
            return NULL;
        }
        root = &unpacked.data;
    }
    codec_text_t text = {0};
    const char *event = NULL, *id = NULL;
    size_t event_len = 0, id_len = 0;
    char id_buf[24];
    const msgpack_object *data = NULL;
    int rc = 0;
    if (mode != EDGE_SSE_OPENAI
        && s_event_of_object (root, &event, &event_len, &id, &id_len, id_buf,
                              sizeof id_buf, &data)) {
        if (id) {
            codec_text_append (&text, "id: ", 4);
            codec_text_append (&text, id, id_len);
            codec_text_append (&text, "\n", 1);
        }
        codec_text_append (&text, "event: ", 7);
        codec_text_append (&text, event, event_len);
        codec_text_append (&text, "\ndata: ", 7);
        rc = codec_msgpack_object_json (data, &text);
        codec_text_append (&text, "\n\n", 2);
    }
    else {
        char head[64] = "data: ";
        if (mode == EDGE_SSE_GENERIC)
            snprintf (head, sizeof head,
                      "id: %llu\nevent: %s\ndata: ", (unsigned long long) ++*counter,
                      final ? "final" : "partial");
        codec_text_append (&text, head, strlen (head));
        rc = codec_msgpack_object_json (root, &text);
        codec_text_append (&text, "\n\n", 2);
        if (mode == EDGE_SSE_OPENAI && final)
            codec_text_append (&text, "data: [DONE]\n\n", 14);
    }
    msgpack_unpacked_destroy (&unpacked);
    if (rc) {
        if (mode == EDGE_SSE_GENERIC && !event)
            --*counter;  //  nothing was written
        codec_text_clear (&text);
        return NULL;
    }
    *out_size = text.size;
    return text.data;
}

char *
edge_sse_error (edge_sse_mode_t mode, const char *code, const char *message, int status,
                uint64_t *counter, size_t *size)
{
    char *body = edge_call_error_body (code, message, status, mode == EDGE_SSE_OPENAI);
    char *text = NULL;
    if (mode == EDGE_SSE_OPENAI)
        text = s_format (size, "data: %s\n\n", body);
    else if (mode == EDGE_SSE_EVENTS)
        text = s_format (size, "event: error\ndata: %s\n\n", body);
    else
        text = s_format (size, "id: %llu\nevent: error\ndata: %s\n\n",
                         (unsigned long long) ++*counter, body);
    free (body);
    return text;
}

//  --------------------------------------------------------------------------
//  Selftest

//  Render a msgpack body as one reply and compare with expected.
static void
s_expect_packed (edge_sse_mode_t mode, const void *body, size_t body_size, bool final,
                 uint64_t *counter, const char *expected)
{
    size_t size = 0;
    char *text = edge_sse_reply (mode, body, body_size, final, counter, &size);
    if (!text || strcmp (text, expected) != 0)
        fprintf (stderr, "\nedge_sse:\n  gave     '%s'\n  expected '%s'\n",
                 text ? text : "(null)", expected);
    assert (text && strcmp (text, expected) == 0 && size == strlen (expected));
    free (text);
}

//  The same for the msgpack of JSON text (as the edge gets it from a service).
static void
s_expect (edge_sse_mode_t mode, const char *json, bool final, uint64_t *counter,
          const char *expected)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    int rc = codec_json_to_msgpack (json, strlen (json), &buf, NULL, 0);
    assert (rc == 0);
    s_expect_packed (mode, buf.data, buf.size, final, counter, expected);
    msgpack_sbuffer_destroy (&buf);
}

void
edge_sse_test (bool verbose)
{
    printf (" * edge_sse: ");
    uint64_t n = 0;
    //  Generic: numbered partial and final events, as ping streams them
    s_expect (EDGE_SSE_GENERIC, "{\"index\":0}", false, &n,
              "id: 1\nevent: partial\ndata: {\"index\":0}\n\n");
    s_expect (EDGE_SSE_GENERIC, "{\"index\":1}", true, &n,
              "id: 2\nevent: final\ndata: {\"index\":1}\n\n");
    //  Event maps: id (string or integer) and event lines, data as JSON
    const char *delta = "{\"event\":\"message.delta\",\"id\":\"m-1:3\",\"data\":"
                        "{\"message_id\":\"m-1\",\"delta\":\"Hi\\n\"}}";
    const char *rendered = "id: m-1:3\nevent: message.delta\ndata: "
                           "{\"message_id\":\"m-1\",\"delta\":\"Hi\\n\"}\n\n";
    s_expect (EDGE_SSE_EVENTS, delta, false, &n, rendered);
    s_expect (EDGE_SSE_GENERIC, delta, false, &n, rendered);
    assert (n == 2);  //  named events do not count
    s_expect (EDGE_SSE_EVENTS, "{\"data\":[1,2],\"event\":\"x\",\"id\":7}", true, &n,
              "id: 7\nevent: x\ndata: [1,2]\n\n");
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"message.created\",\"data\":\"text\"}", false,
              &n, "event: message.created\ndata: \"text\"\n\n");
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"e\",\"data\":null}", false, &n,
              "event: e\ndata: null\n\n");
    //  An id that could break the framing is left out, a bad name makes a plain body
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"e\",\"id\":\"a\\nb\",\"data\":1}", false, &n,
              "event: e\ndata: 1\n\n");
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"a b\",\"data\":1}", false, &n,
              "data: {\"event\":\"a b\",\"data\":1}\n\n");
    {
        //  (JSON text cannot hold the NUL a msgpack string can)
        const char packed[] = "\x82\xa5"
                              "event"
                              "\xa3"
                              "a\0b"
                              "\xa4"
                              "data"
                              "\x01";
        s_expect_packed (EDGE_SSE_EVENTS, packed, sizeof packed - 1, false, &n,
                         "data: {\"event\":\"a\\u0000b\",\"data\":1}\n\n");
    }
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"\",\"data\":1}", false, &n,
              "data: {\"event\":\"\",\"data\":1}\n\n");
    //  Other bodies: a plain data line (events), numbered partial/final (generic)
    s_expect (EDGE_SSE_EVENTS, "{\"event\":\"no data\"}", false, &n,
              "data: {\"event\":\"no data\"}\n\n");
    s_expect (EDGE_SSE_EVENTS, "{\"id\":\"m\",\"status\":\"complete\"}", true, &n,
              "data: {\"id\":\"m\",\"status\":\"complete\"}\n\n");
    s_expect (EDGE_SSE_GENERIC, "{\"event\":5,\"data\":1}", true, &n,
              "id: 3\nevent: final\ndata: {\"event\":5,\"data\":1}\n\n");
    //  OpenAI: data lines, [DONE] after the final one
    const char *chunk = "{\"object\":\"chat.completion.chunk\",\"choices\":[]}";
    s_expect (EDGE_SSE_OPENAI, chunk, false, &n,
              "data: {\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n");
    s_expect (EDGE_SSE_OPENAI, chunk, true, &n,
              "data: {\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n"
              "data: [DONE]\n\n");

    //  Errors end the stream, in each framing
    size_t size = 0;
    char *text = edge_sse_error (EDGE_SSE_EVENTS, "upstream_error", "boom", 502, &n,
                                 &size);
    assert (strcmp (text, "event: error\ndata: {\"error\":{\"code\":\"upstream_error\","
                          "\"message\":\"boom\"}}\n\n")
            == 0);
    free (text);
    text = edge_sse_error (EDGE_SSE_GENERIC, "deadline_exceeded", "late", 504, &n, &size);
    assert (strncmp (text, "id: 4\nevent: error\ndata: {\"error\":{", 35) == 0);
    free (text);
    text = edge_sse_error (EDGE_SSE_OPENAI, "rate_limited", "slow down", 429, &n, &size);
    if (verbose)
        printf ("\n   %s", text);
    assert (strcmp (text, "data: {\"error\":{\"message\":\"slow down\",\"type\":"
                          "\"rate_limit_error\",\"param\":null,\"code\":"
                          "\"rate_limited\"}}\n\n")
            == 0);
    assert (size == strlen (text));
    free (text);

    //  No body stands for {}; what is not one msgpack value gives NULL, the
    //  counter as it was
    {
        uint64_t counter = 0;
        s_expect_packed (EDGE_SSE_GENERIC, NULL, 0, true, &counter,
                         "id: 1\nevent: final\ndata: {}\n\n");
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        int rc = codec_json_to_msgpack (delta, strlen (delta), &buf, NULL, 0);
        assert (rc == 0);
        size_t size = 0;
        assert (!edge_sse_reply (EDGE_SSE_GENERIC, "\xc1", 1, false, &counter, &size));
        assert (!edge_sse_reply (EDGE_SSE_GENERIC, buf.data, buf.size - 1, false,
                                 &counter, &size));
        msgpack_sbuffer_write (&buf, "\xc0", 1);  //  a second value after the first
        assert (!edge_sse_reply (EDGE_SSE_OPENAI, buf.data, buf.size, false, &counter,
                                 &size));
        assert (counter == 1);
        msgpack_sbuffer_destroy (&buf);
    }

    //  Event ids and Last-Event-ID values
    assert (edge_sse_id_valid ("0b7c-11:4", 9));
    assert (!edge_sse_id_valid ("", 0));
    assert (!edge_sse_id_valid ("a\rb", 3));
    assert (!edge_sse_id_valid ("\xc3\xa9", 2));
    char long_id[EDGE_SSE_ID_MAX + 1];
    memset (long_id, 'a', sizeof long_id);
    assert (edge_sse_id_valid (long_id, EDGE_SSE_ID_MAX));
    assert (!edge_sse_id_valid (long_id, sizeof long_id));
    printf ("OK\n");
}
