/*  auth_token: opaque random tokens (refresh tokens, API keys, password reset and
    invite tokens). A token is a short prefix ("chr_" for API keys) and 32 random
    bytes in URL-safe base64 without padding. Only its SHA-256 (hex) is stored;
    a presented token is checked by hashing it and comparing in constant time.  */
#ifndef AUTH_TOKEN_H_INCLUDED
#define AUTH_TOKEN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Random bytes in a token made by auth_token_generate (256 bits)
#define AUTH_TOKEN_BYTES 32
//  Longest prefix, and longest token auth_token_hash accepts, in bytes
#define AUTH_TOKEN_PREFIX_MAX 16
#define AUTH_TOKEN_MAX 512
//  Size of a storage hash: 64 hex digits and a NUL
#define AUTH_TOKEN_HASH_SIZE 65
//  Prefix of API keys, so they are recognisable in logs and by secret scanners
#define AUTH_TOKEN_API_KEY_PREFIX "chr_"

//  Make a new token: prefix (may be "" or NULL; at most AUTH_TOKEN_PREFIX_MAX
//  bytes of [A-Za-z0-9_-]) followed by AUTH_TOKEN_BYTES random bytes in URL-safe
//  base64. Returns a fresh string the caller frees, or NULL for a bad prefix.
char *auth_token_generate (const char *prefix) __attribute__ ((warn_unused_result));

//  Write the storage hash of token (lower-case hex SHA-256) into hash, of at
//  least AUTH_TOKEN_HASH_SIZE bytes. Returns 0, or -1 for an empty token or one
//  longer than AUTH_TOKEN_MAX bytes (hash is then "").
int auth_token_hash (const char *token, char *hash, size_t hash_size)
    __attribute__ ((warn_unused_result));

//  True when token hashes to stored_hash (64 hex digits); the comparison takes
//  the same time wherever the hashes differ.
bool auth_token_verify (const char *token, const char *stored_hash)
    __attribute__ ((warn_unused_result));

//  True when the two strings are equal, in time that depends only on their
//  lengths (for secrets of public length: hashes, HMACs, PKCE challenges).
bool auth_token_equal (const char *a, const char *b) __attribute__ ((warn_unused_result));

//  True when token starts with prefix (a plain check, prefixes are public).
bool auth_token_has_prefix (const char *token, const char *prefix);

void auth_token_test (bool verbose);

#endif
