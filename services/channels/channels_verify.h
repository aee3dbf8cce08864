/*  channels_verify: checks that a webhook comes from its platform, on the raw
    bytes as received (schemas/channels.md, "Verification"): Meta's
    X-Hub-Signature-256 and GET subscription handshake, Telegram's secret token,
    Slack's v0 signature with its 300-second window. Every comparison of a secret
    takes constant time (libsodium). Pure: no sockets, no clock (callers pass
    now). Used by channels_receive.                                            */
#ifndef CHANNELS_VERIFY_H_INCLUDED
#define CHANNELS_VERIFY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Slack refuses requests whose timestamp is further than this from now (seconds)
#define CHANNELS_VERIFY_SLACK_WINDOW_S 300
//  Longest hub.challenge echoed back
#define CHANNELS_VERIFY_CHALLENGE_MAX 256

//  HMAC-SHA256 (key, the parts one after the other) as 64 lower-case hex digits
//  and a NUL into hex (at least 65 bytes).
void channels_verify_hmac_hex (const char *key, const void *const *parts,
                               const size_t *sizes, size_t count, char *hex);

//  True when the two secrets are equal; the time taken does not depend on where
//  they differ, nor on their lengths. NULL equals nothing.
bool channels_verify_equal (const char *expected, const char *given);

//  True when header ("sha256=<hex>", X-Hub-Signature-256) is HMAC-SHA256
//  (app_secret, body); hex digits in either case.
bool channels_verify_meta (const char *app_secret, const void *body, size_t size,
                           const char *header);

//  Meta's GET handshake on a raw query string: hub.mode=subscribe and
//  hub.verify_token equal to verify_token. Returns 0 with the decoded
//  hub.challenge (1..CHANNELS_VERIFY_CHALLENGE_MAX printable bytes) in challenge
//  (size at least CHANNELS_VERIFY_CHALLENGE_MAX + 1), or -1.
int channels_verify_meta_handshake (const char *verify_token, const char *query,
                                    char *challenge, size_t size)
    __attribute__ ((warn_unused_result));

//  True when given (X-Telegram-Bot-Api-Secret-Token) is secret_token.
bool channels_verify_telegram (const char *secret_token, const char *given);

//  Outcome of a Slack check.
typedef enum {
    CHANNELS_VERIFY_OK = 0,     //  signed and fresh
    CHANNELS_VERIFY_BAD = -1,   //  missing or wrong signature
    CHANNELS_VERIFY_STALE = -2  //  timestamp missing, malformed or outside the window
} channels_verify_result_t;

//  Slack: timestamp (X-Slack-Request-Timestamp, decimal seconds) within
//  CHANNELS_VERIFY_SLACK_WINDOW_S of now, and signature (X-Slack-Signature,
//  "v0=<hex>") HMAC-SHA256 (signing_secret, "v0:" timestamp ":" body).
channels_verify_result_t channels_verify_slack (const char *signing_secret,
                                                const char *timestamp,
                                                const char *signature, const void *body,
                                                size_t size, int64_t now);

//  The decoded value of parameter name in a raw query string (percent escapes,
//  '+' as space) into out. Returns its length, or -1 when absent, malformed,
//  holding a NUL, or longer than size - 1.
int channels_verify_query_get (const char *query, const char *name, char *out,
                               size_t size);

void channels_verify_test (bool verbose);

#endif
