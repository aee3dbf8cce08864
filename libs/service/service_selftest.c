/*  Selftest runner of libs/service: `service_selftest [module] [-v]`.           */
#include "core_selftest.h"
#include "service_call.h"
#include "service_events.h"
#include "service_stream.h"

static const core_selftest_t s_tests[] = {
    {"service_call", service_call_test},
    {"service_events", service_events_test},
    {"service_stream", service_stream_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
