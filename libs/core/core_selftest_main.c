/*  Selftest runner of libs/core.                                                  */
#include "core_config.h"
#include "core_log.h"
#include "core_process.h"
#include "core_selftest.h"
#include "core_waiter.h"

static const core_selftest_t s_tests[] = {
    {"core_log", core_log_test},
    {"core_config", core_config_test},
    {"core_process", core_process_test},
    {"core_waiter", core_waiter_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
