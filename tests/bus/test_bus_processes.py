#!/usr/bin/python3
"""Cross-process tests of the bus: real chorus-broker processes, real echo replicas
(chorus-bus-echo), a real service runtime publishing into PostgreSQL, and SIGKILL.

The client side of most checks speaks the bus protocol from Python (python3-zmq and
python3-msgpack), written from schemas/bus.md alone; the two-broker check drives the
C client (bus_test_load). Needs CHORUS_BIN_DIR and, for events,
CHORUS_TEST_DATABASE_URL (tools/chorus test sets both)."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(__file__) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
HEARTBEAT_MS = 1000
LIVENESS = 3
WORK = tempfile.mkdtemp(prefix="chorus-bus-test-")
PROCESSES = []


def free_base_port():
    """Three consecutive free loopback ports (a broker uses P, P+1, P+2)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        ok = True
        for port in (base, base + 1, base + 2):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free ports")


def env(brokers, **extra):
    e = dict(os.environ)
    e.update({"CHORUS_BROKERS": brokers, "CHORUS_HEARTBEAT_MS": str(HEARTBEAT_MS),
              "CHORUS_HEARTBEAT_LIVENESS": str(LIVENESS), "CHORUS_LOG_LEVEL": "warn"})
    e.update({k: str(v) for k, v in extra.items()})
    return e


def start(name, args, environment):
    log = open(os.path.join(WORK, name + ".log"), "ab")
    proc = subprocess.Popen(args, env=environment, stdout=log, stderr=log)
    proc.name = name
    PROCESSES.append(proc)
    return proc


def start_broker(port):
    return start("broker-%d" % port, [BIN + "/chorus-broker"],
                 env("", CHORUS_BROKER_BIND="tcp://127.0.0.1:%d" % port))


def start_echo(brokers, replica, credit=2):
    return start("echo-" + replica, [BIN + "/chorus-bus-echo"],
                 env(brokers, CHORUS_ECHO_REPLICA=replica, CHORUS_ECHO_CREDIT=credit))


def stop_all():
    for proc in PROCESSES:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Client:
    """A bus client in Python: one DEALER to one broker, CHC1 frames."""

    def __init__(self, port):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect("tcp://127.0.0.1:%d" % port)
        self.next_id = 1
        self.pending = {}

    def send(self, service, command, body=None, timeout_ms=5000):
        rid = str(self.next_id).encode()
        self.next_id += 1
        headers = {"request_id": "py-" + rid.decode(), "timeout_ms": timeout_ms}
        self.sock.send_multipart([b"CHC1", b"\x01", rid, service.encode(), command.encode(),
                                  msgpack.packb(headers), msgpack.packb(body or {})])
        return rid

    def cancel(self, rid):
        self.sock.send_multipart([b"CHC1", b"\x02", rid])

    def replies(self, rid, wait_s=5.0):
        """Every reply of one request: a list of (kind, body), ending at final/error.
        Replies to other requests that arrive meanwhile are kept for later."""
        out = self.pending.pop(rid, [])
        if out and out[-1][0] != "partial":
            return out
        end = time.time() + wait_s
        while time.time() < end:
            if not self.sock.poll(int((end - time.time()) * 1000) + 1):
                break
            frames = self.sock.recv_multipart()
            if frames[1] == b"\x03":
                continue
            kind = {b"\x11": "partial", b"\x12": "final", b"\x13": "error"}[frames[1]]
            reply = (kind, msgpack.unpackb(frames[3], raw=False))
            if frames[2] != rid:
                self.pending.setdefault(frames[2], []).append(reply)
                continue
            out.append(reply)
            if kind != "partial":
                return out
        return out

    def call(self, service, command, body=None, timeout_ms=5000, wait_s=5.0):
        return self.replies(self.send(service, command, body, timeout_ms), wait_s)


def wait_for(what, predicate, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def replicas_of(client, service):
    status = client.call("broker", "status")[-1][1]
    for info in status.get("services", []):
        if info["name"] == service:
            return info["replicas"]
    return 0


def check(name, fn):
    started = time.time()
    fn()
    print("ok   %-46s %.2fs" % (name, time.time() - started), flush=True)


def test_round_trip_and_streaming(port, client):
    reply = client.call("echo", "echo", {"data": b"hi"})
    assert reply[-1][0] == "final" and reply[-1][1]["data"] == b"hi", reply
    parts = client.call("echo", "echo", {"data": b"x", "parts": 50})
    assert [k for k, _ in parts] == ["partial"] * 50 + ["final"], parts
    assert [b["parts"] for _, b in parts] == list(range(51)), "partials out of order"


def test_credit_shares_load(port, client):
    rids = [client.send("echo", "echo", {"data": b"s", "delay_ms": 100}) for _ in range(8)]
    seen = {}
    for rid in rids:
        kind, body = client.replies(rid)[-1]
        assert kind == "final", body
        seen[body["replica"]] = seen.get(body["replica"], 0) + 1
    # two replicas of credit 2 each: both get work, neither more than its share
    assert set(seen) == {"a", "b"} and all(n == 4 for n in seen.values()), seen


def test_deadline(port, client):
    started = time.time()
    reply = client.call("echo", "echo", {"delay_ms": 3000}, timeout_ms=200)
    assert reply == [("error", {"code": "deadline_exceeded", "message": reply[0][1]["message"]})]
    assert time.time() - started < 1.0


def test_cancel_reaches_worker(port, client):
    before = sum(client.call("echo", "stats")[-1][1]["cancels"] for _ in range(1))
    rid = client.send("echo", "echo", {"delay_ms": 3000})
    time.sleep(0.1)
    client.cancel(rid)
    # the cancelled request gets no answer; the replica that held it saw the cancel
    assert client.replies(rid, wait_s=0.5) == []
    def cancelled():
        total = 0
        for _ in range(4):   # ask both replicas (round robin by load)
            total = max(total, client.call("echo", "stats")[-1][1]["cancels"])
        return total > before
    wait_for("the worker to see the cancel", cancelled, 3)


def test_bad_frames(port, client):
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect("tcp://127.0.0.1:%d" % port)
    for frames in ([b"junk"], [b"CHC1", b"\x01"], [b"CHC1", b"\x7f", b"1"],
                   [b"CHC1", b"\x01", b"9", b"echo", b"echo", b"\xc1\xc1", b"\x80"],
                   [b"CHW1", b"\x04", b"svc", b"\xff"]):
        raw.send_multipart(frames)
    answered = 0
    while raw.poll(500):
        frames = raw.recv_multipart()
        if frames[0] == b"CHW1":   # a malformed READY is told to go away
            assert frames[1] == b"\x06", frames
            continue
        assert frames[1] == b"\x13", frames
        assert msgpack.unpackb(frames[3])["code"] == "bad_frame"
        answered += 1
    assert answered >= 3, answered
    raw.close()
    # the broker is alive and routing
    assert client.call("echo", "echo", {"data": b"still"})[-1][0] == "final"


def test_worker_killed(port, client, echo_a, echo_b):
    rids = [client.send("echo", "echo", {"delay_ms": 8000}) for _ in range(2)]
    time.sleep(0.2)
    started = time.time()
    echo_a.send_signal(signal.SIGKILL)
    # the first answer to either request: the one replica a held fails at once
    error = None
    while error is None and time.time() - started < 5:
        if not client.sock.poll(100):
            continue
        frames = client.sock.recv_multipart()
        if frames[2] in rids and frames[1] == b"\x13":
            error = (msgpack.unpackb(frames[3])["code"], time.time() - started)
    assert error and error[0] == "worker_lost", error
    window = HEARTBEAT_MS * LIVENESS / 1000.0
    # noticed by the closed connection, not by missing heartbeats
    assert error[1] < window / 2, "worker loss took %.3fs" % error[1]
    for rid in rids:
        client.cancel(rid)
    reply = client.call("echo", "echo", {"data": b"next"})
    assert reply[-1][0] == "final" and reply[-1][1]["replica"] == "b", reply


def test_two_brokers(_port, _client):
    # the one killed is reached over its Unix socket, the other over TCP: a lost
    # connection is noticed at once on either
    p1, p2 = free_base_port(), None
    ipc = "ipc://%s/broker-1" % WORK
    b1 = start("broker-%d" % p1, [BIN + "/chorus-broker"],
               env("", CHORUS_BROKER_BIND="tcp://127.0.0.1:%d,%s" % (p1, ipc)))
    p2 = free_base_port()
    b2 = start_broker(p2)
    brokers = "%s,tcp://127.0.0.1:%d" % (ipc, p2)
    start_echo(brokers, "c", credit=8)
    start_echo(brokers, "d", credit=8)
    c1, c2 = Client(p1), Client(p2)
    wait_for("replicas on both brokers",
             lambda: replicas_of(c1, "echo") == 2 and replicas_of(c2, "echo") == 2)
    total = 20000
    load = subprocess.Popen([BIN + "/bus_test_load", str(total), "8", "1"],
                            env=env(brokers), stdout=subprocess.PIPE,
                            stderr=open(os.path.join(WORK, "load.log"), "ab"))
    time.sleep(0.7)
    b1.send_signal(signal.SIGKILL)
    out, _ = load.communicate(timeout=120)
    result = json.loads(out)
    errors = result["errors"]
    # only what the dead broker held failed, and everything after went through
    assert set(errors) <= {"broker_lost"}, result
    assert sum(errors.values()) <= 8, result
    assert result["ok"] + sum(errors.values()) == total, result
    # new requests went to the other broker at once: no stall waiting for heartbeats
    assert result["max_gap_ms"] < HEARTBEAT_MS, result
    print("     two brokers: %s" % json.dumps(result), flush=True)
    b2.send_signal(signal.SIGTERM)


def test_events_catch_up(port, _client):
    if not DATABASE:
        raise AssertionError("CHORUS_TEST_DATABASE_URL is not set (run tools/chorus test)")
    brokers = "tcp://127.0.0.1:%d" % port
    environment = env(brokers, CHORUS_DATABASE_URL=DATABASE,
                      CHORUS_SQL_DIR=SRC + "/tests/bus/sql")
    publisher = start("evtest-publisher", [BIN + "/bus_test_events", "publisher"],
                      environment)
    client = Client(port)
    wait_for("the publisher", lambda: replicas_of(client, "evtest") == 1)
    start_seq = client.call("evtest", "events.replay", {"after_seq": 0, "limit": 1})[-1][1]
    base = start_seq["last_seq"]
    sink = os.path.join(WORK, "events.txt")
    with open(sink, "w") as f:
        if base:
            f.write("%d evtest.tick.emitted\n" % base)
    sub_args = [BIN + "/bus_test_events", "subscriber", sink]
    subscriber = start("evtest-subscriber", sub_args, env(brokers))
    time.sleep(0.5)
    total = 300
    rid = client.send("evtest", "emit", {"count": total, "interval_ms": 5}, timeout_ms=60000)
    time.sleep(0.4)
    subscriber.send_signal(signal.SIGKILL)   # mid-stream
    subscriber.wait()
    time.sleep(0.5)                           # events keep being committed meanwhile
    subscriber = start("evtest-subscriber", sub_args, env(brokers))
    assert client.replies(rid, wait_s=60)[-1][0] == "final"

    def seqs():
        with open(sink) as f:
            return [int(line.split()[0]) for line in f if line.strip()]
    wait_for("the subscriber to catch up", lambda: len(seqs()) >= total + (1 if base else 0), 20)
    got = seqs()[1:] if base else seqs()
    assert got == list(range(base + 1, base + total + 1)), \
        "missing or duplicated: %d lines" % len(got)
    subscriber.send_signal(signal.SIGTERM)
    publisher.send_signal(signal.SIGTERM)
    assert publisher.wait(timeout=15) == 0


def main():
    port = free_base_port()
    start_broker(port)
    brokers = "tcp://127.0.0.1:%d" % port
    echo_a = start_echo(brokers, "a")
    echo_b = start_echo(brokers, "b")
    client = Client(port)
    try:
        wait_for("two echo replicas", lambda: replicas_of(client, "echo") == 2)
        check("round trip and streamed reply in order", lambda: test_round_trip_and_streaming(port, client))
        check("two replicas share load by credit", lambda: test_credit_shares_load(port, client))
        check("expired deadline", lambda: test_deadline(port, client))
        check("cancel reaches the worker", lambda: test_cancel_reaches_worker(port, client))
        check("bad frames answered, broker unharmed", lambda: test_bad_frames(port, client))
        check("worker SIGKILL: worker_lost at once", lambda: test_worker_killed(port, client, echo_a, echo_b))
        check("one of two brokers (over ipc) SIGKILLed under load", lambda: test_two_brokers(port, client))
        check("subscriber SIGKILL: catches up, no duplicates", lambda: test_events_catch_up(port, client))
    except Exception:
        for name in sorted(os.listdir(WORK)):
            if name.endswith(".log"):
                with open(os.path.join(WORK, name), errors="replace") as f:
                    tail = f.read()[-2000:]
                print("---- %s\n%s" % (name, tail))
        raise
    finally:
        stop_all()
    print("all bus process tests passed")


if __name__ == "__main__":
    sys.exit(main())
