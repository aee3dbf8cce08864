/*  Selftest runner of libs/auth.                                                  */
#include "auth_jwk.h"
#include "auth_jwt.h"
#include "auth_keys.h"
#include "auth_secretbox.h"
#include "auth_password.h"
#include "auth_pkce.h"
#include "auth_token.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"auth_password", auth_password_test},
    {"auth_token", auth_token_test},
    {"auth_pkce", auth_pkce_test},
    {"auth_jwk", auth_jwk_test},
    {"auth_jwt", auth_jwt_test},
    {"auth_keys", auth_keys_test},
    {"auth_secretbox", auth_secretbox_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
