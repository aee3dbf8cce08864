/*  auth_jwk: one signing or verifying key of the access-token key set (see the
    header). HS256 signatures are HMAC-SHA-256 from libsodium, checked again by
    libjwt 1.10 as auth_jwt always did; EdDSA signatures are libsodium's Ed25519
    (crypto_sign_detached, crypto_sign_verify_detached), which libjwt 1.10 lacks. */
#include "auth_jwk.h"

#include <assert.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Signature sizes of each algorithm, in bytes
#define S_HS256_BYTES crypto_auth_hmacsha256_BYTES
#define S_EDDSA_BYTES crypto_sign_BYTES
#define S_B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

struct _auth_jwk_t {
    auth_jwk_alg_t alg;                                      //  HS256 or EdDSA
    char kid[AUTH_JWK_KID_MAX + 1];                          //  key id
    unsigned char *secret;                                   //  HS256 secret or
                                                             //  Ed25519 secret key,
                                                             //  NULL: verifies only
    size_t secret_size;                                      //  its size in bytes
    unsigned char public_key[AUTH_JWK_ED25519_PUBLIC_SIZE];  //  Ed25519 public key
};

//  True when kid is 1..AUTH_JWK_KID_MAX characters of [A-Za-z0-9._-].
static bool
s_kid_valid (const char *kid)
{
    if (!kid)
        return false;
    size_t len = strnlen (kid, AUTH_JWK_KID_MAX + 1);
    return len > 0 && len <= AUTH_JWK_KID_MAX
           && strspn (kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789._-")
                  == len;
}

//  A key of alg named kid (already checked) with no secret yet.
static auth_jwk_t *
s_new (auth_jwk_alg_t alg, const char *kid)
{
    assert (sodium_init () >= 0);
    auth_jwk_t *self = calloc (1, sizeof *self);
    assert (self);
    self->alg = alg;
    snprintf (self->kid, sizeof self->kid, "%s", kid);
    return self;
}

auth_jwk_t *
auth_jwk_new_hs256 (const char *kid, const void *secret, size_t secret_size)
{
    if (!s_kid_valid (kid) || !secret || secret_size < AUTH_JWK_SECRET_MIN
        || secret_size > AUTH_JWK_SECRET_MAX)
        return NULL;
    auth_jwk_t *self = s_new (AUTH_JWK_HS256, kid);
    self->secret = malloc (secret_size);
    assert (self->secret);
    memcpy (self->secret, secret, secret_size);
    self->secret_size = secret_size;
    return self;
}

auth_jwk_t *
auth_jwk_new_ed25519 (const char *kid, const unsigned char *seed)
{
    if (!s_kid_valid (kid) || !seed)
        return NULL;
    auth_jwk_t *self = s_new (AUTH_JWK_EDDSA, kid);
    self->secret_size = crypto_sign_SECRETKEYBYTES;
    self->secret = malloc (self->secret_size);
    assert (self->secret);
    int rc = crypto_sign_seed_keypair (self->public_key, self->secret, seed);
    assert (rc == 0);
    return self;
}

auth_jwk_t *
auth_jwk_new_ed25519_public (const char *kid, const unsigned char *public_key)
{
    if (!s_kid_valid (kid) || !public_key
        || !crypto_core_ed25519_is_valid_point (public_key))
        return NULL;
    auth_jwk_t *self = s_new (AUTH_JWK_EDDSA, kid);
    memcpy (self->public_key, public_key, sizeof self->public_key);
    return self;
}

void
auth_jwk_destroy (auth_jwk_t **self_p)
{
    assert (self_p);
    auth_jwk_t *self = *self_p;
    if (!self)
        return;
    if (self->secret) {
        sodium_memzero (self->secret, self->secret_size);
        free (self->secret);
    }
    sodium_memzero (self, sizeof *self);
    free (self);
    *self_p = NULL;
}

auth_jwk_alg_t
auth_jwk_alg (auth_jwk_t *self)
{
    assert (self);
    return self->alg;
}

const char *
auth_jwk_kid (auth_jwk_t *self)
{
    assert (self);
    return self->kid;
}

bool
auth_jwk_can_sign (auth_jwk_t *self)
{
    assert (self);
    return self->secret != NULL;
}

const unsigned char *
auth_jwk_public_key (auth_jwk_t *self)
{
    assert (self);
    return self->alg == AUTH_JWK_EDDSA ? self->public_key : NULL;
}

//  HMAC-SHA-256 of size bytes at data with the key's secret into mac.
static void
s_hmac (auth_jwk_t *self, const char *data, size_t size, unsigned char mac[S_HS256_BYTES])
{
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, self->secret, self->secret_size);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) data, size);
    crypto_auth_hmacsha256_final (&state, mac);
    sodium_memzero (&state, sizeof state);
}

char *
auth_jwk_sign (auth_jwk_t *self, const char *input)
{
    assert (self);
    assert (input);
    if (!self->secret)
        return NULL;
    size_t len = strlen (input);
    unsigned char signature[S_EDDSA_BYTES];
    size_t size = S_HS256_BYTES;
    if (self->alg == AUTH_JWK_HS256)
        s_hmac (self, input, len, signature);
    else {
        size = S_EDDSA_BYTES;
        int rc = crypto_sign_detached (signature, NULL, (const unsigned char *) input,
                                       len, self->secret);
        assert (rc == 0);
    }
    size_t encoded = sodium_base64_ENCODED_LEN (size, S_B64URL);
    char *token = malloc (len + 1 + encoded);
    assert (token);
    memcpy (token, input, len);
    token[len] = '.';
    sodium_bin2base64 (token + len + 1, encoded, signature, size, S_B64URL);
    return token;
}

bool
auth_jwk_verify (auth_jwk_t *self, const char *token)
{
    assert (self);
    const char *dot = token ? strrchr (token, '.') : NULL;
    if (!dot)
        return false;
    const char *text = dot + 1;
    size_t text_len = strlen (text);
    size_t expected = self->alg == AUTH_JWK_HS256 ? S_HS256_BYTES : S_EDDSA_BYTES;
    //  Exactly the characters of a signature of the right size; libsodium also
    //  refuses stray bits in the last character, so each signature has one form
    if (text_len + 1 != sodium_base64_ENCODED_LEN (expected, S_B64URL))
        return false;
    unsigned char signature[S_EDDSA_BYTES];
    size_t size = 0;
    const char *end = NULL;
    if (sodium_base642bin (signature, sizeof signature, text, text_len, NULL, &size, &end,
                           S_B64URL)
            != 0
        || end != text + text_len || size != expected)
        return false;
    size_t signed_len = (size_t) (dot - token);
    if (self->alg == AUTH_JWK_EDDSA)
        return crypto_sign_verify_detached (signature, (const unsigned char *) token,
                                            signed_len, self->public_key)
               == 0;
    unsigned char mac[S_HS256_BYTES];
    s_hmac (self, token, signed_len, mac);
    if (sodium_memcmp (mac, signature, sizeof mac) != 0)
        return false;
    //  ... and libjwt's check with the same secret
    jwt_t *jwt = NULL;
    bool valid = jwt_decode (&jwt, token, self->secret, (int) self->secret_size) == 0
                 && jwt_get_alg (jwt) == JWT_ALG_HS256;
    jwt_free (jwt);
    return valid;
}

char *
auth_jwk_public_json (auth_jwk_t *self)
{
    assert (self);
    if (self->alg != AUTH_JWK_EDDSA)
        return NULL;
    char x[sodium_base64_ENCODED_LEN (AUTH_JWK_ED25519_PUBLIC_SIZE, S_B64URL)];
    sodium_bin2base64 (x, sizeof x, self->public_key, sizeof self->public_key, S_B64URL);
    json_t *jwk = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "OKP", "crv",
                             "Ed25519", "x", x, "kid", self->kid, "alg", "EdDSA", "use",
                             "sig");
    assert (jwk);
    char *text = json_dumps (jwk, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert (text);
    json_decref (jwk);
    return text;
}

const char *
auth_jwk_alg_name (auth_jwk_alg_t alg)
{
    return alg == AUTH_JWK_HS256 ? "HS256" : alg == AUTH_JWK_EDDSA ? "EdDSA" : NULL;
}

auth_jwk_alg_t
auth_jwk_alg_parse (const char *name)
{
    if (name && strcmp (name, "HS256") == 0)
        return AUTH_JWK_HS256;
    if (name && strcmp (name, "EdDSA") == 0)
        return AUTH_JWK_EDDSA;
    return AUTH_JWK_NONE;
}

//  --------------------------------------------------------------------------
//  Selftest

//  RFC 8037 appendix A: the Ed25519 key (d, x), the JWS of A.4 and its kid here
#define S_RFC8037_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define S_RFC8037_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define S_RFC8037_INPUT "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
#define S_RFC8037_SIG                                                                    \
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_"    \
    "MuM0KAg"
//  RFC 7515 appendix A.1: an HS256 JWS, its key (k) and signature
#define S_RFC7515_K                                                                      \
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9" \
    "CAow"
#define S_RFC7515_INPUT                                                                  \
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkz"  \
    "ODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
#define S_RFC7515_SIG "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

//  Decode base64url text into exactly size bytes at out; asserts it does.
static void
s_decode (const char *text, unsigned char *out, size_t size)
{
    size_t got = 0;
    int rc = sodium_base642bin (out, size, text, strlen (text), NULL, &got, NULL,
                                S_B64URL);
    assert (rc == 0 && got == size);
}

//  token with the character at index replaced by c: a fresh string.
static char *
s_with (const char *token, size_t index, char c)
{
    char *copy = strdup (token);
    assert (copy && index < strlen (copy));
    copy[index] = c;
    return copy;
}

//  auth_jwk_verify of a fresh token, which it frees, must answer expected.
static void
s_expect (auth_jwk_t *key, char *token, bool expected, const char *what, bool verbose)
{
    bool valid = auth_jwk_verify (key, token);
    if (verbose || valid != expected)
        printf ("\n   %s: %s", what, valid ? "valid" : "refused");
    assert (valid == expected);
    free (token);
}

void
auth_jwk_test (bool verbose)
{
    printf (" * auth_jwk: ");
    assert (sodium_init () >= 0);
    unsigned char seed[AUTH_JWK_ED25519_SEED_SIZE];
    unsigned char public_key[AUTH_JWK_ED25519_PUBLIC_SIZE];
    s_decode (S_RFC8037_D, seed, sizeof seed);
    s_decode (S_RFC8037_X, public_key, sizeof public_key);

    //  Ed25519: the RFC 8037 A.4 signature, known answer (Ed25519 is deterministic)
    auth_jwk_t *pair = auth_jwk_new_ed25519 ("ed1", seed);
    assert (pair && auth_jwk_can_sign (pair) && auth_jwk_alg (pair) == AUTH_JWK_EDDSA);
    assert (memcmp (auth_jwk_public_key (pair), public_key, sizeof public_key) == 0);
    assert (strcmp (auth_jwk_kid (pair), "ed1") == 0);
    char *token = auth_jwk_sign (pair, S_RFC8037_INPUT);
    assert (token);
    if (verbose)
        printf ("\n   %s", token);
    assert (strcmp (token, S_RFC8037_INPUT "." S_RFC8037_SIG) == 0);
    assert (auth_jwk_verify (pair, token));
    //  The public key alone verifies it and cannot sign
    auth_jwk_t *public_only = auth_jwk_new_ed25519_public ("ed1", public_key);
    assert (public_only && !auth_jwk_can_sign (public_only));
    assert (auth_jwk_sign (public_only, S_RFC8037_INPUT) == NULL);
    assert (auth_jwk_verify (public_only, token));

    //  Tampering: the signed part, a signature character, its length, padding,
    //  stray bits in its last character, S + L (the same signature, not canonical)
    size_t len = strlen (token);
    size_t sig_at = strlen (S_RFC8037_INPUT) + 1;
    s_expect (public_only, s_with (token, 3, token[3] == 'A' ? 'B' : 'A'), false,
              "header changed", verbose);
    s_expect (public_only,
              s_with (token, sig_at + 5, token[sig_at + 5] == 'A' ? 'B' : 'A'), false,
              "signature changed", verbose);
    s_expect (public_only, s_with (token, len - 1, 'h'), false, "stray bits", verbose);
    char *cut = strdup (token);
    cut[len - 1] = '\0';
    s_expect (public_only, cut, false, "signature cut short", verbose);
    char padded[256];
    snprintf (padded, sizeof padded, "%s==", token);
    s_expect (public_only, strdup (padded), false, "signature padded", verbose);
    snprintf (padded, sizeof padded, "%s.%s", S_RFC8037_INPUT, S_RFC8037_SIG);
    for (char *p = padded + sig_at; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    s_expect (public_only, strdup (padded), false, "plain base64 signature", verbose);
    unsigned char raw[S_EDDSA_BYTES];
    s_decode (S_RFC8037_SIG, raw, sizeof raw);
    //  S += L, the order of the group (little-endian), so S stays < 2^256
    static const unsigned char order[32] = {
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
        0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
        0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    unsigned carry = 0;
    for (size_t i = 0; i < 32; i++) {
        carry += (unsigned) raw[32 + i] + order[i];
        raw[32 + i] = (unsigned char) carry;
        carry >>= 8;
    }
    assert (carry == 0);
    char malleable[256];
    size_t at = (size_t) snprintf (malleable, sizeof malleable, "%s.", S_RFC8037_INPUT);
    sodium_bin2base64 (malleable + at, sizeof malleable - at, raw, sizeof raw, S_B64URL);
    s_expect (public_only, strdup (malleable), false, "S + L", verbose);
    s_expect (public_only, strdup (S_RFC8037_INPUT), false, "no signature", verbose);
    assert (!auth_jwk_verify (public_only, NULL));

    //  Another key pair does not verify it; two keys of one seed agree
    unsigned char other_seed[AUTH_JWK_ED25519_SEED_SIZE];
    randombytes_buf (other_seed, sizeof other_seed);
    auth_jwk_t *other = auth_jwk_new_ed25519 ("ed2", other_seed);
    s_expect (other, strdup (token), false, "another key", verbose);
    char *signed_by_other = auth_jwk_sign (other, S_RFC8037_INPUT);
    s_expect (pair, signed_by_other, false, "signed by another key", verbose);
    auth_jwk_destroy (&other);

    //  Public keys that are not valid points: the identity, a point of order 4
    unsigned char weak[AUTH_JWK_ED25519_PUBLIC_SIZE] = {1};
    assert (auth_jwk_new_ed25519_public ("w", weak) == NULL);
    weak[0] = 0;
    assert (auth_jwk_new_ed25519_public ("w", weak) == NULL);
    assert (auth_jwk_new_ed25519_public ("bad kid", public_key) == NULL);
    assert (auth_jwk_new_ed25519 ("", seed) == NULL);

    //  The public JWK (RFC 8037 A.2's x)
    char *jwk = auth_jwk_public_json (public_only);
    if (verbose)
        printf ("\n   %s", jwk);
    assert (strcmp (jwk, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" S_RFC8037_X
                         "\",\"kid\":\"ed1\",\"alg\":\"EdDSA\",\"use\":\"sig\"}")
            == 0);
    free (jwk);

    //  HS256: the RFC 7515 A.1 signature, known answer, and checks
    unsigned char k[64];
    s_decode (S_RFC7515_K, k, sizeof k);
    auth_jwk_t *hs = auth_jwk_new_hs256 ("hs1", k, sizeof k);
    assert (hs && auth_jwk_can_sign (hs) && auth_jwk_alg (hs) == AUTH_JWK_HS256);
    assert (auth_jwk_public_key (hs) == NULL && auth_jwk_public_json (hs) == NULL);
    char *hs_token = auth_jwk_sign (hs, S_RFC7515_INPUT);
    assert (strcmp (hs_token, S_RFC7515_INPUT "." S_RFC7515_SIG) == 0);
    assert (auth_jwk_verify (hs, hs_token));
    len = strlen (hs_token);
    s_expect (hs, s_with (hs_token, len - 3, hs_token[len - 3] == 'A' ? 'B' : 'A'), false,
              "HS256 signature changed", verbose);
    s_expect (hs, s_with (hs_token, len - 1, 'l'), false, "HS256 stray bits", verbose);
    free (hs_token);
    assert (auth_jwk_new_hs256 ("hs1", k, AUTH_JWK_SECRET_MIN - 1) == NULL);
    assert (auth_jwk_new_hs256 ("hs1", k, AUTH_JWK_SECRET_MAX + 1) == NULL);
    assert (auth_jwk_new_hs256 ("k/1", k, sizeof k) == NULL);
    //  Across algorithms nothing verifies, whatever the sizes
    s_expect (hs, strdup (token), false, "EdDSA token, HS256 key", verbose);
    auth_jwk_t *confused = auth_jwk_new_hs256 ("ed1", public_key, sizeof public_key);
    char *hmac_of_public = auth_jwk_sign (confused, S_RFC8037_INPUT);
    s_expect (public_only, hmac_of_public, false, "HMAC keyed with the public key",
              verbose);
    auth_jwk_destroy (&confused);

    assert (strcmp (auth_jwk_alg_name (AUTH_JWK_EDDSA), "EdDSA") == 0);
    assert (auth_jwk_alg_name (AUTH_JWK_NONE) == NULL);
    assert (auth_jwk_alg_parse ("HS256") == AUTH_JWK_HS256);
    assert (auth_jwk_alg_parse ("eddsa") == AUTH_JWK_NONE);
    assert (auth_jwk_alg_parse (NULL) == AUTH_JWK_NONE);

    free (token);
    auth_jwk_destroy (&hs);
    auth_jwk_destroy (&public_only);
    auth_jwk_destroy (&pair);
    assert (pair == NULL);
    auth_jwk_destroy (&pair);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
