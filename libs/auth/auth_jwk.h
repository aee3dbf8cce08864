/*  auth_jwk: one key of an access-token key set (auth_jwt): an HS256 secret, an
    Ed25519 key pair, or an Ed25519 public key that only verifies (RFC 8037). It
    signs and checks the signature of JWS compact tokens (header.payload.signature)
    and renders its public half as a JWK (RFC 7517) for a JWKS document. It looks
    at neither the header nor the claims: auth_jwt pins the algorithm and checks
    them. Secrets and private keys are wiped when the key is destroyed.          */
#ifndef AUTH_JWK_H_INCLUDED
#define AUTH_JWK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Longest key id; shortest and longest HS256 secret
#define AUTH_JWK_KID_MAX 64
#define AUTH_JWK_SECRET_MIN 32
#define AUTH_JWK_SECRET_MAX 512
//  Sizes of an Ed25519 seed (the private key) and public key
#define AUTH_JWK_ED25519_SEED_SIZE 32
#define AUTH_JWK_ED25519_PUBLIC_SIZE 32

typedef struct _auth_jwk_t auth_jwk_t;

//  The algorithms a key signs with (auth_jwk_alg_name gives the JWS "alg")
typedef enum {
    AUTH_JWK_NONE = 0,  //  not an algorithm
    AUTH_JWK_HS256,     //  "HS256": HMAC-SHA-256 with a shared secret
    AUTH_JWK_EDDSA      //  "EdDSA": Ed25519 (RFC 8037)
} auth_jwk_alg_t;

//  Create an HS256 key: kid of 1..AUTH_JWK_KID_MAX characters of [A-Za-z0-9._-],
//  secret of AUTH_JWK_SECRET_MIN..AUTH_JWK_SECRET_MAX bytes. NULL when either is bad.
auth_jwk_t *auth_jwk_new_hs256 (const char *kid, const void *secret, size_t secret_size)
    __attribute__ ((warn_unused_result));

//  Create an Ed25519 key pair that signs from the AUTH_JWK_ED25519_SEED_SIZE bytes
//  of seed. NULL when kid is bad.
auth_jwk_t *auth_jwk_new_ed25519 (const char *kid, const unsigned char *seed)
    __attribute__ ((warn_unused_result));

//  Create an Ed25519 key that only verifies, from the AUTH_JWK_ED25519_PUBLIC_SIZE
//  bytes of public_key. NULL when kid is bad or public_key is not a valid
//  Ed25519 point (small order or not canonical).
auth_jwk_t *auth_jwk_new_ed25519_public (const char *kid, const unsigned char *public_key)
    __attribute__ ((warn_unused_result));

//  Destroy it, wiping the secret or private key; harmless on NULL.
void auth_jwk_destroy (auth_jwk_t **self_p);

//  The algorithm of the key.
auth_jwk_alg_t auth_jwk_alg (auth_jwk_t *self);

//  The key id (borrowed).
const char *auth_jwk_kid (auth_jwk_t *self);

//  True when the key can sign (an HS256 secret or an Ed25519 key pair).
bool auth_jwk_can_sign (auth_jwk_t *self);

//  The AUTH_JWK_ED25519_PUBLIC_SIZE bytes of an Ed25519 public key (borrowed), or
//  NULL for an HS256 key.
const unsigned char *auth_jwk_public_key (auth_jwk_t *self);

//  Sign input, the "header.payload" of a JWS compact token (any bytes, its
//  length is strlen). Returns a fresh "header.payload.signature" the caller frees,
//  or NULL when the key only verifies.
char *auth_jwk_sign (auth_jwk_t *self, const char *input)
    __attribute__ ((warn_unused_result));

//  True when token, a NUL-terminated JWS compact token, carries a valid signature
//  by this key over what precedes its last '.': a canonical base64url signature of
//  the right size (HS256: 32 bytes, compared in constant time, and checked again by
//  libjwt, which also wants an HS256 header; EdDSA: 64 bytes, libsodium's strict
//  Ed25519 verification, non-canonical signatures refused).
bool auth_jwk_verify (auth_jwk_t *self, const char *token);

//  The public JWK of an Ed25519 key as a fresh JSON text the caller frees:
//  {"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}.
//  NULL for an HS256 key, whose secret is never published.
char *auth_jwk_public_json (auth_jwk_t *self) __attribute__ ((warn_unused_result));

//  The JWS "alg" of an algorithm ("HS256", "EdDSA"), NULL for AUTH_JWK_NONE.
const char *auth_jwk_alg_name (auth_jwk_alg_t alg);

//  The algorithm of an exact JWS "alg" name, AUTH_JWK_NONE when unknown or NULL.
auth_jwk_alg_t auth_jwk_alg_parse (const char *name);

void auth_jwk_test (bool verbose);

#endif
