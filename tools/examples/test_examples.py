#!/usr/bin/python3
"""End-to-end test of the bus examples and tools against real processes: a
chorus-broker and a chorus-bus-echo replica on free ports. request.py calls echo
ping / echo / an unknown command; subscribe.py and chorus-bus-inspect receive
_bus.trace events while requests flow; chorus-bus-call prints replies and errors;
the inspector survives garbage events; the echo replica drains on SIGTERM.

Needs CHORUS_BIN_DIR (default build/bin); /usr/bin/python3 with zmq and msgpack."""
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

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
WORK = tempfile.mkdtemp(prefix="chorus-examples-test-")
PROCESSES = []


def free_base_port():
    """Three consecutive free loopback ports (a broker uses P, P+1, P+2)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        try:
            for port in (base, base + 1, base + 2):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no three consecutive free ports")


def start(name, args, env):
    log = open(os.path.join(WORK, name + ".log"), "ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    proc.name = name
    PROCESSES.append(proc)
    return proc


def run(args, env, timeout=15, stdin=None):
    return subprocess.run(args, env=env, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def check(condition, what, detail=""):
    if not condition:
        raise AssertionError("%s\n%s" % (what, detail))
    print("ok  ", what, flush=True)


def wait_for_echo(env):
    """Until the broker answers status with a live echo replica (10 s at most)."""
    end = time.time() + 10
    while time.time() < end:
        r = run(["/usr/bin/python3", HERE + "/request.py"], env)
        if r.returncode == 0 and '"echo"' in r.stdout and '"replicas": 1' in r.stdout:
            return r.stdout
        time.sleep(0.1)
    raise AssertionError("no echo replica registered:\n" + r.stdout + r.stderr)


def traces_while_flowing(listener, env, count):
    """Start a trace listener, send echo requests until it has seen count events."""
    proc = subprocess.Popen(listener, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    end = time.time() + 10
    while proc.poll() is None and time.time() < end:
        run(["/usr/bin/python3", HERE + "/request.py", "echo", "ping"], env)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    return [json.loads(line) for line in out.splitlines() if line.strip()], out + err


def main():
    port = free_base_port()
    brokers = "tcp://127.0.0.1:%d" % port
    env = dict(os.environ, CHORUS_BROKERS=brokers, CHORUS_LOG_LEVEL="warn",
               CHORUS_HEARTBEAT_MS="200")
    start("broker", [BIN + "/chorus-broker"], dict(env, CHORUS_BROKER_BIND=brokers))
    echo = start("echo", [BIN + "/chorus-bus-echo"], dict(env, CHORUS_ECHO_REPLICA="e1"))
    status = wait_for_echo(env)
    check(status.startswith("final "), "request.py: broker status", status)

    py = ["/usr/bin/python3", HERE + "/request.py"]
    r = run(py + ["echo", "ping"], env)
    check(r.returncode == 0 and '"service": "echo"' in r.stdout
          and '"replica": "e1"' in r.stdout, "request.py: echo ping", r.stdout + r.stderr)
    r = run(py + ["echo", "echo", '{"data": "hello", "parts": 2}'], env)
    kinds = [line.split(" ", 1)[0] for line in r.stdout.splitlines()]
    check(r.returncode == 0 and kinds == ["partial", "partial", "final"],
          "request.py: echo echo streams 2 partials and a final", r.stdout + r.stderr)
    r = run(py + ["echo", "nosuch"], env)
    check(r.returncode == 1 and "unknown_command" in r.stdout,
          "request.py: unknown command is an error", r.stdout + r.stderr)

    events, text = traces_while_flowing(
        ["/usr/bin/python3", HERE + "/subscribe.py", "_bus.trace", "--count", "4"], env, 4)
    phases = {e["payload"]["phase"] for e in events if e["topic"] == "_bus.trace"}
    check(len(events) == 4 and phases <= {"request", "final"} and phases,
          "subscribe.py: _bus.trace events while requests flow", text)

    events, text = traces_while_flowing(
        [BIN + "/chorus-bus-inspect", "--count", "4", "--timeout", "10000"], env, 4)
    check(len(events) == 4 and all(e["topic"] == "_bus.trace" and "seq" in e["meta"]
                                   and "phase" in e["payload"] for e in events),
          "chorus-bus-inspect: trace events as JSON lines", text)

    call = [BIN + "/chorus-bus-call"]
    r = run(call + ["echo", "echo", '{"data":"hi","parts":1}', "--envelope"], env)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    check(r.returncode == 0 and [x["kind"] for x in lines] == ["partial", "final"],
          "chorus-bus-call: partial and final replies", r.stdout + r.stderr)
    r = run(call + ["nosuch", "ping", "--timeout", "2000"], env)
    check(r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == "unavailable",
          "chorus-bus-call: error JSON and exit 1", r.stdout + r.stderr)
    r = run(call + ["echo", "echo", '{"delay_ms":3000}', "--timeout", "300"], env)
    check(r.returncode == 1 and "deadline_exceeded" in r.stdout,
          "chorus-bus-call: deadline", r.stdout + r.stderr)
    r = run(call + ["echo", "echo", "-"], env, stdin='{"data":"from stdin"}')
    check(r.returncode == 0 and "replica" in r.stdout, "chorus-bus-call: body from stdin",
          r.stdout + r.stderr)

    # Garbage on the events bus: the inspector shows it and goes on
    inspect = subprocess.Popen([BIN + "/chorus-bus-inspect", "junk.", "--count", "3",
                                "--timeout", "10000"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect("tcp://127.0.0.1:%d" % (port + 1))
    end = time.time() + 10
    while inspect.poll() is None and time.time() < end:
        pub.send_multipart([b"junk.one", b"\xc1\xff", b"\x92\x01"])       # bad meta
        pub.send_multipart([b"junk.two\xff"])                              # one frame
        pub.send_multipart([b"junk.three", msgpack.packb({"seq": 1}), b"\x00", b"x"])
        time.sleep(0.05)
    out, err = inspect.communicate(timeout=5)
    lines = [json.loads(line) for line in out.splitlines()]
    check(inspect.returncode == 0 and len(lines) == 3
          and any("meta_base64" in x for x in lines), "chorus-bus-inspect: garbage",
          out + err)

    echo.send_signal(signal.SIGTERM)
    check(echo.wait(timeout=10) == 0, "chorus-bus-echo: SIGTERM drains, exit 0")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for p in PROCESSES:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
    print("logs in", WORK)
    sys.exit(rc)
