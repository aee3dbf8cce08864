/*  http_test_server: runs an embedded Python HTTP/1.1 server as a child process
    for the selftests of http_client and of later users (LLM provider streams).   */
#include "http_test_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core_log.h"

struct _http_test_server_t {
    pid_t pid;      //  python child
    int stdin_fd;   //  child's stdin: commands; closing it ends the child
    FILE *replies;  //  child's stdout: one line per command
    int port;       //  port it listens on
    char url[64];   //  base URL
};

static const char s_script[] =
    "import json, os, socket, sys, threading, time\n"
    "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
    "lock = threading.Lock()\n"
    "conns = [0]\n"
    "closed = set()\n"
    "release = threading.Event()\n"
    "scripts = {}\n"
    "requests = {}\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *args): pass\n"
    "    def setup(self):\n"
    "        super().setup()\n"
    "        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "        with lock:\n"
    "            conns[0] += 1\n"
    "            self.conn_id = conns[0]\n"
    "    def reply(self, status, body=b'', headers=()):\n"
    "        self.send_response(status)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.send_header('X-Conn-Id', str(self.conn_id))\n"
    "        for k, v in headers: self.send_header(k, v)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "        self.wfile.flush()\n"
    "    def start_chunked(self, ctype='text/event-stream'):\n"
    "        self.send_response(200)\n"
    "        self.send_header('Transfer-Encoding', 'chunked')\n"
    "        self.send_header('Content-Type', ctype)\n"
    "        self.send_header('X-Conn-Id', str(self.conn_id))\n"
    "        self.end_headers()\n"
    "        self.wfile.flush()\n"
    "    def chunk(self, data):\n"
    "        self.wfile.write(b'%x\\r\\n%s\\r\\n' % (len(data), data))\n"
    "        self.wfile.flush()\n"
    "    def do_GET(self): self.route()\n"
    "    def do_POST(self): self.route()\n"
    "    def do_PUT(self): self.route()\n"
    "    def do_DELETE(self): self.route()\n"
    "    def route(self):\n"
    "        path, _, query = self.path.partition('?')\n"
    "        q = dict(p.split('=', 1) for p in query.split('&') if '=' in p)\n"
    "        length = int(self.headers.get('Content-Length') or 0)\n"
    "        body = self.rfile.read(length) if length else b''\n"
    "        try:\n"
    "            self.serve(path, q, body)\n"
    "        except OSError:\n"
    "            self.close_connection = True\n"
    "    def serve(self, path, q, body):\n"
    "        with lock: plan = scripts.get(path)\n"
    "        if plan is not None:\n"
    "            self.scripted(path, plan, body)\n"
    "        elif path == '/hello':\n"
    "            self.reply(200, b'hello world', [('X-Test', 'yes'), ('Content-Type', "
    "'text/plain')])\n"
    "        elif path == '/echo':\n"
    "            self.reply(200, body, [('X-Method', self.command),\n"
    "                ('X-Echo', self.headers.get('X-Custom', '')),\n"
    "                ('X-Content-Type', self.headers.get('Content-Type', ''))])\n"
    "        elif path == '/gated':\n"
    "            self.start_chunked()\n"
    "            self.chunk(b'data: first\\n\\n')\n"
    "            ok = release.wait(5)\n"
    "            self.chunk(b'data: last\\n\\n' if ok else b'data: timeout\\n\\n')\n"
    "            self.chunk(b'')\n"
    "        elif path == '/release':\n"
    "            release.set()\n"
    "            self.reply(200, b'released')\n"
    "        elif path == '/forever':\n"
    "            self.start_chunked()\n"
    "            try:\n"
    "                while True:\n"
    "                    self.chunk(b'data: tick\\n\\n')\n"
    "                    time.sleep(0.02)\n"
    "            except OSError:\n"
    "                with lock: closed.add(q.get('id', ''))\n"
    "                self.close_connection = True\n"
    "        elif path == '/closed':\n"
    "            with lock: seen = q.get('id', '') in closed\n"
    "            self.reply(200, b'yes' if seen else b'no')\n"
    "        elif path == '/stall':\n"
    "            self.start_chunked()\n"
    "            self.chunk(b'data: one\\n\\n')\n"
    "            time.sleep(3)\n"
    "            self.close_connection = True\n"
    "        elif path == '/slow':\n"
    "            time.sleep(3)\n"
    "            self.reply(200, b'late')\n"
    "        elif path == '/big':\n"
    "            self.reply(200, b'x' * int(q.get('n', '100000')))\n"
    "        elif path == '/bigchunked':\n"
    "            self.start_chunked('text/plain')\n"
    "            n = int(q.get('n', '100000'))\n"
    "            for i in range(0, n, 1000): self.chunk(b'x' * min(1000, n - i))\n"
    "            self.chunk(b'')\n"
    "        elif path == '/ratelimit':\n"
    "            self.reply(429, b'{\"error\":\"slow down\"}',\n"
    "                [('Retry-After', '7'), ('Content-Type', 'application/json')])\n"
    "        elif path == '/stream':\n"
    "            self.start_chunked('text/plain')\n"
    "            for i in range(int(q.get('n', '3'))):\n"
    "                if i: time.sleep(int(q.get('ms', '50')) / 1000.0)\n"
    "                self.chunk(b'chunk %d\\n' % i)\n"
    "            self.chunk(b'')\n"
    "        else:\n"
    "            self.reply(404, b'not found')\n"
    "    def scripted(self, path, plan, body):\n"
    "        rec = {'method': self.command, 'path': self.path, 'closed': False,\n"
    "               'headers': {k.lower(): v for k, v in self.headers.items()},\n"
    "               'body': body.decode('utf-8', 'replace')}\n"
    "        with lock:\n"
    "            seen = requests.setdefault(path, [])\n"
    "            seen.append(rec)\n"
    "            r = plan[min(len(seen), len(plan)) - 1]\n"
    "        chunks = [c.encode('utf-8') for c in r.get('chunks', [])]\n"
    "        split = int(r.get('split', 0))\n"
    "        if split > 0:\n"
    "            chunks = [c[i:i + split] for c in chunks for i in range(0, len(c), "
    "split)]\n"
    "        delay = int(r.get('delay_ms', 0)) / 1000.0\n"
    "        self.send_response(int(r.get('status', 200)))\n"
    "        self.send_header('X-Conn-Id', str(self.conn_id))\n"
    "        for k, v in r.get('headers', []): self.send_header(k, v)\n"
    "        if not r.get('chunked', True):\n"
    "            data = b''.join(chunks)\n"
    "            self.send_header('Content-Length', str(len(data)))\n"
    "            self.end_headers()\n"
    "            self.wfile.write(data)\n"
    "            self.wfile.flush()\n"
    "            return\n"
    "        self.send_header('Transfer-Encoding', 'chunked')\n"
    "        self.end_headers()\n"
    "        self.wfile.flush()\n"
    "        try:\n"
    "            for i, c in enumerate(chunks):\n"
    "                if i and delay: time.sleep(delay)\n"
    "                if c: self.chunk(c)\n"
    "            if 'forever' in r:\n"
    "                tick = r['forever'].encode('utf-8')\n"
    "                while True:\n"
    "                    time.sleep(delay or 0.02)\n"
    "                    self.chunk(tick)\n"
    "            if r.get('hold_ms'): time.sleep(int(r['hold_ms']) / 1000.0)\n"
    "            if r.get('cut'):\n"
    "                self.close_connection = True\n"
    "                return\n"
    "            self.chunk(b'')\n"
    "        except OSError:\n"
    "            with lock: rec['closed'] = True\n"
    "            self.close_connection = True\n"
    "class S(ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    request_queue_size = 512\n"
    "    def handle_error(self, request, client_address): pass\n"
    "def watch():\n"
    "    for line in sys.stdin:\n"
    "        cmd = json.loads(line)\n"
    "        with lock:\n"
    "            if cmd['cmd'] == 'script':\n"
    "                scripts[cmd['path']] = cmd['responses']\n"
    "                requests.pop(cmd['path'], None)\n"
    "                reply = 'ok'\n"
    "            else:\n"
    "                reply = json.dumps(requests.get(cmd['path'], []))\n"
    "        sys.stdout.write(reply + '\\n')\n"
    "        sys.stdout.flush()\n"
    "    os._exit(0)\n"
    "threading.Thread(target=watch, daemon=True).start()\n"
    "server = S(('127.0.0.1', 0), H)\n"
    "print(server.server_address[1], flush=True)\n"
    "server.serve_forever()\n";

http_test_server_t *
http_test_server_new (void)
{
    char path[] = "/tmp/chorus_http_test_XXXXXX";
    int fd = mkstemp (path);
    if (fd == -1)
        return NULL;
    size_t size = sizeof s_script - 1;
    bool written = write (fd, s_script, size) == (ssize_t) size;
    close (fd);
    int to_child[2], from_child[2];
    if (!written || pipe (to_child) || pipe (from_child)) {
        unlink (path);
        return NULL;
    }
    pid_t pid = fork ();
    assert (pid != -1);
    if (pid == 0) {
        dup2 (to_child[0], STDIN_FILENO);
        dup2 (from_child[1], STDOUT_FILENO);
        close (to_child[0]);
        close (to_child[1]);
        close (from_child[0]);
        close (from_child[1]);
        execl ("/usr/bin/python3", "python3", path, (char *) NULL);
        _exit (127);
    }
    close (to_child[0]);
    close (from_child[1]);
    char line[32] = "";
    size_t used = 0;
    while (used < sizeof line - 1) {
        ssize_t n = read (from_child[0], line + used, 1);
        if (n <= 0 || line[used] == '\n')
            break;
        used++;
    }
    line[used] = 0;
    unlink (path);
    long port = strtol (line, NULL, 10);
    if (port <= 0 || port > 65535) {
        close (from_child[0]);
        close (to_child[1]);
        kill (pid, SIGTERM);
        waitpid (pid, NULL, 0);
        return NULL;
    }
    http_test_server_t *self = calloc (1, sizeof (http_test_server_t));
    assert (self);
    self->pid = pid;
    self->stdin_fd = to_child[1];
    self->replies = fdopen (from_child[0], "r");
    assert (self->replies);
    self->port = (int) port;
    snprintf (self->url, sizeof self->url, "http://127.0.0.1:%d", self->port);
    return self;
}

void
http_test_server_destroy (http_test_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_test_server_t *self = *self_p;
    close (self->stdin_fd);
    fclose (self->replies);
    kill (self->pid, SIGTERM);
    waitpid (self->pid, NULL, 0);
    free (self);
    *self_p = NULL;
}

//  Send one command line to the server and return its one-line answer, without
//  the newline; NULL when the server is gone. The caller frees it.
static char *
s_command (http_test_server_t *self, const char *cmd, const char *path,
           const char *responses)
{
    char escaped[1024];
    core_json_escape (escaped, sizeof escaped, path);
    size_t size = strlen (escaped) + (responses ? strlen (responses) : 0) + 64;
    char *line = malloc (size);
    assert (line);
    int len = snprintf (line, size, "{\"cmd\":\"%s\",\"path\":\"%s\",\"responses\":%s}\n",
                        cmd, escaped, responses ? responses : "null");
    assert (len > 0 && (size_t) len < size);
    size_t done = 0;
    while (done < (size_t) len) {
        ssize_t n = write (self->stdin_fd, line + done, (size_t) len - done);
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    free (line);
    if (done < (size_t) len)
        return NULL;
    char *reply = NULL;
    size_t capacity = 0;
    ssize_t got = getline (&reply, &capacity, self->replies);
    if (got <= 0) {
        free (reply);
        return NULL;
    }
    if (reply[got - 1] == '\n')
        reply[got - 1] = 0;
    return reply;
}

int
http_test_server_script (http_test_server_t *self, const char *path,
                         const char *responses)
{
    assert (self);
    assert (path && responses);
    char *reply = s_command (self, "script", path, responses);
    int rc = reply && strcmp (reply, "ok") == 0 ? 0 : -1;
    free (reply);
    return rc;
}

char *
http_test_server_requests (http_test_server_t *self, const char *path)
{
    assert (self);
    assert (path);
    return s_command (self, "requests", path, NULL);
}

int
http_test_server_port (http_test_server_t *self)
{
    assert (self);
    return self->port;
}

const char *
http_test_server_url (http_test_server_t *self)
{
    assert (self);
    return self->url;
}

void
http_test_server_test (bool verbose)
{
    printf (" * http_test_server: ");
    http_test_server_t *server = http_test_server_new ();
    assert (server);
    assert (http_test_server_port (server) > 0);
    assert (strncmp (http_test_server_url (server), "http://127.0.0.1:", 17) == 0);

    //  A scripted path answers its responses in turn and records the requests
    int rc = http_test_server_script (
        server, "/canned",
        "[{\"status\": 429, \"headers\": [[\"Retry-After\", \"1\"]], \"chunked\": false},"
        " {\"headers\": [[\"Content-Type\", \"text/plain\"]], \"chunks\": [\"a\", "
        "\"b\"]}]");
    assert (rc == 0);
    char *requests = http_test_server_requests (server, "/canned");
    assert (requests && strcmp (requests, "[]") == 0);
    free (requests);
    const char *expect[] = {"HTTP/1.1 429", "HTTP/1.1 200", "HTTP/1.1 200"};
    for (int i = 0; i < 3; i++) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        assert (fd >= 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        addr.sin_port = htons ((uint16_t) http_test_server_port (server));
        rc = connect (fd, (struct sockaddr *) &addr, sizeof addr);
        assert (rc == 0);
        const char *req = "POST /canned?x=1 HTTP/1.1\r\nHost: t\r\nX-Key: k\r\n"
                          "Content-Length: 4\r\n\r\nbody";
        ssize_t sent = write (fd, req, strlen (req));
        assert (sent == (ssize_t) strlen (req));
        char answer[13] = "";
        size_t got = 0;
        while (got < 12) {
            ssize_t n = read (fd, answer + got, 12 - got);
            assert (n > 0);
            got += (size_t) n;
        }
        assert (strncmp (answer, expect[i], 12) == 0);
        close (fd);
    }
    requests = http_test_server_requests (server, "/canned");
    assert (requests);
    if (verbose)
        printf ("\n  %s\n", requests);
    assert (strstr (requests, "\"method\": \"POST\""));
    assert (strstr (requests, "\"path\": \"/canned?x=1\""));
    assert (strstr (requests, "\"x-key\": \"k\""));
    assert (strstr (requests, "\"body\": \"body\""));
    free (requests);
    http_test_server_destroy (&server);
    http_test_server_destroy (&server);
    printf ("OK\n");
}
