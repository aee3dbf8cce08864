#!/usr/bin/python3
"""End-to-end test of the chat service from schemas/chat.md, over the bus: chorus-broker
and two chorus-chat replicas as processes on the test PostgreSQL and Redis, and a
stand-in for the agents service written here from schemas/bus.md (a CHW1 worker
answering agents.get and turn.run with scripted streams), so that streaming, tool
calls, upstream failures, cancellation and the context budget are deterministic.
Requests go over CHC1 with the headers the edge would set.

Checks: conversations create (the agent is asked for, in the caller's tenant), list
(newest first, cursors, archived and agent filters, last message preview, counts),
get (with the newest messages), update, delete; the cross-tenant and invalid-id
not_found matrix; messages.send plain and streamed (event names, ids <message
id>:<n>, deltas, tool calls, message.completed as stored), upstream failures (error
then message.completed failed, partial text kept), the headers and history turn.run
gets (oldest first, bounded by the model's context budget, the new message always
kept), cancellation by the caller and by conversations.cancel on the other replica
(the stand-in sees the turn.run cancelled; the reply is stored cancelled), replays
with last_event_id (live from the other replica, after the end, derived from the
stored message when the Redis log is gone, non-streamed), the outbox events with
their payloads, a missing agents service (unavailable), and that every process
exits 0 on SIGTERM (no leaks in the sanitizer build).

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL (tools/chorus
test sets them) and /usr/bin/python3 with python3-zmq and python3-msgpack."""

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid

import msgpack
import zmq

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__)) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-chat-test-")
SECRET = "e2e-chat-test-jwt-secret-0123456789abcdef"
RUN = uuid.uuid4().hex[:8]
HEARTBEAT_MS = 200
PROCESSES = []
FAILED = []

REQUEST, CANCEL, HEARTBEAT, READY = b"\x01", b"\x02", b"\x03", b"\x04"
DISCONNECT, PARTIAL, FINAL, ERROR = b"\x06", b"\x11", b"\x12", b"\x13"
KINDS = {PARTIAL: "partial", FINAL: "final", ERROR: "error"}


def free_base_port():
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 3 > 65000:
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


def wait_for(what, predicate, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return
        except OSError:             # not listening yet
            pass
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def check(name, fn):
    started = time.time()
    try:
        fn()
        print("ok   %-58s %.2fs" % (name, time.time() - started), flush=True)
    except Exception:
        FAILED.append(name)
        print("FAIL %s" % name, flush=True)
        traceback.print_exc()
        sys.stdout.flush()


# ---------------------------------------------------------------------------------
# The stand-in agents service: a CHW1 worker in a thread

class StandInAgents(threading.Thread):
    """Answers agents.get for the agents it was given (only in their tenant) and
    turn.run with a scripted stream chosen by the last message's content:
      "echo: X"   deltas of "you said: X", then the result with usage
      "slow N"    N deltas "tick " 100 ms apart (30 if no N), then the result
      "fail"      two deltas, then ERROR unavailable "provider down"
      "tools"     a delta, tool_call pieces for two calls, then the result
      "bigreply"  one delta of 64 KiB
      other       "ok"
    Records every turn.run (headers, body) and every task it saw cancelled."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.agents = {}            # id -> (tenant, Agent map)
        self.turns = []             # (headers, body) of each turn.run
        self.cancelled = []         # task ids cancelled by the broker
        self.tasks = {}             # task id -> [next time, generator]
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def add_agent(self, tenant, model="standin-model", max_tokens=512,
                  system_prompt="You are a stand-in."):
        agent_id = str(uuid.uuid4())
        self.agents[agent_id] = (tenant, {
            "id": agent_id, "name": "agent-" + agent_id[:8], "model": model,
            "provider": "standin", "max_tokens": max_tokens,
            "system_prompt": system_prompt, "enabled": True})
        return agent_id

    def turn_for(self, message_id):
        with self.lock:
            for headers, body in self.turns:
                if body.get("message_id") == message_id:
                    return headers, body
        return None

    def run(self):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        sock.send_multipart([b"CHW1", READY, b"agents",
                             msgpack.packb({"credit": 32, "replica": "standin"})])
        last_sent = time.time()
        while not self.stopping.is_set():
            now = time.time()
            due = [t for t, task in self.tasks.items() if task[0] <= now]
            for task_id in due:
                last_sent = time.time()
                self.step(sock, task_id)
            wait = 0.05
            if self.tasks:
                wait = max(0.0, min(wait, min(t[0] for t in self.tasks.values()) - time.time()))
            if sock.poll(int(wait * 1000)):
                frames = sock.recv_multipart()
                if len(frames) < 2 or frames[0] != b"CHW1":
                    continue
                if frames[1] == REQUEST:
                    self.request(sock, frames)
                    last_sent = time.time()
                elif frames[1] == CANCEL:
                    task_id = frames[2]
                    with self.lock:
                        self.cancelled.append(task_id)
                    if self.tasks.pop(task_id, None) is not None:
                        sock.send_multipart([b"CHW1", ERROR, task_id, msgpack.packb(
                            {"code": "cancelled", "message": "cancelled"})])
                elif frames[1] == DISCONNECT:
                    sock.send_multipart([b"CHW1", READY, b"agents",
                                         msgpack.packb({"credit": 32, "replica": "standin"})])
            if time.time() - last_sent > HEARTBEAT_MS / 1000.0:
                sock.send_multipart([b"CHW1", HEARTBEAT])
                last_sent = time.time()
        sock.send_multipart([b"CHW1", DISCONNECT])
        time.sleep(0.1)
        sock.close()

    def step(self, sock, task_id):
        task = self.tasks[task_id]
        try:
            delay, kind, body = next(task[1])
        except StopIteration:
            del self.tasks[task_id]
            return
        sock.send_multipart([b"CHW1", kind, task_id, msgpack.packb(body)])
        if kind == PARTIAL:
            task[0] = time.time() + delay
        else:
            del self.tasks[task_id]

    def request(self, sock, frames):
        task_id, command = frames[2], frames[3].decode()
        headers = msgpack.unpackb(frames[4], raw=False)
        body = msgpack.unpackb(frames[5], raw=False) if len(frames) > 5 else {}
        if command == "health":      # what every service answers (bus.md section 7)
            sock.send_multipart([b"CHW1", FINAL, task_id, msgpack.packb({
                "service": "agents", "replica": "standin", "status": "ok",
                "database": True, "redis": True})])
            return
        if command == "agents.get":
            found = self.agents.get(body.get("id") or "")
            if found and found[0] == headers.get("tenant_id"):
                reply = [b"CHW1", FINAL, task_id, msgpack.packb(found[1])]
            else:
                reply = [b"CHW1", ERROR, task_id,
                         msgpack.packb({"code": "not_found", "message": "no such agent"})]
            sock.send_multipart(reply)
            return
        if command != "turn.run":
            sock.send_multipart([b"CHW1", ERROR, task_id, msgpack.packb(
                {"code": "unknown_command", "message": command})])
            return
        with self.lock:
            self.turns.append((headers, body))
        messages = body.get("messages") or []
        last = (messages[-1].get("content") or "") if messages else ""
        self.tasks[task_id] = [time.time(), self.script(last, messages)]

    @staticmethod
    def result(content, tool_calls=None):
        return {"content": content, "finish_reason": "stop", "provider": "standin",
                "model": "standin-1", "prompt_tokens": 11, "completion_tokens": 7,
                "latency_ms": 42, "first_token_ms": 5, "tool_calls": tool_calls or []}

    def script(self, last, messages):
        if last.startswith("echo: "):
            text = "you said: " + last[6:]
            for i in range(0, len(text), 5):
                yield 0.02, PARTIAL, {"type": "delta", "delta": text[i:i + 5]}
            yield 0, FINAL, self.result(text)
        elif last.startswith("slow"):
            parts = last.split()
            count = int(parts[1]) if len(parts) > 1 else 300
            for _ in range(count):
                yield 0.1, PARTIAL, {"type": "delta", "delta": "tick "}
            yield 0, FINAL, self.result("tick " * count)
        elif last == "fail":
            yield 0.02, PARTIAL, {"type": "delta", "delta": "half "}
            yield 0.02, PARTIAL, {"type": "delta", "delta": "done"}
            yield 0, ERROR, {"code": "unavailable", "message": "provider down"}
        elif last == "tools":
            yield 0.01, PARTIAL, {"type": "delta", "delta": "Let me look."}
            yield 0.01, PARTIAL, {"type": "tool_call", "index": 0, "tool_call": {
                "id": "call_a", "name": "lookup", "arguments": ""}}
            yield 0.01, PARTIAL, {"type": "tool_call", "index": 0, "tool_call": {
                "arguments": "{\"q\": "}}
            yield 0.01, PARTIAL, {"type": "tool_call", "index": 0, "tool_call": {
                "arguments": "\"weather\"}"}}
            yield 0.01, PARTIAL, {"type": "tool_call", "index": 1, "tool_call": {
                "id": "call_b", "name": "clock", "arguments": "{}"}}
            yield 0, FINAL, self.result("Let me look.")
        elif last == "bigreply":
            yield 0.01, PARTIAL, {"type": "delta", "delta": "x" * 65536}
            yield 0, FINAL, self.result("x" * 65536)
        else:
            yield 0, FINAL, self.result("ok")


# ---------------------------------------------------------------------------------
# A bus client (CHC1) and an event subscriber

class Bus:
    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 1
        self.inbox = {}

    def send(self, command, body, who, timeout_ms=20000, service="chat"):
        rid = b"r%d" % self.next_id
        self.next_id += 1
        headers = {"tenant_id": who[0], "user_id": who[1], "role": who[2],
                   "request_id": "chat-test-" + rid.decode(), "timeout_ms": timeout_ms,
                   "session_id": "", "api_key_id": "", "client_ip": "127.0.0.1"}
        self.sock.send_multipart([b"CHC1", REQUEST, rid, service.encode(), command.encode(),
                                  msgpack.packb(headers), msgpack.packb(body)])
        self.inbox[rid] = []
        return rid

    def cancel(self, rid):
        self.sock.send_multipart([b"CHC1", CANCEL, rid])

    def pump(self, wait_ms):
        if not self.sock.poll(wait_ms):
            return
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frames[1] == HEARTBEAT or len(frames) < 4:
                continue
            reply = (KINDS[frames[1]], msgpack.unpackb(frames[3], raw=False))
            self.inbox.setdefault(frames[2], []).append(reply)

    def replies(self, rid, until=None, wait_s=20.0):
        """Replies of rid so far; waits for the end (or until(replies) is true)."""
        end = time.time() + wait_s
        last_beat = 0
        while time.time() < end:
            got = self.inbox.get(rid, [])
            if got and got[-1][0] != "partial":
                return got
            if until and until(got):
                return got
            if time.time() - last_beat > 0.2:
                self.sock.send_multipart([b"CHC1", HEARTBEAT])
                last_beat = time.time()
            self.pump(50)
        return self.inbox.get(rid, [])

    def call(self, command, body, who, **kw):
        return self.replies(self.send(command, body, who, **kw))

    def ok(self, command, body, who):
        got = self.call(command, body, who)
        assert got and got[-1][0] == "final", (command, body, got)
        return got[-1][1]

    def error(self, command, body, who):
        got = self.call(command, body, who)
        assert got and got[-1][0] == "error", (command, body, got)
        return got[-1][1]["code"]


class Events:
    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"chat.")
        self.sock.connect(endpoint)
        self.seen = []

    def drain(self):
        while self.sock.poll(0):
            topic, meta, payload = self.sock.recv_multipart()[:3]
            self.seen.append((topic.decode(), msgpack.unpackb(meta, raw=False),
                              msgpack.unpackb(payload, raw=False)))

    def find(self, topic, pred, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            self.drain()
            for event in self.seen:
                if event[0] == topic and pred(event[2]):
                    return event
            time.sleep(0.05)
        raise AssertionError("no %s event" % topic)


def redis_command(*args):
    url = urllib.parse.urlparse(REDIS)
    with socket.create_connection((url.hostname, url.port or 6379), timeout=5) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        if url.path and url.path.strip("/"):
            db = url.path.strip("/").encode()
            s.sendall(b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n" % (len(db), db))
            s.recv(100)
        s.sendall(out)
        return s.recv(1000)


# ---------------------------------------------------------------------------------

def start(name, args, environment):
    log = open(os.path.join(WORK, name + ".log"), "ab")
    proc = subprocess.Popen(args, env=environment, stdout=log, stderr=log)
    proc.name = name
    PROCESSES.append(proc)
    return proc


def stream_events(replies):
    """The (event, id, data) of stream replies, the final one last."""
    out = []
    for kind, body in replies:
        assert kind in ("partial", "final"), replies[-1]
        assert set(body) == {"event", "id", "data"}, body
        out.append((body["event"], body["id"], body["data"]))
    return out


def run(bus, standin, events, replicas_of):
    T1, T2 = str(uuid.uuid4()), str(uuid.uuid4())
    alice = (T1, str(uuid.uuid4()), "member")
    bob = (T1, str(uuid.uuid4()), "tenant_admin")
    eve = (T2, str(uuid.uuid4()), "tenant_admin")
    agent = standin.add_agent(T1)
    agent2 = standin.add_agent(T1, model="phi3", max_tokens=512,
                               system_prompt="x" * 400)
    eve_agent = standin.add_agent(T2)
    ctx = {}

    def create():
        assert bus.error("conversations.create", {"agent_id": agent}, ("", "", "")) \
            == "unauthorized"
        assert bus.error("conversations.create", {}, alice) == "bad_request"
        assert bus.error("conversations.create", {"agent_id": "nope"}, alice) == "not_found"
        assert bus.error("conversations.create", {"agent_id": str(uuid.uuid4())},
                         alice) == "not_found"
        assert bus.error("conversations.create", {"agent_id": eve_agent}, alice) \
            == "not_found"
        assert bus.error("conversations.create", {"agent_id": agent, "title": "t" * 201},
                         alice) == "bad_request"
        c = bus.ok("conversations.create", {"agent_id": agent.upper()}, alice)
        assert c["agent_id"] == agent and c["title"] == "New conversation", c
        assert c["archived"] is False and c["message_count"] == 0, c
        assert c["created_by"] == alice[1] and c["last_message"] is None, c
        assert c["created_at"].endswith("Z") and uuid.UUID(c["id"]), c
        named = bus.ok("conversations.create", {"agent_id": agent, "title": "é" * 200},
                       bob)
        assert named["title"] == "é" * 200
        ctx["conv"], ctx["named"] = c["id"], named["id"]
        ctx["eve_conv"] = bus.ok("conversations.create", {"agent_id": eve_agent}, eve)["id"]
    check("conversations.create: agent checked in the caller's tenant", create)

    def send_plain():
        m = bus.ok("messages.send", {"id": ctx["conv"], "content": "echo: hello"}, alice)
        assert m["role"] == "assistant" and m["status"] == "complete", m
        assert m["content"] == "you said: hello" and m["author_id"] == agent, m
        assert m["model"] == "standin-1" and m["prompt_tokens"] == 11, m
        assert m["completion_tokens"] == 7 and m["latency_ms"] == 42, m
        assert m["conversation_id"] == ctx["conv"] and m["error"] is None, m
        headers, body = standin.turn_for(m["id"])
        assert headers["tenant_id"] == T1 and headers["user_id"] == alice[1], headers
        assert headers["role"] == "member", headers
        assert headers["request_id"].startswith("chat-test-"), headers
        assert 0 < headers["timeout_ms"] <= 20000, headers
        assert body["agent_id"] == agent and body["conversation_id"] == ctx["conv"], body
        assert [(x["role"], x["content"]) for x in body["messages"]] == [
            ("user", "echo: hello")], body
        m2 = bus.ok("messages.send", {"id": ctx["conv"], "content": "echo: again"}, bob)
        _, body = standin.turn_for(m2["id"])
        assert [(x["role"], x["content"]) for x in body["messages"]] == [
            ("user", "echo: hello"), ("assistant", "you said: hello"),
            ("user", "echo: again")], body
        listed = bus.ok("messages.list", {"id": ctx["conv"]}, alice)
        assert [(x["role"], x["content"]) for x in listed["data"]] == [
            ("assistant", "you said: again"), ("user", "echo: again"),
            ("assistant", "you said: hello"), ("user", "echo: hello")], listed
        assert listed["data"][1]["author_id"] == bob[1] and listed["next_cursor"] is None
        assert listed["data"][0]["tool_calls"] == [], listed
        page = bus.ok("messages.list", {"id": ctx["conv"], "limit": 3}, alice)
        assert len(page["data"]) == 3 and page["next_cursor"], page
        rest = bus.ok("messages.list", {"id": ctx["conv"], "limit": 3,
                                        "cursor": page["next_cursor"]}, alice)
        assert [x["content"] for x in rest["data"]] == ["echo: hello"], rest
        assert bus.error("messages.send", {"id": ctx["conv"], "content": ""}, alice) \
            == "bad_request"
        assert bus.error("messages.send", {"id": ctx["conv"], "content": "x" * 70000},
                         alice) == "bad_request"
        ctx["reply"] = m2
    check("messages.send: stored reply, headers and history to turn.run", send_plain)

    def send_stream():
        got = bus.call("messages.send", {"id": ctx["conv"], "content": "echo: streaming",
                                         "stream": True}, alice)
        evs = stream_events(got)
        mid = evs[1][2]["id"]
        assert [e[1] for e in evs] == ["%s:%d" % (mid, n) for n in range(1, len(evs) + 1)]
        assert evs[0][0] == "message.created" and evs[0][2]["role"] == "user", evs[0]
        assert evs[0][2]["content"] == "echo: streaming", evs[0]
        assert evs[1][0] == "message.created" and evs[1][2]["status"] == "streaming", evs[1]
        deltas = [e for e in evs if e[0] == "message.delta"]
        assert len(deltas) >= 3 and all(e[2]["message_id"] == mid for e in deltas)
        assert "".join(e[2]["delta"] for e in deltas) == "you said: streaming"
        assert evs[-1][0] == "message.completed", evs[-1]
        done = evs[-1][2]
        assert done["status"] == "complete" and done["content"] == "you said: streaming"
        assert done["id"] == mid and done["model"] == "standin-1", done
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert stored == done, (stored, done)
        ctx["streamed"] = (mid, got)
    check("messages.send stream: created, deltas, completed as stored", send_stream)

    def tools():
        got = bus.call("messages.send", {"id": ctx["conv"], "content": "tools",
                                         "stream": True}, alice)
        evs = stream_events(got)
        calls = [e[2] for e in evs if e[0] == "tool.call"]
        assert [(c["index"], c["id"], c["name"], c["arguments"]) for c in calls] == [
            (0, "call_a", "lookup", ""), (0, None, None, "{\"q\": "),
            (0, None, None, "\"weather\"}"), (1, "call_b", "clock", "{}")], calls
        done = evs[-1][2]
        assert done["tool_calls"] == [
            {"id": "call_a", "name": "lookup", "arguments": "{\"q\": \"weather\"}"},
            {"id": "call_b", "name": "clock", "arguments": "{}"}], done
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert stored["tool_calls"] == done["tool_calls"], stored
    check("tool.call pieces forwarded as they arrive", tools)

    def fail():
        got = bus.call("messages.send", {"id": ctx["conv"], "content": "fail",
                                         "stream": True}, alice)
        evs = stream_events(got)
        assert [e[0] for e in evs][-2:] == ["error", "message.completed"], evs
        assert evs[-2][2] == {"error": {"code": "unavailable", "message": "provider down"}}
        done = evs[-1][2]
        assert done["status"] == "failed" and done["content"] == "half done", done
        assert done["error"] == "provider down", done
        code = bus.error("messages.send", {"id": ctx["conv"], "content": "fail"}, alice)
        assert code == "unavailable", code
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 2}, alice)["data"]
        assert stored[0]["status"] == "failed" and stored[0]["content"] == "half done"
        assert stored[1]["role"] == "user" and stored[1]["content"] == "fail", stored
        # failed replies stay out of the next turn's history
        m = bus.ok("messages.send", {"id": ctx["conv"], "content": "hi"}, alice)
        _, body = standin.turn_for(m["id"])
        assert "half done" not in [x["content"] for x in body["messages"]], body
    check("upstream failure: error, then completed failed with the partial", fail)

    def budget():
        c = bus.ok("conversations.create", {"agent_id": agent2}, alice)
        big = "y" * 4000                     # 1000 tokens each
        for i in range(4):
            bus.ok("messages.send", {"id": c["id"], "content": "%d%s" % (i, big)}, alice)
        m = bus.ok("messages.send", {"id": c["id"], "content": "history"}, alice)
        _, body = standin.turn_for(m["id"])
        msgs = body["messages"]
        # phi3: 4096 - 512 (max_tokens) - 100 (system prompt) - 8
        budget_tokens = 4096 - 512 - 100 - 8
        used = sum(math.ceil(len(x["content"]) / 4) + 4 for x in msgs)
        assert used <= budget_tokens, (used, budget_tokens)
        assert msgs[-1]["content"] == "history", msgs[-1]
        assert len(msgs) < 9 and len(msgs) >= 5, [x["content"][:8] for x in msgs]
        assert msgs[0]["role"] in ("user", "assistant")
        # oldest dropped first: what is kept is the newest contiguous run
        contents = [x["content"][:2] for x in msgs if x["role"] == "user"]
        assert contents == sorted(contents) and contents[-1] == "hi", contents
        # a new message over the budget alone still goes
        huge = "z" * 60000
        m = bus.ok("messages.send", {"id": c["id"], "content": huge}, alice)
        _, body = standin.turn_for(m["id"])
        assert [x["content"] for x in body["messages"]] == [huge]
    check("history bounded by the model's context budget, oldest dropped", budget)

    def lists():
        c3 = bus.ok("conversations.create", {"agent_id": agent, "title": "third"}, alice)
        page = bus.ok("conversations.list", {"limit": 2}, alice)
        ids = [x["id"] for x in page["data"]]
        assert ids[0] == c3["id"] and page["next_cursor"], page
        everything, cursor = [], None
        while True:
            body = {"limit": 2}
            if cursor:
                body["cursor"] = cursor
            page = bus.ok("conversations.list", body, alice)
            everything += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len({x["id"] for x in everything}) == len(everything)
        assert {ctx["conv"], ctx["named"], c3["id"]} <= {x["id"] for x in everything}
        assert ctx["eve_conv"] not in {x["id"] for x in everything}
        stamps = [x["updated_at"] for x in everything]
        assert stamps == sorted(stamps, reverse=True), stamps
        conv = [x for x in everything if x["id"] == ctx["conv"]][0]
        assert conv["message_count"] >= 10, conv
        assert conv["last_message"]["role"] == "assistant", conv
        assert conv["last_message"]["content"] == "ok", conv
        by_agent = bus.ok("conversations.list", {"agent_id": agent2}, alice)["data"]
        assert len(by_agent) == 1 and by_agent[0]["agent_id"] == agent2, by_agent
        assert bus.ok("conversations.list", {"agent_id": "nope"}, alice)["data"] == []
        assert bus.error("conversations.list", {"cursor": "zz"}, alice) == "bad_request"
        ctx["third"] = c3["id"]
    check("conversations.list: newest first, cursors, filters, previews", lists)

    def get_update_delete():
        d = bus.ok("conversations.get", {"id": ctx["conv"]}, bob)
        assert d["id"] == ctx["conv"] and d["messages"], d
        assert d["messages"][0]["content"] == "ok" and d["messages_next_cursor"] is None
        assert len(d["messages"]) == d["message_count"], d
        u = bus.ok("conversations.update", {"id": ctx["third"], "title": "renamed"}, alice)
        assert u["title"] == "renamed" and u["archived"] is False, u
        u = bus.ok("conversations.update", {"id": ctx["third"], "archived": True}, alice)
        assert u["title"] == "renamed" and u["archived"] is True, u
        assert bus.error("conversations.update", {"id": ctx["third"], "title": ""}, alice) \
            == "bad_request"
        live = [x["id"] for x in bus.ok("conversations.list", {}, alice)["data"]]
        archived = [x["id"] for x in bus.ok("conversations.list", {"archived": True},
                                            alice)["data"]]
        assert ctx["third"] not in live and archived == [ctx["third"]], (live, archived)
        bus.ok("conversations.delete", {"id": ctx["third"]}, alice)
        assert bus.error("conversations.get", {"id": ctx["third"]}, alice) == "not_found"
        assert bus.error("conversations.delete", {"id": ctx["third"]}, alice) == "not_found"
    check("conversations.get/update/delete", get_update_delete)

    def cross_tenant():
        theirs = ctx["eve_conv"]
        for cid in (theirs, str(uuid.uuid4()), "not-a-uuid", "", None):
            body = {"id": cid} if cid is not None else {}
            for command, extra in (("conversations.get", {}),
                                   ("conversations.update", {"title": "x"}),
                                   ("conversations.delete", {}),
                                   ("conversations.cancel", {}),
                                   ("messages.list", {}),
                                   ("messages.send", {"content": "echo: x"})):
                code = bus.error(command, dict(body, **extra), alice)
                assert code == "not_found", (command, cid, code)
        mid = ctx["reply"]["id"]
        assert bus.error("messages.send", {"id": theirs, "last_event_id": mid + ":1",
                                           "stream": True}, alice) == "not_found"
        assert bus.error("messages.send", {"id": ctx["conv"], "last_event_id": mid + ":1",
                                           "stream": True}, eve) == "not_found"
        assert bus.ok("conversations.get", {"id": theirs}, eve)["id"] == theirs
    check("another tenant's ids, unknown and invalid ids: not_found", cross_tenant)

    def caller_cancel():
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": "slow",
                                         "stream": True}, alice)
        got = bus.replies(rid, until=lambda g: len(g) >= 5)
        mid = got[1][1]["data"]["id"]
        wait_for("the turn.run", lambda: standin.turn_for(mid))
        before = len(standin.cancelled)
        bus.cancel(rid)
        wait_for("turn.run cancelled upstream", lambda: len(standin.cancelled) > before, 5)

        def stored():
            m = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
            return m["id"] == mid and m["status"] == "cancelled" and m
        wait_for("the reply stored cancelled", stored, 5)
        m = stored()
        assert m["content"].startswith("tick tick tick"), m
        ctx["cancelled_mid"] = mid
    check("the caller cancels: turn.run cancelled, reply stored cancelled", caller_cancel)

    def cancel_other_replica():
        assert bus.ok("conversations.cancel", {"id": ctx["conv"]}, alice) == \
            {"cancelled": False}
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": "slow",
                                         "stream": True}, alice)
        got = bus.replies(rid, until=lambda g: len(g) >= 4)
        mid = got[1][1]["data"]["id"]
        before = len(standin.cancelled)
        # the replica running the turn holds a request: the broker gives this one
        # to the other replica (least loaded), which only marks the row
        started = time.time()
        assert bus.ok("conversations.cancel", {"id": ctx["conv"]}, bob) == \
            {"cancelled": True}
        got = bus.replies(rid, wait_s=10)
        took = time.time() - started
        evs = stream_events(got)
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "cancelled", \
            evs[-1]
        assert evs[-1][2]["content"].startswith("tick"), evs[-1]
        assert took < 3.5, took
        wait_for("turn.run cancelled upstream", lambda: len(standin.cancelled) > before, 5)
        assert bus.ok("conversations.cancel", {"id": ctx["conv"]}, alice) == \
            {"cancelled": False}
        ctx["cancel_took"] = took
    check("conversations.cancel from the other replica stops the turn", cancel_other_replica)

    def replay():
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": "slow 15",
                                         "stream": True}, alice)
        first = bus.replies(rid, until=lambda g: len(g) >= 6)
        mid = first[1][1]["data"]["id"]
        # a second client follows from event 3: the past, then the live ones
        rid2 = bus.send("messages.send", {"id": ctx["conv"], "stream": True,
                                          "last_event_id": "%s:3" % mid}, bob)
        second = bus.replies(rid2, wait_s=15)
        whole = bus.replies(rid, wait_s=15)
        a, b = stream_events(whole), stream_events(second)
        assert a[-1][0] == "message.completed" and a[-1][2]["status"] == "complete", a[-1]
        assert b == a[3:], (len(a), len(b), b[:2])
        # after the end: from the start, exactly the same stream
        again = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:0" % mid}, alice))
        assert again == a, (len(again), len(a))
        tail = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:%d" % (mid, len(a) - 1)},
            alice))
        assert tail == a[-1:], tail
        # no new message was created by replays
        latest = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert latest["id"] == mid, latest
        # without the Redis log: derived from the stored message
        redis_command("DEL", "chorus:chat:events:" + mid)
        derived = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:5" % mid}, alice))
        assert derived == [("message.completed", "%s:6" % mid, a[-1][2])], derived
        derived = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": mid}, alice))
        assert [(e[0], e[1]) for e in derived] == [
            ("message.created", mid + ":1"), ("message.created", mid + ":2"),
            ("message.completed", mid + ":3")], derived
        assert derived[0][2] == a[0][2] and derived[2][2] == a[-1][2], derived
        assert derived[1][2]["status"] == "streaming" and derived[1][2]["content"] == ""
        plain = bus.ok("messages.send", {"id": ctx["conv"], "last_event_id": mid + ":2"},
                       alice)
        assert plain == a[-1][2], plain
        assert bus.error("messages.send", {"id": ctx["conv"], "last_event_id": "x:1",
                                           "stream": True}, alice) == "bad_request"
        assert bus.error("messages.send", {"id": ctx["conv"], "stream": True,
                                           "last_event_id": str(uuid.uuid4()) + ":1"},
                         alice) == "not_found"
        # a cancelled reply replays to its end too
        cm = ctx["cancelled_mid"]
        evs = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": cm + ":2"}, alice))
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "cancelled"
    check("replays with last_event_id: live, after the end, derived", replay)

    def live_replay_while_cut():
        # the live stream is followed through the log even when the caller of the
        # turn is still connected on another replica; a follower that cancels
        # does not stop the turn
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": "slow 8",
                                         "stream": True}, alice)
        first = bus.replies(rid, until=lambda g: len(g) >= 3)
        mid = first[1][1]["data"]["id"]
        rid2 = bus.send("messages.send", {"id": ctx["conv"], "stream": True,
                                          "last_event_id": "%s:1" % mid}, alice)
        bus.replies(rid2, until=lambda g: len(g) >= 2)
        bus.cancel(rid2)
        whole = stream_events(bus.replies(rid, wait_s=15))
        assert whole[-1][2]["status"] == "complete", whole[-1]
    check("a follower going away leaves the turn running", live_replay_while_cut)

    def outbox_events():
        created = events.find("chat.conversation.created",
                              lambda p: p["id"] == ctx["conv"])
        assert created[1]["tenant_id"] == T1 and created[2]["agent_id"] == agent, created
        mid = ctx["reply"]["id"]
        done = events.find("chat.message.completed", lambda p: p["id"] == mid)
        p = done[2]
        assert done[1]["tenant_id"] == T1 and done[1]["seq"] > 0, done
        assert p["status"] == "complete" and p["author_id"] == agent, p
        assert p["model"] == "standin-1" and p["prompt_tokens"] == 11, p
        assert p["completion_tokens"] == 7 and p["latency_ms"] == 42, p
        user = events.find("chat.message.created", lambda p: p["content"] == "echo: again")
        assert user[2]["role"] == "user" and user[2]["author_id"] == bob[1], user
        events.find("chat.message.completed",
                    lambda p: p["id"] == ctx["cancelled_mid"] and p["status"] == "cancelled")
        events.find("chat.conversation.updated", lambda p: p["id"] == ctx["third"])
        events.find("chat.conversation.deleted",
                    lambda p: p["id"] == ctx["third"] and p["agent_id"] == agent)
    check("outbox events: created, message created/completed with usage", outbox_events)

    def delete_running():
        c = bus.ok("conversations.create", {"agent_id": agent}, alice)
        rid = bus.send("messages.send", {"id": c["id"], "content": "slow",
                                         "stream": True}, alice)
        bus.replies(rid, until=lambda g: len(g) >= 3)
        before = len(standin.cancelled)
        bus.ok("conversations.delete", {"id": c["id"]}, bob)
        got = stream_events(bus.replies(rid, wait_s=10))
        assert got[-1][0] == "message.completed" and got[-1][2]["status"] == "cancelled"
        wait_for("turn.run cancelled upstream", lambda: len(standin.cancelled) > before, 5)
    check("deleting a conversation stops its running turn", delete_running)

    def no_agents_service():
        c = bus.ok("conversations.create", {"agent_id": agent}, alice)
        standin.stopping.set()
        standin.join(5)
        wait_for("agents gone from the broker", lambda: replicas_of("agents") == 0)
        assert bus.error("conversations.create", {"agent_id": agent}, alice) == "unavailable"
        got = bus.call("messages.send", {"id": c["id"], "content": "echo: anyone?",
                                         "stream": True}, alice)
        evs = stream_events(got)
        assert [e[0] for e in evs] == ["message.created", "message.created", "error",
                                       "message.completed"], evs
        assert evs[2][2]["error"]["code"] == "unavailable", evs[2]
        assert evs[3][2]["status"] == "failed", evs[3]
        stored = bus.ok("messages.list", {"id": c["id"]}, alice)["data"]
        assert [(m["role"], m["status"]) for m in stored] == [
            ("assistant", "failed"), ("user", "complete")], stored
        assert bus.error("messages.send", {"id": c["id"], "content": "echo: x"}, alice) \
            == "unavailable"
    check("no agents service: unavailable, the user's message kept", no_agents_service)


# ---------------------------------------------------------------------------------
# Through the edge: HTTP, JSON and SSE as a browser or SDK sees them

def web(port, method, path, body=None, token=None, headers=None, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body)
        sent["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=sent)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, raw


def sse_events(raw):
    """The (event, id, data) of an SSE body."""
    out = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        if "data" in fields:
            out.append((fields.get("event", ["message"])[0], fields.get("id", [None])[0],
                        json.loads("\n".join(fields["data"]))))
    return out


def run_http(port, bus, standin):
    ctx = {}
    password = "Chat-Test-Passphrase-%s-42!" % RUN

    def register(name):
        status, _, raw = web(port, "POST", "/api/v1/auth/register", {
            "email": "%s-%s@chat.test" % (name, RUN), "password": password})
        assert status == 201, (status, raw)
        reply = json.loads(raw)
        return reply["access_token"], reply["tenant"]["id"], reply["user"]["id"]

    def setup():
        def edge_ready():
            status, _, raw = web(port, "GET", "/readyz")
            return status == 200
        wait_for("the edge", edge_ready, 30)
        ctx["a"], ctx["ta"], ctx["ua"] = register("alice")
        ctx["b"], ctx["tb"], ctx["ub"] = register("bob")
        ctx["agent"] = standin.add_agent(ctx["ta"])
        status, _, raw = web(port, "POST", "/api/v1/conversations",
                             {"agent_id": ctx["agent"], "title": "Web"}, ctx["a"])
        assert status == 201, (status, raw)
        conv = json.loads(raw)
        assert conv["title"] == "Web" and conv["agent_id"] == ctx["agent"], conv
        ctx["conv"] = conv["id"]
        status, _, raw = web(port, "GET", "/api/v1/conversations", token=ctx["a"])
        assert status == 200 and [c["id"] for c in json.loads(raw)["data"]] == [ctx["conv"]]
        status, _, raw = web(port, "POST", "/api/v1/conversations",
                             {"agent_id": ctx["agent"]}, ctx["b"])
        assert status == 404 and json.loads(raw)["error"]["code"] == "not_found", raw
        status, _, _ = web(port, "GET", "/api/v1/conversations")
        assert status == 401, status
    check("HTTP: register, create (201) and list conversations", setup)

    def plain():
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
                             {"content": "echo: web"}, ctx["a"])
        assert status == 200, (status, raw)
        m = json.loads(raw)
        assert m["status"] == "complete" and m["content"] == "you said: web", m
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s/messages" % ctx["conv"],
                             token=ctx["a"])
        listed = json.loads(raw)
        assert status == 200 and [x["role"] for x in listed["data"]] == ["assistant", "user"]
        for path in ("", "/messages"):
            status, _, raw = web(port, "GET", "/api/v1/conversations/%s%s" % (ctx["conv"], path),
                                 token=ctx["b"])
            assert status == 404 and json.loads(raw)["error"]["code"] == "not_found", raw
    check("HTTP: a message answered as JSON; another tenant gets 404", plain)

    def sse():
        status, headers, raw = web(
            port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
            {"content": "echo: over SSE"}, ctx["a"], {"Accept": "text/event-stream"})
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        evs = sse_events(raw)
        mid = evs[1][2]["id"]
        assert [e[1] for e in evs] == ["%s:%d" % (mid, n) for n in range(1, len(evs) + 1)]
        assert [e[0] for e in evs[:2]] == ["message.created"] * 2, evs[:2]
        deltas = [e[2] for e in evs if e[0] == "message.delta"]
        assert all(set(d) == {"message_id", "delta"} for d in deltas), deltas
        assert "".join(d["delta"] for d in deltas) == "you said: over SSE"
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "complete"
        # a client that reconnects: Last-Event-ID on the same POST, then EventSource's GET
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
                             {}, ctx["a"], {"Accept": "text/event-stream",
                                            "Last-Event-ID": "%s:2" % mid})
        assert status == 200 and sse_events(raw) == evs[2:], raw[:300]
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s/messages/%s/events"
                             % (ctx["conv"], mid), token=ctx["a"])
        assert status == 200 and sse_events(raw) == evs, raw[:300]
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s/messages/%s/events"
                             % (ctx["conv"], mid), token=ctx["b"])
        assert status == 404 or b"not_found" in raw, (status, raw)
    check("HTTP SSE: events, Last-Event-ID and the events route", sse)

    def cancel():
        result = {}

        def stream():
            result["reply"] = web(port, "POST", "/api/v1/conversations/%s/messages"
                                  % ctx["conv"], {"content": "slow"}, ctx["a"],
                                  {"Accept": "text/event-stream"})
        worker = threading.Thread(target=stream)
        worker.start()
        wait_for("the turn", lambda: standin.turns and
                 standin.turns[-1][1]["messages"][-1]["content"] == "slow" and
                 standin.turns[-1][1]["conversation_id"] == ctx["conv"])
        time.sleep(0.3)
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/cancel" % ctx["conv"],
                             {}, ctx["a"])
        assert status == 200 and json.loads(raw) == {"cancelled": True}, raw
        worker.join(10)
        status, _, raw = result["reply"]
        evs = sse_events(raw)
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "cancelled"
        assert evs[-1][2]["content"].startswith("tick"), evs[-1]
    check("HTTP: POST .../cancel stops a streaming reply", cancel)

    def disconnect():
        before = len(standin.cancelled)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = json.dumps({"content": "slow"}).encode()
        sock.sendall(("POST /api/v1/conversations/%s/messages HTTP/1.1\r\nHost: x\r\n"
                      "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                      % (ctx["conv"], ctx["a"], len(body))).encode() + body)
        seen = b""
        while seen.count(b"event: message.delta") < 3:
            chunk = sock.recv(4096)
            assert chunk, seen
            seen += chunk
        sock.close()
        wait_for("turn.run cancelled upstream", lambda: len(standin.cancelled) > before, 5)
        who = (ctx["ta"], ctx["ua"], "tenant_admin")

        def stored():
            m = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, who)["data"][0]
            return m["status"] == "cancelled" and m["content"].startswith("tick")
        wait_for("the reply stored cancelled", stored, 5)
    check("HTTP: the client going away cancels the turn upstream", disconnect)

    def delete():
        status, _, raw = web(port, "DELETE", "/api/v1/conversations/%s" % ctx["conv"],
                             token=ctx["b"])
        assert status == 404, (status, raw)
        status, _, raw = web(port, "DELETE", "/api/v1/conversations/%s" % ctx["conv"],
                             token=ctx["a"])
        assert status == 204, (status, raw)
        status, _, _ = web(port, "GET", "/api/v1/conversations/%s" % ctx["conv"],
                           token=ctx["a"])
        assert status == 404, status
    check("HTTP: delete (204), then 404", delete)
    return ctx


def run_real_agents(port, ctx):
    """The real agents service (its built-in offline provider) behind chat."""
    def turn():
        status, _, raw = web(port, "POST", "/api/v1/agents",
                             {"name": "Helper %s" % RUN, "system_prompt": "Be brief."},
                             ctx["a"])
        assert status == 201, (status, raw)
        agent = json.loads(raw)
        status, _, raw = web(port, "POST", "/api/v1/conversations",
                             {"agent_id": agent["id"], "title": "Real"}, ctx["a"])
        assert status == 201, (status, raw)
        conv = json.loads(raw)["id"]
        status, headers, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % conv,
                                   {"content": "Hello, who are you?"}, ctx["a"],
                                   {"Accept": "text/event-stream"}, timeout=60)
        assert status == 200, (status, raw)
        evs = sse_events(raw)
        assert [e[0] for e in evs[:2]] == ["message.created"] * 2, evs[:2]
        done = evs[-1]
        assert done[0] == "message.completed" and done[2]["status"] == "complete", done
        deltas = "".join(e[2]["delta"] for e in evs if e[0] == "message.delta")
        assert done[2]["content"] and deltas == done[2]["content"], (deltas, done)
        assert done[2]["author_id"] == agent["id"], done
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % conv,
                             {"content": "And again?"}, ctx["a"], timeout=60)
        assert status == 200 and json.loads(raw)["status"] == "complete", (status, raw)
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s" % conv, token=ctx["a"])
        detail = json.loads(raw)
        assert status == 200 and detail["message_count"] == 4, detail
        assert [m["role"] for m in detail["messages"]] == ["assistant", "user"] * 2, detail
    check("the real agents service (offline provider) answers a conversation", turn)


def run_restarts(bus, standin, environment, chats, replicas_of):
    """A replica killed mid-turn, another stopping with work in flight."""
    tenant = str(uuid.uuid4())
    who = (tenant, str(uuid.uuid4()), "member")
    agent = standin.add_agent(tenant)
    ctx = {}

    def killed():
        conv = bus.ok("conversations.create", {"agent_id": agent}, who)["id"]
        chats[0].send_signal(signal.SIGTERM)
        assert chats[0].wait(timeout=30) == 0
        wait_for("one chat replica", lambda: replicas_of("chat") == 1)
        rid = bus.send("messages.send", {"id": conv, "content": "slow", "stream": True}, who)
        got = bus.replies(rid, until=lambda g: len(g) >= 4)
        mid = got[1][1]["data"]["id"]
        chats[1].kill()
        chats[1].wait()
        got = bus.replies(rid, wait_s=10)
        assert got[-1][0] == "error" and got[-1][1]["code"] == "worker_lost", got[-1]
        environment = dict(ENVIRONMENT, CHORUS_CHAT_STALE_S="5",
                           CHORUS_DRAIN_TIMEOUT_MS="1000")
        chats.append(start("chat-3", [BIN + "/chorus-chat"], environment))
        wait_for("the new replica", lambda: replicas_of("chat") == 1, 30)

        def swept():
            m = bus.ok("messages.list", {"id": conv, "limit": 1}, who)["data"][0]
            return m["id"] == mid and m["status"] == "failed" and m
        wait_for("the sweep to mark the orphaned reply failed", swept, 30)
        assert swept()["error"] == "the reply was interrupted"
        evs = stream_events(bus.call("messages.send", {
            "id": conv, "stream": True, "last_event_id": mid + ":4"}, who))
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "failed", evs
        ctx["conv"] = conv
    check("a replica killed mid-turn: the reply is swept to failed", killed)

    def stopping():
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": "slow",
                                         "stream": True}, who)
        got = bus.replies(rid, until=lambda g: len(g) >= 3)
        mid = got[1][1]["data"]["id"]
        rid2 = bus.send("messages.send", {"id": ctx["conv"], "stream": True,
                                          "last_event_id": mid + ":1"}, who)
        bus.replies(rid2, until=lambda g: len(g) >= 2)
        chats[2].send_signal(signal.SIGTERM)
        assert chats[2].wait(timeout=30) == 0
        for r in (rid, rid2):
            got = bus.replies(r, wait_s=10)
            assert got and got[-1][0] == "error", got[-1:]
    check("SIGTERM with a turn and a replay in flight: exits 0", stopping)


ENVIRONMENT = {}
OTHERS = {}       # the environment of the processes that are not chat


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    base = free_base_port()
    endpoint = "tcp://127.0.0.1:%d" % base
    edge_port = free_base_port()
    while base - 3 < edge_port < base + 3:     # the broker binds base..base+2 later
        edge_port = free_base_port()
    environment = dict(os.environ)
    environment.update({
        "CHORUS_BROKERS": endpoint, "CHORUS_BROKER_BIND": endpoint,
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": REDIS,
        "CHORUS_SQL_DIR": SRC + "/schemas/sql",
        "CHORUS_LOG_LEVEL": os.environ.get("CHAT_TEST_LOG_LEVEL", "warn"),
        "CHORUS_HEARTBEAT_MS": str(HEARTBEAT_MS), "CHORUS_JWT_SECRET": SECRET,
        "CHORUS_EDGE_PORT": str(edge_port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_EDGE_COOKIE_SECURE": "false",
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000"})
    for name in ("CHORUS_JWT_PREVIOUS_SECRETS", "CHORUS_JWT_ISSUER", "CHORUS_JWT_AUDIENCE"):
        environment.pop(name, None)
    ENVIRONMENT.update(environment)
    start("broker", [BIN + "/chorus-broker"], environment)
    chats = [start("chat-%d" % i, [BIN + "/chorus-chat"], environment) for i in (1, 2)]
    # In a sanitizer build, the OpenSSL state of a detached actor thread (libjwt,
    # libcurl) outlives the process now and then in auth, edge and agents (see
    # 0228f40 for the edge): not this test's subject. Chat runs without it.
    suppressions = os.path.join(WORK, "lsan-others.supp")
    with open(suppressions, "w") as f:
        f.write("leak:CRYPTO_zalloc\n")
    OTHERS.update(environment, LSAN_OPTIONS="suppressions=" + suppressions)
    start("auth", [BIN + "/chorus-auth"], OTHERS)
    start("edge", [BIN + "/chorus-edge"], OTHERS)
    bus = Bus(endpoint)
    events = Events("tcp://127.0.0.1:%d" % (base + 2))
    standin = StandInAgents(endpoint)
    standin.start()

    def replicas_of(name):
        got = bus.call("status", {}, ("", "", ""), service="broker")
        if not got or got[-1][0] != "final":
            return -1
        for s in got[-1][1].get("services", []):
            if s.get("name") == name:
                return s.get("replicas", 0)
        return 0
    try:
        wait_for("two chat replicas, auth and the stand-in",
                 lambda: replicas_of("chat") == 2 and replicas_of("agents") == 1
                 and replicas_of("auth") == 1, 60)
        web_ctx = run_http(edge_port, bus, standin)
        run(bus, standin, events, replicas_of)
        again = StandInAgents(endpoint)
        again.agents = standin.agents
        again.start()
        wait_for("the stand-in again", lambda: replicas_of("agents") == 1)
        run_restarts(bus, again, environment, chats, replicas_of)
        again.stopping.set()
        again.join(5)
        start("agents", [BIN + "/chorus-agents"], OTHERS)
        chats.append(start("chat-4", [BIN + "/chorus-chat"], environment))
        wait_for("the agents service and a chat replica",
                 lambda: replicas_of("agents") == 1 and replicas_of("chat") == 1, 60)
        run_real_agents(edge_port, web_ctx)

        def shutdown():
            for proc in reversed(PROCESSES):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in PROCESSES:
                code = proc.wait(timeout=30)
                assert code in (0, -9) if proc is chats[1] else code == 0, \
                    "%s exited %s" % (proc.name, code)
        check("SIGTERM: every process exits 0", shutdown)
    finally:
        for proc in PROCESSES:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if FAILED:
            for name in sorted(os.listdir(WORK)):
                with open(os.path.join(WORK, name), errors="replace") as f:
                    print("---- %s\n%s" % (name, f.read()[-3000:]))
    if FAILED:
        print("%d chat checks failed: %s" % (len(FAILED), ", ".join(FAILED)))
        return 1
    print("all chat tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
