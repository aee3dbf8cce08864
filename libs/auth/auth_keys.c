/*  auth_keys: the JWT key set from configuration (see the header and
    schemas/auth.md "Keys").                                                      */
#include "auth_keys.h"

#include <assert.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  crypto_kdf contexts and subkey ids of the derived HS256 secret and Ed25519
//  seed (auth.md); auth_secretbox uses "chorussb" and subkey 2
#define S_KDF_CONTEXT "chorusjw"
#define S_KDF_SUBKEY 1
#define S_KDF_EDDSA_CONTEXT "chorused"
#define S_KDF_EDDSA_SUBKEY 3
//  Characters trimmed around the items of a list
#define S_BLANKS " \t\r\n"

//  The kids of a key set being built, to skip keys listed twice
typedef struct {
    char kids[AUTH_JWT_MAX_KEYS][AUTH_KEYS_KID_LEN + 1];  //  kids in the set
    size_t count;                                         //  how many
} s_kids_t;

//  A new message for *error (when error is not NULL).
static void
s_fail (char **error, const char *format, ...)
{
    if (!error)
        return;
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    *error = text;
}

//  Write the first AUTH_KEYS_KID_LEN hex digits of SHA-256 of size bytes at data.
static void
s_kid (const void *data, size_t size, char *kid, size_t kid_size)
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) data, size);
    sodium_bin2hex (kid, kid_size, hash, AUTH_KEYS_KID_LEN / 2);
}

int
auth_keys_kid (const char *secret, char *kid, size_t size)
{
    if (!secret || !kid || size < AUTH_KEYS_KID_LEN + 1)
        return -1;
    s_kid (secret, strlen (secret), kid, size);
    return 0;
}

int
auth_keys_public_kid (const unsigned char *public_key, char *kid, size_t size)
{
    if (!public_key || !kid || size < AUTH_KEYS_KID_LEN + 1)
        return -1;
    s_kid (public_key, AUTH_JWK_ED25519_PUBLIC_SIZE, kid, size);
    return 0;
}

//  True when kids holds kid; else adds it when there is room (sets *full if not).
static bool
s_kids_known (s_kids_t *kids, const char *kid, bool *full)
{
    for (size_t i = 0; i < kids->count; i++)
        if (strcmp (kids->kids[i], kid) == 0)
            return true;
    *full = kids->count == AUTH_JWT_MAX_KEYS;
    if (!*full)
        snprintf (kids->kids[kids->count++], sizeof kids->kids[0], "%s", kid);
    return false;
}

//  Decode len characters of base64 (standard or URL-safe, padded or not) into
//  exactly size bytes at out. Returns 0 or -1 (out is then wiped).
static int
s_decode (const char *text, size_t len, unsigned char *out, size_t size)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        size_t got = 0;
        if (sodium_base642bin (out, size, text, len, S_BLANKS, &got, NULL, variants[i])
                == 0
            && got == size)
            return 0;
    }
    sodium_memzero (out, size);
    return -1;
}

//  Derive size bytes at out from CHORUS_SECRET_KEY's value (base64 of 32 bytes)
//  with crypto_kdf, subkey id and context. Returns 0, or -1 with *error set.
static int
s_derive (const char *secret_key, uint64_t subkey_id, const char *context,
          unsigned char *out, size_t size, char **error)
{
    unsigned char master[crypto_kdf_KEYBYTES];
    size_t master_len = 0;
    if (sodium_base642bin (master, sizeof master, secret_key, strlen (secret_key),
                           S_BLANKS, &master_len, NULL, sodium_base64_VARIANT_ORIGINAL)
            != 0
        || master_len != sizeof master) {
        sodium_memzero (master, sizeof master);
        s_fail (error, "CHORUS_SECRET_KEY: must be the base64 of %d bytes",
                crypto_kdf_KEYBYTES);
        return -1;
    }
    int rc = crypto_kdf_derive_from_key (out, size, subkey_id, context, master);
    sodium_memzero (master, sizeof master);
    if (rc != 0) {
        sodium_memzero (out, size);
        s_fail (error, "CHORUS_SECRET_KEY: cannot derive the JWT key");
        return -1;
    }
    return 0;
}

//  Check the length of a secret text read from variable env.
static int
s_check_secret (const char *env, const char *secret, size_t len, char **error)
{
    if (len < AUTH_JWT_SECRET_MIN || len > AUTH_JWT_SECRET_MAX) {
        s_fail (error, "%s: a secret must be %d..%d bytes, not %zu", env,
                AUTH_JWT_SECRET_MIN, AUTH_JWT_SECRET_MAX, len);
        return -1;
    }
    return 0;
}

int
auth_keys_secret (core_config_t *config, char *secret, size_t size, char **error)
{
    assert (config);
    const char *configured = core_config_str (config, "jwt_secret");
    const char *secret_key = core_config_str (config, "secret_key");
    if (*configured) {
        size_t len = strlen (configured);
        if (s_check_secret ("CHORUS_JWT_SECRET", configured, len, error))
            return -1;
        if (len + 1 > size) {
            s_fail (error, "CHORUS_JWT_SECRET: no room for the secret");
            return -1;
        }
        memcpy (secret, configured, len + 1);
        return 0;
    }
    if (!*secret_key) {
        s_fail (error, "neither CHORUS_JWT_SECRET nor CHORUS_SECRET_KEY is set: "
                       "access tokens need one of them");
        return -1;
    }
    if (size < AUTH_KEYS_DERIVED_LEN + 1) {
        s_fail (error, "CHORUS_SECRET_KEY: no room for the derived secret");
        return -1;
    }
    unsigned char subkey[AUTH_KEYS_DERIVED_LEN / 2];
    if (s_derive (secret_key, S_KDF_SUBKEY, S_KDF_CONTEXT, subkey, sizeof subkey, error))
        return -1;
    sodium_bin2hex (secret, size, subkey, sizeof subkey);
    sodium_memzero (subkey, sizeof subkey);
    return 0;
}

//  The next non-empty item of a comma-separated list at *list, blanks around it
//  trimmed: its start, with its length in *len, and *list moved past it; NULL
//  at the end of the list.
static const char *
s_next_item (const char **list, size_t *len)
{
    while (**list) {
        const char *comma = strchr (*list, ',');
        const char *end = comma ? comma : *list + strlen (*list);
        const char *start = *list;
        *list = comma ? comma + 1 : end;
        while (start < end && strchr (S_BLANKS, *start))
            start++;
        while (end > start && strchr (S_BLANKS, end[-1]))
            end--;
        if (end > start) {
            *len = (size_t) (end - start);
            return start;
        }
    }
    return NULL;
}

//  Add key, named in env, to jwt unless kids already holds it. Returns 0, or -1
//  with *error set when the set is full.
static int
s_add (auth_jwt_t *jwt, s_kids_t *kids, auth_jwk_t *key, const char *env, char **error)
{
    bool full = false;
    if (s_kids_known (kids, auth_jwk_kid (key), &full)) {
        auth_jwk_destroy (&key);
        return 0;
    }
    if (full) {
        auth_jwk_destroy (&key);
        s_fail (error, "%s: more than %d keys in all", env, AUTH_JWT_MAX_KEYS);
        return -1;
    }
    int rc = auth_jwt_add_jwk (jwt, &key);
    assert (rc == 0);  //  the pinned algorithm, a new kid, room left
    return 0;
}

//  Add every secret of CHORUS_JWT_PREVIOUS_SECRETS to jwt as verify-only keys.
//  Returns 0, or -1 with *error set.
static int
s_add_previous_secrets (auth_jwt_t *jwt, s_kids_t *kids, const char *list, char **error)
{
    const char *env = "CHORUS_JWT_PREVIOUS_SECRETS";
    size_t len = 0;
    const char *item;
    while ((item = s_next_item (&list, &len))) {
        if (s_check_secret (env, item, len, error))
            return -1;
        char *secret = strndup (item, len);
        assert (secret);
        char kid[AUTH_KEYS_KID_LEN + 1];
        s_kid (secret, len, kid, sizeof kid);
        auth_jwk_t *key = auth_jwk_new_hs256 (kid, secret, len);
        assert (key);  //  valid kid and length
        sodium_memzero (secret, len);
        free (secret);
        if (s_add (jwt, kids, key, env, error))
            return -1;
    }
    return 0;
}

//  Add every Ed25519 public key of list (read from env) to jwt. Returns 0, or -1
//  with *error set.
static int
s_add_public_keys (auth_jwt_t *jwt, s_kids_t *kids, const char *list, const char *env,
                   char **error)
{
    size_t len = 0, position = 0;
    const char *item;
    while ((item = s_next_item (&list, &len))) {
        position++;
        unsigned char public_key[AUTH_JWK_ED25519_PUBLIC_SIZE];
        char kid[AUTH_KEYS_KID_LEN + 1];
        auth_jwk_t *key = NULL;
        if (s_decode (item, len, public_key, sizeof public_key) == 0) {
            s_kid (public_key, sizeof public_key, kid, sizeof kid);
            key = auth_jwk_new_ed25519_public (kid, public_key);
        }
        if (!key) {
            s_fail (error,
                    "%s: key %zu is not the base64 of an Ed25519 public key "
                    "(32 bytes)",
                    env, position);
            return -1;
        }
        if (s_add (jwt, kids, key, env, error))
            return -1;
    }
    return 0;
}

//  The HS256 key set: the current secret, then the previous ones.
static auth_jwt_t *
s_hs256_new (core_config_t *config, char **error)
{
    const char *eddsa_only[][2] = {
        {"jwt_private_key", "CHORUS_JWT_PRIVATE_KEY"},
        {"jwt_public_keys", "CHORUS_JWT_PUBLIC_KEYS"},
        {"jwt_previous_public_keys", "CHORUS_JWT_PREVIOUS_PUBLIC_KEYS"}};
    for (size_t i = 0; i < sizeof eddsa_only / sizeof eddsa_only[0]; i++)
        if (*core_config_str (config, eddsa_only[i][0])) {
            s_fail (error,
                    "%s: only read when CHORUS_JWT_ALGORITHM is EdDSA, and it is "
                    "HS256",
                    eddsa_only[i][1]);
            return NULL;
        }
    char secret[AUTH_JWT_SECRET_MAX + 1];
    if (auth_keys_secret (config, secret, sizeof secret, error))
        return NULL;
    size_t len = strlen (secret);
    s_kids_t kids = {.count = 0};
    char kid[AUTH_KEYS_KID_LEN + 1];
    s_kid (secret, len, kid, sizeof kid);
    auth_jwk_t *key = auth_jwk_new_hs256 (kid, secret, len);
    sodium_memzero (secret, sizeof secret);
    assert (key);  //  checked above: kid and length are valid
    auth_jwt_t *jwt = auth_jwt_new (core_config_str (config, "jwt_issuer"),
                                    core_config_str (config, "jwt_audience"));
    if (s_add (jwt, &kids, key, "CHORUS_JWT_SECRET", error)
        || s_add_previous_secrets (
            jwt, &kids, core_config_str (config, "jwt_previous_secrets"), error))
        auth_jwt_destroy (&jwt);
    return jwt;
}

//  The Ed25519 seed that signs: CHORUS_JWT_PRIVATE_KEY, or derived from
//  CHORUS_SECRET_KEY. Returns 1 with the seed, 0 when neither is set, or -1 with
//  *error set.
static int
s_seed (core_config_t *config, unsigned char *seed, char **error)
{
    const char *configured = core_config_str (config, "jwt_private_key");
    const char *secret_key = core_config_str (config, "secret_key");
    if (*configured) {
        if (s_decode (configured, strlen (configured), seed,
                      AUTH_JWK_ED25519_SEED_SIZE)) {
            s_fail (error,
                    "CHORUS_JWT_PRIVATE_KEY: must be the base64 of a %d-byte "
                    "Ed25519 seed",
                    AUTH_JWK_ED25519_SEED_SIZE);
            return -1;
        }
        return 1;
    }
    if (!*secret_key)
        return 0;
    return s_derive (secret_key, S_KDF_EDDSA_SUBKEY, S_KDF_EDDSA_CONTEXT, seed,
                     AUTH_JWK_ED25519_SEED_SIZE, error)
               ? -1
               : 1;
}

//  The EdDSA key set: the key pair that signs (when there is one), then the
//  public keys, then the previous public keys.
static auth_jwt_t *
s_eddsa_new (core_config_t *config, char **error)
{
    unsigned char seed[AUTH_JWK_ED25519_SEED_SIZE];
    int has_seed = s_seed (config, seed, error);
    if (has_seed == -1)
        return NULL;
    auth_jwt_t *jwt = auth_jwt_new_alg (core_config_str (config, "jwt_issuer"),
                                        core_config_str (config, "jwt_audience"),
                                        AUTH_JWK_EDDSA);
    s_kids_t kids = {.count = 0};
    if (has_seed) {
        unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
        unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
        crypto_sign_seed_keypair (public_key, secret_key, seed);
        sodium_memzero (secret_key, sizeof secret_key);
        char kid[AUTH_KEYS_KID_LEN + 1];
        s_kid (public_key, sizeof public_key, kid, sizeof kid);
        auth_jwk_t *key = auth_jwk_new_ed25519 (kid, seed);
        sodium_memzero (seed, sizeof seed);
        assert (key);
        int rc = s_add (jwt, &kids, key, "CHORUS_JWT_PRIVATE_KEY", error);
        assert (rc == 0);  //  the first key
    }
    if (s_add_public_keys (jwt, &kids, core_config_str (config, "jwt_public_keys"),
                           "CHORUS_JWT_PUBLIC_KEYS", error)
        || s_add_public_keys (jwt, &kids,
                              core_config_str (config, "jwt_previous_public_keys"),
                              "CHORUS_JWT_PREVIOUS_PUBLIC_KEYS", error))
        auth_jwt_destroy (&jwt);
    else if (kids.count == 0) {
        s_fail (error, "CHORUS_JWT_ALGORITHM is EdDSA and none of "
                       "CHORUS_JWT_PRIVATE_KEY, CHORUS_SECRET_KEY and "
                       "CHORUS_JWT_PUBLIC_KEYS is set: access tokens need one of them");
        auth_jwt_destroy (&jwt);
    }
    return jwt;
}

bool
auth_keys_configured (core_config_t *config)
{
    assert (config);
    const char *names[] = {"secret_key",           "jwt_secret",
                           "jwt_previous_secrets", "jwt_private_key",
                           "jwt_public_keys",      "jwt_previous_public_keys"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (*core_config_str (config, names[i]))
            return true;
    return false;
}

auth_jwt_t *
auth_keys_jwt_new (core_config_t *config, char **error)
{
    assert (config);
    if (error)
        *error = NULL;
    if (sodium_init () < 0) {
        s_fail (error, "libsodium failed to initialise");
        return NULL;
    }
    const char *name = core_config_str (config, "jwt_algorithm");
    auth_jwk_alg_t alg = auth_jwk_alg_parse (name);
    auth_jwt_t *jwt = NULL;
    if (alg == AUTH_JWK_HS256)
        jwt = s_hs256_new (config, error);
    else if (alg == AUTH_JWK_EDDSA)
        jwt = s_eddsa_new (config, error);
    else
        s_fail (error, "CHORUS_JWT_ALGORITHM: must be HS256 or EdDSA, not '%s'", name);
    if (jwt)
        auth_jwt_set_ttl (jwt, core_config_int (config, "jwt_ttl_s"));
    return jwt;
}

//  --------------------------------------------------------------------------
//  Selftest

//  A configuration of the common options with some set; asserts they are valid.
//  The key options start at their defaults whatever the environment holds.
static core_config_t *
s_config (const char *const settings[][2], size_t count)
{
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    assert (config);
    const char *defaults[][2] = {{"secret_key", ""},
                                 {"jwt_algorithm", "HS256"},
                                 {"jwt_secret", ""},
                                 {"jwt_previous_secrets", ""},
                                 {"jwt_private_key", ""},
                                 {"jwt_public_keys", ""},
                                 {"jwt_previous_public_keys", ""},
                                 {"jwt_issuer", "chorus"},
                                 {"jwt_audience", "chorus-api"},
                                 {"jwt_ttl_s", "900"}};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (core_config_set (config, defaults[i][0], defaults[i][1], &error))
            assert (false);
    for (size_t i = 0; i < count; i++)
        if (core_config_set (config, settings[i][0], settings[i][1], &error)) {
            fprintf (stderr, "%s\n", error);
            assert (false);
        }
    return config;
}

//  auth_keys_jwt_new on settings must fail with a message holding needle.
static void
s_expect_error (const char *const settings[][2], size_t count, const char *needle,
                bool verbose)
{
    core_config_t *config = s_config (settings, count);
    char *error = NULL;
    auth_jwt_t *jwt = auth_keys_jwt_new (config, &error);
    if (verbose || !error || !strstr (error, needle))
        printf ("\n   error: %s (expected '%s')", error ? error : "(none)", needle);
    assert (!jwt && error && strstr (error, needle));
    free (error);
    core_config_destroy (&config);
}

#define S_SECRET "test-secret-0123456789abcdef0123456789abcdef"
#define S_OLD "old-secret-0123456789abcdef0123456789abcdef"
#define S_NOW 1764000000
//  base64 of the bytes 0..31, and the secret crypto_kdf derives from them
//  (BLAKE2b-256, key = those bytes, salt = subkey id 1, personal = "chorusjw";
//  computed independently with Python's hashlib.blake2b)
#define S_MASTER "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define S_DERIVED "a3beb82cac7eee4ece86dc86a35b05216616c1971a03736e4dad43d77210ab37"

//  EdDSA known answers, computed independently with Python (hashlib.blake2b for
//  crypto_kdf, python3-cryptography for Ed25519): the seed derived from S_MASTER
//  (subkey id 3, context "chorused") has this public key and kid; the seeds of
//  the bytes 32..63 and 64..95 have these.
#define S_DERIVED_X "vv3P4zSwktqJlw1i5Q004nIiNvOn8f2_YF7uFKAzgkA"
#define S_DERIVED_KID "42fd58bd21a5e06c"
#define S_SEED2 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define S_PUBLIC2 "Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc="
#define S_PUBLIC2_URL "Kay64UG8yvCyLhqU000LxzYeUm0L_hLIl5S8kyKWbdc"
#define S_KID2 "24f6ed6acbfe1009"
#define S_SEED3 "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
#define S_PUBLIC3 "JUO5L/EJVRFHatyDadtt3JM2ZaEZeN2hQE7hBmypVZ0="
#define S_KID3 "03396219237f75a6"

//  The key set of settings, which must be valid.
static auth_jwt_t *
s_jwt (const char *const settings[][2], size_t count)
{
    core_config_t *config = s_config (settings, count);
    char *error = NULL;
    auth_jwt_t *jwt = auth_keys_jwt_new (config, &error);
    if (!jwt)
        fprintf (stderr, "%s\n", error);
    assert (jwt && !error);
    core_config_destroy (&config);
    return jwt;
}

//  The JWKS of jwt must list kids, in that order, separated by commas.
static void
s_expect_jwks (auth_jwt_t *jwt, const char *kids, bool verbose)
{
    char *jwks = auth_jwt_jwks (jwt);
    assert (jwks);
    if (verbose)
        printf ("\n   %s", jwks);
    char listed[256] = "";
    size_t at = 0;
    for (const char *p = jwks; (p = strstr (p, "\"kid\":\"")); p += 7)
        at += (size_t) snprintf (listed + at, sizeof listed - at, "%s%.16s",
                                 at ? "," : "", p + 7);
    assert (strcmp (listed, kids) == 0);
    free (jwks);
}

//  CHORUS_JWT_ALGORITHM=EdDSA: the key pair from CHORUS_JWT_PRIVATE_KEY or
//  CHORUS_SECRET_KEY, public keys, rotation, the pin both ways (hs256_token is an
//  HS256 token of the S_SECRET configuration), refusals.
static void
s_test_eddsa (const char *hs256_token, bool verbose)
{
    if (verbose)
        printf ("\n   EdDSA:");
    unsigned char public2[AUTH_JWK_ED25519_PUBLIC_SIZE];
    size_t size = 0;
    assert (sodium_base642bin (public2, sizeof public2, S_PUBLIC2, strlen (S_PUBLIC2),
                               NULL, &size, NULL, sodium_base64_VARIANT_ORIGINAL)
                == 0
            && size == sizeof public2);
    char kid[AUTH_KEYS_KID_LEN + 1];
    assert (auth_keys_public_kid (public2, kid, sizeof kid) == 0);
    assert (strcmp (kid, S_KID2) == 0);
    assert (auth_keys_public_kid (public2, kid, AUTH_KEYS_KID_LEN) == -1);
    assert (auth_keys_public_kid (NULL, kid, sizeof kid) == -1);

    //  Derived from CHORUS_SECRET_KEY: a known public key and kid
    const char *const derived[][2] = {{"jwt_algorithm", "EdDSA"},
                                      {"secret_key", S_MASTER}};
    auth_jwt_t *jwt = s_jwt (derived, 2);
    assert (auth_jwt_alg (jwt) == AUTH_JWK_EDDSA && auth_jwt_can_sign (jwt));
    char *jwks = auth_jwt_jwks (jwt);
    assert (strstr (jwks, "\"x\":\"" S_DERIVED_X "\",\"kid\":\"" S_DERIVED_KID "\""));
    free (jwks);
    auth_jwt_claims_t claims = {.sub = "u1", .tid = "t1", .role = AUTH_ROLE_MEMBER};
    auth_jwt_claims_t got;
    char *token = auth_jwt_issue (jwt, &claims, S_NOW, NULL, 0);
    assert (auth_jwt_verify (jwt, token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strcmp (got.kid, S_DERIVED_KID) == 0 && got.exp == S_NOW + 900);
    free (token);
    auth_jwt_destroy (&jwt);

    //  CHORUS_JWT_PRIVATE_KEY wins; the HS256 secret is not read with EdDSA
    const char *const private2[][2] = {{"jwt_algorithm", "EdDSA"},
                                       {"secret_key", S_MASTER},
                                       {"jwt_secret", S_SECRET},
                                       {"jwt_private_key", S_SEED2}};
    jwt = s_jwt (private2, 4);
    s_expect_jwks (jwt, S_KID2, verbose);
    char *token2 = auth_jwt_issue (jwt, &claims, S_NOW, NULL, 0);
    assert (auth_jwt_verify (jwt, token2, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strcmp (got.kid, S_KID2) == 0);
    //  The pin both ways
    assert (auth_jwt_verify (jwt, hs256_token, S_NOW, &got, NULL, 0)
            == AUTH_JWT_BAD_ALGORITHM);
    const char *const hs256[][2] = {{"jwt_secret", S_SECRET}};
    auth_jwt_t *hs = s_jwt (hs256, 1);
    assert (auth_jwt_verify (hs, hs256_token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_jwt_verify (hs, token2, S_NOW, &got, NULL, 0) == AUTH_JWT_BAD_ALGORITHM);
    assert (auth_jwt_jwks (hs) == NULL);
    auth_jwt_destroy (&hs);
    auth_jwt_destroy (&jwt);

    //  Public keys only (standard or URL-safe base64): verifies, cannot sign
    const char *const public_only[][2] = {{"jwt_algorithm", "EdDSA"},
                                          {"jwt_secret", S_SECRET},
                                          {"jwt_public_keys", " " S_PUBLIC2_URL " ,"}};
    auth_jwt_t *verifier = s_jwt (public_only, 3);
    assert (!auth_jwt_can_sign (verifier));
    assert (auth_jwt_issue (verifier, &claims, S_NOW, NULL, 0) == NULL);
    assert (auth_jwt_verify (verifier, token2, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    s_expect_jwks (verifier, S_KID2, verbose);

    //  Rotation: a new private key signs, the old public key still verifies; a
    //  public key listed twice, or the current one listed, counts once
    const char *const rotated[][2] = {
        {"jwt_algorithm", "EdDSA"},
        {"jwt_private_key", S_SEED3},
        {"jwt_public_keys", S_PUBLIC3},
        {"jwt_previous_public_keys", " ," S_PUBLIC2 " , " S_PUBLIC2_URL ","}};
    jwt = s_jwt (rotated, 4);
    s_expect_jwks (jwt, S_KID3 "," S_KID2, verbose);
    assert (auth_jwt_verify (jwt, token2, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    char *token3 = auth_jwt_issue (jwt, &claims, S_NOW, NULL, 0);
    assert (auth_jwt_verify (jwt, token3, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strcmp (got.kid, S_KID3) == 0);
    assert (auth_jwt_verify (verifier, token3, S_NOW, &got, NULL, 0)
            == AUTH_JWT_UNKNOWN_KEY);
    free (token3);
    auth_jwt_destroy (&jwt);
    auth_jwt_destroy (&verifier);
    free (token2);

    //  auth_keys_configured: any key option set
    core_config_t *config = s_config (NULL, 0);
    assert (!auth_keys_configured (config));
    core_config_destroy (&config);
    config = s_config (public_only + 2, 1);
    assert (auth_keys_configured (config));
    core_config_destroy (&config);

    //  Refusals, each naming its variable
    const char *const bad_alg[][2] = {{"jwt_algorithm", "eddsa"},
                                      {"secret_key", S_MASTER}};
    s_expect_error (bad_alg, 2, "CHORUS_JWT_ALGORITHM: must be HS256 or EdDSA", verbose);
    const char *const none_alg[][2] = {{"jwt_algorithm", "none"},
                                       {"jwt_secret", S_SECRET}};
    s_expect_error (none_alg, 2, "CHORUS_JWT_ALGORITHM", verbose);
    const char *const no_key[][2] = {{"jwt_algorithm", "EdDSA"},
                                     {"jwt_secret", S_SECRET}};
    s_expect_error (no_key, 2, "CHORUS_JWT_ALGORITHM is EdDSA and none of", verbose);
    const char *const bad_private[][2] = {{"jwt_algorithm", "EdDSA"},
                                          {"jwt_private_key", "not-a-key"}};
    s_expect_error (bad_private, 2, "CHORUS_JWT_PRIVATE_KEY: must be the base64",
                    verbose);
    const char *const short_private[][2] = {
        {"jwt_algorithm", "EdDSA"}, {"jwt_private_key", "AAECAwQFBgcICQoLDA0ODw=="}};
    s_expect_error (short_private, 2, "CHORUS_JWT_PRIVATE_KEY", verbose);
    const char *const bad_master[][2] = {{"jwt_algorithm", "EdDSA"},
                                         {"secret_key", "change-me"}};
    s_expect_error (bad_master, 2, "CHORUS_SECRET_KEY: must be the base64", verbose);
    const char *const bad_public[][2] = {{"jwt_algorithm", "EdDSA"},
                                         {"jwt_public_keys", S_PUBLIC2 ",abc"}};
    s_expect_error (bad_public, 2, "CHORUS_JWT_PUBLIC_KEYS: key 2 is not", verbose);
    //  The identity point: 32 bytes, not a usable public key
    const char *const weak_public[][2] = {
        {"jwt_algorithm", "EdDSA"},
        {"jwt_private_key", S_SEED2},
        {"jwt_previous_public_keys", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}};
    s_expect_error (weak_public, 3, "CHORUS_JWT_PREVIOUS_PUBLIC_KEYS: key 1", verbose);
    const char *const eddsa_option[][2] = {{"jwt_secret", S_SECRET},
                                           {"jwt_public_keys", S_PUBLIC2}};
    s_expect_error (
        eddsa_option, 2,
        "CHORUS_JWT_PUBLIC_KEYS: only read when CHORUS_JWT_ALGORITHM is EdDSA", verbose);
    const char *const eddsa_private[][2] = {{"secret_key", S_MASTER},
                                            {"jwt_private_key", S_SEED2}};
    s_expect_error (eddsa_private, 2, "CHORUS_JWT_PRIVATE_KEY: only read", verbose);
    //  At most AUTH_JWT_MAX_KEYS keys in all
    char many[50 * AUTH_JWT_MAX_KEYS] = "";
    size_t at = 0;
    for (int i = 0; i < AUTH_JWT_MAX_KEYS; i++) {
        unsigned char seed[AUTH_JWK_ED25519_SEED_SIZE] = {(unsigned char) i, 42};
        unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
        unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
        crypto_sign_seed_keypair (public_key, secret_key, seed);
        if (i)
            many[at++] = ',';
        sodium_bin2base64 (many + at, sizeof many - at, public_key, sizeof public_key,
                           sodium_base64_VARIANT_ORIGINAL);
        at += strlen (many + at);
    }
    const char *const too_many[][2] = {{"jwt_algorithm", "EdDSA"},
                                       {"jwt_public_keys", many}};
    jwt = s_jwt (too_many, 2);  //  16 keys: the most a set holds
    assert (!auth_jwt_can_sign (jwt));
    auth_jwt_destroy (&jwt);
    const char *const too_many_more[][2] = {{"jwt_algorithm", "EdDSA"},
                                            {"jwt_private_key", S_SEED2},
                                            {"jwt_public_keys", many}};
    s_expect_error (too_many_more, 3, "CHORUS_JWT_PUBLIC_KEYS: more than 16 keys",
                    verbose);
}

void
auth_keys_test (bool verbose)
{
    printf (" * auth_keys: ");
    char kid[AUTH_KEYS_KID_LEN + 1], error_text[128];
    //  kid: sha256("abc") = ba7816bf8f01cfea...
    assert (auth_keys_kid ("abc", kid, sizeof kid) == 0);
    assert (strcmp (kid, "ba7816bf8f01cfea") == 0);
    assert (auth_keys_kid ("abc", kid, AUTH_KEYS_KID_LEN) == -1);
    assert (auth_keys_kid (NULL, kid, sizeof kid) == -1);

    //  Defaults: iss "chorus", aud "chorus-api", 900 s; the secret as configured
    const char *const plain[][2] = {{"jwt_secret", S_SECRET}};
    core_config_t *config = s_config (plain, 1);
    assert (strcmp (core_config_str (config, "jwt_issuer"), "chorus") == 0);
    assert (strcmp (core_config_str (config, "jwt_audience"), "chorus-api") == 0);
    assert (core_config_int (config, "jwt_ttl_s") == 900);
    char *error = NULL;
    auth_jwt_t *jwt = auth_keys_jwt_new (config, &error);
    assert (jwt && !error);
    char secret[AUTH_JWT_SECRET_MAX + 1];
    assert (auth_keys_secret (config, secret, sizeof secret, &error) == 0);
    assert (strcmp (secret, S_SECRET) == 0);
    assert (auth_keys_secret (config, secret, 8, &error) == -1);
    free (error);
    error = NULL;
    core_config_destroy (&config);
    auth_jwt_claims_t claims = {
        .sub = "u1", .tid = "t1", .role = AUTH_ROLE_TENANT_ADMIN, .sid = "s1"};
    char *token = auth_jwt_issue (jwt, &claims, S_NOW, error_text, sizeof error_text);
    assert (token);
    //  The same configuration verifies it, kid included; another audience does not
    auth_jwt_claims_t got;
    assert (auth_jwt_verify (jwt, token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_keys_kid (S_SECRET, kid, sizeof kid) == 0);
    assert (strcmp (got.kid, kid) == 0 && strcmp (got.sid, "s1") == 0);
    assert (got.exp == S_NOW + 900);
    auth_jwt_t *verifier = auth_jwt_new ("chorus", "chorus-api");
    assert (auth_jwt_add_key (verifier, kid, S_SECRET, strlen (S_SECRET)) == 0);
    assert (auth_jwt_verify (verifier, token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    auth_jwt_destroy (&verifier);
    const char *const other[][2] = {{"jwt_secret", S_SECRET},
                                    {"jwt_audience", "billing"},
                                    {"jwt_issuer", "https://chorus.test"},
                                    {"jwt_ttl_s", "60"}};
    config = s_config (other, 4);
    verifier = auth_keys_jwt_new (config, &error);
    assert (verifier);
    core_config_destroy (&config);
    assert (auth_jwt_verify (verifier, token, S_NOW, &got, NULL, 0)
            == AUTH_JWT_BAD_ISSUER);
    char *short_lived = auth_jwt_issue (verifier, &claims, S_NOW, NULL, 0);
    assert (auth_jwt_verify (verifier, short_lived, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (got.exp == S_NOW + 60);
    free (short_lived);
    auth_jwt_destroy (&verifier);

    //  Rotation: the old secret moves to the previous list and still verifies;
    //  the new one signs
    const char *const rotated[][2] = {
        {"jwt_secret", S_OLD}, {"jwt_previous_secrets", " ," S_SECRET " , " S_OLD ","}};
    config = s_config (rotated, 2);
    auth_jwt_t *next = auth_keys_jwt_new (config, &error);
    assert (next && !error);
    core_config_destroy (&config);
    assert (auth_jwt_verify (next, token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    char *newer = auth_jwt_issue (next, &claims, S_NOW, NULL, 0);
    assert (auth_jwt_verify (next, newer, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_keys_kid (S_OLD, kid, sizeof kid) == 0);
    assert (strcmp (got.kid, kid) == 0);
    //  ... which the old configuration does not know
    assert (auth_jwt_verify (jwt, newer, S_NOW, &got, NULL, 0) == AUTH_JWT_UNKNOWN_KEY);
    free (newer);
    auth_jwt_destroy (&next);

    //  Derived from CHORUS_SECRET_KEY: a known answer, then a round trip
    const char *const derived[][2] = {{"secret_key", S_MASTER}};
    config = s_config (derived, 1);
    assert (auth_keys_secret (config, secret, sizeof secret, &error) == 0);
    if (verbose)
        printf ("\n   derived secret %s", secret);
    assert (strcmp (secret, S_DERIVED) == 0);
    auth_jwt_t *from_key = auth_keys_jwt_new (config, &error);
    assert (from_key);
    core_config_destroy (&config);
    char *keyed = auth_jwt_issue (from_key, &claims, S_NOW, NULL, 0);
    verifier = auth_jwt_new ("chorus", "chorus-api");
    assert (auth_keys_kid (S_DERIVED, kid, sizeof kid) == 0);
    assert (auth_jwt_add_key (verifier, kid, S_DERIVED, strlen (S_DERIVED)) == 0);
    assert (auth_jwt_verify (verifier, keyed, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    auth_jwt_destroy (&verifier);
    free (keyed);
    auth_jwt_destroy (&from_key);
    //  CHORUS_JWT_SECRET wins over CHORUS_SECRET_KEY
    const char *const both[][2] = {{"secret_key", S_MASTER}, {"jwt_secret", S_SECRET}};
    config = s_config (both, 2);
    assert (auth_keys_secret (config, secret, sizeof secret, &error) == 0);
    assert (strcmp (secret, S_SECRET) == 0);
    core_config_destroy (&config);

    //  Refusals, each naming its variable
    s_expect_error (NULL, 0, "neither CHORUS_JWT_SECRET nor CHORUS_SECRET_KEY", verbose);
    const char *const short_secret[][2] = {{"jwt_secret", "too-short"}};
    s_expect_error (short_secret, 1, "CHORUS_JWT_SECRET: a secret must be 32..512",
                    verbose);
    const char *const bad_key[][2] = {{"secret_key", "change-me-this-is-not-a-key"}};
    s_expect_error (bad_key, 1, "CHORUS_SECRET_KEY: must be the base64 of 32", verbose);
    const char *const short_key[][2] = {{"secret_key", "AAECAwQFBgcICQoLDA0ODw=="}};
    s_expect_error (short_key, 1, "CHORUS_SECRET_KEY", verbose);
    const char *const long_key[][2] = {
        {"secret_key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ=="}};
    s_expect_error (long_key, 1, "CHORUS_SECRET_KEY", verbose);
    const char *const bad_previous[][2] = {{"jwt_secret", S_SECRET},
                                           {"jwt_previous_secrets", S_OLD ",short"}};
    s_expect_error (bad_previous, 2, "CHORUS_JWT_PREVIOUS_SECRETS", verbose);
    char many[40 * AUTH_JWT_MAX_KEYS + 1] = "";
    size_t at = 0;
    for (int i = 0; i < AUTH_JWT_MAX_KEYS; i++)
        at += (size_t) snprintf (many + at, sizeof many - at,
                                 "%sprevious-secret-%02d-0123456789abcdef", i ? "," : "",
                                 i);
    const char *const too_many[][2] = {{"jwt_secret", S_SECRET},
                                       {"jwt_previous_secrets", many}};
    s_expect_error (too_many, 2, "CHORUS_JWT_PREVIOUS_SECRETS: more than", verbose);
    //  jwt_ttl_s is bounded by the option table
    config = s_config (plain, 1);
    assert (core_config_set (config, "jwt_ttl_s", "59", &error) == -1);
    assert (strstr (error, "CHORUS_JWT_TTL_S"));
    free (error);
    error = NULL;
    assert (core_config_set (config, "jwt_ttl_s", "86401", &error) == -1);
    free (error);
    core_config_destroy (&config);

    s_test_eddsa (token, verbose);
    free (token);
    auth_jwt_destroy (&jwt);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
