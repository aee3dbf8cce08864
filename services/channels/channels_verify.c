/*  channels_verify: webhook signatures and tokens (channels_verify.h).          */
#include "channels_verify.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

//  HMAC-SHA256 of the parts under key into mac (32 bytes).
static void
s_hmac (const char *key, const void *const *parts, const size_t *sizes, size_t count,
        unsigned char *mac)
{
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, (const unsigned char *) key, strlen (key));
    for (size_t i = 0; i < count; i++)
        crypto_auth_hmacsha256_update (&state, (const unsigned char *) parts[i],
                                       sizes[i]);
    crypto_auth_hmacsha256_final (&state, mac);
    sodium_memzero (&state, sizeof state);
}

void
channels_verify_hmac_hex (const char *key, const void *const *parts, const size_t *sizes,
                          size_t count, char *hex)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    s_hmac (key, parts, sizes, count, mac);
    sodium_bin2hex (hex, 2 * sizeof mac + 1, mac, sizeof mac);
}

bool
channels_verify_equal (const char *expected, const char *given)
{
    if (!expected || !given || !*expected)
        return false;
    //  Compare digests, so that neither the lengths nor the first difference show
    unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
    crypto_generichash (a, sizeof a, (const unsigned char *) expected, strlen (expected),
                        NULL, 0);
    crypto_generichash (b, sizeof b, (const unsigned char *) given, strlen (given), NULL,
                        0);
    return sodium_memcmp (a, b, sizeof a) == 0;
}

//  True when hex (exactly 64 hex digits) is the HMAC of parts under key.
static bool
s_mac_matches (const char *key, const void *const *parts, const size_t *sizes,
               size_t count, const char *hex)
{
    if (!key || !*key || !hex || strlen (hex) != 2 * crypto_auth_hmacsha256_BYTES)
        return false;
    unsigned char given[crypto_auth_hmacsha256_BYTES];
    size_t length = 0;
    const char *end = NULL;
    if (sodium_hex2bin (given, sizeof given, hex, strlen (hex), NULL, &length, &end) != 0
        || length != sizeof given || *end)
        return false;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    s_hmac (key, parts, sizes, count, mac);
    return sodium_memcmp (mac, given, sizeof mac) == 0;
}

bool
channels_verify_meta (const char *app_secret, const void *body, size_t size,
                      const char *header)
{
    if (!header || strncmp (header, "sha256=", 7) != 0)
        return false;
    const void *parts[] = {body ? body : ""};
    size_t sizes[] = {body ? size : 0};
    return s_mac_matches (app_secret, parts, sizes, 1, header + 7);
}

bool
channels_verify_telegram (const char *secret_token, const char *given)
{
    return channels_verify_equal (secret_token, given);
}

channels_verify_result_t
channels_verify_slack (const char *signing_secret, const char *timestamp,
                       const char *signature, const void *body, size_t size, int64_t now)
{
    size_t digits = timestamp ? strlen (timestamp) : 0;
    if (digits == 0 || digits > 15 || strspn (timestamp, "0123456789") != digits)
        return CHANNELS_VERIFY_STALE;
    int64_t at = 0;
    for (size_t i = 0; i < digits; i++)
        at = at * 10 + (timestamp[i] - '0');
    if (at > now + CHANNELS_VERIFY_SLACK_WINDOW_S
        || at < now - CHANNELS_VERIFY_SLACK_WINDOW_S)
        return CHANNELS_VERIFY_STALE;
    if (!signature || strncmp (signature, "v0=", 3) != 0)
        return CHANNELS_VERIFY_BAD;
    const void *parts[] = {"v0:", timestamp, ":", body ? body : ""};
    size_t sizes[] = {3, digits, 1, body ? size : 0};
    return s_mac_matches (signing_secret, parts, sizes, 4, signature + 3)
               ? CHANNELS_VERIFY_OK
               : CHANNELS_VERIFY_BAD;
}

//  The value of a hex digit, or -1.
static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Percent-decode len bytes of src into out (size bytes with the NUL). Returns the
//  length, or -1 when malformed, holding a NUL, or too long.
static int
s_decode (const char *src, size_t len, char *out, size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = s_hex_digit (src[i + 1]);
            int lo = s_hex_digit (src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char) (hi * 16 + lo);
            i += 2;
        }
        else if (c == '+')
            c = ' ';
        if (c == 0 || at + 1 >= size)
            return -1;
        out[at++] = c;
    }
    if (size == 0)
        return -1;
    out[at] = 0;
    return (int) at;
}

int
channels_verify_query_get (const char *query, const char *name, char *out, size_t size)
{
    if (!query || !name)
        return -1;
    const char *at = query;
    while (*at) {
        size_t piece = strcspn (at, "&");
        const char *eq = memchr (at, '=', piece);
        size_t name_len = eq ? (size_t) (eq - at) : piece;
        char key[64];
        if (s_decode (at, name_len, key, sizeof key) >= 0 && strcmp (key, name) == 0)
            return eq ? s_decode (eq + 1, piece - name_len - 1, out, size)
                      : s_decode ("", 0, out, size);
        at += piece;
        if (*at == '&')
            at++;
    }
    return -1;
}

int
channels_verify_meta_handshake (const char *verify_token, const char *query,
                                char *challenge, size_t size)
{
    char mode[32], token[1024];
    if (size < CHANNELS_VERIFY_CHALLENGE_MAX + 1
        || channels_verify_query_get (query, "hub.mode", mode, sizeof mode) < 0
        || strcmp (mode, "subscribe") != 0
        || channels_verify_query_get (query, "hub.verify_token", token, sizeof token) < 0
        || !channels_verify_equal (verify_token, token))
        return -1;
    int length = channels_verify_query_get (query, "hub.challenge", challenge,
                                            CHANNELS_VERIFY_CHALLENGE_MAX + 1);
    if (length < 1)
        return -1;
    for (int i = 0; i < length; i++)
        if ((unsigned char) challenge[i] < 0x20 || (unsigned char) challenge[i] > 0x7e)
            return -1;
    return 0;
}

void
channels_verify_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_verify: ");
    assert (sodium_init () >= 0);

    //  Slack's published example (PROTOCOLS.md, "Channels")
    const char *slack_secret = "8f742231b10e8888abcd99yyyzzz85a5";
    const char *slack_body =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name="
        "roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks."
        "slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const char *slack_signature =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    size_t slack_size = strlen (slack_body);
    int64_t slack_at = 1531420618;
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size, slack_at)
            == CHANNELS_VERIFY_OK);
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size, slack_at + 300)
            == CHANNELS_VERIFY_OK);
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size, slack_at - 300)
            == CHANNELS_VERIFY_OK);
    //  More than five minutes either way: refused before the signature counts
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size, slack_at + 301)
            == CHANNELS_VERIFY_STALE);
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size, slack_at - 301)
            == CHANNELS_VERIFY_STALE);
    assert (channels_verify_slack (slack_secret, NULL, slack_signature, slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_STALE);
    assert (channels_verify_slack (slack_secret, "1531420618x", slack_signature,
                                   slack_body, slack_size, slack_at)
            == CHANNELS_VERIFY_STALE);
    assert (channels_verify_slack (slack_secret, "-1", slack_signature, slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_STALE);
    //  One byte of the body, the timestamp or the secret changed: bad
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature,
                                   slack_body, slack_size - 1, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack (slack_secret, "1531420619", slack_signature,
                                   slack_body, slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack ("8f742231b10e8888abcd99yyyzzz85a6", "1531420618",
                                   slack_signature, slack_body, slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack (slack_secret, "1531420618", NULL, slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack (slack_secret, "1531420618", slack_signature + 3,
                                   slack_body, slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack (slack_secret, "1531420618", "v0=", slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack (NULL, "1531420618", slack_signature, slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);
    assert (channels_verify_slack ("", "1531420618", slack_signature, slack_body,
                                   slack_size, slack_at)
            == CHANNELS_VERIFY_BAD);

    //  GitHub's X-Hub-Signature-256 example, Meta's header has the same shape
    const char *meta_secret = "It's a Secret to Everybody";
    const char *meta_header =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert (channels_verify_meta (meta_secret, "Hello, World!", 13, meta_header));
    assert (channels_verify_meta (
        meta_secret, "Hello, World!", 13,
        "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"));
    assert (!channels_verify_meta (meta_secret, "Hello, World?", 13, meta_header));
    assert (!channels_verify_meta (meta_secret, "Hello, World!", 12, meta_header));
    assert (!channels_verify_meta ("It's a secret to everybody", "Hello, World!", 13,
                                   meta_header));
    assert (!channels_verify_meta (meta_secret, "Hello, World!", 13, meta_header + 7));
    assert (!channels_verify_meta (meta_secret, "Hello, World!", 13, NULL));
    assert (!channels_verify_meta (meta_secret, "Hello, World!", 13, "sha256="));
    assert (!channels_verify_meta (
        meta_secret, "Hello, World!", 13,
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert (!channels_verify_meta (
        meta_secret, "Hello, World!", 13,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1"));
    assert (!channels_verify_meta (
        meta_secret, "Hello, World!", 13,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17 "));
    assert (!channels_verify_meta (NULL, "Hello, World!", 13, meta_header));
    assert (!channels_verify_meta ("", "Hello, World!", 13, meta_header));
    //  The same MAC computed in parts
    char hex[65];
    const void *parts[] = {"Hello, ", "World!"};
    size_t sizes[] = {7, 6};
    channels_verify_hmac_hex (meta_secret, parts, sizes, 2, hex);
    assert (strcmp (hex, meta_header + 7) == 0);

    //  Telegram's secret token, and the constant-time compare under it
    assert (channels_verify_telegram ("s3cr3t_Token-1", "s3cr3t_Token-1"));
    assert (!channels_verify_telegram ("s3cr3t_Token-1", "s3cr3t_Token-2"));
    assert (!channels_verify_telegram ("s3cr3t_Token-1", "s3cr3t_Token-"));
    assert (!channels_verify_telegram ("s3cr3t_Token-1", ""));
    assert (!channels_verify_telegram ("s3cr3t_Token-1", NULL));
    assert (!channels_verify_telegram (NULL, "x"));
    assert (!channels_verify_telegram ("", ""));

    //  Query strings and Meta's handshake
    char value[300];
    assert (channels_verify_query_get ("a=1&b=x%20y+z&c", "b", value, sizeof value) == 5
            && strcmp (value, "x y z") == 0);
    assert (channels_verify_query_get ("a=1&b=2&c", "c", value, sizeof value) == 0
            && strcmp (value, "") == 0);
    assert (channels_verify_query_get ("a=1&b=2", "d", value, sizeof value) == -1);
    assert (channels_verify_query_get ("a=%zz", "a", value, sizeof value) == -1);
    assert (channels_verify_query_get ("a=%4", "a", value, sizeof value) == -1);
    assert (channels_verify_query_get ("a=%00", "a", value, sizeof value) == -1);
    assert (channels_verify_query_get ("a=12345", "a", value, 5) == -1);
    assert (channels_verify_query_get ("hub%2Emode=x", "hub.mode", value, sizeof value)
            == 1);
    assert (channels_verify_query_get ("", "a", value, sizeof value) == -1);
    assert (channels_verify_query_get ("&&a=1&", "a", value, sizeof value) == 1);
    char challenge[CHANNELS_VERIFY_CHALLENGE_MAX + 1];
    const char *good = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token="
                       "meatyhamhock";
    assert (
        channels_verify_meta_handshake ("meatyhamhock", good, challenge, sizeof challenge)
        == 0);
    assert (strcmp (challenge, "1158201444") == 0);
    assert (channels_verify_meta_handshake ("meatyhamhock2", good, challenge,
                                            sizeof challenge)
            == -1);
    assert (channels_verify_meta_handshake (
                "meatyhamhock",
                "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock",
                challenge, sizeof challenge)
            == -1);
    assert (channels_verify_meta_handshake (
                "meatyhamhock", "hub.mode=subscribe&hub.verify_token=meatyhamhock",
                challenge, sizeof challenge)
            == -1);
    assert (channels_verify_meta_handshake (
                "meatyhamhock",
                "hub.mode=subscribe&hub.challenge=&hub.verify_token=meatyhamhock",
                challenge, sizeof challenge)
            == -1);
    assert (channels_verify_meta_handshake (
                "meatyhamhock",
                "hub.mode=subscribe&hub.challenge=%0A1&hub.verify_token=meatyhamhock",
                challenge, sizeof challenge)
            == -1);
    assert (
        channels_verify_meta_handshake ("meatyhamhock", NULL, challenge, sizeof challenge)
        == -1);
    char longer[400];
    snprintf (longer, sizeof longer,
              "hub.mode=subscribe&hub.verify_token=t&hub.challenge=%0257d", 1);
    assert (channels_verify_meta_handshake ("t", longer, challenge, sizeof challenge)
            == -1);
    snprintf (longer, sizeof longer,
              "hub.mode=subscribe&hub.verify_token=t&hub.challenge=%0256d", 1);
    assert (channels_verify_meta_handshake ("t", longer, challenge, sizeof challenge)
            == 0);
    assert (strlen (challenge) == 256);
    printf ("OK\n");
}
