/*  edge_live: what WebSocket clients watch, across edge replicas (schemas/chat.md,
    "WebSocket"). The edge subscribes to the bus events of chat and channels and
    to the edges' own (typing, presence), so a client on any replica sees what
    happens on any other: the live stream events of a conversation's replies
    (chat.stream.<conversation>, best effort), the durable events of its tenant
    (chat.conversation.*, chat.message.*, channels.*), and who is typing in and
    present at a conversation (edge.typing.<conversation>,
    edge.presence.<conversation>, published by the edge the client is on). The
    edge subscribes only to the topics its clients need, so a reply nobody here
    follows costs it nothing. Copies of one event that come through several
    brokers are dropped.

    A watcher is an opaque pointer (a WebSocket connection) with a function that
    takes the JSON text to send it. Presence: each edge announces the users its
    clients watch a conversation as, again every 15 s while they do, and offline
    when the last of them leaves; an announcement not renewed for 45 s ends.   */
#ifndef EDGE_LIVE_H_INCLUDED
#define EDGE_LIVE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "core_log.h"

typedef struct _edge_live_t edge_live_t;

//  Send text (a JSON object) to watcher.
typedef void (edge_live_send_fn) (void *watcher, const char *text, size_t size);

//  Subscribe to the events of every broker in brokers (request endpoints, as
//  CHORUS_BROKERS); NULL when the list holds none.
edge_live_t *edge_live_new (const char *brokers, core_log_t *log);
void edge_live_destroy (edge_live_t **self_p);

//  The socket whose ZMQ_FD the loop watches; when it is readable call
//  edge_live_process, which reads every event waiting and delivers it.
zsock_t *edge_live_socket (edge_live_t *self);
void edge_live_process (edge_live_t *self);

//  About once a second: presence renewals and expiries.
void edge_live_tick (edge_live_t *self);

//  Watch a conversation of tenant as user (after the caller checked the user may
//  read it); 0, or -1 when the watcher has EDGE_LIVE_MAX_WATCHES already. Watching
//  twice is watching once.
#define EDGE_LIVE_MAX_WATCHES 100
int edge_live_watch (edge_live_t *self, void *watcher, edge_live_send_fn *send,
                     const char *tenant_id, const char *conversation_id,
                     const char *user_id);

//  Watch every durable event of the tenant (conversations assigned, messages,
//  channel deliveries); -1 when the watcher watches too much.
int edge_live_watch_tenant (edge_live_t *self, void *watcher, edge_live_send_fn *send,
                            const char *tenant_id, const char *user_id);

//  Stop watching a conversation (conversation_id) or the tenant (NULL); false when
//  the watcher did not watch it.
bool edge_live_unwatch (edge_live_t *self, void *watcher, const char *conversation_id);

//  Stop everything a watcher watches (its connection closed).
void edge_live_unwatch_all (edge_live_t *self, void *watcher);

//  The watcher's user is typing (or stopped) in a conversation it watches; false
//  when it does not watch it.
bool edge_live_typing (edge_live_t *self, void *watcher, const char *conversation_id,
                       bool typing);

//  JSON array text of the user ids present at a conversation (caller frees).
char *edge_live_presence (edge_live_t *self, const char *conversation_id);

void edge_live_test (bool verbose);

#endif
