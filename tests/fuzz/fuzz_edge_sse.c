/*  fuzz_edge_sse: what the edge writes to an SSE client from a service's reply.
    The first byte picks the framing (generic, events, OpenAI), whether the reply
    is the final one, and whether the rest is a msgpack reply body (converted as
    edge_http converts it) or JSON text. The text must render (edge_sse_reply),
    and in the events framing every line it writes must be an "id:", "event:" or
    "data:" line: a reply can never break the stream's framing. The same bytes go
    through edge_sse_error as a message and edge_sse_id_valid as a Last-Event-ID.
    A msgpack body must render the same through edge_sse_reply_msgpack (what the
    edge runs) as through its JSON and edge_sse_reply.                           */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_call.h"
#include "edge_sse.h"

//  Every line of an SSE text is empty or starts with a field we write.
static void
s_check_lines (const char *text, size_t size)
{
    const char *p = text, *end = text + size;
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        assert (nl);  //  every line ends
        size_t len = (size_t) (nl - p);
        assert (len == 0 || strncmp (p, "id: ", 4) == 0 || strncmp (p, "event: ", 7) == 0
                || strncmp (p, "data: ", 6) == 0);
        assert (!memchr (p, '\r', len));
        p = nl + 1;
    }
}

//  A terminated copy of len bytes (strndup would let ASan's strict string checks
//  read past input that has no NUL).
static char *
s_copy (const char *text, size_t len)
{
    char *copy = malloc (len + 1);
    assert (copy);
    memcpy (copy, text, len);
    copy[len] = 0;
    return copy;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    edge_sse_mode_t mode = (edge_sse_mode_t) (data[0] % 3);
    bool final = data[0] & 4;
    bool packed = data[0] & 8;
    const char *text = (const char *) data + 1;
    size_t len = size - 1;

    char *json = NULL;
    if (packed) {
        bus_reply_t reply = {.kind = final ? BUS_REPLY_FINAL : BUS_REPLY_PARTIAL,
                             .body = (const uint8_t *) text,
                             .size = len};
        json = edge_call_reply_json (&reply);
        //  The edge renders straight from msgpack: the same text as from its JSON
        uint64_t counter = 0, json_counter = 0;
        size_t out = 0, json_out = 0;
        char *direct = edge_sse_reply_msgpack (mode, text, len, final, &counter, &out);
        assert ((direct == NULL) == (json == NULL));
        //  (jansson does not read back the \u0000 it writes for a NUL, so that
        //  path makes a plain data line of such a body; the direct one names it)
        if (direct && !strstr (json, "\\u0000")) {
            char *via_json = edge_sse_reply (mode, json, strlen (json), final,
                                             &json_counter, &json_out);
            assert (out == json_out && memcmp (direct, via_json, out) == 0);
            assert (counter == json_counter);
            free (via_json);
        }
        else if (!direct)
            assert (counter == 0);
        free (direct);
    }
    else if (!memchr (text, '\n', len) && !memchr (text, '\r', len)
             && !memchr (text, 0, len)) {
        json = malloc (len + 1);  //  a reply's JSON is always one line
        assert (json);
        memcpy (json, text, len);
        json[len] = 0;
    }
    if (json) {
        uint64_t counter = 0;
        size_t out = 0;
        char *sse = edge_sse_reply (mode, json, strlen (json), final, &counter, &out);
        assert (sse && out == strlen (sse));
        if (mode != EDGE_SSE_OPENAI)
            s_check_lines (sse, out);
        free (sse);
        free (json);
    }
    char *message = s_copy (text, len);
    uint64_t counter = 0;
    size_t out = 0;
    char *sse = edge_sse_error (mode, "internal", message, 500 + data[0], &counter, &out);
    s_check_lines (sse, out);
    free (sse);
    free (message);
    (void) edge_sse_id_valid (text, len);
    return 0;
}
