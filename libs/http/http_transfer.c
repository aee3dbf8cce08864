/*  http_transfer: one outbound request in flight for http_client: its curl easy
    handle, set up from the request, and curl's header and write callbacks, which
    collect headers, call on_response once the final headers are in, and buffer
    or stream the body within its limits.                                         */
#include "http_private.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
http_transfer_destroy (http_transfer_t **self_p)
{
    http_transfer_t *self = *self_p;
    if (!self)
        return;
    if (self->easy)
        curl_easy_cleanup (self->easy);
    http_request_destroy (&self->request);
    http_response_clear_headers (&self->response);
    free (self->response.headers);
    free (self->response.body);
    free (self->response.error_text);
    free (self->log_url);
    free (self);
    *self_p = NULL;
}

//  A new final response begins (status line): forget headers of earlier ones.
//  Then, at its blank line, decide whether these are the final headers.
static int
s_headers_complete (http_transfer_t *t)
{
    long status = 0;
    curl_easy_getinfo (t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200)
        return 0;  //  1xx interim response, or a proxy's CONNECT answer
    if (t->request->follow && status >= 300 && status < 400
        && http_response_header (&t->response, "location"))
        return 0;  //  curl follows this redirect
    t->headers_done = true;
    t->response.status = status;
    if (t->request->on_response) {
        int rc = t->request->on_response (&t->response, t->request->arg);
        if (t->cancelled)
            return -1;
        if (rc) {
            t->aborted = true;
            return -1;
        }
    }
    return 0;
}

static char *
s_strndup_trim (const char *s, size_t size)
{
    while (size && (*s == ' ' || *s == '\t')) {
        s++;
        size--;
    }
    while (size && (s[size - 1] == ' ' || s[size - 1] == '\t'))
        size--;
    char *copy = strndup (s, size);
    assert (copy);
    return copy;
}

static size_t
s_on_header (char *buffer, size_t size, size_t nitems, void *userdata)
{
    http_transfer_t *t = (http_transfer_t *) userdata;
    size_t n = size * nitems;
    if (t->cancelled)
        return 0;
    t->last_activity = t->clock ? *t->clock : zclock_mono ();
    http_response_t *r = &t->response;
    if (n >= 5 && memcmp (buffer, "HTTP/", 5) == 0) {
        http_response_clear_headers (r);
        t->headers_done = false;
        return n;
    }
    if (t->headers_done)
        return n;  //  trailers of a chunked body: ignored
    size_t len = n;
    while (len && (buffer[len - 1] == '\n' || buffer[len - 1] == '\r'))
        len--;
    if (len == 0)
        return s_headers_complete (t) ? 0 : n;

    if (r->header_bytes + len > S_MAX_HEADER_BYTES) {
        t->too_large = true;
        return 0;
    }
    if ((buffer[0] == ' ' || buffer[0] == '\t') && r->header_count) {
        //  obsolete line folding: continues the previous value
        s_header_t *last = &r->headers[r->header_count - 1];
        char *more = s_strndup_trim (buffer, len);
        size_t joined_size = strlen (last->value) + strlen (more) + 2;
        char *joined = malloc (joined_size);
        assert (joined);
        snprintf (joined, joined_size, "%s %s", last->value, more);
        free (last->value);
        free (more);
        last->value = joined;
        r->header_bytes += len;
        return n;
    }
    const char *colon = memchr (buffer, ':', len);
    if (!colon || colon == buffer)
        return n;  //  not a header line: ignored
    if (r->header_count == S_MAX_HEADERS) {
        t->too_large = true;
        return 0;
    }
    if (r->header_count == r->header_room) {
        //  Grown as they come: most answers have a dozen, and a stream's answer
        //  keeps its headers for as long as it flows
        size_t room = r->header_room ? r->header_room * 2 : 16;
        room = room < S_MAX_HEADERS ? room : S_MAX_HEADERS;
        s_header_t *grown = realloc (r->headers, room * sizeof (s_header_t));
        assert (grown);
        r->headers = grown;
        r->header_room = room;
    }
    s_header_t *header = &r->headers[r->header_count++];
    header->name = s_strndup_trim (buffer, (size_t) (colon - buffer));
    header->value = s_strndup_trim (colon + 1, len - (size_t) (colon - buffer) - 1);
    r->header_bytes += len;
    return n;
}

static size_t
s_on_write (char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_transfer_t *t = (http_transfer_t *) userdata;
    http_request_t *request = t->request;
    http_response_t *r = &t->response;
    size_t n = size * nmemb;
    if (t->cancelled)
        return 0;
    t->last_activity = t->clock ? *t->clock : zclock_mono ();
    if (!t->headers_done && s_headers_complete (t))
        return 0;
    if (request->max_body
        && (n > request->max_body || r->received > request->max_body - n)) {
        t->too_large = true;
        return 0;
    }
    r->received += n;
    if (request->on_data) {
        int rc = request->on_data (r, ptr, n, request->arg);
        if (t->cancelled)
            return 0;
        if (rc) {
            t->aborted = true;
            return 0;
        }
        return n;
    }
    if (r->body_size + n + 1 > r->body_capacity) {
        size_t capacity = r->body_capacity ? r->body_capacity : 1024;
        while (capacity < r->body_size + n + 1)
            capacity *= 2;
        char *body = realloc (r->body, capacity);
        assert (body);
        r->body = body;
        r->body_capacity = capacity;
    }
    memcpy (r->body + r->body_size, ptr, n);
    r->body_size += n;
    r->body[r->body_size] = 0;
    return n;
}

http_transfer_t *
http_transfer_new (core_log_t *log, uint64_t id, http_request_t **request_p)
{
    http_request_t *request = *request_p;
    *request_p = NULL;

    //  Only absolute http(s) URLs; keep scheme://host:port/path for log lines
    CURLU *url = curl_url ();
    assert (url);
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    bool usable = curl_url_set (url, CURLUPART_URL, request->url, 0) == CURLUE_OK
                  && curl_url_get (url, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
                  && curl_url_get (url, CURLUPART_HOST, &host, 0) == CURLUE_OK
                  && (strcmp (scheme, "http") == 0 || strcmp (scheme, "https") == 0);
    if (usable) {
        curl_url_get (url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        curl_url_get (url, CURLUPART_PATH, &path, 0);
    }
    curl_url_cleanup (url);
    if (!usable) {
        core_log_warn (log, request->request_id,
                       "http: refused URL (not absolute http/https)");
        curl_free (scheme);
        curl_free (host);
        http_request_destroy (&request);
        return NULL;
    }
    http_transfer_t *t = calloc (1, sizeof (http_transfer_t));
    assert (t);
    t->request = request;
    t->response.id = id;
    size_t log_size = strlen (scheme) + strlen (host) + (port ? strlen (port) : 0)
                      + (path ? strlen (path) : 0) + 8;
    t->log_url = malloc (log_size);
    assert (t->log_url);
    snprintf (t->log_url, log_size, "%s://%s%s%s%s", scheme, host, port ? ":" : "",
              port ? port : "", path ? path : "");
    curl_free (scheme);
    curl_free (host);
    curl_free (port);
    curl_free (path);

    if (!request->max_body_set && !request->on_data)
        request->max_body = 8 * 1024 * 1024;
    if (request->content_type
        && http_request_add_header (request, "Content-Type", request->content_type))
        assert (false);  //  set_body keeps only valid content types
    //  No "Expect: 100-continue" round trip before bodies
    struct curl_slist *appended = curl_slist_append (request->headers, "Expect:");
    assert (appended);
    request->headers = appended;

    CURL *easy = t->easy = curl_easy_init ();
    assert (easy);
    curl_easy_setopt (easy, CURLOPT_URL, request->url);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    //  A quarter of curl's 16 KiB receive buffer: a streamed reply arrives in small
    //  frames, and with thousands of streams open the buffers' pages, touched as
    //  the replies flow, are much of a transfer's memory (4 KiB: ~9 KiB less per
    //  stream at the peak of 1,000 streams than 16, the CPU per token the same
    //  within this VM's noise)
    curl_easy_setopt (easy, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, request->headers);
    curl_easy_setopt (easy, CURLOPT_USERAGENT, "chorus-http/0.1");
    curl_easy_setopt (easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) request->timeout_ms);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) request->connect_ms);
    if (request->max_body)
        curl_easy_setopt (easy, CURLOPT_MAXFILESIZE_LARGE,
                          (curl_off_t) request->max_body);
    if (request->follow) {
        curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt (easy, CURLOPT_MAXREDIRS, (long) request->follow);
    }
    bool wants_body = strcmp (request->method, "POST") == 0
                      || strcmp (request->method, "PUT") == 0
                      || strcmp (request->method, "PATCH") == 0;
    if (strcmp (request->method, "HEAD") == 0)
        curl_easy_setopt (easy, CURLOPT_NOBODY, 1L);
    else if (request->body || wants_body) {
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE,
                          (curl_off_t) request->body_size);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, request->body ? request->body : "");
        if (strcmp (request->method, "POST") != 0)
            curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, request->method);
    }
    else if (strcmp (request->method, "GET") == 0)
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, request->method);
    return t;
}

http_error_t
http_transfer_error (http_transfer_t *t, CURLcode code)
{
    switch (code) {
        case CURLE_OK:
            return HTTP_OK;
        case CURLE_COULDNT_CONNECT:
            return HTTP_ERR_CONNECT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return HTTP_ERR_RESOLVE;
        case CURLE_OPERATION_TIMEDOUT: {
            //  A reused connection has no connect time: what was sent or
            //  received tells a timeout from a connection that never came up
            curl_off_t connect_time = 0;
            long sent = 0;
            curl_easy_getinfo (t->easy, CURLINFO_CONNECT_TIME_T, &connect_time);
            curl_easy_getinfo (t->easy, CURLINFO_REQUEST_SIZE, &sent);
            bool connected = connect_time > 0 || sent > 0 || t->response.status > 0
                             || t->headers_done;
            return connected ? HTTP_ERR_TIMEOUT : HTTP_ERR_CONNECT;
        }
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
            return HTTP_ERR_TLS;
        case CURLE_WRITE_ERROR:
            return t->too_large ? HTTP_ERR_TOO_LARGE
                   : t->aborted ? HTTP_ERR_ABORTED
                                : HTTP_ERR_INTERNAL;
        case CURLE_FILESIZE_EXCEEDED:
            return HTTP_ERR_TOO_LARGE;
        case CURLE_ABORTED_BY_CALLBACK:
            return HTTP_ERR_ABORTED;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
            return HTTP_ERR_NETWORK;
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_BAD_CONTENT_ENCODING:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return HTTP_ERR_PROTOCOL;
        default:
            return HTTP_ERR_INTERNAL;
    }
}


//  ---------------------------------------------------------------------------
//  Selftest (transfers over the network are tested in http_client)

void
http_transfer_test (bool verbose)
{
    printf (" * http_transfer: ");
    //  @selftest
    http_request_t *request = http_request_new (
        "GET", "http://user:pw@127.0.0.1:8080/p?key=secret");
    http_transfer_t *t = http_transfer_new (NULL, 7, &request);
    assert (t && request == NULL);
    assert (t->response.id == 7);
    assert (strcmp (t->log_url, "http://127.0.0.1:8080/p") == 0);  //  no secrets in logs
    assert (http_transfer_error (t, CURLE_OK) == HTTP_OK);
    assert (http_transfer_error (t, CURLE_COULDNT_CONNECT) == HTTP_ERR_CONNECT);
    assert (http_transfer_error (t, CURLE_OPERATION_TIMEDOUT) == HTTP_ERR_CONNECT);
    assert (http_transfer_error (t, CURLE_FILESIZE_EXCEEDED) == HTTP_ERR_TOO_LARGE);
    t->aborted = true;
    assert (http_transfer_error (t, CURLE_WRITE_ERROR) == HTTP_ERR_ABORTED);
    assert (http_transfer_error (t, CURLE_RECV_ERROR) == HTTP_ERR_NETWORK);
    http_transfer_destroy (&t);
    http_transfer_destroy (&t);
    request = http_request_new ("GET", "file:///etc/passwd");
    assert (http_transfer_new (NULL, 8, &request) == NULL && request == NULL);
    request = http_request_new ("GET", "not a url");
    assert (http_transfer_new (NULL, 9, &request) == NULL);
    //  @end
    printf ("OK\n");
}
