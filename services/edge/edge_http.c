/*  edge_http: HTTP requests, JSON answers and SSE streams on libwebsockets.       */
#include "edge_http.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_auth.h"
#include "edge_call.h"
#include "edge_openapi.h"
#include "edge_queue.h"
#include "edge_ready.h"
#include "edge_routes.h"
#include "edge_sse.h"
#include "edge_webhook.h"

#define S_HEADER_ROOM 1024   //  bytes reserved for our own response headers
#define S_WRITE_CHUNK 65536  //  most bytes handed to one lws_write
#define S_BODY_ROOM 65536    //  most room made for a body before its bytes come
#define S_CTYPE_SIZE (EDGE_WEBHOOK_CONTENT_TYPE_MAX + 1)  //  an upload's type, NUL

struct _edge_request_t {
    edge_t *edge;               //  the edge (borrowed)
    struct lws *wsi;            //  the connection
    edge_session_t *session;    //  its per-connection data
    char method[8];             //  request method
    const char *route_label;    //  route pattern for metrics, or "unmatched"
    char request_id[65];        //  X-Request-Id
    int64_t start_us;           //  when the headers arrived
    const edge_route_t *route;  //  the matched route, NULL when none
    edge_match_t *match;        //  its parameters, until the bus request is sent (5 KiB
                                //  of room: a stream does not keep it)
    bool expect_body;           //  a body follows (Content-Length > 0)
    size_t max_body;            //  largest body the route takes
    char allow[64];             //  Allow of a 405 (the path's methods)
    edge_webhook_t *webhook;    //  a webhook's request, collected from the headers
    char ctype[S_CTYPE_SIZE];   //  an upload's Content-Type ("": none)
    bool head;                  //  HEAD: headers only
    bool accepts_sse;           //  client accepts text/event-stream
    bool sse;                   //  answered as SSE (edge_call_wants_sse)
    edge_sse_mode_t sse_mode;   //  how replies are framed as SSE
    bool openai;                //  a /v1/ path: errors in OpenAI's shape too
    char last_event_id[EDGE_SSE_ID_MAX + 1];  //  Last-Event-ID ("" when none)
    bool bad_last_event_id;                   //  Last-Event-ID present but unusable
    char *body;                               //  body received so far
    size_t body_size;                         //  its length
    size_t body_cap;                          //  bytes allocated for it
    uint64_t handle;                          //  bus request in flight (0: none)
    uint64_t ticket;                          //  admission waiting in the guard (0: none)
    bool detached;                            //  the lws header table was given back
    edge_credential_t *credential;            //  Authorization header or access cookie,
                                              //  until admission has read it (8 KiB: a
                                              //  stream does not keep it)
    char refresh[512];                        //  chorus_refresh cookie ("" when none)
    char client_ip[EDGE_AUTH_IP_MAX];         //  the client's address
    edge_identity_t identity;                 //  who the request acts for, once admitted
    int status;                               //  response status, once known
    unsigned char *out;     //  LWS_PRE + headers + body of a JSON answer
    size_t out_size;        //  bytes to send after LWS_PRE
    size_t out_off;         //  bytes sent
    bool close_after;       //  close the connection after the answer
    edge_queue_t *queue;    //  SSE: events waiting for the socket
    bool sse_open;          //  SSE: headers queued, stream counted
    bool sse_end;           //  SSE: close after the queue drains
    uint64_t event_id;      //  SSE: last generic event id
    int64_t last_write_us;  //  SSE: last time something was queued
    void *stream_cursor;    //  SSE: handle in edge->streams
    int64_t backstop_us;    //  SSE: when the edge ends the stream itself, 0 none
};

static void s_reply_fn (bus_client_t *client, const bus_reply_t *reply, void *arg);

//  Free a request: cancel its bus request, leave the stream list.
static void
s_request_destroy (edge_request_t **self_p)
{
    edge_request_t *self = *self_p;
    if (!self)
        return;
    if (self->handle) {
        bus_client_cancel (self->edge->bus, self->handle);
        bus_client_process (self->edge->bus);
    }
    if (self->ticket)
        edge_guard_cancel (self->edge->guard, self->ticket);
    if (self->stream_cursor)
        zlistx_delete (self->edge->streams, self->stream_cursor);
    if (self->sse_open)
        self->edge->sse_open--;
    if (self->session)
        self->session->request = NULL;
    edge_queue_destroy (&self->queue);
    edge_webhook_destroy (&self->webhook);
    free (self->credential);
    free (self->match);
    free (self->body);
    free (self->out);
    free (self);
    *self_p = NULL;
}

//  Record the finished request in the metrics.
static void
s_count (edge_request_t *self, int status)
{
    double seconds = (double) (edge_now_us () - self->start_us) / 1e6;
    edge_metrics_request (self->edge->metrics, self->route_label, self->method, status,
                          seconds);
}

//  Add one header by name ("x-request-id:") to the header buffer.
static int
s_add_header (struct lws *wsi, const char *name, const char *value, unsigned char **p,
              unsigned char *end)
{
    return lws_add_http_header_by_name (wsi, (const unsigned char *) name,
                                        (const unsigned char *) value,
                                        (int) strlen (value), p, end);
}

//  Headers some answers add.
typedef struct {
    const char *allow;             //  Allow (405)
    int retry_after;               //  Retry-After seconds (0: none)
    const char *www_authenticate;  //  WWW-Authenticate (401 from the guard)
    bool nosniff;                  //  X-Content-Type-Options: nosniff (webhooks)
    const char *cache_control;     //  Cache-Control (NULL: no-store)
    char *cookies[2];              //  Set-Cookie values (owned by the caller)
} s_extra_t;

//  Prepare a complete answer (headers and body) and ask for a writable callback.
//  A 204 answer has neither body nor Content-Type/Length.
static void
s_respond (edge_request_t *self, int status, const char *content_type, const char *body,
           size_t size, const s_extra_t *extra)
{
    assert (!self->out);
    self->status = status;
    bool empty = status == 204;
    size_t send_size = self->head || empty ? 0 : size;
    size_t room = S_HEADER_ROOM;
    for (int i = 0; extra && i < 2; i++)
        room += extra->cookies[i] ? strlen (extra->cookies[i]) + 32 : 0;
    self->out = malloc (LWS_PRE + room + send_size);
    assert (self->out);
    unsigned char *start = self->out + LWS_PRE, *p = start, *end = start + room;
    char length[24];
    snprintf (length, sizeof length, "%zu", size);
    int rc = lws_add_http_header_status (self->wsi, (unsigned) status, &p, end);
    if (!empty) {
        rc |= lws_add_http_header_by_token (self->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                            (const unsigned char *) content_type,
                                            (int) strlen (content_type), &p, end);
        rc |= lws_add_http_header_by_token (self->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                            (const unsigned char *) length,
                                            (int) strlen (length), &p, end);
    }
    rc |= s_add_header (self->wsi, "x-request-id:", self->request_id, &p, end);
    rc |= s_add_header (self->wsi, "cache-control:",
                        extra && extra->cache_control ? extra->cache_control : "no-store",
                        &p, end);
    if (extra && extra->allow)
        rc |= s_add_header (self->wsi, "allow:", extra->allow, &p, end);
    if (extra && extra->retry_after > 0) {
        char seconds[16];
        snprintf (seconds, sizeof seconds, "%d", extra->retry_after);
        rc |= s_add_header (self->wsi, "retry-after:", seconds, &p, end);
    }
    if (extra && extra->nosniff)
        rc |= s_add_header (self->wsi, "x-content-type-options:", "nosniff", &p, end);
    if (extra && extra->www_authenticate)
        rc |= s_add_header (self->wsi, "www-authenticate:", extra->www_authenticate, &p,
                            end);
    for (int i = 0; extra && i < 2; i++)
        if (extra->cookies[i])
            rc |= s_add_header (self->wsi, "set-cookie:", extra->cookies[i], &p, end);
    if (self->close_after)
        rc |= s_add_header (self->wsi, "connection:", "close", &p, end);
    rc |= lws_finalize_http_header (self->wsi, &p, end);
    assert (rc == 0);  //  room was counted for every header above
    if (send_size)
        memcpy (p, body, send_size);
    self->out_size = (size_t) (p - start) + send_size;
    self->out_off = 0;
    lws_callback_on_writable (self->wsi);
}

//  Answer with a JSON error body (on /v1/ in OpenAI's shape too); retry_after
//  (seconds, 0: none) becomes Retry-After ("overloaded" and "rate_limited" always
//  have one). A service's "unauthorized" is a
//  refused credential too: it gets the same WWW-Authenticate as the guard's.
static void
s_respond_error_retry (edge_request_t *self, int status, const char *code,
                       const char *message, int retry_after)
{
    char *body = edge_call_error_body (code, message, status, self->openai);
    s_extra_t extra = {.retry_after = retry_after};
    if ((strcmp (code, "overloaded") == 0 || strcmp (code, "rate_limited") == 0)
        && retry_after <= 0)
        extra.retry_after = 1;
    if (strcmp (code, "unauthorized") == 0)
        extra.www_authenticate = self->identity.kind != EDGE_CRED_NONE
                                     ? "Bearer realm=\"chorus\", error=\"invalid_token\""
                                     : "Bearer realm=\"chorus\"";
    s_respond (self, status, "application/json", body, strlen (body), &extra);
    free (body);
}

//  Answer with a JSON error body.
static void
s_respond_error (edge_request_t *self, int status, const char *code, const char *message)
{
    s_respond_error_retry (self, status, code, message, 0);
}

//  Answer with a JSON text we own.
static void
s_respond_json (edge_request_t *self, int status, const char *json)
{
    s_respond (self, status, "application/json", json, strlen (json), NULL);
}

//  Answer a refusal of the guard: 401 with WWW-Authenticate, 403, 429 or 503
//  with Retry-After.
static void
s_respond_refusal (edge_request_t *self, const edge_verdict_t *verdict)
{
    char *body = edge_call_error_body (verdict->code, verdict->message, verdict->status,
                                       self->openai);
    s_extra_t extra = {.retry_after = verdict->retry_after};
    if (verdict->status == 401)
        extra.www_authenticate = verdict->invalid_token
                                     ? "Bearer realm=\"chorus\", error=\"invalid_token\""
                                     : "Bearer realm=\"chorus\"";
    s_respond (self, verdict->status, "application/json", body, strlen (body), &extra);
    free (body);
}

//  The Set-Cookie values a successful answer of the route calls for (tokens from
//  a JSON reply, or clearing them); extra->cookies are left NULL when none.
static void
s_token_cookies (edge_request_t *self, const char *json, s_extra_t *extra)
{
    int flags = self->route->flags;
    bool secure = self->edge->cookie_secure;
    if (flags & EDGE_ROUTE_LOGOUT) {
        extra->cookies[0] = edge_auth_set_cookie (EDGE_AUTH_ACCESS_COOKIE, "", "/", 0,
                                                  secure);
        extra->cookies[1] = edge_auth_set_cookie (EDGE_AUTH_REFRESH_COOKIE, "",
                                                  "/api/v1/auth", 0, secure);
        return;
    }
    if (!(flags & EDGE_ROUTE_TOKENS) || !json)
        return;
    json_t *reply = json_loads (json, 0, NULL);
    const char *access = json_string_value (json_object_get (reply, "access_token"));
    const char *refresh = json_string_value (json_object_get (reply, "refresh_token"));
    json_t *expires = json_object_get (reply, "expires_in");
    json_t *refresh_expires = json_object_get (reply, "refresh_expires_in");
    if (access && refresh) {
        extra->cookies[0] = edge_auth_set_cookie (
            EDGE_AUTH_ACCESS_COOKIE, access, "/",
            json_is_integer (expires) ? json_integer_value (expires) : 0, secure);
        extra->cookies[1] = edge_auth_set_cookie (
            EDGE_AUTH_REFRESH_COOKIE, refresh, "/api/v1/auth",
            json_is_integer (refresh_expires) ? json_integer_value (refresh_expires) : 0,
            secure);
        if (!extra->cookies[0] || !extra->cookies[1])
            core_log_warn (self->edge->log, self->request_id,
                           "token reply holds characters a cookie cannot: no cookies");
    }
    json_decref (reply);
}

//  The final answer of a plain (not SSE) bus request: the route's status, the
//  body (none for 204), and the token cookies it calls for.
static void
s_respond_final (edge_request_t *self, const char *json)
{
    s_extra_t extra = {0};
    int status = self->route->status;
    if (status >= 200 && status < 300)
        s_token_cookies (self, json, &extra);
    if (!extra.cookies[0] || !extra.cookies[1]) {
        free (extra.cookies[0]);
        free (extra.cookies[1]);
        extra.cookies[0] = extra.cookies[1] = NULL;
    }
    s_respond (self, status, "application/json", json, strlen (json), &extra);
    free (extra.cookies[0]);
    free (extra.cookies[1]);
}

//  Queue one SSE block; on a full queue drop the stream: cancel the bus request,
//  queue a closing error event, count it. Returns -1 when dropped.
static int
s_sse_queue (edge_request_t *self, const char *text, size_t size)
{
    edge_t *edge = self->edge;
    self->last_write_us = edge_now_us ();
    //  Nothing waits before it: out at once, not after a writable callback (two
    //  epoll_ctl and a wake-up per delta). lws sends first what the socket did not
    //  take; while it holds any, blocks wait in the bounded queue.
    if (!edge_queue_count (self->queue) && !self->out && !self->sse_end
        && size <= S_WRITE_CHUNK && !lws_partial_buffered (self->wsi)) {
        if (!edge->direct)
            edge->direct = malloc (LWS_PRE + S_WRITE_CHUNK);
        assert (edge->direct);
        unsigned char *block = memcpy (edge->direct + LWS_PRE, text, size);
        if (lws_write (self->wsi, block, size, LWS_WRITE_HTTP) < (int) size)
            //  The connection broke: lws closes it, and the request with it
            lws_set_timeout (self->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return 0;
    }
    lws_callback_on_writable (self->wsi);
    if (edge_queue_push (self->queue, text, size, false) == 0)
        return 0;
    core_log_warn (edge->log, self->request_id,
                   "SSE client too slow: %zu bytes queued, stream dropped",
                   edge_queue_bytes (self->queue));
    edge_metrics_sse_dropped (edge->metrics);
    if (self->handle) {
        bus_client_cancel (edge->bus, self->handle);
        self->handle = 0;
        bus_client_process (edge->bus);
    }
    size_t dropped_size = 0;
    char *dropped = edge_sse_error (self->sse_mode, "slow_consumer",
                                    "the client did not read fast enough; stream closed",
                                    503, &self->event_id, &dropped_size);
    if (edge_queue_push (self->queue, dropped, dropped_size, true) != 0)
        assert (false);
    free (dropped);
    self->sse_end = true;
    //  A client that reads nothing at all is cut off soon.
    lws_set_timeout (self->wsi, PENDING_TIMEOUT_USER_OK, 5);
    return -1;
}

//  lws's own timeout must not cut a long answer: the bus deadline bounds it, with
//  a backstop a little later. An SSE stream's backstop is ours, checked by the
//  heartbeat sweep: lws 4.1 keeps its timeouts in one list sorted by insertion
//  from the head, so with 10,000 streams open every timeout set walked all the
//  others (half the edge's CPU while streams opened).
static void
s_backstop (edge_request_t *self)
{
    int seconds = (int) (self->edge->timeout_ms / 1000) + 5;
    if (self->stream_cursor) {
        lws_set_timeout (self->wsi, NO_PENDING_TIMEOUT, 0);
        self->backstop_us = edge_now_us () + (int64_t) seconds * 1000000;
    }
    else
        lws_set_timeout (self->wsi, PENDING_TIMEOUT_USER_OK, seconds);
}

//  Open the SSE stream: queue the response headers and count the stream.
static void
s_sse_open (edge_request_t *self)
{
    edge_t *edge = self->edge;
    self->status = 200;
    self->queue = edge_queue_new (edge->stream_queue, LWS_PRE);
    unsigned char headers[S_HEADER_ROOM], *p = headers, *end = headers + sizeof headers;
    int rc = lws_add_http_header_status (self->wsi, 200, &p, end);
    rc |= lws_add_http_header_by_token (self->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                        (const unsigned char *) "text/event-stream", 17,
                                        &p, end);
    rc |= s_add_header (self->wsi, "cache-control:", "no-cache", &p, end);
    rc |= s_add_header (self->wsi, "x-request-id:", self->request_id, &p, end);
    rc |= s_add_header (self->wsi, "x-accel-buffering:", "no", &p, end);
    rc |= s_add_header (self->wsi, "connection:", "close", &p, end);
    rc |= lws_finalize_http_header (self->wsi, &p, end);
    assert (rc == 0);
    if (edge_queue_push (self->queue, headers, (size_t) (p - headers), true) != 0)
        assert (false);
    self->sse_open = true;
    edge->sse_open++;
    self->close_after = true;  //  the stream ends with the connection
    if (!self->stream_cursor)
        self->stream_cursor = zlistx_add_end (edge->streams, self);
    self->last_write_us = edge_now_us ();
    s_backstop (self);
    if (self->route->flags & EDGE_ROUTE_RESUME)
        //  An EventSource reconnects after a drop in 1 s instead of its default 3
        //  s, within chat's grace for resuming (CHORUS_CHAT_RESUME_GRACE_MS)
        s_sse_queue (self, "retry: 1000\n\n", 13);
    lws_callback_on_writable (self->wsi);
}

//  Queue the SSE text of one reply, in the route's framing; -1 when its body is
//  not readable msgpack.
static int
s_sse_reply (edge_request_t *self, const bus_reply_t *reply, bool final)
{
    size_t size = 0;
    char *text = edge_sse_reply (self->sse_mode, reply->body, reply->size, final,
                                 &self->event_id, &size);
    if (!text)
        return -1;
    if (!self->sse_open)
        s_sse_open (self);
    s_sse_queue (self, text, size);
    free (text);
    return 0;
}

//  Queue the error that ends an SSE stream, in the route's framing.
static void
s_sse_error (edge_request_t *self, const char *code, const char *message, int status)
{
    size_t size = 0;
    char *text = edge_sse_error (self->sse_mode, code, message, status, &self->event_id,
                                 &size);
    s_sse_queue (self, text, size);
    free (text);
    self->sse_end = true;
    lws_callback_on_writable (self->wsi);  //  which ends it, once all is out
}

//  The FINAL reply of a webhook: the service's WebhookReply written out as it
//  is (schemas/channels.md), or 502 when it cannot be. Partials are ignored.
static void
s_webhook_reply (edge_request_t *self, const bus_reply_t *reply)
{
    if (reply->kind != BUS_REPLY_FINAL)
        return;
    edge_webhook_reply_t answer;
    char why[192];
    if (edge_webhook_reply_decode (reply->body, reply->size, &answer, why, sizeof why)) {
        core_log_warn (self->edge->log, self->request_id, "%s: %s", self->route_label,
                       why);
        s_respond_error (self, 502, "internal", "bad reply from service");
        return;
    }
    s_extra_t extra = {.nosniff = true};
    if (self->route->flags & EDGE_ROUTE_VERBATIM)
        extra.cache_control = "private, max-age=60";
    s_respond (self, answer.status, answer.content_type, (const char *) answer.body,
               answer.size, &extra);
    edge_webhook_reply_free (&answer);
}

//  A bus reply for an HTTP request (plain or SSE).
static void
s_reply_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    edge_request_t *self = (edge_request_t *) arg;
    bool last = reply->kind != BUS_REPLY_PARTIAL;
    if (last)
        self->handle = 0;
    if (self->sse_end || self->out)
        return;  //  already answered or dropped
    if (reply->kind == BUS_REPLY_ERROR) {
        const char *code = NULL;
        int status = edge_error_status (reply->code, &code);
        if (self->sse_open)
            s_sse_error (self, code, reply->message, status);
        else
            s_respond_error_retry (self, status, code, reply->message,
                                   (int) reply->retry_after_s);
        return;
    }
    if (self->route->flags & (EDGE_ROUTE_WEBHOOK | EDGE_ROUTE_VERBATIM)) {
        s_webhook_reply (self, reply);
        return;
    }
    if (!self->sse && !last)
        return;  //  a plain JSON client receives the final reply only
    char *json = NULL;
    int rc = self->sse                               ? s_sse_reply (self, reply, last)
             : (json = edge_call_reply_json (reply)) ? 0
                                                     : -1;
    if (rc) {
        core_log_warn (self->edge->log, self->request_id, "reply is not valid msgpack");
        if (self->sse_open)
            s_sse_error (self, "internal", "bad reply from service", 502);
        else if (last)
            s_respond_error (self, 502, "internal", "bad reply from service");
        if (self->handle) {
            bus_client_cancel (self->edge->bus, self->handle);
            self->handle = 0;
        }
        return;
    }
    if (self->sse && last) {
        self->sse_end = true;
        lws_callback_on_writable (self->wsi);  //  which ends it, once all is out
    }
    else if (!self->sse)
        s_respond_final (self, json);
    free (json);
}

//  Answer a built-in route.
static void
s_builtin (edge_request_t *self)
{
    edge_t *edge = self->edge;
    switch (self->route->kind) {
        case EDGE_ROUTE_HEALTHZ:
            s_respond_json (self, 200, "{\"status\":\"ok\"}");
            break;
        case EDGE_ROUTE_READYZ: {
            bool broker = false, database = false, redis = false;
            bool ready = edge_ready_checks (edge->ready, &broker, &database, &redis);
            if (edge->draining)
                ready = false;
            char body[160];
            snprintf (body, sizeof body,
                      "{\"status\":\"%s\",\"checks\":{\"broker\":%s,\"database\":%s,"
                      "\"redis\":%s}}",
                      ready ? "ready" : (edge->draining ? "draining" : "not_ready"),
                      broker ? "true" : "false", database ? "true" : "false",
                      redis ? "true" : "false");
            s_respond_json (self, ready ? 200 : 503, body);
            break;
        }
        case EDGE_ROUTE_METRICS: {
            const char *const *names = NULL;
            const uint32_t *replicas = NULL;
            size_t services = edge_ready_replicas (edge->ready, &names, &replicas);
            edge_gauges_t gauges = {bus_client_in_flight (edge->bus),
                                    bus_client_brokers_alive (edge->bus),
                                    edge->sse_open,
                                    edge->ws_open,
                                    services,
                                    names,
                                    replicas};
            size_t size = 0;
            char *text = edge_metrics_render (edge->metrics, &gauges, &size);
            s_respond (self, 200, "text/plain; version=0.0.4; charset=utf-8", text, size,
                       NULL);
            free (text);
            break;
        }
        case EDGE_ROUTE_OPENAPI:
            s_respond (self, 200, "application/json", edge->openapi, edge->openapi_size,
                       NULL);
            break;
        case EDGE_ROUTE_JWKS:
            if (edge->jwks)
                s_respond (self, 200, "application/jwk-set+json", edge->jwks,
                           strlen (edge->jwks), NULL);
            else
                s_respond_error (
                    self, 404, "not_found",
                    "access tokens are HS256 here: there are no public keys");
            break;
        case EDGE_ROUTE_WS:
            s_respond_error (self, 426, "upgrade_required",
                             "this route takes a WebSocket upgrade");
            break;
        default:
            s_respond_error (self, 500, "internal", "unhandled route");
    }
}

//  Give the lws header table back: everything needed from the headers is copied,
//  and lws would close a connection holding it idle past timeout_secs_ah_idle;
//  then the answer's backstop replaces lws's own timeout (s_backstop).
static void
s_detach (edge_request_t *self)
{
    if (self->detached)
        return;
    self->detached = true;
    lws_http_headers_detach (self->wsi);
    s_backstop (self);
}

//  Without refresh_token in the body, the chorus_refresh cookie's value (refresh
//  and logout, auth.md "Cookies"). Returns the body to send (a new reference).
static json_t *
s_refresh_from_cookie (edge_request_t *self, json_t *body)
{
    if (!(self->route->flags & EDGE_ROUTE_REFRESH_COOKIE) || !*self->refresh
        || (body && json_object_get (body, "refresh_token")))
        return body;
    if (!body)
        body = json_object ();
    json_object_set_new (body, "refresh_token", json_string (self->refresh));
    return body;
}

static void s_admitted (edge_request_t *self, const edge_verdict_t *verdict);

//  The guard's later verdict on a parked request.
static void
s_admitted_fn (const edge_verdict_t *verdict, void *arg)
{
    edge_request_t *self = (edge_request_t *) arg;
    self->ticket = 0;
    s_admitted (self, verdict);
}

//  The bus request is out: its parameters are no longer needed.
static void
s_forget_match (edge_request_t *self)
{
    free (self->match);
    self->match = NULL;
}

//  Headers and body are in: answer a built-in route, or ask the guard whether
//  the request may pass (it may park it), then send the bus request.
static void
s_dispatch (edge_request_t *self)
{
    edge_t *edge = self->edge;
    if (self->route->kind != EDGE_ROUTE_BUS) {
        s_builtin (self);
        return;
    }
    if (edge->draining) {
        self->close_after = true;
        s_respond_error (self, 503, "shutting_down", "the edge is shutting down");
        return;
    }
    edge_verdict_t verdict;
    if (self->webhook)
        self->ticket = edge_guard_admit_webhook (
            edge->guard, self->match->params[1].value, s_admitted_fn, self, &verdict);
    else
        self->ticket = edge_guard_admit (edge->guard, self->route->need, self->method,
                                         self->credential, self->client_ip, true,
                                         s_admitted_fn, self, &verdict);
    //  The guard has read the credential (verified it, or hashed a key's)
    free (self->credential);
    self->credential = NULL;
    if (self->ticket) {
        s_detach (self);
        edge_wake_guard (edge);
        bus_client_process (edge->bus);  //  the answer may be there already
        return;
    }
    s_admitted (self, &verdict);
}

//  Send a webhook: its WebhookRequest with the body as it came (a GET's is not
//  passed), for nobody, with the webhook deadline; resent once on broker_lost.
static void
s_webhook_send (edge_request_t *self)
{
    edge_t *edge = self->edge;
    if (strcmp (self->method, "POST") == 0)
        edge_webhook_set_body (self->webhook, &self->body, self->body_size);
    size_t size = 0;
    void *packed = edge_webhook_encode (self->webhook, &size);
    edge_webhook_destroy (&self->webhook);
    free (self->body);
    self->body = NULL;
    if (!packed) {
        s_respond_error (self, 500, "internal", "the webhook cannot be passed on");
        return;
    }
    edge_call_error_t error;
    self->handle = edge_call_send_raw (
        edge->bus, edge_routes_service (self->match), self->route->command, packed, size,
        NULL, self->client_ip, self->request_id, edge->webhook_timeout_ms, true,
        s_reply_fn, self, &error);
    free (packed);
    s_forget_match (self);
    if (self->handle) {
        s_detach (self);
        bus_client_process (edge->bus);
    }
    else if (!self->out)
        s_respond_error (self, error.status, error.code, error.message);
}

//  Send an upload (EDGE_ROUTE_UPLOAD): the path parameters, the Content-Type and
//  the body's bytes as they came, as the admitted identity; no JSON is parsed.
static void
s_upload_send (edge_request_t *self)
{
    edge_t *edge = self->edge;
    size_t size = 0;
    void *packed = edge_call_upload_body (self->match, *self->ctype ? self->ctype : NULL,
                                          self->body ? self->body : "", self->body_size,
                                          &size);
    free (self->body);
    self->body = NULL;
    edge_call_error_t error;
    self->handle = edge_call_send_raw (edge->bus, edge_routes_service (self->match),
                                       self->route->command, packed, size,
                                       &self->identity, self->client_ip, self->request_id,
                                       edge->timeout_ms, false, s_reply_fn, self, &error);
    free (packed);
    s_forget_match (self);
    if (self->handle) {
        s_detach (self);
        bus_client_process (edge->bus);
    }
    else if (!self->out)
        s_respond_error (self, error.status, error.code, error.message);
}

//  The guard's verdict: refuse, or send the bus request as the identity.
static void
s_admitted (edge_request_t *self, const edge_verdict_t *verdict)
{
    edge_t *edge = self->edge;
    if (verdict->status) {
        s_respond_refusal (self, verdict);
        return;
    }
    if (self->webhook) {
        s_webhook_send (self);
        return;
    }
    self->identity = verdict->identity;
    if (self->route->flags & EDGE_ROUTE_UPLOAD) {
        s_upload_send (self);
        return;
    }
    char message[256];
    bool ok = true;
    json_t *body = edge_call_parse_body (self->body, self->body_size, &ok, message,
                                         sizeof message);
    free (self->body);  //  a stream does not keep the bytes its JSON came in
    self->body = NULL;
    self->body_size = self->body_cap = 0;
    if (!ok) {
        s_respond_error (self, 400, "invalid_json", message);
        return;
    }
    const edge_route_t *route = self->route;
    if (body && !(route->flags & EDGE_ROUTE_OPENAI)
        && edge_call_unknown_field (edge_openapi_message (route->request_schema), body,
                                    message, sizeof message)) {
        json_decref (body);
        s_respond_error (self, 400, "bad_request", message);
        return;
    }
    if (self->bad_last_event_id && (self->route->flags & EDGE_ROUTE_RESUME)) {
        json_decref (body);
        s_respond_error (self, 400, "bad_request",
                         "Last-Event-ID must be 1-128 printable characters");
        return;
    }
    //  SSE or JSON, and what the route's streaming adds to the arguments
    int flags = self->route->flags;
    self->sse = edge_call_wants_sse (self->match, body, self->accepts_sse);
    self->sse_mode = flags & EDGE_ROUTE_OPENAI   ? EDGE_SSE_OPENAI
                     : flags & EDGE_ROUTE_EVENTS ? EDGE_SSE_EVENTS
                                                 : EDGE_SSE_GENERIC;
    body = edge_call_stream_body (self->match, body, self->sse, self->last_event_id);
    body = s_refresh_from_cookie (self, body);
    edge_call_error_t error;
    self->handle = edge_call_send (edge->bus, self->match, body, &self->identity,
                                   self->client_ip, self->request_id, edge->timeout_ms,
                                   s_reply_fn, self, &error);
    json_decref (body);
    s_forget_match (self);
    if (self->handle && self->sse) {
        //  Heartbeats start the stream if no reply comes within keepalive_ms.
        self->last_write_us = edge_now_us ();
        self->stream_cursor = zlistx_add_end (edge->streams, self);
    }
    if (self->handle) {
        s_detach (self);
        bus_client_process (edge->bus);
    }
    if (!self->handle && !self->out && !self->sse_open)
        s_respond_error (self, error.status, error.code, error.message);
}

//  A request header's value as a new string (its length in *len), or NULL.
static char *
s_header (struct lws *wsi, enum lws_token_indexes token, int *len)
{
    int total = lws_hdr_total_length (wsi, token);
    if (total <= 0)
        return NULL;
    char *value = malloc ((size_t) total + 1);
    assert (value);
    *len = lws_hdr_copy (wsi, value, total + 1, token);
    if (*len < 0) {
        free (value);
        return NULL;
    }
    return value;
}

//  The client's address: X-Forwarded-For's last hop when the edge trusts its
//  proxy, else the peer.
static void
s_client_ip (edge_t *edge, struct lws *wsi, char *client_ip, size_t client_ip_size)
{
    int xff_len = 0;
    char peer[EDGE_AUTH_IP_MAX] = "";
    lws_get_peer_simple (wsi, peer, sizeof peer);
    const char *address = peer;
    if (strncmp (address, "::ffff:", 7) == 0 && strchr (address, '.'))
        address += 7;  //  an IPv4 client on a dual-stack socket
    char *xff = edge->trust_proxy ? s_header (wsi, WSI_TOKEN_X_FORWARDED_FOR, &xff_len)
                                  : NULL;
    (void) edge_auth_client_ip (address, xff, (size_t) xff_len, edge->trust_proxy,
                                client_ip, client_ip_size);
    free (xff);
}

void
edge_http_credentials (edge_t *edge, struct lws *wsi, edge_credential_t *credential,
                       char *refresh, size_t refresh_size, char *client_ip,
                       size_t client_ip_size)
{
    int auth_len = 0, cookie_len = 0;
    char *authorization = s_header (wsi, WSI_TOKEN_HTTP_AUTHORIZATION, &auth_len);
    char *cookie = s_header (wsi, WSI_TOKEN_HTTP_COOKIE, &cookie_len);
    edge_auth_credential (authorization, (size_t) auth_len, cookie, (size_t) cookie_len,
                          credential);
    refresh[0] = '\0';
    if (cookie
        && edge_auth_cookie (cookie, (size_t) cookie_len, EDGE_AUTH_REFRESH_COOKIE,
                             refresh, refresh_size)
               < 0)
        refresh[0] = '\0';
    free (cookie);
    free (authorization);
    s_client_ip (edge, wsi, client_ip, client_ip_size);
}

//  Detect the method of the request.
static const char *
s_method (struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes token;
        const char *name;
    } methods[] = {
        {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
        {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
        {WSI_TOKEN_HEAD_URI, "HEAD"},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length (wsi, methods[i].token) > 0)
            return methods[i].name;
    return "OTHER";
}

//  405 with the methods the path takes in Allow.
static void
s_respond_bad_method (edge_request_t *self)
{
    char *body = edge_call_error_body (
        "method_not_allowed", "the route does not take this method", 405, self->openai);
    s_extra_t extra = {.allow = self->allow};
    s_respond (self, 405, "application/json", body, strlen (body), &extra);
    free (body);
}

//  A webhook's request from the headers (schemas/channels.md): the path's platform
//  and connection id, the query and the named headers; never a credential. Returns
//  -1 with a message when the query or a header is over its bound.
static int
s_webhook_collect (edge_request_t *self, char *message, size_t size)
{
    struct lws *wsi = self->wsi;
    self->webhook = edge_webhook_new (self->match->params[0].value,
                                      self->match->params[1].value, self->method);
    int total = lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total > 0) {
        char *fragment = malloc ((size_t) total + 1);
        assert (fragment);
        int rc = 0;
        for (int i = 0; rc == 0; i++) {
            int len = lws_hdr_copy_fragment (wsi, fragment, total + 1,
                                             WSI_TOKEN_HTTP_URI_ARGS, i);
            if (len < 0)
                break;
            rc = edge_webhook_add_query (self->webhook, fragment, (size_t) len);
        }
        free (fragment);
        if (rc) {
            snprintf (message, size, "the query is longer than %d bytes",
                      EDGE_WEBHOOK_QUERY_MAX);
            return -1;
        }
    }
    for (int h = 0; h < EDGE_WEBHOOK_HEADERS; h++) {
        int len = 0;
        char *value = NULL;
        const char *key = edge_webhook_header_key ((edge_webhook_header_t) h);
        if (h == EDGE_WEBHOOK_CONTENT_TYPE)
            value = s_header (wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, &len);
        else if ((len = lws_hdr_custom_length (wsi, key, (int) strlen (key))) >= 0) {
            value = malloc ((size_t) len + 1);
            assert (value);
            len = lws_hdr_custom_copy (wsi, value, len + 1, key, (int) strlen (key));
        }
        int rc = value && len >= 0 ? edge_webhook_set_header (
                     self->webhook, (edge_webhook_header_t) h, value, (size_t) len)
                                   : 0;
        free (value);
        if (rc) {
            snprintf (message, size, "%s is longer than %d bytes or not UTF-8",
                      edge_webhook_header_name ((edge_webhook_header_t) h),
                      EDGE_WEBHOOK_HEADER_MAX);
            return -1;
        }
    }
    return 0;
}

//  New request: headers are parsed, path in `in`.
static int
s_on_http (edge_t *edge, struct lws *wsi, edge_session_t *session, const char *path)
{
    if (session->request)  //  pipelined before the previous ended: not supported
        return -1;
    edge_request_t *self = calloc (1, sizeof *self);
    assert (self);
    self->edge = edge;
    self->wsi = wsi;
    self->session = session;
    session->request = self;
    self->start_us = edge_now_us ();
    self->route_label = "unmatched";
    snprintf (self->method, sizeof self->method, "%s", s_method (wsi));
    self->head = strcmp (self->method, "HEAD") == 0;

    char value[256];
    int n = lws_hdr_custom_copy (wsi, value, sizeof value, "x-request-id:", 13);
    if (n > 0 && edge_request_id_valid (value, (size_t) n))
        memcpy (self->request_id, value, (size_t) n + 1);  //  n <= 64
    else
        edge_request_id_generate (self->request_id, sizeof self->request_id);
    n = lws_hdr_copy (wsi, value, sizeof value, WSI_TOKEN_HTTP_ACCEPT);
    self->accepts_sse = n > 0 && edge_accepts_event_stream (value, (size_t) n);
    //  EventSource sends the id of the last event it saw when it reconnects
    if (lws_hdr_custom_length (wsi, "last-event-id:", 14) > 0) {
        n = lws_hdr_custom_copy (wsi, value, sizeof value, "last-event-id:", 14);
        if (n > 0 && edge_sse_id_valid (value, (size_t) n))
            memcpy (self->last_event_id, value, (size_t) n + 1);  //  n <= 128
        else
            self->bad_last_event_id = true;
    }
    self->openai = strncmp (path, "/v1/", 4) == 0;

    //  The route first: it decides the body limit, and webhooks read no credential
    self->match = calloc (1, sizeof (edge_match_t));
    assert (self->match);
    edge_match_result_t result = edge_routes_match (self->method, path, self->match,
                                                    self->allow, sizeof self->allow);
    self->route = result == EDGE_MATCH_OK ? self->match->route : NULL;
    bool webhook = result == EDGE_MATCH_OK && (self->route->flags & EDGE_ROUTE_WEBHOOK);
    bool upload = result == EDGE_MATCH_OK && (self->route->flags & EDGE_ROUTE_UPLOAD);
    self->max_body = webhook  ? edge->webhook_max_body
                     : upload ? edge->avatar_max_body
                              : edge->max_body;
    if (result == EDGE_MATCH_OK)
        self->route_label = self->route->pattern;
    if (webhook)
        s_client_ip (edge, wsi, self->client_ip, sizeof self->client_ip);
    else {
        self->credential = calloc (1, sizeof (edge_credential_t));
        assert (self->credential);
        edge_http_credentials (edge, wsi, self->credential, self->refresh,
                               sizeof self->refresh, self->client_ip,
                               sizeof self->client_ip);
    }

    //  Body size, checked before any of it is read.
    long long content_length = 0;
    if (lws_hdr_copy (wsi, value, sizeof value, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *end = NULL;
        content_length = strtoll (value, &end, 10);
        if (end == value || *end || content_length < 0) {
            self->close_after = true;
            s_respond_error (self, 400, "bad_request", "bad Content-Length");
            return 0;
        }
    }
    if (lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        self->close_after = true;
        s_respond_error (self, 411, "length_required",
                         "chunked request bodies are not accepted; send Content-Length");
        return 0;
    }
    if ((unsigned long long) content_length > self->max_body) {
        self->close_after = true;
        char message[96];
        snprintf (message, sizeof message, "the body is larger than %zu bytes",
                  self->max_body);
        s_respond_error (self, 413, "payload_too_large", message);
        return 0;
    }
    self->expect_body = content_length > 0;
    if (self->expect_body) {
        //  Room for what was announced, no more, up to S_BODY_ROOM: a bigger body
        //  makes its room as its bytes come (an announced length alone holds none)
        self->body_cap = (size_t) content_length < S_BODY_ROOM
                             ? (size_t) content_length + 1
                             : S_BODY_ROOM;
        self->body = malloc (self->body_cap);
        assert (self->body);
    }

    //  A webhook's query and headers, or the query fragments lws has decoded.
    if (webhook) {
        char message[128];
        if (s_webhook_collect (self, message, sizeof message)) {
            self->close_after = self->expect_body;  //  its body is not read
            s_respond_error (self, 400, "bad_request", message);
            return 0;
        }
    }
    else if (upload) {
        //  The type goes to the service, which checks it: only its printable part
        int len = lws_hdr_copy (wsi, self->ctype, sizeof self->ctype,
                                WSI_TOKEN_HTTP_CONTENT_TYPE);
        for (int i = 0; i < len; i++)
            if ((unsigned char) self->ctype[i] < 0x20
                || (unsigned char) self->ctype[i] >= 0x7f)
                self->ctype[i] = '?';
        if (len < 0)
            self->ctype[0] = 0;
    }
    else if (result == EDGE_MATCH_OK) {
        char fragment[2 * EDGE_PARAM_SIZE + 2];
        for (int i = 0; i < EDGE_MAX_QUERY; i++) {
            int len = lws_hdr_copy_fragment (wsi, fragment, sizeof fragment,
                                             WSI_TOKEN_HTTP_URI_ARGS, i);
            if (len < 0)
                break;
            if (len > 0)
                (void) edge_routes_add_query (self->match, fragment, (size_t) len);
        }
    }
    if (self->expect_body) {
        //  Answer once the body is in, so the connection stays in step.
        if (result != EDGE_MATCH_OK)
            self->status = (int) result;
        return 0;
    }
    if (result == EDGE_MATCH_NOT_FOUND)
        s_respond_error (self, 404, "not_found", "no such route");
    else if (result == EDGE_MATCH_BAD_METHOD)
        s_respond_bad_method (self);
    else
        s_dispatch (self);
    return 0;
}

//  A piece of the request body (kept as bytes, with a NUL after them).
static int
s_on_body (edge_request_t *self, const void *data, size_t size)
{
    if (!self || self->out)
        return 0;  //  already answered (413, 411): ignore the rest
    if (self->body_size + size > self->max_body) {
        self->close_after = true;
        s_respond_error (self, 413, "payload_too_large", "the body is too large");
        return 0;
    }
    size_t need = self->body_size + size + 1;
    if (need > self->body_cap) {  //  a body bigger than S_BODY_ROOM
        size_t cap = self->body_cap ? self->body_cap : 4096;
        while (cap < need)
            cap *= 2;
        if (cap > self->max_body + 1)
            cap = self->max_body + 1;
        char *body = realloc (self->body, cap);
        assert (body);
        self->body = body;
        self->body_cap = cap;
    }
    memcpy (self->body + self->body_size, data, size);
    self->body_size += size;
    self->body[self->body_size] = 0;
    return 0;
}

//  The body is complete.
static int
s_on_body_done (edge_request_t *self)
{
    if (!self || self->out)
        return 0;
    if (self->status == 404)
        s_respond_error (self, 404, "not_found", "no such route");
    else if (self->status == 405)
        s_respond_bad_method (self);
    else
        s_dispatch (self);
    return 0;
}

//  The answer is out: count it, then close or get ready for the next request.
static int
s_finish (edge_request_t *self)
{
    struct lws *wsi = self->wsi;
    s_count (self, self->status);
    bool close = self->close_after;
    s_request_destroy (&self);
    if (close)
        return -1;
    return lws_http_transaction_completed (wsi) ? -1 : 0;
}

//  The socket can take more.
static int
s_on_writable (edge_request_t *self)
{
    if (!self)
        return 0;
    if (self->out) {
        size_t left = self->out_size - self->out_off;
        size_t n = left < S_WRITE_CHUNK ? left : S_WRITE_CHUNK;
        unsigned char *data = self->out + LWS_PRE + self->out_off;
        if (self->out_off) {
            //  lws may write framing before data: give it fresh headroom.
            memmove (self->out + LWS_PRE, data, left);
            self->out_size = left;
            self->out_off = 0;
            data = self->out + LWS_PRE;
        }
        if (lws_write (self->wsi, data, n, LWS_WRITE_HTTP) < (int) n)
            return -1;
        self->out_off += n;
        if (self->out_off < self->out_size) {
            lws_callback_on_writable (self->wsi);
            return 0;
        }
        return s_finish (self);
    }
    if (self->queue) {
        size_t size = 0;
        unsigned char *data = edge_queue_peek (self->queue, &size);
        if (data) {
            if (lws_write (self->wsi, data, size, LWS_WRITE_HTTP) < (int) size)
                return -1;
            edge_queue_pop (self->queue);
        }
        if (edge_queue_count (self->queue))
            lws_callback_on_writable (self->wsi);
        else if (self->sse_end)
            return s_finish (self);
    }
    return 0;
}

int
edge_http_callback (edge_t *edge, struct lws *wsi, enum lws_callback_reasons reason,
                    edge_session_t *session, void *in, size_t len)
{
    switch (reason) {
        case LWS_CALLBACK_HTTP:
            return s_on_http (edge, wsi, session, (const char *) in);
        case LWS_CALLBACK_HTTP_BODY:
            return s_on_body (session->request, in, len);
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            return s_on_body_done (session->request);
        case LWS_CALLBACK_HTTP_WRITEABLE:
            return s_on_writable (session->request);
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
            if (session && session->request) {
                edge_request_t *self = session->request;
                //  The client left before the answer was out.
                s_count (self, self->sse_open ? self->status : 499);
                s_request_destroy (&self);
            }
            return 0;
        default:
            return lws_callback_http_dummy (wsi, reason, session, in, len);
    }
}

void
edge_http_heartbeat (edge_t *edge)
{
    int64_t now = edge_now_us ();
    edge_request_t *self = (edge_request_t *) zlistx_first (edge->streams);
    while (self) {
        edge_request_t *next = (edge_request_t *) zlistx_next (edge->streams);
        if (self->backstop_us && now >= self->backstop_us) {
            self->backstop_us = 0;
            lws_set_timeout (self->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        if (!self->sse_end && !self->out
            && now - self->last_write_us >= edge->keepalive_ms * 1000) {
            if (!self->sse_open)
                s_sse_open (self);
            s_sse_queue (self, ": keepalive\n\n", 13);
        }
        self = next;
    }
}

size_t
edge_http_streams_open (edge_t *edge)
{
    return edge->sse_open;
}
