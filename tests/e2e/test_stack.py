#!/usr/bin/python3
"""End-to-end test of the whole stack as separate processes: chorus-broker, the eight
services and chorus-edge against the test PostgreSQL and Redis, spoken to over HTTP
only (stdlib clients). Checks readiness, the broker's view of every service, routes
through the bus (plain, SSE, WebSocket), error answers, metrics, the drain of every
process on SIGTERM, and chorusd doing the same in one process.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL
(tools/chorus test sets them)."""

import base64
import http.client
import json
import os
import signal
import socket
import sys
import tempfile
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_for, start as start_in  # noqa: E402

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(__file__) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
SERVICES = ["auth", "chat", "agents", "rag", "integrations", "workflows", "channels",
            "analytics"]
WORK = tempfile.mkdtemp(prefix="chorus-stack-test-")


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def ws_roundtrip(port, messages, want):
    """Open /api/v1/ws, send text messages, collect `want` JSON answers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    rest = head.split(b"\r\n\r\n", 1)[1]
    for text in messages:
        payload = text.encode()
        assert len(payload) < 126, "short frames only"
        mask = os.urandom(4)
        frame = bytes([0x81, 0x80 | len(payload)]) + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(frame)
    answers, buf = [], rest
    end = time.time() + 10
    while len(answers) < want and time.time() < end:
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            at = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length = int.from_bytes(buf[2:4], "big")
                at = 4
            if len(buf) < at + length:
                break
            answers.append(json.loads(buf[at:at + length]))
            buf = buf[at + length:]
        if len(answers) >= want:
            break
        buf += sock.recv(65536)
    sock.close()
    return answers


def start(name, args, environment):
    return start_in(name, args, environment, WORK)


def check(name, fn):
    started = time.time()
    fn()
    print("ok   %-50s %.2fs" % (name, time.time() - started), flush=True)


def run_checks(port):
    def ready():
        status, _, body = request(port, "GET", "/readyz")
        return status == 200 and json.loads(body)["checks"] == {
            "broker": True, "database": True, "redis": True}
    wait_for("/readyz", ready)

    def services():
        # each service registers when its start-up (migrations) is done: wait for all
        def registered():
            status, headers, body = request(port, "GET", "/api/v1/services")
            assert status == 200, status
            assert "x-request-id" in {k.lower() for k in headers}, headers
            seen = {s["name"]: s["replicas"] for s in json.loads(body)["services"]}
            return all(seen.get(name) == 1 for name in SERVICES)
        wait_for("all eight services at the broker", registered)
    check("every service registered with the broker", services)

    def ping_all():
        for name in SERVICES:
            status, _, body = request(port, "GET", "/api/v1/services/%s/health" % name)
            health = json.loads(body)
            assert status == 200 and health["status"] == "ok", (name, body)
            assert health["database"] is True, (name, body)
    check("health of every service through the edge", ping_all)

    def sse():
        status, headers, body = request(
            port, "GET", "/api/v1/services/chat/ping?count=3&interval_ms=20",
            headers={"Accept": "text/event-stream"})
        assert status == 200, status
        ctype = {k.lower(): v for k, v in headers.items()}["content-type"]
        assert ctype.startswith("text/event-stream"), headers
        events = [e for e in body.decode().split("\n\n") if e.startswith("id:")]
        kinds = [line.split(": ", 1)[1] for e in events for line in e.split("\n")
                 if line.startswith("event:")]
        assert kinds == ["partial", "partial", "final"], body
        indexes = [json.loads(line[6:])["index"] for e in events for line in e.split("\n")
                   if line.startswith("data: ")]
        assert indexes == [0, 1, 2], body
    check("streamed reply over SSE, in order", sse)

    def websocket():
        answers = ws_roundtrip(port, [
            json.dumps({"type": "ping"}),
            json.dumps({"type": "request", "id": "r1", "method": "GET",
                        "path": "/api/v1/services/rag/ping?count=2"})], 3)
        kinds = [(a.get("type"), a.get("id")) for a in answers]
        assert ("pong", None) in kinds, answers
        assert [k for k in kinds if k[1] == "r1"] == [("partial", "r1"), ("final", "r1")], answers
    check("WebSocket: ping and a streamed request", websocket)

    def errors():
        status, _, body = request(port, "GET", "/api/v1/nope")
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
        status, headers, body = request(port, "POST", "/api/v1/services")
        assert status == 405 and json.loads(body)["error"]["code"]
        status, _, body = request(port, "GET", "/api/v1/services/billing/ping")
        assert status == 404, status
        status, _, body = request(port, "GET", "/api/v1/services/auth/ping?count=abc")
        assert status == 400, (status, body)
        big = b"{" + b" " * (2 << 20) + b"}"
        try:
            status, _, body = request(port, "POST", "/api/v1/services", body=big,
                                      headers={"Content-Type": "application/json"})
            assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
        except (BrokenPipeError, ConnectionResetError):
            pass   # the edge may close before the whole body is written: also a refusal
    check("errors: 404, 405, unknown service, bad query, 413", errors)

    def metrics():
        status, _, body = request(port, "GET", "/metrics")
        text = body.decode()
        assert status == 200 and "chorus_http_requests_total" in text, text[:300]
        # replica counts come from the broker status the edge polls in the background
        wait_for("replica counts in /metrics", lambda: 'chorus_service_replicas{service="auth"} 1'
                 in request(port, "GET", "/metrics")[2].decode(), 10)
    check("Prometheus metrics", metrics)

    def openapi():
        status, _, body = request(port, "GET", "/openapi.json")
        doc = json.loads(body)
        assert status == 200 and doc["openapi"].startswith("3.1"), doc.get("openapi")
        assert "/api/v1/services/{name}/ping" in doc["paths"]
    check("OpenAPI document", openapi)


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    base = free_port(3)
    edge_port = free_port()
    environment = dict(os.environ)
    # the broker on TCP and on a Unix socket, the services and the edge over the
    # socket (tools/chorus up keeps TCP; the other e2e tests use it)
    bus_ipc = "ipc://%s/bus" % WORK
    environment.update({
        "CHORUS_BROKERS": bus_ipc,
        "CHORUS_BROKER_BIND": "tcp://127.0.0.1:%d,%s" % (base, bus_ipc),
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": REDIS,
        "CHORUS_SQL_DIR": SRC + "/schemas/sql", "CHORUS_LOG_LEVEL": "warn",
        "CHORUS_EDGE_PORT": str(edge_port), "CHORUS_EDGE_READY_INTERVAL_MS": "200"})
    processes = [start("broker", [BIN + "/chorus-broker"], environment)]
    processes += [start(name, [BIN + "/chorus-" + name], environment) for name in SERVICES]
    processes.append(start("edge", [BIN + "/chorus-edge"], environment))
    try:
        run_checks(edge_port)

        def both_endpoints():
            # a bus client started cold reaches the services over either endpoint
            # (over the socket it waits for the handshake before its first send)
            import subprocess
            for brokers in ("tcp://127.0.0.1:%d" % base, bus_ipc):
                env = dict(environment, CHORUS_BROKERS=brokers, CHORUS_LOG_LEVEL="error")
                done = subprocess.run([BIN + "/chorus-bus-call", "auth", "ping"], env=env,
                                      capture_output=True, timeout=20)
                assert done.returncode == 0, (brokers, done.stdout, done.stderr)
                reply = json.loads(done.stdout.decode().splitlines()[-1])
                assert reply["service"] == "auth", reply
            assert os.path.exists(WORK + "/bus") and os.path.exists(WORK + "/bus-events-out")
        check("the broker over TCP and its Unix socket", both_endpoints)

        def drain():
            # a request in flight when its service is told to stop still completes
            import threading
            result = {}

            def stream():
                result["reply"] = request(
                    edge_port, "GET", "/api/v1/services/chat/ping?count=5&interval_ms=100",
                    headers={"Accept": "text/event-stream"})
            worker = threading.Thread(target=stream)
            worker.start()
            time.sleep(0.15)
            chat = processes[1 + SERVICES.index("chat")]
            chat.send_signal(signal.SIGTERM)
            worker.join(timeout=10)
            status, _, body = result["reply"]
            assert status == 200 and body.decode().count("event: partial") == 4, body
            assert "event: final" in body.decode(), body
            assert chat.wait(timeout=10) == 0
            for proc in reversed(processes):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in processes:
                code = proc.wait(timeout=20)
                assert code == 0, "%s exited %s" % (proc.name, code)
        check("SIGTERM: in-flight request finishes, all exit 0", drain)

        # the same platform in one process
        one_port = free_port()
        environment["CHORUS_EDGE_PORT"] = str(one_port)
        chorusd = start("chorusd", [BIN + "/chorusd"], environment)
        processes.append(chorusd)
        run_checks(one_port)
        chorusd.send_signal(signal.SIGTERM)
        assert chorusd.wait(timeout=30) == 0
        print("ok   chorusd: the same checks in one process, exits 0")
    except Exception:
        for name in sorted(os.listdir(WORK)):
            if not os.path.isfile(os.path.join(WORK, name)):
                continue  # the bus's sockets
            with open(os.path.join(WORK, name), errors="replace") as f:
                print("---- %s\n%s" % (name, f.read()[-1500:]))
        raise
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("all stack tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
