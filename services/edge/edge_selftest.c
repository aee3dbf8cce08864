/*  Selftest runner of services/edge: `edge_selftest [module] [-v]`.             */
#include "core_selftest.h"
#include "edge_auth.h"
#include "edge_call.h"
#include "edge_guard.h"
#include "edge_http.h"
#include "edge_keycache.h"
#include "edge_limit.h"
#include "edge_live.h"
#include "edge_metrics.h"
#include "edge_openapi.h"
#include "edge_queue.h"
#include "edge_ready.h"
#include "edge_revocations.h"
#include "edge_routes.h"
#include "edge_server.h"
#include "edge_sse.h"
#include "edge_table.h"
#include "edge_testservice.h"
#include "edge_webhook.h"

static const core_selftest_t s_tests[] = {
    {"edge_auth", edge_auth_test},
    {"edge_table", edge_table_test},
    {"edge_revocations", edge_revocations_test},
    {"edge_keycache", edge_keycache_test},
    {"edge_limit", edge_limit_test},
    {"edge_guard", edge_guard_test},
    {"edge_routes", edge_routes_test},
    {"edge_metrics", edge_metrics_test},
    {"edge_openapi", edge_openapi_test},
    {"edge_queue", edge_queue_test},
    {"edge_sse", edge_sse_test},
    {"edge_call", edge_call_test},
    {"edge_webhook", edge_webhook_test},
    {"edge_ready", edge_ready_test},
    {"edge_live", edge_live_test},
    {"edge_testservice", edge_testservice_test},
    {"edge_server", edge_server_test},
    {"edge_http", edge_http_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
