/*  llm_private: internals shared by the modules of libs/llm: the request's
    fields (read by the provider builders), the wire request a builder fills, the
    parser's state (used by the provider stream parsers) and the helpers they
    share. Not part of the library's interface.                                 */
#ifndef LLM_PRIVATE_H_INCLUDED
#define LLM_PRIVATE_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_lines.h"
#include "http_sse_parser.h"
#include "llm_event.h"
#include "llm_parser.h"
#include "llm_request.h"

#define LLM_MAX_MESSAGES 4096        //  messages in one request
#define LLM_MAX_TOOL_CALLS 128       //  tool calls in one assistant message
#define LLM_MAX_TOOLS 256            //  tools offered in one request
#define LLM_MAX_PASSAGES 64          //  context passages for the offline provider
#define LLM_MAX_BLOCKS 256           //  Anthropic content blocks tracked per answer
#define LLM_MAX_HEADERS 8            //  headers a builder adds
#define LLM_DEFAULT_MAX_TOKENS 4096  //  Anthropic's required max_tokens when unset

typedef enum {
    LLM_ROLE_SYSTEM = 0,  //  "system"
    LLM_ROLE_USER,        //  "user"
    LLM_ROLE_ASSISTANT,   //  "assistant"
    LLM_ROLE_TOOL         //  "tool"
} llm_role_t;

typedef struct {
    char *id;         //  call id
    char *name;       //  tool name
    char *arguments;  //  arguments, JSON text
} llm_tool_call_t;

typedef struct {
    llm_role_t role;         //  who speaks
    char *content;           //  text, never NULL
    llm_tool_call_t *calls;  //  assistant: tool calls, or NULL
    size_t call_count;       //  entries in calls
    char *tool_call_id;      //  tool: id of the call answered, or NULL
    char *tool_name;         //  tool: name of the tool, or NULL
    char *replay;            //  assistant: provider's replay JSON, or NULL
} llm_message_t;

typedef struct {
    char *name;         //  tool name
    char *description;  //  what it does, never NULL
    char *parameters;   //  JSON schema, JSON text of an object
} llm_tool_t;

typedef struct {
    char *title;   //  passage title, never NULL
    char *text;    //  passage text, never NULL
    char *source;  //  where it comes from, never NULL
} llm_passage_t;

struct _llm_request_t {
    llm_provider_t provider;  //  which provider
    char *base_url;           //  base URL without trailing slash, "" for default
    char *api_key;            //  key, "" for none
    char *model;              //  model, "" for none
    char *system;             //  system prompt, "" for none
    llm_message_t *messages;  //  the conversation
    size_t message_count;     //  entries in messages
    llm_tool_t *tools;        //  tools offered
    size_t tool_count;        //  entries in tools
    llm_passage_t *passages;  //  offline: context passages
    size_t passage_count;     //  entries in passages
    bool has_temperature;     //  temperature was set
    double temperature;       //  sampling temperature
    int max_tokens;           //  most tokens to generate, 0 for default
    llm_thinking_t thinking;  //  thinking mode
    int64_t timeout_ms;       //  total timeout, 0 for none
    int64_t idle_ms;          //  idle timeout, 0 for none
    char *extra;              //  n8n: config JSON object text, or NULL
    char *session_id;         //  n8n: session id, or NULL
    char *request_id;         //  for logs, or NULL
};

//  Name of a role ("user", ...).
const char *llm_role_name (llm_role_t role);

//  Name of the tool a tool message answers: its own, else the name of the
//  earlier call with its id, else "tool".
const char *llm_request_tool_name (llm_request_t *self, size_t message_index);

//  ---------------------------------------------------------------------------
//  The HTTP request a provider builder makes

typedef struct {
    char *name;   //  header name
    char *value;  //  header value
} llm_header_t;

typedef struct {
    char *url;                              //  absolute URL
    llm_header_t headers[LLM_MAX_HEADERS];  //  headers besides Content-Type
    size_t header_count;                    //  entries in headers
    char *body;                             //  JSON body, NUL-terminated
    size_t body_size;                       //  bytes in body
} llm_wire_t;

//  Add a header to the wire request (copied).
void llm_wire_add_header (llm_wire_t *wire, const char *name, const char *value);

//  Set the URL to base (or fallback when base is empty) followed by the
//  printf-style rest.
void llm_wire_set_url (llm_wire_t *wire, const char *base, const char *fallback,
                       const char *format, ...) __attribute__ ((format (printf, 4, 5)));

//  Set the body from a JSON value (compact) and release the value.
void llm_wire_set_body (llm_wire_t *wire, json_t **root_p);

//  Free what the wire request holds and zero it.
void llm_wire_clear (llm_wire_t *wire);

//  Parse JSON text that must be an object; NULL when it is not.
json_t *llm_json_object (const char *text);

//  Set key to a string copy of the text, in an object.
void llm_json_set_string (json_t *object, const char *key, const char *text);

//  A provider's builder: fills wire from the request. Returns 0, or -1 with a
//  reason in error when the request cannot be made for this provider.
typedef int (llm_build_fn) (llm_request_t *request, llm_wire_t *wire, char *error,
                            size_t size);

//  ---------------------------------------------------------------------------
//  Parser state, shared by the provider stream parsers

typedef enum {
    LLM_N8N_UNKNOWN = 0,  //  not decided yet
    LLM_N8N_NDJSON,       //  n8n streaming: begin/item/end lines
    LLM_N8N_SSE,          //  text/event-stream
    LLM_N8N_BODY          //  one JSON or text body, parsed at the end
} llm_n8n_mode_t;

//  Anthropic: what the parser knows of the answer's content blocks (only an
//  Anthropic stream has them, so a parser holds none until the first comes).
typedef struct {
    char kind[LLM_MAX_BLOCKS];  //  kind of each block
    int tool[LLM_MAX_BLOCKS];   //  tool_use: its tool index; thinking: its replay entry
} llm_blocks_t;

struct _llm_parser_t {
    llm_provider_t provider;    //  whose format
    llm_parser_fn *fn;          //  where events go
    void *arg;                  //  argument of fn
    size_t max_event;           //  largest line or event accepted
    http_sse_parser_t *sse;     //  SSE splitter, when the format is SSE
    http_lines_t *lines;        //  line splitter, when the format is NDJSON
    bool ended;                 //  DONE or ERROR was emitted, or fn stopped
    bool delivered;             //  a DELTA, TOOL_CALL or USAGE was emitted
    bool terminal;              //  the format's end marker was seen
    char finish[32];            //  finish reason seen so far, "" none
    bool usage;                 //  token counts are known
    bool usage_sent;            //  USAGE was emitted
    int64_t prompt_tokens;      //  input tokens, -1 unknown
    int64_t completion_tokens;  //  output tokens, -1 unknown
    int tools;                  //  tool calls begun in this answer
    uint64_t id_seed;           //  random part of made-up call ids
    uint64_t tool_seen[LLM_MAX_TOOL_CALLS / 64];  //  OpenAI: bit set when a call's
                                                  //  first fragment came
    json_t *replay;             //  what DONE hands back as replay, or NULL
    size_t replay_bytes;        //  bytes of text held in replay
    llm_blocks_t *blocks;       //  Anthropic: made at the first block, or NULL
    bool text_signed;           //  Gemini: a text part's signature was kept
    llm_n8n_mode_t n8n_mode;    //  n8n: how the body is read
    int n8n_open;               //  n8n: begin without end yet
    bool n8n_typed;             //  n8n: a typed object (begin, item, ...) came
    bool content_type_set;      //  n8n: Content-Type was given
    char content_type[64];      //  n8n: Content-Type, lower case, no parameters
    char *body;                 //  n8n: buffered body
    size_t body_size;           //  n8n: bytes in body
    char *openai_prefix;        //  OpenAI: the last chunk's bytes before "choices"
    size_t openai_prefix_size;  //  (llm_openai_chunk), 0 none
    bool general_json;          //  OpenAI: every chunk through jansson, not
                                //  llm_openai_chunk (llm_parser_fuzz compares)
};

//  Emit events; each returns 0 to go on, or -1 when the stream ended or fn
//  asked to stop. Text need not be NUL-terminated.
int llm_parser_emit_delta (llm_parser_t *self, const char *text, size_t size);
int llm_parser_emit_tool (llm_parser_t *self, int index, const char *id, const char *name,
                          const char *arguments, size_t size);
int llm_parser_emit_done (llm_parser_t *self, const char *finish);
int llm_parser_emit_error (llm_parser_t *self, llm_error_t code, const char *message,
                           long status, int64_t retry_after);

//  Emit a bad_response error naming what was wrong.
int llm_parser_bad (llm_parser_t *self, const char *what);

//  Parse a JSON payload of the stream; on failure emits bad_response, NULL.
json_t *llm_parser_json (llm_parser_t *self, const char *data, size_t size);

//  Emit a tool-call fragment of an OpenAI-style delta (index, id and name on
//  the first fragment only, an id made up when the provider gave none).
int llm_parser_emit_tool_delta (llm_parser_t *self, int index, const char *id,
                                const char *name, const char *arguments, size_t size);

//  Remember a finish reason (the first non-empty one wins).
void llm_parser_set_finish (llm_parser_t *self, const char *finish);

//  Add a value to the replay array (taking it), counting size bytes against
//  the limit; -1 (and bad_response) past it.
int llm_parser_replay_append (llm_parser_t *self, json_t *value, size_t size);

//  Error from a JSON error member or body, whatever the provider: finds the
//  message ({error: {message}}, {error: "..."}, {message}, ...), the HTTP-like
//  code or status inside, and a retry hint (Gemini's RetryInfo). Fills message
//  (always terminated) and returns the error code for status (or the code
//  found inside when status is 0).
llm_error_t llm_error_from_json (json_t *root, long status, char *message, size_t size,
                                 int64_t *retry_after);

//  Error code for an HTTP status.
llm_error_t llm_error_for_status (long status);

//  Generate a tool call id ("call_" and 24 hex digits) into buf.
void llm_make_call_id (char *buf, size_t size);

//  Made-up id of this answer's index-th tool call ("call_" and 24 hex digits:
//  the parser's random seed and the index), for providers that give none.
void llm_parser_call_id (llm_parser_t *self, int index, char *buf, size_t size);

//  For selftests: parse data as the provider's stream fed step bytes at a time
//  (0: whole) with call ids made from seed 0, and return the events, one
//  llm_event_format line each. The caller frees it.
char *llm_parser_run (llm_provider_t provider, const char *content_type, const char *data,
                      size_t step);

//  For selftests: true when two JSON texts hold equal values; prints both
//  when they differ.
bool llm_json_same (const char *actual, const char *expected);

//  Case-insensitive prefix test.
bool llm_starts_with (const char *text, const char *prefix);

#endif
