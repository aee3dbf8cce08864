/*  Selftest runner of libs/redis. Needs CHORUS_TEST_REDIS_URL (tools/chorus test
    sets it; or tools/dev/redis start prints one).                                 */
#include "core_selftest.h"
#include "redis_client.h"

static const core_selftest_t s_tests[] = {
    {"redis_client", redis_client_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
