#!/usr/bin/python3
"""Join the Chorus bus as an event subscriber, written from schemas/bus.md alone.

Usage: subscribe.py [TOPIC-PREFIX ...] [--count N]
Env:   CHORUS_BROKERS  request endpoint(s) of the broker(s), default tcp://127.0.0.1:7100

A broker's events-out endpoint is its request port + 2 (bus.md, section 2). An event
is three frames: topic, EventMeta (msgpack map) and payload (msgpack). Subscribing to
"_bus.trace" (or to everything, the default) makes brokers publish a Trace event per
request and per reply.
"""
import json
import os
import sys

import msgpack
import zmq


def events_out(endpoint):
    """tcp://host:P -> tcp://host:P+2; other transports get '-events-out'."""
    if endpoint.startswith("tcp://"):
        host, port = endpoint.rsplit(":", 1)
        return "%s:%d" % (host, int(port) + 2)
    return endpoint + "-events-out"


def main():
    args = sys.argv[1:]
    count = 0
    if "--count" in args:
        i = args.index("--count")
        count = int(args[i + 1])
        del args[i:i + 2]
    topics = args or [""]

    sub = zmq.Context.instance().socket(zmq.SUB)
    brokers = os.environ.get("CHORUS_BROKERS", "tcp://127.0.0.1:7100")
    for broker in brokers.split(","):
        sub.connect(events_out(broker.strip()))
    for topic in topics:
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())

    seen = 0
    while not count or seen < count:
        frames = sub.recv_multipart()
        if len(frames) != 3:
            continue  # not an event; a reader ignores what it cannot use
        topic = frames[0].decode("utf-8", "replace")
        meta = msgpack.unpackb(frames[1], raw=False)
        payload = msgpack.unpackb(frames[2], raw=False)
        print(json.dumps({"topic": topic, "meta": meta, "payload": payload},
                         default=lambda b: b.hex()), flush=True)
        seen += 1


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
