/*  auth_pkce: PKCE (RFC 7636) for the OAuth flows of the auth service: checks a
    code verifier's form and derives or checks its S256 code challenge
    (BASE64URL (SHA256 (verifier)) without padding). "plain" is not offered.   */
#ifndef AUTH_PKCE_H_INCLUDED
#define AUTH_PKCE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Size of an S256 challenge: 43 characters and a NUL
#define AUTH_PKCE_CHALLENGE_SIZE 44

//  True when verifier has the form RFC 7636 requires: 43 to 128 characters of
//  [A-Za-z0-9-._~].
bool auth_pkce_verifier_valid (const char *verifier);

//  Write the S256 challenge of verifier into challenge (at least
//  AUTH_PKCE_CHALLENGE_SIZE bytes). Returns 0, or -1 for an invalid verifier.
int auth_pkce_challenge (const char *verifier, char *challenge, size_t challenge_size)
    __attribute__ ((warn_unused_result));

//  True when verifier is valid and its S256 challenge equals challenge
//  (compared in constant time).
bool auth_pkce_verify (const char *verifier, const char *challenge)
    __attribute__ ((warn_unused_result));

void auth_pkce_test (bool verbose);

#endif
