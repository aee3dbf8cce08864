/*  core_waiter: runs a zloop until a condition holds or a time is up, for selftests
    of modules that live in a loop (db pool, Redis client, ...). A 5 ms timer checks
    the condition while the loop handles the module's sockets.

        core_waiter_t *waiter = core_waiter_new (loop);
        assert (core_waiter_wait_count (waiter, &replies, 10, 5000));
        core_waiter_destroy (&waiter);                                          */
#ifndef CORE_WAITER_H_INCLUDED
#define CORE_WAITER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

typedef struct _core_waiter_t core_waiter_t;

core_waiter_t *core_waiter_new (zloop_t *loop);
void core_waiter_destroy (core_waiter_t **self_p);

//  Run the loop until pred (arg) is true or timeout_ms passes; returns pred's value.
bool core_waiter_wait (core_waiter_t *self, bool (*pred) (void *), void *arg,
                       int timeout_ms);

//  Run the loop until *counter >= target or timeout_ms passes.
bool core_waiter_wait_count (core_waiter_t *self, int *counter, int target,
                             int timeout_ms);

void core_waiter_test (bool verbose);

#endif
