#!/usr/bin/python3
"""Call a Chorus service over the bus, written from schemas/bus.md alone.

Usage: request.py [SERVICE COMMAND [JSON-BODY]]      (default: broker status)
Env:   CHORUS_BROKERS  request endpoint of a broker, default tcp://127.0.0.1:7100

A client is a DEALER connected to the broker's request endpoint. It sends
  ["CHC1", 0x01 REQUEST, request id, service, command, Headers, body]
where Headers and body are msgpack maps, and reads replies
  ["CHC1", 0x11 PARTIAL | 0x12 FINAL | 0x13 ERROR, request id, body or Error]
until FINAL or ERROR. Prints each reply; exits 1 on ERROR or no answer.
"""
import json
import os
import sys
import uuid

import msgpack
import zmq

REQUEST, PARTIAL, FINAL, ERROR = b"\x01", b"\x11", b"\x12", b"\x13"
KINDS = {PARTIAL: "partial", FINAL: "final", ERROR: "error"}


def main():
    service, command = (sys.argv[1:3] if len(sys.argv) >= 3 else ("broker", "status"))
    body = json.loads(sys.argv[3]) if len(sys.argv) >= 4 else {}
    timeout_ms = 5000

    broker = os.environ.get("CHORUS_BROKERS", "tcp://127.0.0.1:7100").split(",")[0]
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(broker)

    request_id = b"1"  # ours to choose, unique among our requests in flight
    headers = {"tenant_id": "", "user_id": "", "role": "",
               "request_id": "example-" + uuid.uuid4().hex[:8],
               "timeout_ms": timeout_ms}  # the deadline, in milliseconds from now
    dealer.send_multipart([b"CHC1", REQUEST, request_id, service.encode(),
                           command.encode(), msgpack.packb(headers),
                           msgpack.packb(body)])

    # The broker answers by the deadline at the latest; wait a little longer
    while dealer.poll(timeout_ms + 1000):
        frames = dealer.recv_multipart()
        if len(frames) < 4 or frames[2] != request_id:
            continue  # a heartbeat, or something we did not ask for
        kind = KINDS.get(frames[1])
        reply = msgpack.unpackb(frames[3], raw=False)
        print(kind, json.dumps(reply, default=lambda b: b.hex()), flush=True)
        if kind == "final":
            return 0
        if kind == "error":
            return 1
    print("error", json.dumps({"code": "no_answer", "message": "nothing in time"}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
