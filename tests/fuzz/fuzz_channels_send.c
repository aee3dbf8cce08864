/*  fuzz_channels_send: a platform's answer to a send (or a credentials check) to
    channels_send_outcome. The first byte picks the platform, whether it is a
    check and the HTTP status; the rest is the body. Whatever it holds, reading
    it must not crash, leak or read out of bounds, and the outcome must hold
    together: ok means a message id (a send) and no retry, and every text is
    NUL-terminated within its field.                                          */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels_send.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const char *const platforms[] = {"whatsapp", "messenger", "instagram",
                                            "telegram", "slack"};
    static const long statuses[] = {200, 400, 401, 403, 429, 500, 503, 0};
    if (size < 1)
        return 0;
    const char *platform = platforms[data[0] % 5];
    bool check = (data[0] >> 3) & 1;
    long status = statuses[(data[0] >> 4) % 8];
    channels_outcome_t out;
    channels_send_outcome (platform, check, status, (const char *) data + 1, size - 1,
                           (data[0] & 4) ? 7 : -1, &out);
    if (out.ok && out.retry)
        abort ();
    if (out.ok && !check && !*out.external_id)
        abort ();
    if (memchr (out.external_id, 0, sizeof out.external_id) == NULL
        || memchr (out.error_code, 0, sizeof out.error_code) == NULL
        || memchr (out.error, 0, sizeof out.error) == NULL
        || memchr (out.account, 0, sizeof out.account) == NULL)
        abort ();
    return 0;
}
