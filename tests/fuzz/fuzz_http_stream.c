/*  fuzz_http_stream: the incremental parsers of upstream HTTP bodies (LLM provider
    streams): the SSE parser and the line splitter. Their fuzz entry points parse
    the input whole, byte by byte and in chunks, and abort when the results differ. */
#include <stdint.h>

#include "http_lines.h"
#include "http_sse_parser.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    http_sse_parser_fuzz (data, size);
    http_lines_fuzz (data, size);
    return 0;
}
