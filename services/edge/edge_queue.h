/*  edge_queue: a bounded FIFO of byte messages waiting for a slow socket, one per
    SSE stream or WebSocket connection. Each message keeps `headroom` free bytes
    in front of it (lws writes need LWS_PRE). Push fails when the queue would pass
    its limit, so the owner can drop the stream instead of growing memory.        */
#ifndef EDGE_QUEUE_H_INCLUDED
#define EDGE_QUEUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _edge_queue_t edge_queue_t;

//  Create a queue holding at most limit payload bytes; headroom bytes are kept
//  before each message.
edge_queue_t *edge_queue_new (size_t limit, size_t headroom);
void edge_queue_destroy (edge_queue_t **self_p);

//  Append a copy of data. Returns -1 (and keeps nothing) when it would pass the
//  limit, unless force is set (for one small closing message).
int edge_queue_push (edge_queue_t *self, const void *data, size_t size, bool force)
    __attribute__ ((warn_unused_result));

//  The oldest message (NULL when empty); its headroom lies before the pointer.
unsigned char *edge_queue_peek (edge_queue_t *self, size_t *size);

//  Drop the oldest message.
void edge_queue_pop (edge_queue_t *self);

//  Payload bytes and messages queued.
size_t edge_queue_bytes (edge_queue_t *self);
size_t edge_queue_count (edge_queue_t *self);

void edge_queue_test (bool verbose);

#endif
