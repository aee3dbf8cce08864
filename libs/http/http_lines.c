/*  http_lines: incremental line splitter. Lines wholly inside a chunk are passed
    straight from the caller's buffer; only a line split across chunks is copied,
    into a buffer that never grows past max_line.                                  */
#include "http_lines.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _http_lines_t {
    char *buf;        //  partial line carried over from earlier chunks
    size_t size;      //  bytes used in buf
    size_t capacity;  //  bytes allocated for buf
    size_t max_line;  //  longest line accepted
    bool skip_lf;     //  last chunk ended in CR: a leading LF belongs to it
    bool overflow;    //  a line went over max_line
};

http_lines_t *
http_lines_new (size_t max_line)
{
    http_lines_t *self = calloc (1, sizeof (http_lines_t));
    assert (self);
    self->max_line = max_line ? max_line : 65536;
    return self;
}

void
http_lines_destroy (http_lines_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->buf);
    free (*self_p);
    *self_p = NULL;
}

//  Append bytes to the partial line; returns -1 when the line would pass max_line.
static int
s_append (http_lines_t *self, const char *data, size_t size)
{
    if (size > self->max_line - self->size) {
        self->overflow = true;
        self->size = 0;
        return -1;
    }
    if (self->size + size > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 256;
        while (capacity < self->size + size)
            capacity *= 2;
        if (capacity > self->max_line)
            capacity = self->max_line;
        char *buf = realloc (self->buf, capacity);
        assert (buf);
        self->buf = buf;
        self->capacity = capacity;
    }
    memcpy (self->buf + self->size, data, size);
    self->size += size;
    return 0;
}

int
http_lines_feed (http_lines_t *self, const void *data, size_t size, http_lines_fn *fn,
                 void *arg)
{
    assert (self);
    assert (fn);
    if (self->overflow)
        return -1;
    const char *p = (const char *) data;
    const char *end = p + size;
    if (self->skip_lf && p < end) {
        if (*p == '\n')
            p++;
        self->skip_lf = false;
    }
    while (p < end) {
        //  The line's end: the first LF or CR (memchr scans many bytes a step)
        const char *q = memchr (p, '\n', (size_t) (end - p));
        const char *cr = memchr (p, '\r', (size_t) ((q ? q : end) - p));
        if (cr)
            q = cr;
        else if (!q)
            q = end;
        if (q == end)
            return s_append (self, p, (size_t) (end - p));

        int rc;
        if (self->size) {
            if (s_append (self, p, (size_t) (q - p)))
                return -1;
            rc = fn (self->buf, self->size, arg);
            self->size = 0;
        }
        else {
            if ((size_t) (q - p) > self->max_line) {
                self->overflow = true;
                return -1;
            }
            rc = fn (p, (size_t) (q - p), arg);
        }
        if (*q == '\r') {
            if (q + 1 < end) {
                if (q[1] == '\n')
                    q++;
            }
            else
                self->skip_lf = true;
        }
        p = q + 1;
        if (rc)
            return -1;
    }
    return 0;
}

int
http_lines_finish (http_lines_t *self, http_lines_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->overflow)
        return -1;
    self->skip_lf = false;
    if (self->size == 0)
        return 0;
    int rc = fn (self->buf, self->size, arg);
    self->size = 0;
    return rc ? -1 : 0;
}

bool
http_lines_overflow (http_lines_t *self)
{
    assert (self);
    return self->overflow;
}

size_t
http_lines_pending (http_lines_t *self)
{
    assert (self);
    return self->size;
}

void
http_lines_reset (http_lines_t *self)
{
    assert (self);
    self->size = 0;
    self->skip_lf = false;
    self->overflow = false;
}

//  --------------------------------------------------------------------------
//  Fuzz entry point and selftest

typedef struct {
    char *text;       //  lines seen, each followed by '|'
    size_t size;      //  bytes used
    size_t capacity;  //  bytes allocated
    int count;        //  lines seen
    int stop_at;      //  ask to stop at this line (0: never)
} s_collect_t;

static int
s_collect (const char *line, size_t size, void *arg)
{
    s_collect_t *c = (s_collect_t *) arg;
    if (c->size + size + 1 > c->capacity) {
        size_t capacity = c->capacity ? c->capacity : 256;
        while (capacity < c->size + size + 1)
            capacity *= 2;
        char *text = realloc (c->text, capacity);
        assert (text);
        c->text = text;
        c->capacity = capacity;
    }
    if (size)
        memcpy (c->text + c->size, line, size);
    c->size += size;
    c->text[c->size++] = '|';
    c->count++;
    return c->stop_at && c->count == c->stop_at;
}

//  Split data into chunks of `step` bytes (0: one chunk) and collect the lines;
//  returns -1 if the splitter failed.
static int
s_split (const uint8_t *data, size_t size, size_t step, size_t max_line, s_collect_t *c)
{
    http_lines_t *lines = http_lines_new (max_line);
    int rc = 0;
    size_t offset = 0;
    if (step == 0)
        step = size ? size : 1;
    while (offset < size && rc == 0) {
        size_t n = size - offset < step ? size - offset : step;
        rc = http_lines_feed (lines, data + offset, n, s_collect, c);
        offset += n;
    }
    if (rc == 0)
        rc = http_lines_finish (lines, s_collect, c);
    http_lines_destroy (&lines);
    return rc;
}

int
http_lines_fuzz (const uint8_t *data, size_t size)
{
    s_collect_t whole = {0}, bytes = {0}, chunks = {0};
    int rc_whole = s_split (data, size, 0, 64, &whole);
    int rc_bytes = s_split (data, size, 1, 64, &bytes);
    int rc_chunks = s_split (data, size, size ? (size_t) data[0] % 17 + 1 : 1, 64,
                             &chunks);
    assert (rc_whole == rc_bytes && rc_bytes == rc_chunks);
    assert (whole.size == bytes.size && bytes.size == chunks.size);
    assert (whole.size == 0 || memcmp (whole.text, bytes.text, whole.size) == 0);
    assert (whole.size == 0 || memcmp (whole.text, chunks.text, whole.size) == 0);
    free (whole.text);
    free (bytes.text);
    free (chunks.text);
    return 0;
}

void
http_lines_test (bool verbose)
{
    printf (" * http_lines: ");

    //  @selftest
    //  Every kind of line end, a CRLF split over chunks, an empty line
    http_lines_t *lines = http_lines_new (16);
    s_collect_t c = {0};
    int rc = http_lines_feed (lines, "one\ntwo\r\nthree\rfo", 17, s_collect, &c);
    assert (rc == 0);
    assert (c.count == 3);
    assert (http_lines_pending (lines) == 2);
    rc = http_lines_feed (lines, "ur\r", 3, s_collect, &c);
    assert (rc == 0 && c.count == 4);
    rc = http_lines_feed (lines, "", 0, s_collect, &c);
    assert (rc == 0);
    rc = http_lines_feed (lines, "\n\nsix", 5, s_collect, &c);
    assert (rc == 0 && c.count == 5);
    rc = http_lines_finish (lines, s_collect, &c);
    assert (rc == 0 && c.count == 6);
    assert (c.size == strlen ("one|two|three|four||six|"));
    assert (memcmp (c.text, "one|two|three|four||six|", c.size) == 0);

    //  A line longer than the limit is an error, complete or split
    rc = http_lines_feed (lines, "0123456789abcdef\n", 17, s_collect, &c);
    assert (rc == 0 && c.count == 7);
    rc = http_lines_feed (lines, "0123456789abcdefg\n", 18, s_collect, &c);
    assert (rc == -1);
    assert (http_lines_overflow (lines));
    rc = http_lines_feed (lines, "ok\n", 3, s_collect, &c);
    assert (rc == -1 && c.count == 7);
    http_lines_reset (lines);
    rc = http_lines_feed (lines, "0123456789", 10, s_collect, &c);
    assert (rc == 0);
    rc = http_lines_feed (lines, "abcdefg", 7, s_collect, &c);
    assert (rc == -1);
    http_lines_reset (lines);

    //  The callback can stop the feed
    c.stop_at = c.count + 1;
    rc = http_lines_feed (lines, "a\nb\nc\n", 6, s_collect, &c);
    assert (rc == -1);
    assert (c.count == c.stop_at);
    http_lines_destroy (&lines);
    http_lines_destroy (&lines);
    free (c.text);

    //  NDJSON-like sample, split at every byte position and byte by byte
    const char *sample = "{\"a\":1}\r\n{\"b\":\"x\\ny\"}\n\r\n{\"c\":3}\r{\"d\":4}";
    const char *expect = "{\"a\":1}|{\"b\":\"x\\ny\"}||{\"c\":3}|{\"d\":4}|";
    size_t size = strlen (sample);
    for (size_t cut = 0; cut <= size; cut++) {
        lines = http_lines_new (0);
        s_collect_t cc = {0};
        rc = http_lines_feed (lines, sample, cut, s_collect, &cc);
        assert (rc == 0);
        rc = http_lines_feed (lines, sample + cut, size - cut, s_collect, &cc);
        assert (rc == 0);
        rc = http_lines_finish (lines, s_collect, &cc);
        assert (rc == 0);
        assert (cc.size == strlen (expect));
        assert (memcmp (cc.text, expect, cc.size) == 0);
        free (cc.text);
        http_lines_destroy (&lines);
    }
    //  The fuzz entry point agrees with itself on awkward inputs
    http_lines_fuzz ((const uint8_t *) sample, size);
    http_lines_fuzz ((const uint8_t *) "\r\r\n\n\r", 5);
    http_lines_fuzz ((const uint8_t *) "", 0);
    uint8_t noise[300];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t) ((i * 7919u) % 13 == 0 ? '\r'
                              : (i * 31u) % 11 == 0 ? '\n'
                                                    : 'x');
    http_lines_fuzz (noise, sizeof noise);
    //  @end
    printf ("OK\n");
}
