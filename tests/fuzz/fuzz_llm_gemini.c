/*  fuzz_llm_gemini: the stream parser of libs/llm for Gemini streamGenerateContent SSE events (text and functionCall parts, thought signatures, finishReason, usageMetadata, error).
    llm_parser_fuzz parses the input whole, byte by byte and in chunks, and
    aborts when the events differ or the stream does not end in exactly one
    DONE or ERROR.                                                              */
#include <stdint.h>

#include "llm_parser.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    llm_parser_fuzz (LLM_PROVIDER_GEMINI, data, size);
    return 0;
}
