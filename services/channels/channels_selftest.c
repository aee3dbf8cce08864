/*  Selftest runner of services/channels: `channels_selftest [module] [-v]`.      */
#include "channels_batch.h"
#include "channels_inbox.h"
#include "channels_meta.h"
#include "channels_outbound.h"
#include "channels_receive.h"
#include "channels_send.h"
#include "channels_slack.h"
#include "channels_split.h"
#include "channels_store.h"
#include "channels_telegram.h"
#include "channels_verify.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"channels_verify", channels_verify_test},
    {"channels_batch", channels_batch_test},
    {"channels_meta", channels_meta_test},
    {"channels_telegram", channels_telegram_test},
    {"channels_slack", channels_slack_test},
    {"channels_store", channels_store_test},
    {"channels_receive", channels_receive_test},
    {"channels_split", channels_split_test},
    {"channels_send", channels_send_test},
    {"channels_inbox", channels_inbox_test},
    {"channels_outbound", channels_outbound_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
