#!/usr/bin/python3
"""Self-test of tests/standins/llm_standin.py.

    test_llm_standin.py [--part frames|sdk|all]

frames: plain-Python checks of each provider's exact frame sequence, error bodies,
        markers, request tracking, disconnect detection and 300 concurrent streams.
sdk:    the official `openai` npm SDK (tests/standins/node_modules, `npm ci` there)
        rebuilds text, tool-call arguments and usage from the stand-in's streams
        (openai_sdk_check.mjs). Exits 77 (skipped) when node or the package is missing.
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llm_standin  # noqa: E402

KEY = "standin-key"
PORT = None


# ---------------------------------------------------------------------------------
# small HTTP helpers

def call(method, path, body=None, headers=None):
    """One request; returns (status, lower-case headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=15)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    out = resp.read()
    h = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, h, out


def raw(method, path, body, headers=None, timeout=15):
    """Sends one request on a raw socket and reads until the server closes (or the
    chunked body ends). Returns (status, headers, decoded body, raw body, terminated)
    where terminated tells whether the final zero-size chunk came."""
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1",
             "Content-Type: application/json", "Content-Length: %d" % len(data),
             "Connection: close"]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    buf = b""
    try:
        while True:
            got = s.recv(65536)
            if not got:
                break
            buf += got
    except ConnectionResetError:
        buf += b"<RST>"
    s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1])
    h = {}
    for line in hl[1:]:
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    if "chunked" not in h.get("transfer-encoding", ""):
        return status, h, rest, rest, True
    body_out, terminated, pos = b"", False, 0
    while True:
        j = rest.find(b"\r\n", pos)
        if j < 0:
            break
        try:
            size = int(rest[pos:j], 16)
        except ValueError:
            break
        if size == 0:
            terminated = rest[j:j + 4] == b"\r\n\r\n"
            break
        body_out += rest[j + 2:j + 2 + size]
        pos = j + 2 + size + 2
    return status, h, body_out, rest, terminated


def sse(body):
    """Splits an SSE body into [(event name or None, data string)]; comments are
    returned as ("#comment", text)."""
    out = []
    for block in re.split(r"\r\n\r\n|\n\n", body.decode()):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.splitlines():
            if line.startswith(":"):
                out.append(("#comment", line[1:].strip()))
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
        if data:
            out.append((name, "\n".join(data)))
    return out


def records(**filt):
    _, _, body = call("GET", "/_standin/requests?wait=5")
    recs = json.loads(body)["requests"]
    return [r for r in recs if all(r["markers"].get(k) == v for k, v in filt.items())]


def oai(content, stream=True, extra=None, headers=None, messages=None):
    body = {"model": "gpt-4o-mini", "stream": stream,
            "messages": messages or [{"role": "user", "content": content}]}
    body.update(extra or {})
    hdrs = {"Authorization": "Bearer " + KEY}
    hdrs.update(headers or {})
    return body, hdrs


def ant(content, stream=True, headers=None, messages=None):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
            "messages": messages or [{"role": "user", "content": content}]}
    hdrs = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    hdrs.update(headers or {})
    return body, hdrs


def gem(content, contents=None):
    return {"contents": contents or [{"role": "user", "parts": [{"text": content}]}]}


GEM = "/v1beta/models/gemini-2.0-flash"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---------------------------------------------------------------------------------
# OpenAI

@check
def openai_stream_frames():
    body, h = oai("hello there world", extra={"stream_options": {"include_usage": True}})
    st, hd, out, _, term = raw("POST", "/v1/chat/completions", body, h)
    assert st == 200 and term
    assert hd["content-type"].startswith("text/event-stream")
    evs = sse(out)
    assert evs[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in evs[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                   if c["choices"])
    assert text == "Echo: hello there world", text
    fin = chunks[-2]
    assert fin["choices"][0]["finish_reason"] == "stop" and fin["choices"][0]["delta"] == {}
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 3
    assert last["usage"]["completion_tokens"] == 4 and last["usage"]["total_tokens"] == 7
    # without include_usage: no usage member, no usage chunk
    body, h = oai("hi")
    _, _, out, _, _ = raw("POST", "/v1/chat/completions", body, h)
    chunks = [json.loads(d) for _, d in sse(out)[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)


@check
def openai_parameter_rules():
    """OpenAI's 400s for parameters a model refuses; what it takes passes."""
    def refused(model, extra, param, code, messages=None):
        body, h = oai("hi", stream=False, extra=dict(extra, model=model),
                      messages=messages)
        st, _, out, _, _ = raw("POST", "/v1/chat/completions", body, h)
        error = json.loads(out)["error"]
        assert st == 400 and error["type"] == "invalid_request_error", (st, out)
        assert error["param"] == param and error["code"] == code, error
    refused("o4-mini", {"max_tokens": 10}, "max_tokens", "unsupported_parameter")
    refused("gpt-5", {"temperature": 0.2}, "temperature", "unsupported_value")
    refused("o1-mini", {}, "messages[0].role", "unsupported_value",
            [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}])
    refused("gpt-4o-mini", {"reasoning_effort": "low"}, None, None)
    for model, extra in (("o4-mini", {"max_completion_tokens": 10, "temperature": 1,
                                      "reasoning_effort": "high"}),
                         ("gpt-5-chat-latest", {"temperature": 0.2, "max_tokens": 10}),
                         ("gpt-4o-mini", {"temperature": 0.2, "max_tokens": 10})):
        body, h = oai("hi", stream=False, extra=dict(extra, model=model))
        st, _, out, _, _ = raw("POST", "/v1/chat/completions", body, h)
        assert st == 200, (model, out)


@check
def anthropic_parameter_rules():
    """Anthropic's 400s for temperature and thinking settings it refuses."""
    def status(extra):
        body, h = ant("hi", stream=False)
        body.update(extra)
        st, _, out, _, _ = raw("POST", "/v1/messages", body, h)
        if st == 400:
            assert json.loads(out)["error"]["type"] == "invalid_request_error", out
        return st
    assert status({"temperature": 1.5}) == 400
    assert status({"thinking": {"type": "enabled", "budget_tokens": 2048},
                   "temperature": 0.5}) == 400
    assert status({"thinking": {"type": "enabled", "budget_tokens": 512}}) == 400
    assert status({"thinking": {"type": "enabled", "budget_tokens": 1024}}) == 400
    assert status({"thinking": {"type": "enabled", "budget_tokens": 1024},
                   "max_tokens": 4096}) == 200
    assert status({"temperature": 0.5}) == 200


@check
def anthropic_thinking_blocks():
    """With thinking on the reply starts with a signed thinking block."""
    body, h = ant("hi there")
    body.update({"max_tokens": 4096, "thinking": {"type": "enabled",
                                                  "budget_tokens": 2048}})
    st, _, out, _, _ = raw("POST", "/v1/messages", body, h)
    assert st == 200, out
    evs = [(n, json.loads(d)) for n, d in sse(out) if n != "#comment"]
    starts = [e for n, e in evs if n == "content_block_start"]
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": "",
                                          "signature": ""}, starts
    assert starts[1]["index"] == 1 and starts[1]["content_block"]["type"] == "text"
    deltas = [e["delta"] for n, e in evs if n == "content_block_delta" and e["index"] == 0]
    assert [d["type"] for d in deltas][-1] == "signature_delta", deltas
    assert "".join(d.get("thinking", "") for d in deltas) == "Thinking about the request."
    text = "".join(e["delta"]["text"] for n, e in evs
                   if n == "content_block_delta" and e["index"] == 1)
    assert text == "Echo: hi there", text
    body["stream"] = False
    st, _, out, _, _ = raw("POST", "/v1/messages", body, h)
    content = json.loads(out)["content"]
    assert [c["type"] for c in content] == ["thinking", "text"], content
    assert content[0]["signature"], content


@check
def openai_tool_call_deltas():
    body, h = oai('go [[tool:get_weather {"city":"Paris"}]] [[tool:t2 {"n":[1,2]}]]')
    _, _, out, _, _ = raw("POST", "/v1/chat/completions", body, h)
    chunks = [json.loads(d) for _, d in sse(out)[:-1]]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    calls = {}
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls", []):
            if "id" in tc:
                assert tc["type"] == "function" and tc["function"]["arguments"] == ""
                assert tc["index"] not in calls
                calls[tc["index"]] = [tc["function"]["name"], ""]
            else:
                assert set(tc) == {"index", "function"} and set(tc["function"]) == {
                    "arguments"}
                calls[tc["index"]][1] += tc["function"]["arguments"]
    assert calls[0][0] == "get_weather" and json.loads(calls[0][1]) == {"city": "Paris"}
    assert calls[1][0] == "t2" and json.loads(calls[1][1]) == {"n": [1, 2]}
    pieces = sum(1 for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])
                 if tc["index"] == 0 and "id" not in tc)
    assert pieces >= 4, pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@check
def openai_errors():
    body, _ = oai("x")
    st, hd, out = call("POST", "/v1/chat/completions", body, {})
    err = json.loads(out)["error"]
    assert st == 401 and err["type"] == "invalid_request_error" and err["code"] is None
    assert set(err) == {"message", "type", "param", "code"}
    st, _, out = call("POST", "/v1/chat/completions", body, {"Authorization": "Bearer no"})
    assert st == 401 and json.loads(out)["error"]["code"] == "invalid_api_key"
    body, h = oai("x [[status:429 retry_after:1]]", stream=True)
    st, hd, out = call("POST", "/v1/chat/completions", body, h)
    err = json.loads(out)["error"]
    assert st == 429 and hd["retry-after"] == "1"
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests"
    body, h = oai("x [[status:503]]")
    st, _, out = call("POST", "/v1/chat/completions", body, h)
    assert st == 503 and json.loads(out)["error"]["type"] == "server_error"
    body, h = oai("x")
    body["model"] = "missing-model"
    st, _, out = call("POST", "/v1/chat/completions", body, h)
    assert st == 404 and json.loads(out)["error"]["code"] == "model_not_found"


@check
def openai_mid_stream_error_and_cuts():
    body, h = oai("a b c d e [[error_after:2]]")
    _, _, out, _, term = raw("POST", "/v1/chat/completions", body, h)
    evs = sse(out)
    assert term and (None, "[DONE]") not in evs
    assert json.loads(evs[-1][1])["error"]["type"] == "server_error"
    assert sum(1 for _, d in evs if '"content":"' in d and '"role"' not in d) == 2
    body, h = oai("a b c d e [[cut_after:3]]")
    _, _, out, rawbody, term = raw("POST", "/v1/chat/completions", body, h)
    assert not term and b"[DONE]" not in rawbody and b"finish_reason\":\"stop" not in rawbody
    body, h = oai("a b c d e [[truncate_after:3]]")
    _, _, out, _, term = raw("POST", "/v1/chat/completions", body, h)
    assert term and b"[DONE]" not in out
    body, h = oai("a b c d e [[reset_after:1]]")
    _, _, _, rawbody, term = raw("POST", "/v1/chat/completions", body, h)
    assert not term and rawbody.endswith(b"<RST>"), rawbody[-40:]
    outcomes = [r["outcome"] for r in records()[-4:]]
    assert outcomes == ["error_event", "cut", "truncated", "reset"], outcomes


@check
def openai_non_stream_and_models():
    body, h = oai("plain one", stream=False, extra={"max_tokens": 2})
    st, hd, out = call("POST", "/v1/chat/completions", body, h)
    obj = json.loads(out)
    assert st == 200 and obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"]["content"] == "Echo: plain"
    assert obj["choices"][0]["finish_reason"] == "length"
    st, _, out = call("GET", "/v1/models", None, {"Authorization": "Bearer " + KEY})
    assert st == 200 and json.loads(out)["object"] == "list"


# ---------------------------------------------------------------------------------
# Anthropic

@check
def anthropic_text_stream_sequence():
    body, h = ant("hello claude")
    st, hd, out, _, term = raw("POST", "/v1/messages", body, h)
    assert st == 200 and term and hd["request-id"].startswith("req_")
    evs = sse(out)
    names = [n for n, _ in evs]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"], names
    datas = [json.loads(d) for _, d in evs]
    assert all(n == d["type"] for n, d in zip(names, datas))
    msg = datas[0]["message"]
    assert msg["id"].startswith("msg_") and msg["content"] == [] and msg["stop_reason"] is None
    assert datas[1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "Echo: hello claude"
    assert datas[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert datas[-2]["usage"]["output_tokens"] == 3
    assert b"[DONE]" not in out


@check
def anthropic_tool_use_stream():
    body, h = ant('use it [[with_text]] [[tool:get_weather {"city":"Paris","n":2}]]')
    _, _, out, _, _ = raw("POST", "/v1/messages", body, h)
    datas = [json.loads(d) for _, d in sse(out)]
    starts = [d for d in datas if d["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    tool = starts[1]["content_block"]
    assert tool["id"].startswith("toolu_") and tool["input"] == {} and starts[1]["index"] == 1
    parts = [d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta"
             and d["index"] == 1]
    assert all(d["delta"]["type"] == "input_json_delta" for d in datas
               if d["type"] == "content_block_delta" and d["index"] == 1)
    assert len(parts) > 3 and json.loads("".join(parts)) == {"city": "Paris", "n": 2}
    assert [d["index"] for d in datas if d["type"] == "content_block_stop"] == [0, 1]
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"
    assert datas[-1] == {"type": "message_stop"}


@check
def anthropic_errors_and_non_stream():
    body, h = ant("x")
    st, _, out = call("POST", "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    obj = json.loads(out)
    assert st == 401 and obj["type"] == "error" and obj["error"]["type"] == \
        "authentication_error" and obj["request_id"].startswith("req_")
    st, _, out = call("POST", "/v1/messages", body, dict(h, **{"x-api-key": "bad"}))
    assert st == 401 and json.loads(out)["error"]["message"] == "invalid x-api-key"
    st, _, out = call("POST", "/v1/messages", body, {"x-api-key": KEY})
    assert st == 400 and json.loads(out)["error"]["type"] == "invalid_request_error"
    body, h = ant("x [[status:529]]")
    st, hd, out = call("POST", "/v1/messages", body, h)
    assert st == 529 and json.loads(out)["error"] == {"type": "overloaded_error",
                                                      "message": "Overloaded"}
    body, h = ant("x [[status:429 retry_after:2]]")
    st, hd, out = call("POST", "/v1/messages", body, h)
    assert st == 429 and hd["retry-after"] == "2"
    assert json.loads(out)["error"]["type"] == "rate_limit_error"
    body, h = ant("a b c [[error_after:1]]")
    _, _, out, _, term = raw("POST", "/v1/messages", body, h)
    evs = sse(out)
    assert term and evs[-1][0] == "error" and "message_stop" not in [n for n, _ in evs]
    assert json.loads(evs[-1][1]) == {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}
    body, h = ant("plain", stream=False)
    st, _, out = call("POST", "/v1/messages", body, h)
    obj = json.loads(out)
    assert obj["type"] == "message" and obj["content"] == [{"type": "text",
                                                            "text": "Echo: plain"}]
    assert obj["stop_reason"] == "end_turn" and obj["usage"]["output_tokens"] == 2
    msgs = [{"role": "user", "content": "w? [[tool:get_weather {}]]"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                               "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": "rainy"}]}]
    body, h = ant(None, stream=False, messages=msgs)
    obj = json.loads(call("POST", "/v1/messages", body, h)[2])
    assert obj["content"] == [{"type": "text", "text": "Echo: rainy"}], obj


@check
def anthropic_keepalive_pings():
    body, h = ant("x [[first_token_ms:350 keepalive_ms:100]]")
    _, _, out, _, _ = raw("POST", "/v1/messages", body, h)
    names = [n for n, _ in sse(out)]
    before = names[:names.index("content_block_delta")]
    assert before.count("ping") >= 4, names
    body, h = ant("a b c d e f [[keepalive_every:2]]")
    names = [n for n, _ in sse(raw("POST", "/v1/messages", body, h)[2])]
    assert names.count("ping") == 1 + 3, names


# ---------------------------------------------------------------------------------
# Gemini

@check
def gemini_sse_stream():
    st, hd, out, _, term = raw("POST", GEM + ":streamGenerateContent?alt=sse",
                               gem("hello gemini"), {"x-goog-api-key": KEY})
    assert st == 200 and term and hd["content-type"].startswith("text/event-stream")
    assert out.endswith(b"\r\n\r\n") and out.count(b"\r\n\r\n") == 3
    objs = [json.loads(d) for _, d in sse(out)]
    text = "".join(p["text"] for o in objs for p in o["candidates"][0]["content"]["parts"])
    assert text == "Echo: hello gemini"
    assert all(o["candidates"][0]["content"]["role"] == "model" for o in objs)
    assert all("usageMetadata" not in o and "finishReason" not in o["candidates"][0]
               for o in objs[:-1])
    last = objs[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    u = last["usageMetadata"]
    assert (u["promptTokenCount"], u["candidatesTokenCount"], u["totalTokenCount"]) == \
        (2, 3, 5)
    # the key in the query works too; without alt=sse the stream is a JSON array
    st, hd, out = call("POST", GEM + ":streamGenerateContent?key=" + KEY, gem("hi"))
    arr = json.loads(out)
    assert st == 200 and isinstance(arr, list) and len(arr) == 2


@check
def gemini_function_call_and_non_stream():
    st, _, out = call("POST", GEM + ":generateContent?key=" + KEY,
                      gem('w? [[tool:get_weather {"city":"Paris"}]]'))
    obj = json.loads(out)
    assert obj["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    assert obj["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in obj
    contents = [{"role": "user", "parts": [{"text": "w? [[tool:get_weather {}]]"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                              "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {
                    "name": "get_weather", "response": {"t": 18}}}]}]
    _, _, out, _, _ = raw("POST", GEM + ":streamGenerateContent?alt=sse",
                          gem(None, contents), {"x-goog-api-key": KEY})
    objs = [json.loads(d) for _, d in sse(out)]
    text = "".join(p.get("text", "") for o in objs
                   for p in o["candidates"][0]["content"]["parts"])
    assert text == 'Echo: {"t":18}', text
    body = gem("a b c d")
    body["generationConfig"] = {"maxOutputTokens": 2}
    obj = json.loads(call("POST", GEM + ":generateContent", body,
                          {"x-goog-api-key": KEY})[2])
    assert obj["candidates"][0]["finishReason"] == "MAX_TOKENS"


@check
def gemini_thought_signatures():
    """Thinking models sign a reply's first call; Gemini 3 wants it back."""
    g3 = "/v1beta/models/gemini-3-pro-preview:generateContent?key=" + KEY
    obj = json.loads(call("POST", g3, gem('w? [[tool:a {}]] [[tool:b {}]]'))[2])
    parts = obj["candidates"][0]["content"]["parts"]
    assert parts[0]["thoughtSignature"] and "thoughtSignature" not in parts[1], parts
    history = [{"role": "user", "parts": [{"text": "w?"}]},
               {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
               {"role": "user", "parts": [{"functionResponse": {
                   "name": "a", "response": {"t": 1}}}]}]
    st, _, out = call("POST", g3, gem(None, history))
    error = json.loads(out)["error"]
    assert st == 400 and error["status"] == "INVALID_ARGUMENT", out
    assert "thought_signature" in error["message"] and "default_api:a" in error["message"]
    for signature in (parts[0]["thoughtSignature"], "skip_thought_signature_validator"):
        history[1]["parts"][0]["thoughtSignature"] = signature
        assert call("POST", g3, gem(None, history))[0] == 200
    del history[1]["parts"][0]["thoughtSignature"]        # older models let it pass
    assert call("POST", GEM + ":generateContent?key=" + KEY, gem(None, history))[0] == 200


@check
def gemini_errors():
    st, _, out = call("POST", GEM + ":generateContent?key=nope", gem("x"))
    err = json.loads(out)["error"]
    assert st == 400 and err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert err["details"][0]["reason"] == "API_KEY_INVALID"
    st, _, out = call("POST", GEM + ":generateContent", gem("x"))
    assert st == 403 and json.loads(out)["error"]["status"] == "PERMISSION_DENIED"
    st, hd, out = call("POST", GEM + ":generateContent?key=" + KEY,
                       gem("x [[status:429 retry_after:3]]"))
    err = json.loads(out)["error"]
    assert st == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    assert err["details"][0]["retryDelay"] == "3s"
    st, _, out = call("POST", "/v1beta/models/missing-x:generateContent?key=" + KEY,
                      gem("x"))
    assert st == 404 and json.loads(out)["error"]["status"] == "NOT_FOUND"
    _, _, out, _, _ = raw("POST", GEM + ":streamGenerateContent?alt=sse",
                          gem("a b c [[error_after:1]]"), {"x-goog-api-key": KEY})
    objs = [json.loads(d) for _, d in sse(out)]
    assert objs[-1]["error"]["status"] == "UNAVAILABLE" and len(objs) == 2


# ---------------------------------------------------------------------------------
# Ollama

@check
def ollama_ndjson_stream():
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi llama"}]}
    st, hd, out, _, term = raw("POST", "/api/chat", body)
    assert st == 200 and term and hd["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert all(not x["done"] for x in lines[:-1]) and lines[-1]["done"] is True
    assert "".join(x["message"]["content"] for x in lines) == "Echo: hi llama"
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", x["created_at"])
               for x in lines)
    fin = lines[-1]
    assert fin["done_reason"] == "stop" and fin["eval_count"] == 3
    assert fin["prompt_eval_count"] == 2
    for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(fin[k], int) and fin[k] > 0
    assert fin["total_duration"] >= fin["eval_duration"]


@check
def ollama_tools_and_non_stream():
    body = {"model": "llama3.2", "stream": False, "messages": [
        {"role": "user", "content": 'w [[tool:get_weather {"city":"Oslo"}]]'}]}
    st, hd, out = call("POST", "/api/chat", body)
    obj = json.loads(out)
    assert st == 200 and obj["done"] is True
    assert obj["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]
    body["stream"] = True
    lines = [json.loads(x) for x in raw("POST", "/api/chat", body)[2].decode().splitlines()]
    assert lines[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    body["messages"] += [{"role": "assistant", "content": "",
                          "tool_calls": obj["message"]["tool_calls"]},
                         {"role": "tool", "content": "cold"}]
    lines = [json.loads(x) for x in raw("POST", "/api/chat", body)[2].decode().splitlines()]
    assert "".join(x["message"]["content"] for x in lines) == "Echo: cold"
    st, _, out = call("POST", "/api/chat", {"model": "missing:1", "messages": []})
    assert st == 404 and "not found" in json.loads(out)["error"]
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "a b [[error_after:1]]"}]}
    lines = [json.loads(x) for x in raw("POST", "/api/chat", body)[2].decode().splitlines()]
    assert "error" in lines[-1] and not any(x.get("done") for x in lines)


# ---------------------------------------------------------------------------------
# n8n

@check
def n8n_stream_modes():
    st, hd, out, _, term = raw("POST", "/webhook/chat-1",
                               {"chatInput": "hi n8n [[keepalive_every:1]]"})
    assert st == 200 and term and hd["content-type"].startswith("application/json")
    lines = [json.loads(x) for x in out.decode().splitlines()]
    kinds = [x["type"] for x in lines]
    assert kinds == ["begin", "item", "keepalive", "item", "keepalive", "item", "keepalive",
                     "end"], kinds
    for x in lines:
        if x["type"] != "keepalive":
            assert list(x["metadata"]) == ["nodeId", "nodeName", "timestamp", "runIndex",
                                           "itemIndex"]
    assert "".join(x.get("content", "") for x in lines if x["type"] == "item") == \
        "Echo: hi n8n"
    out = raw("POST", "/webhook/sse-1", {"chatInput": "yo"})[2]
    assert [json.loads(d)["type"] for _, d in sse(out)] == ["begin", "item", "item", "end"]
    st, hd, out = call("POST", "/webhook/x?mode=json", {"chatInput": "yo"})
    assert json.loads(out) == {"output": "Echo: yo"}
    st, hd, out = call("POST", "/webhook/text-1", {"message": "yo"})
    assert hd["content-type"].startswith("text/plain") and out == b"Echo: yo"
    st, _, out = call("POST", "/webhook/missing-1", {})
    assert st == 404 and json.loads(out)["code"] == 404
    lines = [json.loads(x) for x in raw("POST", "/webhook/s", {
        "chatInput": "a b c [[error_after:1]]"})[2].decode().splitlines()]
    assert [x["type"] for x in lines] == ["begin", "item", "error"]


# ---------------------------------------------------------------------------------
# tracking, retries, disconnects, concurrency

@check
def fail_first_counts_attempts():
    got = []
    for _ in range(3):
        body, h = oai("again [[fail_first:2 status:503 key:ff]]", stream=False)
        got.append(call("POST", "/v1/chat/completions", body, h)[0])
    assert got == [503, 503, 200], got
    assert [r["attempt"] for r in records(key="ff")] == [1, 2, 3]
    call("POST", "/_standin/reset")
    body, h = oai("again [[fail_first:2 status:503 key:ff]]", stream=False)
    assert call("POST", "/v1/chat/completions", body, h)[0] == 503


def open_stream(content, frames_wanted):
    body, h = oai(content)
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               "%s\r\nContent-Length: %d\r\n\r\n" % (KEY, len(data))).encode() + data)
    buf = b""
    while buf.count(b"data: ") < frames_wanted:
        buf += s.recv(65536)
    return s


@check
def disconnect_is_seen_at_once():
    s = open_stream("slow [[tokens:100 delay_ms:200 key:dc]]", 3)
    closed = time.time()
    s.close()
    rec = records(key="dc")[0]
    assert rec["disconnected"] and not rec["completed"] and rec["outcome"] == "disconnected"
    assert 2 <= rec["tokens_sent"] < 10, rec["tokens_sent"]
    assert rec["disconnected_at"] - closed < 0.5, rec["disconnected_at"] - closed
    s = open_stream("x y z [[hang_after:2 key:hang]]", 3)
    time.sleep(0.2)
    s.close()
    rec = records(key="hang")[0]
    assert rec["disconnected"] and rec["tokens_sent"] == 2


@check
def protocol_details():
    # Expect: 100-continue, as libcurl sends for large bodies
    body, h = oai("expect", stream=False)
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s"
               "\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
               % (KEY, len(data))).encode())
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(data)
    buf = b""
    while b"Echo: expect" not in buf:
        buf += s.recv(65536)
    s.close()
    # keep-alive: several requests, one connection, stream then non-stream
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    for stream in (True, False, True):
        body, h = oai("ka", stream=stream)
        conn.request("POST", "/v1/chat/completions", json.dumps(body), h)
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200 and (b"[DONE]" in data if stream else b"Echo: ka" in data)
    conn.close()
    # record content
    rec = records()[-1]
    assert rec["headers"]["authorization"] == "Bearer " + KEY
    assert rec["body"]["messages"][0]["content"] == "ka" and rec["stream"] is True


@check
def three_hundred_concurrent_streams():
    n = 300

    async def one(i):
        body, h = oai("c%d [[tokens:20 delay_ms:50 key:conc]]" % i)
        data = json.dumps(body).encode()
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 "%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % (KEY, len(data))).encode() + data)
        out = await r.read()
        w.close()
        return out.count(b"data: ") == 23 and b"data: [DONE]" in out

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(n)))

    t0 = time.time()
    ok = asyncio.run(all_of_them())
    took = time.time() - t0
    assert all(ok), ok.count(False)
    recs = records(key="conc")
    assert len(recs) == n and all(r["completed"] for r in recs)
    events = sorted([(r["started_at"], 1) for r in recs] + [(r["ended_at"], -1)
                                                            for r in recs])
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    assert peak >= 200 and took < 15, (peak, took)


# ---------------------------------------------------------------------------------

def run_frames():
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
            passed += 1
            print("ok   " + fn.__name__)
        except Exception as e:
            failed += 1
            import traceback
            print("FAIL " + fn.__name__ + ": " + "".join(
                traceback.format_exception(type(e), e, e.__traceback__)))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def run_sdk():
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(HERE, "node_modules", "openai")):
        print("skipped: needs node and `npm ci` in tests/standins (openai@6)")
        return 77
    r = subprocess.run([node, os.path.join(HERE, "openai_sdk_check.mjs"),
                        "http://127.0.0.1:%d" % PORT], cwd=HERE, timeout=120)
    return r.returncode


def main():
    global PORT
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("frames", "sdk", "all"), default="all")
    args = ap.parse_args()
    if args.part == "sdk" and (not shutil.which("node") or not os.path.isdir(
            os.path.join(HERE, "node_modules", "openai"))):
        print("skipped: needs node and `npm ci` in tests/standins (openai@6)")
        return 77
    proc, PORT = llm_standin.spawn()
    try:
        rc = 0
        if args.part in ("frames", "all"):
            rc = run_frames()
        if args.part in ("sdk", "all"):
            call("POST", "/_standin/reset")
            sdk = run_sdk()
            rc = rc or (0 if sdk == 77 and args.part == "all" else sdk)
        return rc
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
