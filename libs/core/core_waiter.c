/*  core_waiter: run a zloop until a condition holds (see core_waiter.h).          */
#include "core_waiter.h"

#include <assert.h>

struct _core_waiter_t {
    zloop_t *loop;          //  loop it runs (borrowed)
    int timer_id;           //  its check timer
    bool armed;             //  a wait is in progress
    bool (*pred) (void *);  //  condition of that wait
    void *arg;              //  its argument
    int64_t deadline;       //  when that wait gives up (ms, monotonic)
};

static int
s_check (zloop_t *loop, int timer_id, void *arg)
{
    core_waiter_t *self = (core_waiter_t *) arg;
    if (self->armed && (self->pred (self->arg) || zclock_mono () >= self->deadline))
        return -1;
    return 0;
}

core_waiter_t *
core_waiter_new (zloop_t *loop)
{
    assert (loop);
    core_waiter_t *self = calloc (1, sizeof (core_waiter_t));
    assert (self);
    self->loop = loop;
    self->timer_id = zloop_timer (loop, 5, 0, s_check, self);
    assert (self->timer_id >= 0);
    return self;
}

void
core_waiter_destroy (core_waiter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zloop_timer_end ((*self_p)->loop, (*self_p)->timer_id);
    free (*self_p);
    *self_p = NULL;
}

bool
core_waiter_wait (core_waiter_t *self, bool (*pred) (void *), void *arg, int timeout_ms)
{
    self->pred = pred;
    self->arg = arg;
    self->deadline = zclock_mono () + timeout_ms;
    self->armed = true;
    if (!pred (arg))
        zloop_start (self->loop);
    self->armed = false;
    return pred (arg);
}

typedef struct {
    int *counter;  //  watched value
    int target;    //  stop at this value
} s_count_t;

static bool
s_count_reached (void *arg)
{
    s_count_t *count = (s_count_t *) arg;
    return *count->counter >= count->target;
}

bool
core_waiter_wait_count (core_waiter_t *self, int *counter, int target, int timeout_ms)
{
    s_count_t count = {counter, target};
    return core_waiter_wait (self, s_count_reached, &count, timeout_ms);
}

static bool
s_never (void *arg)
{
    return false;
}

static int
s_bump (zloop_t *loop, int timer_id, void *arg)
{
    (*(int *) arg)++;
    return 0;
}

void
core_waiter_test (bool verbose)
{
    printf (" * core_waiter: ");
    zloop_t *loop = zloop_new ();
    core_waiter_t *waiter = core_waiter_new (loop);
    int ticks = 0;
    zloop_timer (loop, 1, 0, s_bump, &ticks);
    assert (core_waiter_wait_count (waiter, &ticks, 3, 2000));
    int64_t start = zclock_mono ();
    assert (!core_waiter_wait (waiter, s_never, NULL, 50));
    assert (zclock_mono () - start >= 50);
    core_waiter_destroy (&waiter);
    core_waiter_destroy (&waiter);
    zloop_destroy (&loop);
    printf ("OK\n");
}
