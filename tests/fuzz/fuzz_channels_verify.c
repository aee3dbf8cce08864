/*  fuzz_channels_verify: what a webhook request brings to channels_verify before
    anything is trusted. The first byte says where the rest splits into a header
    value and a body; the header goes to every signature and token check (Meta,
    Slack with and without a fresh timestamp, Telegram) over the body, and the
    whole input is read as a query string by Meta's handshake and the query
    reader. Nothing may crash or read out of bounds, a forged signature never
    passes, and a challenge answered is printable and bounded.                  */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "channels_verify.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t rest = size - 1;
    size_t split = rest * data[0] / 255;
    char *header = malloc (split + 1);
    char *query = malloc (rest + 1);
    if (!header || !query)
        abort ();
    memcpy (header, data + 1, split);
    header[split] = 0;
    memcpy (query, data + 1, rest);
    query[rest] = 0;
    const uint8_t *body = data + 1 + split;
    size_t body_size = rest - split;

    //  The body signed right passes; the fuzzer's header is not that signature
    //  unless it happens to be exactly it
    char mac[65], good[72];
    const void *parts[] = {body};
    size_t sizes[] = {body_size};
    channels_verify_hmac_hex ("fuzz-secret", parts, sizes, 1, mac);
    memcpy (good, "sha256=", 7);
    memcpy (good + 7, mac, 65);
    if (!channels_verify_meta ("fuzz-secret", body, body_size, good))
        abort ();
    if (channels_verify_meta ("fuzz-secret", body, body_size, header)
        && strcasecmp (header, good) != 0)
        abort ();
    (void) channels_verify_slack ("fuzz-secret", "1700000000", header, body, body_size,
                                  1700000000);
    (void) channels_verify_slack ("fuzz-secret", header, header, body, body_size,
                                  1700000000);
    if (channels_verify_telegram ("fuzz-secret", header)
        && strcmp (header, "fuzz-secret"))
        abort ();

    char challenge[CHANNELS_VERIFY_CHALLENGE_MAX + 1];
    if (channels_verify_meta_handshake ("fuzz-token", query, challenge, sizeof challenge)
        == 0) {
        size_t length = strlen (challenge);
        if (length == 0 || length > CHANNELS_VERIFY_CHALLENGE_MAX)
            abort ();
        for (size_t i = 0; i < length; i++)
            if ((unsigned char) challenge[i] < 0x20
                || (unsigned char) challenge[i] > 0x7e)
                abort ();
    }
    char value[64];
    int length = channels_verify_query_get (query, "hub.challenge", value, sizeof value);
    if (length >= (int) sizeof value
        || (length >= 0 && strlen (value) != (size_t) length))
        abort ();
    free (header);
    free (query);
    return 0;
}
