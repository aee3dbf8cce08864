/*  Selftest runner of libs/llm.                                                   */
#include "core_selftest.h"
#include "llm_anthropic.h"
#include "llm_client.h"
#include "llm_event.h"
#include "llm_gemini.h"
#include "llm_n8n.h"
#include "llm_offline.h"
#include "llm_ollama.h"
#include "llm_openai.h"
#include "llm_openai_chunk.h"
#include "llm_parser.h"
#include "llm_request.h"

static const core_selftest_t s_tests[] = {
    {"llm_event", llm_event_test},
    {"llm_request", llm_request_test},
    {"llm_parser", llm_parser_test},
    {"llm_openai", llm_openai_test},
    {"llm_openai_chunk", llm_openai_chunk_test},
    {"llm_anthropic", llm_anthropic_test},
    {"llm_gemini", llm_gemini_test},
    {"llm_ollama", llm_ollama_test},
    {"llm_n8n", llm_n8n_test},
    {"llm_offline", llm_offline_test},
    {"llm_client", llm_client_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
