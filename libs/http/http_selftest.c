/*  Selftest runner of libs/http.                                                  */
#include "core_selftest.h"
#include "http_client.h"
#include "http_lines.h"
#include "http_private.h"
#include "http_request.h"
#include "http_sse_parser.h"
#include "http_test_server.h"

static const core_selftest_t s_tests[] = {
    {"http_lines", http_lines_test},       {"http_sse_parser", http_sse_parser_test},
    {"http_request", http_request_test},   {"http_test_server", http_test_server_test},
    {"http_transfer", http_transfer_test}, {"http_client", http_client_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
