/*  edge_queue: bounded FIFO of byte messages with headroom.                       */
#include "edge_queue.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_item_t {
    struct s_item_t *next;  //  next message
    size_t size;            //  payload size
    unsigned char data[];   //  headroom, then payload
} s_item_t;

struct _edge_queue_t {
    s_item_t *head;   //  oldest message
    s_item_t *tail;   //  newest message
    size_t limit;     //  most payload bytes held
    size_t headroom;  //  free bytes kept before each payload
    size_t bytes;     //  payload bytes held
    size_t count;     //  messages held
};

edge_queue_t *
edge_queue_new (size_t limit, size_t headroom)
{
    edge_queue_t *self = calloc (1, sizeof *self);
    assert (self);
    self->limit = limit;
    self->headroom = headroom;
    return self;
}

void
edge_queue_destroy (edge_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_queue_t *self = *self_p;
    while (self->head)
        edge_queue_pop (self);
    free (self);
    *self_p = NULL;
}

int
edge_queue_push (edge_queue_t *self, const void *data, size_t size, bool force)
{
    if (!force && (size > self->limit || self->bytes > self->limit - size))
        return -1;
    s_item_t *item = malloc (sizeof *item + self->headroom + size);
    assert (item);
    item->next = NULL;
    item->size = size;
    if (size)
        memcpy (item->data + self->headroom, data, size);
    if (self->tail)
        self->tail->next = item;
    else
        self->head = item;
    self->tail = item;
    self->bytes += size;
    self->count++;
    return 0;
}

unsigned char *
edge_queue_peek (edge_queue_t *self, size_t *size)
{
    if (!self->head)
        return NULL;
    *size = self->head->size;
    return self->head->data + self->headroom;
}

void
edge_queue_pop (edge_queue_t *self)
{
    s_item_t *item = self->head;
    if (!item)
        return;
    self->head = item->next;
    if (!self->head)
        self->tail = NULL;
    self->bytes -= item->size;
    self->count--;
    free (item);
}

size_t
edge_queue_bytes (edge_queue_t *self)
{
    return self->bytes;
}

size_t
edge_queue_count (edge_queue_t *self)
{
    return self->count;
}

void
edge_queue_test (bool verbose)
{
    printf (" * edge_queue: ");
    edge_queue_t *queue = edge_queue_new (10, 16);
    size_t size = 0;
    assert (edge_queue_peek (queue, &size) == NULL);
    assert (edge_queue_push (queue, "hello", 5, false) == 0);
    assert (edge_queue_push (queue, "world", 5, false) == 0);
    assert (edge_queue_push (queue, "!", 1, false) == -1);
    assert (edge_queue_bytes (queue) == 10 && edge_queue_count (queue) == 2);
    assert (edge_queue_push (queue, "bye", 3, true) == 0);
    unsigned char *data = edge_queue_peek (queue, &size);
    assert (size == 5 && memcmp (data, "hello", 5) == 0);
    memset (data - 16, 0, 16);  //  headroom is writable
    edge_queue_pop (queue);
    data = edge_queue_peek (queue, &size);
    assert (size == 5 && memcmp (data, "world", 5) == 0);
    edge_queue_pop (queue);
    assert (edge_queue_push (queue, "x", 1, false) == 0);  //  room again
    edge_queue_destroy (&queue);
    edge_queue_destroy (&queue);
    queue = edge_queue_new (4, 0);
    assert (edge_queue_push (queue, "12345", 5, false) == -1);
    assert (edge_queue_push (queue, "", 0, false) == 0);
    assert (edge_queue_count (queue) == 1);
    edge_queue_destroy (&queue);
    printf ("OK\n");
}
