/*  Selftest runner of services/chat: `chat_service_selftest [module] [-v]`.     */
#include "chat_call.h"
#include "chat_channel.h"
#include "chat_context.h"
#include "chat_conversations.h"
#include "chat_events.h"
#include "chat_turn.h"
#include "core_selftest.h"

static const core_selftest_t s_tests[] = {
    {"chat_context", chat_context_test}, {"chat_events", chat_events_test},
    {"chat_call", chat_call_test},       {"chat_conversations", chat_conversations_test},
    {"chat_turn", chat_turn_test},       {"chat_channel", chat_channel_test},
};

int
main (int argc, char **argv)
{
    return core_selftest_main (argc, argv, s_tests, sizeof s_tests / sizeof s_tests[0]);
}
