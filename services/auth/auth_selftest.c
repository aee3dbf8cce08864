/*  Selftest runner of services/auth: `auth_service_selftest [module] [-v]`.     */
#include "auth_call.h"
#include "auth_hasher.h"
#include "auth_mail.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"auth_hasher", auth_hasher_test},
    {"auth_mail", auth_mail_test},
    {"auth_call", auth_call_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
