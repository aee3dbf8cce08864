/*  bench-streams: N concurrent SSE streams through the edge (edge -> chat ->
    agents -> an OpenAI-style upstream) against the same N streams read straight
    from the upstream, in one run. Used by tools/bench/bench-streams, which starts
    the stack and bench-llm-upstream (bench_llm_upstream.c); bench_sse.c reads
    the streams.

    Each token from bench-llm-upstream carries its send time (" t<i>@<usec>"), so
    the latency of a token is its arrival time minus that stamp, on the same clock.
    A run opens N connections, sends N requests at once and waits until every
    stream has its first token while the upstream holds the rest (its gate); then
    it reads the processes' memory, opens the gate, and every stream gets its
    remaining tokens. When no stream gets a first token for --gate-stall-s (5 s,
    once one has: the rest wait in a queue somewhere), the gate opens anyway;
    open_at_gate and upstream_open_at_gate say how many streams were open then.

    Measured per run: time to first token (request written -> first token read),
    latency of tokens 2..T, tokens per second from the gate opening to the last
    token, errors; through the edge also the RSS and CPU of the named processes.
    First --warmup W single streams through the edge (not counted), then
    --sequential S single streams each way: the time to first token of an idle
    stack. Requests carry the upstream's markers ([[tokens:T delay_us:U]]):
    --delay-ms D paces the concurrent runs' tokens (after the gate the streams
    are spread over one delay). --ramp-s R spreads the concurrent runs' requests
    over R seconds (each connects and sends at its time) instead of all at once.

        bench-streams --n N --upstream http://127.0.0.1:P [--api-key KEY]
                      [--edge http://127.0.0.1:P --token JWT --conversations FILE]
                      [--pid NAME=PID]... [--extra-pid NAME=PID]...
                      [--extra-tree NAME=PID]... [--label NAME]
                      [--tokens T] [--warmup W] [--sequential S] [--delay-ms D]
                      [--ramp-s R] [--gate-stall-s S] [--timeout-s S]
                      [--connect-window W] [--no-reference]
    --pid processes are summed into mem_per_stream; --extra-pid ones are reported
    alone, --extra-tree ones with their children (PostgreSQL's backends). Prints "figure <label>_<name> <value> <unit>" lines on stdout (label
    default streams_<N>); details go to stderr. Exits 3 when a stream failed.   */
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_sse.h"

#define S_PIDS_MAX 128  //  processes watched
#define S_EVENTS 1024   //  epoll events per wait

typedef struct {
    char name[32];      //  process name for figures
    int pid;            //  its pid
    bool summed;        //  part of mem_per_stream and the CPU sums
    bool tree;          //  with its child processes (PostgreSQL's backends)
    long rss_kib[3];    //  VmRSS before, all open, after
    long hwm_kib;       //  VmHWM after: the most it held since before (s_peak_reset)
    long cpu_ticks[3];  //  utime + stime at start, all open, end
} s_proc_t;

typedef struct {
    int n;                        //  concurrent streams
    int tokens;                   //  tokens the upstream sends per stream
    int sequential;               //  single idle streams each way
    int warmup;                   //  single edge streams before anything, not counted
    int timeout_s;                //  deadline of a run
    int delay_ms;                 //  the upstream's delay per token in concurrent runs
    int stall_s;                  //  the gate opens after this long without progress
    int ramp_s;                   //  concurrent runs spread their requests over this
    char marker[64];              //  the marker asking for it in this run's requests
    int window;                   //  connects in progress at once
    bool reference;               //  run the direct reference
    const char *label;            //  figure prefix
    struct sockaddr_in upstream;  //  the upstream's address
    const char *upstream_text;    //  its host:port (Host header)
    const char *api_key;          //  upstream key
    struct sockaddr_in edge;      //  the edge's address
    const char *edge_text;        //  host:port
    bool has_edge;                //  --edge given
    const char *token;            //  edge access token
    char **conversations;         //  conversation ids, at least n
    int conversation_count;       //  ids read
    s_proc_t procs[S_PIDS_MAX];   //  processes watched
    int proc_count;               //  processes in procs
    char *buffer;                 //  receive buffer, shared
    size_t buffer_size;           //  its size
} s_bench_t;

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  --------------------------------------------------------------------------
//  Processes: RSS and CPU from /proc

//  A "Vm...:" line of /proc/<pid>/status in KiB, or -1.
static long
s_status_kib (int pid, const char *key)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kib = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, key, strlen (key)) == 0) {
            kib = strtol (line + strlen (key), NULL, 10);
            break;
        }
    fclose (file);
    return kib;
}

static long
s_rss_kib (int pid)
{
    return s_status_kib (pid, "VmRSS:");
}

//  Field number field (from 1, as in proc(5)) of /proc/<pid>/stat, or -1.
static long
s_stat_field (int pid, int field)
{
    char path[64], text[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t size = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text[size] = 0;
    //  After "(comm)" come the fields from the third on.
    const char *at = strrchr (text, ')');
    for (int i = 3; at && i <= field; i++) {
        at = strchr (at, ' ');
        if (at)
            at++;
    }
    return at ? strtol (at, NULL, 10) : -1;
}

//  User and system CPU time of pid in clock ticks, or -1.
static long
s_cpu_ticks (int pid)
{
    long utime = s_stat_field (pid, 14), stime = s_stat_field (pid, 15);
    return utime < 0 || stime < 0 ? -1 : utime + stime;
}

//  Start pid's VmHWM over from its RSS now (proc(5), clear_refs "5"), so that the
//  peak read after the run is the run's; -1 (and the peak is the lifetime's)
//  where that is not allowed.
static int
s_peak_reset (int pid)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/clear_refs", pid);
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    int rc = fputs ("5", file) < 0 ? -1 : 0;
    return fclose (file) || rc ? -1 : 0;
}

//  Sample every watched process into slot (0 before, 1 all open, 2 after); a
//  tree process counts its children too (the ones alive at each sample).
static void
s_sample (s_bench_t *self, int slot)
{
    for (int i = 0; i < self->proc_count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (slot == 0 && !proc->tree)
            s_peak_reset (proc->pid);
        proc->rss_kib[slot] = s_rss_kib (proc->pid);
        proc->cpu_ticks[slot] = s_cpu_ticks (proc->pid);
        if (slot == 2)
            proc->hwm_kib = s_status_kib (proc->pid, "VmHWM:");
        if (!proc->tree || proc->rss_kib[slot] < 0)
            continue;
        DIR *dir = opendir ("/proc");
        struct dirent *entry;
        while (dir && (entry = readdir (dir))) {
            int child = (int) strtol (entry->d_name, NULL, 10);
            if (child <= 0 || s_stat_field (child, 4) != proc->pid)
                continue;
            long rss = s_rss_kib (child), cpu = s_cpu_ticks (child);
            proc->rss_kib[slot] += rss > 0 ? rss : 0;
            proc->cpu_ticks[slot] += cpu > 0 ? cpu : 0;
        }
        if (dir)
            closedir (dir);
    }
}

//  --------------------------------------------------------------------------
//  The upstream's gate: one blocking request each

//  A request to the upstream's control routes ("POST /_bench/hold"); returns 0 when
//  it answered 200, with the answer in reply (when given).
static int
s_control_call (s_bench_t *self, const char *what, char *reply, size_t reply_size)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char request[256], answer[1024];
    int n = snprintf (request, sizeof request,
                      "%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n",
                      what, self->upstream_text);
    int rc = -1;
    size_t size = 0;
    if (connect (fd, (struct sockaddr *) &self->upstream, sizeof self->upstream) == 0
        && send (fd, request, (size_t) n, MSG_NOSIGNAL) == n) {
        ssize_t got;
        while (size < sizeof answer - 1
               && (got = recv (fd, answer + size, sizeof answer - 1 - size, 0)) > 0)
            size += (size_t) got;
        answer[size] = 0;
        rc = size > 12 && strncmp (answer + 9, "200", 3) == 0 ? 0 : -1;
    }
    close (fd);
    if (rc != 0)
        fprintf (stderr, "bench-streams: %s to the upstream failed\n", what);
    if (reply && reply_size > 0) {
        const char *body = strstr (answer, "\r\n\r\n");
        snprintf (reply, reply_size, "%s", rc == 0 && body ? body + 4 : "");
    }
    return rc;
}

static int
s_control (s_bench_t *self, const char *path)
{
    char what[128];
    snprintf (what, sizeof what, "POST %s", path);
    return s_control_call (self, what, NULL, 0);
}

//  The number of streams the upstream holds at its gate, or -1.
static int
s_upstream_held (s_bench_t *self)
{
    char reply[512];
    if (s_control_call (self, "GET /_bench/stats", reply, sizeof reply) != 0)
        return -1;
    const char *held = strstr (reply, "\"held\":");
    return held ? (int) strtol (held + 7, NULL, 10) : -1;
}

//  --------------------------------------------------------------------------
//  A run of n streams

static int
s_connect (s_bench_t *self, bench_sse_run_t *run, bench_sse_stream_t *stream)
{
    stream->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (stream->fd < 0) {
        bench_sse_fail (run, stream, BENCH_SSE_ERR_CONNECT, strerror (errno));
        return -1;
    }
    int one = 1;
    setsockopt (stream->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct sockaddr_in *to = run->mode == BENCH_SSE_EDGE ? &self->edge
                                                               : &self->upstream;
    if (connect (stream->fd, (const struct sockaddr *) to, sizeof *to) != 0
        && errno != EINPROGRESS) {
        bench_sse_fail (run, stream, BENCH_SSE_ERR_CONNECT, strerror (errno));
        return -1;
    }
    stream->state = BENCH_SSE_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = stream};
    epoll_ctl (run->epoll, EPOLL_CTL_ADD, stream->fd, &ev);
    return 0;
}

//  Write the stream's request (all at once, the rest on EPOLLOUT).
static void
s_send (s_bench_t *self, bench_sse_run_t *run, bench_sse_stream_t *stream)
{
    if (!stream->request) {
        char body[512], head[1024];
        int body_size, head_size;
        if (run->mode == BENCH_SSE_EDGE) {
            body_size = snprintf (body, sizeof body,
                                  "{\"content\":\"bench stream %d%s\"}", stream->index,
                                  self->marker);
            head_size = snprintf (head, sizeof head,
                                  "POST /api/v1/conversations/%s/messages HTTP/1.1\r\n"
                                  "Host: %s\r\nAuthorization: Bearer %s\r\n",
                                  self->conversations[stream->index], self->edge_text,
                                  self->token);
        }
        else {
            body_size = snprintf (body, sizeof body,
                                  "{\"model\":\"bench-model\",\"stream\":true,"
                                  "\"stream_options\":{\"include_usage\":true},"
                                  "\"messages\":[{\"role\":\"system\",\"content\":"
                                  "\"You are a benchmark.\"},{\"role\":\"user\","
                                  "\"content\":\"bench stream %d%s\"}]}",
                                  stream->index, self->marker);
            head_size = snprintf (head, sizeof head,
                                  "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                                  "Authorization: Bearer %s\r\n",
                                  self->upstream_text, self->api_key);
        }
        size_t cap = (size_t) head_size + (size_t) body_size + 200;
        stream->request = malloc (cap);
        assert (stream->request);
        stream->request_size = (size_t) snprintf (
            stream->request, cap,
            "%sAccept: text/event-stream\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
            head, body_size, body);
        stream->sent_us = s_now_us ();
        if (!run->start_us)
            run->start_us = stream->sent_us;
    }
    ssize_t n = send (stream->fd, stream->request, stream->request_size, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        bench_sse_fail (run, stream, BENCH_SSE_ERR_CLOSED, "request not sent");
        return;
    }
    if (n > 0 && (size_t) n < stream->request_size) {
        memmove (stream->request, stream->request + n, stream->request_size - (size_t) n);
        stream->request_size -= (size_t) n;
    }
    else if (n > 0) {
        free (stream->request);
        stream->request = NULL;
        stream->request_size = 0;
    }
    stream->state = stream->request ? BENCH_SSE_SENDING : BENCH_SSE_HEADERS;
    if (!stream->carry) {
        stream->carry = malloc (BENCH_SSE_CARRY_MAX + 1);
        stream->carry_cap = BENCH_SSE_CARRY_MAX;
        assert (stream->carry);
    }
    struct epoll_event ev = {.events = stream->request ? EPOLLOUT : EPOLLIN,
                             .data.ptr = stream};
    epoll_ctl (run->epoll, EPOLL_CTL_MOD, stream->fd, &ev);
}

//  Every stream has its first token or has failed, or none came for a while:
//  sample, open the gate.
static void
s_all_open (s_bench_t *self, bench_sse_run_t *run, bool gated)
{
    run->open_us = s_now_us ();
    run->open_at_gate = run->ttft_size;
    if (run->mode == BENCH_SSE_EDGE)
        s_sample (self, 1);
    run->held_at_gate = gated ? s_upstream_held (self) : -1;
    if (gated)
        s_control (self, "/_bench/release");
    run->release_us = s_now_us ();
    run->released = true;
    struct timespec mono;
    clock_gettime (CLOCK_MONOTONIC, &mono);
    if (run->n > 1)  //  not the single warm-up streams
        fprintf (stderr, "bench-streams: %s: gate opened at monotonic %.6f s\n",
                 run->mode == BENCH_SSE_EDGE ? "edge" : "direct",
                 (double) mono.tv_sec + (double) mono.tv_nsec / 1e9);
}

//  Run n streams one way (gated: the upstream holds every stream after its first
//  token until all n have one). Fills run; returns 0, or -1 when the run could not
//  start at all.
static int
s_run (s_bench_t *self, bench_sse_run_t *run, bench_sse_mode_t mode, int n, int offset,
       bool gated)
{
    memset (run, 0, sizeof *run);
    run->mode = mode;
    run->tokens_expected = self->tokens;
    run->n = n;
    run->ttft = calloc ((size_t) n, sizeof (int64_t));
    run->tpot = calloc ((size_t) n, sizeof (double));
    run->tail = calloc ((size_t) n, sizeof (double));
    bench_sse_stream_t *streams = calloc ((size_t) n, sizeof (bench_sse_stream_t));
    assert (run->ttft && run->tpot && run->tail && streams);
    if (gated && self->delay_ms > 0)
        snprintf (self->marker, sizeof self->marker, " [[tokens:%d delay_us:%d]]",
                  self->tokens, self->delay_ms * 1000);
    else
        snprintf (self->marker, sizeof self->marker, " [[tokens:%d]]", self->tokens);
    if (gated && s_control (self, "/_bench/hold") != 0)
        return -1;
    if (!gated)
        s_control (self, "/_bench/release");
    if (mode == BENCH_SSE_EDGE)
        s_sample (self, 0);
    run->epoll = epoll_create1 (EPOLL_CLOEXEC);
    int64_t deadline = s_now_us () + (int64_t) self->timeout_s * 1000000;
    int next = 0, connecting = 0, over = 0, seen_open = 0;
    int64_t progress_us = s_now_us ();
    //  With a ramp, stream i connects at i * ramp / n and sends at once.
    int64_t ramp_us = gated ? (int64_t) self->ramp_s * 1000000 : 0;
    int64_t ramp_start = s_now_us ();
    bool burst = ramp_us > 0;
    struct epoll_event events[S_EVENTS];
    for (int i = 0; i < n; i++) {
        streams[i].fd = -1;
        streams[i].index = offset + i;
    }
    while (over < n) {
        //  Connect at most a window at a time; then every request at once.
        while (next < n && connecting < self->window
               && (ramp_us == 0 || s_now_us () >= ramp_start + ramp_us * next / n)) {
            if (s_connect (self, run, &streams[next]) == 0)
                connecting++;
            next++;
        }
        if (!burst && next == n && connecting == 0) {
            burst = true;
            progress_us = s_now_us ();
            for (int i = 0; i < n; i++)
                if (streams[i].state == BENCH_SSE_CONNECTED)
                    s_send (self, run, &streams[i]);
        }
        int64_t now = s_now_us ();
        if (now > deadline) {
            for (int i = 0; i < n; i++)
                bench_sse_fail (run, &streams[i], BENCH_SSE_ERR_TIMEOUT, "deadline");
            break;
        }
        int ready = epoll_wait (run->epoll, events, S_EVENTS, next < n ? 1 : 100);
        now = s_now_us ();
        for (int e = 0; e < ready; e++) {
            bench_sse_stream_t *stream = events[e].data.ptr;
            if (stream->state == BENCH_SSE_CONNECTING) {
                connecting--;
                int error = 0;
                socklen_t len = sizeof error;
                getsockopt (stream->fd, SOL_SOCKET, SO_ERROR, &error, &len);
                if (error) {
                    bench_sse_fail (run, stream, BENCH_SSE_ERR_CONNECT, strerror (error));
                    continue;
                }
                stream->state = BENCH_SSE_CONNECTED;
                struct epoll_event ev = {.events = 0, .data.ptr = stream};
                epoll_ctl (run->epoll, EPOLL_CTL_MOD, stream->fd, &ev);
                if (ramp_us > 0) {
                    s_send (self, run, stream);
                    progress_us = now;
                }
                continue;
            }
            if (stream->state == BENCH_SSE_SENDING) {
                s_send (self, run, stream);
                continue;
            }
            if (stream->state == BENCH_SSE_CONNECTED || stream->state == BENCH_SSE_OVER)
                continue;
            while (stream->state == BENCH_SSE_HEADERS
                   || stream->state == BENCH_SSE_BODY) {
                ssize_t got = recv (stream->fd, self->buffer, self->buffer_size, 0);
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (got <= 0) {
                    char detail[64];
                    snprintf (detail, sizeof detail, "after %d tokens (%s)",
                              stream->tokens, got < 0 ? strerror (errno) : "closed");
                    bench_sse_fail (run, stream, BENCH_SSE_ERR_CLOSED, detail);
                    break;
                }
                bench_sse_received (run, stream, self->buffer, (size_t) got, now);
                if ((size_t) got < self->buffer_size)
                    break;
            }
        }
        //  Open the gate once every stream has its first token, or when no stream
        //  got one for --gate-stall-s (the rest are queued somewhere).
        over = run->over;
        if (run->open != seen_open) {
            seen_open = run->open;
            progress_us = now;
        }
        //  Before anything came back the stack may still be taking the burst in:
        //  a stall counts then only after a minute.
        int64_t stall_us = (int64_t) (run->open > 0 ? self->stall_s : 60) * 1000000;
        if (burst && !run->released && next == n && connecting == 0
            && (run->open == n || now - progress_us > stall_us)) {
            if (run->open < n)
                fprintf (
                    stderr,
                    "bench-streams: no new first token for %d s: the gate opens with "
                    "%d of %d streams open\n",
                    (int) (stall_us / 1000000), run->ttft_size, n);
            s_all_open (self, run, gated);
        }
    }
    if (!run->released)
        s_all_open (self, run, gated);
    for (int i = 0; i < n; i++) {
        if (streams[i].state != BENCH_SSE_OVER)
            bench_sse_fail (run, &streams[i], BENCH_SSE_ERR_TIMEOUT, "deadline");
        free (streams[i].carry);
        free (streams[i].request);
    }
    if (mode == BENCH_SSE_EDGE)
        s_sample (self, 2);
    close (run->epoll);
    free (streams);
    return 0;
}

//  --------------------------------------------------------------------------
//  Figures

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  The q-quantile of the run's token latencies (sorted by s_report), microseconds.
static double
s_latency_at (bench_sse_run_t *run, double q)
{
    if (run->latency_size == 0)
        return 0;
    size_t i = (size_t) (q * (double) (run->latency_size - 1) + 0.5);
    return run->latency[i];
}

static double
s_ttft_at (int64_t *ttft, int size, double q)
{
    if (size == 0)
        return 0;
    int i = (int) (q * (size - 1) + 0.5);
    return (double) ttft[i];
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  The q-quantile of n sorted samples (0 when none).
static double
s_quantile (const double *sorted, int n, double q)
{
    return n ? sorted[(int) (q * (n - 1) + 0.5)] : 0;
}

//  The q-quantile of the run's time per output token (sorted by s_summary), us.
static double
s_tpot_at (bench_sse_run_t *run, double q)
{
    return s_quantile (run->tpot, run->tpot_size, q);
}

//  The same of the time from a stream's last token to its end, us.
static double
s_tail_at (bench_sse_run_t *run, double q)
{
    return s_quantile (run->tail, run->tail_size, q);
}

static double
s_tokens_per_s (bench_sse_run_t *run)
{
    if (run->last_us <= run->release_us || run->tokens_after == 0)
        return 0;
    return (double) run->tokens_after * 1e6 / (double) (run->last_us - run->release_us);
}

static void
s_figure (s_bench_t *self, const char *name, double value, const char *unit)
{
    double size = value < 0 ? -value : value;
    if (value == (double) (int64_t) value || size >= 100)
        printf ("figure %s_%s %.0f %s\n", self->label, name, value, unit);
    else
        printf ("figure %s_%s %.*f %s\n", self->label, name, size < 10 ? 2 : 1, value,
                unit);
}

//  A run's own figures, names after prefix.
static void
s_run_figures (s_bench_t *self, const char *prefix, bench_sse_run_t *run)
{
    char name[64];
    for (int q = 0; q < 2; q++) {
        double at = q ? 0.99 : 0.5;
        snprintf (name, sizeof name, "%stoken_p%d", prefix, q ? 99 : 50);
        s_figure (self, name, s_latency_at (run, at), "us");
        snprintf (name, sizeof name, "%sttft_p%d", prefix, q ? 99 : 50);
        s_figure (self, name, s_ttft_at (run->ttft, run->ttft_size, at) / 1e3, "ms");
        snprintf (name, sizeof name, "%stpot_p%d", prefix, q ? 99 : 50);
        s_figure (self, name, s_tpot_at (run, at), "us");
        snprintf (name, sizeof name, "%send_after_last_p%d", prefix, q ? 99 : 50);
        s_figure (self, name, s_tail_at (run, at) / 1e3, "ms");
    }
    snprintf (name, sizeof name, "%stokens_per_s", prefix);
    s_figure (self, name, s_tokens_per_s (run), "tokens/s");
    snprintf (name, sizeof name, "%stokens_per_delta", prefix);
    s_figure (self, name,
              run->lines_after ? (double) run->tokens_after / (double) run->lines_after
                               : 0,
              "tokens");
    snprintf (name, sizeof name, "%serrors", prefix);
    s_figure (self, name, run->n - run->ok, "count");
}

//  Sort the samples and tell how a run went on stderr.
static void
s_summary (const char *what, bench_sse_run_t *run)
{
    qsort (run->latency, run->latency_size, sizeof (uint32_t), s_cmp_u32);
    qsort (run->ttft, (size_t) run->ttft_size, sizeof (int64_t), s_cmp_i64);
    qsort (run->tpot, (size_t) run->tpot_size, sizeof (double), s_cmp_double);
    qsort (run->tail, (size_t) run->tail_size, sizeof (double), s_cmp_double);
    fprintf (
        stderr,
        "bench-streams: %s: %d streams, %d ok, %" PRId64 " tokens; gate opened after "
        "%.2f s; ttft p50 %.1f ms p99 %.1f ms; token p50 %.0f us p99 %.0f us; "
        "%.0f tokens/s\n",
        what, run->n, run->ok, run->tokens,
        run->open_us > run->start_us ? (double) (run->open_us - run->start_us) / 1e6 : 0,
        s_ttft_at (run->ttft, run->ttft_size, 0.5) / 1e3,
        s_ttft_at (run->ttft, run->ttft_size, 0.99) / 1e3, s_latency_at (run, 0.5),
        s_latency_at (run, 0.99), s_tokens_per_s (run));
    struct timespec mono;
    clock_gettime (CLOCK_MONOTONIC, &mono);
    fprintf (stderr,
             "bench-streams: %s: last token at monotonic %.6f s; time per output token "
             "after the gate p50 %.0f us p99 %.0f us\n",
             what,
             (double) mono.tv_sec + (double) mono.tv_nsec / 1e9
                 - (double) (s_now_us () - run->last_us) / 1e6,
             s_tpot_at (run, 0.5), s_tpot_at (run, 0.99));
    if (run->failed_late)
        fprintf (stderr,
                 "bench-streams: %s: %d streams failed after all their tokens came\n",
                 what, run->failed_late);
    for (int i = 0; i < run->code_count; i++)
        fprintf (stderr, "bench-streams: %s: %d streams ended with %s, code %s\n", what,
                 run->codes[i].count, bench_sse_error_names[run->codes[i].kind],
                 run->codes[i].code);
    for (int k = 0; k < BENCH_SSE_ERR_KINDS; k++)
        if (run->errors[k])
            fprintf (stderr, "bench-streams: %s: %d %s errors, first: %s\n", what,
                     run->errors[k], bench_sse_error_names[k], run->example[k]);
}

static void
s_run_free (bench_sse_run_t *run)
{
    free (run->latency);
    free (run->ttft);
    free (run->tpot);
    free (run->tail);
    memset (run, 0, sizeof *run);
}

//  Memory and CPU of the watched processes in the edge run.
static void
s_report_procs (s_bench_t *self, bench_sse_run_t *edge)
{
    double ticks = (double) sysconf (_SC_CLK_TCK);
    long mem_sum = 0, peak_sum = 0, setup_sum = 0, token_sum = 0;
    char name[96];
    for (int i = 0; i < self->proc_count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (proc->rss_kib[0] < 0 || proc->rss_kib[1] < 0) {
            fprintf (stderr, "bench-streams: process %s (%d) is gone\n", proc->name,
                     proc->pid);
            continue;
        }
        long mem = proc->rss_kib[1] - proc->rss_kib[0];
        long peak = proc->tree || proc->hwm_kib < 0 ? -1
                                                    : proc->hwm_kib - proc->rss_kib[0];
        long setup = proc->cpu_ticks[1] - proc->cpu_ticks[0];
        long tokens = proc->cpu_ticks[2] - proc->cpu_ticks[1];
        if (proc->summed) {
            mem_sum += mem;
            peak_sum += peak > 0 ? peak : 0;
            setup_sum += setup;
            token_sum += tokens;
        }
        snprintf (name, sizeof name, "mem_per_stream_%s", proc->name);
        s_figure (self, name, (double) mem / edge->n, "KiB");
        if (peak >= 0) {
            snprintf (name, sizeof name, "mem_peak_per_stream_%s", proc->name);
            s_figure (self, name, (double) peak / edge->n, "KiB");
        }
        snprintf (name, sizeof name, "rss_open_%s", proc->name);
        s_figure (self, name, (double) proc->rss_kib[1] / 1024.0, "MiB");
        snprintf (name, sizeof name, "cpu_per_stream_%s", proc->name);
        s_figure (self, name, (double) setup * 1e6 / ticks / edge->n, "us");
        if (edge->tokens_after > 0) {
            snprintf (name, sizeof name, "cpu_per_token_%s", proc->name);
            s_figure (self, name,
                      (double) tokens * 1e6 / ticks / (double) edge->tokens_after, "us");
        }
    }
    s_figure (self, "mem_per_stream", (double) mem_sum / edge->n, "KiB");
    s_figure (self, "mem_peak_per_stream", (double) peak_sum / edge->n, "KiB");
    s_figure (self, "cpu_per_stream", (double) setup_sum * 1e6 / ticks / edge->n, "us");
    if (edge->tokens_after > 0)
        s_figure (self, "cpu_per_token",
                  (double) token_sum * 1e6 / ticks / (double) edge->tokens_after, "us");
}

//  Single streams, one at a time each way: time to first token of an idle stack.
static void
s_sequential (s_bench_t *self)
{
    int count = self->sequential;
    int64_t *direct = calloc ((size_t) count, sizeof (int64_t));
    int64_t *edge = calloc ((size_t) count, sizeof (int64_t));
    assert (direct && edge);
    int direct_size = 0, edge_size = 0, errors = 0;
    bench_sse_run_t run;
    for (int i = 0; i < count; i++) {
        s_run (self, &run, BENCH_SSE_DIRECT, 1, i % self->n, false);
        if (run.ok == 1 && run.ttft_size == 1)
            direct[direct_size++] = run.ttft[0];
        else
            s_summary ("idle direct", &run);
        s_run_free (&run);
        if (!self->has_edge)
            continue;
        s_run (self, &run, BENCH_SSE_EDGE, 1, i % self->n, false);
        if (run.ok == 1 && run.ttft_size == 1)
            edge[edge_size++] = run.ttft[0];
        else {
            errors++;
            s_summary ("idle edge", &run);
        }
        s_run_free (&run);
    }
    qsort (direct, (size_t) direct_size, sizeof (int64_t), s_cmp_i64);
    qsort (edge, (size_t) edge_size, sizeof (int64_t), s_cmp_i64);
    double d50 = s_ttft_at (direct, direct_size, 0.5) / 1e3;
    double e50 = s_ttft_at (edge, edge_size, 0.5) / 1e3;
    fprintf (stderr,
             "bench-streams: idle ttft p50: direct %.2f ms, edge %.2f ms (%d each)\n",
             d50, e50, count);
    if (self->has_edge && edge_size > 0) {
        s_figure (self, "idle_ttft_p50", e50, "ms");
        s_figure (self, "idle_ttft_overhead_p50", e50 - d50, "ms");
        s_figure (self, "idle_errors", errors, "count");
    }
    free (direct);
    free (edge);
}

//  --------------------------------------------------------------------------
//  Options

static int
s_address (const char *url, struct sockaddr_in *addr, const char **text)
{
    if (strncmp (url, "http://", 7) == 0)
        url += 7;
    char host[64];
    const char *colon = strchr (url, ':');
    if (!colon || colon - url >= (long) sizeof host)
        return -1;
    memcpy (host, url, (size_t) (colon - url));
    host[colon - url] = 0;
    char *stop = NULL;
    long port = strtol (colon + 1, &stop, 10);
    if (port <= 0 || port > 65535 || (*stop && *stop != '/'))
        return -1;
    *addr = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons ((uint16_t) port)};
    if (inet_pton (AF_INET, host, &addr->sin_addr) != 1)
        return -1;
    *text = url;
    if (*stop == '/')
        *stop = 0;
    return 0;
}

static int
s_conversations (s_bench_t *self, const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char line[128];
    int cap = 0;
    while (fgets (line, sizeof line, file)) {
        line[strcspn (line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if (self->conversation_count == cap) {
            cap = cap ? cap * 2 : 1024;
            self->conversations = realloc (self->conversations,
                                           (size_t) cap * sizeof (char *));
            assert (self->conversations);
        }
        self->conversations[self->conversation_count++] = strdup (line);
    }
    fclose (file);
    return 0;
}

static int
s_pid_option (s_bench_t *self, const char *value, bool summed, bool tree)
{
    const char *eq = strchr (value, '=');
    if (!eq || eq == value || eq - value >= 32 || self->proc_count == S_PIDS_MAX)
        return -1;
    s_proc_t *proc = &self->procs[self->proc_count++];
    memcpy (proc->name, value, (size_t) (eq - value));
    proc->name[eq - value] = 0;
    proc->pid = (int) strtol (eq + 1, NULL, 10);
    proc->summed = summed;
    proc->tree = tree;
    return proc->pid > 0 ? 0 : -1;
}

static int
s_options (s_bench_t *self, int argc, char *argv[])
{
    self->tokens = 200;
    self->sequential = 20;
    self->warmup = 5;
    self->timeout_s = 600;
    self->stall_s = 5;
    self->window = 256;
    self->reference = true;
    self->api_key = "bench-key";
    const char *upstream = NULL, *edge = NULL, *conversations = NULL;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp (name, "--no-reference") == 0) {
            self->reference = false;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        char *value = argv[++i];
        long number = strtol (value, NULL, 10);
        if (strcmp (name, "--n") == 0 && number > 0)
            self->n = (int) number;
        else if (strcmp (name, "--tokens") == 0 && number > 0)
            self->tokens = (int) number;
        else if (strcmp (name, "--sequential") == 0 && number >= 0)
            self->sequential = (int) number;
        else if (strcmp (name, "--warmup") == 0 && number >= 0)
            self->warmup = (int) number;
        else if (strcmp (name, "--gate-stall-s") == 0 && number > 0)
            self->stall_s = (int) number;
        else if (strcmp (name, "--ramp-s") == 0 && number >= 0)
            self->ramp_s = (int) number;
        else if (strcmp (name, "--delay-ms") == 0 && number >= 0)
            self->delay_ms = (int) number;
        else if (strcmp (name, "--timeout-s") == 0 && number > 0)
            self->timeout_s = (int) number;
        else if (strcmp (name, "--connect-window") == 0 && number > 0)
            self->window = (int) number;
        else if (strcmp (name, "--upstream") == 0)
            upstream = value;
        else if (strcmp (name, "--edge") == 0)
            edge = value;
        else if (strcmp (name, "--api-key") == 0)
            self->api_key = value;
        else if (strcmp (name, "--token") == 0)
            self->token = value;
        else if (strcmp (name, "--conversations") == 0)
            conversations = value;
        else if (strcmp (name, "--label") == 0)
            self->label = value;
        else if (strcmp (name, "--pid") == 0 || strcmp (name, "--extra-pid") == 0
                 || strcmp (name, "--extra-tree") == 0) {
            if (s_pid_option (self, value, strcmp (name, "--pid") == 0,
                              strcmp (name, "--extra-tree") == 0)
                != 0)
                return -1;
        }
        else
            return -1;
    }
    if (self->n <= 0 || !upstream
        || s_address (upstream, &self->upstream, &self->upstream_text) != 0)
        return -1;
    if (edge) {
        if (s_address (edge, &self->edge, &self->edge_text) != 0 || !self->token
            || !conversations)
            return -1;
        if (s_conversations (self, conversations) != 0
            || self->conversation_count < self->n) {
            fprintf (stderr, "bench-streams: %s has %d conversations, %d needed\n",
                     conversations, self->conversation_count, self->n);
            return -1;
        }
        self->has_edge = true;
    }
    return 0;
}

int
main (int argc, char *argv[])
{
    s_bench_t self;
    memset (&self, 0, sizeof self);
    if (s_options (&self, argc, argv) != 0) {
        fprintf (stderr, "usage: bench-streams --n N --upstream http://127.0.0.1:P "
                         "[--api-key KEY] [--edge http://127.0.0.1:P --token JWT "
                         "--conversations FILE] [--pid NAME=PID]... [--extra-pid "
                         "NAME=PID]... [--extra-tree NAME=PID]... [--label NAME] "
                         "[--tokens T] [--warmup W] [--sequential S] "
                         "[--delay-ms D] [--ramp-s R] [--gate-stall-s S] [--timeout-s S] "
                         "[--connect-window W] "
                         "[--no-reference]\n");
        return 2;
    }
    char label[64];
    if (!self.label) {
        snprintf (label, sizeof label, "streams_%d", self.n);
        self.label = label;
    }
    signal (SIGPIPE, SIG_IGN);
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
        if (limit.rlim_cur < (rlim_t) self.n + 64)
            fprintf (stderr, "bench-streams: only %lu file descriptors for %d streams\n",
                     (unsigned long) limit.rlim_cur, self.n);
    }
    self.buffer_size = 256 * 1024;
    self.buffer = malloc (self.buffer_size);
    assert (self.buffer);
    for (int i = 0; i < self.warmup && self.has_edge; i++) {
        bench_sse_run_t run;
        s_run (&self, &run, BENCH_SSE_EDGE, 1, i % self.n, false);
        s_run_free (&run);
    }
    if (self.sequential > 0)
        s_sequential (&self);

    bench_sse_run_t direct, edge;
    memset (&direct, 0, sizeof direct);
    memset (&edge, 0, sizeof edge);
    if (self.reference) {
        if (s_run (&self, &direct, BENCH_SSE_DIRECT, self.n, 0, true) != 0)
            return 1;
        s_summary ("direct", &direct);
        s_run_figures (&self, "ref_", &direct);
    }
    if (self.has_edge) {
        if (s_run (&self, &edge, BENCH_SSE_EDGE, self.n, 0, true) != 0)
            return 1;
        //  The streams that had their first token before the gate opened (all of
        //  them unless some waited in a queue behind the held ones).
        int early = edge.open_at_gate;
        int64_t *first = calloc ((size_t) early + 1, sizeof (int64_t));
        assert (first);
        memcpy (first, edge.ttft, (size_t) early * sizeof (int64_t));
        qsort (first, (size_t) early, sizeof (int64_t), s_cmp_i64);
        s_summary ("edge", &edge);
        s_run_figures (&self, "", &edge);
        s_figure (&self, "ttft_open_p50", s_ttft_at (first, early, 0.5) / 1e3, "ms");
        s_figure (&self, "ttft_open_p99", s_ttft_at (first, early, 0.99) / 1e3, "ms");
        free (first);
        for (int q = 0; q < 2; q++) {
            double at = q ? 0.99 : 0.5;
            char name[32];
            snprintf (name, sizeof name, "token_added_p%d", q ? 99 : 50);
            s_figure (&self, name, s_latency_at (&edge, at) - s_latency_at (&direct, at),
                      "us");
            snprintf (name, sizeof name, "tpot_added_p%d", q ? 99 : 50);
            s_figure (&self, name, s_tpot_at (&edge, at) - s_tpot_at (&direct, at), "us");
            snprintf (name, sizeof name, "ttft_overhead_p%d", q ? 99 : 50);
            s_figure (&self, name,
                      (s_ttft_at (edge.ttft, edge.ttft_size, at)
                       - s_ttft_at (direct.ttft, direct.ttft_size, at))
                          / 1e3,
                      "ms");
        }
        s_figure (&self, "gate_after", (double) (edge.open_us - edge.start_us) / 1e6,
                  "s");
        s_figure (&self, "open_at_gate", edge.open_at_gate, "streams");
        s_figure (&self, "upstream_open_at_gate", edge.held_at_gate, "streams");
        s_report_procs (&self, &edge);
    }
    int errors = (self.reference ? direct.n - direct.ok : 0) + edge.n - edge.ok;
    s_run_free (&direct);
    s_run_free (&edge);
    for (int i = 0; i < self.conversation_count; i++)
        free (self.conversations[i]);
    free (self.conversations);
    free (self.buffer);
    return errors ? 3 : 0;
}
