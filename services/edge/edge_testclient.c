/*  edge_testclient: blocking HTTP/1.1 and WebSocket test client.                 */
#include "edge_testclient.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "auth_keys.h"

struct _edge_testclient_t {
    int fd;       //  the socket
    char *buf;    //  bytes received and not consumed
    size_t size;  //  how many
    bool eof;     //  the server closed
};

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

edge_testclient_t *
edge_testclient_new (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons ((uint16_t) port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0) {
        close (fd);
        return NULL;
    }
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    edge_testclient_t *self = calloc (1, sizeof *self);
    assert (self);
    self->fd = fd;
    return self;
}

void
edge_testclient_destroy (edge_testclient_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    close ((*self_p)->fd);
    free ((*self_p)->buf);
    free (*self_p);
    *self_p = NULL;
}

int
edge_testclient_fd (edge_testclient_t *self)
{
    return self->fd;
}

int
edge_testclient_send (edge_testclient_t *self, const void *data, size_t size)
{
    const char *p = (const char *) data;
    while (size) {
        ssize_t n = send (self->fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

int
edge_testclient_request (edge_testclient_t *self, const char *method, const char *path,
                         const char *headers, const char *body)
{
    char *text = NULL;
    int size = body ? asprintf (&text,
                                "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                                "Content-Length: %zu\r\n\r\n%s",
                                method, path, headers ? headers : "", strlen (body), body)
                    : asprintf (&text, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                                method, path, headers ? headers : "");
    assert (size > 0);
    int rc = edge_testclient_send (self, text, (size_t) size);
    free (text);
    return rc;
}

int
edge_testclient_request_bytes (edge_testclient_t *self, const char *method,
                               const char *path, const char *headers, const void *body,
                               size_t size)
{
    char *text = NULL;
    int head = asprintf (&text,
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n"
                         "\r\n",
                         method, path, headers ? headers : "", size);
    assert (head > 0);
    int rc = edge_testclient_send (self, text, (size_t) head);
    free (text);
    if (rc == 0 && size)
        rc = edge_testclient_send (self, body, size);
    return rc;
}

int
edge_testclient_call_bytes (int port, const char *method, const char *path,
                            const char *headers, const void *body, size_t size,
                            edge_response_t *response)
{
    edge_testclient_t *client = edge_testclient_new (port);
    assert (client);
    //  A refused body may close the connection before all of it is sent
    (void) edge_testclient_request_bytes (client, method, path, headers, body, size);
    int status = edge_testclient_response (client, response, 5000);
    edge_testclient_destroy (&client);
    return status;
}

//  Read more bytes into the buffer, waiting until deadline; -1 on timeout/EOF.
static int
s_fill (edge_testclient_t *self, int64_t deadline)
{
    if (self->eof)
        return -1;
    int64_t left = deadline - s_now_ms ();
    if (left < 0)
        left = 0;
    struct pollfd pfd = {.fd = self->fd, .events = POLLIN};
    if (poll (&pfd, 1, (int) left) <= 0)
        return -1;
    char chunk[65536];
    ssize_t n = recv (self->fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
        self->eof = true;
        return -1;
    }
    self->buf = realloc (self->buf, self->size + (size_t) n + 1);
    assert (self->buf);
    memcpy (self->buf + self->size, chunk, (size_t) n);
    self->size += (size_t) n;
    self->buf[self->size] = 0;
    return 0;
}

//  Remove the first n bytes of the buffer.
static void
s_consume (edge_testclient_t *self, size_t n)
{
    memmove (self->buf, self->buf + n, self->size - n);
    self->size -= n;
    self->buf[self->size] = 0;
}

//  Read the status line and headers into response until deadline; returns the
//  status or -1.
static int
s_response_head (edge_testclient_t *self, edge_response_t *response, int64_t deadline)
{
    memset (response, 0, sizeof *response);
    response->status = -1;
    char *end = NULL;
    while (!(self->buf && (end = strstr (self->buf, "\r\n\r\n"))))
        if (s_fill (self, deadline))
            return -1;
    size_t header_size = (size_t) (end - self->buf) + 4;
    response->headers = strndup (self->buf, header_size);
    bool in_name = false;  //  lowercase header names only
    for (char *p = response->headers; *p; p++) {
        if (*p == '\n')
            in_name = true;
        else if (*p == ':')
            in_name = false;
        if (in_name)
            *p = (char) tolower ((unsigned char) *p);
    }
    s_consume (self, header_size);
    if (sscanf (response->headers, "HTTP/1.%*d %d", &response->status) != 1)
        return -1;
    return response->status;
}

int
edge_testclient_response_headers (edge_testclient_t *self, edge_response_t *response,
                                  int timeout_ms)
{
    int status = s_response_head (self, response, s_now_ms () + timeout_ms);
    if (status > 0) {
        response->body = calloc (1, 1);
        assert (response->body);
    }
    return status;
}

int
edge_testclient_response (edge_testclient_t *self, edge_response_t *response,
                          int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    if (s_response_head (self, response, deadline) < 0)
        return -1;
    char value[32];
    const char *length = edge_response_header (response, "content-length", value,
                                               sizeof value);
    if (response->status == 204 || response->status == 304)
        length = "0";  //  never a body (RFC 9110)
    if (length) {
        size_t want = strtoul (length, NULL, 10);
        while (self->size < want)
            if (s_fill (self, deadline))
                return -1;
        response->body = malloc (want + 1);
        assert (response->body);
        if (want)
            memcpy (response->body, self->buf, want);
        response->body[want] = 0;
        response->body_size = want;
        s_consume (self, want);
    }
    else
        response->body = edge_testclient_read_all (self, &response->body_size,
                                                   (int) (deadline - s_now_ms ()));
    return response->status;
}

int
edge_testclient_call (int port, const char *method, const char *path, const char *headers,
                      const char *body, edge_response_t *response)
{
    edge_testclient_t *client = edge_testclient_new (port);
    assert (client);
    int rc = edge_testclient_request (client, method, path, headers, body);
    assert (rc == 0);
    int status = edge_testclient_response (client, response, 5000);
    edge_testclient_destroy (&client);
    return status;
}

int
edge_testclient_get (int port, const char *path, const char *headers,
                     edge_response_t *response)
{
    return edge_testclient_call (port, "GET", path, headers, NULL, response);
}

bool
edge_response_error_is (edge_response_t *response, const char *code)
{
    json_t *body = json_loads (response->body ? response->body : "", 0, NULL);
    const char *got = json_string_value (
        json_object_get (json_object_get (body, "error"), "code"));
    bool same = got && strcmp (got, code) == 0;
    json_decref (body);
    return same;
}

char *
edge_testclient_token (const char *secret, const char *user, auth_role_t role)
{
    auth_jwt_t *jwt = auth_jwt_new ("chorus", "chorus-api");
    char kid[AUTH_KEYS_KID_LEN + 1];
    int rc = auth_keys_kid (secret, kid, sizeof kid);
    assert (rc == 0);
    rc = auth_jwt_add_key (jwt, kid, secret, strlen (secret));
    assert (rc == 0);
    auth_jwt_claims_t claims = {.tid = "tenant-1", .role = role, .sid = "session-1"};
    snprintf (claims.sub, sizeof claims.sub, "%s", user);
    char *token = auth_jwt_issue (jwt, &claims, (int64_t) time (NULL), NULL, 0);
    assert (token);
    auth_jwt_destroy (&jwt);
    return token;
}

void
edge_response_free (edge_response_t *response)
{
    free (response->headers);
    free (response->body);
    memset (response, 0, sizeof *response);
}

const char *
edge_response_header (edge_response_t *response, const char *name, char *buf, size_t size)
{
    if (!response->headers)
        return NULL;
    char key[128];
    snprintf (key, sizeof key, "\r\n%s:", name);
    const char *p = strstr (response->headers, key);
    if (!p)
        return NULL;
    p += strlen (key);
    while (*p == ' ')
        p++;
    size_t n = strcspn (p, "\r");
    if (n >= size)
        n = size - 1;
    memcpy (buf, p, n);
    buf[n] = 0;
    return buf;
}

char *
edge_testclient_read_all (edge_testclient_t *self, size_t *size, int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    while (s_fill (self, deadline) == 0)
        ;
    char *out = malloc (self->size + 1);
    assert (out);
    if (self->size)
        memcpy (out, self->buf, self->size);
    out[self->size] = 0;
    *size = self->size;
    self->size = 0;
    return out;
}

bool
edge_testclient_closed (edge_testclient_t *self, int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    while (!self->eof && s_now_ms () < deadline) {
        if (s_fill (self, deadline) == 0)
            s_consume (self, self->size);
    }
    return self->eof;
}

int
edge_testclient_ws_open (edge_testclient_t *self, const char *path)
{
    return edge_testclient_ws_open_with (self, path, NULL);
}

int
edge_testclient_ws_open_with (edge_testclient_t *self, const char *path,
                              const char *headers)
{
    char *request = NULL;
    if (asprintf (&request,
                  "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n%s\r\n",
                  path, headers ? headers : "")
        < 0)
        return -1;
    int rc = edge_testclient_send (self, request, strlen (request));
    free (request);
    if (rc)
        return -1;
    int64_t deadline = s_now_ms () + 2000;
    char *end = NULL;
    while (!(self->buf && (end = strstr (self->buf, "\r\n\r\n"))))
        if (s_fill (self, deadline))
            return -1;
    int status = -1;
    if (sscanf (self->buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    s_consume (self, (size_t) (end - self->buf) + 4);
    return status;
}

int
edge_testclient_ws_send (edge_testclient_t *self, const char *text, size_t size)
{
    unsigned char header[14];
    size_t h = 0;
    header[h++] = 0x81;  //  FIN, text
    if (size < 126)
        header[h++] = (unsigned char) (0x80 | size);
    else if (size < 65536) {
        header[h++] = 0x80 | 126;
        header[h++] = (unsigned char) (size >> 8);
        header[h++] = (unsigned char) size;
    }
    else {
        header[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            header[h++] = (unsigned char) ((uint64_t) size >> (8 * i));
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy (header + h, mask, 4);
    h += 4;
    unsigned char *frame = malloc (h + size);
    assert (frame);
    memcpy (frame, header, h);
    for (size_t i = 0; i < size; i++)
        frame[h + i] = (unsigned char) text[i] ^ mask[i % 4];
    int rc = edge_testclient_send (self, frame, h + size);
    free (frame);
    return rc;
}

char *
edge_testclient_ws_recv (edge_testclient_t *self, int *opcode, size_t *size,
                         int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    while (self->size < 2)
        if (s_fill (self, deadline))
            return NULL;
    const unsigned char *b = (const unsigned char *) self->buf;
    size_t length = b[1] & 0x7f, h = 2;
    if (length == 126) {
        while (self->size < 4)
            if (s_fill (self, deadline))
                return NULL;
        b = (const unsigned char *) self->buf;
        length = ((size_t) b[2] << 8) | b[3];
        h = 4;
    }
    else if (length == 127) {
        while (self->size < 10)
            if (s_fill (self, deadline))
                return NULL;
        b = (const unsigned char *) self->buf;
        length = 0;
        for (int i = 0; i < 8; i++)
            length = (length << 8) | b[2 + i];
        h = 10;
    }
    while (self->size < h + length)
        if (s_fill (self, deadline))
            return NULL;
    b = (const unsigned char *) self->buf;
    if (opcode)
        *opcode = b[0] & 0x0f;
    char *payload = malloc (length + 1);
    assert (payload);
    memcpy (payload, self->buf + h, length);
    payload[length] = 0;
    if (size)
        *size = length;
    s_consume (self, h + length);
    return payload;
}
