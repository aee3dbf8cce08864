/*  fuzz_edge_sse: what the edge writes to an SSE client from a service's reply.
    The first byte picks the framing (generic, events, OpenAI), whether the reply
    is the final one, and whether the rest is a msgpack reply body or JSON text
    (packed as a service would). The body must render (edge_sse_reply) exactly
    when the edge can read it, and every line it writes (but OpenAI's) must be an
    "id:", "event:" or "data:" line: a reply can never break the stream's framing.
    The same bytes go through edge_sse_error as a message and edge_sse_id_valid as
    a Last-Event-ID.                                                            */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
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

    //  The body as a service sends it: these bytes, or the msgpack of JSON text
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    const char *body = text;
    size_t body_size = len;
    bool have = true;
    if (!packed) {
        have = codec_json_to_msgpack (text, len, &buf, NULL, 0) == 0;
        body = buf.data;
        body_size = buf.size;
    }
    if (have) {
        uint64_t counter = 0;
        size_t out = 0;
        char *sse = edge_sse_reply (mode, body, body_size, final, &counter, &out);
        //  Refused exactly when the edge could not show the body as JSON either
        bus_reply_t reply = {.kind = final ? BUS_REPLY_FINAL : BUS_REPLY_PARTIAL,
                             .body = (const uint8_t *) body,
                             .size = body_size};
        char *json = edge_call_reply_json (&reply);
        assert ((sse == NULL) == (json == NULL));
        if (sse) {
            assert (out == strlen (sse));
            if (mode != EDGE_SSE_OPENAI)
                s_check_lines (sse, out);
        }
        else
            assert (counter == 0);
        free (sse);
        free (json);
    }
    msgpack_sbuffer_destroy (&buf);
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
