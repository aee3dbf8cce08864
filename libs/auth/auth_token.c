/*  auth_token: opaque random tokens and their storage hashes (see the header).  */
#include "auth_token.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  True when c may appear in a token prefix.
static bool
s_prefix_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-';
}

char *
auth_token_generate (const char *prefix)
{
    if (!prefix)
        prefix = "";
    size_t prefix_len = strnlen (prefix, AUTH_TOKEN_PREFIX_MAX + 1);
    if (prefix_len > AUTH_TOKEN_PREFIX_MAX)
        return NULL;
    for (size_t i = 0; i < prefix_len; i++)
        if (!s_prefix_char (prefix[i]))
            return NULL;
    if (sodium_init () < 0)
        return NULL;
    unsigned char raw[AUTH_TOKEN_BYTES];
    randombytes_buf (raw, sizeof raw);
    size_t b64_size = sodium_base64_ENCODED_LEN (
        AUTH_TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *token = malloc (prefix_len + b64_size);
    assert (token);
    memcpy (token, prefix, prefix_len);
    sodium_bin2base64 (token + prefix_len, b64_size, raw, sizeof raw,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero (raw, sizeof raw);
    return token;
}

int
auth_token_hash (const char *token, char *hash, size_t hash_size)
{
    assert (hash && hash_size >= AUTH_TOKEN_HASH_SIZE);
    hash[0] = '\0';
    if (!token || !*token)
        return -1;
    size_t len = strnlen (token, AUTH_TOKEN_MAX + 1);
    if (len > AUTH_TOKEN_MAX || sodium_init () < 0)
        return -1;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) token, len);
    sodium_bin2hex (hash, hash_size, digest, sizeof digest);
    return 0;
}

bool
auth_token_equal (const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t len = strlen (a);
    if (strlen (b) != len)
        return false;
    if (sodium_init () < 0)
        return false;
    return len == 0 || sodium_memcmp (a, b, len) == 0;
}

bool
auth_token_verify (const char *token, const char *stored_hash)
{
    char hash[AUTH_TOKEN_HASH_SIZE];
    if (!stored_hash || strnlen (stored_hash, AUTH_TOKEN_HASH_SIZE) != 64)
        return false;
    if (auth_token_hash (token, hash, sizeof hash) == -1)
        return false;
    return sodium_memcmp (hash, stored_hash, 64) == 0;
}

bool
auth_token_has_prefix (const char *token, const char *prefix)
{
    return token && prefix && strncmp (token, prefix, strlen (prefix)) == 0;
}

void
auth_token_test (bool verbose)
{
    printf (" * auth_token: ");
    //  An API key: prefix, 43 URL-safe base64 characters, no padding
    char *key = auth_token_generate (AUTH_TOKEN_API_KEY_PREFIX);
    assert (key);
    assert (strlen (key) == 4 + 43);
    assert (auth_token_has_prefix (key, "chr_"));
    assert (strspn (key + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789-_")
            == 43);
    if (verbose)
        printf ("%s ", key);

    //  Its storage hash verifies it and nothing else
    char hash[AUTH_TOKEN_HASH_SIZE];
    assert (auth_token_hash (key, hash, sizeof hash) == 0);
    assert (strlen (hash) == 64);
    assert (auth_token_verify (key, hash));
    char *other = auth_token_generate (AUTH_TOKEN_API_KEY_PREFIX);
    assert (other && strcmp (other, key) != 0);
    assert (!auth_token_verify (other, hash));
    key[10] ^= 1;  //  one character changed
    assert (!auth_token_verify (key, hash));
    key[10] ^= 1;
    assert (auth_token_verify (key, hash));
    hash[63] = hash[63] == '0' ? '1' : '0';  //  a stored hash changed
    assert (!auth_token_verify (key, hash));
    assert (!auth_token_verify (key, "abc"));
    assert (!auth_token_verify (key, NULL));
    assert (!auth_token_verify (NULL, hash));
    free (other);
    free (key);

    //  SHA-256 known answer ("abc", FIPS 180-2)
    assert (auth_token_hash ("abc", hash, sizeof hash) == 0);
    assert (strcmp (hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
                          "0015ad")
            == 0);

    //  Refresh tokens without prefix; bad prefixes and oversized tokens refused
    char *refresh = auth_token_generate (NULL);
    assert (refresh && strlen (refresh) == 43);
    free (refresh);
    assert (auth_token_generate ("bad prefix") == NULL);
    assert (auth_token_generate ("way_too_long_prefix_") == NULL);
    char big[AUTH_TOKEN_MAX + 2];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert (auth_token_hash (big, hash, sizeof hash) == -1 && hash[0] == '\0');
    assert (auth_token_hash ("", hash, sizeof hash) == -1);
    big[AUTH_TOKEN_MAX] = '\0';
    assert (auth_token_hash (big, hash, sizeof hash) == 0);

    //  Constant-time equality of public-length strings
    assert (auth_token_equal ("abc", "abc"));
    assert (auth_token_equal ("", ""));
    assert (!auth_token_equal ("abc", "abd"));
    assert (!auth_token_equal ("abc", "abcd"));
    assert (!auth_token_equal (NULL, "abc"));
    printf ("OK\n");
}
