/*  Selftest runner of libs/bus.                                                   */
#include "bus_broker.h"
#include "bus_client.h"
#include "bus_proto.h"
#include "bus_worker.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"bus_proto", bus_proto_test},
    {"bus_broker", bus_broker_test},
    {"bus_client", bus_client_test},
    {"bus_worker", bus_worker_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
