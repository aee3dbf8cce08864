#!/usr/bin/python3
"""bench_webhooks.py: the load generator of tools/bench/bench-webhooks (which starts the
stack and the platforms' stand-in, then runs this). Python 3 stdlib only: asyncio over
raw keep-alive HTTP/1.1 connections, webhooks signed as Meta signs them (HMAC-SHA256
of the raw body with the app secret, X-Hub-Signature-256).

Steps, printing `figure <name> <value> <unit>` lines on stdout (progress on stderr).
It starts the channels service itself (--channels), because steps 2 and 3 restart it:
  0. setup: a tenant, an agent on the built-in `offline` provider and a WhatsApp
     connection whose Cloud API is the stand-in; one webhook answered end to end
     (warms every process up); the reference: the same client, connections and count
     on GET /healthz (what this client and the edge's HTTP layer alone do here)
  1. webhooks_acked_*: N signed WhatsApp webhooks (distinct wamids, one contact each)
     over C keep-alive connections, answered 200 "stored":1 (committed to the inbox),
     while the inbox worker answers them (kicked by every stored webhook), as
     deployed; then every one answered once on the stand-in
  2. webhooks_receive_only_acked_*: the same against a receive-only replica
     (CHORUS_CHANNELS_PROCESS=false): the ingest path alone
  3. webhooks_replied_per_s: a processing replica takes that backlog of N: replies
     reaching the stand-in per second (first to last), CPU per reply
  4. webhooks_e2e_*: M webhooks one at a time, then B at once, on the idle stack:
     from the webhook's first byte sent to the reply's send arriving at the stand-in
     (its started_at; the same host clock), matched by recipient
CPU figures are per item and per process (postgres: the run's database backends).
"""

import argparse
import asyncio
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

PHONE_NUMBER_ID = "106540352242922"


def log(message):
    sys.stderr.write("bench-webhooks: %s\n" % message)
    sys.stderr.flush()


def figure(name, value, unit):
    sys.stdout.write("figure %s %s %s\n" % (name, value, unit))
    sys.stdout.flush()


def pct(values, p):
    """Nearest-rank percentile of a list (sorted here); 0 for none."""
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


class Api:
    """Plain blocking JSON calls for the set-up and the stand-in's control routes."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def call(self, method, path, body=None, token=None, expect=(200, 201), raw=False):
        """The JSON answer (exits on a status not in expect); raw: the status only."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, None if body is None else json.dumps(body).encode(),
                     headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if raw:
            return response.status
        if response.status not in expect:
            sys.exit("bench-webhooks: %s %s: %d %s" % (method, path, response.status,
                                                        data[:300]))
        return json.loads(data) if data else None


# ---------------------------------------------------------------------------------
# The client: C connections, each sending the next request once it has its answer


def whatsapp_body(wamid, wa_id, text, phone_number_id):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111",
                          "phone_number_id": phone_number_id},
             "contacts": [{"profile": {"name": "Bench %s" % wa_id[-6:]}, "wa_id": wa_id}],
             "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                           "type": "text", "text": {"body": text}}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "messages",
                                                             "value": value}]}]}).encode()


def signed_request(host, path, secret, body):
    """The raw bytes of one signed webhook POST."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    head = ("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: facebookexternalua\r\n"
            "Content-Type: application/json\r\nX-Hub-Signature-256: sha256=%s\r\n"
            "Content-Length: %d\r\n\r\n" % (path, host, signature, len(body)))
    return head.encode() + body


async def read_response(reader):
    """(status, body) of one HTTP/1.1 response with Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_requests(host, port, requests, connections, check):
    """Sends every request over `connections` keep-alive connections, each taking the
    next unsent one when it has its answer. Returns (seconds, latencies in ms of the
    good ones, errors, send times (time.time()) by index, good by index)."""
    latencies, sent_at, good = [], [0.0] * len(requests), [False] * len(requests)
    state = {"next": 0, "errors": 0, "first_error": None}

    async def worker():
        reader = writer = None
        while state["next"] < len(requests):
            i = state["next"]
            state["next"] += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                sent_at[i] = time.time()
                started = time.perf_counter()
                writer.write(requests[i])
                status, body = await read_response(reader)
                elapsed = (time.perf_counter() - started) * 1000
                if check(status, body):
                    latencies.append(elapsed)
                    good[i] = True
                else:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or (status, body[:200])
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                state["errors"] += 1
                state["first_error"] = state["first_error"] or repr(e)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(connections, len(requests)))))
    seconds = time.perf_counter() - started
    if state["first_error"]:
        log("first error: %r" % (state["first_error"],))
    return seconds, latencies, state["errors"], sent_at, good


def webhook_ok(status, body):
    if status != 200:
        return False
    try:
        return json.loads(body).get("stored") == 1
    except ValueError:
        return False


# ---------------------------------------------------------------------------------
# CPU of the processes under test (utime + stime from /proc, in seconds)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


def postgres_backends(url):
    """Pids of the server processes connected to the run's database."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-d", url, "-c",
                          "SELECT pid FROM pg_stat_activity WHERE datname = '%s' "
                          "AND pid <> pg_backend_pid ()" % name],
                         capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


class Cpu:
    """CPU seconds of each process group between start() and report(). PostgreSQL's
    backends are listed again at the end: one that appeared meanwhile (a restarted
    replica's pool) counts whole."""

    def __init__(self, bench):
        self.bench = bench

    def groups(self):
        groups = dict(self.bench.pids)
        groups["channels"] = [self.bench.channels.pid] if self.bench.channels else []
        if self.bench.args.database:
            groups["postgres"] = postgres_backends(self.bench.args.database)
        groups["client"] = [os.getpid()]
        return groups

    def start(self):
        self.before = {pid: cpu_seconds([pid])
                       for pids in self.groups().values() for pid in pids}
        self.machine = machine_cpu()

    def report(self, prefix, count):
        """figure <prefix>_<process> per item, in microseconds; how busy the machine's
        cores were (<prefix>_machine_busy, whoever used them) and the share of that
        which none of the processes above used (_machine_other: Redis, PostgreSQL's
        own processes, kernel threads, and whatever else runs on the machine)."""
        ours = 0.0
        for name, pids in self.groups().items():
            used = sum(cpu_seconds([pid]) - self.before.get(pid, 0.0) for pid in pids)
            ours += used
            figure("%s_%s" % (prefix, name), "%.0f" % (used / max(count, 1) * 1e6), "us")
        busy, total = [b - a for a, b in zip(self.machine, machine_cpu())]
        total = max(total, 1)
        figure("%s_machine_busy" % prefix, "%.0f" % (100.0 * busy / total), "%")
        other = max(0.0, busy / TICK - ours) / (total / TICK)
        figure("%s_machine_other" % prefix, "%.0f" % (100.0 * other), "%")


def machine_cpu():
    """(busy, total) jiffies of all cores from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


# ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        host, port = args.edge.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.host_header = "%s:%d" % (self.host, self.port)
        s_host, s_port = args.standin.rsplit(":", 1)
        self.edge, self.standin = Api(self.host, self.port), Api(s_host, int(s_port))
        self.run = "%08x" % random.getrandbits(32)
        self.next_contact = random.randrange(10**10, 9 * 10**10)
        self.pids = {}
        for group in filter(None, args.pids.split(";")):
            name, _, pids = group.partition("=")
            self.pids[name] = [int(p) for p in pids.split(",") if p]
        self.channels = None
        self.loop = asyncio.new_event_loop()

    # -- the channels service, restarted between steps
    def start_channels(self, process):
        environment = dict(os.environ)
        environment["CHORUS_CHANNELS_PROCESS"] = "true" if process else "false"
        log_file = open(self.args.channels_log, "ab")
        self.channels = subprocess.Popen([self.args.channels], env=environment,
                                         stdout=log_file, stderr=log_file)
        log_file.close()
        if self.args.channels_pidfile:
            with open(self.args.channels_pidfile, "w") as f:
                f.write("%d\n" % self.channels.pid)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.channels.poll() is not None:
                sys.exit("bench-webhooks: chorus-channels exited (%d); see %s"
                         % (self.channels.returncode, self.args.channels_log))
            status = self.edge.call("GET", "/api/v1/services/channels/ping",
                                    expect=range(100, 600), raw=True)
            if status == 200:
                return
            time.sleep(0.1)
        sys.exit("bench-webhooks: chorus-channels did not come up")

    def stop_channels(self, wait=True):
        if self.channels and self.channels.poll() is None:
            self.channels.send_signal(signal.SIGTERM)
            try:
                self.channels.wait(30)
            except subprocess.TimeoutExpired:
                self.channels.kill()
                self.channels.wait()
        self.channels = None
        if self.args.channels_pidfile and os.path.exists(self.args.channels_pidfile):
            os.unlink(self.args.channels_pidfile)
        if not wait:
            return
        # the broker forgets the replica after its heartbeats stop: wait until no
        # request can reach a stale one
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.edge.call("GET", "/api/v1/services/channels/ping",
                              expect=range(100, 600), raw=True) != 200:
                return
            time.sleep(0.1)

    # -- the tenant, the agent, the connection
    def setup(self):
        run = self.run
        reply = self.edge.call("POST", "/api/v1/auth/register", {
            "email": "bench-%s@webhooks.test" % run,
            "password": "Bench-Passphrase-%s-42!" % run,
            "tenant_name": "bench %s" % run}, expect=(201,))
        token = reply["access_token"]
        agent = self.edge.call("POST", "/api/v1/agents", {
            "name": "Bench agent", "system_prompt": "Answer briefly.",
            "provider": "offline"}, token, expect=(201,))
        # one WhatsApp connection, or K spreading the webhooks (--channel-connections):
        # each connection's webhooks are stored one transaction at a time
        self.targets = []  # (path, app secret, phone_number_id)
        for k in range(self.args.channel_connections):
            secret, phone = "wa-secret-%s-%d" % (run, k), "%d" % (int(PHONE_NUMBER_ID) + k)
            connection = self.edge.call("POST", "/api/v1/channels/connections", {
                "platform": "whatsapp", "agent_id": agent["id"],
                "name": "bench %s %d" % (run, k), "phone_number_id": phone,
                "credentials": {"access_token": "bench-token", "app_secret": secret,
                                "verify_token": "v"}}, token, expect=(201,))
            self.targets.append((urllib.parse.urlsplit(connection["webhook_url"]).path,
                                 secret, phone))
        log("tenant, offline agent and %d WhatsApp connection(s)" % len(self.targets))

    def webhooks(self, count, label):
        """count signed webhooks, each from a contact of its own: (contacts, requests)."""
        contacts, requests = [], []
        for i in range(count):
            self.next_contact += 1
            contact = "%012d" % self.next_contact
            path, secret, phone = self.targets[i % len(self.targets)]
            contacts.append(contact)
            requests.append(signed_request(self.host_header, path, secret, whatsapp_body(
                "wamid.%s-%s" % (self.run, contact), contact, "%s %s" % (label, contact),
                phone)))
        return contacts, requests

    def send(self, requests, connections, check=webhook_ok):
        return self.loop.run_until_complete(run_requests(self.host, self.port, requests,
                                                         connections, check))

    def replies(self, contacts, expected, timeout):
        """Waits until the stand-in has `expected` requests (or timeout), then maps each
        of contacts to the started_at of its replies (WhatsApp sends answered 200)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.standin.call("GET", "/_standin/health")["requests"] >= expected:
                break
            time.sleep(0.25)
        wanted, out = set(contacts), {}
        for r in self.standin.call("GET", "/_standin/requests?kind=send&platform=whatsapp")[
                "requests"]:
            if r["status"] == 200 and r["recipient"] in wanted:
                out.setdefault(r["recipient"], []).append(r["started_at"])
        return out

    def check_answers(self, prefix, contacts, good, replies):
        unanswered = sum(1 for c, ok in zip(contacts, good) if ok and c not in replies)
        twice = sum(1 for v in replies.values() if len(v) > 1)
        figure("%s_unanswered" % prefix, unanswered, "count")
        figure("%s_answered_twice" % prefix, twice, "count")

    # -- the steps
    def warm_up(self):
        self.standin.call("POST", "/_standin/reset", {})
        contacts, requests = self.webhooks(1, "warm up")
        if self.send(requests, 1)[2]:
            sys.exit("bench-webhooks: the first webhook was not stored")
        if not self.replies(contacts, 1, 60):
            sys.exit("bench-webhooks: the first webhook was never answered on the stand-in")

    def healthz(self):
        get = ("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n" % self.host_header).encode()
        count = max(self.args.n, 5000)
        seconds, _, errors, _, _ = self.send([get] * count, self.args.connections,
                                             lambda status, body: status == 200)
        log("healthz: %d in %.2f s, %d errors" % (count, seconds, errors))
        self.healthz_rps = count / seconds
        figure("webhooks_healthz_rps", "%.0f" % self.healthz_rps, "req/s")

    def acks(self, prefix, label):
        """N webhooks over C connections: the ack figures under prefix."""
        contacts, requests = self.webhooks(self.args.n, label)
        self.standin.call("POST", "/_standin/reset", {})
        cpu = Cpu(self)
        cpu.start()
        seconds, latencies, errors, sent_at, good = self.send(requests,
                                                              self.args.connections)
        rate = len(latencies) / seconds
        log("%s: %d in %.2f s, %d errors" % (label, self.args.n, seconds, errors))
        figure("%s_per_s" % prefix, "%.0f" % rate, "req/s")
        figure("%s_p50" % prefix, "%.1f" % pct(latencies, 0.50), "ms")
        figure("%s_p99" % prefix, "%.1f" % pct(latencies, 0.99), "ms")
        figure("%s_errors" % prefix, errors, "count")
        figure("%s_vs_healthz" % prefix, "%.3f" % (rate / self.healthz_rps), "x")
        cpu.report("%s_cpu" % prefix, len(latencies))
        return contacts, sent_at, good

    def e2e(self):
        self.standin.call("POST", "/_standin/reset", {})
        times = []
        for i in range(self.args.sequential):
            contacts, requests = self.webhooks(1, "e2e")
            _, _, errors, sent, _ = self.send(requests, 1)
            got = self.standin.call("GET", "/_standin/requests?kind=send&platform=whatsapp"
                                    "&wait=30&count=%d" % (i + 1))["requests"]
            at = [r["started_at"] for r in got if r["recipient"] == contacts[0]]
            if errors or not at:
                log("e2e: message %d not answered within 30 s" % i)
                continue
            times.append((min(at) - sent[0]) * 1000)
            time.sleep(0.05)
        figure("webhooks_e2e_p50", "%.1f" % pct(times, 0.50), "ms")
        figure("webhooks_e2e_p99", "%.1f" % pct(times, 0.99), "ms")
        figure("webhooks_e2e_lost", self.args.sequential - len(times), "count")
        if not self.args.burst:
            return
        self.standin.call("POST", "/_standin/reset", {})
        contacts, requests = self.webhooks(self.args.burst, "burst")
        _, _, errors, sent, good = self.send(requests, self.args.burst)
        replies = self.replies(contacts, self.args.burst, 120)
        times = [(min(replies[c]) - t) * 1000 for c, t in zip(contacts, sent)
                 if c in replies]
        b = self.args.burst
        figure("webhooks_e2e_burst%d_p50" % b, "%.1f" % pct(times, 0.50), "ms")
        figure("webhooks_e2e_burst%d_p99" % b, "%.1f" % pct(times, 0.99), "ms")
        figure("webhooks_e2e_burst%d_lost" % b, b - len(times), "count")

    def main(self):
        self.start_channels(process=True)
        self.setup()
        self.warm_up()
        self.healthz()

        # 1. acks while the worker answers them (the default deployment)
        contacts, _, good = self.acks("webhooks_acked", "acks")
        replies = self.replies(contacts, sum(good), self.args.drain_timeout)
        self.check_answers("webhooks", contacts, good, replies)

        # 2. the same with a receive-only replica: the ingest path alone
        self.stop_channels()
        self.start_channels(process=False)
        contacts, _, good = self.acks("webhooks_receive_only_acked", "receive-only acks")

        # 3. a processing replica takes that backlog: replies per second
        self.stop_channels()
        cpu = Cpu(self)
        cpu.start()
        self.start_channels(process=True)
        replies = self.replies(contacts, sum(good), self.args.drain_timeout)
        firsts = sorted(min(v) for v in replies.values())
        if len(firsts) > 1:
            rate = (len(firsts) - 1) / max(firsts[-1] - firsts[0], 1e-6)
            log("backlog of %d answered in %.2f s" % (len(firsts), firsts[-1] - firsts[0]))
            figure("webhooks_replied_per_s", "%.0f" % rate, "msg/s")
        cpu.report("webhooks_cpu_per_reply", len(firsts))
        self.check_answers("webhooks_backlog", contacts, good, replies)

        # 4. end to end on the idle stack
        self.e2e()
        self.stop_channels()
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edge", required=True, help="host:port of the edge")
    parser.add_argument("--standin", required=True, help="host:port of the stand-in")
    parser.add_argument("--channels", required=True, help="the chorus-channels program")
    parser.add_argument("--channels-log", default="/dev/null")
    parser.add_argument("--channels-pidfile", default="",
                        help="where the running channels replica's pid is written")
    parser.add_argument("--n", type=int, default=5000, help="webhooks in an ack run")
    parser.add_argument("--connections", type=int, default=64,
                        help="keep-alive HTTP connections to the edge")
    parser.add_argument("--channel-connections", type=int, default=1,
                        help="WhatsApp connections (tenant's channels) the webhooks of "
                        "the ack runs are spread over, round robin")
    parser.add_argument("--sequential", type=int, default=50,
                        help="webhooks sent one at a time for the e2e figures")
    parser.add_argument("--burst", type=int, default=50,
                        help="webhooks sent at once for the e2e burst figures")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--pids", default="",
                        help="name=pid,pid;name=pid... other processes whose CPU is "
                        "measured")
    parser.add_argument("--database", default="",
                        help="libpq URL of the run's database (its backends' CPU)")
    bench = Bench(parser.parse_args())
    try:
        return bench.main()
    finally:
        bench.stop_channels(wait=False)
        bench.loop.close()


if __name__ == "__main__":
    sys.exit(main())
