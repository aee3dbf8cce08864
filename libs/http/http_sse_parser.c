/*  http_sse_parser: server-sent events, parsed as the WHATWG "event stream
    interpretation" says, on top of http_lines. A leading UTF-8 BOM may be split
    across chunks too, so the first bytes are held until they can be judged.      */
#include "http_sse_parser.h"
#include "http_lines.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;       //  bytes, always NUL-terminated once allocated
    size_t size;      //  bytes used, NUL not counted
    size_t capacity;  //  bytes allocated
} s_buf_t;

struct _http_sse_parser_t {
    http_lines_t *lines;  //  splits the stream into lines
    s_buf_t data;         //  data buffer of the event being built
    s_buf_t type;         //  event type buffer
    s_buf_t id;           //  last event id buffer
    int64_t retry;        //  reconnection time in ms, -1 when none
    size_t max_event;     //  biggest event accepted
    size_t bom_seen;      //  bytes of a leading BOM matched so far
    bool bom_done;        //  the start of the stream was judged
    bool overflow;        //  an event or line went over the limit
    http_sse_fn *fn;      //  callback of the feed in progress
    void *arg;            //  its argument
};

static const char s_bom[] = "\xEF\xBB\xBF";

//  Set or append bytes, keeping a terminating NUL; returns -1 past limit bytes.
static int
s_buf_put (s_buf_t *buf, bool append, const char *data, size_t size, size_t limit)
{
    size_t base = append ? buf->size : 0;
    if (size > limit || base > limit - size)
        return -1;
    if (base + size + 1 > buf->capacity) {
        size_t capacity = buf->capacity ? buf->capacity : 64;
        while (capacity < base + size + 1)
            capacity *= 2;
        char *text = realloc (buf->text, capacity);
        assert (text);
        buf->text = text;
        buf->capacity = capacity;
    }
    if (size)
        memcpy (buf->text + base, data, size);
    buf->size = base + size;
    buf->text[buf->size] = 0;
    return 0;
}

static const char *
s_buf_str (s_buf_t *buf)
{
    return buf->text ? buf->text : "";
}

http_sse_parser_t *
http_sse_parser_new (size_t max_event)
{
    http_sse_parser_t *self = calloc (1, sizeof (http_sse_parser_t));
    assert (self);
    self->max_event = max_event ? max_event : 1024 * 1024;
    self->lines = http_lines_new (self->max_event + 16);
    self->retry = -1;
    return self;
}

void
http_sse_parser_destroy (http_sse_parser_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_sse_parser_t *self = *self_p;
    http_lines_destroy (&self->lines);
    free (self->data.text);
    free (self->type.text);
    free (self->id.text);
    free (self);
    *self_p = NULL;
}

//  A blank line: dispatch the event being built, if it has data.
static int
s_dispatch (http_sse_parser_t *self)
{
    int rc = 0;
    if (self->data.size > 0) {
        self->data.size--;  //  drop the last "\n"
        self->data.text[self->data.size] = 0;
        http_sse_event_t event = {
            .type = self->type.size ? self->type.text : "message",
            .data = self->data.text,
            .data_size = self->data.size,
            .id = s_buf_str (&self->id),
        };
        rc = self->fn (&event, self->arg);
    }
    self->data.size = 0;
    self->type.size = 0;
    return rc;
}

static bool
s_field_is (const char *field, size_t size, const char *name)
{
    return size == strlen (name) && memcmp (field, name, size) == 0;
}

static int
s_line (const char *line, size_t size, void *arg)
{
    http_sse_parser_t *self = (http_sse_parser_t *) arg;
    if (size == 0)
        return s_dispatch (self);
    if (line[0] == ':')
        return 0;  //  comment, e.g. a keep-alive
    const char *colon = memchr (line, ':', size);
    size_t field_size = colon ? (size_t) (colon - line) : size;
    const char *value = colon ? colon + 1 : line + size;
    size_t value_size = (size_t) (line + size - value);
    if (value_size && *value == ' ') {
        value++;
        value_size--;
    }
    size_t room = self->max_event;
    if (s_field_is (line, field_size, "data")) {
        room -= self->type.size;
        if (s_buf_put (&self->data, true, value, value_size, room)
            || s_buf_put (&self->data, true, "\n", 1, room)) {
            self->overflow = true;
            return -1;
        }
    }
    else if (s_field_is (line, field_size, "event")) {
        if (s_buf_put (&self->type, false, value, value_size, room - self->data.size)) {
            self->overflow = true;
            return -1;
        }
    }
    else if (s_field_is (line, field_size, "id")) {
        if (!memchr (value, 0, value_size)
            && s_buf_put (&self->id, false, value, value_size, room)) {
            self->overflow = true;
            return -1;
        }
    }
    else if (s_field_is (line, field_size, "retry")) {
        int64_t retry = 0;
        size_t i;
        for (i = 0; i < value_size && i < 18; i++) {
            if (value[i] < '0' || value[i] > '9')
                break;
            retry = retry * 10 + (value[i] - '0');
        }
        if (value_size > 0 && i == value_size)
            self->retry = retry;
    }
    return 0;  //  other fields are ignored
}

int
http_sse_parser_feed (http_sse_parser_t *self, const void *data, size_t size,
                      http_sse_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->overflow || http_lines_overflow (self->lines))
        return -1;
    self->fn = fn;
    self->arg = arg;
    const char *p = (const char *) data;
    while (!self->bom_done && size > 0) {
        if ((char) *p == s_bom[self->bom_seen]) {
            p++;
            size--;
            if (++self->bom_seen == 3)
                self->bom_done = true;
        }
        else {
            self->bom_done = true;
            if (self->bom_seen
                && http_lines_feed (self->lines, s_bom, self->bom_seen, s_line, self))
                return -1;
        }
    }
    int rc = http_lines_feed (self->lines, p, size, s_line, self);
    if (rc && http_lines_overflow (self->lines))
        self->overflow = true;
    return rc;
}

const char *
http_sse_parser_last_id (http_sse_parser_t *self)
{
    assert (self);
    return s_buf_str (&self->id);
}

int64_t
http_sse_parser_retry (http_sse_parser_t *self)
{
    assert (self);
    return self->retry;
}

bool
http_sse_parser_overflow (http_sse_parser_t *self)
{
    assert (self);
    return self->overflow;
}

void
http_sse_parser_reset (http_sse_parser_t *self)
{
    assert (self);
    http_lines_reset (self->lines);
    self->data.size = 0;
    self->type.size = 0;
    self->id.size = 0;
    if (self->id.text)
        self->id.text[0] = 0;
    self->retry = -1;
    self->bom_seen = 0;
    self->bom_done = false;
    self->overflow = false;
}

//  --------------------------------------------------------------------------
//  Fuzz entry point and selftest

typedef struct {
    char *text;   //  events seen, as "type{data}id;" each
    size_t size;  //  bytes used
    int count;    //  events seen
    int stop_at;  //  ask to stop at this event (0: never)
} s_events_t;

static void
s_events_add (s_events_t *e, const char *data, size_t size)
{
    char *text = realloc (e->text, e->size + size + 1);
    assert (text);
    e->text = text;
    if (size)
        memcpy (e->text + e->size, data, size);
    e->size += size;
    e->text[e->size] = 0;
}

static int
s_on_event (const http_sse_event_t *event, void *arg)
{
    s_events_t *e = (s_events_t *) arg;
    assert (event->type && event->data && event->id);
    assert (event->data[event->data_size] == 0);
    s_events_add (e, event->type, strlen (event->type));
    s_events_add (e, "{", 1);
    s_events_add (e, event->data, event->data_size);
    s_events_add (e, "}", 1);
    s_events_add (e, event->id, strlen (event->id));
    s_events_add (e, ";", 1);
    e->count++;
    return e->stop_at && e->count == e->stop_at;
}

//  Parse data in chunks of `step` bytes (0: whole); returns the feed's result.
static int
s_parse (const uint8_t *data, size_t size, size_t step, size_t max_event, s_events_t *e,
         int64_t *retry)
{
    http_sse_parser_t *parser = http_sse_parser_new (max_event);
    int rc = 0;
    size_t offset = 0;
    if (step == 0)
        step = size ? size : 1;
    while (offset < size && rc == 0) {
        size_t n = size - offset < step ? size - offset : step;
        rc = http_sse_parser_feed (parser, data + offset, n, s_on_event, e);
        offset += n;
    }
    if (retry)
        *retry = http_sse_parser_retry (parser);
    http_sse_parser_destroy (&parser);
    return rc;
}

int
http_sse_parser_fuzz (const uint8_t *data, size_t size)
{
    s_events_t whole = {0}, bytes = {0}, chunks = {0};
    int64_t retry_whole, retry_bytes, retry_chunks;
    int rc_whole = s_parse (data, size, 0, 256, &whole, &retry_whole);
    int rc_bytes = s_parse (data, size, 1, 256, &bytes, &retry_bytes);
    size_t step = size ? (size_t) data[0] % 13 + 1 : 1;
    int rc_chunks = s_parse (data, size, step, 256, &chunks, &retry_chunks);
    //  However the stream is cut, the events, the retry and any error are the same
    assert (rc_whole == rc_bytes && rc_bytes == rc_chunks);
    assert (whole.size == bytes.size && bytes.size == chunks.size);
    assert (whole.size == 0 || memcmp (whole.text, bytes.text, whole.size) == 0);
    assert (whole.size == 0 || memcmp (whole.text, chunks.text, whole.size) == 0);
    if (rc_whole == 0)
        assert (retry_whole == retry_bytes && retry_bytes == retry_chunks);
    free (whole.text);
    free (bytes.text);
    free (chunks.text);
    return 0;
}

void
http_sse_parser_test (bool verbose)
{
    printf (" * http_sse_parser: ");

    //  @selftest
    //  A sample stream with a BOM, comments, multi-line data, ids, retry, an event
    //  type, an empty data line, a field without colon, unknown fields, every line
    //  end, an id with NUL (ignored) and an unfinished event at the end
    static const char sample[] = "\xEF\xBB\xBF: keep-alive comment\n"
                                 "data: first\n"
                                 "\n"
                                 "event: delta\r\n"
                                 "data:{\"x\":1}\r\n"
                                 "data:  two spaces\r\n"
                                 "id: 42\r\n"
                                 "\r\n"
                                 "retry: 2500\rdata\r\rfoo: bar\n"
                                 "event: empty\n"
                                 "\n"
                                 "data: after-empty\n"
                                 "id\n"
                                 "retry: 12x\n"
                                 "\n"
                                 "id: a\0b\n"
                                 "data: colon: inside\n\n"
                                 "data: never dispatched";
    const char *expect = "message{first};"
                         "delta{{\"x\":1}\n two spaces}42;"
                         "message{}42;"
                         "message{after-empty};"
                         "message{colon: inside};";
    size_t size = sizeof sample - 1;

    s_events_t e = {0};
    int64_t retry = 0;
    int rc = s_parse ((const uint8_t *) sample, size, 0, 0, &e, &retry);
    assert (rc == 0);
    if (verbose)
        printf ("\n%s\n", e.text);
    assert (e.count == 5);
    assert (strcmp (e.text, expect) == 0);
    assert (retry == 2500);
    free (e.text);
    e = (s_events_t){0};

    //  Every chunk boundary, including inside the BOM and inside a CRLF
    for (size_t cut = 0; cut <= size; cut++) {
        http_sse_parser_t *parser = http_sse_parser_new (0);
        s_events_t ec = {0};
        rc = http_sse_parser_feed (parser, sample, cut, s_on_event, &ec);
        assert (rc == 0);
        rc = http_sse_parser_feed (parser, sample + cut, size - cut, s_on_event, &ec);
        assert (rc == 0);
        assert (ec.count == 5);
        assert (strcmp (ec.text, expect) == 0);
        assert (http_sse_parser_retry (parser) == 2500);
        free (ec.text);
        http_sse_parser_destroy (&parser);
    }
    //  And every pair of boundaries
    for (size_t a = 0; a <= size; a++)
        for (size_t b = a; b <= size; b++) {
            http_sse_parser_t *parser = http_sse_parser_new (0);
            s_events_t ec = {0};
            rc = http_sse_parser_feed (parser, sample, a, s_on_event, &ec);
            rc |= http_sse_parser_feed (parser, sample + a, b - a, s_on_event, &ec);
            rc |= http_sse_parser_feed (parser, sample + b, size - b, s_on_event, &ec);
            assert (rc == 0);
            assert (strcmp (ec.text, expect) == 0);
            free (ec.text);
            http_sse_parser_destroy (&parser);
        }
    rc = s_parse ((const uint8_t *) sample, size, 1, 0, &e, NULL);
    assert (rc == 0);
    free (e.text);
    e = (s_events_t){0};

    //  Only a BOM at the very start is dropped; a partial BOM is data
    static const char boms[] = "\xEF\xBB\xBF\xEF\xBB\xBF"
                               "data: x\n\n";
    http_sse_parser_t *parser = http_sse_parser_new (0);
    rc = http_sse_parser_feed (parser, boms, sizeof boms - 1, s_on_event, &e);
    assert (rc == 0 && e.count == 0);  //  field "\xEF\xBB\xBFdata" is unknown
    http_sse_parser_reset (parser);
    rc = http_sse_parser_feed (parser,
                               "\xEF\xBB"
                               "data: y\n\n",
                               11, s_on_event, &e);
    assert (rc == 0 && e.count == 0);
    http_sse_parser_reset (parser);
    rc = http_sse_parser_feed (parser, "\xEF", 1, s_on_event, &e);
    rc |= http_sse_parser_feed (parser, "\xBB\xBF", 2, s_on_event, &e);
    rc |= http_sse_parser_feed (parser, "data: z\n\n", 9, s_on_event, &e);
    assert (rc == 0 && e.count == 1);
    assert (strcmp (e.text, "message{z};") == 0);

    //  Last event id survives events and is kept for reconnects
    rc = http_sse_parser_feed (parser, "id: 7\ndata: a\n\ndata: b\n\n", 24, s_on_event,
                               &e);
    assert (rc == 0 && e.count == 3);
    assert (strcmp (http_sse_parser_last_id (parser), "7") == 0);
    rc = http_sse_parser_feed (parser, "id\n\n", 4, s_on_event, &e);
    assert (rc == 0 && e.count == 3);
    assert (strcmp (http_sse_parser_last_id (parser), "") == 0);

    //  The callback can stop the stream
    e.stop_at = e.count + 1;
    rc = http_sse_parser_feed (parser, "data: 1\n\ndata: 2\n\n", 18, s_on_event, &e);
    assert (rc == -1 && e.count == e.stop_at);
    http_sse_parser_destroy (&parser);
    free (e.text);
    e = (s_events_t){0};

    //  Events over the limit are refused, whether one line or many
    parser = http_sse_parser_new (16);
    rc = http_sse_parser_feed (parser, "data: 0123456789abcde\n\n", 23, s_on_event, &e);
    assert (rc == 0 && e.count == 1);  //  15 bytes + "\n" fits
    rc = http_sse_parser_feed (parser, "data: 0123456789\ndata: 0123456789\n", 34,
                               s_on_event, &e);
    assert (rc == -1);
    assert (http_sse_parser_overflow (parser));
    rc = http_sse_parser_feed (parser, "\n", 1, s_on_event, &e);
    assert (rc == -1 && e.count == 1);
    http_sse_parser_reset (parser);
    assert (!http_sse_parser_overflow (parser));
    rc = http_sse_parser_feed (parser, "event: a-very-long-event-type-name\n", 35,
                               s_on_event, &e);
    assert (rc == -1);
    http_sse_parser_reset (parser);
    char long_line[100];
    memset (long_line, 'x', sizeof long_line);
    rc = http_sse_parser_feed (parser, long_line, sizeof long_line, s_on_event, &e);
    assert (rc == -1);
    assert (http_sse_parser_overflow (parser));
    http_sse_parser_destroy (&parser);
    http_sse_parser_destroy (&parser);
    free (e.text);

    //  The fuzz entry point agrees with itself
    http_sse_parser_fuzz ((const uint8_t *) sample, size);
    http_sse_parser_fuzz ((const uint8_t *) "", 0);
    http_sse_parser_fuzz ((const uint8_t *) "\xEF\xBB", 2);
    http_sse_parser_fuzz ((const uint8_t *) "retry:1\r\n\r\ndata\r\r", 17);
    //  @end
    printf ("OK\n");
}
