/*  bus_test_events: the two ends of the durable-events test (test_bus_processes.py).
      publisher: runs the real service runtime as service "evtest" (its outbox in
        schema evtest, migrations from CHORUS_SQL_DIR) with one extra command,
        "emit" (PingRequest: count events, interval_ms apart), each event committed
        through service_events and published.
      subscriber FILE: follows publisher "evtest" from the last sequence recorded in
        FILE, appending "<seq> <topic>" per delivered event (flushed and fsynced),
        so a SIGKILL loses nothing that was written and a restart resumes from it. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "bus_proto.h"
#include "bus_subscriber.h"
#include "codec_msgpack.h"
#include "service_main.h"
#include "service_runtime.h"

typedef struct {
    service_runtime_t *runtime;  //  owner
    bus_request_t *request;      //  the emit request
    uint32_t count;              //  events to emit
    uint32_t emitted;            //  events committed
    uint32_t interval;           //  ms between events
} s_emitter_t;

static void s_emit_next (s_emitter_t *emitter);

static int
s_on_emit_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_emit_next ((s_emitter_t *) arg);
    return 0;
}

static void
s_on_committed (const char *error, uint64_t seq, void *arg)
{
    s_emitter_t *emitter = (s_emitter_t *) arg;
    bus_worker_t *worker = service_runtime_worker (emitter->runtime);
    if (error) {
        bus_worker_error (worker, &emitter->request, BUS_ERR_INTERNAL, error);
        free (emitter);
        return;
    }
    emitter->emitted++;
    if (emitter->emitted == emitter->count) {
        ChorusBus__PingReply reply = CHORUS_BUS__PING_REPLY__INIT;
        reply.service = "evtest";
        reply.index = emitter->emitted;
        bus_worker_final_msg (worker, &emitter->request, &reply.base);
        free (emitter);
    }
    else if (emitter->interval)
        zloop_timer (service_runtime_loop (emitter->runtime), emitter->interval, 1,
                     s_on_emit_timer, emitter);
    else
        s_emit_next (emitter);
}

static void
s_emit_next (s_emitter_t *emitter)
{
    ChorusBus__PingReply payload = CHORUS_BUS__PING_REPLY__INIT;
    payload.service = "evtest";
    payload.index = emitter->emitted + 1;
    size_t size;
    void *data = codec_encode_alloc (&payload.base, &size);
    if (service_events_emit (service_runtime_events (emitter->runtime), "tenant-1",
                             "evtest.tick.emitted", data, size, NULL, 0, s_on_committed,
                             emitter))
        s_on_committed ("the database queue is full", 0, emitter);
    free (data);
}

static void
s_handle_emit (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    ChorusBus__PingRequest *body = (ChorusBus__PingRequest *) codec_decode (
        &chorus_bus__ping_request__descriptor, bus_request_body (request),
        bus_request_size (request), NULL, 0);
    if (!body || body->count == 0) {
        bus_worker_error (service_runtime_worker (runtime), &request, BUS_ERR_BAD_REQUEST,
                          "emit takes {count, interval_ms}");
        if (body)
            protobuf_c_message_free_unpacked (&body->base, NULL);
        return;
    }
    s_emitter_t *emitter = calloc (1, sizeof (s_emitter_t));
    assert (emitter);
    emitter->runtime = runtime;
    emitter->request = request;
    emitter->count = body->count;
    emitter->interval = body->interval_ms;
    protobuf_c_message_free_unpacked (&body->base, NULL);
    s_emit_next (emitter);
}

static const service_command_t s_commands[] = {{"emit", s_handle_emit}};
static const service_definition_t s_definition = {
    .name = "evtest", .schema = "evtest", .commands = s_commands, .command_count = 1};

static void
s_publisher_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}

//  Subscriber side
typedef struct {
    FILE *file;  //  where delivered events go
} s_sink_t;

static void
s_on_event (bus_subscriber_t *sub, const char *topic, const ChorusBus__EventMeta *meta,
            const uint8_t *payload, size_t size, void *arg)
{
    s_sink_t *sink = (s_sink_t *) arg;
    fprintf (sink->file, "%" PRIu64 " %s\n", meta->seq, topic);
    fflush (sink->file);
    fsync (fileno (sink->file));
}

static int
s_subscriber (const char *path)
{
    uint64_t cursor = 0;
    FILE *file = fopen (path, "r");
    if (file) {
        char line[256];
        while (fgets (line, sizeof line, file))
            cursor = strtoull (line, NULL, 10);
        fclose (file);
    }
    s_sink_t sink = {.file = fopen (path, "a")};
    if (!sink.file)
        return 1;
    const char *brokers = getenv ("CHORUS_BROKERS");
    core_log_t *log = core_log_new ("subscriber", "info");
    bus_client_t *client = bus_client_new (brokers, 100, 3, log);
    bus_subscriber_t *sub = bus_subscriber_new (brokers, client, log);
    assert (client && sub);
    bus_subscriber_set_handler (sub, s_on_event, &sink);
    bus_subscriber_subscribe (sub, "evtest.");
    bus_subscriber_follow (sub, "evtest", cursor);
    zloop_t *loop = zloop_new ();
    bus_client_attach (client, loop);
    bus_subscriber_attach (sub, loop);
    core_log_info (log, NULL, "following evtest after %" PRIu64, cursor);
    zloop_start (loop);  //  until SIGINT/SIGTERM (or SIGKILL)
    zloop_destroy (&loop);
    bus_subscriber_destroy (&sub);
    bus_client_destroy (&client);
    core_log_destroy (&log);
    fclose (sink.file);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc >= 2 && streq (argv[1], "publisher"))
        return service_main (argc - 1, argv + 1, "evtest", s_publisher_actor);
    if (argc >= 3 && streq (argv[1], "subscriber"))
        return s_subscriber (argv[2]);
    fprintf (stderr, "usage: bus_test_events publisher | subscriber FILE\n");
    return 2;
}
