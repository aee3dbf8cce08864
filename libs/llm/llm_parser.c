/*  llm_parser: the provider-neutral half of the stream parsers. It splits the
    body into SSE events or lines (http_sse_parser, http_lines), hands them to
    the provider's own parser (llm_openai, llm_anthropic, llm_gemini,
    llm_ollama, llm_n8n), and gives those the event helpers that keep the
    stream's promises: nothing after DONE or ERROR, USAGE once before DONE, and
    every buffer bounded.                                                       */
#include "llm_parser.h"
#include "llm_private.h"

#include "llm_anthropic.h"
#include "llm_gemini.h"
#include "llm_n8n.h"
#include "llm_ollama.h"
#include "llm_openai.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_MAX_EVENT (1024 * 1024)
#define S_SMALL_PIECE 256  //  pieces shorter are copied on the stack

//  ---------------------------------------------------------------------------
//  Splitting the body

//  http_sse_parser callback: one event to the provider's parser.
static int
s_on_sse (const http_sse_event_t *event, void *arg)
{
    llm_parser_t *self = (llm_parser_t *) arg;
    if (self->ended)
        return -1;
    switch (self->provider) {
        case LLM_PROVIDER_OPENAI:
            return llm_openai_on_event (self, event);
        case LLM_PROVIDER_ANTHROPIC:
            return llm_anthropic_on_event (self, event);
        case LLM_PROVIDER_GEMINI:
            return llm_gemini_on_event (self, event);
        default:
            return llm_n8n_on_event (self, event);
    }
}

//  http_lines callback: one line to the provider's parser.
static int
s_on_line (const char *line, size_t size, void *arg)
{
    llm_parser_t *self = (llm_parser_t *) arg;
    if (self->ended)
        return -1;
    if (self->provider == LLM_PROVIDER_OLLAMA)
        return llm_ollama_on_line (self, line, size);
    return llm_n8n_on_line (self, line, size);
}

llm_parser_t *
llm_parser_new (llm_provider_t provider, size_t max_event, llm_parser_fn *fn, void *arg)
{
    assert (fn);
    if (provider >= LLM_PROVIDER_OFFLINE)
        return NULL;
    llm_parser_t *self = calloc (1, sizeof (llm_parser_t));
    assert (self);
    self->provider = provider;
    self->fn = fn;
    self->arg = arg;
    self->max_event = max_event ? max_event : S_DEFAULT_MAX_EVENT;
    self->prompt_tokens = -1;
    self->completion_tokens = -1;
    zuuid_t *uuid = zuuid_new ();
    assert (uuid);
    memcpy (&self->id_seed, zuuid_data (uuid), sizeof self->id_seed);
    zuuid_destroy (&uuid);
    if (provider == LLM_PROVIDER_OLLAMA || provider == LLM_PROVIDER_N8N)
        self->lines = http_lines_new (self->max_event);
    if (provider != LLM_PROVIDER_OLLAMA)
        self->sse = http_sse_parser_new (self->max_event);
    return self;
}

void
llm_parser_destroy (llm_parser_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    llm_parser_t *self = *self_p;
    http_sse_parser_destroy (&self->sse);
    http_lines_destroy (&self->lines);
    json_decref (self->replay);
    free (self->body);
    free (self->blocks);
    free (self->openai_prefix);
    free (self);
    *self_p = NULL;
}

void
llm_parser_set_content_type (llm_parser_t *self, const char *content_type)
{
    assert (self);
    size_t used = 0;
    const char *c = content_type ? content_type : "";
    while (*c == ' ')
        c++;
    for (; *c && *c != ';' && *c != ' ' && used < sizeof self->content_type - 1; c++)
        self->content_type[used++] = (char) tolower ((unsigned char) *c);
    self->content_type[used] = 0;
    self->content_type_set = true;
}

int
llm_parser_feed (llm_parser_t *self, const void *data, size_t size)
{
    assert (self);
    if (self->ended)
        return -1;
    if (self->provider == LLM_PROVIDER_N8N)
        return llm_n8n_feed (self, data, size);
    int rc;
    if (self->sse) {
        rc = http_sse_parser_feed (self->sse, data, size, s_on_sse, self);
        if (rc && !self->ended && http_sse_parser_overflow (self->sse))
            llm_parser_bad (self, "an event is over the size limit");
    }
    else {
        rc = http_lines_feed (self->lines, data, size, s_on_line, self);
        if (rc && !self->ended && http_lines_overflow (self->lines))
            llm_parser_bad (self, "a line is over the size limit");
    }
    return self->ended ? -1 : 0;
}

void
llm_parser_finish (llm_parser_t *self)
{
    assert (self);
    if (self->ended)
        return;
    switch (self->provider) {
        case LLM_PROVIDER_OLLAMA: {
            int rc = http_lines_finish (self->lines, s_on_line, self);
            (void) rc;  //  a last line without newline still counts
            break;
        }
        case LLM_PROVIDER_GEMINI:
            llm_gemini_finish (self);
            break;
        case LLM_PROVIDER_N8N:
            llm_n8n_finish (self);
            break;
        default:
            break;
    }
    if (!self->ended)
        llm_parser_emit_error (self, LLM_ERROR_STREAM_BROKEN,
                               "the stream ended before its end marker", 0, -1);
}

bool
llm_parser_ended (llm_parser_t *self)
{
    assert (self);
    return self->ended;
}

bool
llm_parser_delivered (llm_parser_t *self)
{
    assert (self);
    return self->delivered;
}

//  ---------------------------------------------------------------------------
//  Event helpers for the provider parsers

//  Hand an event to fn; -1 when the stream is over or fn stopped it.
static int
s_emit (llm_parser_t *self, llm_event_t *event)
{
    if (self->ended)
        return -1;
    if (event->type == LLM_EVENT_DONE || event->type == LLM_EVENT_ERROR)
        self->ended = true;
    else
        self->delivered = true;
    if (self->fn (event, self->arg))
        self->ended = true;
    return self->ended ? -1 : 0;
}

int
llm_parser_emit_delta (llm_parser_t *self, const char *text, size_t size)
{
    assert (self);
    if (size == 0)
        return self->ended ? -1 : 0;
    char small[S_SMALL_PIECE];  //  a token's text, mostly: no malloc for it
    char *copy = size < sizeof small ? small : malloc (size + 1);
    assert (copy);
    memcpy (copy, text, size);
    copy[size] = 0;
    llm_event_t event = {.type = LLM_EVENT_DELTA, .text = copy, .text_size = size};
    int rc = s_emit (self, &event);
    if (copy != small)
        free (copy);
    return rc;
}

int
llm_parser_emit_tool (llm_parser_t *self, int index, const char *id, const char *name,
                      const char *arguments, size_t size)
{
    assert (self);
    char small[S_SMALL_PIECE];
    char *copy = size < sizeof small ? small : malloc (size + 1);
    assert (copy);
    if (size)
        memcpy (copy, arguments, size);
    copy[size] = 0;
    llm_event_t event = {.type = LLM_EVENT_TOOL_CALL,
                         .index = index,
                         .id = id,
                         .name = name,
                         .arguments = copy,
                         .arguments_size = size};
    int rc = s_emit (self, &event);
    if (copy != small)
        free (copy);
    return rc;
}

int
llm_parser_emit_tool_delta (llm_parser_t *self, int index, const char *id,
                            const char *name, const char *arguments, size_t size)
{
    assert (self);
    if (index < 0 || index >= LLM_MAX_TOOL_CALLS)
        return llm_parser_bad (self, "a tool call index is out of range");
    char made[40];
    uint64_t bit = (uint64_t) 1 << (index % 64);
    if (!(self->tool_seen[index / 64] & bit)) {
        self->tool_seen[index / 64] |= bit;
        self->tools = index + 1 > self->tools ? index + 1 : self->tools;
        if (!id || !*id) {
            llm_parser_call_id (self, index, made, sizeof made);
            id = made;
        }
        return llm_parser_emit_tool (self, index, id, name ? name : "", arguments, size);
    }
    if (size == 0)
        return 0;
    return llm_parser_emit_tool (self, index, NULL, NULL, arguments, size);
}

int
llm_parser_emit_done (llm_parser_t *self, const char *finish)
{
    assert (self);
    if (!self->finish[0] && (!finish || !*finish) && self->tools)
        finish = "tool_calls";
    if (self->usage && !self->usage_sent) {
        self->usage_sent = true;
        llm_event_t usage = {.type = LLM_EVENT_USAGE,
                             .prompt_tokens = self->prompt_tokens,
                             .completion_tokens = self->completion_tokens};
        if (s_emit (self, &usage))
            return -1;
    }
    llm_parser_set_finish (self, finish);
    char *replay = NULL;
    if (self->replay && json_array_size (self->replay))
        replay = json_dumps (self->replay, JSON_COMPACT);
    llm_event_t event = {.type = LLM_EVENT_DONE,
                         .finish = self->finish[0] ? self->finish : "stop",
                         .replay = replay};
    s_emit (self, &event);
    free (replay);
    return -1;
}

int
llm_parser_emit_error (llm_parser_t *self, llm_error_t code, const char *message,
                       long status, int64_t retry_after)
{
    assert (self);
    llm_event_t event = {.type = LLM_EVENT_ERROR,
                         .code = code,
                         .text = message ? message : "",
                         .text_size = message ? strlen (message) : 0,
                         .status = status,
                         .retry_after = retry_after};
    s_emit (self, &event);
    return -1;
}

int
llm_parser_bad (llm_parser_t *self, const char *what)
{
    char message[256];
    snprintf (message, sizeof message, "%s response: %s",
              llm_provider_name (self->provider), what);
    return llm_parser_emit_error (self, LLM_ERROR_BAD_RESPONSE, message, 0, -1);
}

json_t *
llm_parser_json (llm_parser_t *self, const char *data, size_t size)
{
    json_error_t error;
    json_t *root = json_loadb (data, size, JSON_DECODE_ANY, &error);
    if (!root)
        llm_parser_bad (self, "a payload is not JSON");
    return root;
}

void
llm_parser_call_id (llm_parser_t *self, int index, char *buf, size_t size)
{
    snprintf (buf, size, "call_%016llx%08x", (unsigned long long) self->id_seed,
              (unsigned) index);
}

void
llm_parser_set_finish (llm_parser_t *self, const char *finish)
{
    if (finish && *finish && !self->finish[0])
        snprintf (self->finish, sizeof self->finish, "%s", finish);
}

int
llm_parser_replay_append (llm_parser_t *self, json_t *value, size_t size)
{
    if (self->replay_bytes + size > self->max_event * 4) {
        json_decref (value);
        return llm_parser_bad (self, "the answer's replay data is over the size limit");
    }
    if (!self->replay)
        self->replay = json_array ();
    json_array_append_new (self->replay, value);
    self->replay_bytes += size;
    return 0;
}

llm_error_t
llm_error_for_status (long status)
{
    if (status == 401 || status == 403)
        return LLM_ERROR_UNAUTHORIZED;
    if (status == 429)
        return LLM_ERROR_RATE_LIMITED;
    return LLM_ERROR_UPSTREAM;
}

//  Seconds of a protobuf Duration text ("37s", "1.5s"), rounded up; -1 if none.
static int64_t
s_duration (const char *text)
{
    if (!text)
        return -1;
    char *end;
    double seconds = strtod (text, &end);
    if (end == text || *end != 's' || seconds < 0 || seconds > 86400 * 7)
        return -1;
    return (int64_t) ceil (seconds);
}

llm_error_t
llm_error_from_json (json_t *root, long status, char *message, size_t size,
                     int64_t *retry_after)
{
    assert (message && size);
    message[0] = 0;
    if (json_is_array (root))
        root = json_array_get (root, 0);
    json_t *error = json_object_get (root, "error");
    const char *text = NULL, *type = NULL;
    long code = 0;
    bool key_invalid = false;  //  Google's ErrorInfo says the key was refused
    if (json_is_object (error)) {
        text = json_string_value (json_object_get (error, "message"));
        type = json_string_value (json_object_get (error, "type"));
        if (!type)
            type = json_string_value (json_object_get (error, "status"));
        if (!type)
            type = json_string_value (json_object_get (error, "code"));
        if (json_is_integer (json_object_get (error, "code")))
            code = (long) json_integer_value (json_object_get (error, "code"));
        json_t *detail;
        size_t i;
        json_array_foreach (json_object_get (error, "details"), i, detail)
        {
            const char *at = json_string_value (json_object_get (detail, "@type"));
            int64_t delay = s_duration (
                json_string_value (json_object_get (detail, "retryDelay")));
            if (at && strstr (at, "RetryInfo") && delay >= 0 && retry_after)
                *retry_after = delay;
            const char *reason = json_string_value (json_object_get (detail, "reason"));
            if (reason && strcmp (reason, "API_KEY_INVALID") == 0)
                key_invalid = true;  //  Gemini answers a bad key with 400
        }
    }
    else if (json_is_string (error))
        text = json_string_value (error);
    const char *keys[] = {"message", "detail", "error_message", "content"};
    for (size_t i = 0; !text && i < sizeof keys / sizeof keys[0]; i++)
        text = json_string_value (json_object_get (root, keys[i]));
    if (text)
        snprintf (message, size, "%s", text);
    else if (type)
        snprintf (message, size, "%s", type);
    if (key_invalid)
        return LLM_ERROR_UNAUTHORIZED;
    if (status)
        return llm_error_for_status (status);
    if (code == 401 || code == 403 || code == 429)
        return llm_error_for_status (code);
    if (type) {
        const char *rate[] = {"rate_limit_error", "rate_limit_exceeded",
                              "RESOURCE_EXHAUSTED"};
        const char *auth[] = {"authentication_error", "permission_error",
                              "invalid_api_key", "UNAUTHENTICATED", "PERMISSION_DENIED"};
        for (size_t i = 0; i < 3; i++)
            if (strcmp (type, rate[i]) == 0)
                return LLM_ERROR_RATE_LIMITED;
        for (size_t i = 0; i < 5; i++)
            if (strcmp (type, auth[i]) == 0)
                return LLM_ERROR_UNAUTHORIZED;
    }
    return LLM_ERROR_UPSTREAM;
}

//  ---------------------------------------------------------------------------
//  Fuzzing

typedef struct {
    char *log;        //  events, one line each
    size_t size;      //  bytes in log
    size_t capacity;  //  bytes allocated
    int terminals;    //  DONE and ERROR events
    int after;        //  events after a terminal one
} s_log_t;

//  Append an event to the log, counting terminal events and what follows them.
static int
s_fuzz_on_event (const llm_event_t *event, void *arg)
{
    s_log_t *log = (s_log_t *) arg;
    if (log->terminals)
        log->after++;
    if (event->type == LLM_EVENT_DONE || event->type == LLM_EVENT_ERROR)
        log->terminals++;
    size_t needed = llm_event_format (event, NULL, 0) + 2;
    if (log->size + needed > log->capacity) {
        log->capacity = (log->size + needed) * 2;
        log->log = realloc (log->log, log->capacity);
        assert (log->log);
    }
    llm_event_format (event, log->log + log->size, needed);
    log->size += needed - 2;
    log->log[log->size++] = '\n';
    log->log[log->size] = 0;
    return 0;
}

//  Parse data fed in chunks of step bytes (0: whole) into log.
static void
s_fuzz_run (llm_provider_t provider, const char *content_type, const uint8_t *data,
            size_t size, size_t step, bool general, s_log_t *log)
{
    llm_parser_t *parser = llm_parser_new (provider, 2048, s_fuzz_on_event, log);
    assert (parser);
    parser->general_json = general;
    parser->id_seed = 0;  //  made-up ids must match across runs
    if (content_type)
        llm_parser_set_content_type (parser, content_type);
    size_t done = 0;
    while (done < size) {
        size_t n = step && size - done > step ? step : size - done;
        if (llm_parser_feed (parser, data + done, n))
            break;
        done += n;
    }
    llm_parser_finish (parser);
    assert (llm_parser_ended (parser));
    llm_parser_destroy (&parser);
    assert (log->terminals == 1 && log->after == 0);
}

char *
llm_parser_run (llm_provider_t provider, const char *content_type, const char *data,
                size_t step)
{
    s_log_t log = {0};
    s_fuzz_run (provider, content_type, (const uint8_t *) data, strlen (data), step,
                false, &log);
    return log.log;
}

bool
llm_json_same (const char *actual, const char *expected)
{
    json_t *a = json_loads (actual, 0, NULL);
    json_t *b = json_loads (expected, 0, NULL);
    assert (b);  //  our own golden text
    bool same = a && json_equal (a, b);
    if (!same)
        fprintf (stderr, "\nJSON differs:\n actual:   %s\n expected: %s\n", actual,
                 expected);
    json_decref (a);
    json_decref (b);
    return same;
}

int
llm_parser_fuzz (llm_provider_t provider, const uint8_t *data, size_t size)
{
    if (provider >= LLM_PROVIDER_OFFLINE)
        return 0;
    const char *types[] = {NULL, "application/json", "text/event-stream", "text/plain",
                           "application/x-ndjson; charset=utf-8"};
    //  The first byte picks the Content-Type (for n8n) and the chunk size
    const char *content_type = size ? types[data[0] % 5] : NULL;
    size_t chunk = size ? 1 + (data[0] >> 3) : 1;
    if (size) {
        data++;
        size--;
    }
    s_log_t whole = {0}, bytes = {0}, chunks = {0}, general = {0};
    s_fuzz_run (provider, content_type, data, size, 0, false, &whole);
    s_fuzz_run (provider, content_type, data, size, 1, false, &bytes);
    s_fuzz_run (provider, content_type, data, size, chunk, false, &chunks);
    //  OpenAI chunks: llm_openai_chunk gives what the general reader gives
    s_fuzz_run (provider, content_type, data, size, 0, true, &general);
    if (whole.size != bytes.size || memcmp (whole.log, bytes.log, whole.size)
        || whole.size != chunks.size || memcmp (whole.log, chunks.log, whole.size)
        || whole.size != general.size || memcmp (whole.log, general.log, whole.size)) {
        fprintf (stderr,
                 "llm_parser_fuzz: events differ\n--- whole\n%s--- bytes\n%s"
                 "--- general JSON reader\n%s",
                 whole.log, bytes.log, general.log);
        abort ();
    }
    free (whole.log);
    free (bytes.log);
    free (chunks.log);
    free (general.log);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Selftest: the shared parts; each provider module tests its own format

typedef struct {
    int events;      //  events seen
    int stop_at;     //  return non-zero at this event
    char last[256];  //  last event, formatted
} s_test_t;

//  Count events and keep the last one.
static int
s_test_on_event (const llm_event_t *event, void *arg)
{
    s_test_t *t = (s_test_t *) arg;
    t->events++;
    llm_event_format (event, t->last, sizeof t->last);
    return t->stop_at && t->events == t->stop_at;
}

void
llm_parser_test (bool verbose)
{
    printf (" * llm_parser: ");
    //  @selftest
    s_test_t t = {0};
    assert (llm_parser_new (LLM_PROVIDER_OFFLINE, 0, s_test_on_event, &t) == NULL);

    //  An event over the limit is a bad response; nothing after the end
    llm_parser_t *parser = llm_parser_new (LLM_PROVIDER_OPENAI, 64, s_test_on_event, &t);
    char big[200];
    memset (big, 'x', sizeof big);
    memcpy (big, "data: ", 6);
    assert (llm_parser_feed (parser, big, sizeof big) == -1);
    assert (llm_parser_ended (parser) && !llm_parser_delivered (parser));
    assert (t.events == 1 && strstr (t.last, "error bad_response"));
    assert (llm_parser_feed (parser, "data: [DONE]\n\n", 14) == -1);
    llm_parser_finish (parser);
    assert (t.events == 1);
    llm_parser_destroy (&parser);
    llm_parser_destroy (&parser);

    //  fn can stop the stream
    t = (s_test_t){.stop_at = 1};
    parser = llm_parser_new (LLM_PROVIDER_OLLAMA, 0, s_test_on_event, &t);
    const char
        *lines = "{\"message\":{\"role\":\"assistant\",\"content\":\"a\"},"
                 "\"done\":false}\n{\"message\":{\"content\":\"b\"},\"done\":false}\n";
    assert (llm_parser_feed (parser, lines, strlen (lines)) == -1);
    assert (t.events == 1 && strcmp (t.last, "delta a") == 0);
    assert (llm_parser_delivered (parser));
    llm_parser_finish (parser);
    assert (t.events == 1);
    llm_parser_destroy (&parser);

    //  Error members, whatever their shape
    char message[64];
    int64_t retry = -1;
    json_t *root = json_loads (
        "[{\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":"
        "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/"
        "google.rpc.RetryInfo\",\"retryDelay\":\"36.2s\"}]}}]",
        0, NULL);
    assert (llm_error_from_json (root, 0, message, sizeof message, &retry)
            == LLM_ERROR_RATE_LIMITED);
    assert (strcmp (message, "Quota exceeded") == 0 && retry == 37);
    json_decref (root);
    root = json_loads ("{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                       "\"message\":\"invalid x-api-key\"}}",
                       0, NULL);
    assert (llm_error_from_json (root, 0, message, sizeof message, NULL)
            == LLM_ERROR_UNAUTHORIZED);
    assert (strcmp (message, "invalid x-api-key") == 0);
    assert (llm_error_from_json (root, 500, message, sizeof message, NULL)
            == LLM_ERROR_UPSTREAM);
    json_decref (root);
    root = json_loads ("{\"error\":\"model 'x' not found\"}", 0, NULL);
    assert (llm_error_from_json (root, 404, message, sizeof message, NULL)
            == LLM_ERROR_UPSTREAM);
    assert (strcmp (message, "model 'x' not found") == 0);
    json_decref (root);
    assert (llm_error_from_json (NULL, 401, message, sizeof message, NULL)
            == LLM_ERROR_UNAUTHORIZED);
    assert (message[0] == 0);

    //  Fuzz entry point on a few inputs
    const char *inputs[] = {"", "data: {}\n\n", "data: [DONE]\n\n",
                            "\x01{\"done\":true}\n",
                            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"};
    for (int provider = 0; provider < LLM_PROVIDER_COUNT; provider++)
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
            llm_parser_fuzz ((llm_provider_t) provider, (const uint8_t *) inputs[i],
                             strlen (inputs[i]));
    //  @end
    printf ("OK\n");
}
