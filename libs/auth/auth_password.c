/*  auth_password: argon2id password hashing with libsodium (see the header).   */
#include "auth_password.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static_assert (AUTH_PASSWORD_HASH_SIZE == crypto_pwhash_STRBYTES,
               "hash buffer size must match libsodium's");

//  Initialise libsodium; safe to call any number of times. Returns 0 or -1.
static int
s_sodium_ready (void)
{
    return sodium_init () < 0 ? -1 : 0;
}

//  Copy a reason into a caller's error buffer, which may be NULL.
static void
s_error (char *error, size_t error_size, const char *reason)
{
    if (error && error_size > 0)
        snprintf (error, error_size, "%s", reason);
}

//  Length of password if it is acceptable (1..AUTH_PASSWORD_MAX bytes), else 0.
static size_t
s_password_length (const char *password)
{
    if (!password)
        return 0;
    size_t len = strnlen (password, AUTH_PASSWORD_MAX + 1);
    return len > AUTH_PASSWORD_MAX ? 0 : len;
}

//  Length of an encoded hash if it is NUL-terminated within the buffer size
//  libsodium expects, else 0.
static size_t
s_hash_length (const char *hash)
{
    if (!hash)
        return 0;
    size_t len = strnlen (hash, AUTH_PASSWORD_HASH_SIZE);
    return len == AUTH_PASSWORD_HASH_SIZE ? 0 : len;
}

int
auth_password_hash (const char *password, char *hash, size_t hash_size, char *error,
                    size_t error_size)
{
    assert (hash && hash_size >= AUTH_PASSWORD_HASH_SIZE);
    hash[0] = '\0';
    if (!password || !*password) {
        s_error (error, error_size, "password is empty");
        return -1;
    }
    size_t len = s_password_length (password);
    if (len == 0) {
        s_error (error, error_size, "password is longer than 1024 bytes");
        return -1;
    }
    if (s_sodium_ready () == -1) {
        s_error (error, error_size, "libsodium failed to initialise");
        return -1;
    }
    if (crypto_pwhash_str_alg (hash, password, len, AUTH_PASSWORD_OPSLIMIT,
                               AUTH_PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13)
        != 0) {
        hash[0] = '\0';
        s_error (error, error_size, "out of memory");
        return -1;
    }
    return 0;
}

bool
auth_password_verify (const char *hash, const char *password)
{
    size_t len = s_password_length (password);
    if (len == 0 || s_hash_length (hash) == 0 || s_sodium_ready () == -1)
        return false;
    //  Only argon2id hashes: never fall back to a weaker variant a row may hold
    if (strncmp (hash, crypto_pwhash_argon2id_STRPREFIX,
                 strlen (crypto_pwhash_argon2id_STRPREFIX))
        != 0)
        return false;
    return crypto_pwhash_str_verify (hash, password, len) == 0;
}

bool
auth_password_needs_rehash (const char *hash)
{
    if (s_hash_length (hash) == 0 || s_sodium_ready () == -1)
        return true;
    if (strncmp (hash, crypto_pwhash_argon2id_STRPREFIX,
                 strlen (crypto_pwhash_argon2id_STRPREFIX))
        != 0)
        return true;
    return crypto_pwhash_str_needs_rehash (hash, AUTH_PASSWORD_OPSLIMIT,
                                           AUTH_PASSWORD_MEMLIMIT)
           != 0;
}

void
auth_password_test (bool verbose)
{
    printf (" * auth_password: ");
    char hash[AUTH_PASSWORD_HASH_SIZE];
    char error[128];
    clock_t start = clock ();

    //  Round trip; the encoding names argon2id and OWASP's parameters
    assert (auth_password_hash ("correct horse battery staple", hash, sizeof hash, error,
                                sizeof error)
            == 0);
    assert (strncmp (hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert (auth_password_verify (hash, "correct horse battery staple"));
    assert (!auth_password_needs_rehash (hash));

    //  Wrong, truncated, extended, empty and oversized passwords
    assert (!auth_password_verify (hash, "correct horse battery stapler"));
    assert (!auth_password_verify (hash, "correct horse battery stapl"));
    assert (!auth_password_verify (hash, "Correct horse battery staple"));
    assert (!auth_password_verify (hash, ""));
    assert (!auth_password_verify (hash, NULL));
    char big[AUTH_PASSWORD_MAX + 2];
    memset (big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert (!auth_password_verify (hash, big));
    assert (auth_password_hash (big, hash, sizeof hash, error, sizeof error) == -1);
    assert (strcmp (error, "password is longer than 1024 bytes") == 0);
    assert (auth_password_hash ("", hash, sizeof hash, error, sizeof error) == -1);
    assert (strcmp (error, "password is empty") == 0);
    assert (auth_password_hash (NULL, hash, sizeof hash, error, sizeof error) == -1);
    assert (strcmp (error, "password is empty") == 0);

    //  A password of exactly the maximum hashes; a second hash of the same
    //  password differs (fresh salt) and both verify
    char first[AUTH_PASSWORD_HASH_SIZE];
    big[AUTH_PASSWORD_MAX] = '\0';
    assert (auth_password_hash (big, first, sizeof first, error, sizeof error) == 0);
    assert (auth_password_verify (first, big));
    big[0] = 'b';
    assert (!auth_password_verify (first, big));

    //  Hashes that are malformed, of another variant, or weaker than ours
    assert (!auth_password_verify ("", "x"));
    assert (!auth_password_verify (NULL, "x"));
    assert (!auth_password_verify ("$argon2id$v=19$m=19456,t=2,p=1$garbage", "x"));
    char unterminated[AUTH_PASSWORD_HASH_SIZE + 8];
    memset (unterminated, '$', sizeof unterminated - 1);
    unterminated[sizeof unterminated - 1] = '\0';
    assert (!auth_password_verify (unterminated, "x"));
    assert (auth_password_needs_rehash (unterminated));
    assert (auth_password_needs_rehash (""));
    assert (auth_password_needs_rehash (NULL));
    //  argon2i (not id), and argon2id with weaker parameters, need a rehash; an
    //  argon2i hash is not accepted by verify even when the password is right
    char weak[AUTH_PASSWORD_HASH_SIZE];
    assert (crypto_pwhash_str_alg (weak, "pw", 2, crypto_pwhash_OPSLIMIT_MIN,
                                   crypto_pwhash_MEMLIMIT_MIN,
                                   crypto_pwhash_ALG_ARGON2ID13)
            == 0);
    assert (auth_password_verify (weak, "pw"));
    assert (auth_password_needs_rehash (weak));
    assert (crypto_pwhash_str_alg (weak, "pw", 2, 3, crypto_pwhash_MEMLIMIT_MIN,
                                   crypto_pwhash_ALG_ARGON2I13)
            == 0);
    assert (strncmp (weak, "$argon2i$", 9) == 0);
    assert (!auth_password_verify (weak, "pw"));
    assert (auth_password_needs_rehash (weak));
    if (verbose)
        printf ("(%.2f s cpu) ", (double) (clock () - start) / CLOCKS_PER_SEC);
    printf ("OK\n");
}
