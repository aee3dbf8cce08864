/*  Selftest runner of libs/db. Needs CHORUS_TEST_DATABASE_URL (tools/chorus test
    sets it; or tools/dev/postgres start prints one).                              */
#include "core_selftest.h"
#include "db_message.h"
#include "db_migrate.h"
#include "db_pool.h"
#include "db_testing.h"

static const core_selftest_t s_tests[] = {
    {"db_testing", db_testing_test},
    {"db_pool", db_pool_test},
    {"db_migrate", db_migrate_test},
    {"db_message", db_message_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
