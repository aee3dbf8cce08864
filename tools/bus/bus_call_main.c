/*  chorus-bus-call: one request from the command line, every reply as a JSON line.
        chorus-bus-call SERVICE COMMAND [JSON-BODY] [--timeout MS]
    Exit 0 after a final reply, 1 after an error ({"error":{"code","message"}}).   */
#include <czmq.h>

#include "bus_client.h"
#include "codec_json.h"
#include "core_config.h"

typedef struct {
    int done;    //  1 once the request ended
    int failed;  //  1 when it ended with an error
} s_state_t;

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_state_t *state = (s_state_t *) arg;
    if (reply->kind == BUS_REPLY_ERROR) {
        json_t *error = json_pack ("{s:{s:s,s:s}}", "error", "code", reply->code,
                                   "message", reply->message);
        char *text = json_dumps (error, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
        json_decref (error);
        state->done = state->failed = 1;
        return;
    }
    char *text = codec_msgpack_to_json (reply->body, reply->size, 0);
    printf ("%s\n", text ? text : "null");
    fflush (stdout);
    free (text);
    if (reply->kind == BUS_REPLY_FINAL)
        state->done = 1;
}

int
main (int argc, char **argv)
{
    if (core_config_handle_args (argc, argv, "chorus-bus-call", NULL, 0))
        return 0;
    const char *positional[3] = {NULL, NULL, "{}"};
    int given = 0;
    long timeout = 10000;
    for (int i = 1; i < argc; i++) {
        if (streq (argv[i], "--timeout") && i + 1 < argc)
            timeout = strtol (argv[++i], NULL, 10);
        else if (given < 3)
            positional[given++] = argv[i];
    }
    if (given < 2 || timeout <= 0) {
        fprintf (stderr,
                 "usage: chorus-bus-call SERVICE COMMAND [JSON] [--timeout MS]\n");
        return 2;
    }
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    if (!config) {
        fprintf (stderr, "chorus-bus-call: %s\n", error);
        free (error);
        return 2;
    }
    char why[200];
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    if (codec_json_to_msgpack (positional[2], strlen (positional[2]), &body, why,
                               sizeof why)) {
        fprintf (stderr, "chorus-bus-call: bad JSON body: %s\n", why);
        return 2;
    }
    bus_client_t *client = bus_client_new (core_config_str (config, "brokers"), 0, 0,
                                           NULL);
    if (!client) {
        fprintf (stderr, "chorus-bus-call: bad CHORUS_BROKERS\n");
        return 2;
    }
    zsock_t *sockets[32];
    size_t count = bus_client_sockets (client, sockets, 32);
    zpoller_t *poller = zpoller_new (NULL);
    for (size_t i = 0; i < count; i++)
        zpoller_add (poller, sockets[i]);
    s_state_t state = {0};
    int64_t end = zclock_mono () + timeout + 2000;
    bool sent = false;
    while (!state.done && zclock_mono () < end && !zsys_interrupted) {
        if (!sent && bus_client_brokers_alive (client)) {
            ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
            headers.request_id = "bus-call";
            headers.timeout_ms = timeout;
            sent = bus_client_request (client, positional[0], positional[1], &headers,
                                       body.data, body.size, s_on_reply, &state)
                   != 0;
        }
        zpoller_wait (poller, 20);
        bus_client_process (client);
        bus_client_tick (client);
    }
    if (!state.done)
        printf ("{\"error\":{\"code\":\"%s\",\"message\":\"no answer\"}}\n",
                sent ? "deadline_exceeded" : "broker_unavailable");
    zpoller_destroy (&poller);
    bus_client_destroy (&client);
    msgpack_sbuffer_destroy (&body);
    core_config_destroy (&config);
    return state.done && !state.failed ? 0 : 1;
}
