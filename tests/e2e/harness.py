"""harness.py: what the end-to-end tests share: free loopback ports, waiting for a
condition, starting a Chorus program with its log in the test's work folder, and a
minimal WebSocket client for the edge's /api/v1/ws. Python 3 standard library only.

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import free_port, wait_for, start, WebSocket
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time


def free_port(consecutive=1):
    """A free loopback port, the first of `consecutive` free ones in a row (a broker
    takes three: requests, events in, events out)."""
    for _ in range(500):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + consecutive > 65000:
            continue
        ok = True
        for port in range(base, base + consecutive):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free port")


def wait_for(what, predicate, timeout=30.0, interval=0.05):
    """Call predicate until it returns something true (returned) or timeout
    seconds pass (AssertionError naming what). A socket error counts as not yet."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def start(name, args, environment, work, registry=None):
    """Start a program with stdout and stderr appended to <work>/<name>.log; the
    process gets a .name and joins registry (a list) when one is given."""
    log = open(os.path.join(work, name + ".log"), "ab")
    proc = subprocess.Popen(args, env=environment, stdout=log, stderr=log)
    proc.name = name
    if registry is not None:
        registry.append(proc)
    return proc


def sigterm_all(processes):
    """SIGTERM every process still running (the last started first); each must exit 0."""
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        code = proc.wait(timeout=30)
        assert code == 0, "%s exited %s" % (proc.name, code)


def stop_all(processes, standin=None):
    """Kill what still runs, and end a stand-in started with --stdin-eof-exit."""
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if standin is not None:
        standin.stdin.close()
        try:
            standin.wait(5)
        except subprocess.TimeoutExpired:
            standin.kill()
            standin.wait()


def report(failed, work, what):
    """The end of a test file: on failures the tail of every log in work and a count
    (exit code 1), else work removed and 0."""
    if failed:
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                with open(os.path.join(work, name), errors="replace") as f:
                    print("---- %s\n%s" % (name, f.read()[-3000:]))
        print("%d %s checks failed: %s" % (len(failed), what, ", ".join(failed)))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("all %s tests passed" % what)
    return 0


class WebSocket:
    """A minimal RFC 6455 client of /api/v1/ws: masked text frames out, text frames
    in (JSON), every message kept in .inbox."""

    def __init__(self, port, token=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        auth = "Authorization: Bearer %s\r\n" % token if token else ""
        self.sock.sendall(("GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n%s"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (key, auth)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.inbox = []

    def send(self, message):
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _frame(self):
        """One whole frame from the buffer, or None."""
        if len(self.buf) < 2:
            return None
        n, at = self.buf[1] & 0x7F, 2
        if n == 126:
            if len(self.buf) < 4:
                return None
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            if len(self.buf) < 10:
                return None
            n, at = int.from_bytes(self.buf[2:10], "big"), 10
        if len(self.buf) < at + n:
            return None
        opcode, payload = self.buf[0] & 0x0F, self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        return opcode, payload

    def _read(self, end):
        """Read one more message into the inbox before end (time)."""
        while True:
            frame = self._frame()
            if frame is None:
                assert time.time() < end, ("WebSocket: timed out", self.inbox[-5:])
                self.sock.settimeout(max(0.1, end - time.time()))
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                assert chunk, ("WebSocket closed", self.inbox[-3:])
                self.buf += chunk
                continue
            opcode, payload = frame
            if opcode == 0x8:
                raise AssertionError("WebSocket closed by the edge: %r" % payload)
            if opcode == 0x1:
                self.inbox.append(json.loads(payload))
                return

    def until(self, done, timeout=20.0):
        """Read messages until done(inbox) is true; returns the inbox."""
        end = time.time() + timeout
        while not done(self.inbox):
            self._read(end)
        return self.inbox

    def next(self, what, match, timeout=20.0):
        """The first message (read so far or still to come) for which match holds."""
        end = time.time() + timeout
        seen = 0
        while True:
            for message in self.inbox[seen:]:
                if match(message):
                    return message
            seen = len(self.inbox)
            assert time.time() < end, ("WebSocket: timed out on " + what, self.inbox[-5:])
            self._read(end)

    def of(self, rid):
        return [m for m in self.inbox if m.get("id") == rid]

    def ended(self, rid, timeout=20.0):
        """The messages of request rid once its final (or error) came."""
        self.until(lambda box: any(m.get("id") == rid and m.get("type") in
                                   ("final", "error", "cancelled") for m in box), timeout)
        return self.of(rid)

    def close(self):
        self.sock.close()
