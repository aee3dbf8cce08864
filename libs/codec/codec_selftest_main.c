/*  Selftest runner of libs/codec.                                                 */
#include "codec_check.h"
#include "codec_json.h"
#include "codec_msgpack.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"codec_check", codec_check_test},
    {"codec_msgpack", codec_msgpack_test},
    {"codec_json", codec_json_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
