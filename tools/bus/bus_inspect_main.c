/*  chorus-bus-inspect: prints live bus events as JSON lines. Connects one SUB socket
    to every broker's events-out endpoint, subscribes to the topic prefixes given
    (default: everything, which includes the brokers' "_bus.trace" requests) and
    prints {"topic":..., "meta":{...}, "payload":{...}} per event. Frames that are not
    msgpack are shown as base64 ("meta_base64", "payload_base64"); nothing a socket
    brings can stop it.                                                            */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>

#include "bus_proto.h"
#include "codec_json.h"
#include "core_config.h"
#include "core_log.h"

#define S_BROKERS_MAX 32  //  most brokers we connect to

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: chorus-bus-inspect [TOPIC-PREFIX...] [--count N] "
                  "[--timeout MS]\n"
                  "  prints every event whose topic starts with a prefix (default: "
                  "all, including _bus.trace)\n"
                  "  as one JSON object per line; --count N exits after N lines, "
                  "--timeout MS after MS\n"
                  "  milliseconds (exit 1 if --count was not reached).\n\n");
}

//  Parse a non-negative integer argument; -1 when it is not one.
static int64_t
s_number (const char *text)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value < 0)
        return -1;
    return value;
}

//  Write a frame as JSON text: a string (topic), or converted msgpack (meta,
//  payload), or, when that fails, a base64 string under key_base64.
static void
s_put_msgpack (FILE *out, const char *key, zframe_t *frame)
{
    char *json = codec_msgpack_to_json (zframe_data (frame), zframe_size (frame), 0);
    if (json)
        fprintf (out, ",\"%s\":%s", key, json);
    else {
        char *base64 = codec_base64_encode (zframe_data (frame), zframe_size (frame));
        fprintf (out, ",\"%s_base64\":\"%s\"", key, base64 ? base64 : "");
        free (base64);
    }
    free (json);
}

//  The topic as a JSON string; invalid UTF-8 becomes U+FFFD (codec_json rules).
static void
s_put_topic (FILE *out, zframe_t *frame)
{
    msgpack_object object = {.type = MSGPACK_OBJECT_STR};
    object.via.str.ptr = (const char *) zframe_data (frame);
    object.via.str.size = (uint32_t) zframe_size (frame);
    json_t *value = codec_msgpack_to_jansson (&object);
    char *text = value ? json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    fprintf (out, "\"topic\":%s", text ? text : "\"\"");
    free (text);
    json_decref (value);
}

//  Print one event as a JSON line. broker is named when there are several.
static void
s_print (FILE *out, zmsg_t *msg, const char *broker)
{
    zframe_t *frame = zmsg_first (msg);
    if (!frame)
        return;
    fputc ('{', out);
    s_put_topic (out, frame);
    if ((frame = zmsg_next (msg)))
        s_put_msgpack (out, "meta", frame);
    if ((frame = zmsg_next (msg)))
        s_put_msgpack (out, "payload", frame);
    if (zmsg_size (msg) != 3)
        fprintf (out, ",\"frames\":%zu", zmsg_size (msg));
    if (broker) {
        char escaped[512];
        core_json_escape (escaped, sizeof escaped, broker);
        fprintf (out, ",\"broker\":\"%s\"", escaped);
    }
    fputs ("}\n", out);
    fflush (out);
}

int
main (int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (streq (argv[i], "--help") || streq (argv[i], "-h"))
            s_usage (stdout);
    if (core_config_handle_args (argc, argv, "chorus-bus-inspect", NULL, 0))
        return 0;
    int64_t count = 0, timeout = 0;
    zlist_t *topics = zlist_new ();
    for (int i = 1; i < argc; i++) {
        if ((streq (argv[i], "--count") || streq (argv[i], "--timeout"))
            && i + 1 < argc) {
            int64_t value = s_number (argv[i + 1]);
            if (value < 0) {
                fprintf (stderr, "chorus-bus-inspect: %s wants a number\n", argv[i]);
                return 2;
            }
            *(streq (argv[i], "--count") ? &count : &timeout) = value;
            i++;
        }
        else if (strncmp (argv[i], "--", 2) == 0) {
            s_usage (stderr);
            return 2;
        }
        else
            zlist_append (topics, argv[i]);
    }
    if (zlist_size (topics) == 0)
        zlist_append (topics, "");
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    if (!config) {
        fprintf (stderr, "chorus-bus-inspect: %s\n", error);
        free (error);
        return 2;
    }
    zsys_init ();
    zlist_t *brokers = bus_proto_endpoints (core_config_str (config, "brokers"));
    if (!brokers || zlist_size (brokers) > S_BROKERS_MAX) {
        fprintf (stderr, "chorus-bus-inspect: CHORUS_BROKERS: 1 to %d endpoints\n",
                 S_BROKERS_MAX);
        return 2;
    }
    zsock_t *subs[S_BROKERS_MAX];
    char names[S_BROKERS_MAX][256];
    size_t nsubs = 0;
    zpoller_t *poller = zpoller_new (NULL);
    for (char *broker = (char *) zlist_first (brokers); broker;
         broker = (char *) zlist_next (brokers)) {
        char endpoint[256];
        if (bus_proto_event_endpoint (broker, 2, endpoint, sizeof endpoint)) {
            fprintf (stderr, "chorus-bus-inspect: bad broker endpoint '%s'\n", broker);
            return 2;
        }
        zsock_t *sub = zsock_new (ZMQ_SUB);
        assert (sub);
        zsock_set_rcvhwm (sub, (int) core_config_int (config, "hwm"));
        zsock_set_maxmsgsize (sub, (int) core_config_int (config, "max_message"));
        for (char *topic = (char *) zlist_first (topics); topic;
             topic = (char *) zlist_next (topics))
            zsock_set_subscribe (sub, topic);
        if (zsock_connect (sub, "%s", endpoint)) {
            fprintf (stderr, "chorus-bus-inspect: cannot connect to '%s'\n", endpoint);
            return 2;
        }
        snprintf (names[nsubs], sizeof names[nsubs], "%s", broker);
        zpoller_add (poller, sub);
        subs[nsubs++] = sub;
    }
    int64_t printed = 0;
    int64_t end = timeout ? zclock_mono () + timeout : INT64_MAX;
    while (!count || printed < count) {
        int64_t left = end - zclock_mono ();
        if (left <= 0)
            break;
        zsock_t *which = (zsock_t *) zpoller_wait (poller,
                                                   (int) (left < 1000 ? left : 1000));
        if (zpoller_terminated (poller))
            break;
        if (!which)
            continue;
        zmsg_t *msg;
        while ((!count || printed < count) && (msg = bus_proto_recv (which, NULL))) {
            const char *name = NULL;
            for (size_t i = 0; nsubs > 1 && i < nsubs; i++)
                if (subs[i] == which)
                    name = names[i];
            s_print (stdout, msg, name);
            zmsg_destroy (&msg);
            printed++;
        }
    }
    zpoller_destroy (&poller);
    for (size_t i = 0; i < nsubs; i++)
        zsock_destroy (&subs[i]);
    zlist_destroy (&brokers);
    zlist_destroy (&topics);
    core_config_destroy (&config);
    return count && printed < count ? 1 : 0;
}
