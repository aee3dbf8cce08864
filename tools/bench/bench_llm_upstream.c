/*  bench-llm-upstream: a stand-in LLM provider for benchmarks, speaking OpenAI's
    Chat Completions wire format (POST /v1/chat/completions, streamed as chunked
    text/event-stream chat.completion.chunk frames, the usage chunk when
    stream_options.include_usage, then data: [DONE]; GET /v1/models). One thread,
    one epoll loop, non-blocking sockets: it holds tens of thousands of streams.
    A request may carry the stand-in's markers (tests/standins) in its text:
    "[[tokens:N delay_us:U]]" overrides --tokens and --delay-us for that stream.
    Used by tools/bench/bench-streams with bench-streams (bench_streams.c).

    Every token carries its send time, so a client can measure per-token latency
    end to end: token i reads " t<i>@<CLOCK_REALTIME in microseconds>", stamped
    the moment the frame is written (same machine, same clock).

    The gate: POST /_bench/hold closes it, after which a new stream sends its
    headers, the role chunk and its first token, then waits; POST /_bench/release
    opens it and every waiting stream goes on at once. A load generator uses it to
    have all N streams open together before the tokens flow. GET /_bench/stats
    answers counters as JSON.

        bench-llm-upstream [--host H] [--port P] [--tokens N] [--delay-us U]
                           [--api-key KEY] [--model NAME] [--gate]
    Prints "listening <port>" as its first stdout line; SIGTERM or SIGINT stops it.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define S_HEADER_MAX 16384            //  largest request header block
#define S_BODY_MAX (8 * 1024 * 1024)  //  largest request body
#define S_OUT_LOW 8192                //  frames are made while less is pending
#define S_FRAMES_PER_TURN 32          //  frames one stream makes per loop turn
#define S_EVENTS 1024                 //  epoll events per wait

typedef enum {
    S_READING,    //  waiting for (the rest of) a request
    S_STREAMING,  //  making frames as the socket takes them
    S_HELD,       //  first token sent, waiting for the gate to open
    S_WAITING,    //  waiting out the delay before the next token
    S_FLUSHING,   //  a plain answer or the stream's end is being written
} s_state_t;

typedef struct _s_conn_t s_conn_t;
struct _s_conn_t {
    int fd;                 //  the client socket
    s_state_t state;        //  where the connection is
    char *in;               //  bytes read and not yet used
    size_t in_len;          //  bytes in in
    size_t in_cap;          //  allocated size of in
    char *out;              //  bytes to write
    size_t out_len;         //  bytes in out
    size_t out_off;         //  bytes of out already written
    size_t out_cap;         //  allocated size of out
    bool keep_alive;        //  the connection outlives this request
    bool continued;         //  "100 Continue" was sent for this request
    bool want_out;          //  EPOLLOUT is armed
    bool usage;             //  stream_options.include_usage
    int next;               //  the stream's next frame (see s_frame)
    int tokens;             //  tokens this stream sends
    int64_t delay_us;       //  wait before each token
    int64_t due_us;         //  when a waiting stream goes on (CLOCK_MONOTONIC)
    char id[40];            //  chatcmpl-... of this completion
    char model[136];        //  model name as JSON string contents
    char head[320];         //  "data: {" and the fields every chunk repeats
    size_t head_len;        //  bytes in head
    int64_t created;        //  unix seconds of the completion
    int prompt_tokens;      //  usage: a rough count of the request's words
    s_conn_t *prev, *link;  //  list membership (held or waiting), doubly linked
    bool listed;            //  in the held or the waiting list
};

typedef struct {
    s_conn_t *head, *tail;  //  first and last member
    int size;               //  members
} s_list_t;

typedef struct {
    const char *host;     //  address to listen on
    int port;             //  port (0: any free one)
    int tokens;           //  tokens per stream
    int64_t delay_us;     //  wait before each token
    const char *api_key;  //  the Bearer key accepted (NULL: any)
    const char *model;    //  the model GET /v1/models lists
    bool gate_closed;     //  new streams wait after their first token
} s_config_t;

typedef struct {
    s_config_t cfg;     //  options
    int epoll;          //  the loop
    int listener;       //  listening socket
    int timer;          //  timerfd for delayed tokens
    int signals;        //  signalfd for SIGTERM and SIGINT
    bool terminated;    //  stop the loop
    s_list_t held;      //  streams waiting for the gate
    s_list_t waiting;   //  streams waiting for a delay, by due time
    int64_t timer_due;  //  when the timer is set to fire (0: disarmed)
    uint64_t sequence;  //  completions answered, for ids
    //  counters for /_bench/stats
    int open;               //  connections open
    int streaming;          //  streams started and not ended
    uint64_t started;       //  streams started
    uint64_t completed;     //  streams that sent [DONE]
    uint64_t disconnected;  //  streams whose client left before the end
    uint64_t tokens_sent;   //  tokens written (made) so far
    uint64_t requests;      //  requests answered
    uint64_t unauthorized;  //  requests refused for their key
} s_server_t;

//  The listener, timer and signal fds are told apart from connections by
//  these tags in epoll's data.
static const int s_tag_listener = 1, s_tag_timer = 2, s_tag_signals = 3;

static int64_t
s_realtime_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
s_monotonic_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  --------------------------------------------------------------------------
//  Lists (a connection is in at most one)

static void
s_list_push (s_list_t *list, s_conn_t *conn)
{
    assert (!conn->listed);
    conn->prev = list->tail;
    conn->link = NULL;
    if (list->tail)
        list->tail->link = conn;
    else
        list->head = conn;
    list->tail = conn;
    list->size++;
    conn->listed = true;
}

//  Add a waiting stream in due-time order (from the end: nearly always the place).
static void
s_list_insert_due (s_list_t *list, s_conn_t *conn)
{
    s_conn_t *after = list->tail;
    while (after && after->due_us > conn->due_us)
        after = after->prev;
    if (!after) {
        conn->prev = NULL;
        conn->link = list->head;
        if (list->head)
            list->head->prev = conn;
        else
            list->tail = conn;
        list->head = conn;
        list->size++;
        conn->listed = true;
        return;
    }
    if (after == list->tail) {
        s_list_push (list, conn);
        return;
    }
    conn->prev = after;
    conn->link = after->link;
    after->link->prev = conn;
    after->link = conn;
    list->size++;
    conn->listed = true;
}

static void
s_list_remove (s_list_t *list, s_conn_t *conn)
{
    if (conn->prev)
        conn->prev->link = conn->link;
    else
        list->head = conn->link;
    if (conn->link)
        conn->link->prev = conn->prev;
    else
        list->tail = conn->prev;
    conn->prev = conn->link = NULL;
    list->size--;
    conn->listed = false;
}

//  --------------------------------------------------------------------------
//  Output

//  Make room for size more bytes in the connection's output.
static void
s_out_reserve (s_conn_t *conn, size_t size)
{
    if (conn->out_off > 0 && conn->out_off == conn->out_len)
        conn->out_off = conn->out_len = 0;
    if (conn->out_len + size <= conn->out_cap)
        return;
    if (conn->out_off > 0) {
        memmove (conn->out, conn->out + conn->out_off, conn->out_len - conn->out_off);
        conn->out_len -= conn->out_off;
        conn->out_off = 0;
        if (conn->out_len + size <= conn->out_cap)
            return;
    }
    size_t cap = conn->out_cap ? conn->out_cap : 4096;
    while (cap < conn->out_len + size)
        cap *= 2;
    conn->out = realloc (conn->out, cap);
    assert (conn->out);
    conn->out_cap = cap;
}

static void
s_out_append (s_conn_t *conn, const char *data, size_t size)
{
    s_out_reserve (conn, size);
    memcpy (conn->out + conn->out_len, data, size);
    conn->out_len += size;
}

//  Append one HTTP chunk holding data.
static void
s_out_chunk (s_conn_t *conn, const char *data, size_t size)
{
    char head[24];
    int n = snprintf (head, sizeof head, "%zx\r\n", size);
    s_out_reserve (conn, (size_t) n + size + 2);
    s_out_append (conn, head, (size_t) n);
    s_out_append (conn, data, size);
    s_out_append (conn, "\r\n", 2);
}

static size_t
s_out_pending (s_conn_t *conn)
{
    return conn->out_len - conn->out_off;
}

//  A complete answer with a body (JSON unless content_type says otherwise).
static void
s_respond (s_server_t *self, s_conn_t *conn, int status, const char *reason,
           const char *body)
{
    char head[512];
    size_t size = strlen (body);
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: %s\r\n"
                      "x-request-id: req_bench%" PRIu64 "\r\n\r\n",
                      status, reason, size, conn->keep_alive ? "keep-alive" : "close",
                      self->requests);
    s_out_append (conn, head, (size_t) n);
    s_out_append (conn, body, size);
    conn->state = S_FLUSHING;
    self->requests++;
}

//  An error in OpenAI's shape.
static void
s_respond_error (s_server_t *self, s_conn_t *conn, int status, const char *reason,
                 const char *message, const char *type, const char *code)
{
    char body[1024];
    snprintf (body, sizeof body,
              "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,"
              "\"code\":%s%s%s}}",
              message, type, code ? "\"" : "", code ? code : "null", code ? "\"" : "");
    s_respond (self, conn, status, reason, body);
}

//  --------------------------------------------------------------------------
//  Streams

//  The start of every chunk object of this completion, into buf.
static int
s_chunk_head (s_conn_t *conn, char *buf, size_t size)
{
    return snprintf (buf, size,
                     "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
                     "\"created\":%" PRId64 ",\"model\":\"%s\","
                     "\"system_fingerprint\":\"fp_bench\",",
                     conn->id, conn->created, conn->model);
}

//  Write v in decimal at at; returns the digits written.
static size_t
s_put_decimal (char *at, uint64_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        at[i] = digits[n - 1 - i];
    return n;
}

//  A token's chunk into the output as an HTTP chunk: the bulk of what a stream
//  sends, its text put together without printf (the stand-in shares the
//  machine's two cores with what it measures).
static void
s_token_chunk (s_conn_t *conn, int index, int64_t stamp)
{
    static const char middle[] = "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" t";
    static const char tail[] = "\"},\"logprobs\":null,\"finish_reason\":null}]";
    static const char usage_null[] = ",\"usage\":null";
    char body[512];
    size_t n = 0;
    memcpy (body, conn->head, conn->head_len);
    n += conn->head_len;
    memcpy (body + n, middle, sizeof middle - 1);
    n += sizeof middle - 1;
    n += s_put_decimal (body + n, (uint64_t) index);
    body[n++] = '@';
    n += s_put_decimal (body + n, (uint64_t) stamp);
    memcpy (body + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    if (conn->usage) {
        memcpy (body + n, usage_null, sizeof usage_null - 1);
        n += sizeof usage_null - 1;
    }
    memcpy (body + n, "}\n\n", 3);
    n += 3;
    s_out_chunk (conn, body, n);
}

//  A frame other than a token's (the role, stop and usage chunks, the end) into
//  the output; false when the stream has ended with it.
static bool
s_other_frame (s_server_t *self, s_conn_t *conn, int index)
{
    char frame[1024];
    memcpy (frame, conn->head, conn->head_len);
    int n = (int) conn->head_len;
    size_t room = sizeof frame - (size_t) n;
    const char *usage_null = conn->usage ? ",\"usage\":null" : "";
    if (index == 0)
        n += snprintf (frame + n, room,
                       "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                       "\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
                       "\"finish_reason\":null}]%s}\n\n",
                       usage_null);
    else if (index == conn->tokens + 1)
        n += snprintf (frame + n, room,
                       "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                       "\"finish_reason\":\"stop\"}]%s}\n\n",
                       usage_null);
    else if (index == conn->tokens + 2 && conn->usage)
        n += snprintf (frame + n, room,
                       "\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                       "\"completion_tokens\":%d,\"total_tokens\":%d,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":0,"
                       "\"audio_tokens\":0},\"completion_tokens_details\":{"
                       "\"reasoning_tokens\":0,\"audio_tokens\":0,"
                       "\"accepted_prediction_tokens\":0,"
                       "\"rejected_prediction_tokens\":0}}}\n\n",
                       conn->prompt_tokens, conn->tokens,
                       conn->prompt_tokens + conn->tokens);
    else {
        conn->next = conn->tokens + 4;
        s_out_chunk (conn, "data: [DONE]\n\n", 14);
        s_out_append (conn, "0\r\n\r\n", 5);
        conn->state = S_FLUSHING;
        self->streaming--;
        self->completed++;
        self->requests++;
        return false;
    }
    assert (n > 0 && (size_t) n < sizeof frame);
    s_out_chunk (conn, frame, (size_t) n);
    return true;
}

//  Make the stream's next frame. Frames: 0 the role chunk, 1..tokens the tokens,
//  then the stop chunk, the usage chunk (when asked), [DONE] and the last chunk.
//  Moves the stream to held or waiting when the gate or the delay says so.
static void
s_frame (s_server_t *self, s_conn_t *conn)
{
    int index = conn->next;
    if (index >= 1 && index <= conn->tokens) {
        s_token_chunk (conn, index, s_realtime_us ());
        self->tokens_sent++;
    }
    else if (!s_other_frame (self, conn, index))
        return;
    conn->next++;
    if (index == conn->tokens + 1 && !conn->usage)
        conn->next++;
    if (index == 1 && self->cfg.gate_closed) {
        conn->state = S_HELD;
        s_list_push (&self->held, conn);
    }
    else if (index < conn->tokens && conn->delay_us > 0) {
        conn->state = S_WAITING;
        conn->due_us = s_monotonic_us () + conn->delay_us;
        s_list_insert_due (&self->waiting, conn);
    }
}

//  Set the timer to the first waiting stream's due time (or disarm it).
static void
s_timer_update (s_server_t *self)
{
    int64_t due = self->waiting.head ? self->waiting.head->due_us : 0;
    if (due == self->timer_due)
        return;
    self->timer_due = due;
    struct itimerspec spec;
    memset (&spec, 0, sizeof spec);
    if (due) {
        spec.it_value.tv_sec = due / 1000000;
        spec.it_value.tv_nsec = (due % 1000000) * 1000;
    }
    timerfd_settime (self->timer, TFD_TIMER_ABSTIME, &spec, NULL);
}

//  --------------------------------------------------------------------------
//  Connections

static void
s_conn_close (s_server_t *self, s_conn_t *conn)
{
    if (conn->state == S_STREAMING || conn->state == S_HELD || conn->state == S_WAITING) {
        self->streaming--;
        self->disconnected++;
    }
    if (conn->listed)
        s_list_remove (conn->state == S_HELD ? &self->held : &self->waiting, conn);
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, conn->fd, NULL);
    close (conn->fd);
    free (conn->in);
    free (conn->out);
    free (conn);
    self->open--;
}

static void
s_arm (s_server_t *self, s_conn_t *conn, bool want_out)
{
    if (conn->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.ptr = conn};
    epoll_ctl (self->epoll, EPOLL_CTL_MOD, conn->fd, &ev);
    conn->want_out = want_out;
}

static bool s_handle_input (s_server_t *self, s_conn_t *conn);

//  Write what is pending and make frames while the socket takes them, at most
//  S_FRAMES_PER_TURN per call (level-triggered EPOLLOUT brings it back), so that
//  every stream moves. Returns false when the connection was closed.
static bool
s_pump (s_server_t *self, s_conn_t *conn)
{
    int frames = 0;
    while (true) {
        if (s_out_pending (conn) > 0) {
            ssize_t n = send (conn->fd, conn->out + conn->out_off, s_out_pending (conn),
                              MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0) {
                s_conn_close (self, conn);
                return false;
            }
            conn->out_off += (size_t) n;
            if (s_out_pending (conn) > 0)
                break;  //  the socket is full
            conn->out_off = conn->out_len = 0;
        }
        if (conn->state != S_STREAMING || frames >= S_FRAMES_PER_TURN)
            break;
        while (conn->state == S_STREAMING && s_out_pending (conn) < S_OUT_LOW
               && frames < S_FRAMES_PER_TURN) {
            s_frame (self, conn);
            frames++;
            if (frames % 8 == 0)
                break;  //  write soon after stamping
        }
    }
    if (conn->state == S_FLUSHING && s_out_pending (conn) == 0) {
        if (!conn->keep_alive) {
            s_conn_close (self, conn);
            return false;
        }
        conn->state = S_READING;
        conn->continued = false;
        if (conn->out_cap > 65536) {
            free (conn->out);
            conn->out = NULL;
            conn->out_cap = 0;
        }
        if (conn->in_len > 0)
            return s_handle_input (self, conn);  //  a pipelined request
    }
    s_arm (self, conn, s_out_pending (conn) > 0 || conn->state == S_STREAMING);
    return true;
}

//  --------------------------------------------------------------------------
//  Requests

//  The value of header name in the block [start, end), or NULL; *size its length.
static const char *
s_header (const char *start, const char *end, const char *name, size_t *size)
{
    size_t len = strlen (name);
    const char *line = memchr (start, '\n', (size_t) (end - start));
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr (line, '\n', (size_t) (end - line));
        if (!eol)
            break;
        if ((size_t) (eol - line) > len && line[len] == ':'
            && strncasecmp (line, name, len) == 0) {
            const char *value = line + len + 1;
            while (value < eol && (*value == ' ' || *value == '\t'))
                value++;
            const char *stop = eol;
            while (stop > value && (stop[-1] == '\r' || stop[-1] == ' '))
                stop--;
            *size = (size_t) (stop - value);
            return value;
        }
        line = eol;
    }
    return NULL;
}

//  Measure (and, with apply, decode in place) a chunked body starting at body.
//  Returns the raw bytes it takes, 0 while incomplete, -1 when malformed; *size is
//  the decoded length.
static long
s_dechunk (char *body, size_t avail, bool apply, size_t *size)
{
    size_t in = 0, out = 0;
    while (true) {
        char *eol = memmem (body + in, avail - in, "\r\n", 2);
        if (!eol)
            return avail - in > 32 ? -1 : 0;
        char *stop = NULL;
        unsigned long chunk = strtoul (body + in, &stop, 16);
        if (stop == body + in || chunk > S_BODY_MAX)
            return -1;
        size_t data = (size_t) (eol - body) + 2;
        if (chunk == 0) {
            char *end = memmem (body + data - 2, avail - data + 2, "\r\n\r\n", 4);
            if (!end)
                return 0;
            *size = out;
            return (long) (end - body) + 4;
        }
        if (avail < data + chunk + 2)
            return 0;
        if (apply)
            memmove (body + out, body + data, chunk);
        out += chunk;
        in = data + chunk + 2;
    }
}

//  Where the value of "key" starts in the NUL-terminated JSON text, or NULL.
static const char *
s_json_value (const char *json, const char *key)
{
    char quoted[64];
    snprintf (quoted, sizeof quoted, "\"%s\"", key);
    const char *at = strstr (json, quoted);
    if (!at)
        return NULL;
    at += strlen (quoted);
    while (*at == ' ' || *at == '\t' || *at == '\r' || *at == '\n')
        at++;
    if (*at != ':')
        return NULL;
    at++;
    while (*at == ' ' || *at == '\t' || *at == '\r' || *at == '\n')
        at++;
    return at;
}

//  Is the request's Authorization the key (any, without --api-key)? Answers 401
//  when not.
static bool
s_authorized (s_server_t *self, s_conn_t *conn, const char *auth, size_t auth_size)
{
    size_t key_size = self->cfg.api_key ? strlen (self->cfg.api_key) : 0;
    if (self->cfg.api_key
        && (!auth || auth_size != key_size + 7 || strncmp (auth, "Bearer ", 7) != 0
            || memcmp (auth + 7, self->cfg.api_key, key_size) != 0)) {
        self->unauthorized++;
        s_respond_error (self, conn, 401, "Unauthorized", "Incorrect API key provided.",
                         "invalid_request_error", "invalid_api_key");
        return false;
    }
    return true;
}

//  The number after marker name ("name:N" after '[' or a space, as in the
//  stand-in's [[tokens:N delay_us:N]] groups), or fallback.
static int64_t
s_marker (const char *body, const char *name, int64_t fallback)
{
    size_t len = strlen (name);
    for (const char *at = strstr (body, name); at; at = strstr (at + 1, name)) {
        if (at == body || (at[-1] != '[' && at[-1] != ' ') || at[len] != ':')
            continue;
        char *stop = NULL;
        long long value = strtoll (at + len + 1, &stop, 10);
        if (stop != at + len + 1 && value >= 0)
            return value;
    }
    return fallback;
}

//  POST /v1/chat/completions: the body is NUL-terminated.
static void
s_handle_completion (s_server_t *self, s_conn_t *conn, const char *auth, size_t auth_size,
                     const char *body)
{
    if (!s_authorized (self, conn, auth, auth_size))
        return;
    const char *model = s_json_value (body, "model");
    size_t model_size = 0;
    if (model && *model == '"') {
        const char *end = model + 1;
        while (*end && *end != '"' && end - model < (long) sizeof conn->model)
            end += *end == '\\' && end[1] ? 2 : 1;
        if (*end == '"') {
            model_size = (size_t) (end - model - 1);
            model++;
        }
    }
    if (model_size == 0 || model_size >= sizeof conn->model) {
        s_respond_error (self, conn, 400, "Bad Request",
                         "you must provide a model parameter", "invalid_request_error",
                         NULL);
        return;
    }
    memcpy (conn->model, model, model_size);
    conn->model[model_size] = 0;
    const char *stream = s_json_value (body, "stream");
    const char *usage = s_json_value (body, "include_usage");
    conn->usage = usage && strncmp (usage, "true", 4) == 0;
    conn->tokens = (int) s_marker (body, "tokens", self->cfg.tokens);
    if (conn->tokens > 1000000)
        conn->tokens = 1000000;
    conn->delay_us = s_marker (body, "delay_us", self->cfg.delay_us);
    conn->created = s_realtime_us () / 1000000;
    conn->prompt_tokens = 1;
    for (const char *p = body; *p; p++)
        conn->prompt_tokens += *p == ' ';
    snprintf (conn->id, sizeof conn->id, "chatcmpl-bench%015" PRIu64, ++self->sequence);
    conn->head_len = (size_t) s_chunk_head (conn, conn->head, sizeof conn->head);
    assert (conn->head_len < sizeof conn->head);
    if (!stream || strncmp (stream, "true", 4) != 0) {
        //  Not streamed: the whole completion at once.
        size_t size = 1024 + (size_t) conn->tokens * 32;
        char *text = malloc (size);
        assert (text);
        int n = snprintf (
            text, size,
            "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRId64
            ",\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\","
            "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"",
            conn->id, conn->created, conn->model);
        int64_t now = s_realtime_us ();
        for (int i = 1; i <= conn->tokens; i++)
            n += snprintf (text + n, size - (size_t) n, " t%d@%" PRId64, i, now);
        snprintf (text + n, size - (size_t) n,
                  "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                  "\"total_tokens\":%d}}",
                  conn->prompt_tokens, conn->tokens, conn->prompt_tokens + conn->tokens);
        s_respond (self, conn, 200, "OK", text);
        free (text);
        return;
    }
    char head[512];
    int n = snprintf (
        head, sizeof head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
        "Connection: %s\r\nopenai-processing-ms: 0\r\n"
        "x-request-id: req_bench%" PRIu64 "\r\n\r\n",
        conn->keep_alive ? "keep-alive" : "close", self->sequence);
    s_out_append (conn, head, (size_t) n);
    conn->state = S_STREAMING;
    conn->next = 0;
    self->streaming++;
    self->started++;
}

//  Open the gate: every held stream goes on. Streams with a delay are spread over
//  one delay, so that they do not all tick together.
static int
s_release (s_server_t *self)
{
    self->cfg.gate_closed = false;
    int released = 0, count = self->held.size;
    int64_t now = s_monotonic_us ();
    while (self->held.head) {
        s_conn_t *conn = self->held.head;
        s_list_remove (&self->held, conn);
        if (conn->delay_us > 0) {
            conn->state = S_WAITING;
            conn->due_us = now + conn->delay_us * released / count;
            s_list_insert_due (&self->waiting, conn);
        }
        else {
            conn->state = S_STREAMING;
            s_arm (self, conn, true);
        }
        released++;
    }
    return released;
}

//  One complete request is at the start of conn->in: answer it.
static void
s_dispatch (s_server_t *self, s_conn_t *conn, const char *method, const char *path,
            size_t path_size, const char *auth, size_t auth_size, char *body)
{
    char answer[1024];
#define S_IS(m, p)                                                                       \
    (strcmp (method, m) == 0 && path_size == strlen (p)                                  \
     && memcmp (path, p, path_size) == 0)
    if (S_IS ("POST", "/v1/chat/completions"))
        s_handle_completion (self, conn, auth, auth_size, body);
    else if (S_IS ("GET", "/v1/models")) {
        if (!s_authorized (self, conn, auth, auth_size))
            return;
        snprintf (answer, sizeof answer,
                  "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\","
                  "\"created\":1700000000,\"owned_by\":\"bench\"}]}",
                  self->cfg.model);
        s_respond (self, conn, 200, "OK", answer);
    }
    else if (S_IS ("POST", "/_bench/hold")) {
        self->cfg.gate_closed = true;
        s_respond (self, conn, 200, "OK", "{\"gate\":\"closed\"}");
    }
    else if (S_IS ("POST", "/_bench/release")) {
        int released = s_release (self);
        snprintf (answer, sizeof answer, "{\"gate\":\"open\",\"released\":%d}", released);
        s_respond (self, conn, 200, "OK", answer);
    }
    else if (S_IS ("GET", "/_bench/stats")) {
        snprintf (answer, sizeof answer,
                  "{\"open\":%d,\"streaming\":%d,\"held\":%d,\"waiting\":%d,"
                  "\"started\":%" PRIu64 ",\"completed\":%" PRIu64
                  ",\"disconnected\":%" PRIu64 ",\"tokens_sent\":%" PRIu64
                  ",\"requests\":%" PRIu64 ",\"unauthorized\":%" PRIu64
                  ",\"gate\":\"%s\"}",
                  self->open, self->streaming, self->held.size, self->waiting.size,
                  self->started, self->completed, self->disconnected, self->tokens_sent,
                  self->requests, self->unauthorized,
                  self->cfg.gate_closed ? "closed" : "open");
        s_respond (self, conn, 200, "OK", answer);
    }
    else {
        char message[160];
        snprintf (message, sizeof message, "Unknown request URL: %s %.*s.", method,
                  (int) (path_size < 100 ? path_size : 100), path);
        for (char *c = message; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char) *c < 0x20)
                *c = '?';
        s_respond_error (self, conn, 404, "Not Found", message, "invalid_request_error",
                         "unknown_url");
    }
#undef S_IS
}

//  Parse and answer the request at the start of conn->in, if it is complete.
//  Returns false when the connection was closed.
static bool
s_handle_input (s_server_t *self, s_conn_t *conn)
{
    if (conn->state != S_READING || conn->in_len == 0)
        return true;
    char *end = memmem (conn->in, conn->in_len, "\r\n\r\n", 4);
    if (!end) {
        if (conn->in_len > S_HEADER_MAX) {
            conn->keep_alive = false;
            s_respond_error (self, conn, 431, "Request Header Fields Too Large",
                             "header too large", "invalid_request_error", NULL);
            return s_pump (self, conn);
        }
        return true;
    }
    size_t header_size = (size_t) (end - conn->in) + 4;
    const char *sp1 = memchr (conn->in, ' ', header_size);
    const char *sp2 = sp1 ? memchr (sp1 + 1, ' ',
                                    header_size - (size_t) (sp1 + 1 - conn->in))
                          : NULL;
    if (!sp1 || !sp2 || sp1 - conn->in > 15) {
        conn->keep_alive = false;
        s_respond_error (self, conn, 400, "Bad Request", "bad request line",
                         "invalid_request_error", NULL);
        return s_pump (self, conn);
    }
    char method[16];
    memcpy (method, conn->in, (size_t) (sp1 - conn->in));
    method[sp1 - conn->in] = 0;
    const char *path = sp1 + 1;
    size_t path_size = (size_t) (sp2 - path);
    const char *query = memchr (path, '?', path_size);
    if (query)
        path_size = (size_t) (query - path);
    bool http10 = strncmp (sp2 + 1, "HTTP/1.0", 8) == 0;
    size_t size = 0;
    const char *value = s_header (conn->in, end + 2, "connection", &size);
    if (http10)
        conn->keep_alive = value && size == 10
                           && strncasecmp (value, "keep-alive", 10) == 0;
    else
        conn->keep_alive = !(value && size == 5 && strncasecmp (value, "close", 5) == 0);
    size_t auth_size = 0;
    const char *auth = s_header (conn->in, end + 2, "authorization", &auth_size);
    size_t body_size = 0, raw_size = 0;
    value = s_header (conn->in, end + 2, "transfer-encoding", &size);
    bool chunked = value && size >= 7
                   && strncasecmp (value + size - 7, "chunked", 7) == 0;
    value = s_header (conn->in, end + 2, "content-length", &size);
    if (!chunked && value) {
        char digits[24];
        if (size == 0 || size >= sizeof digits) {
            conn->keep_alive = false;
            s_respond_error (self, conn, 400, "Bad Request", "bad Content-Length",
                             "invalid_request_error", NULL);
            return s_pump (self, conn);
        }
        memcpy (digits, value, size);
        digits[size] = 0;
        char *stop = NULL;
        unsigned long long length = strtoull (digits, &stop, 10);
        if (*stop || length > S_BODY_MAX) {
            conn->keep_alive = false;
            s_respond_error (self, conn, 413, "Payload Too Large", "body too large",
                             "invalid_request_error", NULL);
            return s_pump (self, conn);
        }
        body_size = raw_size = (size_t) length;
    }
    size_t avail = conn->in_len - header_size;
    bool complete = chunked ? false : avail >= raw_size;
    if (chunked) {
        long took = s_dechunk (conn->in + header_size, avail, false, &body_size);
        if (took > 0)
            s_dechunk (conn->in + header_size, avail, true, &body_size);
        if (took < 0) {
            conn->keep_alive = false;
            s_respond_error (self, conn, 400, "Bad Request", "bad chunked body",
                             "invalid_request_error", NULL);
            return s_pump (self, conn);
        }
        complete = took > 0;
        raw_size = (size_t) took;
    }
    if (!complete) {
        value = s_header (conn->in, end + 2, "expect", &size);
        if (value && !conn->continued && size == 12
            && strncasecmp (value, "100-continue", 12) == 0) {
            s_out_append (conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            conn->continued = true;
            return s_pump (self, conn);
        }
        if (conn->in_len > S_HEADER_MAX + S_BODY_MAX) {
            s_conn_close (self, conn);
            return false;
        }
        return true;
    }
    //  The body, NUL-terminated over its first byte after (restored below).
    char *body = conn->in + header_size;
    char saved = body[body_size];
    body[body_size] = 0;
    s_dispatch (self, conn, method, path, path_size, auth, auth_size, body);
    body[body_size] = saved;
    size_t used = header_size + raw_size;
    memmove (conn->in, conn->in + used, conn->in_len - used);
    conn->in_len -= used;
    if (conn->in_len == 0 && conn->in_cap > 65536) {
        free (conn->in);
        conn->in = NULL;
        conn->in_cap = 0;
    }
    return s_pump (self, conn);
}

//  The socket is readable: read what is there. Returns false when it closed.
static bool
s_read (s_server_t *self, s_conn_t *conn)
{
    while (true) {
        if (conn->in_cap - conn->in_len < 4096) {
            size_t cap = conn->in_cap ? conn->in_cap * 2 : 8192;
            conn->in = realloc (conn->in, cap + 1);  //  room for a NUL after a body
            assert (conn->in);
            conn->in_cap = cap;
        }
        ssize_t n = recv (conn->fd, conn->in + conn->in_len, conn->in_cap - conn->in_len,
                          0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            s_conn_close (self, conn);
            return false;
        }
        conn->in_len += (size_t) n;
        if (conn->in_len > S_HEADER_MAX + S_BODY_MAX) {
            s_conn_close (self, conn);
            return false;
        }
    }
    return s_handle_input (self, conn);
}

static void
s_accept (s_server_t *self)
{
    while (true) {
        int fd = accept4 (self->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf (stderr, "bench-llm-upstream: out of file descriptors\n");
            return;
        }
        int one = 1;
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s_conn_t *conn = calloc (1, sizeof *conn);
        assert (conn);
        conn->fd = fd;
        conn->state = S_READING;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = conn};
        if (epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close (fd);
            free (conn);
            continue;
        }
        self->open++;
    }
}

//  The timer fired: streams whose delay is over go on.
static void
s_timer_fired (s_server_t *self)
{
    uint64_t expirations;
    if (read (self->timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    int64_t now = s_monotonic_us ();
    while (self->waiting.head && self->waiting.head->due_us <= now) {
        s_conn_t *conn = self->waiting.head;
        s_list_remove (&self->waiting, conn);
        conn->state = S_STREAMING;
        s_pump (self, conn);
    }
}

//  --------------------------------------------------------------------------
//  Set-up and the loop

static int
s_listen (s_server_t *self)
{
    self->listener = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->listener < 0)
        return -1;
    int one = 1;
    setsockopt (self->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (self->cfg.port)};
    if (inet_pton (AF_INET, self->cfg.host, &addr.sin_addr) != 1) {
        fprintf (stderr, "bench-llm-upstream: bad --host %s\n", self->cfg.host);
        return -1;
    }
    if (bind (self->listener, (struct sockaddr *) &addr, sizeof addr) != 0
        || listen (self->listener, 65535) != 0) {
        perror ("bench-llm-upstream: bind");
        return -1;
    }
    socklen_t len = sizeof addr;
    getsockname (self->listener, (struct sockaddr *) &addr, &len);
    return ntohs (addr.sin_port);
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: bench-llm-upstream [--host H] [--port P] [--tokens N] "
                     "[--delay-us U] [--api-key KEY] [--model NAME] [--gate]\n");
}

//  Read the options; returns -1 on a bad one.
static int
s_options (s_config_t *cfg, int argc, char *argv[])
{
    *cfg = (s_config_t){.host = "127.0.0.1", .tokens = 200, .model = "bench-model"};
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp (name, "--gate") == 0) {
            cfg->gate_closed = true;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        const char *value = argv[++i];
        char *stop = NULL;
        long long number = strtoll (value, &stop, 10);
        bool numeric = stop != value && *stop == 0 && number >= 0;
        if (strcmp (name, "--host") == 0)
            cfg->host = value;
        else if (strcmp (name, "--port") == 0 && numeric && number < 65536)
            cfg->port = (int) number;
        else if (strcmp (name, "--tokens") == 0 && numeric && number <= 1000000)
            cfg->tokens = (int) number;
        else if (strcmp (name, "--delay-us") == 0 && numeric)
            cfg->delay_us = number;
        else if (strcmp (name, "--api-key") == 0)
            cfg->api_key = value;
        else if (strcmp (name, "--model") == 0 && strlen (value) < 128
                 && !strpbrk (value, "\"\\"))
            cfg->model = value;
        else
            return -1;
    }
    return 0;
}

int
main (int argc, char *argv[])
{
    s_server_t self;
    memset (&self, 0, sizeof self);
    if (s_options (&self.cfg, argc, argv) != 0) {
        s_usage ();
        return 2;
    }
    //  As many descriptors as we may have.
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGINT);
    sigprocmask (SIG_BLOCK, &mask, NULL);
    signal (SIGPIPE, SIG_IGN);
    self.signals = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    self.timer = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    self.epoll = epoll_create1 (EPOLL_CLOEXEC);
    int port = s_listen (&self);
    if (port < 0 || self.signals < 0 || self.timer < 0 || self.epoll < 0)
        return 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *) &s_tag_listener};
    epoll_ctl (self.epoll, EPOLL_CTL_ADD, self.listener, &ev);
    ev.data.ptr = (void *) &s_tag_timer;
    epoll_ctl (self.epoll, EPOLL_CTL_ADD, self.timer, &ev);
    ev.data.ptr = (void *) &s_tag_signals;
    epoll_ctl (self.epoll, EPOLL_CTL_ADD, self.signals, &ev);
    printf ("listening %d\n", port);
    fflush (stdout);

    struct epoll_event events[S_EVENTS];
    while (!self.terminated) {
        int n = epoll_wait (self.epoll, events, S_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        bool timers = false;
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &s_tag_listener)
                s_accept (&self);
            else if (tag == &s_tag_timer)
                timers = true;
            else if (tag == &s_tag_signals)
                self.terminated = true;
            else {
                s_conn_t *conn = tag;
                if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    if (!s_read (&self, conn))
                        continue;
                if (events[i].events & EPOLLOUT)
                    s_pump (&self, conn);
            }
        }
        if (timers)
            s_timer_fired (&self);
        s_timer_update (&self);
    }
    fprintf (stderr,
             "bench-llm-upstream: %" PRIu64 " streams, %" PRIu64 " completed, %" PRIu64
             " disconnected, %" PRIu64 " tokens\n",
             self.started, self.completed, self.disconnected, self.tokens_sent);
    return 0;
}
