/*  llm_request: what a service asks of a language model for one agent step,
    whatever the provider: the provider and its endpoint, the conversation
    (system prompt, messages with their tool calls and tool results), the tools
    the model may call, sampling limits, the thinking mode, timeouts, and for n8n
    the extra JSON of the agent's config. Built with the setters below and handed
    to llm_stream_start (llm_client.h); each provider module turns it into its
    own wire format (llm_openai, llm_anthropic, llm_gemini, llm_ollama, llm_n8n,
    llm_offline). Strings are copied.                                           */
#ifndef LLM_REQUEST_H_INCLUDED
#define LLM_REQUEST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _llm_request_t llm_request_t;

//  Providers, and the name each goes by in agent configs.
typedef enum {
    LLM_PROVIDER_OPENAI = 0,  //  "openai": Chat Completions, also any compatible server
    LLM_PROVIDER_ANTHROPIC,   //  "anthropic": Messages API
    LLM_PROVIDER_GEMINI,      //  "gemini": Gemini API streamGenerateContent
    LLM_PROVIDER_OLLAMA,      //  "ollama": Ollama native /api/chat
    LLM_PROVIDER_N8N,         //  "n8n": an n8n webhook as the agent's brain
    LLM_PROVIDER_OFFLINE,     //  "offline": built in, no network, no model
    LLM_PROVIDER_COUNT        //  number of providers
} llm_provider_t;

//  How hard the model should think, where the provider and model have a knob.
typedef enum {
    LLM_THINKING_DEFAULT = 0,  //  send nothing: the model's own default
    LLM_THINKING_QUICK,        //  "quick"
    LLM_THINKING_BALANCED,     //  "balanced"
    LLM_THINKING_DEEP          //  "deep"
} llm_thinking_t;

//  Provider by name ("openai", ...); -1 when unknown.
int llm_provider_parse (const char *name);

//  Name of a provider ("openai", ...).
const char *llm_provider_name (llm_provider_t provider);

//  Thinking mode by name ("quick", "balanced", "deep"; "" or NULL is the
//  default); -1 when unknown.
int llm_thinking_parse (const char *name);

//  Name of a thinking mode ("" for the default).
const char *llm_thinking_name (llm_thinking_t thinking);

//  Create a request for a provider.
llm_request_t *llm_request_new (llm_provider_t provider);
void llm_request_destroy (llm_request_t **self_p);

//  Provider of the request.
llm_provider_t llm_request_provider (llm_request_t *self);

//  Endpoint: the API's base URL ("" or NULL for the provider's real default:
//  https://api.openai.com/v1, https://api.anthropic.com,
//  https://generativelanguage.googleapis.com, http://127.0.0.1:11434); for n8n
//  the webhook URL itself. A trailing slash is dropped.
void llm_request_set_base_url (llm_request_t *self, const char *base_url);

//  API key (sent only when not empty), model name, system prompt.
void llm_request_set_api_key (llm_request_t *self, const char *api_key);
void llm_request_set_model (llm_request_t *self, const char *model);
void llm_request_set_system (llm_request_t *self, const char *system);

//  Append a message: role "system", "user", "assistant" or "tool" and its text
//  (NULL as ""). Returns 0, or -1 for an unknown role or past the message limit.
int llm_request_add_message (llm_request_t *self, const char *role, const char *content)
    __attribute__ ((warn_unused_result));

//  Add a tool call to the last message, which must be the assistant's: the call's
//  id, the tool's name and its arguments as JSON text (an object; NULL as "{}").
//  Returns 0, or -1 when the last message is not the assistant's or the limit of
//  calls is reached.
int llm_request_add_tool_call (llm_request_t *self, const char *id, const char *name,
                               const char *arguments)
    __attribute__ ((warn_unused_result));

//  On the last message, a tool result: the id of the call it answers and,
//  optionally, the tool's name (Gemini and Ollama want it; when NULL it is found
//  from the earlier call). Returns 0, or -1 when the last message is not "tool".
int llm_request_set_tool_call_id (llm_request_t *self, const char *tool_call_id,
                                  const char *name) __attribute__ ((warn_unused_result));

//  On the last message, the assistant's, what its stream's DONE event gave as
//  replay (llm_client.h): the provider's own record of the turn (thinking
//  blocks, thought signatures) that it wants back verbatim with the history.
void llm_request_set_replay (llm_request_t *self, const char *replay);

//  Offer a tool: name, description and its JSON-schema parameters as JSON text
//  (an object; NULL for no parameters). Returns 0, or -1 when parameters is not
//  a JSON object or past the tool limit.
int llm_request_add_tool (llm_request_t *self, const char *name, const char *description,
                          const char *parameters) __attribute__ ((warn_unused_result));

//  Sampling temperature (unset by default: the provider's default) and the most
//  tokens to generate (0: the provider's default; Anthropic requires one and gets
//  4096 then).
void llm_request_set_temperature (llm_request_t *self, double temperature);
void llm_request_set_max_tokens (llm_request_t *self, int max_tokens);

//  Thinking mode (see llm_thinking_t and the provider modules for what each maps
//  it to; never a parameter the model would refuse).
void llm_request_set_thinking (llm_request_t *self, llm_thinking_t thinking);

//  Timeouts in ms: total for the whole stream, retries included (default 120 s),
//  idle for no byte received (default 60 s). 0 means none.
void llm_request_set_timeout (llm_request_t *self, int64_t total_ms);
void llm_request_set_idle_timeout (llm_request_t *self, int64_t idle_ms);

//  n8n: extra JSON (an object) from the agent config, sent as "config"; and the
//  session id (the conversation) sent as "sessionId". Returns -1 when extra is
//  not a JSON object.
int llm_request_set_extra (llm_request_t *self, const char *extra)
    __attribute__ ((warn_unused_result));
void llm_request_set_session_id (llm_request_t *self, const char *session_id);

//  Offline provider: a context passage (from the knowledge base) to answer with,
//  with its title and source (may be NULL). Returns -1 past the passage limit.
int llm_request_add_passage (llm_request_t *self, const char *title, const char *text,
                             const char *source) __attribute__ ((warn_unused_result));

//  Request id written on log lines about the stream.
void llm_request_set_request_id (llm_request_t *self, const char *request_id);

//  Number of messages, tools and passages held.
size_t llm_request_message_count (llm_request_t *self);
size_t llm_request_tool_count (llm_request_t *self);
size_t llm_request_passage_count (llm_request_t *self);

void llm_request_test (bool verbose);

#endif
