/*  llm_client_test: the selftest of llm_client, kept in its own file so the
    client stays well under the size where a module should split (STYLE.md).
    Every provider is driven over real sockets through libs/http's test server,
    which serves byte-exact canned streams from the providers' documentation
    and records the requests it receives.                                      */
#include "llm_client.h"
#include "llm_private.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core_waiter.h"
#include "http_test_server.h"
#include "llm_offline.h"

//  Canned streams, as the providers' documentation shows them

static const char *s_openai_text[] = {
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\" world\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
    "data: [DONE]\n\n",
    NULL};
static const char *s_openai_text_events = "delta Hello world\nusage 9 2\ndone stop\n";

static const char *s_openai_tools[] = {
    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
    "[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
    "\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":"
    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
    NULL};
static const char
    *s_openai_tools_events = "tool_call 0 id=call_1 name=get_weather args=\n"
                             "tool_call 0 id=- name=- args={\"city\":\n"
                             "tool_call 0 id=- name=- args=\"Paris\"}\n"
                             "done tool_calls\n";

static const char *s_anthropic[] = {
    "event: message_start\n"
    "data: "
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_"
    "reason\":"
    "null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}"
    "\n\n",
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
    "\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"!\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    NULL};
static const char *s_anthropic_events = "delta Hello!\nusage 25 15\ndone stop\n";

static const char *s_anthropic_error[] = {
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
    "\"text\",\"text\":\"Hi\"}}\n\n",
    "event: error\n"
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
    "\"Overloaded\"}}\n\n",
    NULL};

//  Anthropic's error after message_start, before any text: retried
static const char *s_anthropic_early_error[] = {
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_0\",\"type\":"
    "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"
    "\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
    "{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: error\n"
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
    "\"Overloaded\"}}\n\n",
    NULL};

static const char *s_gemini[] = {
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The "
    "sky\"}],\"role\": "
    "\"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
    "\"candidatesTokenCount\": 2,\"totalTokenCount\": 10}}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is blue.\"}],"
    "\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": "
    "{\"promptTokenCount\": 8,\"candidatesTokenCount\": 5,\"totalTokenCount\": "
    "13}}\r\n\r\n",
    NULL};
static const char *s_gemini_events = "delta The sky is blue.\nusage 8 5\ndone stop\n";

static const char *s_ollama[] = {
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\","
    "\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n",
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.4Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\" sky\"},\"done\":false}\n",
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\","
    "\"total_duration\":4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,"
    "\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}"
    "\n",
    NULL};
static const char *s_ollama_events = "delta The sky\nusage 26 282\ndone stop\n";

static const char *s_n8n[] = {
    "{\"type\":\"begin\",\"metadata\":{\"nodeId\":\"a1\",\"nodeName\":\"AI Agent\","
    "\"timestamp\":1737000000000,\"runIndex\":0,\"itemIndex\":0}}\n",
    "{\"type\":\"item\",\"content\":\"We open \",\"metadata\":{\"nodeId\":\"a1\","
    "\"nodeName\":\"AI Agent\",\"timestamp\":1737000000001,\"runIndex\":0,"
    "\"itemIndex\":0}}\n",
    "{\"type\":\"keepalive\"}\n",
    "{\"type\":\"item\",\"content\":\"at 9.\",\"metadata\":{\"nodeId\":\"a1\","
    "\"nodeName\":\"AI Agent\",\"timestamp\":1737000000002,\"runIndex\":0,"
    "\"itemIndex\":0}}\n",
    "{\"type\":\"end\",\"metadata\":{\"nodeId\":\"a1\",\"nodeName\":\"AI Agent\","
    "\"timestamp\":1737000000003,\"runIndex\":0,\"itemIndex\":0}}\n",
    NULL};
static const char *s_n8n_events = "delta We open at 9.\ndone stop\n";

//  ---------------------------------------------------------------------------
//  Helpers

typedef struct {
    char log[8192];        //  events, one llm_event_format line each (the text of
                           //  DELTAs in a row joined on one line: how the pieces
                           //  are split between reads is the network's choice)
    size_t size;           //  bytes in log
    int events;            //  events seen
    int deltas;            //  DELTA events seen
    bool after_delta;      //  the last event was a DELTA
    llm_stream_t *stream;  //  the stream, freed at its end or cancel
    int cancel_at;         //  cancel the stream at this event
    int *counter;          //  shared count of streams ended or cancelled
    bool in_start;         //  inside llm_stream_start: no event may come
    int64_t ended_at;      //  zclock_mono at the end
} s_run_t;

//  Record an event; free the stream at its end or at cancel_at.
static void
s_on_event (llm_stream_t *stream, const llm_event_t *event, void *arg)
{
    s_run_t *run = (s_run_t *) arg;
    assert (!run->in_start);
    assert (stream == run->stream);
    run->events++;
    bool delta = event->type == LLM_EVENT_DELTA;
    if (delta) {
        run->deltas++;
        assert (event->text_size > 0 && event->text[event->text_size] == 0);
    }
    if (delta && run->after_delta && run->size > 0) {
        run->size--;  //  the text goes on the last line, before its newline
        size_t room = sizeof run->log - run->size - 2;
        size_t n = event->text_size < room ? event->text_size : room;
        memcpy (run->log + run->size, event->text, n);
        run->size += n;
    }
    else {
        size_t room = sizeof run->log - run->size;
        size_t n = llm_event_format (event, run->log + run->size, room);
        run->size += n < room ? n : room - 1;
    }
    if (run->size < sizeof run->log - 1)
        run->log[run->size++] = '\n';
    run->log[run->size] = 0;
    run->after_delta = delta;
    bool terminal = event->type == LLM_EVENT_DONE || event->type == LLM_EVENT_ERROR;
    if (terminal || (run->cancel_at && run->events == run->cancel_at)) {
        assert (terminal == llm_stream_ended (stream));
        run->ended_at = zclock_mono ();
        llm_stream_cancel (&run->stream);
        assert (run->stream == NULL);
        if (run->counter)
            (*run->counter)++;
    }
}

//  Start a stream for run; asserts it starts.
static void
s_start (llm_client_t *llm, llm_request_t *request, s_run_t *run, int *counter)
{
    char error[256];
    run->counter = counter;
    run->in_start = true;
    run->stream = llm_stream_start (llm, request, s_on_event, run, error, sizeof error);
    run->in_start = false;
    assert (run->stream);
}

//  A request to the test server for a provider under path.
static llm_request_t *
s_request (llm_provider_t provider, const char *base, const char *path, const char *model)
{
    llm_request_t *request = llm_request_new (provider);
    char url[256];
    snprintf (url, sizeof url, "%s%s", base, path);
    llm_request_set_base_url (request, url);
    llm_request_set_model (request, model);
    int rc = llm_request_add_message (request, "user", "Hello");
    assert (rc == 0);
    return request;
}

//  One scripted response: status, Content-Type (or NULL) and its chunks.
static json_t *
s_response (int status, const char *content_type, const char **chunks)
{
    json_t *response = json_pack ("{s:i, s:[], s:[]}", "status", status, "headers",
                                  "chunks");
    if (content_type)
        json_array_append_new (json_object_get (response, "headers"),
                               json_pack ("[s,s]", "Content-Type", content_type));
    for (size_t i = 0; chunks && chunks[i]; i++)
        json_array_append_new (json_object_get (response, "chunks"),
                               json_string (chunks[i]));
    return response;
}

//  Script path with responses (a JSON array, taken).
static void
s_script (http_test_server_t *server, const char *path, json_t *responses)
{
    char *text = json_dumps (responses, JSON_COMPACT);
    assert (text);
    int rc = http_test_server_script (server, path, text);
    assert (rc == 0);
    free (text);
    json_decref (responses);
}

//  Requests the server got on path.
static json_t *
s_requests (http_test_server_t *server, const char *path)
{
    char *text = http_test_server_requests (server, path);
    assert (text);
    json_t *requests = json_loads (text, 0, NULL);
    assert (json_is_array (requests));
    free (text);
    return requests;
}

//  Header of the index-th request on path, or NULL.
static const char *
s_header (json_t *requests, size_t index, const char *name)
{
    return json_string_value (json_object_get (
        json_object_get (json_array_get (requests, index), "headers"), name));
}

//  Poll the server until the last request on path saw its client go away.
static bool
s_wait_closed (http_test_server_t *server, const char *path)
{
    for (int i = 0; i < 250; i++) {
        json_t *requests = s_requests (server, path);
        json_t *last = json_array_get (requests, json_array_size (requests) - 1);
        bool closed = json_is_true (json_object_get (last, "closed"));
        json_decref (requests);
        if (closed)
            return true;
        zclock_sleep (20);
    }
    return false;
}

//  Cancel a stream from a timer, outside its callbacks.
static int
s_cancel_timer (zloop_t *loop, int timer_id, void *arg)
{
    s_run_t *run = (s_run_t *) arg;
    llm_stream_cancel (&run->stream);
    (*run->counter)++;
    return 0;
}

#define S_PROVIDERS_PATHS 5

void
llm_client_test (bool verbose)
{
    printf (" * llm_client: ");
    if (verbose)
        printf ("\n");
    core_log_t *log = core_log_new ("llm_client_test", verbose ? "debug" : "off");
    http_test_server_t *server = http_test_server_new ();
    assert (server);
    const char *base = http_test_server_url (server);
    zloop_t *loop = zloop_new ();
    http_client_t *http = http_client_new (log);
    http_client_set_idle_resolution (http, 20);
    llm_client_t *llm = llm_client_new (loop, http, log);
    llm_client_set_retry (llm, 3, 50, 2000);
    llm_client_set_offline_pace (llm, 2);
    core_waiter_t *waiter = core_waiter_new (loop);
    char error[256];

    //  @selftest
    //  Every provider's canned stream, all at once in the one loop; the exact
    //  request each builder sent
    {
        s_script (
            server, "/oa/chat/completions",
            json_pack ("[o]", s_response (200, "text/event-stream", s_openai_text)));
        s_script (server, "/an/v1/messages",
                  json_pack ("[o]", s_response (200, "text/event-stream", s_anthropic)));
        s_script (server, "/gm/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                  json_pack ("[o]", s_response (200, "text/event-stream", s_gemini)));
        s_script (server, "/ol/api/chat",
                  json_pack ("[o]", s_response (200, "application/x-ndjson", s_ollama)));
        json_t *n8n = s_response (200, "application/json; charset=utf-8", s_n8n);
        json_object_set_new (n8n, "split", json_integer (10));
        s_script (server, "/webhook/brain", json_pack ("[o]", n8n));

        int ended = 0;
        s_run_t runs[S_PROVIDERS_PATHS];
        memset (runs, 0, sizeof runs);
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/oa/",
                                            "gpt-4o-mini");
        llm_request_set_api_key (request, "sk-test");
        llm_request_set_system (request, "Be brief.");
        llm_request_set_temperature (request, 0.5);
        llm_request_set_request_id (request, "req-oa");
        s_start (llm, request, &runs[0], &ended);
        assert (llm_stream_attempts (runs[0].stream) == 0);  //  sent from the loop
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_ANTHROPIC, base, "/an", "claude-sonnet-4-5");
        llm_request_set_api_key (request, "sk-ant-test");
        s_start (llm, request, &runs[1], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_GEMINI, base, "/gm", "gemini-2.5-flash");
        llm_request_set_api_key (request, "AIza-test");
        s_start (llm, request, &runs[2], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_OLLAMA, base, "/ol", "llama3.2");
        s_start (llm, request, &runs[3], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_N8N, base, "/webhook/brain", "");
        llm_request_set_session_id (request, "conv-9");
        s_start (llm, request, &runs[4], &ended);
        llm_request_destroy (&request);
        assert (llm_client_streams (llm) == S_PROVIDERS_PATHS);

        assert (core_waiter_wait_count (waiter, &ended, S_PROVIDERS_PATHS, 10000));
        if (verbose)
            for (int i = 0; i < S_PROVIDERS_PATHS; i++)
                printf ("  %s", runs[i].log);
        assert (strcmp (runs[0].log, s_openai_text_events) == 0);
        assert (strcmp (runs[1].log, s_anthropic_events) == 0);
        assert (strcmp (runs[2].log, s_gemini_events) == 0);
        assert (strcmp (runs[3].log, s_ollama_events) == 0);
        assert (strcmp (runs[4].log, s_n8n_events) == 0);
        assert (llm_client_streams (llm) == 0);

        json_t *requests = s_requests (server, "/oa/chat/completions");
        assert (json_array_size (requests) == 1);
        json_t *first = json_array_get (requests, 0);
        assert (strcmp (json_string_value (json_object_get (first, "method")), "POST")
                == 0);
        assert (strcmp (s_header (requests, 0, "authorization"), "Bearer sk-test") == 0);
        assert (strcmp (s_header (requests, 0, "content-type"), "application/json") == 0);
        assert (strcmp (s_header (requests, 0, "accept"), "text/event-stream") == 0);
        assert (llm_json_same (
            json_string_value (json_object_get (first, "body")),
            "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":"
            "\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hello\"}],\"stream\":true,"
            "\"stream_options\":{\"include_usage\":true},\"temperature\":0.5}"));
        json_decref (requests);
        requests = s_requests (server, "/an/v1/messages");
        assert (strcmp (s_header (requests, 0, "x-api-key"), "sk-ant-test") == 0);
        assert (strcmp (s_header (requests, 0, "anthropic-version"), "2023-06-01") == 0);
        assert (llm_json_same (
            json_string_value (json_object_get (json_array_get (requests, 0), "body")),
            "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,\"messages\":[{"
            "\"role\":"
            "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]}],"
            "\"stream\":true}"));
        json_decref (requests);
        requests = s_requests (
            server, "/gm/v1beta/models/gemini-2.5-flash:streamGenerateContent");
        first = json_array_get (requests, 0);
        assert (
            strcmp (json_string_value (json_object_get (first, "path")),
                    "/gm/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            == 0);
        assert (strcmp (s_header (requests, 0, "x-goog-api-key"), "AIza-test") == 0);
        assert (!strstr (json_string_value (json_object_get (first, "path")), "key="));
        assert (llm_json_same (json_string_value (json_object_get (first, "body")),
                               "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
                               "\"Hello\"}]}]}"));
        json_decref (requests);
        requests = s_requests (server, "/ol/api/chat");
        assert (llm_json_same (
            json_string_value (json_object_get (json_array_get (requests, 0), "body")),
            "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"Hello\"}],\"stream\":true}"));
        assert (s_header (requests, 0, "authorization") == NULL);
        json_decref (requests);
        requests = s_requests (server, "/webhook/brain");
        assert (llm_json_same (
            json_string_value (json_object_get (json_array_get (requests, 0), "body")),
            "{\"action\":\"sendMessage\",\"sessionId\":\"conv-9\",\"chatInput\":"
            "\"Hello\","
            "\"system_prompt\":\"\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"Hello\"}]}"));
        json_decref (requests);
    }
    //  Tool-call deltas delivered byte by byte, slowly; n8n answering one JSON
    //  body, and plain text
    {
        json_t *slow = s_response (200, "text/event-stream", s_openai_tools);
        json_object_set_new (slow, "split", json_integer (1));
        json_object_set_new (slow, "delay_ms", json_integer (1));
        s_script (server, "/slow/chat/completions", json_pack ("[o]", slow));
        const char *body[] = {"{\"output\":\"We open at 9.\"}", NULL};
        json_t *plain = s_response (200, "application/json", body);
        json_object_set_new (plain, "chunked", json_false ());
        s_script (server, "/webhook/json", json_pack ("[o]", plain));
        const char *text[] = {"We open ", "at 9.", NULL};
        s_script (server, "/webhook/text",
                  json_pack ("[o]", s_response (200, "text/plain", text)));
        int ended = 0;
        s_run_t runs[3];
        memset (runs, 0, sizeof runs);
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/slow", "gpt-4o");
        s_start (llm, request, &runs[0], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_N8N, base, "/webhook/json", "");
        s_start (llm, request, &runs[1], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_N8N, base, "/webhook/text", "");
        s_start (llm, request, &runs[2], &ended);
        llm_request_destroy (&request);
        assert (core_waiter_wait_count (waiter, &ended, 3, 20000));
        assert (strcmp (runs[0].log, s_openai_tools_events) == 0);
        assert (strcmp (runs[1].log, "delta We open at 9.\ndone stop\n") == 0);
        assert (strcmp (runs[2].log, "delta We open at 9.\ndone stop\n") == 0);
    }
    //  Text pieces that arrive together go out as one DELTA; paced ones each alone
    {
        const char *head = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
        const char *tail = "\"},\"finish_reason\":null}]}\n\n";
        json_t *burst = s_response (200, "text/event-stream", NULL);
        json_t *paced = s_response (200, "text/event-stream", NULL);
        char piece[160], expected[512] = "delta ";
        for (int i = 0; i < 40; i++) {
            snprintf (piece, sizeof piece, "%s t%d%s", head, i, tail);
            json_array_append_new (json_object_get (burst, "chunks"),
                                   json_string (piece));
            snprintf (piece, sizeof piece, " t%d", i);
            strncat (expected, piece, sizeof expected - strlen (expected) - 1);
            if (i < 3) {
                snprintf (piece, sizeof piece, "%s p%d%s", head, i, tail);
                json_array_append_new (json_object_get (paced, "chunks"),
                                       json_string (piece));
            }
        }
        strncat (expected, "\ndone stop\n", sizeof expected - strlen (expected) - 1);
        json_array_append_new (json_object_get (burst, "chunks"),
                               json_string ("data: [DONE]\n\n"));
        json_array_append_new (json_object_get (paced, "chunks"),
                               json_string ("data: [DONE]\n\n"));
        json_object_set_new (burst, "chunked", json_false ());  //  one write
        json_object_set_new (paced, "delay_ms", json_integer (100));
        s_script (server, "/burst/chat/completions", json_pack ("[o]", burst));
        s_script (server, "/paced/chat/completions", json_pack ("[o]", paced));
        int ended = 0;
        s_run_t runs[2];
        memset (runs, 0, sizeof runs);
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/burst",
                                            "gpt-4o");
        s_start (llm, request, &runs[0], &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_OPENAI, base, "/paced", "gpt-4o");
        s_start (llm, request, &runs[1], &ended);
        llm_request_destroy (&request);
        assert (core_waiter_wait_count (waiter, &ended, 2, 10000));
        if (verbose)
            printf ("\n   burst: %d deltas, paced: %d ", runs[0].deltas, runs[1].deltas);
        assert (strcmp (runs[0].log, expected) == 0);
        assert (runs[0].deltas <= 2);  //  40 pieces in one or two reads
        assert (strcmp (runs[1].log, "delta  p0 p1 p2\ndone stop\n") == 0);
        assert (runs[1].deltas >= 2);  //  100 ms apart: not joined
    }
    //  Failures: 401 (no retry), an error event mid-stream (after text: not
    //  retried; before any: retried, the last case), a stream that ends
    //  cleanly without [DONE], one cut off, 429 with Retry-After then success,
    //  503 twice then success, always 500, 429 asking too long a wait,
    //  Gemini's own retry hint in the body, connection refused
    {
        const char *unauthorized[] = {
            "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":"
            "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
            NULL};
        s_script (server, "/e401/chat/completions",
                  json_pack ("[o]", s_response (401, "application/json", unauthorized)));
        s_script (
            server, "/emid/v1/messages",
            json_pack ("[o]", s_response (200, "text/event-stream", s_anthropic_error)));
        const char **no_done = s_openai_text;
        json_t *clean = s_response (200, "text/event-stream", NULL);
        for (int i = 0; no_done[i + 1]; i++)
            json_array_append_new (json_object_get (clean, "chunks"),
                                   json_string (no_done[i]));
        s_script (server, "/eclean/chat/completions", json_pack ("[o]", clean));
        json_t *cut = s_response (200, "text/event-stream", s_openai_text);
        json_array_remove (json_object_get (cut, "chunks"), 5);
        json_object_set_new (cut, "cut", json_true ());
        s_script (server, "/ecut/chat/completions", json_pack ("[o]", cut));

        const char *limited[] = {
            "{\"error\":{\"message\":\"Rate limit reached\","
            "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}",
            NULL};
        json_t *first = s_response (429, "application/json", limited);
        json_array_append_new (json_object_get (first, "headers"),
                               json_pack ("[s,s]", "Retry-After", "1"));
        s_script (server, "/e429/chat/completions",
                  json_pack ("[o,o]", first,
                             s_response (200, "text/event-stream", s_openai_text)));
        s_script (
            server, "/eearly/v1/messages",
            json_pack ("[o,o]",
                       s_response (200, "text/event-stream", s_anthropic_early_error),
                       s_response (200, "text/event-stream", s_anthropic)));
        s_script (server, "/e503/chat/completions",
                  json_pack ("[o,o,o]", s_response (503, "text/plain", NULL),
                             s_response (503, "text/plain", NULL),
                             s_response (200, "text/event-stream", s_openai_text)));
        const char *overloaded[] = {"upstream overloaded", NULL};
        s_script (server, "/e500/chat/completions",
                  json_pack ("[o]", s_response (500, "text/plain", overloaded)));
        json_t *too_long = s_response (429, "application/json", limited);
        json_array_append_new (json_object_get (too_long, "headers"),
                               json_pack ("[s,s]", "Retry-After", "60"));
        s_script (server, "/elong/chat/completions", json_pack ("[o]", too_long));
        const char *quota[] = {
            "[{\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted\", "
            "\"status\": \"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\": "
            "\"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"0.4s\"}]}}]",
            NULL};
        s_script (server, "/eg/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                  json_pack ("[o,o]", s_response (429, "application/json", quota),
                             s_response (200, "text/event-stream", s_gemini)));
        //  A bound socket that does not listen refuses connections
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        assert (fd >= 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        socklen_t addr_size = sizeof addr;
        int rc = bind (fd, (struct sockaddr *) &addr, sizeof addr);
        assert (rc == 0);
        rc = getsockname (fd, (struct sockaddr *) &addr, &addr_size);
        assert (rc == 0);
        char refused[64];
        snprintf (refused, sizeof refused, "http://127.0.0.1:%d", ntohs (addr.sin_port));

        struct {
            llm_provider_t provider;  //  who
            const char *path;         //  base path
            const char *model;        //  model
            const char *expect;       //  events
            int requests;             //  requests the server should see
        } cases[] = {
            {LLM_PROVIDER_OPENAI, "/e401", "gpt-4o",
             "error unauthorized 401 -1 Incorrect API key provided\n", 1},
            {LLM_PROVIDER_ANTHROPIC, "/emid", "claude-sonnet-4-5",
             "delta Hi\nerror upstream_error 0 -1 Overloaded\n", 1},
            {LLM_PROVIDER_OPENAI, "/eclean", "gpt-4o",
             "delta Hello world\nerror stream_broken 0 -1 the stream ended before "
             "its end marker\n",
             1},
            {LLM_PROVIDER_OPENAI, "/ecut", "gpt-4o", "delta Hello world\n", 1},
            {LLM_PROVIDER_OPENAI, "/e429", "gpt-4o", s_openai_text_events, 2},
            {LLM_PROVIDER_OPENAI, "/e503", "gpt-4o", s_openai_text_events, 3},
            {LLM_PROVIDER_OPENAI, "/e500", "gpt-4o",
             "error upstream_error 500 -1 upstream overloaded\n", 3},
            {LLM_PROVIDER_OPENAI, "/elong", "gpt-4o",
             "error rate_limited 429 60 Rate limit reached\n", 1},
            {LLM_PROVIDER_GEMINI, "/eg", "gemini-2.5-pro", s_gemini_events, 2},
            {LLM_PROVIDER_ANTHROPIC, "/eearly", "claude-sonnet-4-5", s_anthropic_events,
             2},
            {LLM_PROVIDER_OPENAI, NULL, "gpt-4o", "error upstream_error 0 -1 ", 0},
        };
        const size_t count = sizeof cases / sizeof cases[0];
        s_run_t runs[sizeof cases / sizeof cases[0]];
        memset (runs, 0, sizeof runs);
        int ended = 0;
        int64_t started = zclock_mono ();
        for (size_t i = 0; i < count; i++) {
            llm_request_t *request = cases[i].path
                                         ? s_request (cases[i].provider, base,
                                                      cases[i].path, cases[i].model)
                                         : s_request (cases[i].provider, refused, "",
                                                      cases[i].model);
            s_start (llm, request, &runs[i], &ended);
            llm_request_destroy (&request);
        }
        assert (core_waiter_wait_count (waiter, &ended, (int) count, 10000));
        close (fd);
        const char *paths[] = {"/e401/chat/completions",
                               "/emid/v1/messages",
                               "/eclean/chat/completions",
                               "/ecut/chat/completions",
                               "/e429/chat/completions",
                               "/e503/chat/completions",
                               "/e500/chat/completions",
                               "/elong/chat/completions",
                               "/eg/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                               "/eearly/v1/messages"};
        for (size_t i = 0; i < count; i++) {
            if (verbose)
                printf ("  %zu: %s", i, runs[i].log);
            assert (strncmp (runs[i].log, cases[i].expect, strlen (cases[i].expect))
                    == 0);
            if (!cases[i].path)
                continue;
            json_t *requests = s_requests (server, paths[i]);
            assert (json_array_size (requests) == (size_t) cases[i].requests);
            json_decref (requests);
        }
        assert (strstr (runs[3].log, "error stream_broken"));
        //  The Retry-After of one second was honoured, the Gemini hint too
        assert (runs[4].ended_at - started >= 900);
        assert (runs[8].ended_at - started >= 900);
        assert (runs[5].ended_at - started < 900);
    }
    //  Timeouts: idle (one event, then silence), total (a stream without end)
    {
        json_t *stall = s_response (200, "text/event-stream", s_openai_text);
        json_array_remove (json_object_get (stall, "chunks"), 5);
        json_object_set_new (stall, "hold_ms", json_integer (3000));
        s_script (server, "/stall/chat/completions", json_pack ("[o]", stall));
        json_t *forever = s_response (200, "text/event-stream", s_openai_text);
        json_array_remove (json_object_get (forever, "chunks"), 5);
        json_object_set_new (forever, "forever", json_string (": tick\n\n"));
        s_script (server, "/forever/chat/completions", json_pack ("[o]", forever));
        int ended = 0;
        s_run_t idle = {0}, total = {0};
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/stall",
                                            "gpt-4o");
        llm_request_set_idle_timeout (request, 300);
        s_start (llm, request, &idle, &ended);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_OPENAI, base, "/forever", "gpt-4o");
        llm_request_set_timeout (request, 500);
        s_start (llm, request, &total, &ended);
        llm_request_destroy (&request);
        int64_t started = zclock_mono ();
        assert (core_waiter_wait_count (waiter, &ended, 2, 5000));
        assert (strstr (idle.log, "delta Hello world\nerror timeout 200 -1 no data"));
        assert (strstr (total.log, "delta Hello world\nerror timeout 200 -1"));
        assert (zclock_mono () - started < 2000);
    }
    //  Cancel mid-stream, from inside the callback and from outside: no event
    //  after, and the server sees the connection closed
    {
        json_t *forever = s_response (200, "text/event-stream", NULL);
        json_array_append_new (json_object_get (forever, "chunks"),
                               json_string (s_openai_text[1]));
        json_object_set_new (forever, "forever", json_string (s_openai_text[2]));
        s_script (server, "/cin/chat/completions",
                  json_pack ("[o]", json_deep_copy (forever)));
        s_script (server, "/cout/chat/completions", json_pack ("[o]", forever));
        int cancelled = 0;
        s_run_t inside = {.cancel_at = 3}, outside = {0};
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/cin", "gpt-4o");
        s_start (llm, request, &inside, &cancelled);
        llm_request_destroy (&request);
        request = s_request (LLM_PROVIDER_OPENAI, base, "/cout", "gpt-4o");
        s_start (llm, request, &outside, &cancelled);
        llm_request_destroy (&request);
        int timer_id = zloop_timer (loop, 150, 1, s_cancel_timer, &outside);
        assert (timer_id != -1);
        assert (core_waiter_wait_count (waiter, &cancelled, 2, 5000));
        assert (inside.events == 3 && outside.events > 0);
        int outside_events = outside.events;
        assert (s_wait_closed (server, "/cin/chat/completions"));
        assert (s_wait_closed (server, "/cout/chat/completions"));
        int never = 0;
        core_waiter_wait_count (waiter, &never, 1, 100);  //  let the loop run
        assert (inside.events == 3 && outside.events == outside_events);
        assert (llm_client_streams (llm) == 0);
    }
    //  The offline provider: pieces then DONE, from the loop; with passages it
    //  quotes them with their sources
    {
        int ended = 0;
        s_run_t plain = {0}, passages = {0};
        llm_request_t *request = llm_request_new (LLM_PROVIDER_OFFLINE);
        s_start (llm, request, &plain, &ended);
        int rc = llm_request_add_passage (request, "Opening hours", "We open at 9.",
                                          "kb://faq/hours");
        assert (rc == 0);
        s_start (llm, request, &passages, &ended);
        llm_request_destroy (&request);
        assert (plain.events == 0);
        assert (core_waiter_wait_count (waiter, &ended, 2, 5000));
        assert (plain.events > 3);
        assert (strstr (plain.log, "delta No language model is configured"));
        assert (strstr (plain.log, "\ndone stop\n"));
        assert (strstr (passages.log, "Source: kb://faq/hours"));
    }
    //  Requests that cannot be made; many streams at once in one loop
    {
        llm_request_t *request = llm_request_new (LLM_PROVIDER_N8N);
        error[0] = 0;
        assert (llm_stream_start (llm, request, s_on_event, NULL, error, sizeof error)
                == NULL);
        assert (strstr (error, "webhook"));
        llm_request_destroy (&request);
        request = llm_request_new (LLM_PROVIDER_OPENAI);
        assert (llm_stream_start (llm, request, s_on_event, NULL, error, sizeof error)
                == NULL);
        assert (strstr (error, "model"));
        llm_request_destroy (&request);

        json_t *paced = s_response (200, "text/event-stream", s_openai_text);
        json_object_set_new (paced, "delay_ms", json_integer (20));
        s_script (server, "/many/chat/completions", json_pack ("[o]", paced));
        const int count = 100;
        s_run_t *runs = calloc ((size_t) count, sizeof (s_run_t));
        assert (runs);
        int ended = 0;
        int64_t started = zclock_mono ();
        for (int i = 0; i < count; i++) {
            request = s_request (LLM_PROVIDER_OPENAI, base, "/many", "gpt-4o");
            s_start (llm, request, &runs[i], &ended);
            llm_request_destroy (&request);
        }
        assert (core_waiter_wait_count (waiter, &ended, count, 20000));
        for (int i = 0; i < count; i++)
            assert (strcmp (runs[i].log, s_openai_text_events) == 0);
        if (verbose)
            printf ("  %d concurrent streams in %lld ms\n", count,
                    (long long) (zclock_mono () - started));
        free (runs);
    }
    //  Destroying the client stops its streams; their owners still free them
    {
        s_run_t run = {0};
        llm_request_t *request = s_request (LLM_PROVIDER_OPENAI, base, "/cin", "gpt-4o");
        s_start (llm, request, &run, NULL);
        llm_request_destroy (&request);
        int never = 0;
        core_waiter_wait_count (waiter, &never, 1, 100);
        llm_client_destroy (&llm);
        llm_client_destroy (&llm);
        core_waiter_wait_count (waiter, &never, 1, 50);
        assert (run.stream && llm_stream_ended (run.stream));
        llm_stream_cancel (&run.stream);
        llm_stream_cancel (&run.stream);
    }
    //  @end
    core_waiter_destroy (&waiter);
    http_client_destroy (&http);
    zloop_destroy (&loop);
    http_test_server_destroy (&server);
    core_log_destroy (&log);
    printf ("OK\n");
}
