/*  bench_sse: the client side of one streamed answer (see the header).          */
#include "bench_sse.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

const char *const bench_sse_error_names[BENCH_SSE_ERR_KINDS] = {
    "connect",      "http_status", "error_event", "failed",
    "closed_early", "timeout",     "token_count"};

//  Count a failure under its error code (the "code" in detail's JSON, or "-").
static void
s_count_code (bench_sse_run_t *run, bench_sse_error_t kind, const char *detail)
{
    char code[40] = "-";
    const char *at = detail ? strstr (detail, "\"code\":\"") : NULL;
    if (at) {
        at += 8;
        size_t len = strcspn (at, "\"");
        if (len >= sizeof code)
            len = sizeof code - 1;
        memcpy (code, at, len);
        code[len] = 0;
    }
    for (int i = 0; i < run->code_count; i++)
        if (run->codes[i].kind == kind && strcmp (run->codes[i].code, code) == 0) {
            run->codes[i].count++;
            return;
        }
    if (run->code_count == BENCH_SSE_CODES_MAX)
        return;
    snprintf (run->codes[run->code_count].code, sizeof run->codes[0].code, "%s", code);
    run->codes[run->code_count].kind = kind;
    run->codes[run->code_count++].count = 1;
}

//  Close the stream's socket and free its buffers: it is over.
static void
s_close (bench_sse_run_t *run, bench_sse_stream_t *stream)
{
    if (stream->fd >= 0) {
        epoll_ctl (run->epoll, EPOLL_CTL_DEL, stream->fd, NULL);
        close (stream->fd);
        stream->fd = -1;
    }
    stream->state = BENCH_SSE_OVER;
    free (stream->carry);
    stream->carry = NULL;
    free (stream->request);
    stream->request = NULL;
}

void
bench_sse_fail (bench_sse_run_t *run, bench_sse_stream_t *stream, bench_sse_error_t kind,
                const char *detail)
{
    if (stream->state == BENCH_SSE_OVER)
        return;
    run->errors[kind]++;
    run->over++;
    if (stream->tokens >= run->tokens_expected)
        run->failed_late++;
    s_count_code (run, kind, detail);
    if (!stream->first_us)
        run->open++;
    if (!run->example[kind][0])
        snprintf (run->example[kind], sizeof run->example[kind], "stream %d: %s",
                  stream->index, detail ? detail : "");
    s_close (run, stream);
}

//  The stream ended as it should: close it, count it.
static void
s_finish (bench_sse_run_t *run, bench_sse_stream_t *stream, int64_t now)
{
    if (stream->state == BENCH_SSE_OVER)
        return;
    stream->ok = true;
    run->ok++;
    run->over++;
    int64_t from = stream->first_us > run->release_us || !run->released ? stream->first_us
                                                                        : run->release_us;
    if (run->tpot && stream->tokens > 1 && stream->last_us > from)
        run->tpot[run->tpot_size++] = (double) (stream->last_us - from)
                                      / (double) (stream->tokens - 1);
    if (run->tail && stream->tokens > 0)
        run->tail[run->tail_size++] = (double) (now - stream->last_us);
    s_close (run, stream);
}

//  The stamps of one data line, each counted as a token read now.
static void
s_tokens_read (bench_sse_run_t *run, bench_sse_stream_t *stream, const char *line,
               const char *end, int64_t now)
{
    size_t size = (size_t) (end - line);
    for (const char *at = memchr (line, '@', size); at;
         at = memchr (at, '@', (size_t) (end - at))) {
        at++;
        int64_t stamp = 0;
        int digits = 0;
        while (at < end && *at >= '0' && *at <= '9' && digits < 18) {
            stamp = stamp * 10 + (*at - '0');
            at++;
            digits++;
        }
        if (digits < 13)
            continue;
        stream->tokens++;
        run->tokens++;
        if (run->released)
            run->tokens_after++;
        if (now > run->last_us)
            run->last_us = now;
        stream->last_us = now;
        if (!stream->first_us) {
            stream->first_us = now;
            run->open++;
            run->ttft[run->ttft_size++] = now - stream->sent_us;
            continue;
        }
        if (run->latency_size == run->latency_cap) {
            run->latency_cap = run->latency_cap ? run->latency_cap * 2 : 65536;
            run->latency = realloc (run->latency, run->latency_cap * sizeof (uint32_t));
            assert (run->latency);
        }
        int64_t latency = now - stamp;
        run->latency[run->latency_size++] = latency < 0            ? 0
                                            : latency > UINT32_MAX ? UINT32_MAX
                                                                   : (uint32_t) latency;
    }
}

//  The tokens in one SSE data line: every "@<digits>" is a token's send time.
static void
s_tokens (bench_sse_run_t *run, bench_sse_stream_t *stream, const char *line, size_t size,
          int64_t now)
{
    const char *end = line + size;
    int64_t before = run->tokens_after;
    s_tokens_read (run, stream, line, end, now);
    if (run->tokens_after > before)
        run->lines_after++;
}

//  Is this JSON a message with "status":"complete"?
static bool
s_status_complete (const char *line, size_t size)
{
    const char *at = memmem (line, size, "\"status\":", 9);
    if (!at)
        return false;
    at += 9;
    while (at < line + size && *at == ' ')
        at++;
    return (size_t) (line + size - at) >= 10 && memcmp (at, "\"complete\"", 10) == 0;
}

//  One SSE line (without its end of line).
static void
s_line (bench_sse_run_t *run, bench_sse_stream_t *stream, const char *line, size_t size,
        int64_t now)
{
    if (size == 0) {
        stream->event[0] = 0;
        return;
    }
    if (size > 6 && memcmp (line, "event:", 6) == 0) {
        size_t skip = line[6] == ' ' ? 7 : 6;
        size_t len = size - skip < sizeof stream->event - 1 ? size - skip
                                                            : sizeof stream->event - 1;
        memcpy (stream->event, line + skip, len);
        stream->event[len] = 0;
        return;
    }
    if (size < 5 || memcmp (line, "data:", 5) != 0)
        return;  //  id:, comments, retry:
    const char *data = line + 5 + (line[5] == ' ');
    size_t data_size = size - (size_t) (data - line);
    char detail[160];
    if (run->mode == BENCH_SSE_DIRECT) {
        if (data_size == 6 && memcmp (data, "[DONE]", 6) == 0) {
            stream->tokens == run->tokens_expected
                ? s_finish (run, stream, now)
                : bench_sse_fail (run, stream, BENCH_SSE_ERR_TOKENS, "token count");
            return;
        }
        if (memmem (data, data_size, "\"error\"", 7)) {
            snprintf (detail, sizeof detail, "%.*s",
                      (int) (data_size < 150 ? data_size : 150), data);
            bench_sse_fail (run, stream, BENCH_SSE_ERR_EVENT, detail);
            return;
        }
        s_tokens (run, stream, data, data_size, now);
        return;
    }
    if (strcmp (stream->event, "message.delta") == 0)
        s_tokens (run, stream, data, data_size, now);
    else if (strcmp (stream->event, "error") == 0) {
        snprintf (detail, sizeof detail, "%.*s",
                  (int) (data_size < 150 ? data_size : 150), data);
        bench_sse_fail (run, stream, BENCH_SSE_ERR_EVENT, detail);
    }
    else if (strcmp (stream->event, "message.completed") == 0) {
        if (!s_status_complete (data, data_size)) {
            const char *status = memmem (data, data_size, "\"status\"", 8);
            snprintf (detail, sizeof detail, "%.60s",
                      status ? status : "message.completed without status");
            bench_sse_fail (run, stream, BENCH_SSE_ERR_FAILED, detail);
        }
        else if (stream->tokens != run->tokens_expected) {
            snprintf (detail, sizeof detail, "%d tokens", stream->tokens);
            bench_sse_fail (run, stream, BENCH_SSE_ERR_TOKENS, detail);
        }
        else
            s_finish (run, stream, now);
    }
}

//  Keep size more bytes of an unfinished line; false when it grew too long.
static bool
s_carry (bench_sse_stream_t *stream, const char *data, size_t size)
{
    size_t want = stream->carry_size + size;
    if (want > BENCH_SSE_LINE_MAX)
        return false;
    if (want > stream->carry_cap) {
        size_t cap = stream->carry_cap * 2;
        while (cap < want)
            cap *= 2;
        stream->carry = realloc (stream->carry, cap + 1);
        assert (stream->carry);
        stream->carry_cap = cap;
    }
    memcpy (stream->carry + stream->carry_size, data, size);
    stream->carry_size = want;
    return true;
}

//  Body bytes (after HTTP framing): split into SSE lines.
static void
s_body (bench_sse_run_t *run, bench_sse_stream_t *stream, const char *data, size_t size,
        int64_t now)
{
    while (size > 0 && stream->state == BENCH_SSE_BODY) {
        const char *eol = memchr (data, '\n', size);
        if (!eol) {
            if (!s_carry (stream, data, size))
                bench_sse_fail (run, stream, BENCH_SSE_ERR_EVENT, "SSE line too long");
            return;
        }
        size_t len = (size_t) (eol - data);
        if (stream->carry_size > 0) {
            if (!s_carry (stream, data, len)) {
                bench_sse_fail (run, stream, BENCH_SSE_ERR_EVENT, "SSE line too long");
                return;
            }
            size_t whole = stream->carry_size;
            stream->carry_size = 0;
            if (whole > 0 && stream->carry[whole - 1] == '\r')
                whole--;
            s_line (run, stream, stream->carry, whole, now);
        }
        else
            s_line (run, stream, data, len > 0 && data[len - 1] == '\r' ? len - 1 : len,
                    now);
        size -= len + 1;
        data = eol + 1;
    }
}

//  Undo the body's HTTP framing and pass the bytes on.
static void
s_framed (bench_sse_run_t *run, bench_sse_stream_t *stream, char *data, size_t size,
          int64_t now)
{
    if (stream->framing != BENCH_SSE_CHUNKED) {
        if (stream->framing == BENCH_SSE_LENGTH) {
            if ((int64_t) size > stream->remaining)
                size = (size_t) stream->remaining;
            stream->remaining -= (int64_t) size;
        }
        s_body (run, stream, data, size, now);
        if (stream->framing == BENCH_SSE_LENGTH && stream->remaining == 0
            && stream->state == BENCH_SSE_BODY)
            bench_sse_fail (run, stream, BENCH_SSE_ERR_CLOSED,
                            "body ended before the stream");
        return;
    }
    while (size > 0 && stream->state == BENCH_SSE_BODY) {
        if (stream->chunk_state == 1) {
            size_t take = (int64_t) size < stream->remaining ? size
                                                             : (size_t) stream->remaining;
            s_body (run, stream, data, take, now);
            stream->remaining -= (int64_t) take;
            data += take;
            size -= take;
            if (stream->remaining == 0)
                stream->chunk_state = 2;
            continue;
        }
        //  Size lines, the CRLF after data and trailers: one byte at a time.
        char c = *data++;
        size--;
        if (stream->chunk_state == 2) {
            if (c == '\n')
                stream->chunk_state = 0;
            continue;
        }
        if (stream->chunk_state == 3) {
            if (c == '\n')
                bench_sse_fail (run, stream, BENCH_SSE_ERR_CLOSED, "chunked body ended");
            continue;
        }
        if (c == '\n') {
            stream->carry[stream->carry_size] = 0;
            stream->remaining = strtoll (stream->carry, NULL, 16);
            stream->carry_size = 0;
            stream->chunk_state = stream->remaining > 0 ? 1 : 3;
        }
        else if (stream->carry_size < 30)
            stream->carry[stream->carry_size++] = c;
    }
}

//  The response header block is complete at stream->carry (size bytes).
static void
s_headers (bench_sse_run_t *run, bench_sse_stream_t *stream, size_t size)
{
    char *block = stream->carry;
    block[size] = 0;
    stream->status = (int) strtol (block + 9, NULL, 10);
    stream->framing = BENCH_SSE_UNTIL_CLOSE;
    for (char *line = strchr (block, '\n'); line && line[1];
         line = strchr (line + 1, '\n')) {
        char *name = line + 1;
        if (strncasecmp (name, "transfer-encoding:", 18) == 0
            && strcasestr (name, "chunked"))
            stream->framing = BENCH_SSE_CHUNKED;
        else if (strncasecmp (name, "content-length:", 15) == 0
                 && stream->framing != BENCH_SSE_CHUNKED) {
            stream->framing = BENCH_SSE_LENGTH;
            stream->remaining = strtoll (name + 15, NULL, 10);
        }
    }
    if (stream->status != 200) {
        char *body = strstr (block, "\r\n\r\n");
        char detail[200];
        snprintf (detail, sizeof detail, "HTTP %d %.150s", stream->status,
                  body ? body + 4 : "");
        bench_sse_fail (run, stream, BENCH_SSE_ERR_STATUS, detail);
    }
}

//  Bytes arrived on a stream.
void
bench_sse_received (bench_sse_run_t *run, bench_sse_stream_t *stream, char *data,
                    size_t size, int64_t now)
{
    if (stream->state == BENCH_SSE_HEADERS) {
        size_t before = stream->carry_size;
        size_t take = size < BENCH_SSE_CARRY_MAX - before ? size
                                                          : BENCH_SSE_CARRY_MAX - before;
        memcpy (stream->carry + before, data, take);
        stream->carry_size += take;
        char *end = memmem (stream->carry, stream->carry_size, "\r\n\r\n", 4);
        if (!end) {
            if (stream->carry_size == BENCH_SSE_CARRY_MAX)
                bench_sse_fail (run, stream, BENCH_SSE_ERR_STATUS,
                                "header block too large");
            return;
        }
        size_t used = (size_t) (end - stream->carry) + 4 - before;
        s_headers (run, stream, stream->carry_size);
        if (stream->state == BENCH_SSE_OVER)
            return;
        stream->state = BENCH_SSE_BODY;
        stream->carry_size = 0;
        data += used;
        size -= used;
    }
    if (stream->state == BENCH_SSE_BODY && size > 0)
        s_framed (run, stream, data, size, now);
}
