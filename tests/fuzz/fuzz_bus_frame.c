/*  fuzz_bus_frame: the bus envelope decoder. The input is cut into frames (each a
    length byte, then that many bytes) and given to bus_proto_parse as a routed and
    as an unrouted message; whatever parses has its names, headers, error body and
    worker announcement decoded the way the broker, client and worker do.        */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus.pb-c.h"
#include "bus_proto.h"
#include "codec_msgpack.h"

static void
s_decode (const ProtobufCMessageDescriptor *desc, const bus_part_t *frame)
{
    ProtobufCMessage *msg = codec_decode (desc, frame->data, frame->size, NULL, 0);
    if (msg)
        protobuf_c_message_free_unpacked (msg, NULL);
}

static void
s_walk (zmsg_t *msg, bool routed)
{
    bus_frames_t frames;
    char error[128];
    if (bus_proto_parse (msg, routed, &frames, error, sizeof error))
        return;
    char name[BUS_NAME_MAX];
    for (size_t i = 0; i < frames.nargs; i++)
        (void) !bus_proto_name (&frames.args[i], name, sizeof name);
    if (frames.command == BUS_REQUEST)
        s_decode (&chorus_bus__headers__descriptor, &frames.args[frames.worker ? 2 : 3]);
    else if (frames.command == BUS_ERROR) {
        char code[64], message[256];
        bus_proto_error_decode (frames.args[1].data, frames.args[1].size, code,
                                sizeof code, message, sizeof message);
    }
    else if (frames.command == BUS_READY)
        s_decode (&chorus_bus__worker_ready__descriptor, &frames.args[1]);
    else if (frames.command == BUS_CREDIT)
        s_decode (&chorus_bus__worker_ready__descriptor, &frames.args[0]);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    size_t at = 0;
    while (at < size && zmsg_size (msg) < 16) {
        size_t len = data[at++];
        if (len > size - at)
            len = size - at;
        zmsg_addmem (msg, data + at, len);
        at += len;
    }
    s_walk (msg, true);
    s_walk (msg, false);
    zmsg_destroy (&msg);
    //  The endpoint helpers see outside configuration too
    size_t len = size < 200 ? size : 200;
    char *text = malloc (len + 1);
    memcpy (text, data, len);
    text[len] = 0;
    char out[256];
    (void) !bus_proto_event_endpoint (text, 1 + (size & 1), out, sizeof out);
    zlist_t *list = bus_proto_endpoints (text);
    zlist_destroy (&list);
    free (text);
    return 0;
}
