/*  fuzz_llm_openai: the stream parser of libs/llm for OpenAI Chat Completions SSE chunks (choices[].delta content and tool_calls, usage, error members, [DONE]).
    llm_parser_fuzz parses the input whole, byte by byte and in chunks, and
    aborts when the events differ or the stream does not end in exactly one
    DONE or ERROR; whole again with every chunk through the general JSON reader,
    which must give what llm_openai_chunk gave.                                 */
#include <stdint.h>

#include "llm_parser.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    llm_parser_fuzz (LLM_PROVIDER_OPENAI, data, size);
    return 0;
}
