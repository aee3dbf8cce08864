/*  edge_metrics: counters, histograms and the Prometheus text format.            */
#include "edge_metrics.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double s_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25,  0.5,    1,     2.5,  5,     10};
#define S_BUCKETS (sizeof s_buckets / sizeof s_buckets[0])
#define S_MAX_SERIES 1024  //  bound on distinct label sets (routes are a fixed set)

typedef struct {
    char *route;     //  route pattern label
    char *method;    //  request method label
    int status;      //  response status label
    uint64_t count;  //  requests counted
} s_counter_t;

typedef struct {
    char *route;                  //  route pattern label
    uint64_t buckets[S_BUCKETS];  //  non-cumulative counts per bucket
    uint64_t count;               //  observations
    double sum;                   //  sum of observed seconds
} s_histogram_t;

//  Label values of the authentication and budget counters
static const char *s_refusal_reasons[] = {"missing", "invalid", "forbidden",
                                          "unavailable"};
static const char *s_limit_scopes[] = {"user", "key", "ip", "webhook"};
#define S_REASONS (sizeof s_refusal_reasons / sizeof s_refusal_reasons[0])
#define S_SCOPES (sizeof s_limit_scopes / sizeof s_limit_scopes[0])

struct _edge_metrics_t {
    s_counter_t *counters;        //  request counters
    size_t counter_count;         //  used entries
    s_histogram_t *histograms;    //  per-route latency
    size_t histogram_count;       //  used entries
    uint64_t sse_dropped;         //  SSE streams dropped for a full queue
    uint64_t ws_dropped;          //  WebSocket connections dropped for a full queue
    uint64_t refused[S_REASONS];  //  requests refused by authentication, by reason
    uint64_t limited[S_SCOPES];   //  requests over their budget, by scope
    uint64_t rate_errors;         //  budget checks Redis did not answer in time
};

edge_metrics_t *
edge_metrics_new (void)
{
    edge_metrics_t *self = calloc (1, sizeof *self);
    assert (self);
    self->counters = calloc (S_MAX_SERIES, sizeof *self->counters);
    self->histograms = calloc (S_MAX_SERIES, sizeof *self->histograms);
    assert (self->counters && self->histograms);
    return self;
}

void
edge_metrics_destroy (edge_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    edge_metrics_t *self = *self_p;
    for (size_t i = 0; i < self->counter_count; i++) {
        free (self->counters[i].route);
        free (self->counters[i].method);
    }
    for (size_t i = 0; i < self->histogram_count; i++)
        free (self->histograms[i].route);
    free (self->counters);
    free (self->histograms);
    free (self);
    *self_p = NULL;
}

void
edge_metrics_request (edge_metrics_t *self, const char *route, const char *method,
                      int status, double seconds)
{
    s_counter_t *counter = NULL;
    for (size_t i = 0; i < self->counter_count && !counter; i++)
        if (self->counters[i].status == status
            && strcmp (self->counters[i].route, route) == 0
            && strcmp (self->counters[i].method, method) == 0)
            counter = &self->counters[i];
    if (!counter && self->counter_count < S_MAX_SERIES) {
        counter = &self->counters[self->counter_count++];
        counter->route = strdup (route);
        counter->method = strdup (method);
        counter->status = status;
        assert (counter->route && counter->method);
    }
    if (counter)
        counter->count++;

    s_histogram_t *histogram = NULL;
    for (size_t i = 0; i < self->histogram_count && !histogram; i++)
        if (strcmp (self->histograms[i].route, route) == 0)
            histogram = &self->histograms[i];
    if (!histogram && self->histogram_count < S_MAX_SERIES) {
        histogram = &self->histograms[self->histogram_count++];
        histogram->route = strdup (route);
        assert (histogram->route);
    }
    if (!histogram)
        return;
    size_t b = 0;
    while (b < S_BUCKETS && seconds > s_buckets[b])
        b++;
    if (b < S_BUCKETS)
        histogram->buckets[b]++;
    histogram->count++;
    histogram->sum += seconds;
}

void
edge_metrics_sse_dropped (edge_metrics_t *self)
{
    self->sse_dropped++;
}

void
edge_metrics_ws_dropped (edge_metrics_t *self)
{
    self->ws_dropped++;
}

void
edge_metrics_auth_refused (edge_metrics_t *self, const char *reason)
{
    for (size_t i = 0; i < S_REASONS; i++)
        if (strcmp (s_refusal_reasons[i], reason) == 0)
            self->refused[i]++;
}

void
edge_metrics_rate_limited (edge_metrics_t *self, const char *scope)
{
    for (size_t i = 0; i < S_SCOPES; i++)
        if (strcmp (s_limit_scopes[i], scope) == 0)
            self->limited[i]++;
}

void
edge_metrics_rate_error (edge_metrics_t *self)
{
    self->rate_errors++;
}

size_t
edge_metrics_escape (char *buf, size_t size, const char *value)
{
    size_t out = 0;
    if (size == 0)
        return 0;
    for (const char *s = value; *s; s++) {
        const char *rep = NULL;
        char one[2] = {*s, 0};
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '"')
            rep = "\\\"";
        else if (*s == '\n')
            rep = "\\n";
        else
            rep = one;
        size_t len = strlen (rep);
        if (out + len >= size)
            break;
        memcpy (buf + out, rep, len);
        out += len;
    }
    buf[out] = 0;
    return out;
}

//  Print a value as Prometheus prints floats.
static void
s_print_le (FILE *out, double le)
{
    fprintf (out, "%g", le);
}

char *
edge_metrics_render (edge_metrics_t *self, const edge_gauges_t *g, size_t *size)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream (&text, &len);
    assert (out);
    char route[512], method[64], label[256];

    fprintf (out, "# HELP chorus_http_requests_total HTTP requests answered, by route, "
                  "method and status.\n# TYPE chorus_http_requests_total counter\n");
    for (size_t i = 0; i < self->counter_count; i++) {
        s_counter_t *c = &self->counters[i];
        edge_metrics_escape (route, sizeof route, c->route);
        edge_metrics_escape (method, sizeof method, c->method);
        fprintf (out,
                 "chorus_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} "
                 "%llu\n",
                 route, method, c->status, (unsigned long long) c->count);
    }
    fprintf (out, "# HELP chorus_http_request_duration_seconds Time from request to "
                  "the end of the answer, by route.\n"
                  "# TYPE chorus_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < self->histogram_count; i++) {
        s_histogram_t *h = &self->histograms[i];
        edge_metrics_escape (route, sizeof route, h->route);
        uint64_t cumulative = 0;
        for (size_t b = 0; b < S_BUCKETS; b++) {
            cumulative += h->buckets[b];
            fprintf (out,
                     "chorus_http_request_duration_seconds_bucket{route=\"%s\",le=\"",
                     route);
            s_print_le (out, s_buckets[b]);
            fprintf (out, "\"} %llu\n", (unsigned long long) cumulative);
        }
        fprintf (out,
                 "chorus_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                 "%llu\n",
                 route, (unsigned long long) h->count);
        fprintf (out, "chorus_http_request_duration_seconds_sum{route=\"%s\"} %.9g\n",
                 route, h->sum);
        fprintf (out, "chorus_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                 route, (unsigned long long) h->count);
    }
    fprintf (out,
             "# HELP chorus_bus_in_flight Bus requests sent by the edge and not "
             "yet ended.\n# TYPE chorus_bus_in_flight gauge\nchorus_bus_in_flight "
             "%zu\n",
             g->bus_in_flight);
    fprintf (out,
             "# HELP chorus_bus_brokers_alive Brokers the edge sees alive.\n"
             "# TYPE chorus_bus_brokers_alive gauge\nchorus_bus_brokers_alive %zu\n",
             g->brokers_alive);
    fprintf (out, "# HELP chorus_service_replicas Live replicas per service, from the "
                  "broker's last status.\n# TYPE chorus_service_replicas gauge\n");
    for (size_t i = 0; i < g->services; i++) {
        edge_metrics_escape (label, sizeof label, g->service_names[i]);
        fprintf (out, "chorus_service_replicas{service=\"%s\"} %u\n", label,
                 (unsigned) g->replicas[i]);
    }
    fprintf (out,
             "# HELP chorus_sse_streams_open SSE streams open now.\n"
             "# TYPE chorus_sse_streams_open gauge\nchorus_sse_streams_open %zu\n",
             g->sse_open);
    fprintf (out,
             "# HELP chorus_ws_connections_open WebSocket connections open now.\n"
             "# TYPE chorus_ws_connections_open gauge\n"
             "chorus_ws_connections_open %zu\n",
             g->ws_open);
    fprintf (out,
             "# HELP chorus_sse_dropped_total SSE streams closed because a slow "
             "client let the queue fill.\n# TYPE chorus_sse_dropped_total counter\n"
             "chorus_sse_dropped_total %llu\n",
             (unsigned long long) self->sse_dropped);
    fprintf (out,
             "# HELP chorus_ws_dropped_total WebSocket connections closed because "
             "a slow client let the queue fill.\n"
             "# TYPE chorus_ws_dropped_total counter\nchorus_ws_dropped_total %llu\n",
             (unsigned long long) self->ws_dropped);
    fprintf (out, "# HELP chorus_auth_refusals_total Requests refused by authentication: "
                  "missing or invalid credential (401), forbidden (403), API key not "
                  "checkable (503).\n# TYPE chorus_auth_refusals_total counter\n");
    for (size_t i = 0; i < S_REASONS; i++)
        fprintf (out, "chorus_auth_refusals_total{reason=\"%s\"} %llu\n",
                 s_refusal_reasons[i], (unsigned long long) self->refused[i]);
    fprintf (out, "# HELP chorus_rate_limited_total Requests over their budget (429), by "
                  "user, API key, client address or webhook connection id.\n"
                  "# TYPE chorus_rate_limited_total counter\n");
    for (size_t i = 0; i < S_SCOPES; i++)
        fprintf (out, "chorus_rate_limited_total{scope=\"%s\"} %llu\n", s_limit_scopes[i],
                 (unsigned long long) self->limited[i]);
    fprintf (out,
             "# HELP chorus_rate_limit_errors_total Budget checks Redis did not answer "
             "in time.\n# TYPE chorus_rate_limit_errors_total counter\n"
             "chorus_rate_limit_errors_total %llu\n",
             (unsigned long long) self->rate_errors);
    fclose (out);
    *size = len;
    return text;
}

void
edge_metrics_test (bool verbose)
{
    printf (" * edge_metrics: ");
    char buf[64];
    assert (edge_metrics_escape (buf, sizeof buf, "a\"b\\c\nd") == 10);
    assert (strcmp (buf, "a\\\"b\\\\c\\nd") == 0);
    assert (edge_metrics_escape (buf, 4, "abcdef") == 3);
    assert (strcmp (buf, "abc") == 0);

    edge_metrics_t *metrics = edge_metrics_new ();
    edge_metrics_request (metrics, "/healthz", "GET", 200, 0.0005);
    edge_metrics_request (metrics, "/healthz", "GET", 200, 0.003);
    edge_metrics_request (metrics, "/healthz", "GET", 200, 20);
    edge_metrics_request (metrics, "/we\"ird", "GET", 404, 0.01);
    edge_metrics_sse_dropped (metrics);
    edge_metrics_auth_refused (metrics, "invalid");
    edge_metrics_auth_refused (metrics, "invalid");
    edge_metrics_auth_refused (metrics, "forbidden");
    edge_metrics_auth_refused (metrics, "bogus");
    edge_metrics_rate_limited (metrics, "ip");
    edge_metrics_rate_error (metrics);
    const char *names[] = {"auth", "chat"};
    uint32_t replicas[] = {2, 1};
    edge_gauges_t gauges = {3, 1, 4, 5, 2, names, replicas};
    size_t size = 0;
    char *text = edge_metrics_render (metrics, &gauges, &size);
    assert (text && size == strlen (text));
    if (verbose)
        printf ("\n%s", text);
    assert (strstr (text, "# TYPE chorus_http_requests_total counter\n"));
    assert (strstr (text, "# HELP chorus_http_requests_total "));
    assert (strstr (text, "chorus_http_requests_total{route=\"/healthz\",method=\"GET\","
                          "status=\"200\"} 3\n"));
    assert (strstr (text, "route=\"/we\\\"ird\",method=\"GET\",status=\"404\"} 1\n"));
    assert (strstr (text, "# TYPE chorus_http_request_duration_seconds histogram\n"));
    assert (strstr (text,
                    "chorus_http_request_duration_seconds_bucket{route=\"/healthz\","
                    "le=\"0.001\"} 1\n"));
    assert (strstr (text,
                    "chorus_http_request_duration_seconds_bucket{route=\"/healthz\","
                    "le=\"0.005\"} 2\n"));
    assert (strstr (text,
                    "chorus_http_request_duration_seconds_bucket{route=\"/healthz\","
                    "le=\"10\"} 2\n"));
    assert (strstr (text,
                    "chorus_http_request_duration_seconds_bucket{route=\"/healthz\","
                    "le=\"+Inf\"} 3\n"));
    assert (strstr (
        text, "chorus_http_request_duration_seconds_count{route=\"/healthz\"} 3\n"));
    assert (strstr (text, "chorus_bus_in_flight 3\n"));
    assert (strstr (text, "chorus_bus_brokers_alive 1\n"));
    assert (strstr (text, "chorus_service_replicas{service=\"auth\"} 2\n"));
    assert (strstr (text, "chorus_sse_streams_open 4\n"));
    assert (strstr (text, "chorus_ws_connections_open 5\n"));
    assert (strstr (text, "chorus_sse_dropped_total 1\n"));
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"invalid\"} 2\n"));
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"forbidden\"} 1\n"));
    assert (strstr (text, "chorus_auth_refusals_total{reason=\"missing\"} 0\n"));
    assert (strstr (text, "chorus_rate_limited_total{scope=\"ip\"} 1\n"));
    assert (strstr (text, "chorus_rate_limited_total{scope=\"user\"} 0\n"));
    assert (strstr (text, "chorus_rate_limited_total{scope=\"webhook\"} 0\n"));
    assert (strstr (text, "chorus_rate_limit_errors_total 1\n"));
    //  Every line is a comment or "name{labels} value" ending in a newline.
    for (char *line = text; *line;) {
        char *nl = strchr (line, '\n');
        assert (nl);
        assert (line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
        if (line[0] == '#')
            assert (strncmp (line, "# HELP ", 7) == 0
                    || strncmp (line, "# TYPE ", 7) == 0);
        line = nl + 1;
    }
    free (text);
    edge_metrics_destroy (&metrics);
    edge_metrics_destroy (&metrics);
    printf ("OK\n");
}
