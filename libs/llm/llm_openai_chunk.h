/*  llm_openai_chunk: the common chat.completion.chunk read in one pass of a strict
    JSON scanner, without building a JSON tree: text deltas, finish reasons and usage
    of up to LLM_OPENAI_CHUNK_CHOICES choices. Anything else a chunk may hold (an
    error member, tool calls, \u escapes, reals, repeated keys, deep nesting, what is
    not JSON) is left to the general reader in llm_openai, which gives the same events
    for what both read (fuzz_llm_openai compares them). A stream of 200 tokens is
    200 chunks: agents spent most of its time building and freeing their trees.   */
#ifndef LLM_OPENAI_CHUNK_H_INCLUDED
#define LLM_OPENAI_CHUNK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "llm_private.h"

//  Most choices a chunk may have for this reader (more: the general one).
#define LLM_OPENAI_CHUNK_CHOICES 4

//  Read one chunk's data (size bytes, an SSE event's data): true when it was
//  read here, its events given to parser and *rc what they returned (0, or -1
//  when the stream ended); false when nothing was given and the general reader
//  must read it.
bool llm_openai_chunk_read (llm_parser_t *parser, const char *data, size_t size, int *rc);

void llm_openai_chunk_test (bool verbose);

#endif
