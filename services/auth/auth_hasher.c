/*  auth_hasher: argon2id jobs on a pool of threads (see auth_hasher.h). Jobs go
    to the threads through an inproc PUSH socket as pointers; each thread answers
    on an inproc PULL socket the owner's loop reads.                           */
#include "auth_hasher.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

#include "auth_password.h"

#define S_MAX_THREADS 64

typedef struct {
    bool verify;                         //  verify (else hash)
    char *password;                      //  copy, wiped after use
    char hash[AUTH_PASSWORD_HASH_SIZE];  //  hash to verify, or the new hash
    auth_hasher_status_t status;         //  outcome, set by the thread
    auth_hasher_fn *fn;                  //  owner's callback
    void *arg;                           //  its argument
} s_job_t;

struct _auth_hasher_t {
    zsock_t *jobs;                     //  PUSH: jobs to the threads
    zsock_t *results;                  //  PULL: jobs back from the threads
    zactor_t *threads[S_MAX_THREADS];  //  the pool
    int thread_count;                  //  threads started
    zlistx_t *pending;                 //  jobs sent and not answered (s_job_t *)
    size_t queue_max;                  //  most pending jobs
    zloop_t *loop;                     //  loop attached to, or NULL
};

static void
s_job_free (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job)
        return;
    if (job->password) {
        sodium_memzero (job->password, strlen (job->password));
        free (job->password);
    }
    sodium_memzero (job, sizeof *job);
    free (job);
    *job_p = NULL;
}

//  One thread: take a job, do it, send it back, until $TERM.
static void
s_thread (zsock_t *pipe, void *args)
{
    const char *endpoints = (const char *) args;
    char jobs_endpoint[96], results_endpoint[96];
    snprintf (jobs_endpoint, sizeof jobs_endpoint, ">%s-jobs", endpoints);
    snprintf (results_endpoint, sizeof results_endpoint, ">%s-results", endpoints);
    zsock_t *jobs = zsock_new_pull (jobs_endpoint);
    zsock_t *results = zsock_new_push (results_endpoint);
    assert (jobs && results);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, jobs, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != jobs)
            break;  //  $TERM on the pipe, or interrupted
        s_job_t *job = NULL;
        if (zsock_recv (jobs, "p", &job) || !job)
            continue;
        if (job->verify)
            job->status = auth_password_verify (job->hash, job->password)
                              ? AUTH_HASHER_OK
                              : AUTH_HASHER_MISMATCH;
        else
            job->status = auth_password_hash (job->password, job->hash, sizeof job->hash,
                                              NULL, 0)
                              ? AUTH_HASHER_FAILED
                              : AUTH_HASHER_OK;
        sodium_memzero (job->password, strlen (job->password));
        zsock_send (results, "p", job);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&jobs);
    zsock_destroy (&results);
}

auth_hasher_t *
auth_hasher_new (int threads, size_t queue_max)
{
    if (threads < 1 || threads > S_MAX_THREADS || queue_max == 0)
        return NULL;
    auth_hasher_t *self = calloc (1, sizeof (auth_hasher_t));
    assert (self);
    //  The endpoints are unique per hasher (an address could be reused too soon)
    char endpoints[64], endpoint[96];
    zuuid_t *unique = zuuid_new ();
    snprintf (endpoints, sizeof endpoints, "inproc://auth-hasher-%s", zuuid_str (unique));
    zuuid_destroy (&unique);
    snprintf (endpoint, sizeof endpoint, "@%s-jobs", endpoints);
    self->jobs = zsock_new_push (endpoint);
    snprintf (endpoint, sizeof endpoint, "@%s-results", endpoints);
    self->results = zsock_new_pull (endpoint);
    assert (self->jobs && self->results);
    //  Jobs are pointers we track: never drop one at a high-water mark
    zsock_set_sndhwm (self->jobs, 0);
    zsock_set_rcvhwm (self->results, 0);
    for (int i = 0; i < threads; i++)
        self->threads[self->thread_count++] = zactor_new (s_thread, endpoints);
    self->pending = zlistx_new ();
    self->queue_max = queue_max;
    return self;
}

void
auth_hasher_destroy (auth_hasher_t **self_p)
{
    auth_hasher_t *self = *self_p;
    if (!self)
        return;
    if (self->loop)
        zloop_reader_end (self->loop, self->results);
    //  Threads finish the job in hand; what they send back is drained below
    for (int i = 0; i < self->thread_count; i++)
        zactor_destroy (&self->threads[i]);
    zsock_destroy (&self->jobs);
    zsock_destroy (&self->results);
    //  Every job still pending (queued, or answered and not read) fails
    while (zlistx_size (self->pending)) {
        s_job_t *job = (s_job_t *) zlistx_first (self->pending);
        zlistx_delete (self->pending, zlistx_cursor (self->pending));
        job->fn (AUTH_HASHER_FAILED, NULL, job->arg);
        s_job_free (&job);
    }
    zlistx_destroy (&self->pending);
    free (self);
    *self_p = NULL;
}

//  A job came back: answer its owner.
static int
s_on_result (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    auth_hasher_t *self = (auth_hasher_t *) arg;
    s_job_t *job = NULL;
    if (zsock_recv (reader, "p", &job) || !job)
        return 0;
    void *handle = zlistx_find (self->pending, job);
    assert (handle);
    zlistx_delete (self->pending, handle);
    job->fn (job->status, job->verify || job->status ? NULL : job->hash, job->arg);
    s_job_free (&job);
    return 0;
}

int
auth_hasher_attach (auth_hasher_t *self, zloop_t *loop)
{
    self->loop = loop;
    return zloop_reader (loop, self->results, s_on_result, self);
}

//  Queue a job; 0 or -1 when full.
static int
s_submit (auth_hasher_t *self, bool verify, const char *hash, const char *password,
          auth_hasher_fn *fn, void *arg)
{
    if (zlistx_size (self->pending) >= self->queue_max || !password)
        return -1;
    s_job_t *job = calloc (1, sizeof (s_job_t));
    assert (job);
    job->verify = verify;
    job->password = strdup (password);
    assert (job->password);
    if (hash)
        snprintf (job->hash, sizeof job->hash, "%s", hash);
    job->fn = fn;
    job->arg = arg;
    zlistx_add_end (self->pending, job);
    zsock_send (self->jobs, "p", job);
    return 0;
}

int
auth_hasher_hash (auth_hasher_t *self, const char *password, auth_hasher_fn *fn,
                  void *arg)
{
    return s_submit (self, false, NULL, password, fn, arg);
}

int
auth_hasher_verify (auth_hasher_t *self, const char *hash, const char *password,
                    auth_hasher_fn *fn, void *arg)
{
    return s_submit (self, true, hash ? hash : "", password, fn, arg);
}

size_t
auth_hasher_pending (auth_hasher_t *self)
{
    return zlistx_size (self->pending);
}

//  ---------------------------------------------------------------------------------
//  Selftest

typedef struct {
    int answered;                        //  callbacks seen
    int wanted;                          //  callbacks to wait for
    int ok, mismatch, failed;            //  by outcome
    char hash[AUTH_PASSWORD_HASH_SIZE];  //  last hash received
} s_test_t;

static void
s_test_fn (auth_hasher_status_t status, const char *hash, void *arg)
{
    s_test_t *test = (s_test_t *) arg;
    test->answered++;
    if (status == AUTH_HASHER_OK)
        test->ok++;
    else if (status == AUTH_HASHER_MISMATCH)
        test->mismatch++;
    else
        test->failed++;
    if (hash)
        snprintf (test->hash, sizeof test->hash, "%s", hash);
}

static int
s_test_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_test_t *test = (s_test_t *) arg;
    return test->answered >= test->wanted ? -1 : 0;
}

void
auth_hasher_test (bool verbose)
{
    printf (" * auth_hasher: ");
    assert (auth_hasher_new (0, 10) == NULL);
    auth_hasher_t *hasher = auth_hasher_new (2, 3);
    assert (hasher);
    zloop_t *loop = zloop_new ();
    assert (auth_hasher_attach (hasher, loop) == 0);

    //  Hash one password, then verify it right and wrong
    s_test_t test = {0};
    assert (auth_hasher_hash (hasher, "correct horse", s_test_fn, &test) == 0);
    zloop_timer (loop, 5, 0, s_test_timer, &test);
    test.wanted = 1;
    zloop_start (loop);
    assert (test.ok == 1 && strncmp (test.hash, "$argon2id$", 10) == 0);
    char hash[AUTH_PASSWORD_HASH_SIZE];
    snprintf (hash, sizeof hash, "%s", test.hash);
    assert (auth_hasher_verify (hasher, hash, "correct horse", s_test_fn, &test) == 0);
    assert (auth_hasher_verify (hasher, hash, "wrong horse", s_test_fn, &test) == 0);
    assert (auth_hasher_verify (hasher, "not a hash", "x", s_test_fn, &test) == 0);
    //  The queue holds three: a fourth is refused at once
    assert (auth_hasher_pending (hasher) == 3);
    assert (auth_hasher_hash (hasher, "x", s_test_fn, &test) == -1);
    test.wanted = 4;
    zloop_start (loop);
    assert (test.answered == 4);
    assert (test.ok == 2 && test.mismatch == 2 && test.failed == 0);

    //  Destroying with jobs in flight fails them, once each
    s_test_t late = {0};
    assert (auth_hasher_hash (hasher, "a", s_test_fn, &late) == 0);
    assert (auth_hasher_hash (hasher, "b", s_test_fn, &late) == 0);
    auth_hasher_destroy (&hasher);
    assert (hasher == NULL);
    assert (late.answered == 2 && late.failed == 2);
    auth_hasher_destroy (&hasher);
    zloop_destroy (&loop);
    if (verbose)
        printf ("(threads 2) ");
    printf ("OK\n");
}
