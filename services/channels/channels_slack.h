/*  channels_slack: parses a Slack Events API body into a channels_batch: the
    url_verification challenge, or an event_callback's app_mention or direct
    message, deduplicated on event_id. Bots' messages (the connection's own
    included) are ignored, so that replies never loop. Pure. Used by
    channels_receive.                                                          */
#ifndef CHANNELS_SLACK_H_INCLUDED
#define CHANNELS_SLACK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "channels_batch.h"

//  Parse body (size bytes) into batch. bot_user_id (may be NULL) is the
//  connection's bot user, whose messages are ignored. CHANNELS_PARSE_BAD unless
//  it is a JSON object with a "type"; url_verification needs a challenge (1..256
//  printable bytes) and event_callback an event_id and an event object.
channels_parse_t channels_slack_parse (const char *bot_user_id, const void *body,
                                       size_t size, channels_batch_t *batch);

void channels_slack_test (bool verbose);

#endif
