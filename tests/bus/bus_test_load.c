/*  bus_test_load: drives echo requests through the bus client for the process
    tests (test_bus_processes.py): TOTAL requests, at most CONCURRENCY in flight,
    each asking the echo service for delay_ms; on exit prints one JSON line:
    {"ok":N,"errors":{"code":N,...},"ok_after_first_error":N,"max_gap_ms":N,
    "replicas":{...}} (max_gap_ms: the longest time in which no request ended).
    Brokers come from CHORUS_BROKERS, so it can be pointed at several.          */
#include <assert.h>
#include <stdio.h>

#include "bus_client.h"
#include "bus_proto.h"
#include "codec_msgpack.h"

typedef struct {
    bus_client_t *client;  //  the client under test
    int total;             //  requests to send
    int concurrency;       //  most in flight
    uint32_t delay;        //  echo delay per request
    int sent;              //  requests sent
    int ended;             //  requests ended
    int ok;                //  finals
    int ok_after_error;    //  finals that ended after the first error
    zhashx_t *errors;      //  code -> count (as pointer-sized int)
    zhashx_t *replicas;    //  replica -> count
    bool saw_error;        //  an error has happened
    int64_t last_end;      //  when the last request ended (ms)
    int64_t max_gap;       //  longest time without any request ending (ms)
} s_load_t;

static void s_fill (s_load_t *load);

static void
s_count (zhashx_t *table, const char *key)
{
    uintptr_t count = (uintptr_t) zhashx_lookup (table, key);
    zhashx_update (table, key, (void *) (count + 1));
}

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_load_t *load = (s_load_t *) arg;
    if (reply->kind == BUS_REPLY_PARTIAL)
        return;
    load->ended++;
    int64_t now = bus_proto_now ();
    if (load->last_end && now - load->last_end > load->max_gap)
        load->max_gap = now - load->last_end;
    load->last_end = now;
    if (reply->kind == BUS_REPLY_FINAL) {
        load->ok++;
        if (load->saw_error)
            load->ok_after_error++;
        ChorusBus__Echo *echo = (ChorusBus__Echo *) codec_decode (
            &chorus_bus__echo__descriptor, reply->body, reply->size, NULL, 0);
        if (echo) {
            s_count (load->replicas, echo->replica);
            protobuf_c_message_free_unpacked (&echo->base, NULL);
        }
    }
    else {
        load->saw_error = true;
        s_count (load->errors, reply->code);
    }
}

static void
s_fill (s_load_t *load)
{
    while (load->sent < load->total && load->sent - load->ended < load->concurrency) {
        ChorusBus__Echo echo = CHORUS_BUS__ECHO__INIT;
        echo.data.data = (uint8_t *) "load";
        echo.data.len = 4;
        echo.delay_ms = load->delay;
        ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
        headers.request_id = "load";
        headers.timeout_ms = 5000;
        if (!bus_client_request_msg (load->client, "echo", "echo", &headers, &echo.base,
                                     s_on_reply, load)) {
            //  No broker reachable right now: counted, and the load goes on
            load->sent++;
            load->ended++;
            load->saw_error = true;
            s_count (load->errors, "no_broker");
            continue;
        }
        load->sent++;
    }
}

static void
s_print (zhashx_t *table)
{
    printf ("{");
    const char *sep = "";
    for (void *item = zhashx_first (table); item; item = zhashx_next (table)) {
        printf ("%s\"%s\":%d", sep, (const char *) zhashx_cursor (table),
                (int) (uintptr_t) item);
        sep = ",";
    }
    printf ("}");
}

int
main (int argc, char **argv)
{
    if (argc < 4) {
        fprintf (stderr, "usage: bus_test_load TOTAL CONCURRENCY DELAY_MS\n");
        return 2;
    }
    s_load_t load = {.total = (int) strtol (argv[1], NULL, 10),
                     .concurrency = (int) strtol (argv[2], NULL, 10),
                     .delay = (uint32_t) strtoul (argv[3], NULL, 10)};
    load.errors = zhashx_new ();
    load.replicas = zhashx_new ();
    core_log_t *log = core_log_new ("load", "warn");
    //  A dead broker shows as a closed connection at once; heartbeats only catch a
    //  silent one, and on a loaded machine (the sanitizer pass, tests side by side)
    //  a live broker can miss 300 ms: 10 heartbeats (1 s) before it is called dead
    load.client = bus_client_new (getenv ("CHORUS_BROKERS"), 100, 10, log);
    assert (load.client);
    zsock_t *sockets[32];
    size_t count = bus_client_sockets (load.client, sockets, 32);
    zpoller_t *poller = zpoller_new (NULL);
    for (size_t i = 0; i < count; i++)
        zpoller_add (poller, sockets[i]);
    //  Wait until every broker is reachable, then go
    int64_t start = bus_proto_now ();
    while (bus_client_brokers_alive (load.client) < count / 2 + (count % 2)
           && bus_proto_now () - start < 5000) {
        zpoller_wait (poller, 20);
        bus_client_process (load.client);
    }
    fprintf (stderr, "load: starting\n");
    while (load.ended < load.total && !zsys_interrupted) {
        s_fill (&load);
        zpoller_wait (poller, 5);
        bus_client_process (load.client);
        bus_client_tick (load.client);
    }
    printf ("{\"ok\":%d,\"ok_after_first_error\":%d,\"max_gap_ms\":%d,\"errors\":",
            load.ok, load.ok_after_error, (int) load.max_gap);
    s_print (load.errors);
    printf (",\"replicas\":");
    s_print (load.replicas);
    printf ("}\n");
    zpoller_destroy (&poller);
    bus_client_destroy (&load.client);
    zhashx_destroy (&load.errors);
    zhashx_destroy (&load.replicas);
    core_log_destroy (&log);
    return 0;
}
