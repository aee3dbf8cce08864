/*  Selftest runner of services/agents: `agents_selftest [module] [-v]`.          */
#include "agents_body.h"
#include "agents_openai.h"
#include "agents_store.h"
#include "agents_turn.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"agents_body", agents_body_test},
    {"agents_openai", agents_openai_test},
    {"agents_store", agents_store_test},
    {"agents_turn", agents_turn_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
