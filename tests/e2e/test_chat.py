#!/usr/bin/python3
"""End-to-end test of the chat service from schemas/chat.md, with every Chorus
component real: chorus-broker, two chorus-chat replicas, chorus-agents, chorus-auth
and chorus-edge as processes on the test PostgreSQL and Redis. Only the LLM provider
is replaced, by tests/standins/llm_standin.py speaking OpenAI's exact wire format:
the platform's default provider (CHORUS_LLM_PROVIDER=openai, CHORUS_LLM_BASE_URL,
CHORUS_LLM_API_KEY, CHORUS_LLM_MODEL) points at it, and the tenant registered over
HTTP sets its own key with PUT /api/v1/providers/openai. Each scenario is steered by
the stand-in's markers in the user message ([[tokens:N delay_ms:N]] for slow streams,
[[error_after:N]] and [[cut_after:N]] for broken upstreams, [[tool:NAME {json}]] for
tool calls, [[key:NAME]] to find the request in the stand-in's log). Requests go over
CHC1 with the headers the edge would set, and over HTTP through the edge.

Checks: conversations create (the agent is asked for, in the caller's tenant), list
(newest first, cursors, archived and agent filters, last message preview, counts),
get (with the newest messages), update, delete; the cross-tenant and invalid-id
not_found matrix; messages.send plain and streamed (event names, ids <message
id>:<n>, deltas, tool calls, message.completed as stored, usage as the provider
counted it), upstream failures (a mid-stream error event and a cut stream: error
then message.completed failed, partial text kept), the request the provider gets
(the platform's or the tenant's key, model, system prompt first, history oldest
first, bounded by the model's context budget, the new message always kept), the
agents.turn.completed event in the caller's tenant, cancellation by the caller, by
conversations.cancel on the other replica, by deleting the conversation and by the
HTTP client going away (each time the stand-in sees its request disconnected early;
the reply is stored cancelled), replays with last_event_id (live from the other
replica, after the end, derived from the stored message when the Redis log is gone,
non-streamed), the outbox events with their payloads, the agents service stopped
(unavailable), a chat replica killed mid-turn (swept to failed), the built-in
offline provider, and that every process exits 0 on SIGTERM (no leaks in the
sanitizer build).

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL (tools/chorus
test sets them) and /usr/bin/python3 with python3-zmq and python3-msgpack."""

import base64
import http.client
import json
import math
import os
import re
import shutil
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
PLATFORM_KEY = "standin-key"                  # CHORUS_LLM_API_KEY
TENANT_KEY = "sk-tenant-%s-0123456789" % RUN  # alice's own key (PUT /providers/openai)
MODEL = "standin-model"                       # CHORUS_LLM_MODEL
PROCESSES = []
FAILED = []

sys.path.insert(0, os.path.join(SRC, "tests", "standins"))
import llm_standin  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for, start as start_in  # noqa: E402

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


def start(name, args, environment):
    return start_in(name, args, environment, WORK, PROCESSES)


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
# The LLM stand-in: markers in, the request log out

def say(text, key, **markers):
    """A user message: text, then a marker group labelled key (and the markers)."""
    parts = ["key:" + key] + ["%s:%s" % (k, v) for k, v in markers.items()]
    return "%s [[%s]]" % (text, " ".join(parts))


def words(text):
    return len((text or "").split())


class Upstream:
    """The stand-in's control routes: what arrived, and how it ended."""

    def __init__(self, port):
        self.port = port
        self.base = "http://127.0.0.1:%d" % port

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path)
        body = conn.getresponse().read()
        conn.close()
        return json.loads(body)

    def records(self, key=None):
        recs = self.get("/_standin/requests")["requests"]
        if key is not None:
            recs = [r for r in recs if (r.get("markers") or {}).get("key") == key]
        return recs

    def one(self, key, timeout=10.0):
        """The request labelled key (waits until it arrived)."""
        found = []

        def arrived():
            found[:] = self.records(key)
            return bool(found)
        wait_for("the stand-in to get %s" % key, arrived, timeout)
        assert len(found) == 1, [(r["id"], r["attempt"]) for r in found]
        return found[0]

    def ended(self, key, timeout=10.0):
        """The request labelled key, once it is over."""
        found = []

        def over():
            found[:] = [r for r in self.records(key) if r["ended_at"]]
            return bool(found)
        wait_for("the stand-in's request %s to end" % key, over, timeout)
        return found[-1]

    def disconnected(self, key, fewer_than, timeout=5.0):
        """The request labelled key was left by its client before the end, early."""
        rec = self.ended(key, timeout)
        assert rec["disconnected"] and rec["outcome"] == "disconnected", rec
        assert rec["tokens_sent"] < fewer_than, rec["tokens_sent"]
        assert rec["disconnected_at"] - rec["started_at"] < 15, rec
        return rec


def sent_messages(rec):
    """(role, content) of the OpenAI messages a stand-in request carried."""
    return [(m["role"], m.get("content")) for m in rec["body"]["messages"]]


def prompt_words(rec):
    """The stand-in's prompt_tokens: words of every message's text."""
    return sum(words(m.get("content") if isinstance(m.get("content"), str) else "")
               for m in rec["body"]["messages"])


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

    def ok(self, command, body, who, **kw):
        got = self.call(command, body, who, **kw)
        assert got and got[-1][0] == "final", (command, body, got)
        return got[-1][1]

    def error(self, command, body, who, **kw):
        got = self.call(command, body, who, **kw)
        assert got and got[-1][0] == "error", (command, body, got)
        return got[-1][1]["code"]


class Events:
    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"chat.")
        self.sock.setsockopt(zmq.SUBSCRIBE, b"agents.")
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

def stream_events(replies):
    """The (event, id, data) of stream replies, the final one last."""
    out = []
    for kind, body in replies:
        assert kind in ("partial", "final"), replies[-1]
        assert set(body) == {"event", "id", "data"}, body
        out.append((body["event"], body["id"], body["data"]))
    return out


def new_agent(bus, tenant, **fields):
    """An agent of tenant created on the real agents service (as its admin)."""
    body = {"name": "agent-%s" % uuid.uuid4().hex[:10],
            "system_prompt": "You are a stand-in."}
    body.update(fields)
    agent = bus.ok("agents.create", body, (tenant, str(uuid.uuid4()), "tenant_admin"),
                   service="agents")
    assert agent["provider"] == "openai" or "provider" in fields, agent
    return agent["id"]


def run(bus, upstream, events, replicas_of):
    T1, T2 = str(uuid.uuid4()), str(uuid.uuid4())
    alice = (T1, str(uuid.uuid4()), "member")
    bob = (T1, str(uuid.uuid4()), "tenant_admin")
    eve = (T2, str(uuid.uuid4()), "tenant_admin")
    agent = new_agent(bus, T1)
    agent2 = new_agent(bus, T1, model="phi3", max_tokens=512, system_prompt="x" * 400)
    eve_agent = new_agent(bus, T2)
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
        first = say("hello", "p1-" + RUN)
        m = bus.ok("messages.send", {"id": ctx["conv"], "content": first}, alice)
        assert m["role"] == "assistant" and m["status"] == "complete", m
        assert m["content"] == "Echo: hello" and m["author_id"] == agent, m
        rec = upstream.one("p1-" + RUN)
        # the provider got the platform's key, model, system prompt, the message
        assert rec["provider"] == "openai" and rec["path"] == "/v1/chat/completions", rec
        assert rec["headers"]["authorization"] == "Bearer " + PLATFORM_KEY, rec["headers"]
        assert rec["body"]["model"] == MODEL and rec["body"]["stream"] is True, rec["body"]
        assert sent_messages(rec) == [("system", "You are a stand-in."),
                                      ("user", first)], rec["body"]
        assert rec["outcome"] == "completed", rec
        # usage as the provider counted it
        assert m["model"] == MODEL and m["prompt_tokens"] == prompt_words(rec), m
        assert m["completion_tokens"] == 2, m
        assert isinstance(m["latency_ms"], int) and 0 <= m["latency_ms"] < 10000, m
        assert m["conversation_id"] == ctx["conv"] and m["error"] is None, m
        # the turn ran in the caller's tenant, for this conversation
        turn = events.find("agents.turn.completed",
                           lambda p: p.get("conversation_id") == ctx["conv"])
        assert turn[1]["tenant_id"] == T1, turn
        assert turn[2]["agent_id"] == agent and turn[2]["status"] == "complete", turn
        assert turn[2]["content"] == "Echo: hello", turn
        second = say("again", "p2-" + RUN)
        m2 = bus.ok("messages.send", {"id": ctx["conv"], "content": second}, bob)
        rec = upstream.one("p2-" + RUN)
        assert sent_messages(rec) == [
            ("system", "You are a stand-in."), ("user", first),
            ("assistant", "Echo: hello"), ("user", second)], rec["body"]
        assert m2["content"] == "Echo: again" and m2["prompt_tokens"] == prompt_words(rec)
        listed = bus.ok("messages.list", {"id": ctx["conv"]}, alice)
        assert [(x["role"], x["content"]) for x in listed["data"]] == [
            ("assistant", "Echo: again"), ("user", second),
            ("assistant", "Echo: hello"), ("user", first)], listed
        assert listed["data"][1]["author_id"] == bob[1] and listed["next_cursor"] is None
        assert listed["data"][0]["tool_calls"] == [], listed
        page = bus.ok("messages.list", {"id": ctx["conv"], "limit": 3}, alice)
        assert len(page["data"]) == 3 and page["next_cursor"], page
        rest = bus.ok("messages.list", {"id": ctx["conv"], "limit": 3,
                                        "cursor": page["next_cursor"]}, alice)
        assert [x["content"] for x in rest["data"]] == [first], rest
        assert bus.error("messages.send", {"id": ctx["conv"], "content": ""}, alice) \
            == "bad_request"
        assert bus.error("messages.send", {"id": ctx["conv"], "content": "x" * 70000},
                         alice) == "bad_request"
        ctx["reply"], ctx["first"], ctx["second"] = m2, first, second
    check("messages.send: stored reply, usage, the provider's request and history",
          send_plain)

    def send_stream():
        text = say("streaming over the bus", "s1-" + RUN)
        got = bus.call("messages.send", {"id": ctx["conv"], "content": text,
                                         "stream": True}, alice)
        evs = stream_events(got)
        mid = evs[1][2]["id"]
        assert [e[1] for e in evs] == ["%s:%d" % (mid, n) for n in range(1, len(evs) + 1)]
        assert evs[0][0] == "message.created" and evs[0][2]["role"] == "user", evs[0]
        assert evs[0][2]["content"] == text, evs[0]
        assert evs[1][0] == "message.created" and evs[1][2]["status"] == "streaming", evs[1]
        deltas = [e for e in evs if e[0] == "message.delta"]
        assert all(e[2]["message_id"] == mid for e in deltas)
        # the provider's tokens, each delta one or several of them in a row
        # (what reaches agents in one read goes on as one delta), none split
        tokens = ["Echo:", " streaming", " over", " the", " bus"]
        pieces = [e[2]["delta"] for e in deltas]
        assert "".join(pieces) == "".join(tokens), deltas
        bounds = set(len("".join(tokens[:n])) for n in range(len(tokens) + 1))
        assert all(len("".join(pieces[:n])) in bounds for n in range(len(pieces))), deltas
        assert evs[-1][0] == "message.completed", evs[-1]
        done = evs[-1][2]
        assert done["status"] == "complete" and done["content"] == "Echo: streaming over the bus"
        assert done["id"] == mid and done["model"] == MODEL, done
        assert done["completion_tokens"] == 5, done
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert stored == done, (stored, done)
        ctx["streamed"] = (mid, got)
    check("messages.send stream: created, deltas, completed as stored", send_stream)

    def tools():
        text = ("tools [[with_text key:t1-%s]] [[tool:lookup {\"q\": \"weather\"}]] "
                "[[tool:clock {}]]" % RUN)
        got = bus.call("messages.send", {"id": ctx["conv"], "content": text,
                                         "stream": True}, alice)
        evs = stream_events(got)
        calls = [e[2] for e in evs if e[0] == "tool.call"]
        first = [c for c in calls if c.get("name")]
        assert [(c["index"], c["name"]) for c in first] == [(0, "lookup"), (1, "clock")], calls
        ids = [c["id"] for c in first]
        assert all(i and i.startswith("call_") for i in ids) and ids[0] != ids[1], ids
        assert all(c["message_id"] == evs[1][2]["id"] for c in calls), calls
        # OpenAI's pieces as they arrived: the head (id, name), then arguments only
        assert [(c["index"], c["id"], c["name"], c["arguments"]) for c in calls] == [
            (0, ids[0], "lookup", ""), (0, None, None, "{\""), (0, None, None, "q"),
            (0, None, None, "\":\""), (0, None, None, "weather"), (0, None, None, "\"}"),
            (1, ids[1], "clock", ""), (1, None, None, "{}")], calls
        text_deltas = "".join(e[2]["delta"] for e in evs if e[0] == "message.delta")
        assert text_deltas == "Echo: tools", text_deltas
        done = evs[-1][2]
        assert done["content"] == "Echo: tools", done
        assert done["tool_calls"] == [
            {"id": ids[0], "name": "lookup", "arguments": "{\"q\":\"weather\"}"},
            {"id": ids[1], "name": "clock", "arguments": "{}"}], done
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert stored["tool_calls"] == done["tool_calls"], stored
    check("tool.call pieces forwarded as they arrive", tools)

    def fail():
        text = say("fail", "f1-" + RUN, tokens=6, error_after=2)
        got = bus.call("messages.send", {"id": ctx["conv"], "content": text,
                                         "stream": True}, alice)
        evs = stream_events(got)
        assert [e[0] for e in evs][-2:] == ["error", "message.completed"], evs
        error = evs[-2][2]["error"]
        assert error["code"] == "upstream_error" and error["message"], evs[-2]
        assert "server had an error" in error["message"], error
        done = evs[-1][2]
        assert done["status"] == "failed" and done["content"] == "Echo: fail", done
        assert done["error"] == error["message"], done
        rec = upstream.ended("f1-" + RUN)
        assert rec["outcome"] == "error_event" and rec["tokens_sent"] == 2, rec
        assert len(upstream.records("f1-" + RUN)) == 1   # never retried mid-stream
        # without streaming: the error itself
        text2 = say("fail", "f2-" + RUN, tokens=6, error_after=2)
        code = bus.error("messages.send", {"id": ctx["conv"], "content": text2}, alice)
        assert code == "upstream_error", code
        stored = bus.ok("messages.list", {"id": ctx["conv"], "limit": 2}, alice)["data"]
        assert stored[0]["status"] == "failed" and stored[0]["content"] == "Echo: fail"
        assert stored[1]["role"] == "user" and stored[1]["content"] == text2, stored
        # a stream cut mid-way (no [DONE], no final chunk): the same, partial kept
        text3 = say("cut short", "f3-" + RUN, tokens=8, cut_after=3)
        evs = stream_events(bus.call("messages.send", {"id": ctx["conv"], "content": text3,
                                                       "stream": True}, alice))
        assert [e[0] for e in evs][-2:] == ["error", "message.completed"], evs
        assert evs[-2][2]["error"]["code"] == "upstream_error", evs[-2]
        done = evs[-1][2]
        assert done["status"] == "failed" and done["content"] == "Echo: cut short", done
        assert upstream.ended("f3-" + RUN)["outcome"] == "cut"
        # failed replies stay out of the next turn's history
        m = bus.ok("messages.send", {"id": ctx["conv"], "content": say("hi", "f4-" + RUN)},
                   alice)
        assert m["content"] == "Echo: hi", m
        sent = [c for _, c in sent_messages(upstream.one("f4-" + RUN))]
        assert "Echo: fail" not in sent and "Echo: cut short" not in sent, sent
        assert text in sent and text3 in sent, sent
    check("upstream failure: error, then completed failed with the partial", fail)

    def budget():
        c = bus.ok("conversations.create", {"agent_id": agent2}, alice)
        big = "y" * 4000                     # 1000 tokens each
        for i in range(4):     # [[tokens:1]]: the replies are "Echo:" alone
            bus.ok("messages.send", {"id": c["id"], "content": "%d%s [[tokens:1]]"
                                     % (i, big)}, alice)
        m = bus.ok("messages.send", {"id": c["id"], "content": say("history",
                                                                    "b1-" + RUN)}, alice)
        rec = upstream.one("b1-" + RUN)
        assert rec["body"]["model"] == "phi3" and rec["body"]["max_tokens"] == 512, \
            {k: v for k, v in rec["body"].items() if k != "messages"}
        sent = rec["body"]["messages"]
        assert sent[0] == {"role": "system", "content": "x" * 400}, sent[0]
        msgs = sent[1:]
        # phi3: 4096 - 512 (max_tokens) - 100 (system prompt) - 8
        budget_tokens = 4096 - 512 - 100 - 8
        used = sum(math.ceil(len(x["content"]) / 4) + 4 for x in msgs)
        assert used <= budget_tokens, (used, budget_tokens)
        assert msgs[-1]["content"] == say("history", "b1-" + RUN), msgs[-1]
        assert len(msgs) < 9 and len(msgs) >= 5, [x["content"][:8] for x in msgs]
        assert msgs[0]["role"] in ("user", "assistant")
        assert all(x["role"] != "system" for x in msgs), [x["role"] for x in msgs]
        # oldest dropped first: what is kept is the newest contiguous run
        contents = [x["content"][:2] for x in msgs if x["role"] == "user"]
        assert contents == sorted(contents) and contents[-1] == "hi", contents
        assert m["content"] == "Echo: history", m
        # a new message over the budget alone still goes
        huge = "z" * 60000
        m = bus.ok("messages.send", {"id": c["id"], "content": huge}, alice)
        rec = [r for r in upstream.records() if isinstance(r["body"], dict)
               and r["body"]["messages"][-1]["content"] == huge]
        assert len(rec) == 1, len(rec)
        assert [x["content"] for x in rec[0]["body"]["messages"]] == ["x" * 400, huge]
        assert m["status"] == "complete", m
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
        assert conv["last_message"]["content"] == "Echo: hi", conv
        by_agent = bus.ok("conversations.list", {"agent_id": agent2}, alice)["data"]
        assert len(by_agent) == 1 and by_agent[0]["agent_id"] == agent2, by_agent
        assert bus.ok("conversations.list", {"agent_id": "nope"}, alice)["data"] == []
        assert bus.error("conversations.list", {"cursor": "zz"}, alice) == "bad_request"
        ctx["third"] = c3["id"]
    check("conversations.list: newest first, cursors, filters, previews", lists)

    def get_update_delete():
        d = bus.ok("conversations.get", {"id": ctx["conv"]}, bob)
        assert d["id"] == ctx["conv"] and d["messages"], d
        assert d["messages"][0]["content"] == "Echo: hi" and d["messages_next_cursor"] is None
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
        before = len(upstream.records())
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
        assert len(upstream.records()) == before     # nothing reached the provider
    check("another tenant's ids, unknown and invalid ids: not_found", cross_tenant)

    def caller_cancel():
        key = "cc-" + RUN
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": say(
            "slow", key, tokens=300, delay_ms=100), "stream": True}, alice)
        got = bus.replies(rid, until=lambda g: len(g) >= 5)
        mid = got[1][1]["data"]["id"]
        assert upstream.one(key)["ended_at"] is None     # still streaming upstream
        bus.cancel(rid)
        upstream.disconnected(key, 40)

        def stored():
            m = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
            return m["id"] == mid and m["status"] == "cancelled" and m
        wait_for("the reply stored cancelled", stored, 5)
        m = stored()
        assert m["content"].startswith("Echo: slow tok3"), m
        ctx["cancelled_mid"] = mid
    check("the caller cancels: turn.run cancelled, reply stored cancelled", caller_cancel)

    def cancel_other_replica():
        assert bus.ok("conversations.cancel", {"id": ctx["conv"]}, alice) == \
            {"cancelled": False}
        key = "co-" + RUN
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": say(
            "slow", key, tokens=300, delay_ms=100), "stream": True}, alice)
        got = bus.replies(rid, until=lambda g: len(g) >= 4)
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
        assert evs[-1][2]["content"].startswith("Echo: slow"), evs[-1]
        assert took < 3.5, took
        upstream.disconnected(key, 60)
        assert bus.ok("conversations.cancel", {"id": ctx["conv"]}, alice) == \
            {"cancelled": False}
        ctx["cancel_took"] = took
    check("conversations.cancel from the other replica stops the turn", cancel_other_replica)

    def replay():
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": say(
            "slow", "r1-" + RUN, tokens=15, delay_ms=100), "stream": True}, alice)
        first = bus.replies(rid, until=lambda g: len(g) >= 6)
        mid = first[1][1]["data"]["id"]
        # a second client follows from event 3: the past, then the live ones
        rid2 = bus.send("messages.send", {"id": ctx["conv"], "stream": True,
                                          "last_event_id": "%s:3" % mid}, bob)
        second = bus.replies(rid2, wait_s=15)
        whole = bus.replies(rid, wait_s=15)
        a, b = stream_events(whole), stream_events(second)
        assert a[-1][0] == "message.completed" and a[-1][2]["status"] == "complete", a[-1]
        assert len([e for e in a if e[0] == "message.delta"]) == 15, a
        assert b == a[3:], (len(a), len(b), b[:2])
        # after the end: from the start, exactly the same stream
        again = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:0" % mid}, alice))
        assert again == a, (len(again), len(a))
        tail = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:%d" % (mid, len(a) - 1)},
            alice))
        assert tail == a[-1:], tail
        # no new message was created by replays, nothing more asked upstream
        latest = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, alice)["data"][0]
        assert latest["id"] == mid, latest
        assert len(upstream.records("r1-" + RUN)) == 1
        # without the Redis log: derived from the stored message
        redis_command("DEL", "chorus:chat:events:" + mid)
        derived = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": "%s:5" % mid}, alice))
        # the end keeps the number it had in the stream (stored with the reply)
        assert derived == [("message.completed", a[-1][1], a[-1][2])], derived
        derived = stream_events(bus.call("messages.send", {
            "id": ctx["conv"], "stream": True, "last_event_id": mid}, alice))
        assert [(e[0], e[1]) for e in derived] == [
            ("message.created", mid + ":1"), ("message.created", mid + ":2"),
            ("message.completed", a[-1][1])], derived
        assert derived[0][2] == a[0][2] and derived[2][2] == a[-1][2], derived
        assert derived[1][2]["status"] == "streaming" and derived[1][2]["content"] == ""
        # a caller that has the end already is told nothing follows
        assert bus.error("messages.send", {"id": ctx["conv"], "stream": True,
                                           "last_event_id": a[-1][1]}, alice) == "no_content"
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
        key = "lr-" + RUN
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": say(
            "slow", key, tokens=8, delay_ms=100), "stream": True}, alice)
        first = bus.replies(rid, until=lambda g: len(g) >= 3)
        mid = first[1][1]["data"]["id"]
        rid2 = bus.send("messages.send", {"id": ctx["conv"], "stream": True,
                                          "last_event_id": "%s:1" % mid}, alice)
        bus.replies(rid2, until=lambda g: len(g) >= 2)
        bus.cancel(rid2)
        whole = stream_events(bus.replies(rid, wait_s=15))
        assert whole[-1][2]["status"] == "complete", whole[-1]
        rec = upstream.ended(key)
        assert rec["outcome"] == "completed" and rec["tokens_sent"] == 8, rec
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
        assert p["model"] == MODEL and p["prompt_tokens"] == ctx["reply"]["prompt_tokens"]
        assert p["completion_tokens"] == 2, p
        assert p["latency_ms"] == ctx["reply"]["latency_ms"], p
        user = events.find("chat.message.created",
                           lambda p: p["content"] == ctx["second"])
        assert user[2]["role"] == "user" and user[2]["author_id"] == bob[1], user
        events.find("chat.message.completed",
                    lambda p: p["id"] == ctx["cancelled_mid"] and p["status"] == "cancelled")
        events.find("chat.conversation.updated", lambda p: p["id"] == ctx["third"])
        events.find("chat.conversation.deleted",
                    lambda p: p["id"] == ctx["third"] and p["agent_id"] == agent)
        # the agents service's side of the same turns
        failed = events.find("agents.turn.completed",
                             lambda p: p.get("status") == "failed"
                             and p.get("conversation_id") == ctx["conv"])
        assert failed[1]["tenant_id"] == T1 and failed[2]["content"], failed
        events.find("agents.turn.completed",
                    lambda p: p.get("status") == "cancelled"
                    and p.get("conversation_id") == ctx["conv"])
    check("outbox events: created, message created/completed with usage", outbox_events)

    def delete_running():
        c = bus.ok("conversations.create", {"agent_id": agent}, alice)
        key = "dr-" + RUN
        rid = bus.send("messages.send", {"id": c["id"], "content": say(
            "slow", key, tokens=300, delay_ms=100), "stream": True}, alice)
        bus.replies(rid, until=lambda g: len(g) >= 3)
        bus.ok("conversations.delete", {"id": c["id"]}, bob)
        got = stream_events(bus.replies(rid, wait_s=10))
        assert got[-1][0] == "message.completed" and got[-1][2]["status"] == "cancelled"
        upstream.disconnected(key, 60)
    check("deleting a conversation stops its running turn", delete_running)

    def no_agents_service():
        c = bus.ok("conversations.create", {"agent_id": agent}, alice)
        agents = [p for p in PROCESSES if p.name.startswith("agents") and p.poll() is None]
        assert len(agents) == 1, agents
        agents[0].send_signal(signal.SIGTERM)
        assert agents[0].wait(timeout=30) == 0
        wait_for("agents gone from the broker", lambda: replicas_of("agents") == 0)
        before = len(upstream.records())
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
        assert len(upstream.records()) == before
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


def run_http(port, bus, upstream):
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
        # alice's tenant uses its own key with the provider (the stand-in)
        status, _, raw = web(port, "PUT", "/api/v1/providers/openai", {
            "api_key": TENANT_KEY, "base_url": upstream.base + "/v1"}, ctx["a"])
        assert status == 200, (status, raw)
        setting = json.loads(raw)
        assert setting["has_api_key"] is True and setting.get("api_key") is None, setting
        status, _, raw = web(port, "POST", "/api/v1/agents", {
            "name": "Web agent", "system_prompt": "Answer over the web."}, ctx["a"])
        assert status == 201, (status, raw)
        ctx["agent"] = json.loads(raw)["id"]
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
        text = say("over the web", "h1-" + RUN)
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
                             {"content": text}, ctx["a"])
        assert status == 200, (status, raw)
        m = json.loads(raw)
        assert m["status"] == "complete" and m["content"] == "Echo: over the web", m
        rec = upstream.one("h1-" + RUN)
        # the tenant's own key and base URL, not the platform's
        assert rec["headers"]["authorization"] == "Bearer " + TENANT_KEY, rec["headers"]
        assert sent_messages(rec) == [("system", "Answer over the web."), ("user", text)]
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
        text = say("over SSE", "h2-" + RUN, delay_ms=20)
        status, headers, raw = web(
            port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
            {"content": text}, ctx["a"], {"Accept": "text/event-stream"})
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        evs = sse_events(raw)
        mid = evs[1][2]["id"]
        assert [e[1] for e in evs] == ["%s:%d" % (mid, n) for n in range(1, len(evs) + 1)]
        assert [e[0] for e in evs[:2]] == ["message.created"] * 2, evs[:2]
        deltas = [e[2] for e in evs if e[0] == "message.delta"]
        assert all(set(d) == {"message_id", "delta"} for d in deltas), deltas
        assert [d["delta"] for d in deltas] == ["Echo:", " over", " SSE"], deltas
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "complete"
        assert evs[-1][2]["content"] == "Echo: over SSE", evs[-1]
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
        # reconnecting after the end: nothing follows, 204 (EventSource stops there)
        last = evs[-1][1]
        for method, path in (("POST", "/api/v1/conversations/%s/messages" % ctx["conv"]),
                             ("GET", "/api/v1/conversations/%s/messages/%s/events"
                              % (ctx["conv"], mid))):
            status, headers, raw = web(port, method, path, {} if method == "POST" else None,
                                       ctx["a"], {"Accept": "text/event-stream",
                                                  "Last-Event-ID": last})
            assert status == 204 and raw == b"", (method, status, raw[:300])
        assert len(upstream.records("h2-" + RUN)) == 1   # resuming asked nothing upstream
        # "stream": true in the body does not make a JSON client's answer a stream
        text = say("plain again", "h2b-" + RUN)
        status, headers, raw = web(port, "POST", "/api/v1/conversations/%s/messages"
                                   % ctx["conv"], {"content": text, "stream": True}, ctx["a"])
        assert status == 200 and headers["content-type"].startswith("application/json")
        m = json.loads(raw)
        assert m["role"] == "assistant" and m["content"] == "Echo: plain again", m
    check("HTTP SSE: events, Last-Event-ID and the events route", sse)

    def resume_live():
        # a second client (another tab, a reconnect) sends Last-Event-ID while the
        # reply still streams: the events after it, then the live ones, no new turn
        key = "h3-" + RUN
        result = {}

        def stream():
            result["reply"] = web(port, "POST", "/api/v1/conversations/%s/messages"
                                  % ctx["conv"], {"content": say("resume me", key,
                                                                 tokens=12, delay_ms=100)},
                                  ctx["a"], {"Accept": "text/event-stream"})
        worker = threading.Thread(target=stream)
        worker.start()
        upstream.one(key)
        wait_for("some tokens", lambda: upstream.records(key)[0]["tokens_sent"] >= 3)
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s/messages?limit=1"
                             % ctx["conv"], token=ctx["a"])
        streaming = json.loads(raw)["data"][0]
        assert status == 200 and streaming["status"] == "streaming", (status, raw)
        mid = streaming["id"]
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/messages" % ctx["conv"],
                             {}, ctx["a"], {"Accept": "text/event-stream",
                                            "Last-Event-ID": "%s:3" % mid})
        worker.join(15)
        assert status == 200, (status, raw)
        resumed = sse_events(raw)
        whole = sse_events(result["reply"][2])
        assert resumed == whole[3:], (len(resumed), len(whole))
        assert whole[-1][2]["status"] == "complete", whole[-1]
        assert whole[-1][2]["content"] == "Echo: resume me" + "".join(
            " tok%d" % i for i in range(4, 13)), whole[-1]
        rec = upstream.ended(key)
        assert rec["outcome"] == "completed" and rec["tokens_sent"] == 12, rec
        assert len(upstream.records(key)) == 1               # one turn, followed twice
    check("HTTP SSE: Last-Event-ID follows a reply still streaming", resume_live)

    def cancel():
        key = "hc-" + RUN
        result = {}

        def stream():
            result["reply"] = web(port, "POST", "/api/v1/conversations/%s/messages"
                                  % ctx["conv"], {"content": say("slow", key, tokens=300,
                                                                 delay_ms=100)},
                                  ctx["a"], {"Accept": "text/event-stream"})
        worker = threading.Thread(target=stream)
        worker.start()
        upstream.one(key)
        time.sleep(0.3)
        status, _, raw = web(port, "POST", "/api/v1/conversations/%s/cancel" % ctx["conv"],
                             {}, ctx["a"])
        assert status == 200 and json.loads(raw) == {"cancelled": True}, raw
        worker.join(10)
        status, _, raw = result["reply"]
        evs = sse_events(raw)
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "cancelled"
        assert evs[-1][2]["content"].startswith("Echo: slow"), evs[-1]
        upstream.disconnected(key, 60)
    check("HTTP: POST .../cancel stops a streaming reply", cancel)

    def disconnect():
        key = "hd-" + RUN
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = json.dumps({"content": say("slow", key, tokens=300, delay_ms=100)}).encode()
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
        upstream.disconnected(key, 60)
        who = (ctx["ta"], ctx["ua"], "tenant_admin")

        def stored():
            m = bus.ok("messages.list", {"id": ctx["conv"], "limit": 1}, who)["data"][0]
            return m["status"] == "cancelled" and m["content"].startswith("Echo: slow")
        wait_for("the reply stored cancelled", stored, 5)
    check("HTTP: the client going away cancels the turn upstream", disconnect)

    def drop_and_resume():
        # the connection drops mid-reply and the client reconnects within
        # CHORUS_CHAT_RESUME_GRACE_MS: the same reply goes on to its end, once
        key = "hr-" + RUN
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = json.dumps({"content": say("drop", key, tokens=30, delay_ms=100)}).encode()
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
        _, _, head = seen.partition(b"\r\n\r\n")
        ids = re.findall(rb"^id: (\S+)", head, re.M)
        last = ids[-1].decode()
        mid = last.split(":")[0]
        time.sleep(0.5)
        status, _, raw = web(port, "GET", "/api/v1/conversations/%s/messages/%s/events"
                             % (ctx["conv"], mid), token=ctx["a"],
                             headers={"Last-Event-ID": last}, timeout=30)
        assert status == 200, (status, raw[:300])
        evs = sse_events(raw)
        assert evs[0][1] == "%s:%d" % (mid, int(last.split(":")[1]) + 1), evs[:1]
        assert evs[-1][0] == "message.completed" and evs[-1][2]["status"] == "complete", \
            evs[-1]
        assert evs[-1][2]["content"] == "Echo: drop" + "".join(
            " tok%d" % i for i in range(3, 31)), evs[-1][2]["content"]
        rec = upstream.ended(key, 15)
        assert rec["outcome"] == "completed" and rec["tokens_sent"] == 30, rec
        assert len(upstream.records(key)) == 1
    check("HTTP: a dropped SSE connection resumed within the grace gets the whole reply",
          drop_and_resume)

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


def run_offline(port, ctx):
    """The built-in offline provider (no network) behind chat."""
    def turn():
        status, _, raw = web(port, "POST", "/api/v1/agents",
                             {"name": "Helper %s" % RUN, "system_prompt": "Be brief.",
                              "provider": "offline"}, ctx["a"])
        assert status == 201, (status, raw)
        agent = json.loads(raw)
        assert agent["provider"] == "offline", agent
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


def run_restarts(bus, upstream, environment, chats, replicas_of):
    """A replica killed mid-turn, another stopping with work in flight."""
    tenant = str(uuid.uuid4())
    who = (tenant, str(uuid.uuid4()), "member")
    agent = new_agent(bus, tenant)
    ctx = {}

    def killed():
        conv = bus.ok("conversations.create", {"agent_id": agent}, who)["id"]
        chats[0].send_signal(signal.SIGTERM)
        assert chats[0].wait(timeout=30) == 0
        wait_for("one chat replica", lambda: replicas_of("chat") == 1)
        key = "k1-" + RUN
        rid = bus.send("messages.send", {"id": conv, "content": say(
            "slow", key, tokens=300, delay_ms=100), "stream": True}, who)
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
        ctx["conv"], ctx["killed_key"] = conv, key
    check("a replica killed mid-turn: the reply is swept to failed", killed)

    def killed_upstream():
        # the turn.run of the dead replica is cancelled by the broker (its client
        # is gone), so the agents service leaves the provider
        upstream.disconnected(ctx["killed_key"], 300, timeout=15)
    check("a replica killed mid-turn: its provider request is left", killed_upstream)

    def stopping():
        key = "st-" + RUN
        rid = bus.send("messages.send", {"id": ctx["conv"], "content": say(
            "slow", key, tokens=300, delay_ms=100), "stream": True}, who)
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
        upstream.disconnected(key, 300, timeout=15)
    check("SIGTERM with a turn and a replay in flight: exits 0", stopping)


ENVIRONMENT = {}
OTHERS = {}       # the environment of the processes that are not chat


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    standin, standin_port = llm_standin.spawn(["--api-key", PLATFORM_KEY,
                                               "--api-key", TENANT_KEY])
    upstream = Upstream(standin_port)
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
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000",
        # the platform's default provider: OpenAI, which is the stand-in here
        "CHORUS_LLM_PROVIDER": "openai", "CHORUS_LLM_MODEL": MODEL,
        "CHORUS_LLM_API_KEY": PLATFORM_KEY,
        "CHORUS_LLM_BASE_URL": "http://127.0.0.1:%d/v1" % standin_port,
        "CHORUS_SECRET_KEY": base64.b64encode(os.urandom(32)).decode()})
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
    start("agents", [BIN + "/chorus-agents"], OTHERS)
    bus = Bus(endpoint)
    events = Events("tcp://127.0.0.1:%d" % (base + 2))

    def replicas_of(name):
        got = bus.call("status", {}, ("", "", ""), service="broker")
        if not got or got[-1][0] != "final":
            return -1
        for s in got[-1][1].get("services", []):
            if s.get("name") == name:
                return s.get("replicas", 0)
        return 0
    try:
        wait_for("two chat replicas, auth and agents",
                 lambda: replicas_of("chat") == 2 and replicas_of("agents") == 1
                 and replicas_of("auth") == 1, 60)
        web_ctx = run_http(edge_port, bus, upstream)
        run(bus, upstream, events, replicas_of)
        start("agents-2", [BIN + "/chorus-agents"], OTHERS)
        wait_for("the agents service again", lambda: replicas_of("agents") == 1, 30)
        run_restarts(bus, upstream, environment, chats, replicas_of)
        chats.append(start("chat-4", [BIN + "/chorus-chat"], environment))
        wait_for("a chat replica", lambda: replicas_of("chat") == 1, 60)
        run_offline(edge_port, web_ctx)

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
        standin.stdin.close()            # --stdin-eof-exit: it stops
        try:
            standin.wait(5)
        except subprocess.TimeoutExpired:
            standin.kill()
            standin.wait()
        if FAILED:
            for name in sorted(os.listdir(WORK)):
                with open(os.path.join(WORK, name), errors="replace") as f:
                    print("---- %s\n%s" % (name, f.read()[-3000:]))
    if FAILED:
        print("%d chat checks failed: %s" % (len(FAILED), ", ".join(FAILED)))
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    print("all chat tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
