/*  llm_event: what a model's stream delivers, the same for every provider:
    text pieces, tool-call fragments, token usage, and one final DONE or ERROR.
    The provider parsers (llm_parser) make them, llm_client hands them to the
    service, and tests and fuzz targets print them with llm_event_format.       */
#ifndef LLM_EVENT_H_INCLUDED
#define LLM_EVENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Kinds of events. Every stream ends with exactly one DONE or one ERROR.
typedef enum {
    LLM_EVENT_DELTA = 0,  //  a piece of the answer's text
    LLM_EVENT_TOOL_CALL,  //  a fragment of a tool call
    LLM_EVENT_USAGE,      //  tokens used, when the provider says
    LLM_EVENT_DONE,       //  the answer is complete
    LLM_EVENT_ERROR       //  the stream failed
} llm_event_type_t;

//  Stable error codes of ERROR events.
typedef enum {
    LLM_ERROR_UNAUTHORIZED = 0,  //  "unauthorized": 401/403, bad or missing key
    LLM_ERROR_RATE_LIMITED,      //  "rate_limited": 429 or the provider's rate error
    LLM_ERROR_UPSTREAM,          //  "upstream_error": 5xx, other refusals, connection
                                 //  failures, error events mid-stream
    LLM_ERROR_TIMEOUT,           //  "timeout": total or idle timeout passed
    LLM_ERROR_STREAM_BROKEN,     //  "stream_broken": ended without its terminal marker
    LLM_ERROR_BAD_RESPONSE,      //  "bad_response": not the provider's format, or over
                                 //  the size limits
    LLM_ERROR_CANCELLED          //  "cancelled": the HTTP transfer was aborted under us
} llm_error_t;

//  One event. Strings are valid only during the callback; sizes exclude the
//  terminating NUL that every string has.
typedef struct {
    llm_event_type_t type;      //  what happened
    const char *text;           //  DELTA: the text piece; ERROR: provider's message
    size_t text_size;           //  bytes in text
    int index;                  //  TOOL_CALL: which call of this answer, from 0
    const char *id;             //  TOOL_CALL: call id on the call's first fragment,
                                //  else NULL
    const char *name;           //  TOOL_CALL: tool name on the first fragment, else NULL
    const char *arguments;      //  TOOL_CALL: a piece of the arguments' JSON text
    size_t arguments_size;      //  bytes in arguments
    int64_t prompt_tokens;      //  USAGE: input tokens (-1 unknown)
    int64_t completion_tokens;  //  USAGE: output tokens (-1 unknown)
    const char *finish;         //  DONE: stop | length | tool_calls | content_filter |
                                //  error
    const char *replay;         //  DONE: JSON to store with the assistant message and
                                //  give back (llm_request_set_replay), or NULL
    llm_error_t code;           //  ERROR: stable code
    long status;                //  ERROR: HTTP status, 0 when none
    int64_t retry_after;        //  ERROR: seconds to wait before trying again, -1 none
} llm_event_t;

//  Name of an event type ("delta", "tool_call", "usage", "done", "error").
const char *llm_event_type_name (llm_event_type_t type);

//  Name of an error code ("unauthorized", ...).
const char *llm_error_name (llm_error_t code);

//  Write a one-line description of the event into buf (always terminated,
//  truncated to size); returns the length it needed, as snprintf does.
size_t llm_event_format (const llm_event_t *event, char *buf, size_t size);

void llm_event_test (bool verbose);

#endif
