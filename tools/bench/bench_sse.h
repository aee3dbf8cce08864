/*  bench_sse: the client side of one streamed HTTP/1.1 answer for bench-streams
    (bench_streams.c): the response head, its framing (chunked, length or until
    close), SSE lines, and the tokens of bench-llm-upstream in them (each "@<usec>"
    is a token's send time), either as the upstream's own OpenAI chunks or as the
    edge's message.delta events. A stream's tallies go into its run.          */
#ifndef BENCH_SSE_H_INCLUDED
#define BENCH_SSE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_SSE_CARRY_MAX 8192       //  longest header block, first carry size
#define BENCH_SSE_LINE_MAX (16 << 20)  //  longest SSE line
#define BENCH_SSE_CODES_MAX 16         //  distinct error codes counted

typedef enum {
    BENCH_SSE_DIRECT,  //  OpenAI chunks straight from the upstream, data: [DONE] last
    BENCH_SSE_EDGE     //  the edge's message.* events, message.completed last
} bench_sse_mode_t;

typedef enum {
    BENCH_SSE_ERR_CONNECT,  //  could not connect
    BENCH_SSE_ERR_STATUS,   //  HTTP status other than 200
    BENCH_SSE_ERR_EVENT,    //  an error event or error body in the stream
    BENCH_SSE_ERR_FAILED,   //  message.completed with a status other than complete
    BENCH_SSE_ERR_CLOSED,   //  the connection ended before the stream did
    BENCH_SSE_ERR_TIMEOUT,  //  the run's deadline passed
    BENCH_SSE_ERR_TOKENS,   //  the stream ended with fewer or more tokens than sent
    BENCH_SSE_ERR_KINDS
} bench_sse_error_t;

//  The figure name of each error kind.
extern const char *const bench_sse_error_names[BENCH_SSE_ERR_KINDS];

typedef enum {
    BENCH_SSE_CONNECTING,  //  non-blocking connect in progress
    BENCH_SSE_CONNECTED,   //  waiting for the request burst
    BENCH_SSE_SENDING,     //  request partly written
    BENCH_SSE_HEADERS,     //  reading the response header block
    BENCH_SSE_BODY,        //  reading the stream
    BENCH_SSE_OVER         //  done (ok or failed); the socket is closed
} bench_sse_state_t;

typedef enum {
    BENCH_SSE_UNTIL_CLOSE,  //  the body ends with the connection
    BENCH_SSE_LENGTH,       //  Content-Length
    BENCH_SSE_CHUNKED       //  Transfer-Encoding: chunked
} bench_sse_framing_t;

typedef struct {
    int fd;                       //  the socket, -1 when closed
    int index;                    //  position in the run
    bench_sse_state_t state;      //  where the stream is
    char *request;                //  unsent request bytes (partial writes only)
    size_t request_size;          //  bytes left in request
    char *carry;                  //  header block or incomplete SSE line
    size_t carry_size;            //  bytes in carry
    size_t carry_cap;             //  allocated (BENCH_SSE_CARRY_MAX and up, +1 for a NUL)
    bench_sse_framing_t framing;  //  how the body ends
    int64_t remaining;            //  body bytes left (length) or chunk bytes left
    int chunk_state;              //  0 size line, 1 data, 2 CRLF after data, 3 trailer
    char event[32];               //  current SSE event name
    int status;                   //  HTTP status
    int64_t sent_us;              //  request written
    int64_t first_us;             //  first token read, 0 none yet
    int64_t last_us;              //  latest token read
    int tokens;                   //  tokens read
    bool ok;                      //  ended as it should
} bench_sse_stream_t;

typedef struct {
    bench_sse_mode_t mode;            //  what the streams speak
    int tokens_expected;              //  tokens a stream must carry
    int epoll;                        //  the run's loop (a stream ending leaves it)
    int n;                            //  streams in the run
    int ok;                           //  streams that ended well
    int errors[BENCH_SSE_ERR_KINDS];  //  failures by kind
    char example[BENCH_SSE_ERR_KINDS][200];  //  the first failure of each kind
    int64_t tokens;                          //  tokens read
    int64_t tokens_after;                    //  tokens read after the gate opened
    int64_t lines_after;  //  data lines with tokens read after the gate opened
    uint32_t *latency;    //  per token 2.., microseconds
    size_t latency_size;  //  samples
    size_t latency_cap;   //  allocated
    int64_t *ttft;        //  per stream with a first token, microseconds
    int ttft_size;        //  samples
    double *tpot;         //  per stream ended well: microseconds per token after its
                          //  first or the gate, whichever came later (LLM serving's
                          //  "time per output token")
    int tpot_size;        //  samples
    double *tail;         //  per stream ended well: microseconds from its last token to
                          //  its end (through the stack: message.completed, the reply
                          //  stored)
    int tail_size;        //  samples
    int64_t start_us;     //  first request written
    int64_t open_us;      //  every stream had its first token (or failed)
    int64_t release_us;   //  the gate opened
    int64_t last_us;      //  last token read
    bool released;        //  the gate was opened
    int open_at_gate;     //  streams with a first token when it opened
    int held_at_gate;     //  streams the upstream held then (-1 unknown)
    int over;             //  streams ended (ok or failed)
    int open;             //  streams with a first token, or failed
    struct {
        char code[40];             //  the error's "code" (or "-")
        bench_sse_error_t kind;    //  how it showed
        int count;                 //  streams that ended so
    } codes[BENCH_SSE_CODES_MAX];  //  failures by error code
    int code_count;                //  entries in codes
    int failed_late;               //  streams that failed after all their tokens came
} bench_sse_run_t;

//  The stream failed for kind (detail for the first of its kind): close it, count it.
void bench_sse_fail (bench_sse_run_t *run, bench_sse_stream_t *stream,
                     bench_sse_error_t kind, const char *detail);

//  Bytes arrived on the stream at now (microseconds, CLOCK_REALTIME): parse them,
//  count its tokens and end it when its last event came.
void bench_sse_received (bench_sse_run_t *run, bench_sse_stream_t *stream, char *data,
                         size_t size, int64_t now);

#endif
