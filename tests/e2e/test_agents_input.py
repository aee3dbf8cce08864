#!/usr/bin/python3
"""End-to-end test of what the agents API accepts (schemas/chat.md), with every Chorus
component real: chorus-broker, chorus-auth, chorus-agents, chorus-chat and chorus-edge
as processes on the test PostgreSQL and Redis, spoken to over HTTP only. The one LLM
provider used (openai, to see which tools a turn declares) is
tests/standins/llm_standin.py. No CHORUS_LLM_* option is set, so the platform's
default is the offline provider and no networked provider has a default model.

Checks:
- PATCH /api/v1/agents/{id}: an absent field is kept, null puts back the default
  (temperature, max_tokens: none; description: ""; thinking_mode: balanced),
  "tools": [] removes the last tool, name: null is refused;
- tool bindings: parameters as a JSON Schema object (OpenAI's shape) or its JSON text,
  both reaching the provider's request; parameters that are not an object, or not
  JSON, and unknown types answer 400 naming the field and store nothing;
- avatars: Content-Type compared by type/subtype in any case, parameters ignored;
- list cursors that are not ours: 400 bad_request "invalid cursor" (agents,
  conversations, messages);
- GET /v1/models/{id}: the model object of GET /v1/models by name (any case) or id,
  with a token or a Chorus API key; 404 model_not_found for unknown, disabled and
  other tenants' agents (the SDK's models.retrieve is in openai_sdk_e2e.mjs);
- a networked provider without a model (and no default one) is refused with 400
  naming model, on create and on update; n8n and offline need none.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL (tools/chorus
test sets them)."""

import base64
import http.client
import json
import os
import struct
import sys
import tempfile
import time
import traceback
import urllib.parse
import uuid
import zlib

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__)) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-agents-input-test-")
RUN = uuid.uuid4().hex[:8]
SECRET = "e2e-agents-input-jwt-secret-0123456789abcdef"
PASSWORD = "Agents-Input-Passphrase-%s-42!" % RUN
OPENAI_KEY = "sk-proj-input-%s-0123456789abcdef" % RUN
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
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

    def call(self, method, path, body=None, token=None, headers=None, raw_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = "Bearer " + token
        data = json.dumps(body) if body is not None else raw_body
        if data is not None and "Content-Type" not in sent:
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw

    def json(self, method, path, body=None, token=None, status=200, **kw):
        got, _, raw = self.call(method, path, body, token, **kw)
        assert got == status, (method, path, body, got, raw[:500])
        return json.loads(raw) if raw else None

    def error(self, method, path, body=None, token=None, status=400, code=None, **kw):
        got, _, raw = self.call(method, path, body, token, **kw)
        assert got == status, (method, path, body, got, raw[:500])
        error = json.loads(raw)["error"]
        assert code is None or error["code"] == code, (method, path, error)
        return error


def standin_records(port, key):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_standin/requests")
    recs = json.loads(conn.getresponse().read())["requests"]
    conn.close()
    return [r for r in recs if (r.get("markers") or {}).get("key") == key]


def png(width, height, rgb):
    """A real PNG of one colour (8-bit RGB, no filter)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def run(web, standin_port):
    W = {}

    def register(name):
        reply = web.json("POST", "/api/v1/auth/register", {
            "email": "%s-%s@agents-input.test" % (name, RUN), "password": PASSWORD},
            status=201)
        return reply["access_token"]

    def setup():
        wait_for("the edge", lambda: web.call("GET", "/readyz")[0] == 200, 60)
        W["alice"], W["bob"] = register("alice"), register("bob")
        web.json("PUT", "/api/v1/providers/openai", {
            "api_key": OPENAI_KEY, "base_url": "http://127.0.0.1:%d/v1" % standin_port},
            W["alice"])
    check("setup: two tenants, alice's openai on the stand-in", setup)
    if FAILED:
        return
    A, B = W["alice"], W["bob"]

    def agent(name, token=A, **fields):
        body = {"name": "%s %s" % (name, RUN), "system_prompt": "You help."}
        body.update(fields)
        return web.json("POST", "/api/v1/agents", body, token, status=201)

    def count_named(prefix):
        listed = web.json("GET", "/api/v1/agents?limit=100", token=A)["data"]
        return len([a for a in listed if a["name"].startswith(prefix)])

    # ------------------------------------------------------------ PATCH: absent, null, []
    def patch_semantics():
        tool = {"type": "function", "name": "lookup", "parameters": SCHEMA}
        made = agent("patched", description="Answers", temperature=0.5, max_tokens=300,
                     thinking_mode="deep", tools=[tool])
        path = "/api/v1/agents/" + made["id"]
        # absent fields stay, tools included
        kept = web.json("PATCH", path, {"system_prompt": "Be brief."}, A)
        for field in ("description", "temperature", "max_tokens", "thinking_mode",
                      "tools", "name", "provider", "model", "enabled"):
            assert kept[field] == made[field], (field, kept, made)
        # [] removes the last tool, and it stays removed
        cleared = web.json("PATCH", path, {"tools": []}, A)
        assert cleared["tools"] == [], cleared
        assert web.json("GET", path, token=A)["tools"] == []
        assert cleared["temperature"] == 0.5 and cleared["max_tokens"] == 300, cleared
        # null puts back the default; the others stay
        reset = web.json("PATCH", path, {"temperature": None, "max_tokens": None}, A)
        assert reset.get("temperature") is None and reset.get("max_tokens") is None, reset
        assert reset["description"] == "Answers" and reset["thinking_mode"] == "deep"
        got = web.json("GET", path, token=A)
        assert got.get("temperature") is None and got.get("max_tokens") is None, got
        reset = web.json("PATCH", path, {"description": None, "thinking_mode": None,
                                         "tools": [tool]}, A)
        assert reset["description"] == "" and reset["thinking_mode"] == "balanced", reset
        assert [t["name"] for t in reset["tools"]] == ["lookup"], reset
        reset = web.json("PATCH", path, {"tools": None}, A)
        assert reset["tools"] == [], reset
        # a value sets again
        again = web.json("PATCH", path, {"temperature": 1.25, "max_tokens": 42}, A)
        assert again["temperature"] == 1.25 and again["max_tokens"] == 42, again
        # what has no default cannot be null
        for field in ("name", "system_prompt"):
            error = web.error("PATCH", path, {field: None}, A, code="bad_request")
            assert field in error["message"], error
        assert web.json("GET", path, token=A)["name"] == made["name"]
    check("PATCH: absent kept, null resets (temperature, max_tokens, ...), [] clears "
          "tools", patch_semantics)

    # ------------------------------------------------------------------- tool bindings
    def tools_accepted():
        as_object = agent("tools object", tools=[
            {"type": "function", "name": "lookup", "description": "Look up",
             "parameters": SCHEMA}])
        as_text = agent("tools text", tools=[
            {"type": "function", "name": "lookup", "parameters": json.dumps(SCHEMA)}])
        untyped = agent("tools untyped", tools=[{"name": "lookup"}])
        for made in (as_object, as_text):
            tool = made["tools"][0]
            assert json.loads(tool["parameters"]) == SCHEMA, tool     # answered as text
            assert tool["type"] == "function", tool
        assert untyped["tools"][0]["type"] == "function", untyped
        assert untyped["tools"][0].get("parameters") is None, untyped
        for kind in ("integration", "workflow", "mcp"):
            made = agent("tools " + kind, tools=[{"type": kind, "name": "x",
                                                  "config": {"id": 1}}])
            assert made["tools"][0]["type"] == kind, made
            assert json.loads(made["tools"][0]["config"]) == {"id": 1}, made
        # the object reaches the provider as the function's parameters
        sent = agent("tools sent", provider="openai", model="gpt-4o-mini", tools=[
            {"type": "function", "name": "lookup", "parameters": SCHEMA}])
        key = "input-tools-" + RUN
        result = web.json("POST", "/api/v1/agents/%s/test" % sent["id"],
                          {"content": "hello [[key:%s]]" % key}, A)
        assert result["finish_reason"] == "stop", result
        recs = standin_records(standin_port, key)
        assert len(recs) == 1, recs
        declared = recs[0]["body"].get("tools") or []
        assert [t["function"]["name"] for t in declared] == ["lookup"], declared
        assert declared[0]["function"]["parameters"] == SCHEMA, declared
    check("tools: parameters as an object or its JSON text, both sent to the provider",
          tools_accepted)

    def tools_refused():
        before = count_named("refused")
        bad = [({"name": "t", "parameters": "not json"}, "tools[0].parameters"),
               ({"name": "t", "parameters": "[1, 2]"}, "tools[0].parameters"),
               ({"name": "t", "parameters": [1, 2]}, "tools[0].parameters"),
               ({"name": "t", "parameters": 7}, "tools[0].parameters"),
               ({"name": "t", "type": "weird"}, "tools[0].type"),
               ({"name": "t", "type": 3}, "tools[0].type"),
               ({"type": "function"}, "tools[0].name"),
               ({"name": ""}, "tools[0].name"),
               ("lookup", "tools[0]")]
        for tool, field in bad:
            error = web.error("POST", "/api/v1/agents", {
                "name": "refused %s" % RUN, "system_prompt": "x", "tools": [tool]}, A,
                code="bad_request")
            assert field in error["message"], (tool, error)
        error = web.error("POST", "/api/v1/agents", {
            "name": "refused %s" % RUN, "system_prompt": "x", "tools": {"name": "t"}}, A,
            code="bad_request")
        assert "tools" in error["message"], error
        assert count_named("refused") == before, "a refused agent was stored"
        # an update with a bad tool changes nothing
        made = agent("refused later", tools=[{"name": "keep", "parameters": SCHEMA}])
        path = "/api/v1/agents/" + made["id"]
        error = web.error("PATCH", path, {"description": "changed", "tools": [
            {"name": "ok"}, {"name": "t", "parameters": "{oops"}]}, A, code="bad_request")
        assert "tools[1].parameters" in error["message"], error
        assert web.json("GET", path, token=A) == made
    check("tools: non-object or unparsable parameters, unknown types: 400 naming the "
          "field", tools_refused)

    # ------------------------------------------------------------------------ avatars
    def avatar_types():
        made = agent("portrait")
        path = "/api/v1/agents/%s/avatar" % made["id"]
        image = png(3, 2, (10, 200, 30))
        for content_type in ("image/png;charset=binary", "IMAGE/PNG", "Image/Png",
                             "image/png ; q=1", "image/png"):
            status, _, raw = web.call("PUT", path, token=A, raw_body=image,
                                      headers={"Content-Type": content_type})
            assert status == 200, (content_type, status, raw[:300])
            status, headers, raw = web.call("GET", path, token=A)
            assert status == 200 and raw == image, (content_type, status)
            assert headers["content-type"] == "image/png", (content_type, headers)
        for content_type in ("IMAGE/GIF", "image/pngx", "image/png-", "text/plain;x=png",
                             ";image/png"):
            status, _, raw = web.call("PUT", path, token=A, raw_body=image,
                                      headers={"Content-Type": content_type})
            assert status == 400, (content_type, status, raw[:300])
            assert json.loads(raw)["error"]["code"] == "bad_request", raw
    check("avatars: Content-Type in any case, with parameters; other types still 400",
          avatar_types)

    # ------------------------------------------------------------------------ cursors
    def cursors():
        made = agent("cursor")
        conv = web.json("POST", "/api/v1/conversations", {"agent_id": made["id"]}, A,
                        status=201)["id"]
        bogus = ["garbage", "zz", "2f", "31", base64.b16encode(b"12/not-a-uuid").decode(),
                 base64.b16encode(("x/" + made["id"]).encode()).decode()]
        for path in ("/api/v1/agents", "/api/v1/conversations",
                     "/api/v1/conversations/%s/messages" % conv):
            for cursor in bogus:
                error = web.error("GET", "%s?cursor=%s" % (path, cursor), token=A,
                                  code="bad_request")
                assert error["message"] == "invalid cursor", (path, cursor, error)
        # the cursors we hand out still page
        page = web.json("GET", "/api/v1/agents?limit=1", token=A)
        assert page["next_cursor"], page
        rest = web.json("GET", "/api/v1/agents?limit=1&cursor=" + page["next_cursor"],
                        token=A)
        assert rest["data"] and rest["data"][0]["id"] != page["data"][0]["id"], rest
        assert web.json("GET", "/api/v1/agents?cursor=", token=A)["data"]
    check("cursors: not ours is 400 \"invalid cursor\" (agents, conversations, messages)",
          cursors)

    # -------------------------------------------------------------- GET /v1/models/{id}
    def model_retrieve():
        made = agent("Model Helper")
        key = web.json("POST", "/api/v1/auth/api-keys", {"name": "input " + RUN,
                                                         "scopes": ["read"]}, A,
                       status=201)["key"]
        listed = {m["id"]: m for m in web.json("GET", "/v1/models", token=key)["data"]}
        entry = listed[made["name"]]
        assert entry["object"] == "model" and entry["owned_by"] == "chorus", entry
        quoted = urllib.parse.quote(made["name"])
        for asked in (quoted, quoted.upper(), made["id"], made["id"].upper()):
            for token in (key, A):
                got = web.json("GET", "/v1/models/" + asked, token=token)
                assert got == entry, (asked, got, entry)
        # unknown, disabled, another tenant's: OpenAI's 404
        off = agent("Switched off")
        web.json("PATCH", "/api/v1/agents/" + off["id"], {"enabled": False}, A)
        theirs = agent("Bobs own", token=B)
        for asked, token in (("no-such-agent-" + RUN, A), (str(uuid.uuid4()), A),
                             (urllib.parse.quote(off["name"]), A), (off["id"], A),
                             (quoted, B), (made["id"], B),
                             (urllib.parse.quote(theirs["name"]), A)):
            error = web.error("GET", "/v1/models/" + asked, token=token, status=404,
                              code="model_not_found")
            assert error["type"] == "invalid_request_error", error
            assert "does not exist" in error["message"], error
        web.error("GET", "/v1/models/" + quoted, status=401)
    check("GET /v1/models/{id}: name (any case) or id, 404 model_not_found otherwise",
          model_retrieve)

    # ------------------------------------------------------------- providers need a model
    def model_required():
        before = count_named("modelless")
        for provider in ("openai", "anthropic", "gemini", "ollama"):
            for extra in ({}, {"model": ""}):
                body = {"name": "modelless %s %s" % (provider, RUN), "system_prompt": "x",
                        "provider": provider}
                body.update(extra)
                error = web.error("POST", "/api/v1/agents", body, A, code="bad_request")
                assert "model" in error["message"], (body, error)
        assert count_named("modelless") == before
        # providers that need no model
        assert agent("modelless offline", provider="offline")["model"] == ""
        agent("modelless n8n", provider="n8n", webhook_url="http://127.0.0.1:9/hook")
        # an update that would leave a networked provider without one
        plain = agent("modelless later")
        for body in ({"provider": "openai"}, {"provider": "anthropic", "model": ""}):
            error = web.error("PATCH", "/api/v1/agents/" + plain["id"], body, A,
                              code="bad_request")
            assert "model" in error["message"], (body, error)
        assert web.json("GET", "/api/v1/agents/" + plain["id"], token=A) == plain
        moved = web.json("PATCH", "/api/v1/agents/" + plain["id"],
                         {"provider": "openai", "model": "gpt-4o-mini"}, A)
        assert moved["provider"] == "openai" and moved["model"] == "gpt-4o-mini", moved
        for body in ({"model": ""}, {"model": None}):
            error = web.error("PATCH", "/api/v1/agents/" + plain["id"], body, A,
                              code="bad_request")
            assert "model" in error["message"], (body, error)
        assert web.json("GET", "/api/v1/agents/" + plain["id"], token=A) == moved
        # back to offline, the model may go
        back = web.json("PATCH", "/api/v1/agents/" + plain["id"],
                        {"provider": "offline", "model": None}, A)
        assert back["provider"] == "offline" and back["model"] == "", back
    check("a networked provider without a model: 400 naming model (create, update)",
          model_required)


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    standin, standin_port = llm_standin.spawn(["--api-key", OPENAI_KEY])
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
        "CHORUS_LOG_LEVEL": os.environ.get("AGENTS_TEST_LOG_LEVEL", "warn"),
        "CHORUS_HEARTBEAT_MS": "200", "CHORUS_JWT_SECRET": SECRET,
        "CHORUS_EDGE_PORT": str(edge_port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_EDGE_COOKIE_SECURE": "false",
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000",
        "CHORUS_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LSAN_OPTIONS": "suppressions=" + suppressions})
    for name in ("broker", "auth", "agents", "chat", "edge"):
        start(name, [BIN + "/chorus-" + name], environment)
    try:
        web = Web(edge_port)

        def all_up():
            status, _, raw = web.call("GET", "/api/v1/services")
            if status != 200:
                return False
            seen = {s["name"]: s["replicas"] for s in json.loads(raw)["services"]}
            return all(seen.get(n) == 1 for n in ("auth", "agents", "chat"))
        wait_for("auth, agents and chat at the broker", all_up, 60)
        run(web, standin_port)
        check("SIGTERM: every process exits 0", lambda: sigterm_all(PROCESSES))
    finally:
        stop_all(PROCESSES, standin)
    return report(FAILED, WORK, "agents input")


if __name__ == "__main__":
    sys.exit(main())
