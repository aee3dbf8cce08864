/*  http_request: the request builder and the response accessors of http_client.
    Requests are built by services and handed to http_client_send; responses are
    what http_client's callbacks see.                                             */
#include "http_request.h"
#include "http_private.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr ("!#$%&'*+-.^_`|~", *s)))
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
    return self->started ? (self->ended ? self->ended : zclock_mono ()) - self->started
                         : 0;
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
        case HTTP_OK:
            return "ok";
        case HTTP_ERR_CONNECT:
            return "connect_failed";
        case HTTP_ERR_RESOLVE:
            return "resolve_failed";
        case HTTP_ERR_TLS:
            return "tls_failed";
        case HTTP_ERR_TIMEOUT:
            return "timeout";
        case HTTP_ERR_IDLE:
            return "idle_timeout";
        case HTTP_ERR_TOO_LARGE:
            return "too_large";
        case HTTP_ERR_ABORTED:
            return "aborted";
        case HTTP_ERR_NETWORK:
            return "network_error";
        case HTTP_ERR_PROTOCOL:
            return "protocol_error";
        case HTTP_ERR_INTERNAL:
            return "internal_error";
    }
    return "unknown";
}

void
http_response_clear_headers (http_response_t *self)
{
    for (size_t i = 0; i < self->header_count; i++) {
        free (self->headers[i].name);
        free (self->headers[i].value);
    }
    self->header_count = 0;
    self->header_bytes = 0;
}

//  ---------------------------------------------------------------------------
//  Selftest (transfers are tested in http_client)

void
http_request_test (bool verbose)
{
    printf (" * http_request: ");
    //  @selftest
    http_request_t *request = http_request_new ("POST", "http://127.0.0.1/x");
    assert (http_request_add_header (request, "X-Ok", "value") == 0);
    assert (http_request_add_header (request, "X-Empty", "") == 0);
    assert (http_request_add_header (request, "Bad Name", "x") == -1);
    assert (http_request_add_header (request, "X-Inject", "a\r\nX-Evil: 1") == -1);
    assert (http_request_add_header (request, "", "x") == -1);
    http_request_set_body (request, "{}", 2, "application/json");
    http_request_set_body (request, "", 0, "bad\r\ntype");
    assert (request->content_type == NULL && request->body_size == 0);
    http_request_set_timeout (request, -5);
    assert (request->timeout_ms == 0);
    http_request_set_request_id (request, "rid");
    http_request_set_request_id (request, NULL);
    http_request_destroy (&request);
    http_request_destroy (&request);
    assert (request == NULL);

    //  Retry-After as an HTTP date, header lookup in any case
    {
        http_response_t response = {0};
        s_header_t headers[2] = {{"Content-Type", "text/plain"}, {"Retry-After", "x"}};
        response.headers = headers;
        response.header_count = 2;
        assert (http_response_retry_after (&response) == -1);
        headers[1].value = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert (http_response_retry_after (&response) == 0);
        assert (strcmp (http_response_header (&response, "content-TYPE"), "text/plain")
                == 0);
        assert (http_response_header (&response, "missing") == NULL);
        assert (strcmp (http_response_header_name (&response, 1), "Retry-After") == 0);
        assert (http_response_header_value (&response, 2) == NULL);
        assert (strcmp (http_error_name (HTTP_ERR_IDLE), "idle_timeout") == 0);
    }
    //  @end
    printf ("OK\n");
}
