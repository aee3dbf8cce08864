/*  http_client: curl multi interface driven by a czmq zloop.

    curl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when
    it next needs a call (CURLMOPT_TIMERFUNCTION); we mirror those as zloop pollers
    and a one-shot zloop timer, and hand events back with curl_multi_socket_action.
    Completed transfers come out of curl_multi_info_read.

    User callbacks (on_response, on_data) run inside curl's callbacks, where curl
    must not be re-entered; so sends made there are queued and cancels are marked,
    and both are carried out right after curl_multi_socket_action returns. Idle
    timeouts are ours (curl's low-speed limit counts whole seconds): one repeating
    timer sweeps the running transfers while any has one.                         */
#include "http_client.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_MAX_HEADERS      128          //  headers kept per response
#define S_MAX_HEADER_BYTES (64 * 1024)  //  bytes of headers kept per response

typedef struct {
    char *name;             //  header name as received
    char *value;            //  value, trimmed
} s_header_t;

struct _http_response_t {
    uint64_t id;            //  request id
    long status;            //  HTTP status, 0 before one arrived
    http_error_t error;     //  how the transfer ended
    char *error_text;       //  text for error, NULL when none
    s_header_t *headers;    //  headers of the final response
    size_t header_count;    //  entries used in headers
    size_t header_bytes;    //  bytes of names and values held
    char *body;             //  buffered body, NUL-terminated
    size_t body_size;       //  bytes in body
    size_t body_capacity;   //  bytes allocated for body
    size_t received;        //  body bytes received, streamed or not
    int64_t started;        //  zclock_mono when the transfer started
    int64_t ended;          //  zclock_mono when it ended
};

struct _http_request_t {
    char *method;                   //  request method
    char *url;                      //  absolute URL
    struct curl_slist *headers;     //  "Name: value" lines
    char *body;                     //  body bytes, NULL when none
    size_t body_size;               //  bytes in body
    char *content_type;             //  Content-Type of body, or NULL
    int64_t timeout_ms;             //  total timeout, 0 for none
    int64_t connect_ms;             //  connect timeout, 0 for none
    int64_t idle_ms;                //  idle timeout, 0 for none
    size_t max_body;                //  body limit, 0 for none
    bool max_body_set;              //  max_body was set by the caller
    int follow;                     //  redirects to follow
    char *request_id;               //  for log lines, or NULL
    http_response_fn *on_response;  //  headers are in, or NULL
    http_data_fn *on_data;          //  streamed body piece, or NULL
    http_done_fn *on_done;          //  transfer ended, or NULL
    void *arg;                      //  argument of the callbacks
};

typedef struct _s_transfer_t s_transfer_t;
struct _s_transfer_t {
    http_client_t *client;          //  owning client
    http_request_t *request;        //  what was asked
    http_response_t response;       //  what came back
    CURL *easy;                     //  curl handle
    char *log_url;                  //  URL without query, for logs
    char errbuf[CURL_ERROR_SIZE];   //  curl's detailed error text
    s_transfer_t *prev;             //  in the active list or the queue
    s_transfer_t *next;             //  in the active list or the queue
    bool active;                    //  added to the multi handle
    bool headers_done;              //  final headers are in, on_response ran
    bool cancelled;                 //  cancelled: no more callbacks
    bool aborted;                   //  a callback asked to stop
    bool too_large;                 //  body or headers over the limits
    int64_t last_activity;          //  zclock_mono of the last byte received
};

typedef struct _s_sock_t s_sock_t;
struct _s_sock_t {
    curl_socket_t fd;               //  socket curl wants watched
    int events;                     //  ZMQ_POLLIN / ZMQ_POLLOUT registered
    s_sock_t *prev;                 //  in the client's socket list
    s_sock_t *next;                 //  in the client's socket list
};

typedef struct {
    s_transfer_t *head;             //  first transfer
    s_transfer_t *tail;             //  last transfer
    size_t size;                    //  transfers in the list
} s_list_t;

struct _http_client_t {
    core_log_t *log;                //  where we log, may be NULL
    zloop_t *loop;                  //  loop that drives us, NULL until attached
    CURLM *multi;                   //  curl multi handle, owns the connection cache
    int timer_id;                   //  zloop timer for curl, -1 when none
    int idle_timer_id;              //  zloop timer sweeping idle transfers, -1 none
    int64_t idle_resolution;        //  period of the idle sweep, ms
    s_list_t active;                //  transfers added to the multi handle
    s_list_t queue;                 //  transfers waiting for a slot
    size_t idle_count;              //  active transfers with an idle timeout
    size_t max_active;              //  transfers running at once
    size_t max_queued;              //  transfers waiting at most
    size_t cancel_pending;          //  cancels marked while inside curl
    s_sock_t *socks;                //  sockets registered as pollers
    uint64_t next_id;               //  last request id handed out
    int in_curl;                    //  depth of calls into curl that run callbacks
};

static void s_start_queued (http_client_t *self);

//  ---------------------------------------------------------------------------
//  Requests

http_request_t *
http_request_new (const char *method, const char *url)
{
    assert (method);
    assert (url);
    http_request_t *self = calloc (1, sizeof (http_request_t));
    assert (self);
    self->method = strdup (method);
    self->url = strdup (url);
    assert (self->method && self->url);
    self->timeout_ms = 30000;
    self->connect_ms = 10000;
    return self;
}

void
http_request_destroy (http_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_request_t *self = *self_p;
    free (self->method);
    free (self->url);
    curl_slist_free_all (self->headers);
    free (self->body);
    free (self->content_type);
    free (self->request_id);
    free (self);
    *self_p = NULL;
}

static bool
s_is_token (const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || strchr ("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

//  Append "name: value" (or "name;" for an empty value, as curl wants it).
static void
s_slist_add (struct curl_slist **list, const char *name, const char *value)
{
    size_t size = strlen (name) + strlen (value) + 3;
    char *line = malloc (size);
    assert (line);
    if (*value)
        snprintf (line, size, "%s: %s", name, value);
    else
        snprintf (line, size, "%s;", name);
    struct curl_slist *appended = curl_slist_append (*list, line);
    assert (appended);
    *list = appended;
    free (line);
}

int
http_request_add_header (http_request_t *self, const char *name, const char *value)
{
    assert (self);
    if (!s_is_token (name) || !value || strpbrk (value, "\r\n"))
        return -1;
    s_slist_add (&self->headers, name, value);
    return 0;
}

void
http_request_set_body (http_request_t *self, const void *data, size_t size,
                       const char *content_type)
{
    assert (self);
    free (self->body);
    self->body = malloc (size ? size : 1);
    assert (self->body);
    if (size)
        memcpy (self->body, data, size);
    self->body_size = size;
    free (self->content_type);
    self->content_type = NULL;
    if (content_type && !strpbrk (content_type, "\r\n")) {
        self->content_type = strdup (content_type);
        assert (self->content_type);
    }
}

void
http_request_set_timeout (http_request_t *self, int64_t total_ms)
{
    assert (self);
    self->timeout_ms = total_ms > 0 ? total_ms : 0;
}

void
http_request_set_connect_timeout (http_request_t *self, int64_t connect_ms)
{
    assert (self);
    self->connect_ms = connect_ms > 0 ? connect_ms : 0;
}

void
http_request_set_idle_timeout (http_request_t *self, int64_t idle_ms)
{
    assert (self);
    self->idle_ms = idle_ms > 0 ? idle_ms : 0;
}

void
http_request_set_max_body (http_request_t *self, size_t max_body)
{
    assert (self);
    self->max_body = max_body;
    self->max_body_set = true;
}

void
http_request_set_follow (http_request_t *self, int max_redirects)
{
    assert (self);
    self->follow = max_redirects > 0 ? max_redirects : 0;
}

void
http_request_set_request_id (http_request_t *self, const char *request_id)
{
    assert (self);
    free (self->request_id);
    self->request_id = request_id ? strdup (request_id) : NULL;
}

void
http_request_set_callbacks (http_request_t *self, http_response_fn *on_response,
                            http_data_fn *on_data, http_done_fn *on_done, void *arg)
{
    assert (self);
    self->on_response = on_response;
    self->on_data = on_data;
    self->on_done = on_done;
    self->arg = arg;
}

//  ---------------------------------------------------------------------------
//  Responses

uint64_t
http_response_id (http_response_t *self)
{
    assert (self);
    return self->id;
}

long
http_response_status (http_response_t *self)
{
    assert (self);
    return self->status;
}

http_error_t
http_response_error (http_response_t *self)
{
    assert (self);
    return self->error;
}

const char *
http_response_error_text (http_response_t *self)
{
    assert (self);
    return self->error_text ? self->error_text : "";
}

const char *
http_response_header (http_response_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; i < self->header_count; i++)
        if (strcasecmp (self->headers[i].name, name) == 0)
            return self->headers[i].value;
    return NULL;
}

size_t
http_response_header_count (http_response_t *self)
{
    assert (self);
    return self->header_count;
}

const char *
http_response_header_name (http_response_t *self, size_t index)
{
    assert (self);
    return index < self->header_count ? self->headers[index].name : NULL;
}

const char *
http_response_header_value (http_response_t *self, size_t index)
{
    assert (self);
    return index < self->header_count ? self->headers[index].value : NULL;
}

int64_t
http_response_retry_after (http_response_t *self)
{
    assert (self);
    const char *value = http_response_header (self, "retry-after");
    if (!value || !*value)
        return -1;
    if (*value >= '0' && *value <= '9') {
        int64_t seconds = 0;
        for (const char *p = value; *p; p++) {
            if (*p < '0' || *p > '9' || seconds > 100000000)
                return -1;
            seconds = seconds * 10 + (*p - '0');
        }
        return seconds;
    }
    time_t when = curl_getdate (value, NULL);
    if (when == -1)
        return -1;
    time_t now = time (NULL);
    return when > now ? (int64_t) (when - now) : 0;
}

const char *
http_response_body (http_response_t *self)
{
    assert (self);
    return self->body ? self->body : "";
}

size_t
http_response_body_size (http_response_t *self)
{
    assert (self);
    return self->body_size;
}

char *
http_response_take_body (http_response_t *self, size_t *size_p)
{
    assert (self);
    char *body = self->body;
    if (size_p)
        *size_p = body ? self->body_size : 0;
    self->body = NULL;
    self->body_size = 0;
    self->body_capacity = 0;
    return body;
}

int64_t
http_response_elapsed (http_response_t *self)
{
    assert (self);
    return self->started ? (self->ended ? self->ended : zclock_mono ()) - self->started : 0;
}

size_t
http_response_received (http_response_t *self)
{
    assert (self);
    return self->received;
}

const char *
http_error_name (http_error_t error)
{
    switch (error) {
        case HTTP_OK: return "ok";
        case HTTP_ERR_CONNECT: return "connect_failed";
        case HTTP_ERR_RESOLVE: return "resolve_failed";
        case HTTP_ERR_TLS: return "tls_failed";
        case HTTP_ERR_TIMEOUT: return "timeout";
        case HTTP_ERR_IDLE: return "idle_timeout";
        case HTTP_ERR_TOO_LARGE: return "too_large";
        case HTTP_ERR_ABORTED: return "aborted";
        case HTTP_ERR_NETWORK: return "network_error";
        case HTTP_ERR_PROTOCOL: return "protocol_error";
        case HTTP_ERR_INTERNAL: return "internal_error";
    }
    return "unknown";
}

static void
s_headers_clear (http_response_t *self)
{
    for (size_t i = 0; i < self->header_count; i++) {
        free (self->headers[i].name);
        free (self->headers[i].value);
    }
    self->header_count = 0;
    self->header_bytes = 0;
}

//  ---------------------------------------------------------------------------
//  Transfers

static void
s_list_append (s_list_t *list, s_transfer_t *t)
{
    t->prev = list->tail;
    t->next = NULL;
    if (list->tail)
        list->tail->next = t;
    else
        list->head = t;
    list->tail = t;
    list->size++;
}

static void
s_list_remove (s_list_t *list, s_transfer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        list->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        list->tail = t->prev;
    t->prev = t->next = NULL;
    list->size--;
}

static void
s_transfer_destroy (s_transfer_t **self_p)
{
    s_transfer_t *self = *self_p;
    if (!self)
        return;
    if (self->easy)
        curl_easy_cleanup (self->easy);
    http_request_destroy (&self->request);
    s_headers_clear (&self->response);
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
s_headers_complete (s_transfer_t *t)
{
    long status = 0;
    curl_easy_getinfo (t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200)
        return 0;       //  1xx interim response, or a proxy's CONNECT answer
    if (t->request->follow && status >= 300 && status < 400
        && http_response_header (&t->response, "location"))
        return 0;       //  curl follows this redirect
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
    s_transfer_t *t = (s_transfer_t *) userdata;
    size_t n = size * nitems;
    if (t->cancelled)
        return 0;
    t->last_activity = zclock_mono ();
    http_response_t *r = &t->response;
    if (n >= 5 && memcmp (buffer, "HTTP/", 5) == 0) {
        s_headers_clear (r);
        t->headers_done = false;
        return n;
    }
    if (t->headers_done)
        return n;       //  trailers of a chunked body: ignored
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
        return n;       //  not a header line: ignored
    if (r->header_count == S_MAX_HEADERS) {
        t->too_large = true;
        return 0;
    }
    if (!r->headers) {
        r->headers = calloc (S_MAX_HEADERS, sizeof (s_header_t));
        assert (r->headers);
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
    s_transfer_t *t = (s_transfer_t *) userdata;
    http_request_t *request = t->request;
    http_response_t *r = &t->response;
    size_t n = size * nmemb;
    if (t->cancelled)
        return 0;
    t->last_activity = zclock_mono ();
    if (!t->headers_done && s_headers_complete (t))
        return 0;
    if (request->max_body && (n > request->max_body || r->received > request->max_body - n)) {
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

//  Build a transfer and its curl handle; returns NULL when the URL is unusable.
static s_transfer_t *
s_transfer_new (http_client_t *self, http_request_t **request_p)
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
        core_log_warn (self->log, request->request_id, "http: refused URL (not absolute http/https)");
        curl_free (scheme);
        curl_free (host);
        http_request_destroy (&request);
        return NULL;
    }
    s_transfer_t *t = calloc (1, sizeof (s_transfer_t));
    assert (t);
    t->client = self;
    t->request = request;
    t->response.id = ++self->next_id;
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
    if (request->content_type)
        s_slist_add (&request->headers, "Content-Type", request->content_type);
    //  No "Expect: 100-continue" round trip before bodies
    struct curl_slist *appended = curl_slist_append (request->headers, "Expect:");
    assert (appended);
    request->headers = appended;

    CURL *easy = t->easy = curl_easy_init ();
    assert (easy);
    curl_easy_setopt (easy, CURLOPT_URL, request->url);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
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
        curl_easy_setopt (easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) request->max_body);
    if (request->follow) {
        curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt (easy, CURLOPT_MAXREDIRS, (long) request->follow);
    }
    bool wants_body = strcmp (request->method, "POST") == 0 || strcmp (request->method, "PUT") == 0
                      || strcmp (request->method, "PATCH") == 0;
    if (strcmp (request->method, "HEAD") == 0)
        curl_easy_setopt (easy, CURLOPT_NOBODY, 1L);
    else
    if (request->body || wants_body) {
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) request->body_size);
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, request->body ? request->body : "");
        if (strcmp (request->method, "POST") != 0)
            curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, request->method);
    }
    else
    if (strcmp (request->method, "GET") == 0)
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, request->method);
    return t;
}

//  Map curl's result to ours, with a text.
static http_error_t
s_error_of (s_transfer_t *t, CURLcode code)
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
            curl_off_t connect_time = 0;
            curl_easy_getinfo (t->easy, CURLINFO_CONNECT_TIME_T, &connect_time);
            return connect_time == 0 ? HTTP_ERR_CONNECT : HTTP_ERR_TIMEOUT;
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

static void
s_idle_timer_stop (http_client_t *self)
{
    if (self->idle_timer_id != -1) {
        zloop_timer_end (self->loop, self->idle_timer_id);
        self->idle_timer_id = -1;
    }
}

//  End an active transfer: take it off the multi handle (closing its connection
//  if the response was not complete), report it unless cancelled, free it, and
//  let a queued transfer take its slot. Never called from inside curl.
static void
s_finish (http_client_t *self, s_transfer_t *t, http_error_t error, const char *text)
{
    assert (!self->in_curl);
    assert (t->active);
    s_list_remove (&self->active, t);
    t->active = false;
    if (t->request->idle_ms && --self->idle_count == 0)
        s_idle_timer_stop (self);
    curl_multi_remove_handle (self->multi, t->easy);

    http_request_t *request = t->request;
    http_response_t *r = &t->response;
    r->ended = zclock_mono ();
    r->error = error;
    if (error != HTTP_OK) {
        const char *detail = t->errbuf[0] ? t->errbuf : "";
        size_t size = strlen (text) + strlen (detail) + 3;
        r->error_text = malloc (size);
        assert (r->error_text);
        snprintf (r->error_text, size, "%s%s%s", text, *detail ? ": " : "", detail);
    }
    if (r->status == 0)
        curl_easy_getinfo (t->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (t->cancelled)
        core_log_debug (self->log, request->request_id, "http %s %s: cancelled after %lld ms",
                        request->method, t->log_url, (long long) (r->ended - r->started));
    else
    if (error == HTTP_OK)
        core_log_debug (self->log, request->request_id, "http %s %s: %ld in %lld ms",
                        request->method, t->log_url, r->status,
                        (long long) (r->ended - r->started));
    else
        core_log_warn (self->log, request->request_id, "http %s %s: %s (%s) after %lld ms",
                       request->method, t->log_url, http_error_name (error), r->error_text,
                       (long long) (r->ended - r->started));

    if (!t->cancelled) {
        //  A response without body still shows its headers first
        if (error == HTTP_OK && !t->headers_done && request->on_response && r->status >= 200) {
            t->headers_done = true;
            request->on_response (r, request->arg);
        }
        if (!t->cancelled && request->on_done)
            request->on_done (r, request->arg);
    }
    s_transfer_destroy (&t);
    s_start_queued (self);
}

static int
s_handle_idle (zloop_t *loop, int timer_id, void *arg)
{
    http_client_t *self = (http_client_t *) arg;
    if (timer_id != self->idle_timer_id)
        return 0;       //  ended earlier in this pass of the loop
    bool expired = true;
    while (expired) {
        expired = false;
        int64_t now = zclock_mono ();
        for (s_transfer_t *t = self->active.head; t; t = t->next)
            if (t->request->idle_ms && !t->cancelled
                && now - t->last_activity >= t->request->idle_ms) {
                s_finish (self, t, HTTP_ERR_IDLE, "no data received within the idle timeout");
                expired = true;
                break;  //  callbacks may have changed the list: start over
            }
    }
    return 0;
}

//  Add a transfer to the multi handle.
static void
s_start (http_client_t *self, s_transfer_t *t)
{
    s_list_append (&self->active, t);
    t->active = true;
    t->response.started = t->last_activity = zclock_mono ();
    if (t->request->idle_ms && self->idle_count++ == 0) {
        self->idle_timer_id = zloop_timer (self->loop, (size_t) self->idle_resolution, 0,
                                           s_handle_idle, self);
        assert (self->idle_timer_id != -1);
    }
    core_log_debug (self->log, t->request->request_id, "http %s %s: start (id %llu)",
                    t->request->method, t->log_url, (unsigned long long) t->response.id);
    CURLMcode rc = curl_multi_add_handle (self->multi, t->easy);
    if (rc != CURLM_OK)
        s_finish (self, t, HTTP_ERR_INTERNAL, curl_multi_strerror (rc));
}

static void
s_start_queued (http_client_t *self)
{
    while (!self->in_curl && self->queue.head && self->active.size < self->max_active) {
        s_transfer_t *t = self->queue.head;
        s_list_remove (&self->queue, t);
        s_start (self, t);
    }
}

//  After curl ran: report completed transfers, carry out cancels made from
//  callbacks, and start what the queue holds.
static void
s_process (http_client_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode code = msg->data.result;
        s_transfer_t *t = NULL;
        curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
        assert (t && t->active);
        s_finish (self, t, s_error_of (t, code), curl_easy_strerror (code));
    }
    if (self->cancel_pending) {
        self->cancel_pending = 0;
        s_transfer_t *t = self->active.head;
        while (t) {
            s_transfer_t *next = t->next;
            if (t->cancelled) {
                s_finish (self, t, HTTP_ERR_ABORTED, "cancelled");
                t = self->active.head;     //  the list may have changed
            }
            else
                t = next;
        }
    }
    s_start_queued (self);
}

static void
s_socket_action (http_client_t *self, curl_socket_t fd, int flags)
{
    int running = 0;
    self->in_curl++;
    CURLMcode rc = curl_multi_socket_action (self->multi, fd, flags, &running);
    self->in_curl--;
    if (rc != CURLM_OK)
        core_log_error (self->log, NULL, "http: curl_multi_socket_action: %s",
                        curl_multi_strerror (rc));
    s_process (self);
}

//  ---------------------------------------------------------------------------
//  curl's sockets and timer as zloop pollers and timer

static int
s_handle_socket (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    http_client_t *self = (http_client_t *) arg;
    int flags = 0;
    if (item->revents & ZMQ_POLLIN)
        flags |= CURL_CSELECT_IN;
    if (item->revents & ZMQ_POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (item->revents & ZMQ_POLLERR)
        flags |= CURL_CSELECT_ERR;
    s_socket_action (self, item->fd, flags);
    return 0;
}

static int
s_handle_timer (zloop_t *loop, int timer_id, void *arg)
{
    http_client_t *self = (http_client_t *) arg;
    if (timer_id != self->timer_id)
        return 0;       //  replaced earlier in this pass of the loop
    self->timer_id = -1;
    s_socket_action (self, CURL_SOCKET_TIMEOUT, 0);
    return 0;
}

static void
s_poller_end (http_client_t *self, curl_socket_t fd)
{
    zmq_pollitem_t item = {NULL, fd, 0, 0};
    zloop_poller_end (self->loop, &item);
}

static int
s_curl_socket (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http_client_t *self = (http_client_t *) userp;
    s_sock_t *sock = (s_sock_t *) socketp;
    if (what == CURL_POLL_REMOVE) {
        s_poller_end (self, fd);
        if (sock) {
            if (sock->prev)
                sock->prev->next = sock->next;
            else
                self->socks = sock->next;
            if (sock->next)
                sock->next->prev = sock->prev;
            free (sock);
        }
        return 0;
    }
    int events = ((what & CURL_POLL_IN) ? ZMQ_POLLIN : 0) | ((what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0);
    if (!sock) {
        sock = calloc (1, sizeof (s_sock_t));
        assert (sock);
        sock->fd = fd;
        sock->next = self->socks;
        if (self->socks)
            self->socks->prev = sock;
        self->socks = sock;
        curl_multi_assign (self->multi, fd, sock);
    }
    else {
        if (sock->events == events)
            return 0;
        s_poller_end (self, fd);
    }
    sock->events = events;
    if (events) {
        zmq_pollitem_t item = {NULL, fd, (short) events, 0};
        if (zloop_poller (self->loop, &item, s_handle_socket, self)) {
            core_log_error (self->log, NULL, "http: cannot poll socket %d", (int) fd);
            return -1;
        }
        //  A hang-up shows as ZMQ_POLLERR; curl must see it, not zloop drop it
        zloop_poller_set_tolerant (self->loop, &item);
    }
    return 0;
}

static int
s_curl_timer (CURLM *multi, long timeout_ms, void *userp)
{
    http_client_t *self = (http_client_t *) userp;
    if (self->timer_id != -1) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (timeout_ms >= 0) {
        self->timer_id = zloop_timer (self->loop, (size_t) timeout_ms, 1, s_handle_timer, self);
        if (self->timer_id == -1)
            return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Client

http_client_t *
http_client_new (core_log_t *log)
{
    http_client_t *self = calloc (1, sizeof (http_client_t));
    assert (self);
    CURLcode rc = curl_global_init (CURL_GLOBAL_DEFAULT);
    assert (rc == CURLE_OK);
    self->log = log;
    self->multi = curl_multi_init ();
    assert (self->multi);
    self->timer_id = -1;
    self->idle_timer_id = -1;
    self->idle_resolution = 100;
    self->max_active = 256;
    self->max_queued = 1024;
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_curl_socket);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_curl_timer);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, 64L);
    return self;
}

void
http_client_destroy (http_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    http_client_t *self = *self_p;
    assert (!self->in_curl);
    while (self->active.head) {
        s_transfer_t *t = self->active.head;
        s_list_remove (&self->active, t);
        curl_multi_remove_handle (self->multi, t->easy);
        s_transfer_destroy (&t);
    }
    while (self->queue.head) {
        s_transfer_t *t = self->queue.head;
        s_list_remove (&self->queue, t);
        s_transfer_destroy (&t);
    }
    curl_multi_cleanup (self->multi);
    if (self->loop) {
        if (self->timer_id != -1)
            zloop_timer_end (self->loop, self->timer_id);
        s_idle_timer_stop (self);
    }
    while (self->socks) {
        s_sock_t *sock = self->socks;
        self->socks = sock->next;
        if (self->loop)
            s_poller_end (self, sock->fd);
        free (sock);
    }
    curl_global_cleanup ();
    free (self);
    *self_p = NULL;
}

int
http_client_attach (http_client_t *self, zloop_t *loop)
{
    assert (self);
    assert (loop);
    if (self->loop)
        return -1;
    self->loop = loop;
    return 0;
}

void
http_client_set_max_active (http_client_t *self, size_t max_active)
{
    assert (self);
    self->max_active = max_active ? max_active : 1;
    s_start_queued (self);
}

void
http_client_set_max_queued (http_client_t *self, size_t max_queued)
{
    assert (self);
    self->max_queued = max_queued;
}

void
http_client_set_max_host_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max > 0 ? max : 0L);
}

void
http_client_set_max_total_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max > 0 ? max : 0L);
}

void
http_client_set_max_cached_connections (http_client_t *self, long max)
{
    assert (self);
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, max > 0 ? max : 0L);
}

void
http_client_set_idle_resolution (http_client_t *self, int64_t ms)
{
    assert (self);
    self->idle_resolution = ms < 1 ? 1 : ms > 1000 ? 1000 : ms;
}

uint64_t
http_client_send (http_client_t *self, http_request_t **request_p)
{
    assert (self);
    assert (request_p && *request_p);
    if (!self->loop) {
        http_request_destroy (request_p);
        return 0;
    }
    bool start_now = !self->in_curl && !self->queue.head && self->active.size < self->max_active;
    bool slot_free = self->active.size + self->queue.size < self->max_active;
    if (!start_now && !slot_free && self->queue.size >= self->max_queued) {
        core_log_warn (self->log, (*request_p)->request_id, "http: queue full (%zu waiting)",
                       self->queue.size);
        http_request_destroy (request_p);
        return 0;
    }
    s_transfer_t *t = s_transfer_new (self, request_p);
    if (!t)
        return 0;
    uint64_t id = t->response.id;
    s_list_append (&self->queue, t);
    s_start_queued (self);
    return id;
}

int
http_client_cancel (http_client_t *self, uint64_t id)
{
    assert (self);
    for (s_transfer_t *t = self->queue.head; t; t = t->next)
        if (t->response.id == id) {
            s_list_remove (&self->queue, t);
            s_transfer_destroy (&t);
            return 0;
        }
    for (s_transfer_t *t = self->active.head; t; t = t->next)
        if (t->response.id == id) {
            if (t->cancelled)
                return -1;
            t->cancelled = true;
            if (self->in_curl)
                self->cancel_pending++;     //  s_process finishes it
            else
                s_finish (self, t, HTTP_ERR_ABORTED, "cancelled");
            return 0;
        }
    return -1;
}

size_t
http_client_active (http_client_t *self)
{
    assert (self);
    return self->active.size;
}

size_t
http_client_queued (http_client_t *self)
{
    assert (self);
    return self->queue.size;
}

//  ---------------------------------------------------------------------------
//  Selftest, against a real HTTP server on an ephemeral loopback port

#include "http_lines.h"
#include "http_sse_parser.h"
#include "http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    http_client_t *client;      //  client under test
    uint64_t id;                //  request id
    int responses;              //  on_response calls
    int chunks;                 //  on_data calls
    int done;                   //  on_done calls
    http_error_t error;         //  error at on_done
    long status;                //  status at on_done
    long status_at_response;    //  status at on_response
    char body[4096];            //  body, streamed or buffered (truncated)
    size_t body_size;           //  bytes in body
    size_t body_total;          //  bytes of body seen
    char header[64];            //  value of want_header at on_done
    const char *want_header;    //  header to keep
    char conn_id[16];           //  X-Conn-Id
    int64_t retry_after;        //  Retry-After at on_done
    int64_t elapsed;            //  http_response_elapsed at on_done
    int cancel_at;              //  cancel itself at this chunk
    int abort_at;               //  return non-zero at this chunk
    const char *release_url;    //  send a GET here at the first chunk
    http_sse_parser_t *sse;     //  parse the stream as SSE
    int events;                 //  SSE events seen
    char last_event[64];        //  data of the last SSE event
    http_lines_t *lines;        //  split the stream into lines
    int line_count;             //  lines seen
    int *counter;               //  shared count of on_done calls, or NULL
    size_t *peak;               //  highest http_client_active seen, or NULL
} s_result_t;

static void
s_copy (char *dest, size_t size, const char *src)
{
    snprintf (dest, size, "%s", src ? src : "");
}

static int
s_test_on_sse (const http_sse_event_t *event, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->events++;
    s_copy (r->last_event, sizeof r->last_event, event->data);
    return 0;
}

static int
s_test_on_line (const char *line, size_t size, void *arg)
{
    ((s_result_t *) arg)->line_count++;
    return 0;
}

static int
s_test_on_response (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->responses++;
    r->status_at_response = http_response_status (response);
    return 0;
}

static int
s_test_on_data (http_response_t *response, const char *data, size_t size, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->chunks++;
    r->body_total += size;
    size_t room = sizeof r->body - 1 - r->body_size;
    size_t n = size < room ? size : room;
    memcpy (r->body + r->body_size, data, n);
    r->body_size += n;
    r->body[r->body_size] = 0;
    if (r->sse) {
        int rc = http_sse_parser_feed (r->sse, data, size, s_test_on_sse, r);
        assert (rc == 0);
    }
    if (r->lines) {
        int rc = http_lines_feed (r->lines, data, size, s_test_on_line, r);
        assert (rc == 0);
    }
    if (r->release_url && r->chunks == 1) {
        //  Sending from inside a callback is allowed
        http_request_t *request = http_request_new ("GET", r->release_url);
        uint64_t id = http_client_send (r->client, &request);
        assert (id > 0);
    }
    if (r->cancel_at && r->chunks == r->cancel_at) {
        int rc = http_client_cancel (r->client, http_response_id (response));
        assert (rc == 0);
        rc = http_client_cancel (r->client, http_response_id (response));
        assert (rc == -1);
    }
    return r->abort_at && r->chunks == r->abort_at;
}

static void
s_test_on_done (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    r->done++;
    r->error = http_response_error (response);
    r->status = http_response_status (response);
    r->retry_after = http_response_retry_after (response);
    r->elapsed = http_response_elapsed (response);
    if (r->want_header)
        s_copy (r->header, sizeof r->header, http_response_header (response, r->want_header));
    s_copy (r->conn_id, sizeof r->conn_id, http_response_header (response, "x-conn-id"));
    if (http_response_body_size (response)) {
        s_copy (r->body, sizeof r->body, http_response_body (response));
        r->body_size = strlen (r->body);
        r->body_total = http_response_body_size (response);
    }
    if (r->counter)
        (*r->counter)++;
    if (r->peak && http_client_active (r->client) + 1 > *r->peak)
        *r->peak = http_client_active (r->client) + 1;
}

//  Send a request whose callbacks fill r; returns its id.
static uint64_t
s_test_send (http_client_t *client, http_request_t *request, s_result_t *r, bool stream)
{
    r->client = client;
    http_request_set_callbacks (request, s_test_on_response, stream ? s_test_on_data : NULL,
                                s_test_on_done, r);
    r->id = http_client_send (client, &request);
    assert (request == NULL);
    return r->id;
}

static uint64_t
s_test_get (http_client_t *client, const char *base, const char *path, s_result_t *r,
            bool stream)
{
    char url[256];
    snprintf (url, sizeof url, "%s%s", base, path);
    return s_test_send (client, http_request_new ("GET", url), r, stream);
}

typedef struct {
    int *counter;               //  what to watch
    int want;                   //  stop when it reaches this
    int64_t deadline;           //  or at this time
} s_wait_t;

static int
s_test_wait (zloop_t *loop, int timer_id, void *arg)
{
    s_wait_t *w = (s_wait_t *) arg;
    return *w->counter >= w->want || zclock_mono () >= w->deadline ? -1 : 0;
}

//  Run a fresh loop until *counter reaches want or max_ms pass.
static void
s_test_run (zloop_t *loop, int *counter, int want, int64_t max_ms)
{
    s_wait_t w = {counter, want, zclock_mono () + max_ms};
    int timer_id = zloop_timer (loop, 5, 0, s_test_wait, &w);
    assert (timer_id != -1);
    zloop_start (loop);
    zloop_timer_end (loop, timer_id);
}

typedef struct {
    http_client_t *client;      //  client
    const char *base;           //  server URL
    uint64_t cancel_id;         //  request to cancel
    s_result_t closed[2];       //  answers of /closed?id=c1 and c2
    int closed_yes;             //  how many said yes
    int polls;                  //  /closed polls sent
} s_cancel_t;

static void
s_test_on_closed (http_response_t *response, void *arg)
{
    s_result_t *r = (s_result_t *) arg;
    if (strcmp (http_response_body (response), "yes") == 0)
        r->done = 1;
}

//  Timer: cancel the stream from outside callbacks, then poll the server until
//  it saw both cancelled streams' connections close.
static int
s_test_cancel_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_cancel_t *c = (s_cancel_t *) arg;
    if (c->cancel_id) {
        int rc = http_client_cancel (c->client, c->cancel_id);
        assert (rc == 0);
        assert (http_client_cancel (c->client, c->cancel_id) == -1);
        c->cancel_id = 0;
        return 0;
    }
    c->closed_yes = c->closed[0].done + c->closed[1].done;
    for (int i = 0; i < 2; i++)
        if (!c->closed[i].done) {
            char url[256];
            snprintf (url, sizeof url, "%s/closed?id=c%d", c->base, i + 1);
            http_request_t *request = http_request_new ("GET", url);
            http_request_set_callbacks (request, NULL, NULL, s_test_on_closed, &c->closed[i]);
            uint64_t id = http_client_send (c->client, &request);
            assert (id);
            c->polls++;
        }
    return 0;
}

typedef struct {
    http_client_t *client;      //  client
    const char *base;           //  server URL
    int count;                  //  answers received
    int reused;                 //  answers on the first answer's connection
    char first_conn[16];        //  X-Conn-Id of the first answer
} s_chain_t;

static void
s_test_on_chain_done (http_response_t *response, void *arg)
{
    s_chain_t *chain = (s_chain_t *) arg;
    if (response) {
        assert (http_response_error (response) == HTTP_OK);
        const char *conn_id = http_response_header (response, "X-Conn-Id");
        assert (conn_id);
        if (chain->count++ == 0)
            s_copy (chain->first_conn, sizeof chain->first_conn, conn_id);
        else
        if (strcmp (conn_id, chain->first_conn) == 0)
            chain->reused++;
    }
    if (chain->count < 5) {
        char url[256];
        snprintf (url, sizeof url, "%s/hello", chain->base);
        http_request_t *request = http_request_new ("GET", url);
        http_request_set_callbacks (request, NULL, NULL, s_test_on_chain_done, chain);
        uint64_t id = http_client_send (chain->client, &request);
        assert (id);
    }
}

void
http_client_test (bool verbose)
{
    printf (" * http_client: ");
    if (verbose)
        printf ("\n");
    core_log_t *log = core_log_new ("http_client_test", verbose ? "debug" : "off");
    http_test_server_t *server = http_test_server_new ();
    assert (server);
    const char *base = http_test_server_url (server);
    int64_t started;

    //  @selftest
    //  Buffered GET, POST and PUT with headers and bodies
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        http_request_t *request = http_request_new ("GET", "http://127.0.0.1/");
        assert (http_client_send (client, &request) == 0);      //  not attached yet
        assert (request == NULL);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        assert (http_client_attach (client, loop) == -1);

        int done = 0;
        s_result_t get = {.want_header = "X-TEST", .counter = &done};
        assert (s_test_get (client, base, "/hello", &get, false) > 0);

        request = http_request_new ("POST", "");
        request = (http_request_destroy (&request), http_request_new ("POST", base));
        http_request_destroy (&request);
        char url[256];
        snprintf (url, sizeof url, "%s/echo", base);
        request = http_request_new ("POST", url);
        assert (http_request_add_header (request, "X-Custom", "custom value") == 0);
        assert (http_request_add_header (request, "Bad Name", "x") == -1);
        assert (http_request_add_header (request, "X-Inject", "a\r\nX-Evil: 1") == -1);
        assert (http_request_add_header (request, "", "x") == -1);
        const char *json = "{\"model\":\"m\",\"stream\":true}";
        http_request_set_body (request, json, strlen (json), "application/json");
        http_request_set_request_id (request, "req-1");
        s_result_t post = {.want_header = "x-echo", .counter = &done};
        uint64_t post_id = s_test_send (client, request, &post, false);
        assert (post_id > get.id);

        request = http_request_new ("PUT", url);
        http_request_set_body (request, "put-body", 8, NULL);
        s_result_t put = {.want_header = "x-method", .counter = &done};
        s_test_send (client, request, &put, false);

        //  Refused before they start: not http(s), not absolute
        request = http_request_new ("GET", "ftp://127.0.0.1/file");
        assert (http_client_send (client, &request) == 0);
        request = http_request_new ("GET", "/relative");
        assert (http_client_send (client, &request) == 0);
        assert (http_client_active (client) == 3);

        s_test_run (loop, &done, 3, 5000);
        assert (done == 3);
        assert (get.done == 1 && get.responses == 1);
        assert (get.error == HTTP_OK && get.status == 200 && get.status_at_response == 200);
        assert (strcmp (get.body, "hello world") == 0);
        assert (strcmp (get.header, "yes") == 0);
        assert (post.error == HTTP_OK && post.status == 200);
        assert (strcmp (post.body, json) == 0);
        assert (strcmp (post.header, "custom value") == 0);
        assert (put.error == HTTP_OK && strcmp (put.body, "put-body") == 0);
        assert (strcmp (put.header, "PUT") == 0);
        assert (http_client_active (client) == 0);
        http_client_destroy (&client);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  100 concurrent transfers in one loop; then the same through 10 slots
    for (int pass = 0; pass < 2; pass++) {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        if (pass == 1)
            http_client_set_max_active (client, 10);
        int done = 0;
        size_t peak = 0;
        s_result_t *results = calloc (100, sizeof (s_result_t));
        assert (results);
        for (int i = 0; i < 100; i++) {
            results[i].counter = &done;
            results[i].peak = &peak;
            assert (s_test_get (client, base, "/hello", &results[i], false));
        }
        assert (http_client_active (client) == (pass ? 10 : 100));
        assert (http_client_queued (client) == (pass ? 90 : 0));
        started = zclock_mono ();
        s_test_run (loop, &done, 100, 20000);
        assert (done == 100);
        for (int i = 0; i < 100; i++) {
            assert (results[i].error == HTTP_OK && results[i].status == 200);
            assert (strcmp (results[i].body, "hello world") == 0);
        }
        assert (peak <= (pass ? 10 : 100));
        if (verbose)
            printf ("  100 requests, max %s active: %lld ms, peak %zu\n", pass ? "10" : "256",
                    (long long) (zclock_mono () - started), peak);
        free (results);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Streams arrive in pieces as they are sent: /gated sends its last event only
    //  after we asked for /release, which we do when the first piece arrives.
    //  Also: chunks with delays split into lines; keep-alive across 5 requests.
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        int done = 0;
        char release_url[256];
        snprintf (release_url, sizeof release_url, "%s/release", base);
        s_result_t gated = {.counter = &done, .release_url = release_url};
        gated.sse = http_sse_parser_new (0);
        http_request_t *request = http_request_new ("GET", base);
        http_request_destroy (&request);
        snprintf (release_url + strlen (base), sizeof release_url - strlen (base), "/release");
        char url[256];
        snprintf (url, sizeof url, "%s/gated", base);
        request = http_request_new ("GET", url);
        assert (http_request_add_header (request, "Accept", "text/event-stream") == 0);
        http_request_set_idle_timeout (request, 10000);
        s_test_send (client, request, &gated, true);

        s_result_t lines = {.counter = &done};
        lines.lines = http_lines_new (0);
        s_test_get (client, base, "/stream?n=5&ms=50", &lines, true);

        s_test_run (loop, &done, 2, 10000);
        assert (done == 2);
        assert (gated.error == HTTP_OK && gated.status == 200);
        assert (gated.responses == 1 && gated.status_at_response == 200);
        assert (gated.chunks >= 2);
        assert (gated.events == 2);
        assert (strcmp (gated.last_event, "last") == 0);
        assert (lines.error == HTTP_OK);
        assert (lines.chunks >= 3);
        assert (lines.line_count == 5);
        assert (strcmp (lines.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n") == 0);
        http_sse_parser_destroy (&gated.sse);
        http_lines_destroy (&lines.lines);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Idle timeout on a stalled stream, total timeouts on a slow answer and on a
    //  stream that never ends, connection refused
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        http_client_set_idle_resolution (client, 20);
        int done = 0;
        char url[256];
        snprintf (url, sizeof url, "%s/stall", base);
        http_request_t *request = http_request_new ("GET", url);
        http_request_set_idle_timeout (request, 300);
        s_result_t stall = {.counter = &done};
        s_test_send (client, request, &stall, true);

        snprintf (url, sizeof url, "%s/slow", base);
        request = http_request_new ("GET", url);
        http_request_set_timeout (request, 300);
        s_result_t slow = {.counter = &done};
        s_test_send (client, request, &slow, false);

        snprintf (url, sizeof url, "%s/forever?id=t1", base);
        request = http_request_new ("GET", url);
        http_request_set_timeout (request, 400);
        http_request_set_idle_timeout (request, 200);
        s_result_t forever = {.counter = &done};
        s_test_send (client, request, &forever, true);

        //  A bound socket that does not listen refuses connections
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        assert (fd >= 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        socklen_t addr_size = sizeof addr;
        rc = bind (fd, (struct sockaddr *) &addr, sizeof addr);
        assert (rc == 0);
        rc = getsockname (fd, (struct sockaddr *) &addr, &addr_size);
        assert (rc == 0);
        snprintf (url, sizeof url, "http://127.0.0.1:%d/", ntohs (addr.sin_port));
        s_result_t refused = {.counter = &done};
        s_test_send (client, http_request_new ("GET", url), &refused, false);

        started = zclock_mono ();
        s_test_run (loop, &done, 4, 5000);
        close (fd);
        assert (done == 4);
        assert (stall.error == HTTP_ERR_IDLE);
        assert (stall.status == 200 && stall.chunks == 1);
        assert (stall.elapsed >= 300 && stall.elapsed < 1500);
        assert (slow.error == HTTP_ERR_TIMEOUT);
        assert (slow.elapsed >= 300 && slow.elapsed < 1500);
        assert (forever.error == HTTP_ERR_TIMEOUT);
        assert (forever.chunks > 3);
        assert (refused.error == HTTP_ERR_CONNECT && refused.status == 0);
        assert (zclock_mono () - started < 2000);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Bodies over the limit, with Content-Length, chunked, streamed; at the limit
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        int done = 0;
        const char *paths[] = {"/big?n=100000", "/bigchunked?n=100000", "/bigchunked?n=100000",
                               "/big?n=1000"};
        s_result_t results[4];
        memset (results, 0, sizeof results);
        for (int i = 0; i < 4; i++) {
            char url[256];
            snprintf (url, sizeof url, "%s%s", base, paths[i]);
            http_request_t *request = http_request_new ("GET", url);
            http_request_set_max_body (request, i == 2 ? 5000 : 1000);
            results[i].counter = &done;
            s_test_send (client, request, &results[i], i == 2);
        }
        s_test_run (loop, &done, 4, 5000);
        assert (done == 4);
        assert (results[0].error == HTTP_ERR_TOO_LARGE);
        assert (results[1].error == HTTP_ERR_TOO_LARGE);
        assert (results[2].error == HTTP_ERR_TOO_LARGE);
        assert (results[2].body_total <= 5000);
        assert (results[3].error == HTTP_OK && results[3].body_total == 1000);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  Cancel mid-stream from inside on_data and from outside: no more callbacks,
    //  and the server sees both connections close. Abort from on_data. Cancel of
    //  a queued request; a full queue refuses.
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        s_result_t inside = {.cancel_at = 3};
        s_test_get (client, base, "/forever?id=c1", &inside, true);
        s_result_t outside = {0};
        s_cancel_t cancel = {.client = client, .base = base};
        cancel.cancel_id = s_test_get (client, base, "/forever?id=c2", &outside, true);
        int done = 0;
        s_result_t aborted = {.abort_at = 2, .counter = &done};
        s_test_get (client, base, "/forever?id=a1", &aborted, true);

        http_client_set_max_active (client, 3);
        http_client_set_max_queued (client, 1);
        s_result_t queued = {0};
        uint64_t queued_id = s_test_get (client, base, "/hello", &queued, false);
        assert (queued_id);
        assert (http_client_queued (client) == 1);
        http_request_t *request = http_request_new ("GET", base);
        assert (http_client_send (client, &request) == 0);      //  queue full
        assert (http_client_cancel (client, queued_id) == 0);
        assert (http_client_queued (client) == 0);
        assert (http_client_cancel (client, queued_id) == -1);
        http_client_set_max_active (client, 256);

        int timer_id = zloop_timer (loop, 150, 0, s_test_cancel_timer, &cancel);
        //  Done when the server saw both cancelled connections close
        s_test_run (loop, &cancel.closed_yes, 2, 5000);
        zloop_timer_end (loop, timer_id);
        assert (cancel.closed_yes == 2);
        assert (inside.chunks == 3 && inside.done == 0);
        assert (outside.chunks > 0 && outside.done == 0);
        assert (aborted.done == 1 && aborted.error == HTTP_ERR_ABORTED && aborted.chunks == 2);
        assert (queued.done == 0 && queued.responses == 0);
        if (verbose)
            printf ("  cancel: server saw close after %d polls\n", cancel.polls);
        http_client_destroy (&client);
        zloop_destroy (&loop);
    }
    //  429 with Retry-After; keep-alive: five requests in a row share one
    //  connection (the server numbers its connections)
    {
        zloop_t *loop = zloop_new ();
        http_client_t *client = http_client_new (log);
        int rc = http_client_attach (client, loop);
        assert (rc == 0);
        http_client_set_max_host_connections (client, 4);
        http_client_set_max_total_connections (client, 100);
        http_client_set_max_cached_connections (client, 8);
        int done = 0;
        s_result_t limited = {.counter = &done, .want_header = "retry-after"};
        s_test_get (client, base, "/ratelimit", &limited, false);
        s_test_run (loop, &done, 1, 5000);
        assert (done == 1);
        assert (limited.error == HTTP_OK && limited.status == 429);
        assert (limited.retry_after == 7);
        assert (strcmp (limited.header, "7") == 0);
        assert (strcmp (limited.body, "{\"error\":\"slow down\"}") == 0);
        zloop_destroy (&loop);

        //  Each answer sends the next request from its on_done
        loop = zloop_new ();
        http_client_destroy (&client);
        client = http_client_new (log);
        rc = http_client_attach (client, loop);
        assert (rc == 0);
        s_chain_t chain = {.client = client, .base = base};
        s_test_on_chain_done (NULL, &chain);
        s_test_run (loop, &chain.count, 5, 5000);
        assert (chain.count == 5);
        assert (chain.reused == 4);
        zloop_destroy (&loop);
        http_client_destroy (&client);
    }
    //  Retry-After as an HTTP date, header lookup in any case
    {
        http_response_t response = {0};
        s_header_t headers[2] = {{"Content-Type", "text/plain"}, {"Retry-After", "x"}};
        response.headers = headers;
        response.header_count = 2;
        assert (http_response_retry_after (&response) == -1);
        headers[1].value = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert (http_response_retry_after (&response) == 0);
        assert (strcmp (http_response_header (&response, "content-TYPE"), "text/plain") == 0);
        assert (http_response_header (&response, "missing") == NULL);
        assert (strcmp (http_response_header_name (&response, 1), "Retry-After") == 0);
        assert (http_response_header_value (&response, 2) == NULL);
        assert (strcmp (http_error_name (HTTP_ERR_IDLE), "idle_timeout") == 0);
    }
    //  @end
    http_test_server_destroy (&server);
    core_log_destroy (&log);
    printf ("OK\n");
}
