#!/usr/bin/python3
"""End-to-end test of what POST /v1/chat/completions takes (schemas/chat.md, "The
OpenAI-compatible API"): chorus-broker, chorus-auth, chorus-agents and chorus-edge as
processes on the test PostgreSQL and Redis, spoken to over HTTP; the provider is
tests/standins/llm_standin.py speaking OpenAI's wire format.

Checks:
- each body OpenAI refuses (a content that is no string or parts, a message without
  content, a bad role, a tool message without tool_call_id, temperature, top_p or
  max_tokens out of type or range, stream / stream_options.include_usage /
  parallel_tool_calls not booleans, tools and tool_choice out of shape, image parts)
  answers 400 in OpenAI's error shape, invalid_request_error with param naming the
  field, and never reaches the provider;
- the OpenAI parameters Chorus does not use (user, seed, top_p, penalties, stop,
  response_format, metadata, store, logprobs, ...) are accepted, the ones it uses
  (temperature, max_tokens) reach the provider;
- text content parts (user and developer) reach the provider as their text; an
  assistant message with content null and tool_calls, then its tool result, is a
  valid history; streaming still works;
- a disabled agent is the same 404 model_not_found as a model that does not exist.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL (tools/chorus
test sets them)."""

import base64
import http.client
import json
import os
import sys
import tempfile
import time
import traceback
import uuid

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__)) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-openai-input-test-")
RUN = uuid.uuid4().hex[:8]
SECRET = "e2e-openai-input-test-jwt-secret-0123456789abcdef"
PASSWORD = "Input-Test-Passphrase-%s-42!" % RUN
KEY = "sk-proj-input-%s-0123456789abcdef" % RUN
MODEL = "standin-model"
PROCESSES = []
FAILED = []

sys.path.insert(0, os.path.join(SRC, "tests", "standins"))
import llm_standin  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, report, sigterm_all, start as start_in, stop_all, wait_for  # noqa: E402


def start(name, args, environment):
    return start_in(name, args, environment, WORK, PROCESSES)


def check(name, fn):
    started = time.time()
    try:
        fn()
    except Exception:
        FAILED.append(name)
        print("FAIL %s" % name, flush=True)
        traceback.print_exc()
        sys.stdout.flush()
        return
    print("ok   %-58s %.2fs" % (name, time.time() - started), flush=True)


class Web:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, token=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
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

    def json(self, method, path, body=None, token=None, status=200):
        got, _, raw = self.call(method, path, body, token)
        assert got == status, (method, path, got, raw[:500])
        return json.loads(raw) if raw else None


def openai_error(raw):
    """The error of an OpenAI error body, its shape checked."""
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


class Upstream:
    def __init__(self, port):
        self.port = port
        self.base = "http://127.0.0.1:%d" % port

    def records(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/_standin/requests")
        recs = json.loads(conn.getresponse().read())["requests"]
        conn.close()
        return recs

    def last_with(self, text, timeout=10.0):
        """The one request whose body holds text."""
        found = []

        def arrived():
            found[:] = [r for r in self.records() if text in json.dumps(r["body"])]
            return bool(found)
        wait_for("the stand-in to get %s" % text, arrived, timeout)
        assert len(found) == 1, len(found)
        return found[0]


HI = [{"role": "user", "content": "hi"}]

# (what is wrong, the body's fields besides model, the param OpenAI names)
BAD = [
    ("content 5", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("user without content", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("system content null", {"messages": [{"role": "system", "content": None}] + HI},
     "messages[0].content"),
    ("assistant null, no tool_calls", {"messages": HI + [
        {"role": "assistant", "content": None}]}, "messages[1].content"),
    ("role bot", {"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
    ("no role", {"messages": [{"content": "x"}]}, "messages[0].role"),
    ("message not an object", {"messages": ["hi"]}, "messages[0]"),
    ("messages empty", {"messages": []}, "messages"),
    ("messages not an array", {"messages": {"role": "user", "content": "x"}}, "messages"),
    ("tool without tool_call_id", {"messages": HI + [
        {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
    ("content parts empty", {"messages": [{"role": "user", "content": []}]},
     "messages[0].content"),
    ("text part without text", {"messages": [{"role": "user", "content": [
        {"type": "text"}]}]}, "messages[0].content[0].text"),
    ("image part", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
     "messages[0].content[1].type"),
    ("tool_calls on a user message", {"messages": [
        {"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
    ("tool call without id", {"messages": HI + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[1].tool_calls[0]"),
    ("temperature hot", {"messages": HI, "temperature": "hot"}, "temperature"),
    ("temperature 5", {"messages": HI, "temperature": 5}, "temperature"),
    ("temperature -0.1", {"messages": HI, "temperature": -0.1}, "temperature"),
    ("top_p 1.5", {"messages": HI, "top_p": 1.5}, "top_p"),
    ("max_tokens -1", {"messages": HI, "max_tokens": -1}, "max_tokens"),
    ("max_tokens 0", {"messages": HI, "max_tokens": 0}, "max_tokens"),
    ("max_tokens '10'", {"messages": HI, "max_tokens": "10"}, "max_tokens"),
    ("max_tokens 2.5", {"messages": HI, "max_tokens": 2.5}, "max_tokens"),
    ("max_completion_tokens -1", {"messages": HI, "max_completion_tokens": -1},
     "max_completion_tokens"),
    ("max_completion_tokens '10'", {"messages": HI, "max_completion_tokens": "10"},
     "max_completion_tokens"),
    ("stream 'yes'", {"messages": HI, "stream": "yes"}, "stream"),
    ("stream 1", {"messages": HI, "stream": 1}, "stream"),
    ("include_usage 'yes'", {"messages": HI, "stream": True,
                             "stream_options": {"include_usage": "yes"}},
     "stream_options.include_usage"),
    ("stream_options 'x'", {"messages": HI, "stream_options": "x"}, "stream_options"),
    ("parallel_tool_calls 'no'", {"messages": HI, "parallel_tool_calls": "no"},
     "parallel_tool_calls"),
    ("tools 'x'", {"messages": HI, "tools": "x"}, "tools"),
    ("tools [5]", {"messages": HI, "tools": [5]}, "tools[0]"),
    ("tool of type retrieval", {"messages": HI, "tools": [
        {"type": "retrieval", "function": {"name": "f"}}]}, "tools[0]"),
    ("tool without function", {"messages": HI, "tools": [{"type": "function"}]},
     "tools[0]"),
    ("tool name with a space", {"messages": HI, "tools": [
        {"type": "function", "function": {"name": "look up"}}]}, "tools[0]"),
    ("tool parameters a string", {"messages": HI, "tools": [
        {"type": "function", "function": {"name": "f", "parameters": "{}"}}]}, "tools[0]"),
    ("tool_choice 'any'", {"messages": HI, "tool_choice": "any"}, "tool_choice"),
    ("tool_choice without function", {"messages": HI, "tool_choice": {
        "type": "function"}}, "tool_choice"),
    ("n 2", {"messages": HI, "n": 2}, "n"),
    ("user 5", {"messages": HI, "user": 5}, "user"),
    ("seed 'x'", {"messages": HI, "seed": "x"}, "seed"),
    ("stop [1]", {"messages": HI, "stop": [1]}, "stop"),
    ("stop of five", {"messages": HI, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("response_format 'json'", {"messages": HI, "response_format": "json"},
     "response_format"),
    ("metadata []", {"messages": HI, "metadata": []}, "metadata"),
    ("store 'yes'", {"messages": HI, "store": "yes"}, "store"),
    ("logprobs 1", {"messages": HI, "logprobs": 1}, "logprobs"),
    ("frequency_penalty 3", {"messages": HI, "frequency_penalty": 3},
     "frequency_penalty"),
]


def run(web, upstream):
    W = {}

    def setup():
        wait_for("the edge", lambda: web.call("GET", "/readyz")[0] == 200, 60)
        reply = web.json("POST", "/api/v1/auth/register", {
            "email": "input-%s@agents.test" % RUN, "password": PASSWORD}, status=201)
        W["token"] = reply["access_token"]
        web.json("PUT", "/api/v1/providers/openai", {
            "api_key": KEY, "base_url": upstream.base + "/v1"}, W["token"])
        W["model"] = web.json("POST", "/api/v1/agents", {
            "name": "input-" + RUN, "system_prompt": "Be brief.", "provider": "openai",
            "model": MODEL}, W["token"], status=201)["name"]
    check("setup: a tenant, its OpenAI provider on the stand-in, an agent", setup)

    def chat(body, token=None):
        full = {"model": W["model"]}
        full.update(body)
        return web.call("POST", "/v1/chat/completions", full, token or W["token"])

    def refused():
        before = len(upstream.records())
        wrong = []
        for what, body, param in BAD:
            status, headers, raw = chat(body)
            if status != 400 or not headers["content-type"].startswith("application/json"):
                wrong.append((what, status, raw[:300]))
                continue
            error = openai_error(raw)
            if (error["type"] != "invalid_request_error" or error["code"] != "bad_request"
                    or error["param"] != param):
                wrong.append((what, error))
        assert not wrong, wrong
        assert len(upstream.records()) == before, "a refused body reached the provider"
    check("400 invalid_request_error with param for each bad body (%d)" % len(BAD),
          refused)

    def messages_read():
        status, _, raw = chat({"messages": [{"role": "user", "content": 5}]})
        error = openai_error(raw)
        assert "string" in error["message"] and "content part" in error["message"], error
        status, _, raw = chat([b for what, b, _ in BAD if what == "image part"][0])
        error = openai_error(raw)
        assert "image_url" in error["message"] and "not supported" in error["message"], \
            error
        status, _, raw = chat({"messages": HI, "temperature": 5})
        assert "0 to 2" in openai_error(raw)["message"], raw
        # a body that is no model at all
        status, _, raw = web.call("POST", "/v1/chat/completions", {"messages": HI},
                                  W["token"])
        error = openai_error(raw)
        assert status == 400 and error["param"] == "model", (status, error)
    check("refusals say what is wrong: content, image parts, ranges, model", messages_read)

    def accepted():
        marker = "sdk-params-" + RUN
        status, _, raw = chat({
            "messages": [{"role": "user", "content": "hello " + marker}],
            "temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "n": 1, "user": "u-42",
            "seed": 7, "frequency_penalty": 0.5, "presence_penalty": -0.5,
            "stop": ["\n\n"], "response_format": {"type": "text"},
            "metadata": {"purpose": "test"}, "store": False, "logprobs": False,
            "stream": False, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [{"type": "function", "function": {
                "name": "lookup", "description": "Look something up", "parameters": {
                    "type": "object", "properties": {"q": {"type": "string"}}}}}],
            "service_tier": "auto", "logit_bias": {}, "max_completion_tokens": None,
            "stream_options": None, "future_parameter": {"any": "thing"}})
        assert status == 200, raw[:500]
        completion = json.loads(raw)
        assert completion["object"] == "chat.completion", completion
        assert completion["choices"][0]["message"]["content"].startswith("Echo: hello"), \
            completion
        sent = upstream.last_with(marker)["body"]
        assert sent["temperature"] == 0.3, sent
        assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 50, sent
        assert [t["function"]["name"] for t in sent["tools"]] == ["lookup"], sent
    check("OpenAI's other parameters are accepted; temperature, max_tokens pass",
          accepted)

    def parts():
        marker = "parts-" + RUN
        status, _, raw = chat({"messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Answer in "},
                                              {"type": "text", "text": "English."}]},
            {"role": "user", "content": [{"type": "text", "text": "hello "},
                                         {"type": "text", "text": "world " + marker}]}]})
        assert status == 200, raw[:500]
        answer = json.loads(raw)["choices"][0]["message"]["content"]
        assert answer == "Echo: hello world " + marker, answer
        sent = upstream.last_with(marker)["body"]["messages"]
        texts = [(m["role"], m["content"] if isinstance(m["content"], str) else "".join(
            p["text"] for p in m["content"])) for m in sent]
        assert ("system", "Answer in English.") in texts, texts
        assert texts[-1] == ("user", "hello world " + marker), texts
    check("text content parts reach the provider as their text", parts)

    def tool_history():
        marker = "tools-" + RUN
        status, _, raw = chat({"messages": [
            {"role": "user", "content": "look it up " + marker},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [
                {"type": "text", "text": "found it"}]}],
            "tools": [{"type": "function", "function": {"name": "lookup"}}]})
        assert status == 200, raw[:500]
        assert json.loads(raw)["choices"][0]["message"]["content"] == "Echo: found it", raw
        sent = upstream.last_with(marker)["body"]["messages"]
        assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == "call_1", sent
        assert sent[-2]["tool_calls"][0]["function"]["name"] == "lookup", sent
    check("assistant content null with tool_calls, then its tool result", tool_history)

    def streamed():
        status, headers, raw = chat({"messages": HI, "stream": True,
                                     "stream_options": {"include_usage": True}})
        assert status == 200 and headers["content-type"].startswith("text/event-stream"), \
            (status, raw[:300])
        lines = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
        assert lines[-1] == "[DONE]", lines
        chunks = [json.loads(line) for line in lines[:-1]]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"], chunks[-1]
        text = "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in chunks if c["choices"])
        assert text == "Echo: hi", text
    check("stream true with include_usage still streams", streamed)

    def disabled():
        off = web.json("POST", "/api/v1/agents", {
            "name": "input-off-" + RUN, "system_prompt": "x", "provider": "openai",
            "model": MODEL}, W["token"], status=201)
        web.json("PATCH", "/api/v1/agents/" + off["id"], {"enabled": False}, W["token"])
        answers = {}
        for name, model in (("disabled by name", off["name"]), ("disabled by id", off["id"]),
                            ("missing", "no-such-agent-" + RUN),
                            ("missing id", str(uuid.uuid4()))):
            status, _, raw = web.call("POST", "/v1/chat/completions", {
                "model": model, "messages": HI}, W["token"])
            answers[name] = (status, openai_error(raw))
        for name, (status, error) in answers.items():
            assert status == 404, (name, status, error)
            assert error["code"] == "model_not_found", (name, error)
            assert error["type"] == "invalid_request_error", (name, error)
            assert error["param"] is None, (name, error)
            assert "does not exist" in error["message"], (name, error)
            assert "disabled" not in error["message"], (name, error)
        # streamed the same
        status, headers, raw = web.call("POST", "/v1/chat/completions", {
            "model": off["name"], "messages": HI, "stream": True}, W["token"])
        assert status == 404 and openai_error(raw)["code"] == "model_not_found", raw
        models = [m["id"] for m in web.json("GET", "/v1/models", token=W["token"])["data"]]
        assert off["name"] not in models and W["model"] in models, models
    check("a disabled agent is the same 404 model_not_found as a missing model",
          disabled)


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    standin, standin_port = llm_standin.spawn(["--api-key", KEY])
    upstream = Upstream(standin_port)
    base = free_port(3)
    edge_port = free_port()
    while base - 3 < edge_port < base + 3:
        edge_port = free_port()
    environment = dict(os.environ)
    for name in list(environment):
        if name.startswith("CHORUS_LLM_") or name in (
                "CHORUS_JWT_PREVIOUS_SECRETS", "CHORUS_JWT_ISSUER", "CHORUS_JWT_AUDIENCE"):
            environment.pop(name)
    suppressions = os.path.join(WORK, "lsan.supp")
    with open(suppressions, "w") as f:
        f.write("leak:CRYPTO_zalloc\n")
    environment.update({
        "CHORUS_BROKERS": "tcp://127.0.0.1:%d" % base,
        "CHORUS_BROKER_BIND": "tcp://127.0.0.1:%d" % base,
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": REDIS,
        "CHORUS_SQL_DIR": SRC + "/schemas/sql",
        "CHORUS_LOG_LEVEL": os.environ.get("OPENAI_INPUT_TEST_LOG_LEVEL", "warn"),
        "CHORUS_HEARTBEAT_MS": "200", "CHORUS_JWT_SECRET": SECRET,
        "CHORUS_EDGE_PORT": str(edge_port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_EDGE_COOKIE_SECURE": "false",
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000",
        "CHORUS_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LSAN_OPTIONS": "suppressions=" + suppressions})
    for name in ("broker", "auth", "agents", "edge"):
        start(name, [BIN + "/chorus-" + name], environment)
    try:
        web = Web(edge_port)

        def all_up():
            status, _, raw = web.call("GET", "/api/v1/services")
            if status != 200:
                return False
            seen = {s["name"]: s["replicas"] for s in json.loads(raw)["services"]}
            return all(seen.get(n) == 1 for n in ("auth", "agents"))
        wait_for("auth and agents at the broker", all_up, 60)
        run(web, upstream)
        check("SIGTERM: every process exits 0", lambda: sigterm_all(PROCESSES))
    finally:
        stop_all(PROCESSES, standin)
    return report(FAILED, WORK, "openai input")


if __name__ == "__main__":
    sys.exit(main())
