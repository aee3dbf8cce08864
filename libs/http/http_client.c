/*  http_client: curl multi interface driven by a czmq zloop.

    curl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when
    it next needs a call (CURLMOPT_TIMERFUNCTION); we keep those sockets in one
    epoll set, itself one zloop poller (a zloop poller per socket would make every
    pass of the loop poll() all of them: a thousand streams, a thousand fds per
    wake-up), mirror the timer as a one-shot zloop timer, and hand events back
    with curl_multi_socket_action.
    Completed transfers come out of curl_multi_info_read.

    User callbacks (on_response, on_data) run inside curl's callbacks, where curl
    must not be re-entered; so sends made there are queued and cancels are marked,
    and both are carried out right after curl_multi_socket_action returns. Idle
    timeouts are ours (curl's low-speed limit counts whole seconds): one repeating
    timer sweeps the running transfers while any has one.                         */
#include "http_client.h"
#include "http_private.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define S_EPOLL_BATCH 256  //  ready sockets taken per epoll_wait


typedef struct _s_sock_t s_sock_t;
struct _s_sock_t {
    curl_socket_t fd;  //  socket curl wants watched
    int events;        //  EPOLLIN / EPOLLOUT registered, 0 none
    s_sock_t *prev;    //  in the client's socket list
    s_sock_t *next;    //  in the client's socket list
};

typedef struct {
    http_transfer_t *head;  //  first transfer
    http_transfer_t *tail;  //  last transfer
    size_t size;            //  transfers in the list
} s_list_t;

struct _http_client_t {
    core_log_t *log;          //  where we log, may be NULL
    zloop_t *loop;            //  loop that drives us, NULL until attached
    int epoll_fd;             //  epoll set of curl's sockets
    size_t sock_count;        //  sockets in it (a zloop poller while any)
    CURLM *multi;             //  curl multi handle, owns the connection cache
    int timer_id;             //  zloop timer for curl, -1 when none
    int idle_timer_id;        //  zloop timer sweeping idle transfers, -1 none
    int64_t idle_resolution;  //  period of the idle sweep, ms
    s_list_t active;          //  transfers added to the multi handle
    s_list_t queue;           //  transfers waiting for a slot
    size_t idle_count;        //  active transfers with an idle timeout
    size_t max_active;        //  transfers running at once
    size_t max_queued;        //  transfers waiting at most
    size_t cancel_pending;    //  cancels marked while inside curl
    s_sock_t *socks;          //  sockets registered as pollers
    uint64_t next_id;         //  last request id handed out
    int in_curl;              //  depth of calls into curl that run callbacks
    int64_t now;              //  zclock_mono as the latest call into curl began
    http_pass_fn *pass_fn;    //  called after each pass of curl, or NULL
    void *pass_arg;           //  its argument
};

static void s_start_queued (http_client_t *self);

//  ---------------------------------------------------------------------------
//  Transfers

static void
s_list_append (s_list_t *list, http_transfer_t *t)
{
    t->prev = list->tail;
    t->next = NULL;
    if (list->tail)
        list->tail->next = t;
    else
        list->head = t;
    list->tail = t;
    list->size++;
}

static void
s_list_remove (s_list_t *list, http_transfer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        list->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        list->tail = t->prev;
    t->prev = t->next = NULL;
    list->size--;
}

static void
s_idle_timer_stop (http_client_t *self)
{
    if (self->idle_timer_id != -1) {
        zloop_timer_end (self->loop, self->idle_timer_id);
        self->idle_timer_id = -1;
    }
}

//  End an active transfer: take it off the multi handle (closing its connection
//  if the response was not complete), report it unless cancelled, free it, and
//  let a queued transfer take its slot. Never called from inside curl.
static void
s_finish (http_client_t *self, http_transfer_t *t, http_error_t error, const char *text)
{
    assert (!self->in_curl);
    assert (t->active);
    s_list_remove (&self->active, t);
    t->active = false;
    if (t->request->idle_ms && --self->idle_count == 0)
        s_idle_timer_stop (self);
    curl_multi_remove_handle (self->multi, t->easy);

    http_request_t *request = t->request;
    http_response_t *r = &t->response;
    r->ended = zclock_mono ();
    r->error = error;
    if (error != HTTP_OK) {
        const char *detail = t->errbuf[0] ? t->errbuf : "";
        size_t size = strlen (text) + strlen (detail) + 3;
        r->error_text = malloc (size);
        assert (r->error_text);
        snprintf (r->error_text, size, "%s%s%s", text, *detail ? ": " : "", detail);
    }
    if (r->status == 0)
        curl_easy_getinfo (t->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (t->cancelled)
        core_log_debug (self->log, request->request_id,
                        "http %s %s: cancelled after %lld ms", request->method,
                        t->log_url, (long long) (r->ended - r->started));
    else if (error == HTTP_OK)
        core_log_debug (self->log, request->request_id, "http %s %s: %ld in %lld ms",
                        request->method, t->log_url, r->status,
                        (long long) (r->ended - r->started));
    else
        core_log_warn (self->log, request->request_id,
                       "http %s %s: %s (%s) after %lld ms", request->method, t->log_url,
                       http_error_name (error), r->error_text,
                       (long long) (r->ended - r->started));

    if (!t->cancelled) {
        //  A response without body still shows its headers first
        if (error == HTTP_OK && !t->headers_done && request->on_response
            && r->status >= 200) {
            t->headers_done = true;
            request->on_response (r, request->arg);
        }
        if (!t->cancelled && request->on_done)
            request->on_done (r, request->arg);
    }
    http_transfer_destroy (&t);
    s_start_queued (self);
}

static int
s_handle_idle (zloop_t *loop, int timer_id, void *arg)
{
    http_client_t *self = (http_client_t *) arg;
    if (timer_id != self->idle_timer_id)
        return 0;  //  ended earlier in this pass of the loop
    bool expired = true;
    while (expired) {
        expired = false;
        int64_t now = zclock_mono ();
        for (http_transfer_t *t = self->active.head; t; t = t->next)
            if (t->request->idle_ms && !t->cancelled
                && now - t->last_activity >= t->request->idle_ms) {
                s_finish (self, t, HTTP_ERR_IDLE,
                          "no data received within the idle timeout");
                expired = true;
                break;  //  callbacks may have changed the list: start over
            }
    }
    return 0;
}

//  Add a transfer to the multi handle.
static void
s_start (http_client_t *self, http_transfer_t *t)
{
    s_list_append (&self->active, t);
    t->active = true;
    t->response.started = t->last_activity = zclock_mono ();
    if (t->request->idle_ms && self->idle_count++ == 0) {
        self->idle_timer_id = zloop_timer (self->loop, (size_t) self->idle_resolution, 0,
                                           s_handle_idle, self);
        assert (self->idle_timer_id != -1);
    }
    core_log_debug (self->log, t->request->request_id, "http %s %s: start (id %llu)",
                    t->request->method, t->log_url, (unsigned long long) t->response.id);
    CURLMcode rc = curl_multi_add_handle (self->multi, t->easy);
    if (rc != CURLM_OK)
        s_finish (self, t, HTTP_ERR_INTERNAL, curl_multi_strerror (rc));
}

static void
s_start_queued (http_client_t *self)
{
    while (!self->in_curl && self->queue.head && self->active.size < self->max_active) {
        http_transfer_t *t = self->queue.head;
        s_list_remove (&self->queue, t);
        s_start (self, t);
    }
}

//  After curl ran: report completed transfers, carry out cancels made from
//  callbacks, and start what the queue holds.
static void
s_process (http_client_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode code = msg->data.result;
        http_transfer_t *t = NULL;
        curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
        assert (t && t->active);
        s_finish (self, t, http_transfer_error (t, code), curl_easy_strerror (code));
    }
    if (self->cancel_pending) {
        self->cancel_pending = 0;
        http_transfer_t *t = self->active.head;
        while (t) {
            http_transfer_t *next = t->next;
            if (t->cancelled) {
                s_finish (self, t, HTTP_ERR_ABORTED, "cancelled");
                t = self->active.head;  //  the list may have changed
            }
            else
                t = next;
        }
    }
    s_start_queued (self);
}

//  Hand one socket's events (or a timeout, CURL_SOCKET_TIMEOUT) to curl.
static void
s_curl_action (http_client_t *self, curl_socket_t fd, int flags)
{
    int running = 0;
    self->in_curl++;
    self->now = zclock_mono ();  //  the transfers' clock while curl runs their callbacks
    CURLMcode rc = curl_multi_socket_action (self->multi, fd, flags, &running);
    self->in_curl--;
    if (rc != CURLM_OK)
        core_log_error (self->log, NULL, "http: curl_multi_socket_action: %s",
                        curl_multi_strerror (rc));
}

//  curl's pass is over: the pass function, then what ended and what waits.
static void
s_pass_end (http_client_t *self)
{
    if (self->pass_fn)
        self->pass_fn (self, self->pass_arg);
    s_process (self);
}

//  ---------------------------------------------------------------------------
//  curl's sockets in the epoll set, its timer as a zloop timer

//  The epoll set has ready sockets: each goes to curl, then one pass end.
static int
s_handle_epoll (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    http_client_t *self = (http_client_t *) arg;
    struct epoll_event ready[S_EPOLL_BATCH];
    int n = epoll_wait (self->epoll_fd, ready, S_EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
        uint32_t e = ready[i].events;
        int flags = 0;
        if (e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
            flags |= CURL_CSELECT_IN;
        if (e & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (e & EPOLLERR)
            flags |= CURL_CSELECT_ERR;
        //  A socket curl dropped earlier in this batch is unknown to it: ignored
        s_curl_action (self, (curl_socket_t) ready[i].data.fd, flags);
    }
    if (n > 0)
        s_pass_end (self);
    return 0;
}

static int
s_handle_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    http_client_t *self = (http_client_t *) arg;
    if (timer_id != self->timer_id)
        return 0;  //  replaced earlier in this pass of the loop
    self->timer_id = -1;
    s_curl_action (self, CURL_SOCKET_TIMEOUT, 0);
    s_pass_end (self);
    return 0;
}

static int
s_curl_socket (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void) easy;
    http_client_t *self = (http_client_t *) userp;
    s_sock_t *sock = (s_sock_t *) socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock) {
            if (sock->events)
                epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            if (sock->prev)
                sock->prev->next = sock->next;
            else
                self->socks = sock->next;
            if (sock->next)
                sock->next->prev = sock->prev;
            free (sock);
            if (--self->sock_count == 0) {
                zmq_pollitem_t item = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
                zloop_poller_end (self->loop, &item);
            }
        }
        return 0;
    }
    int events = ((what & CURL_POLL_IN) ? EPOLLIN | EPOLLRDHUP : 0)
                 | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (!sock) {
        sock = calloc (1, sizeof (s_sock_t));
        assert (sock);
        sock->fd = fd;
        sock->next = self->socks;
        if (self->socks)
            self->socks->prev = sock;
        self->socks = sock;
        curl_multi_assign (self->multi, fd, sock);
        if (self->sock_count++ == 0) {
            zmq_pollitem_t item = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
            if (zloop_poller (self->loop, &item, s_handle_epoll, self)) {
                core_log_error (self->log, NULL, "http: cannot poll the epoll set");
                return -1;
            }
        }
    }
    if (sock->events == events)
        return 0;
    struct epoll_event ev = {.events = (uint32_t) events, .data.fd = fd};
    int op = !sock->events ? EPOLL_CTL_ADD : events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl (self->epoll_fd, op, fd, &ev)) {
        core_log_error (self->log, NULL, "http: cannot poll socket %d", (int) fd);
        return -1;
    }
    sock->events = events;
    return 0;
}

static int
s_curl_timer (CURLM *multi, long timeout_ms, void *userp)
{
    http_client_t *self = (http_client_t *) userp;
    if (self->timer_id != -1) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (timeout_ms >= 0) {
        self->timer_id = zloop_timer (self->loop, (size_t) timeout_ms, 1, s_handle_timer,
                                      self);
        if (self->timer_id == -1)
            return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Client

http_client_t *
http_client_new (core_log_t *log)
{
    http_client_t *self = calloc (1, sizeof (http_client_t));
    assert (self);
    CURLcode rc = curl_global_init (CURL_GLOBAL_DEFAULT);
    assert (rc == CURLE_OK);
    self->log = log;
    self->now = zclock_mono ();
    self->multi = curl_multi_init ();
    assert (self->multi);
    self->timer_id = -1;
    self->idle_timer_id = -1;
    self->idle_resolution = 100;
    self->max_active = 256;
    self->max_queued = 1024;
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    assert (self->epoll_fd >= 0);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_curl_socket);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_curl_timer);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, 64L);
    return self;
}

void
http_client_destroy (http_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_client_t *self = *self_p;
    assert (!self->in_curl);
    while (self->active.head) {
        http_transfer_t *t = self->active.head;
        s_list_remove (&self->active, t);
        curl_multi_remove_handle (self->multi, t->easy);
        http_transfer_destroy (&t);
    }
    while (self->queue.head) {
        http_transfer_t *t = self->queue.head;
        s_list_remove (&self->queue, t);
        http_transfer_destroy (&t);
    }
    curl_multi_cleanup (self->multi);
    if (self->loop) {
        if (self->timer_id != -1)
            zloop_timer_end (self->loop, self->timer_id);
        s_idle_timer_stop (self);
    }
    while (self->socks) {
        s_sock_t *sock = self->socks;
        self->socks = sock->next;
        free (sock);
    }
    if (self->loop && self->sock_count) {
        zmq_pollitem_t item = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
        zloop_poller_end (self->loop, &item);
    }
    close (self->epoll_fd);
    curl_global_cleanup ();
    free (self);
    *self_p = NULL;
}

int
http_client_attach (http_client_t *self, zloop_t *loop)
{
    assert (self);
    assert (loop);
    if (self->loop)
        return -1;
    self->loop = loop;
    return 0;
}

void
http_client_set_pass_fn (http_client_t *self, http_pass_fn *fn, void *arg)
{
    assert (self);
    self->pass_fn = fn;
    self->pass_arg = arg;
}

void
http_client_set_max_active (http_client_t *self, size_t max_active)
{
    assert (self);
    self->max_active = max_active ? max_active : 1;
    s_start_queued (self);
}

void
http_client_set_max_queued (http_client_t *self, size_t max_queued)
{
    assert (self);
    self->max_queued = max_queued;
}

void
http_client_set_max_host_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max > 0 ? max : 0L);
}

void
http_client_set_max_total_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max > 0 ? max : 0L);
}

void
http_client_set_max_cached_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, max > 0 ? max : 0L);
}

void
http_client_set_idle_resolution (http_client_t *self, int64_t ms)
{
    assert (self);
    self->idle_resolution = ms < 1 ? 1 : ms > 1000 ? 1000 : ms;
}

uint64_t
http_client_send (http_client_t *self, http_request_t **request_p)
{
    assert (self);
    assert (request_p && *request_p);
    if (!self->loop) {
        http_request_destroy (request_p);
        return 0;
    }
    bool start_now = !self->in_curl && !self->queue.head
                     && self->active.size < self->max_active;
    bool slot_free = self->active.size + self->queue.size < self->max_active;
    if (!start_now && !slot_free && self->queue.size >= self->max_queued) {
        core_log_warn (self->log, (*request_p)->request_id,
                       "http: queue full (%zu waiting)", self->queue.size);
        http_request_destroy (request_p);
        return 0;
    }
    http_transfer_t *t = http_transfer_new (self->log, self->next_id + 1, request_p);
    if (!t)
        return 0;
    t->clock = &self->now;
    self->next_id++;
    uint64_t id = t->response.id;
    s_list_append (&self->queue, t);
    s_start_queued (self);
    return id;
}

int
http_client_cancel (http_client_t *self, uint64_t id)
{
    assert (self);
    for (http_transfer_t *t = self->queue.head; t; t = t->next)
        if (t->response.id == id) {
            s_list_remove (&self->queue, t);
            http_transfer_destroy (&t);
            return 0;
        }
    for (http_transfer_t *t = self->active.head; t; t = t->next)
        if (t->response.id == id) {
            if (t->cancelled)
                return -1;
            t->cancelled = true;
            if (self->in_curl)
                self->cancel_pending++;  //  s_process finishes it
            else
                s_finish (self, t, HTTP_ERR_ABORTED, "cancelled");
            return 0;
        }
    return -1;
}

size_t
http_client_active (http_client_t *self)
{
    assert (self);
    return self->active.size;
}

size_t
http_client_queued (http_client_t *self)
{
    assert (self);
    return self->queue.size;
}

//  ---------------------------------------------------------------------------
//  Selftest, against a real HTTP server on an ephemeral loopback port

#include "http_lines.h"
#include "http_sse_parser.h"
#include "http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    http_client_t *client;    //  client under test
    uint64_t id;              //  request id
    int responses;            //  on_response calls
    int chunks;               //  on_data calls
    int done;                 //  on_done calls
    http_error_t error;       //  error at on_done
    long status;              //  status at on_done
    long status_at_response;  //  status at on_response
    char body[4096];          //  body, streamed or buffered (truncated)
    size_t body_size;         //  bytes in body
    size_t body_total;        //  bytes of body seen
    char header[64];          //  value of want_header at on_done
    const char *want_header;  //  header to keep
    char conn_id[16];         //  X-Conn-Id
    int64_t retry_after;      //  Retry-After at on_done
    int64_t elapsed;          //  http_response_elapsed at on_done
    int cancel_at;            //  cancel itself at this chunk
    int abort_at;             //  return non-zero at this chunk
    const char *release_url;  //  send a GET here at the first chunk
    http_sse_parser_t *sse;   //  parse the stream as SSE
    int events;               //  SSE events seen
    char last_event[64];      //  data of the last SSE event
    http_lines_t *lines;      //  split the stream into lines
    int line_count;           //  lines seen
    int *counter;             //  shared count of on_done calls, or NULL
    size_t *peak;             //  highest http_client_active seen, or NULL
} s_result_t;

static void
s_copy (char *dest, size_t size, const char *src)
{
    snprintf (dest, size, "%s", src ? src : "");
}

static int
s_test_on_sse (const http_sse_event_t *event, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->events++;
    s_copy (r->last_event, sizeof r->last_event, event->data);
    return 0;
}

static int
s_test_on_line (const char *line, size_t size, void *arg)
{
    ((s_result_t *) arg)->line_count++;
    return 0;
}

static int
s_test_on_response (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->responses++;
    r->status_at_response = http_response_status (response);
    return 0;
}

static int
s_test_on_data (http_response_t *response, const char *data, size_t size, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->chunks++;
    r->body_total += size;
    size_t room = sizeof r->body - 1 - r->body_size;
    size_t n = size < room ? size : room;
    memcpy (r->body + r->body_size, data, n);
    r->body_size += n;
    r->body[r->body_size] = 0;
    if (r->sse) {
        int rc = http_sse_parser_feed (r->sse, data, size, s_test_on_sse, r);
        assert (rc == 0);
    }
    if (r->lines) {
        int rc = http_lines_feed (r->lines, data, size, s_test_on_line, r);
        assert (rc == 0);
    }
    if (r->release_url && r->chunks == 1) {
        //  Sending from inside a callback is allowed
        http_request_t *request = http_request_new ("GET", r->release_url);
        uint64_t id = http_client_send (r->client, &request);
        assert (id > 0);
    }
    if (r->cancel_at && r->chunks == r->cancel_at) {
        int rc = http_client_cancel (r->client, http_response_id (response));
        assert (rc == 0);
        rc = http_client_cancel (r->client, http_response_id (response));
        assert (rc == -1);
    }
    return r->abort_at && r->chunks == r->abort_at;
}

static void
s_test_on_done (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->done++;
    r->error = http_response_error (response);
    r->status = http_response_status (response);
    r->retry_after = http_response_retry_after (response);
    r->elapsed = http_response_elapsed (response);
    if (r->want_header)
        s_copy (r->header, sizeof r->header,
                http_response_header (response, r->want_header));
    s_copy (r->conn_id, sizeof r->conn_id, http_response_header (response, "x-conn-id"));
    if (http_response_body_size (response)) {
        s_copy (r->body, sizeof r->body, http_response_body (response));
        r->body_size = strlen (r->body);
        r->body_total = http_response_body_size (response);
    }
    if (r->counter)
        (*r->counter)++;
    if (r->peak && http_client_active (r->client) + 1 > *r->peak)
        *r->peak = http_client_active (r->client) + 1;
}

//  Send a request whose callbacks fill r; returns its id.
static uint64_t
s_test_send (http_client_t *client, http_request_t *request, s_result_t *r, bool stream)
{
    r->client = client;
    http_request_set_callbacks (request, s_test_on_response,
                                stream ? s_test_on_data : NULL, s_test_on_done, r);
    r->id = http_client_send (client, &request);
    assert (request == NULL);
    return r->id;
}

static uint64_t
s_test_get (http_client_t *client, const char *base, const char *path, s_result_t *r,
            bool stream)
{
    char url[256];
    snprintf (url, sizeof url, "%s%s", base, path);
    return s_test_send (client, http_request_new ("GET", url), r, stream);
}

typedef struct {
    int *counter;      //  what to watch
    int want;          //  stop when it reaches this
    int64_t deadline;  //  or at this time
} s_wait_t;

static int
s_test_wait (zloop_t *loop, int timer_id, void *arg)
{
    s_wait_t *w = (s_wait_t *) arg;
    return *w->counter >= w->want || zclock_mono () >= w->deadline ? -1 : 0;
}

//  Run a fresh loop until *counter reaches want or max_ms pass.
static void
s_test_run (zloop_t *loop, int *counter, int want, int64_t max_ms)
{
    s_wait_t w = {counter, want, zclock_mono () + max_ms};
    int timer_id = zloop_timer (loop, 5, 0, s_test_wait, &w);
    assert (timer_id != -1);
    zloop_start (loop);
    zloop_timer_end (loop, timer_id);
}

typedef struct {
    http_client_t *client;  //  client
    const char *base;       //  server URL
    uint64_t cancel_id;     //  request to cancel
    s_result_t closed[2];   //  answers of /closed?id=c1 and c2
    int closed_yes;         //  how many said yes
    int polls;              //  /closed polls sent
} s_cancel_t;

static void
s_test_on_closed (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    if (strcmp (http_response_body (response), "yes") == 0)
        r->done = 1;
}

//  Timer: cancel the stream from outside callbacks, then poll the server until
//  it saw both cancelled streams' connections close.
static int
s_test_cancel_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_cancel_t *c = (s_cancel_t *) arg;
    if (c->cancel_id) {
        int rc = http_client_cancel (c->client, c->cancel_id);
        assert (rc == 0);
        assert (http_client_cancel (c->client, c->cancel_id) == -1);
        c->cancel_id = 0;
        return 0;
    }
    c->closed_yes = c->closed[0].done + c->closed[1].done;
    for (int i = 0; i < 2; i++)
        if (!c->closed[i].done) {
            char url[256];
            snprintf (url, sizeof url, "%s/closed?id=c%d", c->base, i + 1);
            http_request_t *request = http_request_new ("GET", url);
            http_request_set_callbacks (request, NULL, NULL, s_test_on_closed,
                                        &c->closed[i]);
            uint64_t id = http_client_send (c->client, &request);
            assert (id);
            c->polls++;
        }
    return 0;
}

typedef struct {
    http_client_t *client;  //  client
    const char *base;       //  server URL
    int count;              //  answers received
    int reused;             //  answers on the first answer's connection
    char first_conn[16];    //  X-Conn-Id of the first answer
} s_chain_t;

static void
s_test_on_chain_done (http_response_t *response, void *arg)
{
    s_chain_t *chain = (s_chain_t *) arg;
    if (response) {
        assert (http_response_error (response) == HTTP_OK);
        const char *conn_id = http_response_header (response, "X-Conn-Id");
        assert (conn_id);
        if (chain->count++ == 0)
            s_copy (chain->first_conn, sizeof chain->first_conn, conn_id);
        else if (strcmp (conn_id, chain->first_conn) == 0)
            chain->reused++;
    }
    if (chain->count < 5) {
        char url[256];
        snprintf (url, sizeof url, "%s/hello", chain->base);
        http_request_t *request = http_request_new ("GET", url);
        http_request_set_callbacks (request, NULL, NULL, s_test_on_chain_done, chain);
        uint64_t id = http_client_send (chain->client, &request);
        assert (id);
    }
}

void
http_client_test (bool verbose)
{
    printf (" * http_client: ");
    if (verbose)
        printf ("\n");
    core_log_t *log = core_log_new ("http_client_test", verbose ? "debug" : "off");
    http_test_server_t *server = http_test_server_new ();
    assert (server);
    const char *base = http_test_server_url (server);
    int64_t started;

    //  @selftest
    //  Buffered GET, POST and PUT with headers and bodies
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        http_request_t *request = http_request_new ("GET", "http://127.0.0.1/");
        assert (http_client_send (client, &request) == 0);  //  not attached yet
        assert (request == NULL);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        assert (http_client_attach (client, loop) == -1);

        int done = 0;
        s_result_t get = {.want_header = "X-TEST", .counter = &done};
        assert (s_test_get (client, base, "/hello", &get, false) > 0);

        request = http_request_new ("POST", "");
        request = (http_request_destroy (&request), http_request_new ("POST", base));
        http_request_destroy (&request);
        char url[256];
        snprintf (url, sizeof url, "%s/echo", base);
        request = http_request_new ("POST", url);
        assert (http_request_add_header (request, "X-Custom", "custom value") == 0);
        assert (http_request_add_header (request, "Bad Name", "x") == -1);
        assert (http_request_add_header (request, "X-Inject", "a\r\nX-Evil: 1") == -1);
        assert (http_request_add_header (request, "", "x") == -1);
        const char *json = "{\"model\":\"m\",\"stream\":true}";
        http_request_set_body (request, json, strlen (json), "application/json");
        http_request_set_request_id (request, "req-1");
        s_result_t post = {.want_header = "x-echo", .counter = &done};
        uint64_t post_id = s_test_send (client, request, &post, false);
        assert (post_id > get.id);

        request = http_request_new ("PUT", url);
        http_request_set_body (request, "put-body", 8, NULL);
        s_result_t put = {.want_header = "x-method", .counter = &done};
        s_test_send (client, request, &put, false);

        //  Refused before they start: not http(s), not absolute
        request = http_request_new ("GET", "ftp://127.0.0.1/file");
        assert (http_client_send (client, &request) == 0);
        request = http_request_new ("GET", "/relative");
        assert (http_client_send (client, &request) == 0);
        assert (http_client_active (client) == 3);

        s_test_run (loop, &done, 3, 5000);
        assert (done == 3);
        assert (get.done == 1 && get.responses == 1);
        assert (get.error == HTTP_OK && get.status == 200
                && get.status_at_response == 200);
        assert (strcmp (get.body, "hello world") == 0);
        assert (strcmp (get.header, "yes") == 0);
        assert (post.error == HTTP_OK && post.status == 200);
        assert (strcmp (post.body, json) == 0);
        assert (strcmp (post.header, "custom value") == 0);
        assert (put.error == HTTP_OK && strcmp (put.body, "put-body") == 0);
        assert (strcmp (put.header, "PUT") == 0);
        assert (http_client_active (client) == 0);
        http_client_destroy (&client);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  100 concurrent transfers in one loop; then the same through 10 slots
    for (int pass = 0; pass < 2; pass++) {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        if (pass == 1)
            http_client_set_max_active (client, 10);
        int done = 0;
        size_t peak = 0;
        s_result_t *results = calloc (100, sizeof (s_result_t));
        assert (results);
        for (int i = 0; i < 100; i++) {
            results[i].counter = &done;
            results[i].peak = &peak;
            assert (s_test_get (client, base, "/hello", &results[i], false));
        }
        assert (http_client_active (client) == (pass ? 10 : 100));
        assert (http_client_queued (client) == (pass ? 90 : 0));
        started = zclock_mono ();
        s_test_run (loop, &done, 100, 20000);
        assert (done == 100);
        for (int i = 0; i < 100; i++) {
            assert (results[i].error == HTTP_OK && results[i].status == 200);
            assert (strcmp (results[i].body, "hello world") == 0);
        }
        assert (peak <= (pass ? 10 : 100));
        if (verbose)
            printf ("  100 requests, max %s active: %lld ms, peak %zu\n",
                    pass ? "10" : "256", (long long) (zclock_mono () - started), peak);
        free (results);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Streams arrive in pieces as they are sent: /gated sends its last event only
    //  after we asked for /release, which we do when the first piece arrives.
    //  Also: chunks with delays split into lines; keep-alive across 5 requests.
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        int done = 0;
        char release_url[256];
        snprintf (release_url, sizeof release_url, "%s/release", base);
        s_result_t gated = {.counter = &done, .release_url = release_url};
        gated.sse = http_sse_parser_new (0);
        http_request_t *request = http_request_new ("GET", base);
        http_request_destroy (&request);
        snprintf (release_url + strlen (base), sizeof release_url - strlen (base),
                  "/release");
        char url[256];
        snprintf (url, sizeof url, "%s/gated", base);
        request = http_request_new ("GET", url);
        assert (http_request_add_header (request, "Accept", "text/event-stream") == 0);
        http_request_set_idle_timeout (request, 10000);
        s_test_send (client, request, &gated, true);

        s_result_t lines = {.counter = &done};
        lines.lines = http_lines_new (0);
        s_test_get (client, base, "/stream?n=5&ms=50", &lines, true);

        s_test_run (loop, &done, 2, 10000);
        assert (done == 2);
        assert (gated.error == HTTP_OK && gated.status == 200);
        assert (gated.responses == 1 && gated.status_at_response == 200);
        assert (gated.chunks >= 2);
        assert (gated.events == 2);
        assert (strcmp (gated.last_event, "last") == 0);
        assert (lines.error == HTTP_OK);
        assert (lines.chunks >= 3);
        assert (lines.line_count == 5);
        assert (strcmp (lines.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n")
                == 0);
        http_sse_parser_destroy (&gated.sse);
        http_lines_destroy (&lines.lines);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Idle timeout on a stalled stream, total timeouts on a slow answer and on a
    //  stream that never ends, connection refused
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        http_client_set_idle_resolution (client, 20);
        int done = 0;
        char url[256];
        snprintf (url, sizeof url, "%s/stall", base);
        http_request_t *request = http_request_new ("GET", url);
        http_request_set_idle_timeout (request, 300);
        s_result_t stall = {.counter = &done};
        s_test_send (client, request, &stall, true);

        snprintf (url, sizeof url, "%s/slow", base);
        request = http_request_new ("GET", url);
        http_request_set_timeout (request, 300);
        s_result_t slow = {.counter = &done};
        s_test_send (client, request, &slow, false);

        snprintf (url, sizeof url, "%s/forever?id=t1", base);
        request = http_request_new ("GET", url);
        http_request_set_timeout (request, 400);
        http_request_set_idle_timeout (request, 200);
        s_result_t forever = {.counter = &done};
        s_test_send (client, request, &forever, true);

        //  A bound socket that does not listen refuses connections
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        assert (fd >= 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        socklen_t addr_size = sizeof addr;
        rc = bind (fd, (struct sockaddr *) &addr, sizeof addr);
        assert (rc == 0);
        rc = getsockname (fd, (struct sockaddr *) &addr, &addr_size);
        assert (rc == 0);
        snprintf (url, sizeof url, "http://127.0.0.1:%d/", ntohs (addr.sin_port));
        s_result_t refused = {.counter = &done};
        s_test_send (client, http_request_new ("GET", url), &refused, false);

        started = zclock_mono ();
        s_test_run (loop, &done, 4, 5000);
        close (fd);
        assert (done == 4);
        assert (stall.error == HTTP_ERR_IDLE);
        assert (stall.status == 200 && stall.chunks == 1);
        assert (stall.elapsed >= 300 && stall.elapsed < 1500);
        assert (slow.error == HTTP_ERR_TIMEOUT);
        assert (slow.elapsed >= 300 && slow.elapsed < 1500);
        assert (forever.error == HTTP_ERR_TIMEOUT);
        assert (forever.chunks > 3);
        assert (refused.error == HTTP_ERR_CONNECT && refused.status == 0);
        assert (zclock_mono () - started < 2000);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Bodies over the limit, with Content-Length, chunked, streamed; at the limit
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        int done = 0;
        const char *paths[] = {"/big?n=100000", "/bigchunked?n=100000",
                               "/bigchunked?n=100000", "/big?n=1000"};
        s_result_t results[4];
        memset (results, 0, sizeof results);
        for (int i = 0; i < 4; i++) {
            char url[256];
            snprintf (url, sizeof url, "%s%s", base, paths[i]);
            http_request_t *request = http_request_new ("GET", url);
            http_request_set_max_body (request, i == 2 ? 5000 : 1000);
            results[i].counter = &done;
            s_test_send (client, request, &results[i], i == 2);
        }
        s_test_run (loop, &done, 4, 5000);
        assert (done == 4);
        assert (results[0].error == HTTP_ERR_TOO_LARGE);
        assert (results[1].error == HTTP_ERR_TOO_LARGE);
        assert (results[2].error == HTTP_ERR_TOO_LARGE);
        assert (results[2].body_total <= 5000);
        assert (results[3].error == HTTP_OK && results[3].body_total == 1000);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Cancel mid-stream from inside on_data and from outside: no more callbacks,
    //  and the server sees both connections close. Abort from on_data. Cancel of
    //  a queued request; a full queue refuses.
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        s_result_t inside = {.cancel_at = 3};
        s_test_get (client, base, "/forever?id=c1", &inside, true);
        s_result_t outside = {0};
        s_cancel_t cancel = {.client = client, .base = base};
        cancel.cancel_id = s_test_get (client, base, "/forever?id=c2", &outside, true);
        int done = 0;
        s_result_t aborted = {.abort_at = 2, .counter = &done};
        s_test_get (client, base, "/forever?id=a1", &aborted, true);

        http_client_set_max_active (client, 3);
        http_client_set_max_queued (client, 1);
        s_result_t queued = {0};
        uint64_t queued_id = s_test_get (client, base, "/hello", &queued, false);
        assert (queued_id);
        assert (http_client_queued (client) == 1);
        http_request_t *request = http_request_new ("GET", base);
        assert (http_client_send (client, &request) == 0);  //  queue full
        assert (http_client_cancel (client, queued_id) == 0);
        assert (http_client_queued (client) == 0);
        assert (http_client_cancel (client, queued_id) == -1);
        http_client_set_max_active (client, 256);

        int timer_id = zloop_timer (loop, 150, 0, s_test_cancel_timer, &cancel);
        //  Done when the server saw both cancelled connections close
        s_test_run (loop, &cancel.closed_yes, 2, 5000);
        zloop_timer_end (loop, timer_id);
        assert (cancel.closed_yes == 2);
        assert (inside.chunks == 3 && inside.done == 0);
        assert (outside.chunks > 0 && outside.done == 0);
        assert (aborted.done == 1 && aborted.error == HTTP_ERR_ABORTED
                && aborted.chunks == 2);
        assert (queued.done == 0 && queued.responses == 0);
        if (verbose)
            printf ("  cancel: server saw close after %d polls\n", cancel.polls);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  429 with Retry-After; keep-alive: five requests in a row share one
    //  connection (the server numbers its connections)
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        http_client_set_max_host_connections (client, 4);
        http_client_set_max_total_connections (client, 100);
        http_client_set_max_cached_connections (client, 8);
        int done = 0;
        s_result_t limited = {.counter = &done, .want_header = "retry-after"};
        s_test_get (client, base, "/ratelimit", &limited, false);
        s_test_run (loop, &done, 1, 5000);
        assert (done == 1);
        assert (limited.error == HTTP_OK && limited.status == 429);
        assert (limited.retry_after == 7);
        assert (strcmp (limited.header, "7") == 0);
        assert (strcmp (limited.body, "{\"error\":\"slow down\"}") == 0);
        zloop_destroy (&loop);

        //  Each answer sends the next request from its on_done
        loop = zloop_new ();
        http_client_destroy (&client);
        client = http_client_new (log);
        rc = http_client_attach (client, loop);
        assert (rc == 0);
        s_chain_t chain = {.client = client, .base = base};
        s_test_on_chain_done (NULL, &chain);
        s_test_run (loop, &chain.count, 5, 5000);
        assert (chain.count == 5);
        assert (chain.reused == 4);
        zloop_destroy (&loop);
        http_client_destroy (&client);
    }
    //  @end
    http_test_server_destroy (&server);
    core_log_destroy (&log);
    printf ("OK\n");
}
