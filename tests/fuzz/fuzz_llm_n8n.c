/*  fuzz_llm_n8n: the stream parser of libs/llm for n8n webhook replies: streaming NDJSON, SSE, or one JSON or text body, chosen by the Content-Type the first byte picks and by the content.
    llm_parser_fuzz parses the input whole, byte by byte and in chunks, and
    aborts when the events differ or the stream does not end in exactly one
    DONE or ERROR.                                                              */
#include <stdint.h>

#include "llm_parser.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    llm_parser_fuzz (LLM_PROVIDER_N8N, data, size);
    return 0;
}
