/*  llm_ollama: Ollama's native chat API. The builder makes POST {base}/api/chat
    (default http://127.0.0.1:11434) with stream: true, options.temperature and
    options.num_predict, tool calls with their arguments as objects and tool
    results with tool_name. The parser reads the NDJSON lines (message.content,
    message.tool_calls with object arguments, turned into JSON text, one
    TOOL_CALL each; thinking skipped; error lines) up to the done: true line,
    which carries prompt_eval_count and eval_count.

    Thinking: only models that can think get "think" (Ollama refuses it on the
    others): gpt-oss takes levels (quick "low", balanced "medium", deep "high");
    deepseek-r1, deepseek-v3.1, qwen3 (not its -coder and -instruct builds) and
    magistral take a switch (quick false, deep true, balanced the model's own
    default).                                                                   */
#ifndef LLM_OLLAMA_H_INCLUDED
#define LLM_OLLAMA_H_INCLUDED

#include "llm_private.h"

//  Build the HTTP request (llm_build_fn).
int llm_ollama_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size);

//  Parse one NDJSON line; 0 to go on, -1 when the stream ended.
int llm_ollama_on_line (llm_parser_t *parser, const char *line, size_t size);

void llm_ollama_test (bool verbose);

#endif
