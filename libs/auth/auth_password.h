/*  auth_password: password hashing for the auth service. Argon2id through
    libsodium at or above OWASP's minimum (m = 19 MiB, t = 2, p = 1), verified in
    constant time, with a check that tells when a stored hash should be redone
    with the current parameters. Passwords are NUL-terminated strings of 1 to
    AUTH_PASSWORD_MAX bytes.                                                    */
#ifndef AUTH_PASSWORD_H_INCLUDED
#define AUTH_PASSWORD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Longest password accepted, in bytes (hashing and verifying refuse longer ones)
#define AUTH_PASSWORD_MAX 1024
//  Size of the buffer auth_password_hash writes: crypto_pwhash_STRBYTES
#define AUTH_PASSWORD_HASH_SIZE 128
//  Argon2id parameters: OWASP's minimum configuration (19 MiB, 2 passes)
#define AUTH_PASSWORD_MEMLIMIT (19u * 1024u * 1024u)
#define AUTH_PASSWORD_OPSLIMIT 2u

//  Hash password with argon2id and a fresh random salt into hash (an encoded
//  "$argon2id$v=19$m=19456,t=2,p=1$..." string of at most AUTH_PASSWORD_HASH_SIZE
//  bytes with its NUL). Returns 0, or -1 with a reason in error ("password is
//  empty", "password is longer than 1024 bytes", "out of memory").
int auth_password_hash (const char *password, char *hash, size_t hash_size, char *error,
                        size_t error_size) __attribute__ ((warn_unused_result));

//  True when password matches the encoded hash (constant time in the password).
//  False for a malformed or unsupported hash, an empty or too long password.
bool auth_password_verify (const char *hash, const char *password)
    __attribute__ ((warn_unused_result));

//  True when hash was made with other parameters than the current ones (or is
//  not a valid argon2id hash), so it should be redone at the next login.
bool auth_password_needs_rehash (const char *hash);

void auth_password_test (bool verbose);

#endif
