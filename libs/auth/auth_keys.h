/*  auth_keys: the access-token key set of Chorus built from configuration, as
    schemas/auth.md "Keys" says: HS256 with CHORUS_JWT_SECRET (or, when it is empty,
    a secret derived from CHORUS_SECRET_KEY with libsodium's crypto_kdf), its kid
    the first 16 hex digits of SHA-256 of the secret, the secrets listed in
    CHORUS_JWT_PREVIOUS_SECRETS still verifying, and iss, aud and lifetime from
    CHORUS_JWT_ISSUER, CHORUS_JWT_AUDIENCE and CHORUS_JWT_TTL_S. The auth service
    issues with it; the edge verifies with it. Both read the same options, which
    core_config declares for every program.                                      */
#ifndef AUTH_KEYS_H_INCLUDED
#define AUTH_KEYS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "auth_jwt.h"
#include "core_config.h"

//  Length of a kid (hex digits, without the NUL)
#define AUTH_KEYS_KID_LEN 16
//  Length of a secret derived from CHORUS_SECRET_KEY (hex digits, without the NUL)
#define AUTH_KEYS_DERIVED_LEN 64

//  Build the issuer/verifier from config (options jwt_secret, secret_key,
//  jwt_previous_secrets, jwt_issuer, jwt_audience, jwt_ttl_s). The current
//  secret signs; previous ones only verify. Returns NULL and sets *error (caller
//  frees) to a message naming the variable when a secret is too short or too
//  long, CHORUS_SECRET_KEY is not the base64 of 32 bytes, or neither
//  CHORUS_JWT_SECRET nor CHORUS_SECRET_KEY is set.
auth_jwt_t *auth_keys_jwt_new (core_config_t *config, char **error)
    __attribute__ ((warn_unused_result));

//  Write the kid of a secret text (first 16 hex digits of its SHA-256) into kid,
//  which holds size bytes (at least AUTH_KEYS_KID_LEN + 1). Returns 0, or -1 when
//  secret is NULL or kid too small.
int auth_keys_kid (const char *secret, char *kid, size_t size)
    __attribute__ ((warn_unused_result));

//  Write the secret text the configuration signs with (CHORUS_JWT_SECRET, or the
//  one derived from CHORUS_SECRET_KEY: 64 hex digits) into secret of size bytes.
//  Returns 0, or -1 with *error set (caller frees) as auth_keys_jwt_new does, or
//  when size is too small. tools use it to hand the secret to other JWT libraries.
int auth_keys_secret (core_config_t *config, char *secret, size_t size, char **error)
    __attribute__ ((warn_unused_result));

void auth_keys_test (bool verbose);

#endif
