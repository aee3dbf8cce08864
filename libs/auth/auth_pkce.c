/*  auth_pkce: PKCE S256 code challenges (see the header).                       */
#include "auth_pkce.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

bool
auth_pkce_verifier_valid (const char *verifier)
{
    if (!verifier)
        return false;
    size_t len = strnlen (verifier, 129);
    if (len < 43 || len > 128)
        return false;
    return strspn (verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789-._~")
           == len;
}

int
auth_pkce_challenge (const char *verifier, char *challenge, size_t challenge_size)
{
    assert (challenge && challenge_size >= AUTH_PKCE_CHALLENGE_SIZE);
    challenge[0] = '\0';
    if (!auth_pkce_verifier_valid (verifier) || sodium_init () < 0)
        return -1;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) verifier, strlen (verifier));
    sodium_bin2base64 (challenge, challenge_size, digest, sizeof digest,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

bool
auth_pkce_verify (const char *verifier, const char *challenge)
{
    char expected[AUTH_PKCE_CHALLENGE_SIZE];
    if (!challenge || strnlen (challenge, AUTH_PKCE_CHALLENGE_SIZE) != 43)
        return false;
    if (auth_pkce_challenge (verifier, expected, sizeof expected) == -1)
        return false;
    return sodium_memcmp (expected, challenge, 43) == 0;
}

void
auth_pkce_test (bool verbose)
{
    printf (" * auth_pkce: ");
    //  RFC 7636 appendix B
    const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    char challenge[AUTH_PKCE_CHALLENGE_SIZE];
    assert (auth_pkce_challenge (verifier, challenge, sizeof challenge) == 0);
    assert (strcmp (challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") == 0);
    assert (auth_pkce_verify (verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    assert (!auth_pkce_verify (verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    assert (!auth_pkce_verify (verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
    assert (!auth_pkce_verify (verifier, NULL));
    assert (!auth_pkce_verify ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
                               "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    //  Verifier form: length 43..128, unreserved characters only
    assert (!auth_pkce_verifier_valid ("short"));
    assert (!auth_pkce_verifier_valid ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX"));
    assert (!auth_pkce_verifier_valid ("dBjftJeZ4CVP+mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    char longest[130];
    memset (longest, '~', 128);
    longest[128] = '\0';
    assert (auth_pkce_verifier_valid (longest));
    longest[128] = '~';
    longest[129] = '\0';
    assert (!auth_pkce_verifier_valid (longest));
    assert (auth_pkce_challenge (longest, challenge, sizeof challenge) == -1);
    assert (challenge[0] == '\0');
    printf ("OK\n");
}
