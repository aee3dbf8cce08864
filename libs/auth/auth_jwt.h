/*  auth_jwt: the access JWTs of Chorus (RFC 7519, hardened per RFC 8725). The auth
    service issues them at login and refresh; the edge verifies them without a bus
    round trip. One algorithm per issuer/verifier, HS256 (the default) or EdDSA
    (Ed25519, RFC 8037), with a "kid" header naming one key (auth_jwk) of a small
    key set, so keys rotate: one current key signs, every key in the set verifies.
    An EdDSA verifier may hold public keys only, and renders them as a JWKS.
    Verification pins the algorithm by parsing the header itself before any
    signature is looked at (and before libjwt sees an HS256 token), and checks
    signature, iss, aud, exp, iat (and nbf if present) and the Chorus claims sub,
    tid (tenant), role and the optional sid (session).                          */
#ifndef AUTH_JWT_H_INCLUDED
#define AUTH_JWT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_jwk.h"

//  Longest token verified; longer ones are refused before any parsing
#define AUTH_JWT_MAX_SIZE 8192
//  Most keys in a set, longest key id, shortest and longest HS256 secret
#define AUTH_JWT_MAX_KEYS 16
#define AUTH_JWT_KID_MAX AUTH_JWK_KID_MAX
#define AUTH_JWT_SECRET_MIN AUTH_JWK_SECRET_MIN
#define AUTH_JWT_SECRET_MAX AUTH_JWK_SECRET_MAX
//  Longest sub, tid, jti and sid claim (bytes, without the NUL)
#define AUTH_JWT_CLAIM_MAX 255
//  Default lifetime of an access token, and default clock leeway, in seconds
#define AUTH_JWT_DEFAULT_TTL 900
#define AUTH_JWT_DEFAULT_LEEWAY 30

typedef struct _auth_jwt_t auth_jwt_t;

//  Roles a token may carry
typedef enum {
    AUTH_ROLE_NONE = 0,        //  not a valid role
    AUTH_ROLE_PLATFORM_ADMIN,  //  "platform_admin"
    AUTH_ROLE_TENANT_ADMIN,    //  "tenant_admin"
    AUTH_ROLE_MEMBER           //  "member"
} auth_role_t;

//  Why a token was refused (auth_jwt_error_name gives the wire name)
typedef enum {
    AUTH_JWT_OK = 0,
    AUTH_JWT_MALFORMED,       //  "malformed": not a well-formed JWS compact token
    AUTH_JWT_BAD_ALGORITHM,   //  "bad_algorithm": alg is not the pinned one (none...)
    AUTH_JWT_UNKNOWN_KEY,     //  "unknown_key": kid missing or not in the key set
    AUTH_JWT_BAD_SIGNATURE,   //  "bad_signature"
    AUTH_JWT_BAD_ISSUER,      //  "bad_issuer"
    AUTH_JWT_BAD_AUDIENCE,    //  "bad_audience"
    AUTH_JWT_EXPIRED,         //  "expired": exp + leeway is past
    AUTH_JWT_NOT_YET_VALID,   //  "not_yet_valid": iat or nbf beyond now + leeway
    AUTH_JWT_INVALID_CLAIMS,  //  "invalid_claims": sub, tid, role or exp missing/bad
    AUTH_JWT_BAD_TYPE         //  "bad_type": typ header present and not "JWT"
} auth_jwt_error_t;

//  The claims of a token: filled in by the caller to issue one (sub, tid, role,
//  and sid when the token belongs to a session; the rest is set by
//  auth_jwt_issue), returned by auth_jwt_verify.
typedef struct {
    char sub[AUTH_JWT_CLAIM_MAX + 1];  //  user id
    char tid[AUTH_JWT_CLAIM_MAX + 1];  //  tenant id
    auth_role_t role;                  //  role in that tenant
    int64_t iat;                       //  issued at (seconds since the epoch)
    int64_t exp;                       //  expires at
    char jti[AUTH_JWT_CLAIM_MAX + 1];  //  token id ("" when the token has none)
    char sid[AUTH_JWT_CLAIM_MAX + 1];  //  session id: issued when not "", "" when absent
    char kid[AUTH_JWT_KID_MAX + 1];    //  key that signed it
} auth_jwt_claims_t;

//  Create an HS256 JWT issuer/verifier for the given iss and aud values.
auth_jwt_t *auth_jwt_new (const char *issuer, const char *audience);

//  Create a JWT issuer/verifier pinned to alg (AUTH_JWK_HS256 or AUTH_JWK_EDDSA):
//  it signs with that algorithm, holds keys of that algorithm only, and refuses
//  every token whose header names another one.
auth_jwt_t *auth_jwt_new_alg (const char *issuer, const char *audience,
                              auth_jwk_alg_t alg);

//  Destroy it, wiping the secrets; harmless on NULL.
void auth_jwt_destroy (auth_jwt_t **self_p);

//  The algorithm tokens are signed and verified with.
auth_jwk_alg_t auth_jwt_alg (auth_jwt_t *self);

//  Add an HS256 key: kid of 1..AUTH_JWT_KID_MAX characters of [A-Za-z0-9._-],
//  secret of AUTH_JWT_SECRET_MIN..AUTH_JWT_SECRET_MAX bytes. The first key that
//  can sign becomes the current one. Returns 0, or -1 for a bad kid or secret, a
//  kid already in the set, a full set, or an issuer pinned to EdDSA.
int auth_jwt_add_key (auth_jwt_t *self, const char *kid, const void *secret,
                      size_t secret_size) __attribute__ ((warn_unused_result));

//  Add a key of any kind (auth_jwk), taking ownership: *key_p is NULL after, and
//  the key destroyed when refused. The first key that can sign becomes the current
//  one. Returns 0, or -1 when the key's algorithm is not the pinned one, its kid
//  is already in the set, or the set is full.
int auth_jwt_add_jwk (auth_jwt_t *self, auth_jwk_t **key_p)
    __attribute__ ((warn_unused_result));

//  Remove a key from the set (tokens it signed stop verifying). Returns 0, or -1
//  when kid is not in the set or is the current key.
int auth_jwt_remove_key (auth_jwt_t *self, const char *kid)
    __attribute__ ((warn_unused_result));

//  Make kid, which must be in the set and able to sign, the key that signs.
//  Returns 0 or -1.
int auth_jwt_set_current (auth_jwt_t *self, const char *kid)
    __attribute__ ((warn_unused_result));

//  True when a key can sign, so auth_jwt_issue can work (false for a verifier
//  given public keys only).
bool auth_jwt_can_sign (auth_jwt_t *self);

//  The JWKS document (RFC 7517, RFC 8037) of the EdDSA key set, every key's
//  public half, the current key first: {"keys":[{"kty":"OKP","crv":"Ed25519",
//  "x":...,"kid":...,"alg":"EdDSA","use":"sig"},...]}, as a fresh string the caller
//  frees. NULL for HS256, whose secrets are never published.
char *auth_jwt_jwks (auth_jwt_t *self) __attribute__ ((warn_unused_result));

//  Set the lifetime of issued tokens (1 s .. 1 day; default 900 s).
void auth_jwt_set_ttl (auth_jwt_t *self, int64_t seconds);

//  Set the clock leeway used for exp, iat and nbf (0 .. 300 s; default 30 s).
void auth_jwt_set_leeway (auth_jwt_t *self, int64_t seconds);

//  Issue a token for claims->sub, claims->tid, claims->role (and claims->sid
//  when not empty) at time now, signed with the current key, with a random jti.
//  Returns a fresh string the caller frees, or NULL with a reason in error (no
//  signing key, bad claims).
char *auth_jwt_issue (auth_jwt_t *self, const auth_jwt_claims_t *claims, int64_t now,
                      char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

//  Verify token at time now. Returns AUTH_JWT_OK with the verified claims in
//  claims, or an error code with a reason in error (claims are then zeroed).
auth_jwt_error_t auth_jwt_verify (auth_jwt_t *self, const char *token, int64_t now,
                                  auth_jwt_claims_t *claims, char *error,
                                  size_t error_size) __attribute__ ((warn_unused_result));

//  Wire name of an error code: "ok", "expired", "bad_signature"...
const char *auth_jwt_error_name (auth_jwt_error_t code);

//  Wire name of a role ("member"...), NULL for AUTH_ROLE_NONE.
const char *auth_role_name (auth_role_t role);

//  Role of a wire name, AUTH_ROLE_NONE when unknown or NULL.
auth_role_t auth_role_parse (const char *name);

void auth_jwt_test (bool verbose);

#endif
