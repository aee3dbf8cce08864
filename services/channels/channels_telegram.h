/*  channels_telegram: parses a Telegram Bot API Update (the body of a webhook
    set with setWebhook) into a channels_batch: its message, deduplicated on
    update_id. Trusts nothing in the body. Pure. Used by channels_receive.    */
#ifndef CHANNELS_TELEGRAM_H_INCLUDED
#define CHANNELS_TELEGRAM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "channels_batch.h"

//  Parse body (size bytes) into batch. CHANNELS_PARSE_BAD unless it is a JSON
//  object with a non-negative integer update_id. An update without "message",
//  or a message from a bot, is ignored.
channels_parse_t channels_telegram_parse (const void *body, size_t size,
                                          channels_batch_t *batch);

void channels_telegram_test (bool verbose);

#endif
