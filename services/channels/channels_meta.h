/*  channels_meta: parses the webhook bodies of Meta's platforms into a
    channels_batch: the WhatsApp Cloud API (object whatsapp_business_account,
    entry[].changes[].value.messages[] and .statuses[]), Messenger (object page)
    and Instagram (object instagram), both entry[].messaging[]. Trusts nothing in
    the body; bounded by CHANNELS_BATCH_MAX. Pure. Used by channels_receive.  */
#ifndef CHANNELS_META_H_INCLUDED
#define CHANNELS_META_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "channels_batch.h"

//  Parse body (size bytes) of platform "whatsapp", "messenger" or "instagram"
//  into batch. account_id is the connection's phone_number_id (whatsapp) or
//  page id (messenger, instagram): items of another account are ignored; NULL
//  accepts any. CHANNELS_PARSE_BAD when the body is not JSON of that platform
//  (an object with its "object" value and an "entry" array).
channels_parse_t channels_meta_parse (const char *platform, const char *account_id,
                                      const void *body, size_t size,
                                      channels_batch_t *batch);

void channels_meta_test (bool verbose);

#endif
