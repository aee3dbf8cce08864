/*  bus_proto: frame validation and small helpers of the bus wire protocol.        */
#include "bus_proto.h"

#include <assert.h>
#include <string.h>
#include <time.h>

#include "bus.pb-c.h"
#include "codec_msgpack.h"

//  Frames each command carries after the command frame, per protocol.
typedef struct {
    uint8_t command;
    uint8_t client_args;  //  frames in CHC1 messages (0xff: not allowed)
    uint8_t worker_args;  //  frames in CHW1 messages (0xff: not allowed)
} s_shape_t;

static const s_shape_t s_shapes[] = {
    //  C->B: id service command headers body;  B->W: task command headers body
    {BUS_REQUEST, 5, 4},       {BUS_CANCEL, 1, 1},
    {BUS_HEARTBEAT, 0, 0},     {BUS_READY, 0xff, 2},  //  service, WorkerReady
    {BUS_CREDIT, 0xff, 1},                            //  WorkerReady
    {BUS_DISCONNECT, 0xff, 0}, {BUS_PARTIAL, 2, 2},   //  id|task, body
    {BUS_FINAL, 2, 2},         {BUS_ERROR, 2, 2},     //  id|task, Error
};

int
bus_proto_parse_parts (const bus_part_t *parts, size_t count, bool routed,
                       bus_frames_t *out, char *error, size_t error_size)
{
    memset (out, 0, sizeof *out);
    size_t at = 0;
    if (routed) {
        if (count == 0) {
            snprintf (error, error_size, "empty message");
            return -1;
        }
        out->identity = parts[at++];
    }
    if (count - at < 2) {
        snprintf (error, error_size, "too few frames");
        return -1;
    }
    const bus_part_t *proto = &parts[at++];
    if (proto->size != 4) {
        snprintf (error, error_size, "unknown protocol");
        return -1;
    }
    if (memcmp (proto->data, BUS_PROTO_WORKER, 4) == 0)
        out->worker = true;
    else if (memcmp (proto->data, BUS_PROTO_CLIENT, 4) != 0) {
        snprintf (error, error_size, "unknown protocol");
        return -1;
    }
    const bus_part_t *command = &parts[at++];
    if (command->size != 1) {
        snprintf (error, error_size, "command frame must be one byte");
        return -1;
    }
    out->command = ((const uint8_t *) command->data)[0];
    const s_shape_t *shape = NULL;
    for (size_t i = 0; i < sizeof s_shapes / sizeof s_shapes[0]; i++)
        if (s_shapes[i].command == out->command)
            shape = &s_shapes[i];
    if (!shape) {
        snprintf (error, error_size, "unknown command 0x%02x", out->command);
        return -1;
    }
    size_t want = out->worker ? shape->worker_args : shape->client_args;
    if (want == 0xff) {
        snprintf (error, error_size, "command 0x%02x not valid in this protocol",
                  out->command);
        return -1;
    }
    if (count - at != want) {
        snprintf (error, error_size, "command 0x%02x takes %zu frames, got %zu",
                  out->command, want, count - at);
        return -1;
    }
    for (size_t i = 0; i < want; i++)
        out->args[i] = parts[at + i];
    out->nargs = want;
    return 0;
}

int
bus_proto_parse (zmsg_t *msg, bool routed, bus_frames_t *out, char *error,
                 size_t error_size)
{
    bus_part_t parts[BUS_MAX_PARTS];
    size_t count = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        if (count == BUS_MAX_PARTS) {
            memset (out, 0, sizeof *out);
            snprintf (error, error_size, "too many frames");
            return -1;
        }
        parts[count++] = (bus_part_t){zframe_data (frame), zframe_size (frame)};
    }
    return bus_proto_parse_parts (parts, count, routed, out, error, error_size);
}

int
bus_proto_recv_parts (zsock_t *sock, zmq_msg_t *parts, size_t max, size_t *count, int *fd)
{
    void *handle = zsock_resolve (sock);
    *count = 0;
    if (fd)
        *fd = -1;
    while (true) {
        zmq_msg_t scratch;
        zmq_msg_t *part = *count < max ? &parts[*count] : &scratch;
        zmq_msg_init (part);
        if (zmq_msg_recv (part, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (part);
            return *count ? 0 : -1;  //  parts of a message come together
        }
        if (fd && *fd < 0)
            *fd = zmq_msg_get (part, ZMQ_SRCFD);
        int more = zmq_msg_more (part);
        if (part == &scratch)
            zmq_msg_close (&scratch);
        if (*count <= max)
            (*count)++;
        if (!more)
            return 0;
    }
}

int
bus_proto_name (const bus_part_t *part, char *buf, size_t size)
{
    size_t len = part ? part->size : 0;
    if (len == 0 || len >= size)
        return -1;
    const uint8_t *data = (const uint8_t *) part->data;
    for (size_t i = 0; i < len; i++)
        if (data[i] <= 0x20 || data[i] >= 0x7f)
            return -1;
    memcpy (buf, data, len);
    buf[len] = 0;
    return 0;
}

zframe_t *
bus_proto_error_frame (const char *code, const char *message)
{
    return bus_proto_error_frame_retry (code, message, 0);
}

zframe_t *
bus_proto_error_frame_retry (const char *code, const char *message,
                             uint32_t retry_after_s)
{
    ChorusBus__Error error = CHORUS_BUS__ERROR__INIT;
    error.code = (char *) code;
    error.message = (char *) (message ? message : "");
    //  Written only when there is advice: error bodies stay as they were
    if (retry_after_s > 0) {
        error.retry_case = CHORUS_BUS__ERROR__RETRY_RETRY_AFTER_S;
        error.retry_after_s = retry_after_s;
    }
    zframe_t *frame = codec_encode_frame (&error.base);
    assert (frame);
    return frame;
}

void
bus_proto_error_decode (const void *data, size_t size, char *code, size_t code_size,
                        char *message, size_t message_size)
{
    bus_proto_error_decode_retry (data, size, code, code_size, message, message_size,
                                  NULL);
}

void
bus_proto_error_decode_retry (const void *data, size_t size, char *code, size_t code_size,
                              char *message, size_t message_size, uint32_t *retry_after_s)
{
    char why[128];
    ChorusBus__Error *error = (ChorusBus__Error *) codec_decode (
        &chorus_bus__error__descriptor, data, size, why, sizeof why);
    if (retry_after_s)
        *retry_after_s = 0;
    if (error && error->code && *error->code) {
        snprintf (code, code_size, "%s", error->code);
        snprintf (message, message_size, "%s", error->message ? error->message : "");
        if (retry_after_s && error->retry_case == CHORUS_BUS__ERROR__RETRY_RETRY_AFTER_S)
            *retry_after_s = error->retry_after_s;
    }
    else {
        snprintf (code, code_size, "%s", BUS_ERR_INTERNAL);
        snprintf (message, message_size, "malformed error reply");
    }
    if (error)
        protobuf_c_message_free_unpacked (&error->base, NULL);
}

zmsg_t *
bus_proto_recv (zsock_t *sock, int *fd)
{
    void *handle = zsock_resolve (sock);
    zmsg_t *msg = NULL;
    if (fd)
        *fd = -1;
    while (true) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&part);
            //  Parts of one message arrive together, so this is only ever "none"
            zmsg_destroy (&msg);
            return NULL;
        }
        if (!msg)
            msg = zmsg_new ();
        if (fd && *fd < 0)
            *fd = zmq_msg_get (&part, ZMQ_SRCFD);
        zframe_t *frame = zframe_new (zmq_msg_data (&part), zmq_msg_size (&part));
        int more = zmq_msg_more (&part);
        zmq_msg_close (&part);
        zmsg_append (msg, &frame);
        if (!more)
            return msg;
    }
}

int
bus_proto_send (zmsg_t **msg_p, zsock_t *sock)
{
    zmsg_t *msg = *msg_p;
    int rc = 0;
    size_t left = zmsg_size (msg);
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        int flags = ZFRAME_REUSE | ZFRAME_DONTWAIT | (--left ? ZFRAME_MORE : 0);
        if (zframe_send (&frame, sock, flags) == -1) {
            rc = -1;
            break;
        }
    }
    zmsg_destroy (msg_p);
    return rc;
}

int
bus_proto_sendv (zsock_t *sock, const bus_part_t *parts, size_t count)
{
    void *handle = zsock_resolve (sock);
    for (size_t i = 0; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < count ? ZMQ_SNDMORE : 0);
        //  Parts after the first are always taken once the first was
        if (zmq_send (handle, parts[i].data, parts[i].size, flags) == -1)
            return -1;
    }
    return 0;
}

int64_t
bus_proto_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
bus_proto_event_endpoint (const char *endpoint, int offset, char *buf, size_t size)
{
    const char *suffix = offset == 1 ? "-events-in" : "-events-out";
    if (strncmp (endpoint, "tcp://", 6) == 0) {
        const char *colon = strrchr (endpoint, ':');
        if (!colon || colon < endpoint + 6)
            return -1;
        char *end = NULL;
        long port = strtol (colon + 1, &end, 10);
        if (end == colon + 1 || *end || port <= 0 || port + offset > 65535)
            return -1;
        int n = snprintf (buf, size, "%.*s:%ld", (int) (colon - endpoint), endpoint,
                          port + offset);
        return n > 0 && (size_t) n < size ? 0 : -1;
    }
    int n = snprintf (buf, size, "%s%s", endpoint, suffix);
    return n > 0 && (size_t) n < size ? 0 : -1;
}

zlist_t *
bus_proto_endpoints (const char *list)
{
    zlist_t *endpoints = zlist_new ();
    assert (endpoints);
    zlist_autofree (endpoints);
    const char *start = list ? list : "";
    while (*start) {
        const char *comma = strchr (start, ',');
        size_t len = comma ? (size_t) (comma - start) : strlen (start);
        while (len && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len && (start[len - 1] == ' ' || start[len - 1] == '\t'))
            len--;
        if (len) {
            char *item = strndup (start, len);
            assert (item);
            zlist_append (endpoints, item);
            free (item);
        }
        if (!comma)
            break;
        start = comma + 1;
    }
    if (zlist_size (endpoints) == 0)
        zlist_destroy (&endpoints);
    return endpoints;
}

void
bus_proto_test (bool verbose)
{
    printf (" * bus_proto: ");
    char error[128];
    bus_frames_t frames;

    //  A well-formed client request
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "identity");
    zmsg_addstr (msg, BUS_PROTO_CLIENT);
    zmsg_addmem (msg, "\x01", 1);
    zmsg_addstr (msg, "17");
    zmsg_addstr (msg, "auth");
    zmsg_addstr (msg, "ping");
    zmsg_addmem (msg, "\x80", 1);
    zmsg_addmem (msg, "\x80", 1);
    assert (bus_proto_parse (msg, true, &frames, error, sizeof error) == 0);
    assert (!frames.worker && frames.command == BUS_REQUEST && frames.nargs == 5);
    char name[BUS_NAME_MAX];
    assert (bus_proto_name (&frames.args[1], name, sizeof name) == 0);
    assert (streq (name, "auth"));
    //  The same without the routing frame is short of a frame
    zframe_t *first = zmsg_pop (msg);
    zframe_destroy (&first);
    assert (bus_proto_parse (msg, false, &frames, error, sizeof error) == 0);
    zframe_t *last = zmsg_last (msg);
    zmsg_remove (msg, last);
    zframe_destroy (&last);
    assert (bus_proto_parse (msg, false, &frames, error, sizeof error) == -1);
    assert (strstr (error, "frames"));
    zmsg_destroy (&msg);

    //  READY is a worker command only
    msg = zmsg_new ();
    zmsg_addstr (msg, BUS_PROTO_CLIENT);
    zmsg_addmem (msg, "\x04", 1);
    assert (bus_proto_parse (msg, false, &frames, error, sizeof error) == -1);
    zmsg_destroy (&msg);
    //  Unknown protocol, unknown command, long command frame
    const char *bad[][2] = {{"XXX1", "\x01"}, {BUS_PROTO_WORKER, "\x7f"}, {"CHW1", "ab"}};
    for (size_t i = 0; i < 3; i++) {
        msg = zmsg_new ();
        zmsg_addstr (msg, bad[i][0]);
        zmsg_addstr (msg, bad[i][1]);
        assert (bus_proto_parse (msg, false, &frames, error, sizeof error) == -1);
        zmsg_destroy (&msg);
    }
    //  Names: no spaces, no control bytes, not empty, bounded
    assert (bus_proto_name (&(bus_part_t){"a b", 3}, name, sizeof name) == -1);
    assert (bus_proto_name (&(bus_part_t){"", 0}, name, sizeof name) == -1);
    assert (bus_proto_name (&(bus_part_t){"abcd", 4}, name, 4) == -1);
    zframe_t *frame;

    //  Errors round-trip; garbage decodes to internal
    frame = bus_proto_error_frame (BUS_ERR_DEADLINE, "too slow");
    char code[32], message[64];
    bus_proto_error_decode (zframe_data (frame), zframe_size (frame), code, sizeof code,
                            message, sizeof message);
    assert (streq (code, BUS_ERR_DEADLINE) && streq (message, "too slow"));
    uint32_t retry_after_s = 7;
    bus_proto_error_decode_retry (zframe_data (frame), zframe_size (frame), code,
                                  sizeof code, message, sizeof message, &retry_after_s);
    assert (retry_after_s == 0);
    zframe_destroy (&frame);
    frame = bus_proto_error_frame_retry ("rate_limited", "slow down", 42);
    bus_proto_error_decode_retry (zframe_data (frame), zframe_size (frame), code,
                                  sizeof code, message, sizeof message, &retry_after_s);
    assert (streq (code, "rate_limited") && retry_after_s == 42);
    zframe_destroy (&frame);
    frame = zframe_new ("\xc1", 1);
    bus_proto_error_decode (zframe_data (frame), zframe_size (frame), code, sizeof code,
                            message, sizeof message);
    assert (streq (code, BUS_ERR_INTERNAL));
    zframe_destroy (&frame);

    //  Event endpoints
    char endpoint[128];
    assert (
        bus_proto_event_endpoint ("tcp://127.0.0.1:7100", 1, endpoint, sizeof endpoint)
        == 0);
    assert (streq (endpoint, "tcp://127.0.0.1:7101"));
    assert (bus_proto_event_endpoint ("tcp://[::1]:7100", 2, endpoint, sizeof endpoint)
            == 0);
    assert (streq (endpoint, "tcp://[::1]:7102"));
    assert (bus_proto_event_endpoint ("inproc://b", 2, endpoint, sizeof endpoint) == 0);
    assert (streq (endpoint, "inproc://b-events-out"));
    assert (bus_proto_event_endpoint ("tcp://host:x", 1, endpoint, sizeof endpoint)
            == -1);
    assert (bus_proto_event_endpoint ("tcp://host:65535", 1, endpoint, sizeof endpoint)
            == -1);

    zlist_t *list = bus_proto_endpoints (" tcp://a:1 ,tcp://b:2,, ");
    assert (list && zlist_size (list) == 2);
    assert (streq ((char *) zlist_first (list), "tcp://a:1"));
    zlist_destroy (&list);
    assert (bus_proto_endpoints (" , ") == NULL);
    assert (bus_proto_now () > 0);
    printf ("OK\n");
}
