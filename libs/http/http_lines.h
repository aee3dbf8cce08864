/*  http_lines: incremental line splitter for streamed HTTP bodies. Feed it body
    chunks as they arrive; it calls back once per complete line, whatever the chunk
    boundaries. Lines end in LF, CRLF or a lone CR (a CRLF split across two chunks
    counts once). Used by the SSE parser and by NDJSON readers of LLM streams.     */
#ifndef HTTP_LINES_H_INCLUDED
#define HTTP_LINES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _http_lines_t http_lines_t;

//  Called for each complete line, without its terminator; line is not
//  NUL-terminated and is valid only during the call. Return 0 to go on, non-zero
//  to stop feeding (http_lines_feed then returns -1).
typedef int (http_lines_fn) (const char *line, size_t size, void *arg);

//  Create a splitter that accepts lines of at most max_line bytes (terminator not
//  counted); 0 means 64 KiB.
http_lines_t *http_lines_new (size_t max_line);
void http_lines_destroy (http_lines_t **self_p);

//  Feed a chunk; calls fn for every line it completes. Returns 0, or -1 when a line
//  is longer than max_line (the splitter then refuses input until reset) or fn
//  asked to stop (the rest of the chunk is dropped).
int http_lines_feed (http_lines_t *self, const void *data, size_t size, http_lines_fn *fn,
                     void *arg) __attribute__ ((warn_unused_result));

//  At end of stream, deliver a last line that had no terminator, if any. Returns
//  as http_lines_feed does.
int http_lines_finish (http_lines_t *self, http_lines_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  True once a line went over max_line.
bool http_lines_overflow (http_lines_t *self);

//  Bytes held of an incomplete line.
size_t http_lines_pending (http_lines_t *self);

//  Forget any partial line and a previous overflow.
void http_lines_reset (http_lines_t *self);

//  Fuzz entry point: splits the input in several chunkings, checks that each gives
//  the same lines, and never crashes. Returns 0.
int http_lines_fuzz (const uint8_t *data, size_t size);

void http_lines_test (bool verbose);

#endif
