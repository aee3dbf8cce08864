/*  fuzz_channels_slack: a Slack Events API body to channels_slack's parser. The
    first byte says whether the connection knows its bot user (bit 0); the rest
    is the body. Whatever it holds, the parser must not crash, leak or read out
    of bounds; it stores at most one message and never one the bot wrote, and
    the batch stays valid (channels_batch_valid).                              */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels_slack.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *bot = data[0] & 1 ? "U0BOT" : NULL;
    channels_batch_t *batch = channels_batch_new ();
    channels_parse_t rc = channels_slack_parse (bot, data + 1, size - 1, batch);
    if (rc != CHANNELS_PARSE_OK && rc != CHANNELS_PARSE_BAD)
        abort ();
    if (!channels_batch_valid (batch) || channels_batch_size (batch) > 1
        || channels_batch_statuses (batch) != 0)
        abort ();
    const char *sender = channels_batch_get (batch, 0, "sender_id");
    if (bot && sender && strcmp (sender, bot) == 0)
        abort ();
    if (channels_batch_challenge (batch) && channels_batch_size (batch))
        abort ();
    channels_batch_destroy (&batch);
    return 0;
}
