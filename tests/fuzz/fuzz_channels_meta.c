/*  fuzz_channels_meta: a Meta webhook body (WhatsApp Cloud API, Messenger,
    Instagram) to channels_meta's parser. The first byte picks the platform (bits
    0-1: whatsapp, messenger, instagram) and whether the connection's account id
    filters the items (bit 2); the rest is the body. Whatever the body holds, the
    parser must not crash, leak or read out of bounds, and the batch it fills
    must stay valid (channels_batch_valid).                                    */
#include <stdint.h>
#include <stdlib.h>

#include "channels_meta.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const platforms[] = {"whatsapp", "messenger", "instagram",
                                            "whatsapp"};
    static const char *const accounts[] = {"106540352242922", "PAGE1",
                                           "17841400000000000", "106540352242922"};
    size_t which = data[0] & 3;
    channels_batch_t *batch = channels_batch_new ();
    channels_parse_t rc = channels_meta_parse (platforms[which],
                                               data[0] & 4 ? accounts[which] : NULL,
                                               data + 1, size - 1, batch);
    if (rc != CHANNELS_PARSE_OK && rc != CHANNELS_PARSE_BAD
        && rc != CHANNELS_PARSE_TOO_MANY)
        abort ();
    if (!channels_batch_valid (batch) || channels_batch_challenge (batch))
        abort ();
    channels_batch_destroy (&batch);
    return 0;
}
