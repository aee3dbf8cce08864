/*  llm_gemini: the Gemini API's streamGenerateContent. The builder makes POST
    {base}/v1beta/models/{model}:streamGenerateContent?alt=sse with the key in
    x-goog-api-key, the system prompt as systemInstruction, tools as
    functionDeclarations (parametersJsonSchema, which takes JSON Schema as is),
    tool calls as functionCall parts of the model's turn and tool results as
    functionResponse parts. The parser reads one GenerateContentResponse per SSE
    event: candidates[0].content.parts text (thought parts skipped) and whole
    functionCall objects (one TOOL_CALL each, arguments as JSON text),
    finishReason, usageMetadata, error members. The stream's end is the
    completion, once a finishReason came. Thought signatures of functionCall
    parts come back as DONE's replay, for the next request to echo.

    Thinking: Gemini 2.5 takes thinkingConfig.thinkingBudget (2.5 Pro: quick
    128, deep 32768; 2.5 Flash and Flash-Lite: quick 0, deep 24576; balanced
    leaves the model's dynamic default); Gemini 3 takes thinkingLevel (quick
    "low", deep "high", and on Flash balanced "medium"). Other models get
    nothing.                                                                    */
#ifndef LLM_GEMINI_H_INCLUDED
#define LLM_GEMINI_H_INCLUDED

#include "llm_private.h"

//  Build the HTTP request (llm_build_fn).
int llm_gemini_build (llm_request_t *request, llm_wire_t *wire, char *error, size_t size);

//  Parse one SSE event of the stream; 0 to go on, -1 when the stream ended.
int llm_gemini_on_event (llm_parser_t *parser, const http_sse_event_t *event);

//  The body ended: DONE when a finishReason came.
void llm_gemini_finish (llm_parser_t *parser);

void llm_gemini_test (bool verbose);

#endif
