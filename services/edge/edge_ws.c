/*  edge_ws: the WebSocket API: JSON messages, bus requests, bounded send queue.  */
#include "edge_ws.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_call.h"
#include "edge_live.h"
#include "edge_queue.h"
#include "edge_routes.h"

#define S_MAX_CALLS 64  //  requests one connection may have in flight

typedef struct {
    edge_ws_t *conn;    //  the connection it belongs to
    char id[65];        //  the client's id for it
    uint64_t handle;    //  bus handle
    uint64_t ticket;    //  admission waiting in the guard (0: none)
    bool auth;          //  an "auth" message, not a request
    bool watch;         //  a "subscribe" to a conversation: read it first
    bool watch_tenant;  //  a "subscribe" to the tenant's events
    char conversation[EDGE_AUTH_ID_MAX + 1];  //  the conversation subscribed to
    char tenant_id[EDGE_AUTH_ID_MAX + 1];     //  who subscribes
    char user_id[EDGE_AUTH_ID_MAX + 1];
    edge_match_t match;  //  the route and its parameters (requests)
    json_t *body;        //  the request body, until sent
    void *cursor;        //  its place in conn->calls
} s_call_t;

struct _edge_ws_t {
    edge_t *edge;                      //  the edge (borrowed)
    struct lws *wsi;                   //  the connection
    edge_queue_t *queue;               //  messages waiting for the socket
    char *rx;                          //  message being received
    size_t rx_size;                    //  its length so far
    int close_code;                    //  close with this status when writable (0: open)
    const char *close_why;             //  and this reason
    zlistx_t *calls;                   //  s_call_t * in flight
    edge_credential_t credential;      //  from the upgrade request or an auth message
    char client_ip[EDGE_AUTH_IP_MAX];  //  the client's address
};

//  Stop a call's work: its admission and its bus request; free it (the caller
//  takes it off conn->calls).
static void
s_call_free (s_call_t *call)
{
    edge_t *edge = call->conn->edge;
    if (call->ticket)
        edge_guard_cancel (edge->guard, call->ticket);
    if (call->handle)
        bus_client_cancel (edge->bus, call->handle);
    json_decref (call->body);
    free (call);
}

//  Close the connection soon with a status: cancel every call, stop reading.
static void
s_close (edge_ws_t *self, int code, const char *why)
{
    if (self->close_code)
        return;
    self->close_code = code;
    self->close_why = why;
    for (s_call_t *call = (s_call_t *) zlistx_first (self->calls); call;
         call = (s_call_t *) zlistx_next (self->calls))
        s_call_free (call);
    zlistx_purge (self->calls);
    bus_client_process (self->edge->bus);
    lws_callback_on_writable (self->wsi);
}

//  Queue one text message; a full queue closes the connection with 1008.
static void
s_send (edge_ws_t *self, const char *text, size_t size)
{
    if (self->close_code)
        return;
    if (edge_queue_push (self->queue, text, size, false) != 0) {
        core_log_warn (self->edge->log, NULL,
                       "WebSocket client too slow: %zu bytes queued, closed",
                       edge_queue_bytes (self->queue));
        edge_metrics_ws_dropped (self->edge->metrics);
        s_close (self, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
        return;
    }
    lws_callback_on_writable (self->wsi);
}

//  Send {"type":type,"id":id,<key>:<json>}; id and json may be NULL.
static void
s_send_typed (edge_ws_t *self, const char *type, const char *id, const char *key,
              const char *json)
{
    char escaped[2 * 64 * 6 + 1] = "";
    if (id)
        core_json_escape (escaped, sizeof escaped, id);
    char *text = NULL;
    int size = asprintf (&text, "{\"type\":\"%s\"%s%s%s%s%s%s%s}", type,
                         id ? ",\"id\":\"" : "", id ? escaped : "", id ? "\"" : "",
                         json ? ",\"" : "", json ? key : "", json ? "\":" : "",
                         json ? json : "");
    assert (size > 0);
    s_send (self, text, (size_t) size);
    free (text);
}

//  Send an error message {"type":"error","id":...,"error":{"code","message"}}.
static void
s_send_error (edge_ws_t *self, const char *id, const char *code, const char *message)
{
    char *body = edge_call_error_json (code, message);
    //  body is {"error":{...}}: send its inner object under "error".
    size_t len = strlen (body);
    body[len - 1] = 0;
    s_send_typed (self, "error", id, "error", body + strlen ("{\"error\":"));
    free (body);
}

static s_call_t *
s_call_find (edge_ws_t *self, const char *id)
{
    for (s_call_t *call = (s_call_t *) zlistx_first (self->calls); call;
         call = (s_call_t *) zlistx_next (self->calls))
        if (strcmp (call->id, id) == 0)
            return call;
    return NULL;
}

//  End a call: forget it and stop what it still waits for.
static void
s_call_end (s_call_t *call)
{
    zlistx_delete (call->conn->calls, call->cursor);
    s_call_free (call);
}

//  An event for this connection (edge_live).
static void
s_live_send (void *watcher, const char *text, size_t size)
{
    s_send ((edge_ws_t *) watcher, text, size);
}

//  Answer a subscribe that is allowed: watch, and say so (with who is there).
static void
s_watched (edge_ws_t *self, s_call_t *call)
{
    edge_live_t *live = self->edge->live;
    if (!live) {
        s_send_error (self, call->id, "unavailable", "live events are not available");
        return;
    }
    int rc = call->watch_tenant
                 ? edge_live_watch_tenant (live, self, s_live_send, call->tenant_id,
                                           call->user_id)
                 : edge_live_watch (live, self, s_live_send, call->tenant_id,
                                    call->conversation, call->user_id);
    if (rc != 0) {
        s_send_error (self, call->id, "overloaded", "too many subscriptions");
        return;
    }
    json_t *answer = json_pack ("{s:s}", "type", "subscribed");
    if (*call->id)
        json_object_set_new (answer, "id", json_string (call->id));
    if (call->watch_tenant)
        json_object_set_new (answer, "scope", json_string ("tenant"));
    else {
        char *present = edge_live_presence (live, call->conversation);
        json_object_set_new (answer, "conversation_id", json_string (call->conversation));
        json_object_set_new (answer, "presence", json_loads (present, 0, NULL));
        free (present);
    }
    char *text = json_dumps (answer, JSON_COMPACT);
    json_decref (answer);
    s_send (self, text, strlen (text));
    free (text);
}

//  A bus reply for a WebSocket request.
static void
s_reply_fn (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    edge_ws_t *self = call->conn;
    if (reply->kind != BUS_REPLY_PARTIAL)
        call->handle = 0;
    if (call->watch) {
        //  The conversation could be read as the user: watch it
        if (reply->kind == BUS_REPLY_ERROR) {
            const char *code = NULL;
            edge_error_status (reply->code, &code);
            s_send_error (self, call->id, code, reply->message);
        }
        else if (reply->kind == BUS_REPLY_FINAL)
            s_watched (self, call);
        if (reply->kind != BUS_REPLY_PARTIAL && !self->close_code)
            s_call_end (call);
        return;
    }
    if (reply->kind == BUS_REPLY_ERROR) {
        const char *code = NULL;
        edge_error_status (reply->code, &code);
        s_send_error (self, call->id, code, reply->message);
    }
    else {
        char *json = edge_call_reply_json (reply);
        if (json)
            s_send_typed (self, reply->kind == BUS_REPLY_FINAL ? "final" : "partial",
                          call->id, "data", json);
        else
            s_send_error (self, call->id, "internal", "bad reply from service");
        free (json);
    }
    if (reply->kind != BUS_REPLY_PARTIAL && !self->close_code)
        s_call_end (call);
}

//  A new call with the client's id (may be NULL), on conn->calls.
static s_call_t *
s_call_new (edge_ws_t *self, const char *id)
{
    s_call_t *call = calloc (1, sizeof *call);
    assert (call);
    call->conn = self;
    snprintf (call->id, sizeof call->id, "%s", id ? id : "");
    call->cursor = zlistx_add_end (self->calls, call);
    return call;
}

//  The guard's verdict on a request or an auth message: refuse, answer the auth
//  message, or send the bus request as the identity.
static void
s_admitted (s_call_t *call, const edge_verdict_t *verdict)
{
    edge_ws_t *self = call->conn;
    edge_t *edge = self->edge;
    const char *id = call->auth && !*call->id ? NULL : call->id;
    if (verdict->status) {
        if (call->auth)
            self->credential.kind = EDGE_CRED_NONE;  //  later requests are anonymous
        s_send_error (self, id, verdict->code, verdict->message);
        s_call_end (call);
        return;
    }
    snprintf (call->tenant_id, sizeof call->tenant_id, "%s", verdict->identity.tenant_id);
    snprintf (call->user_id, sizeof call->user_id, "%s", verdict->identity.user_id);
    if (call->watch_tenant) {
        s_watched (self, call);
        s_call_end (call);
        return;
    }
    if (call->auth) {
        json_t *who = json_pack (
            "{s:s, s:s, s:s, s:s}", "kind",
            verdict->identity.kind == EDGE_CRED_API_KEY ? "api_key" : "jwt", "user_id",
            verdict->identity.user_id, "tenant_id", verdict->identity.tenant_id, "role",
            auth_role_name (verdict->identity.role));
        char *json = who ? json_dumps (who, JSON_COMPACT) : NULL;
        s_send_typed (self, "authenticated", id, "data", json ? json : "{}");
        free (json);
        json_decref (who);
        s_call_end (call);
        return;
    }
    //  Partials always stream here: event routes get "stream": true
    call->body = edge_call_stream_body (&call->match, call->body, true, NULL);
    char request_id[37];
    edge_request_id_generate (request_id, sizeof request_id);
    edge_call_error_t error;
    call->handle = edge_call_send (edge->bus, &call->match, call->body,
                                   &verdict->identity, self->client_ip, request_id,
                                   edge->timeout_ms, s_reply_fn, call, &error);
    json_decref (call->body);
    call->body = NULL;
    if (!call->handle) {
        s_send_error (self, call->id, error.code, error.message);
        s_call_end (call);
    }
    else
        bus_client_process (edge->bus);  //  may end the call at once
}

//  The guard's later verdict on a parked call.
static void
s_admitted_fn (const edge_verdict_t *verdict, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    call->ticket = 0;
    s_admitted (call, verdict);
}

//  Ask the guard about a call (need, method: its route's; bus: a request that
//  counts against the budget); the verdict comes now or later (s_admitted_fn).
static void
s_admit (s_call_t *call, edge_need_t need, const char *method, bool bus)
{
    edge_ws_t *self = call->conn;
    edge_t *edge = self->edge;
    edge_verdict_t verdict;
    call->ticket = edge_guard_admit (edge->guard, need, method, &self->credential,
                                     self->client_ip, bus, s_admitted_fn, call, &verdict);
    if (call->ticket) {
        edge_wake_guard (edge);
        bus_client_process (edge->bus);  //  the verdict may be there already
    }
    else
        s_admitted (call, &verdict);
}

//  {"type":"auth","token":...}: the connection's credential from now on, checked
//  at once (answered "authenticated" or with an error).
static void
s_handle_auth (edge_ws_t *self, json_t *msg, const char *id)
{
    const char *token = json_string_value (json_object_get (msg, "token"));
    if (!token || !*token) {
        s_send_error (self, id, "bad_request", "an auth message needs a token");
        return;
    }
    if (zlistx_size (self->calls) >= S_MAX_CALLS) {
        s_send_error (self, id, "overloaded", "too many requests in flight");
        return;
    }
    size_t len = strlen (token);
    self->credential.from_cookie = false;
    self->credential.kind = len < sizeof self->credential.token
                                ? edge_auth_classify (token, len)
                                : EDGE_CRED_MALFORMED;
    if (self->credential.kind == EDGE_CRED_MALFORMED)
        self->credential.token[0] = '\0';
    else
        memcpy (self->credential.token, token, len + 1);
    s_call_t *call = s_call_new (self, id);
    call->auth = true;
    s_admit (call, EDGE_NEED_USER, "GET", false);
}

//  {"type":"request",...}
static void
s_handle_request (edge_ws_t *self, json_t *msg, const char *id)
{
    edge_t *edge = self->edge;
    const char *method = json_string_value (json_object_get (msg, "method"));
    const char *path = json_string_value (json_object_get (msg, "path"));
    json_t *body = json_object_get (msg, "body");
    if (!method)
        method = "GET";
    if (!id || !*id || strlen (id) > 64) {
        s_send_error (self, NULL, "bad_request",
                      "a request needs an id of 1-64 characters");
        return;
    }
    if (!path) {
        s_send_error (self, id, "bad_request", "a request needs a path");
        return;
    }
    if (body && !json_is_object (body) && !json_is_null (body)) {
        s_send_error (self, id, "invalid_json", "the body must be a JSON object");
        return;
    }
    if (s_call_find (self, id)) {
        s_send_error (self, id, "conflict", "a request with this id is in flight");
        return;
    }
    if (zlistx_size (self->calls) >= S_MAX_CALLS) {
        s_send_error (self, id, "overloaded", "too many requests in flight");
        return;
    }
    if (edge->draining) {
        s_send_error (self, id, "shutting_down", "the edge is shutting down");
        return;
    }
    edge_match_t match;
    edge_match_result_t result = edge_routes_parse_target (method, path, strlen (path),
                                                           &match);
    if (result == EDGE_MATCH_BAD_METHOD) {
        s_send_error (self, id, "method_not_allowed",
                      "the route does not take this method");
        return;
    }
    //  Webhooks, uploads and verbatim answers are raw HTTP bytes: not over the
    //  WebSocket, which speaks JSON
    if (result != EDGE_MATCH_OK || match.route->kind != EDGE_ROUTE_BUS
        || (match.route->flags
            & (EDGE_ROUTE_WEBHOOK | EDGE_ROUTE_UPLOAD | EDGE_ROUTE_VERBATIM))) {
        s_send_error (self, id, "not_found", "no such route");
        return;
    }
    s_call_t *call = s_call_new (self, id);
    call->match = match;
    call->body = json_is_object (body) ? json_incref (body) : NULL;
    s_admit (call, match.route->need, match.route->method, true);
}

//  {"type":"subscribe","conversation_id"} (the conversation is read as the
//  connection's user first: another tenant's is the usual not_found) or
//  {"type":"subscribe","scope":"tenant"}.
static void
s_handle_subscribe (edge_ws_t *self, json_t *msg, const char *id)
{
    edge_t *edge = self->edge;
    const char *conversation = json_string_value (
        json_object_get (msg, "conversation_id"));
    const char *scope = json_string_value (json_object_get (msg, "scope"));
    bool tenant = scope && strcmp (scope, "tenant") == 0;
    if (!tenant && (!conversation || !*conversation || strlen (conversation) > 64)) {
        s_send_error (self, id, "bad_request",
                      "subscribe needs a conversation_id or \"scope\": \"tenant\"");
        return;
    }
    if (zlistx_size (self->calls) >= S_MAX_CALLS) {
        s_send_error (self, id, "overloaded", "too many requests in flight");
        return;
    }
    if (edge->draining) {
        s_send_error (self, id, "shutting_down", "the edge is shutting down");
        return;
    }
    edge_match_t match;
    char path[128];
    snprintf (path, sizeof path, "/api/v1/conversations/%s", tenant ? "-" : conversation);
    if (!tenant
        && (strchr (conversation, '/') || strchr (conversation, '?')
            || edge_routes_parse_target ("GET", path, strlen (path), &match)
                   != EDGE_MATCH_OK)) {
        s_send_error (self, id, "not_found", "no such conversation");
        return;
    }
    s_call_t *call = s_call_new (self, id);
    call->watch = !tenant;
    call->watch_tenant = tenant;
    if (!tenant) {
        snprintf (call->conversation, sizeof call->conversation, "%s", conversation);
        call->match = match;
    }
    s_admit (call, EDGE_NEED_USER, "GET", !tenant);
}

//  {"type":"unsubscribe","conversation_id"} or {"type":"unsubscribe","scope":"tenant"}.
static void
s_handle_unsubscribe (edge_ws_t *self, json_t *msg, const char *id)
{
    const char *conversation = json_string_value (
        json_object_get (msg, "conversation_id"));
    const char *scope = json_string_value (json_object_get (msg, "scope"));
    bool tenant = scope && strcmp (scope, "tenant") == 0;
    if (self->edge->live && (tenant || conversation)
        && edge_live_unwatch (self->edge->live, self, tenant ? NULL : conversation))
        s_send_typed (self, "unsubscribed", id, NULL, NULL);
    else
        s_send_error (self, id, "not_found", "no such subscription");
}

//  {"type":"typing","conversation_id","typing":true|false}: to the others watching.
static void
s_handle_typing (edge_ws_t *self, json_t *msg, const char *id)
{
    const char *conversation = json_string_value (
        json_object_get (msg, "conversation_id"));
    json_t *typing = json_object_get (msg, "typing");
    bool on = !typing || json_is_true (typing);
    if (!self->edge->live || !conversation
        || !edge_live_typing (self->edge->live, self, conversation, on))
        s_send_error (self, id, "not_found",
                      "typing needs a conversation this connection subscribed to");
}

//  One complete text message.
static void
s_handle_message (edge_ws_t *self)
{
    json_error_t jerr;
    json_t *msg = json_loadb (self->rx, self->rx_size, JSON_REJECT_DUPLICATES, &jerr);
    if (!msg || !json_is_object (msg)) {
        char message[256];
        snprintf (message, sizeof message, "invalid JSON message: %s",
                  msg ? "not an object" : jerr.text);
        s_send_error (self, NULL, "invalid_json", message);
        json_decref (msg);
        return;
    }
    const char *type = json_string_value (json_object_get (msg, "type"));
    const char *id = json_string_value (json_object_get (msg, "id"));
    if (id && strlen (id) > 64)
        id = NULL;
    if (type && strcmp (type, "ping") == 0)
        s_send_typed (self, "pong", id, NULL, NULL);
    else if (type && strcmp (type, "auth") == 0)
        s_handle_auth (self, msg, id);
    else if (type && strcmp (type, "request") == 0)
        s_handle_request (self, msg, id);
    else if (type && strcmp (type, "subscribe") == 0)
        s_handle_subscribe (self, msg, id);
    else if (type && strcmp (type, "unsubscribe") == 0)
        s_handle_unsubscribe (self, msg, id);
    else if (type && strcmp (type, "typing") == 0)
        s_handle_typing (self, msg, id);
    else if (type && strcmp (type, "cancel") == 0) {
        s_call_t *call = id ? s_call_find (self, id) : NULL;
        if (call && !call->auth) {
            s_call_end (call);
            bus_client_process (self->edge->bus);
            s_send_typed (self, "cancelled", id, NULL, NULL);
        }
        else
            s_send_error (self, id, "not_found", "no request in flight with this id");
    }
    else
        s_send_error (self, id, "bad_request", "unknown message type");
    json_decref (msg);
}

static void
s_destroy (edge_ws_t **self_p)
{
    edge_ws_t *self = *self_p;
    if (!self)
        return;
    if (self->edge->live)
        edge_live_unwatch_all (self->edge->live, self);
    for (s_call_t *call = (s_call_t *) zlistx_first (self->calls); call;
         call = (s_call_t *) zlistx_next (self->calls))
        s_call_free (call);
    bus_client_process (self->edge->bus);
    zlistx_destroy (&self->calls);
    edge_queue_destroy (&self->queue);
    free (self->rx);
    free (self);
    *self_p = NULL;
}

int
edge_ws_callback (edge_t *edge, struct lws *wsi, enum lws_callback_reasons reason,
                  edge_session_t *session, void *in, size_t len)
{
    edge_ws_t *self = session ? session->ws : NULL;
    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
            char uri[64];
            if (edge->draining
                || lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0
                || strcmp (uri, "/api/v1/ws") != 0)
                return -1;  //  refuse the upgrade
            return 0;
        }
        case LWS_CALLBACK_ESTABLISHED:
            self = calloc (1, sizeof *self);
            assert (self);
            self->edge = edge;
            self->wsi = wsi;
            self->queue = edge_queue_new (edge->stream_queue, LWS_PRE);
            self->calls = zlistx_new ();
            char refresh[8];
            edge_http_credentials (edge, wsi, &self->credential, refresh, sizeof refresh,
                                   self->client_ip, sizeof self->client_ip);
            session->ws = self;
            edge->ws_open++;
            return 0;
        case LWS_CALLBACK_RECEIVE:
            if (!self || self->close_code)
                return 0;
            if (self->rx_size + len > edge->ws_max_message) {
                s_close (self, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
                return 0;
            }
            self->rx = realloc (self->rx, self->rx_size + len + 1);
            assert (self->rx);
            memcpy (self->rx + self->rx_size, in, len);
            self->rx_size += len;
            if (lws_is_final_fragment (wsi) && !lws_remaining_packet_payload (wsi)) {
                s_handle_message (self);
                self->rx_size = 0;
            }
            return 0;
        case LWS_CALLBACK_SERVER_WRITEABLE: {
            if (!self)
                return 0;
            if (self->close_code) {
                lws_close_reason (wsi, (enum lws_close_status) self->close_code,
                                  (unsigned char *) self->close_why,
                                  strlen (self->close_why));
                return -1;
            }
            size_t size = 0;
            unsigned char *data = edge_queue_peek (self->queue, &size);
            if (data) {
                if (lws_write (wsi, data, size, LWS_WRITE_TEXT) < (int) size)
                    return -1;
                edge_queue_pop (self->queue);
            }
            if (edge_queue_count (self->queue))
                lws_callback_on_writable (wsi);
            return 0;
        }
        case LWS_CALLBACK_CLOSED:
            if (self) {
                s_destroy (&session->ws);
                edge->ws_open--;
            }
            return 0;
        default:
            return 0;
    }
}
