/*  auth_keys: the JWT key set from configuration (see the header and
    schemas/auth.md "Keys").                                                      */
#include "auth_keys.h"

#include <assert.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  crypto_kdf context and subkey id of the derived JWT secret (auth.md)
#define S_KDF_CONTEXT "chorusjw"
#define S_KDF_SUBKEY 1

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

int
auth_keys_kid (const char *secret, char *kid, size_t size)
{
    if (!secret || !kid || size < AUTH_KEYS_KID_LEN + 1)
        return -1;
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) secret, strlen (secret));
    sodium_bin2hex (kid, size, hash, AUTH_KEYS_KID_LEN / 2);
    return 0;
}

//  Derive the JWT secret text from CHORUS_SECRET_KEY's value (base64 of 32 bytes)
//  into secret (64 hex digits). Returns 0, or -1 with *error set.
static int
s_derive (const char *secret_key, char *secret, size_t size, char **error)
{
    unsigned char master[crypto_kdf_KEYBYTES];
    unsigned char subkey[32];
    size_t master_len = 0;
    if (sodium_base642bin (master, sizeof master, secret_key, strlen (secret_key),
                           " \t\r\n", &master_len, NULL, sodium_base64_VARIANT_ORIGINAL)
            != 0
        || master_len != sizeof master) {
        sodium_memzero (master, sizeof master);
        s_fail (error, "CHORUS_SECRET_KEY: must be the base64 of %d bytes",
                crypto_kdf_KEYBYTES);
        return -1;
    }
    int rc = crypto_kdf_derive_from_key (subkey, sizeof subkey, S_KDF_SUBKEY,
                                         S_KDF_CONTEXT, master);
    sodium_memzero (master, sizeof master);
    if (rc != 0 || size < AUTH_KEYS_DERIVED_LEN + 1) {
        sodium_memzero (subkey, sizeof subkey);
        s_fail (error, "CHORUS_SECRET_KEY: cannot derive the JWT secret");
        return -1;
    }
    sodium_bin2hex (secret, size, subkey, sizeof subkey);
    sodium_memzero (subkey, sizeof subkey);
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
    return s_derive (secret_key, secret, size, error);
}

//  Add every comma-separated secret of list (surrounding blanks trimmed, empty
//  items and secrets already in the set skipped) to jwt, which holds the current
//  key only, as verify-only keys. Returns 0, or -1 with *error set.
static int
s_add_previous (auth_jwt_t *jwt, const char *list, const char *current_kid, char **error)
{
    const char *env = "CHORUS_JWT_PREVIOUS_SECRETS";
    char kids[AUTH_JWT_MAX_KEYS][AUTH_KEYS_KID_LEN + 1];  //  kids in the set
    size_t count = 1;
    snprintf (kids[0], sizeof kids[0], "%s", current_kid);
    const char *p = list;
    while (*p) {
        const char *comma = strchr (p, ',');
        const char *end = comma ? comma : p + strlen (p);
        const char *start = p;
        while (start < end && strchr (" \t\r\n", *start))
            start++;
        while (end > start && strchr (" \t\r\n", end[-1]))
            end--;
        size_t len = (size_t) (end - start);
        p = comma ? comma + 1 : end;
        if (len == 0)
            continue;
        if (s_check_secret (env, start, len, error))
            return -1;
        char *secret = strndup (start, len);
        assert (secret);
        char kid[AUTH_KEYS_KID_LEN + 1];
        if (auth_keys_kid (secret, kid, sizeof kid))
            assert (false);
        bool known = false;
        for (size_t i = 0; i < count && !known; i++)
            known = strcmp (kids[i], kid) == 0;
        int rc = 0;
        if (!known && count == AUTH_JWT_MAX_KEYS) {
            s_fail (error, "%s: more than %d secrets", env, AUTH_JWT_MAX_KEYS - 1);
            rc = -1;
        }
        else if (!known) {
            rc = auth_jwt_add_key (jwt, kid, secret, len);
            assert (rc == 0);  //  valid kid and length, not in the set, room left
            snprintf (kids[count++], sizeof kids[0], "%s", kid);
        }
        sodium_memzero (secret, len);
        free (secret);
        if (rc)
            return -1;
    }
    return 0;
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
    char secret[AUTH_JWT_SECRET_MAX + 1];
    if (auth_keys_secret (config, secret, sizeof secret, error))
        return NULL;
    char kid[AUTH_KEYS_KID_LEN + 1];
    if (auth_keys_kid (secret, kid, sizeof kid))
        assert (false);
    auth_jwt_t *jwt = auth_jwt_new (core_config_str (config, "jwt_issuer"),
                                    core_config_str (config, "jwt_audience"));
    int rc = auth_jwt_add_key (jwt, kid, secret, strlen (secret));
    sodium_memzero (secret, sizeof secret);
    assert (rc == 0);  //  checked above: kid and length are valid, the set is empty
    if (s_add_previous (jwt, core_config_str (config, "jwt_previous_secrets"), kid,
                        error)) {
        auth_jwt_destroy (&jwt);
        return NULL;
    }
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
                                 {"jwt_secret", ""},
                                 {"jwt_previous_secrets", ""},
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

    free (token);
    auth_jwt_destroy (&jwt);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
