"""standin_http.py: the small HTTP/1.1 server under channels_standin.py.

It reads requests (Content-Length or chunked bodies, Expect: 100-continue, keep-alive),
writes whole answers with Content-Length, tells when a client has gone away while an
answer is held back, and runs the process: `listening <port>` as the first stdout
line, SIGTERM/SIGINT, and --stdin-eof-exit. spawn() starts a stand-in as a child
process. Python 3 standard library only (asyncio).
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024  # largest request line + headers
MAX_BODY = 16 * 1024 * 1024  # largest request body
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           413: "Payload Too Large", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can read."""


class Request:
    """One parsed request: method, path, query (name -> [values]), lower-case headers
    in `h`, the raw body and whether the connection stays open afterwards."""

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.h = {}
        for name, value in headers:
            name = name.lower()
            self.h[name] = self.h[name] + ", " + value if name in self.h else value
        self.body = body
        split = urlsplit(target)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        connection = self.h.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection

    def arg(self, name, default=None):
        """The first value of a query parameter, or default."""
        values = self.query.get(name)
        return values[0] if values else default

    def content_type(self):
        """The media type of the body, lower case, without parameters."""
        return self.h.get("content-type", "").split(";")[0].strip().lower()

    def json(self):
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def form(self):
        """The body as application/x-www-form-urlencoded fields: name -> first value."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


class Conn:
    """One client connection, read through its own buffer so that a held answer can
    watch for the client leaving without losing a pipelined request."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()  # bytes read and not yet used
        self.eof = False  # the client closed its side

    async def _more(self):
        """Reads what the client sent next into buf; False at end of file."""
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _until(self, separator, limit):
        """The bytes up to and including separator, at most limit of them."""
        while True:
            at = self.buf.find(separator)
            if at >= 0:
                out = bytes(self.buf[:at + len(separator)])
                del self.buf[:at + len(separator)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line or headers too long")
            if not await self._more():
                raise BadRequest("request cut short")

    async def _exactly(self, size):
        while len(self.buf) < size:
            if not await self._more():
                raise BadRequest("body cut short")
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    async def read_request(self):
        """The next request, or None when the client closed the connection between
        requests. Raises BadRequest on anything it cannot read."""
        while not self.buf.strip():
            self.buf.clear()
            if not await self._more():
                return None
        head = await self._until(b"\r\n\r\n", MAX_HEAD)
        lines = head.decode("latin-1").strip("\r\n").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest("bad request line")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadRequest("bad header line")
            headers.append((name.strip(), value.strip()))
        h = {name.lower(): value for name, value in headers}
        if h.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = await self._chunked()
        else:
            length = h.get("content-length", "0") or "0"
            if not length.isdigit() or int(length) > MAX_BODY:
                raise BadRequest("bad or too large Content-Length")
            body = await self._exactly(int(length))
        return Request(parts[0], parts[1], parts[2], headers, body)

    async def _chunked(self):
        body = bytearray()
        while True:
            line = await self._until(b"\r\n", 1024)
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                while await self._until(b"\r\n", MAX_HEAD) != b"\r\n":
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise BadRequest("body too large")
            body += await self._exactly(size)
            await self._exactly(2)

    async def hold(self, seconds):
        """Waits up to seconds without answering. Returns False as soon as the client
        closes its side, True when the time is up with the client still there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, seconds)
        while not self.eof:
            left = deadline - loop.time()
            if left <= 0:
                return True
            if len(self.buf) > MAX_HEAD + MAX_BODY:  # a client flooding a held answer
                await asyncio.sleep(left)
                return True
            try:
                await asyncio.wait_for(self._more(), left)
            except asyncio.TimeoutError:
                return True
        return False

    async def send(self, status, headers, body, keep_alive):
        """Writes one whole answer: status line, Date, the given headers,
        Content-Length and Connection, then the body."""
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
                 "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())]
        lines += ["%s: %s" % (name, value) for name, value in headers]
        lines.append("Content-Length: %d" % len(body))
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()

    def close(self):
        if not self.writer.is_closing():
            self.writer.close()


async def serve(handle, host, port, stdin_eof_exit, name):
    """Listens on host:port (0: any free port), prints `listening <port>` on stdout and
    serves every connection with `await handle(conn, request)`, which answers and
    returns True to keep the connection open. Ends on SIGTERM, SIGINT or, with
    stdin_eof_exit, when stdin closes."""

    async def on_connect(reader, writer):
        conn = Conn(reader, writer)
        try:
            while True:
                try:
                    req = await conn.read_request()
                except BadRequest as e:
                    body = json.dumps({"error": str(e)}).encode()
                    await conn.send(400, [("Content-Type", "application/json")], body,
                                    False)
                    break
                if req is None or not await handle(conn, req) or not req.keep_alive:
                    break
        except (ConnectionError, OSError):
            pass
        except Exception as e:  # a bug in one answer must not stop the server
            sys.stderr.write("%s: internal error: %r\n" % (name, e))
        finally:
            conn.close()

    server = await asyncio.start_server(on_connect, host, port, backlog=1024)
    sys.stdout.write("listening %d\n" % server.sockets[0].getsockname()[1])
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if stdin_eof_exit:
        def read_stdin():
            # os.read, not sys.stdin: a thread blocked in a buffered read holds its
            # lock and makes a SIGTERM exit fail at interpreter shutdown
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=read_stdin, daemon=True).start()
    await stop.wait()
    server.close()


def spawn(script, extra_args=(), timeout=10.0):
    """Starts `/usr/bin/python3 script --port 0 --stdin-eof-exit extra_args...` and
    reads its `listening <port>` line. Returns (Popen, port); closing proc.stdin or
    proc.terminate() stops it."""
    proc = subprocess.Popen(["/usr/bin/python3", os.path.abspath(script), "--port", "0",
                             "--stdin-eof-exit"] + list(extra_args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        byte = proc.stdout.read(1)
        if not byte:
            break
        line += byte
    match = re.match(rb"listening (\d+)\n", line)
    if not match:
        proc.kill()
        proc.wait()
        raise RuntimeError("%s did not start: %r" % (os.path.basename(script), line))
    return proc, int(match.group(1))
