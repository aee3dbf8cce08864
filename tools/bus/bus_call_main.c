/*  chorus-bus-call: sends one request through the bus and prints its replies, for
    people and for tests. The JSON body becomes msgpack (codec_json); each partial
    and the final reply are printed as one JSON line on stdout; an error is printed
    as {"error":{"code":...,"message":...}} and exits 1. Exit 0 after a final
    reply, 2 on bad usage.

        chorus-bus-call echo ping
        chorus-bus-call echo echo '{"data":"hi","parts":2}' --timeout 2000
        chorus-bus-call broker status                                              */
#include <assert.h>
#include <errno.h>

#include "bus_client.h"
#include "bus_proto.h"
#include "codec_json.h"
#include "core_config.h"
#include "core_log.h"

typedef struct {
    bool envelope;  //  wrap each reply as {"kind":..., "body":...}
    bool done;      //  a final reply or an error came
    int status;     //  exit status
} s_call_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: chorus-bus-call SERVICE COMMAND [JSON-BODY|-] [--timeout MS]\n"
             "           [--tenant ID] [--user ID] [--role ROLE] [--request-id ID]\n"
             "           [--envelope]\n"
             "  sends one request (body '-' is read from stdin; default {}) and prints\n"
             "  each reply body as a JSON line; --envelope prints\n"
             "  {\"kind\":\"partial\"|\"final\",\"body\":...} instead. An error prints\n"
             "  {\"error\":{\"code\":...,\"message\":...}} and exits 1.\n\n");
}

//  Print an error line the way replies are printed.
static void
s_print_error (const char *code, const char *message)
{
    char c[128], m[1024];
    core_json_escape (c, sizeof c, code);
    core_json_escape (m, sizeof m, message);
    printf ("{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", c, m);
    fflush (stdout);
}

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    if (reply->kind == BUS_REPLY_ERROR) {
        s_print_error (reply->code, reply->message);
        call->done = true;
        call->status = 1;
        return;
    }
    char *body = codec_msgpack_to_json (reply->body, reply->size, 0);
    if (!body) {
        //  Not msgpack (a broken worker): show the bytes
        char *base64 = codec_base64_encode (reply->body, reply->size);
        if (asprintf (&body, "{\"base64\":\"%s\"}", base64 ? base64 : "") < 0)
            body = NULL;
        free (base64);
    }
    const char *kind = reply->kind == BUS_REPLY_FINAL ? "final" : "partial";
    if (call->envelope)
        printf ("{\"kind\":\"%s\",\"body\":%s}\n", kind, body ? body : "null");
    else
        printf ("%s\n", body ? body : "null");
    fflush (stdout);
    free (body);
    if (reply->kind == BUS_REPLY_FINAL) {
        call->done = true;
        call->status = 0;
    }
}

//  Read all of stdin, at most max bytes; NULL when larger or unreadable.
static char *
s_read_stdin (size_t max, size_t *size)
{
    char *data = NULL;
    size_t used = 0, room = 0;
    for (;;) {
        if (used == room) {
            room = room ? room * 2 : 4096;
            if (room > max + 1)
                room = max + 1;
            char *bigger = realloc (data, room);
            assert (bigger);
            data = bigger;
        }
        size_t got = fread (data + used, 1, room - used, stdin);
        used += got;
        if (used > max) {
            free (data);
            return NULL;
        }
        if (got == 0)
            break;
    }
    if (ferror (stdin)) {
        free (data);
        return NULL;
    }
    *size = used;
    return data;
}

//  Run the client until the call is done, or a broker is alive (until_alive), or
//  end (monotonic ms) passes.
static void
s_run (bus_client_t *client, zpoller_t *poller, s_call_t *call, int64_t end,
       bool until_alive)
{
    while (!call->done && !zsys_interrupted) {
        if (until_alive && bus_client_brokers_alive (client))
            return;
        int64_t left = end - zclock_mono ();
        if (left <= 0)
            return;
        int wait = bus_client_tick (client);
        zpoller_wait (poller, (int) (left < wait ? left : wait));
        bus_client_process (client);
    }
}

int
main (int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (streq (argv[i], "--help") || streq (argv[i], "-h"))
            s_usage (stdout);
    if (core_config_handle_args (argc, argv, "chorus-bus-call", NULL, 0))
        return 0;
    const char *positional[3] = {NULL, NULL, NULL};
    int npositional = 0;
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "bus-call";
    s_call_t call = {.status = 1};
    int64_t timeout = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool valued = streq (arg, "--timeout") || streq (arg, "--tenant")
                      || streq (arg, "--user") || streq (arg, "--role")
                      || streq (arg, "--request-id");
        if (valued && i + 1 < argc) {
            const char *value = argv[++i];
            if (streq (arg, "--timeout")) {
                char *end = NULL;
                errno = 0;
                long long ms = strtoll (value, &end, 10);
                if (errno || end == value || *end || ms <= 0) {
                    fprintf (stderr, "chorus-bus-call: --timeout wants milliseconds\n");
                    return 2;
                }
                timeout = ms;
            }
            else if (streq (arg, "--tenant"))
                headers.tenant_id = (char *) value;
            else if (streq (arg, "--user"))
                headers.user_id = (char *) value;
            else if (streq (arg, "--role"))
                headers.role = (char *) value;
            else
                headers.request_id = (char *) value;
        }
        else if (streq (arg, "--envelope"))
            call.envelope = true;
        else if ((strncmp (arg, "--", 2) == 0 && arg[2]) || valued || npositional == 3) {
            s_usage (stderr);
            return 2;
        }
        else
            positional[npositional++] = arg;
    }
    if (npositional < 2) {
        s_usage (stderr);
        return 2;
    }
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    if (!config) {
        fprintf (stderr, "chorus-bus-call: %s\n", error);
        free (error);
        return 2;
    }
    if (!timeout)
        timeout = core_config_int (config, "request_timeout_ms");
    headers.timeout_ms = timeout;

    //  The body: JSON text -> msgpack
    size_t max = (size_t) core_config_int (config, "max_message");
    const char *text = positional[2] ? positional[2] : "{}";
    size_t length = strlen (text);
    char *input = NULL;
    if (streq (text, "-")) {
        input = s_read_stdin (max, &length);
        if (!input) {
            fprintf (stderr, "chorus-bus-call: stdin unreadable or over %zu bytes\n",
                     max);
            return 2;
        }
        text = input;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    char why[256];
    int rc = codec_json_to_msgpack (text, length, &body, why, sizeof why);
    free (input);
    if (rc) {
        fprintf (stderr, "chorus-bus-call: bad JSON body: %s\n", why);
        return 2;
    }

    zsys_init ();
    //  A command-line tool stays quiet unless asked: "info" means warnings only
    const char *level = core_config_str (config, "log_level");
    core_log_t *log = core_log_new ("chorus-bus-call",
                                    streq (level, "info") ? "warn" : level);
    bus_client_t *client = bus_client_new (
        core_config_str (config, "brokers"),
        (int) core_config_int (config, "heartbeat_ms"),
        (int) core_config_int (config, "heartbeat_liveness"), log);
    if (!client) {
        fprintf (stderr, "chorus-bus-call: CHORUS_BROKERS names no broker\n");
        return 2;
    }
    zpoller_t *poller = zpoller_new (NULL);
    zsock_t *sockets[64];
    size_t nsockets = bus_client_sockets (client, sockets, 64);
    for (size_t i = 0; i < nsockets; i++)
        zpoller_add (poller, sockets[i]);

    //  Wait for a broker (within the deadline), send, then run until the end; the
    //  broker ends the request at its deadline, we allow it a little longer
    int64_t end = zclock_mono () + timeout;
    s_run (client, poller, &call, end, true);
    uint64_t handle = 0;
    if (bus_client_brokers_alive (client))
        handle = bus_client_request (client, positional[0], positional[1], &headers,
                                     body.data, body.size, s_on_reply, &call);
    if (handle) {
        bus_client_process (client);
        s_run (client, poller, &call, end + 2000, false);
        if (!call.done) {
            s_print_error (zsys_interrupted ? BUS_ERR_CANCELLED : BUS_ERR_DEADLINE,
                           zsys_interrupted ? "interrupted" : "no answer in time");
            bus_client_cancel (client, handle);
        }
    }
    else
        s_print_error (BUS_ERR_BROKER_UNAVAILABLE, "no broker reachable");
    zpoller_destroy (&poller);
    bus_client_destroy (&client);
    core_log_destroy (&log);
    msgpack_sbuffer_destroy (&body);
    core_config_destroy (&config);
    return call.status;
}
