/*  llm_event: names of event types and error codes, and a one-line rendering of
    an event for logs, tests and the fuzz targets' comparisons.                 */
#include "llm_event.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *
llm_event_type_name (llm_event_type_t type)
{
    switch (type) {
        case LLM_EVENT_DELTA:
            return "delta";
        case LLM_EVENT_TOOL_CALL:
            return "tool_call";
        case LLM_EVENT_USAGE:
            return "usage";
        case LLM_EVENT_DONE:
            return "done";
        case LLM_EVENT_ERROR:
            return "error";
    }
    return "unknown";
}

const char *
llm_error_name (llm_error_t code)
{
    switch (code) {
        case LLM_ERROR_UNAUTHORIZED:
            return "unauthorized";
        case LLM_ERROR_RATE_LIMITED:
            return "rate_limited";
        case LLM_ERROR_UPSTREAM:
            return "upstream_error";
        case LLM_ERROR_TIMEOUT:
            return "timeout";
        case LLM_ERROR_STREAM_BROKEN:
            return "stream_broken";
        case LLM_ERROR_BAD_RESPONSE:
            return "bad_response";
        case LLM_ERROR_CANCELLED:
            return "cancelled";
    }
    return "unknown";
}

size_t
llm_event_format (const llm_event_t *event, char *buf, size_t size)
{
    assert (event);
    assert (buf || size == 0);
    int n = 0;
    switch (event->type) {
        case LLM_EVENT_DELTA:
            n = snprintf (buf, size, "delta %.*s", (int) event->text_size,
                          event->text ? event->text : "");
            break;
        case LLM_EVENT_TOOL_CALL:
            n = snprintf (buf, size, "tool_call %d id=%s name=%s args=%.*s", event->index,
                          event->id ? event->id : "-", event->name ? event->name : "-",
                          (int) event->arguments_size,
                          event->arguments ? event->arguments : "");
            break;
        case LLM_EVENT_USAGE:
            n = snprintf (buf, size, "usage %" PRId64 " %" PRId64, event->prompt_tokens,
                          event->completion_tokens);
            break;
        case LLM_EVENT_DONE:
            n = snprintf (buf, size, "done %s%s%s", event->finish ? event->finish : "-",
                          event->replay ? " replay=" : "",
                          event->replay ? event->replay : "");
            break;
        case LLM_EVENT_ERROR:
            n = snprintf (buf, size, "error %s %ld %" PRId64 " %.*s",
                          llm_error_name (event->code), event->status, event->retry_after,
                          (int) event->text_size, event->text ? event->text : "");
            break;
    }
    return n < 0 ? 0 : (size_t) n;
}

void
llm_event_test (bool verbose)
{
    printf (" * llm_event: ");
    //  @selftest
    char buf[128];
    llm_event_t delta = {.type = LLM_EVENT_DELTA, .text = "Hello", .text_size = 5};
    llm_event_format (&delta, buf, sizeof buf);
    assert (strcmp (buf, "delta Hello") == 0);
    llm_event_t call = {.type = LLM_EVENT_TOOL_CALL,
                        .index = 1,
                        .id = "call_1",
                        .name = "get_weather",
                        .arguments = "{\"a\"",
                        .arguments_size = 4};
    llm_event_format (&call, buf, sizeof buf);
    assert (strcmp (buf, "tool_call 1 id=call_1 name=get_weather args={\"a\"") == 0);
    llm_event_t usage = {
        .type = LLM_EVENT_USAGE, .prompt_tokens = 10, .completion_tokens = 3};
    llm_event_format (&usage, buf, sizeof buf);
    assert (strcmp (buf, "usage 10 3") == 0);
    llm_event_t done = {.type = LLM_EVENT_DONE, .finish = "stop"};
    llm_event_format (&done, buf, sizeof buf);
    assert (strcmp (buf, "done stop") == 0);
    llm_event_t error = {.type = LLM_EVENT_ERROR,
                         .code = LLM_ERROR_RATE_LIMITED,
                         .status = 429,
                         .retry_after = 7,
                         .text = "slow down",
                         .text_size = 9};
    size_t needed = llm_event_format (&error, buf, 8);
    assert (needed == strlen ("error rate_limited 429 7 slow down"));
    assert (strlen (buf) == 7);
    assert (strcmp (llm_error_name (LLM_ERROR_STREAM_BROKEN), "stream_broken") == 0);
    assert (strcmp (llm_event_type_name (LLM_EVENT_TOOL_CALL), "tool_call") == 0);
    //  @end
    printf ("OK\n");
}
