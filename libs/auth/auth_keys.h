/*  auth_keys: the access-token key set of Chorus built from configuration, as
    schemas/auth.md "Keys" says. CHORUS_JWT_ALGORITHM pins the algorithm:
    - HS256 (the default): CHORUS_JWT_SECRET (or, when it is empty, a secret
      derived from CHORUS_SECRET_KEY with libsodium's crypto_kdf), its kid the first
      16 hex digits of SHA-256 of the secret, the secrets listed in
      CHORUS_JWT_PREVIOUS_SECRETS still verifying;
    - EdDSA: the Ed25519 key pair of CHORUS_JWT_PRIVATE_KEY (a 32-byte seed, or,
      when it is empty, one derived from CHORUS_SECRET_KEY), its kid the first 16
      hex digits of SHA-256 of the public key, and the public keys listed in
      CHORUS_JWT_PUBLIC_KEYS and CHORUS_JWT_PREVIOUS_PUBLIC_KEYS verifying; with
      public keys only the set verifies and cannot sign.
    iss, aud and lifetime come from CHORUS_JWT_ISSUER, CHORUS_JWT_AUDIENCE and
    CHORUS_JWT_TTL_S. The auth service issues with it; the edge verifies with it
    (and can publish the EdDSA public keys with auth_jwt_jwks). Both read the same
    options, which core_config declares for every program.                       */
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

//  Build the issuer/verifier from config (options jwt_algorithm, jwt_secret,
//  secret_key, jwt_previous_secrets, jwt_private_key, jwt_public_keys,
//  jwt_previous_public_keys, jwt_issuer, jwt_audience, jwt_ttl_s). The current
//  key signs; previous and public ones only verify. Returns NULL and sets *error
//  (caller frees) to a message naming the variable when the algorithm is neither
//  HS256 nor EdDSA, a secret is too short or too long, a key is not the base64
//  of 32 bytes (or not an Ed25519 public key), CHORUS_SECRET_KEY is not the base64
//  of 32 bytes, an EdDSA option is set with HS256, or no key is set at all.
auth_jwt_t *auth_keys_jwt_new (core_config_t *config, char **error)
    __attribute__ ((warn_unused_result));

//  True when config sets any access-token key option (CHORUS_SECRET_KEY,
//  CHORUS_JWT_SECRET, CHORUS_JWT_PREVIOUS_SECRETS, CHORUS_JWT_PRIVATE_KEY,
//  CHORUS_JWT_PUBLIC_KEYS, CHORUS_JWT_PREVIOUS_PUBLIC_KEYS). When it is false
//  auth_keys_jwt_new can only fail for want of a key, which a program may accept
//  (refusing every token); when it is true a failure is a configuration error.
bool auth_keys_configured (core_config_t *config);

//  Write the kid of a secret text (first 16 hex digits of its SHA-256) into kid,
//  which holds size bytes (at least AUTH_KEYS_KID_LEN + 1). Returns 0, or -1 when
//  secret is NULL or kid too small.
int auth_keys_kid (const char *secret, char *kid, size_t size)
    __attribute__ ((warn_unused_result));

//  Write the kid of an Ed25519 public key (AUTH_JWK_ED25519_PUBLIC_SIZE bytes: the
//  first 16 hex digits of SHA-256 of them) into kid, which holds size bytes (at
//  least AUTH_KEYS_KID_LEN + 1). Returns 0, or -1 when public_key is NULL or kid
//  too small.
int auth_keys_public_kid (const unsigned char *public_key, char *kid, size_t size)
    __attribute__ ((warn_unused_result));

//  Write the HS256 secret text the configuration signs with (CHORUS_JWT_SECRET, or
//  the one derived from CHORUS_SECRET_KEY: 64 hex digits) into secret of size bytes.
//  Returns 0, or -1 with *error set (caller frees) as auth_keys_jwt_new does, or
//  when size is too small. tools use it to hand the secret to other JWT libraries.
int auth_keys_secret (core_config_t *config, char *secret, size_t size, char **error)
    __attribute__ ((warn_unused_result));

void auth_keys_test (bool verbose);

#endif
