/*  bus_echo: the echo service actor (see bus_echo.h).                              */
#include "bus_echo.h"

#include <assert.h>

#include "bus_proto.h"
#include "bus_worker.h"
#include "codec_msgpack.h"

typedef struct {
    bus_request_t *request;  //  the request being answered
    ChorusBus__Echo *echo;   //  its decoded body
    uint32_t sent;           //  partials sent so far
    int64_t due;             //  when the next reply goes (ms)
} s_job_t;

typedef struct {
    zsock_t *pipe;         //  actor pipe
    zloop_t *loop;         //  reactor
    bus_worker_t *worker;  //  our bus connection
    core_log_t *log;       //  logger
    zlistx_t *jobs;        //  s_job_t * waiting for their time
    int timer;             //  one-shot timer for the earliest job, -1 when none
    int64_t timer_due;     //  when that timer fires (ms)
    uint64_t handled;      //  requests ended
    uint64_t cancels;      //  cancellations seen
    bool drain_reply;      //  answer DRAIN once drained
} self_t;

static void
s_job_free (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (job->echo)
        protobuf_c_message_free_unpacked (&job->echo->base, NULL);
    free (job);
    *job_p = NULL;
}

static void
s_check_drained (self_t *self)
{
    if (self->drain_reply && bus_worker_drained (self->worker)) {
        zsock_send (self->pipe, "i", 0);
        self->drain_reply = false;
    }
}

//  Send the job's replies: its partials, then the final one.
static void
s_job_step (self_t *self, s_job_t *job)
{
    ChorusBus__Echo reply = CHORUS_BUS__ECHO__INIT;
    reply.data = job->echo->data;
    reply.replica = (char *) bus_worker_replica (self->worker);
    while (job->sent < job->echo->parts) {
        reply.parts = job->sent++;
        bus_worker_partial_msg (self->worker, job->request, &reply.base);
    }
    reply.parts = job->sent;
    bus_worker_final_msg (self->worker, &job->request, &reply.base);
    self->handled++;
}

static int s_on_timer (zloop_t *loop, int timer_id, void *arg);

//  Keep one timer, set for the earliest waiting job (none when nothing waits).
static void
s_arm (self_t *self)
{
    int64_t earliest = INT64_MAX;
    for (s_job_t *job = (s_job_t *) zlistx_first (self->jobs); job;
         job = (s_job_t *) zlistx_next (self->jobs))
        if (job->due < earliest)
            earliest = job->due;
    if (self->timer >= 0 && self->timer_due == earliest)
        return;
    if (self->timer >= 0)
        zloop_timer_end (self->loop, self->timer);
    self->timer = -1;
    if (earliest == INT64_MAX)
        return;
    int64_t wait = earliest - bus_proto_now ();
    self->timer = zloop_timer (self->loop, (size_t) (wait > 0 ? wait : 0), 1, s_on_timer,
                               self);
    self->timer_due = earliest;
}

static void
s_on_request (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    self_t *self = (self_t *) arg;
    const char *command = bus_request_command (request);
    if (streq (command, "ping")) {
        ChorusBus__PingReply ping = CHORUS_BUS__PING_REPLY__INIT;
        ping.service = "echo";
        ping.replica = (char *) bus_worker_replica (worker);
        ping.time_ms = zclock_time ();
        bus_worker_final_msg (worker, &request, &ping.base);
        self->handled++;
        return;
    }
    if (streq (command, "stats")) {
        ChorusBus__EchoStats stats = CHORUS_BUS__ECHO_STATS__INIT;
        stats.replica = (char *) bus_worker_replica (worker);
        stats.handled = self->handled;
        stats.cancels = self->cancels;
        bus_worker_final_msg (worker, &request, &stats.base);
        return;
    }
    if (!streq (command, "echo")) {
        bus_worker_error (worker, &request, BUS_ERR_UNKNOWN_COMMAND,
                          "the echo service knows 'echo', 'ping' and 'stats'");
        return;
    }
    char why[128];
    ChorusBus__Echo *echo = (ChorusBus__Echo *) codec_decode (
        &chorus_bus__echo__descriptor, bus_request_body (request),
        bus_request_size (request), why, sizeof why);
    if (!echo) {
        bus_worker_error (worker, &request, BUS_ERR_BAD_REQUEST, why);
        return;
    }
    s_job_t *job = calloc (1, sizeof (s_job_t));
    assert (job);
    job->request = request;
    job->echo = echo;
    if (echo->delay_ms == 0) {
        s_job_step (self, job);
        s_job_free (&job);
        return;
    }
    job->due = bus_proto_now () + echo->delay_ms;
    bus_request_set_data (request, zlistx_add_end (self->jobs, job));
    s_arm (self);
}

static void
s_on_cancel (bus_worker_t *worker, bus_request_t *request, void *arg)
{
    self_t *self = (self_t *) arg;
    self->cancels++;
    void *handle = bus_request_data (request);
    if (handle) {
        s_job_t *job = (s_job_t *) zlistx_handle_item (handle);
        zlistx_delete (self->jobs, handle);
        bus_worker_error (worker, &job->request, BUS_ERR_CANCELLED, "cancelled");
        s_job_free (&job);
        s_arm (self);
    }
    s_check_drained (self);
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    self->timer = -1;  //  one-shot: zloop has ended it
    int64_t now = bus_proto_now ();
    zlistx_t *due = zlistx_new ();
    for (s_job_t *job = (s_job_t *) zlistx_first (self->jobs); job;
         job = (s_job_t *) zlistx_next (self->jobs))
        if (job->due <= now)
            zlistx_add_end (due, job);
    for (s_job_t *job = (s_job_t *) zlistx_first (due); job;
         job = (s_job_t *) zlistx_next (due)) {
        zlistx_delete (self->jobs, bus_request_data (job->request));
        s_job_step (self, job);
        s_job_free (&job);
    }
    zlistx_destroy (&due);
    s_arm (self);
    s_check_drained (self);
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = (self_t *) arg;
    char *command = zstr_recv (reader);
    int rc = 0;
    if (!command || streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "STATS"))
        zsock_send (self->pipe, "88", self->handled, self->cancels);
    else if (streq (command, "DRAIN")) {
        bus_worker_drain (self->worker);
        self->drain_reply = true;
        s_check_drained (self);
    }
    zstr_free (&command);
    return rc;
}

void
bus_echo_actor (zsock_t *pipe, void *args)
{
    const bus_echo_config_t *config = (const bus_echo_config_t *) args;
    self_t *self = calloc (1, sizeof (self_t));
    assert (self);
    self->pipe = pipe;
    self->log = core_log_new (config->service, config->log_level);
    self->worker = bus_worker_new (config->brokers, config->service, config->credit,
                                   config->replica, config->heartbeat_ms,
                                   config->liveness, self->log);
    assert (self->worker);
    bus_worker_set_handlers (self->worker, s_on_request, s_on_cancel, self);
    self->jobs = zlistx_new ();
    self->loop = zloop_new ();
    zloop_reader (self->loop, pipe, s_on_pipe, self);
    bus_worker_attach (self->worker, self->loop);
    self->timer = -1;
    zsock_signal (pipe, 0);
    zloop_set_nonstop (self->loop, true);
    zloop_start (self->loop);

    while (zlistx_size (self->jobs)) {
        s_job_t *job = (s_job_t *) zlistx_detach (self->jobs, NULL);
        s_job_free (&job);
    }
    zloop_destroy (&self->loop);
    zlistx_destroy (&self->jobs);
    bus_worker_destroy (&self->worker);
    core_log_destroy (&self->log);
    free (self);
}
