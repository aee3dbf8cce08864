/*  db_testing: selftest helpers for code that talks to PostgreSQL (see db_testing.h). */
#include "db_testing.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

struct _db_testing_waiter_t {
    zloop_t *loop;          //  borrowed loop
    int timer_id;           //  check timer
    bool (*pred) (void *);  //  stop when true
    void *arg;              //  its argument
    int64_t deadline;       //  or at this time (zclock_mono)
    bool armed;             //  a wait is in progress
};

const char *
db_testing_url (void)
{
    const char *url = getenv ("CHORUS_TEST_DATABASE_URL");
    if (!url || !*url) {
        fprintf (stderr,
                 "\nCHORUS_TEST_DATABASE_URL is not set: these tests need a real "
                 "PostgreSQL. Run them through `tools/chorus test`, or start one with "
                 "tools/dev/postgres start and export CHORUS_TEST_DATABASE_URL=<the "
                 "URL it prints>.\n");
        exit (1);
    }
    return url;
}

PGconn *
db_testing_connect (const char *url)
{
    PGconn *pg = PQconnectdb (url);
    assert (pg);
    if (PQstatus (pg) != CONNECTION_OK) {
        fprintf (stderr, "db_testing: cannot connect to %s: %s", url,
                 PQerrorMessage (pg));
        assert (false);
    }
    db_testing_exec (pg, "SET client_min_messages = warning");
    return pg;
}

void
db_testing_exec (PGconn *pg, const char *sql)
{
    PGresult *result = PQexec (pg, sql);
    ExecStatusType status = PQresultStatus (result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fprintf (stderr, "db_testing: %s: %s", sql, PQresultErrorMessage (result));
        assert (false);
    }
    PQclear (result);
}

static int
s_check (zloop_t *loop, int timer_id, void *arg)
{
    db_testing_waiter_t *self = (db_testing_waiter_t *) arg;
    if (self->armed && (self->pred (self->arg) || zclock_mono () >= self->deadline))
        return -1;
    return 0;
}

db_testing_waiter_t *
db_testing_waiter_new (zloop_t *loop)
{
    assert (loop);
    db_testing_waiter_t *self = calloc (1, sizeof (db_testing_waiter_t));
    assert (self);
    self->loop = loop;
    self->timer_id = zloop_timer (loop, 5, 0, s_check, self);
    assert (self->timer_id >= 0);
    return self;
}

void
db_testing_waiter_destroy (db_testing_waiter_t **self_p)
{
    assert (self_p);
    db_testing_waiter_t *self = *self_p;
    if (!self)
        return;
    zloop_timer_end (self->loop, self->timer_id);
    free (self);
    *self_p = NULL;
}

bool
db_testing_wait (db_testing_waiter_t *self, bool (*pred) (void *), void *arg,
                 int timeout_ms)
{
    assert (self);
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
db_testing_wait_count (db_testing_waiter_t *self, int *counter, int target,
                       int timeout_ms)
{
    s_count_t count = {counter, target};
    return db_testing_wait (self, s_count_reached, &count, timeout_ms);
}

static bool
s_never (void *arg)
{
    return false;
}

void
db_testing_test (bool verbose)
{
    printf (" * db_testing: ");
    //  @selftest
    zloop_t *loop = zloop_new ();
    assert (loop);
    db_testing_waiter_t *waiter = db_testing_waiter_new (loop);
    int counter = 0;
    assert (db_testing_wait_count (waiter, &counter, 0, 1000));
    int64_t started = zclock_mono ();
    assert (!db_testing_wait (waiter, s_never, NULL, 50));
    assert (zclock_mono () - started >= 50);
    db_testing_waiter_destroy (&waiter);
    assert (waiter == NULL);
    zloop_destroy (&loop);
    //  @end
    printf ("OK\n");
}
