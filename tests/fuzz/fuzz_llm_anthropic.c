/*  fuzz_llm_anthropic: the stream parser of libs/llm for Anthropic Messages SSE events (content blocks, input_json_delta, thinking and signature deltas, message_delta, message_stop, error).
    llm_parser_fuzz parses the input whole, byte by byte and in chunks, and
    aborts when the events differ or the stream does not end in exactly one
    DONE or ERROR.                                                              */
#include <stdint.h>

#include "llm_parser.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    llm_parser_fuzz (LLM_PROVIDER_ANTHROPIC, data, size);
    return 0;
}
