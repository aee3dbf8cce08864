/*  fuzz_channels_telegram: a Telegram Update body to channels_telegram's parser.
    Whatever it holds, the parser must not crash, leak or read out of bounds; it
    stores at most one message, and the batch stays valid
    (channels_batch_valid).                                                    */
#include <stdint.h>
#include <stdlib.h>

#include "channels_telegram.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    channels_batch_t *batch = channels_batch_new ();
    channels_parse_t rc = channels_telegram_parse (data, size, batch);
    if (rc != CHANNELS_PARSE_OK && rc != CHANNELS_PARSE_BAD)
        abort ();
    if (!channels_batch_valid (batch) || channels_batch_size (batch) > 1
        || channels_batch_statuses (batch) != 0)
        abort ();
    channels_batch_destroy (&batch);
    return 0;
}
