/*  llm_client: streams over http_client, with retries, timeouts and cancel.

    A stream builds its provider's wire request once (llm_<provider>_build) and
    sends it from a zloop timer, so no event is ever delivered from inside
    llm_stream_start. Each attempt's body goes through a fresh llm_parser.
    The text pieces the parser finds in one pass of curl (all that one socket
    event brought: curl hands each HTTP chunk over on its own) are joined into
    one DELTA, delivered when the pass ends (http_client_set_pass_fn) or before
    any other event of the stream, so a provider that sends faster than we
    forward costs one event per read, not one per token. A DONE is held until
    the HTTP transfer has ended (so that the connection is kept for reuse) and
    then delivered; an ERROR is delivered at once and aborts the transfer. A
    stream is owned by its caller: it is freed only by llm_stream_cancel, which
    defers the free while one of our callbacks for the stream is running further
    up the stack (busy).                                                        */
#include "llm_client.h"
#include "llm_private.h"

#include "llm_anthropic.h"
#include "llm_gemini.h"
#include "llm_n8n.h"
#include "llm_offline.h"
#include "llm_ollama.h"
#include "llm_openai.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_ERROR_BODY (64 * 1024)  //  bytes of an error reply kept
#define S_OFFLINE_PIECE 48            //  bytes of an offline piece, about
#define S_PENDING_MAX (256 * 1024)    //  text joined into one DELTA at most

struct _llm_client_t {
    zloop_t *loop;          //  loop that drives us
    http_client_t *http;    //  where requests go
    core_log_t *log;        //  where we log, may be NULL
    llm_stream_t *streams;  //  streams not yet freed
    llm_stream_t *dirty;    //  streams holding text pieces (pending)
    size_t stream_count;    //  entries in streams
    int max_attempts;       //  attempts per stream, at least 1
    int64_t retry_base;     //  first backoff, ms
    int64_t retry_max;      //  longest backoff, ms
    size_t max_event;       //  parser limit
    int64_t offline_pace;   //  ms between offline pieces
};

struct _llm_stream_t {
    llm_client_t *client;      //  our client, NULL once it was destroyed
    llm_stream_t *prev;        //  in the client's list
    llm_stream_t *next;        //  in the client's list
    llm_provider_t provider;   //  whose format
    llm_wire_t wire;           //  the HTTP request, sent on every attempt (its body
                               //  only until something was delivered)
    char *request_id;          //  for logs, or NULL
    int64_t idle_ms;           //  idle timeout per attempt, 0 none
    int64_t deadline;          //  zclock_mono when the total timeout passes, 0 none
    llm_event_fn *fn;          //  where events go
    void *arg;                 //  argument of fn
    uint64_t http_id;          //  transfer running, 0 none
    int timer_id;              //  timer pending, -1 none
    int attempts;              //  attempts started
    llm_parser_t *parser;      //  parser of this attempt's 2xx body, or NULL
    long status;               //  status of this attempt, 0 before one
    char *error_body;          //  this attempt's non-2xx body, bounded
    size_t error_size;         //  bytes in error_body
    bool delivered;            //  a DELTA, TOOL_CALL or USAGE reached fn
    bool ended;                //  DONE or ERROR reached fn (or the client went)
    bool done_held;            //  the parser gave DONE; delivered when HTTP ends
    char held_finish[32];      //  finish reason of the held DONE
    char *held_replay;         //  replay of the held DONE, or NULL
    bool cancelled;            //  llm_stream_cancel ran while busy
    bool retry_held;           //  an error in a 2xx stream waits to be retried
    llm_error_t held_code;     //  that error's code
    char held_message[256];    //  its message
    int64_t held_retry_after;  //  its hint, -1 none
    int busy;                  //  our handlers for this stream on the stack
    char *pending;             //  text pieces of this read not yet delivered, or NULL
    size_t pending_size;       //  bytes in pending
    size_t pending_room;       //  bytes allocated for pending
    bool dirty;                //  in the client's dirty list
    llm_stream_t *dirty_prev;  //  in the client's dirty list
    llm_stream_t *dirty_next;  //  in the client's dirty list
    char *offline_text;        //  offline: the answer
    size_t offline_offset;     //  offline: bytes delivered
};

static void s_attempt (llm_stream_t *self);
static void s_undirty (llm_stream_t *self);
static int s_handle_timer (zloop_t *loop, int timer_id, void *arg);

//  ---------------------------------------------------------------------------
//  Delivering events

//  Stop what runs for the stream: its transfer and its timer.
static void
s_stop (llm_stream_t *self)
{
    if (self->http_id && self->client)
        http_client_cancel (self->client->http, self->http_id);
    self->http_id = 0;
    if (self->timer_id != -1 && self->client)
        zloop_timer_end (self->client->loop, self->timer_id);
    self->timer_id = -1;
}

//  Hand an event to fn; -1 when the stream has ended or was cancelled.
static int
s_deliver (llm_stream_t *self, const llm_event_t *event)
{
    if (self->ended || self->cancelled)
        return -1;
    bool terminal = event->type == LLM_EVENT_DONE || event->type == LLM_EVENT_ERROR;
    if (terminal) {
        self->ended = true;
        s_stop (self);
        if (self->client && event->type == LLM_EVENT_ERROR)
            core_log_warn (self->client->log, self->request_id,
                           "llm %s: %s (HTTP %ld) after %d attempt(s): %.*s",
                           llm_provider_name (self->provider),
                           llm_error_name (event->code), event->status, self->attempts,
                           (int) event->text_size, event->text ? event->text : "");
        else if (self->client)
            core_log_debug (self->client->log, self->request_id, "llm %s: done (%s)",
                            llm_provider_name (self->provider), event->finish);
    }
    else if (!self->delivered) {
        //  Nothing is tried again from now on (s_retry_later): the request's body,
        //  the history it carries, goes (the transfer has its own copy)
        self->delivered = true;
        free (self->wire.body);
        self->wire.body = NULL;
        self->wire.body_size = 0;
    }
    self->busy++;
    self->fn (self, event, self->arg);
    self->busy--;
    return self->ended || self->cancelled ? -1 : 0;
}

//  Deliver an ERROR event.
static void
s_error (llm_stream_t *self, llm_error_t code, const char *message, long status,
         int64_t retry_after)
{
    llm_event_t event = {.type = LLM_EVENT_ERROR,
                         .code = code,
                         .text = message,
                         .text_size = strlen (message),
                         .status = status,
                         .retry_after = retry_after};
    s_deliver (self, &event);
}

//  Deliver the DONE the parser gave earlier.
static void
s_deliver_held (llm_stream_t *self)
{
    llm_event_t event = {
        .type = LLM_EVENT_DONE, .finish = self->held_finish, .replay = self->held_replay};
    self->done_held = false;
    s_deliver (self, &event);
}

//  Free the stream's memory (its transfer and timer are stopped).
static void
s_free (llm_stream_t *self)
{
    s_stop (self);
    s_undirty (self);
    if (self->client) {
        llm_client_t *client = self->client;
        if (self->prev)
            self->prev->next = self->next;
        else
            client->streams = self->next;
        if (self->next)
            self->next->prev = self->prev;
        client->stream_count--;
    }
    llm_parser_destroy (&self->parser);
    llm_wire_clear (&self->wire);
    free (self->error_body);
    free (self->held_replay);
    free (self->pending);
    free (self->request_id);
    free (self->offline_text);
    free (self);
}

//  Leave one of our handlers: free the stream if it was cancelled meanwhile.
static void
s_leave (llm_stream_t *self)
{
    self->busy--;
    if (self->busy == 0 && self->cancelled)
        s_free (self);
}

//  ---------------------------------------------------------------------------
//  HTTP callbacks of an attempt

//  Take the stream off its client's dirty list.
static void
s_undirty (llm_stream_t *self)
{
    if (!self->dirty)
        return;
    if (self->dirty_prev)
        self->dirty_prev->dirty_next = self->dirty_next;
    else if (self->client)
        self->client->dirty = self->dirty_next;
    if (self->dirty_next)
        self->dirty_next->dirty_prev = self->dirty_prev;
    self->dirty = false;
    self->dirty_prev = self->dirty_next = NULL;
}

//  Deliver the text pieces joined so far as one DELTA; -1 as s_deliver.
static int
s_flush (llm_stream_t *self)
{
    s_undirty (self);
    if (self->pending_size == 0)
        return self->ended || self->cancelled ? -1 : 0;
    llm_event_t delta = {
        .type = LLM_EVENT_DELTA, .text = self->pending, .text_size = self->pending_size};
    int rc = s_deliver (self, &delta);
    //  The buffer goes with its text: a stream between reads holds none (the
    //  stream is still ours here: a cancel from fn waits for s_leave)
    free (self->pending);
    self->pending = NULL;
    self->pending_size = self->pending_room = 0;
    return rc;
}

//  Keep a text piece to deliver with the others of this read; -1 as s_deliver.
static int
s_hold_delta (llm_stream_t *self, const llm_event_t *event)
{
    if (self->ended || self->cancelled)
        return -1;
    if (self->pending_size + event->text_size + 1 > self->pending_room) {
        size_t room = self->pending_room ? self->pending_room : 256;
        while (room < self->pending_size + event->text_size + 1)
            room *= 2;
        char *grown = realloc (self->pending, room);
        assert (grown);
        self->pending = grown;
        self->pending_room = room;
    }
    memcpy (self->pending + self->pending_size, event->text, event->text_size);
    self->pending_size += event->text_size;
    self->pending[self->pending_size] = 0;
    if (!self->dirty && self->client) {
        self->dirty = true;
        self->dirty_next = self->client->dirty;
        if (self->dirty_next)
            self->dirty_next->dirty_prev = self;
        self->client->dirty = self;
    }
    return self->pending_size >= S_PENDING_MAX ? s_flush (self) : 0;
}

//  Events from the parser of a 2xx body: text pieces are held (s_hold_delta),
//  anything else goes out after them.
static int
s_on_parser_event (const llm_event_t *event, void *arg)
{
    llm_stream_t *self = (llm_stream_t *) arg;
    if (self->retry_held)
        return -1;  //  this attempt is over
    if (event->type == LLM_EVENT_DELTA)
        return s_hold_delta (self, event);
    if (s_flush (self))
        return -1;
    if (event->type == LLM_EVENT_ERROR && !self->delivered
        && (event->code == LLM_ERROR_RATE_LIMITED || event->code == LLM_ERROR_UPSTREAM)
        && self->client && self->attempts < self->client->max_attempts) {
        //  A provider's error in a 2xx stream before anything reached the caller
        //  (Anthropic's overloaded_error after message_start, an OpenAI
        //  server_error chunk): retried as its HTTP status would be, once the
        //  parser is out of the way (s_retry_held)
        self->retry_held = true;
        self->held_code = event->code;
        snprintf (self->held_message, sizeof self->held_message, "%.*s",
                  (int) event->text_size, event->text ? event->text : "");
        self->held_retry_after = event->retry_after;
        if (self->http_id)
            http_client_cancel (self->client->http, self->http_id);
        self->http_id = 0;
        return -1;
    }
    if (event->type == LLM_EVENT_DONE) {
        self->done_held = true;
        snprintf (self->held_finish, sizeof self->held_finish, "%s", event->finish);
        free (self->held_replay);
        self->held_replay = event->replay ? strdup (event->replay) : NULL;
        return 0;
    }
    return s_deliver (self, event);
}

//  Status and headers are in: a 2xx body gets a parser, others are kept as
//  the error's body.
static int
s_on_response (http_response_t *response, void *arg)
{
    llm_stream_t *self = (llm_stream_t *) arg;
    self->status = http_response_status (response);
    if (self->status >= 200 && self->status < 300) {
        self->parser = llm_parser_new (self->provider, self->client->max_event,
                                       s_on_parser_event, self);
        llm_parser_set_content_type (self->parser,
                                     http_response_header (response, "content-type"));
    }
    return 0;
}

static bool s_retry_later (llm_stream_t *self, int64_t retry_after);

//  The held error's attempt is over: retry it, or deliver it when that cannot be.
static void
s_retry_held (llm_stream_t *self)
{
    if (!self->retry_held)
        return;
    self->retry_held = false;
    if (!s_retry_later (self, self->held_retry_after))
        s_error (self, self->held_code, self->held_message, self->status,
                 self->held_retry_after);
}

//  A piece of the body: to the parser, or to the bounded error body.
static int
s_on_data (http_response_t *response, const char *data, size_t size, void *arg)
{
    llm_stream_t *self = (llm_stream_t *) arg;
    if (self->ended || self->done_held || self->retry_held || self->timer_id != -1)
        return 0;  //  what follows the end marker (or a retried error) is ignored
    if (!self->parser) {
        size_t room = S_MAX_ERROR_BODY - self->error_size;
        size_t take = size < room ? size : room;
        char *grown = realloc (self->error_body, self->error_size + take + 1);
        assert (grown);
        self->error_body = grown;
        memcpy (self->error_body + self->error_size, data, take);
        self->error_size += take;
        self->error_body[self->error_size] = 0;
        return 0;
    }
    self->busy++;
    int rc = llm_parser_feed (self->parser, data, size);
    (void) rc;  //  an ERROR stopped the transfer already; a DONE is held
    s_retry_held (self);
    s_leave (self);
    return 0;
}

//  Seconds the provider asks us to wait: Retry-After, retry-after-ms, or the
//  hint inside the body (found by llm_error_from_json); -1 when none.
static int64_t
s_retry_after (http_response_t *response, int64_t from_body)
{
    int64_t seconds = http_response_retry_after (response);
    const char *ms = http_response_header (response, "retry-after-ms");
    if (seconds < 0 && ms) {
        char *end;
        long long value = strtoll (ms, &end, 10);
        if (end != ms && value >= 0)
            seconds = (value + 999) / 1000;
    }
    return seconds >= 0 ? seconds : from_body;
}

//  Try again later if allowed: nothing delivered, attempts left, a wait that
//  fits the caps and the deadline. Returns true when a retry is scheduled.
static bool
s_retry_later (llm_stream_t *self, int64_t retry_after)
{
    llm_client_t *client = self->client;
    if (self->delivered || self->attempts >= client->max_attempts)
        return false;
    int64_t wait = client->retry_base;
    for (int i = 1; i < self->attempts && wait < client->retry_max; i++)
        wait *= 2;
    if (wait > client->retry_max)
        wait = client->retry_max;
    wait += wait > 4 ? (int64_t) (randof (wait / 4)) : 0;  //  jitter
    if (retry_after >= 0) {
        if (retry_after * 1000 > client->retry_max)
            return false;
        wait = retry_after * 1000;
    }
    if (self->deadline && zclock_mono () + wait >= self->deadline)
        return false;
    core_log_info (client->log, self->request_id,
                   "llm %s: attempt %d failed, retry in %lld ms",
                   llm_provider_name (self->provider), self->attempts, (long long) wait);
    self->timer_id = -1;
    llm_parser_destroy (&self->parser);
    self->timer_id = zloop_timer (client->loop, (size_t) (wait > 0 ? wait : 1), 1,
                                  s_handle_timer, self);
    assert (self->timer_id != -1);
    return true;
}

//  A non-2xx answer: error from status and body, retried where allowed.
static void
s_fail_status (llm_stream_t *self, http_response_t *response)
{
    char message[512] = "";
    int64_t hint = -1;
    json_t *root = self->error_body
                       ? json_loadb (self->error_body, self->error_size, 0, NULL)
                       : NULL;
    llm_error_t code = llm_error_from_json (root, self->status, message, sizeof message,
                                            &hint);
    json_decref (root);
    if (!message[0] && self->error_size) {
        size_t used = 0;
        for (size_t i = 0; i < self->error_size && used < 200; i++)
            message[used++] = (unsigned char) self->error_body[i] >= 0x20
                                  ? self->error_body[i]
                                  : ' ';
        message[used] = 0;
    }
    if (!message[0])
        snprintf (message, sizeof message, "HTTP %ld", self->status);
    int64_t retry_after = s_retry_after (response, hint);
    //  429 and 5xx, and 408 and 409 as the providers' own clients do (OpenAI's
    //  429 insufficient_quota, billing, is not a wait away: not retried)
    bool quota = self->error_body && strstr (self->error_body, "\"insufficient_quota\"");
    bool retryable = ((self->status == 429 && !quota) || self->status == 408
                      || self->status == 409 || self->status >= 500);
    if (retryable && s_retry_later (self, retry_after))
        return;
    s_error (self, code, message, self->status, retry_after);
}

//  The attempt ended: deliver DONE, the error, or retry.
static void
s_on_done (http_response_t *response, void *arg)
{
    llm_stream_t *self = (llm_stream_t *) arg;
    self->http_id = 0;
    self->busy++;
    (void) s_flush (self);  //  ended or cancelled: what follows delivers nothing
    http_error_t error = http_response_error (response);
    bool started = self->parser != NULL;
    if (self->ended)
        ;  //  an ERROR was delivered already
    else if (self->done_held)
        s_deliver_held (self);
    else if (self->retry_held || self->timer_id != -1)
        s_retry_held (self);  //  (a retry is set already when the timer runs)
    else if (error == HTTP_OK && started) {
        llm_parser_finish (self->parser);
        (void) s_flush (self);
        s_retry_held (self);
        if (self->done_held && !self->ended)
            s_deliver_held (self);
    }
    else if (error == HTTP_OK)
        s_fail_status (self, response);
    else if (error == HTTP_ERR_TIMEOUT || error == HTTP_ERR_IDLE)
        s_error (self, LLM_ERROR_TIMEOUT,
                 error == HTTP_ERR_IDLE
                     ? "no data from the provider within the idle timeout"
                     : "the provider did not finish within the timeout",
                 self->status, -1);
    else if (error == HTTP_ERR_TOO_LARGE)
        s_error (self, LLM_ERROR_BAD_RESPONSE, http_response_error_text (response),
                 self->status, -1);
    else if (error == HTTP_ERR_ABORTED)
        s_error (self, LLM_ERROR_CANCELLED, "the transfer was aborted", self->status, -1);
    else if (started)
        s_error (self, LLM_ERROR_STREAM_BROKEN, http_response_error_text (response),
                 self->status, -1);
    else {
        bool retryable = error == HTTP_ERR_CONNECT
                         || (error == HTTP_ERR_NETWORK && self->status == 0);
        if (!(retryable && s_retry_later (self, -1)))
            s_error (self, LLM_ERROR_UPSTREAM, http_response_error_text (response),
                     self->status, -1);
    }
    s_leave (self);
}

//  ---------------------------------------------------------------------------
//  Attempts and the offline provider

//  Send one attempt of the stream's request.
static void
s_attempt (llm_stream_t *self)
{
    llm_client_t *client = self->client;
    int64_t left = 0;
    if (self->deadline) {
        left = self->deadline - zclock_mono ();
        if (left <= 0) {
            s_error (self, LLM_ERROR_TIMEOUT,
                     "the provider did not finish within the timeout", 0, -1);
            return;
        }
    }
    self->attempts++;
    self->status = 0;
    self->retry_held = false;
    self->error_size = 0;
    self->pending_size = 0;
    s_undirty (self);
    llm_parser_destroy (&self->parser);
    http_request_t *request = http_request_new ("POST", self->wire.url);
    for (size_t i = 0; i < self->wire.header_count; i++) {
        int rc = http_request_add_header (request, self->wire.headers[i].name,
                                          self->wire.headers[i].value);
        if (rc) {
            http_request_destroy (&request);
            s_error (self, LLM_ERROR_UPSTREAM,
                     "a header value is not allowed (check the api key)", 0, -1);
            return;
        }
    }
    http_request_set_body (request, self->wire.body, self->wire.body_size,
                           "application/json");
    http_request_set_timeout (request, left);
    http_request_set_idle_timeout (request, self->idle_ms);
    http_request_set_max_body (request, 0);
    if (self->request_id)
        http_request_set_request_id (request, self->request_id);
    http_request_set_callbacks (request, s_on_response, s_on_data, s_on_done, self);
    self->http_id = http_client_send (client->http, &request);
    if (!self->http_id)
        s_error (self, LLM_ERROR_UPSTREAM,
                 "the HTTP client refused the request (queue full or bad URL)", 0, -1);
}

//  The next offline piece, or DONE after the last.
static void
s_offline_step (llm_stream_t *self)
{
    size_t n = llm_offline_piece (self->offline_text, self->offline_offset,
                                  S_OFFLINE_PIECE);
    if (n == 0) {
        llm_event_t done = {.type = LLM_EVENT_DONE, .finish = "stop"};
        s_deliver (self, &done);
        return;
    }
    char *piece = strndup (self->offline_text + self->offline_offset, n);
    assert (piece);
    self->offline_offset += n;
    llm_event_t delta = {.type = LLM_EVENT_DELTA, .text = piece, .text_size = n};
    int rc = s_deliver (self, &delta);
    free (piece);
    if (rc == 0) {
        self->timer_id = zloop_timer (self->client->loop,
                                      (size_t) self->client->offline_pace, 1,
                                      s_handle_timer, self);
        assert (self->timer_id != -1);
    }
}

//  One-shot timer of a stream: first attempt, retry, or offline piece.
static int
s_handle_timer (zloop_t *loop, int timer_id, void *arg)
{
    llm_stream_t *self = (llm_stream_t *) arg;
    if (timer_id != self->timer_id)
        return 0;
    self->timer_id = -1;
    self->busy++;
    if (self->provider == LLM_PROVIDER_OFFLINE)
        s_offline_step (self);
    else
        s_attempt (self);
    s_leave (self);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Client and streams

//  curl's pass ended: every stream that took text pieces in it delivers them.
static void
s_on_pass (http_client_t *http, void *arg)
{
    (void) http;
    llm_client_t *client = (llm_client_t *) arg;
    while (client->dirty) {
        llm_stream_t *stream = client->dirty;
        stream->busy++;
        (void) s_flush (stream);  //  takes it off the list
        s_leave (stream);
    }
}

llm_client_t *
llm_client_new (zloop_t *loop, http_client_t *http, core_log_t *log)
{
    assert (loop);
    assert (http);
    llm_client_t *self = calloc (1, sizeof (llm_client_t));
    assert (self);
    self->loop = loop;
    self->http = http;
    self->log = log;
    self->max_attempts = 3;
    self->retry_base = 500;
    self->retry_max = 20000;
    self->max_event = 1024 * 1024;
    self->offline_pace = 15;
    int rc = http_client_attach (http, loop);
    (void) rc;  //  -1: it was attached already, which is fine
    http_client_set_pass_fn (http, s_on_pass, self);
    return self;
}

void
llm_client_destroy (llm_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    llm_client_t *self = *self_p;
    http_client_set_pass_fn (self->http, NULL, NULL);
    while (self->dirty)
        s_undirty (self->dirty);
    while (self->streams) {
        llm_stream_t *stream = self->streams;
        s_stop (stream);
        stream->ended = true;
        self->streams = stream->next;
        stream->prev = stream->next = NULL;
        stream->client = NULL;
    }
    free (self);
    *self_p = NULL;
}

void
llm_client_set_retry (llm_client_t *self, int max_attempts, int64_t base_ms,
                      int64_t max_ms)
{
    assert (self);
    self->max_attempts = max_attempts < 1 ? 1 : max_attempts;
    self->retry_base = base_ms < 1 ? 1 : base_ms;
    self->retry_max = max_ms < self->retry_base ? self->retry_base : max_ms;
}

void
llm_client_set_max_event (llm_client_t *self, size_t max_event)
{
    assert (self);
    self->max_event = max_event ? max_event : 1024 * 1024;
}

void
llm_client_set_offline_pace (llm_client_t *self, int64_t ms)
{
    assert (self);
    self->offline_pace = ms < 1 ? 1 : ms;
}

size_t
llm_client_streams (llm_client_t *self)
{
    assert (self);
    return self->stream_count;
}

llm_stream_t *
llm_stream_start (llm_client_t *client, llm_request_t *request, llm_event_fn *fn,
                  void *arg, char *error, size_t size)
{
    assert (client);
    assert (request);
    assert (fn);
    static llm_build_fn *builders[LLM_PROVIDER_COUNT] = {
        llm_openai_build, llm_anthropic_build, llm_gemini_build,
        llm_ollama_build, llm_n8n_build,       NULL};
    llm_stream_t *self = calloc (1, sizeof (llm_stream_t));
    assert (self);
    self->provider = request->provider;
    self->timer_id = -1;
    char reason[256] = "";
    llm_build_fn *build = builders[self->provider];
    if (build && build (request, &self->wire, reason, sizeof reason)) {
        if (error && size)
            snprintf (error, size, "%s", reason);
        llm_wire_clear (&self->wire);
        free (self);
        return NULL;
    }
    if (!build)
        self->offline_text = llm_offline_answer (request);
    self->client = client;
    self->fn = fn;
    self->arg = arg;
    self->idle_ms = request->idle_ms;
    self->deadline = request->timeout_ms ? zclock_mono () + request->timeout_ms : 0;
    self->request_id = request->request_id ? strdup (request->request_id) : NULL;
    self->next = client->streams;
    if (client->streams)
        client->streams->prev = self;
    client->streams = self;
    client->stream_count++;
    core_log_debug (client->log, self->request_id, "llm %s: start %s",
                    llm_provider_name (self->provider),
                    self->wire.url ? self->wire.url : "(offline)");
    self->timer_id = zloop_timer (client->loop, build ? 1 : (size_t) client->offline_pace,
                                  1, s_handle_timer, self);
    assert (self->timer_id != -1);
    return self;
}

void
llm_stream_cancel (llm_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    llm_stream_t *self = *self_p;
    *self_p = NULL;
    if (self->cancelled)
        return;
    if (self->client && !self->ended)
        core_log_debug (self->client->log, self->request_id, "llm %s: cancelled",
                        llm_provider_name (self->provider));
    s_stop (self);
    if (self->busy)
        self->cancelled = true;  //  freed when our handler unwinds
    else
        s_free (self);
}

int
llm_stream_attempts (llm_stream_t *self)
{
    assert (self);
    return self->attempts;
}

bool
llm_stream_ended (llm_stream_t *self)
{
    assert (self);
    return self->ended;
}
