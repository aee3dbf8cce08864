/*  auth_jwt: access JWTs, issued with libjwt and verified with the algorithm
    pinned before libjwt is called (see the header). libjwt 1.10's jwt_decode
    takes the algorithm from the token's own header: given an HS256 secret it
    also accepts an HS384 or HS512 token made with that secret, and without a
    key it checks nothing. So the header is parsed here first (jansson, with
    duplicate names refused), alg must be exactly the pinned "HS256", kid must
    name a key of the set, and the HMAC is checked here with libsodium before
    libjwt checks it again with the key the kid selects.                       */
#include "auth_jwt.h"

#include <assert.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  The one algorithm tokens are signed and verified with
#define S_ALG "HS256"

typedef struct {
    char kid[AUTH_JWT_KID_MAX + 1];  //  key id, as in the token header
    unsigned char *secret;           //  HMAC secret (wiped on removal)
    size_t secret_size;              //  its size in bytes
} s_key_t;

struct _auth_jwt_t {
    char *issuer;                     //  iss we issue and require
    char *audience;                   //  aud we issue and require
    s_key_t keys[AUTH_JWT_MAX_KEYS];  //  the key set
    size_t key_count;                 //  keys in use
    size_t current;                   //  index of the key that signs
    int64_t ttl;                      //  lifetime of issued tokens, seconds
    int64_t leeway;                   //  clock leeway, seconds
};

static const char *s_error_names[] = {
    "ok",         "malformed",    "bad_algorithm", "unknown_key",   "bad_signature",
    "bad_issuer", "bad_audience", "expired",       "not_yet_valid", "invalid_claims",
    "bad_type"};

static const char *s_role_names[] = {NULL, "platform_admin", "tenant_admin", "member"};

const char *
auth_jwt_error_name (auth_jwt_error_t code)
{
    if ((size_t) code < sizeof s_error_names / sizeof s_error_names[0])
        return s_error_names[code];
    return "unknown";
}

const char *
auth_role_name (auth_role_t role)
{
    if ((size_t) role < sizeof s_role_names / sizeof s_role_names[0])
        return s_role_names[role];
    return NULL;
}

auth_role_t
auth_role_parse (const char *name)
{
    if (name)
        for (size_t i = 1; i < sizeof s_role_names / sizeof s_role_names[0]; i++)
            if (strcmp (name, s_role_names[i]) == 0)
                return (auth_role_t) i;
    return AUTH_ROLE_NONE;
}

auth_jwt_t *
auth_jwt_new (const char *issuer, const char *audience)
{
    assert (issuer && audience);
    assert (sodium_init () >= 0);
    auth_jwt_t *self = calloc (1, sizeof *self);
    assert (self);
    self->issuer = strdup (issuer);
    self->audience = strdup (audience);
    assert (self->issuer && self->audience);
    self->ttl = AUTH_JWT_DEFAULT_TTL;
    self->leeway = AUTH_JWT_DEFAULT_LEEWAY;
    return self;
}

//  Wipe and free one key's secret.
static void
s_key_clear (s_key_t *key)
{
    if (key->secret) {
        sodium_memzero (key->secret, key->secret_size);
        free (key->secret);
    }
    memset (key, 0, sizeof *key);
}

void
auth_jwt_destroy (auth_jwt_t **self_p)
{
    assert (self_p);
    auth_jwt_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->key_count; i++)
        s_key_clear (&self->keys[i]);
    free (self->issuer);
    free (self->audience);
    free (self);
    *self_p = NULL;
}

//  Index of the key named kid, or -1.
static int
s_key_find (auth_jwt_t *self, const char *kid)
{
    for (size_t i = 0; i < self->key_count; i++)
        if (strcmp (self->keys[i].kid, kid) == 0)
            return (int) i;
    return -1;
}

//  True when kid is 1..AUTH_JWT_KID_MAX characters of [A-Za-z0-9._-].
static bool
s_kid_valid (const char *kid)
{
    if (!kid)
        return false;
    size_t len = strnlen (kid, AUTH_JWT_KID_MAX + 1);
    return len > 0 && len <= AUTH_JWT_KID_MAX
           && strspn (kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789._-")
                  == len;
}

int
auth_jwt_add_key (auth_jwt_t *self, const char *kid, const void *secret,
                  size_t secret_size)
{
    assert (self);
    if (!s_kid_valid (kid) || !secret || secret_size < AUTH_JWT_SECRET_MIN
        || secret_size > AUTH_JWT_SECRET_MAX || s_key_find (self, kid) != -1
        || self->key_count == AUTH_JWT_MAX_KEYS)
        return -1;
    s_key_t *key = &self->keys[self->key_count];
    snprintf (key->kid, sizeof key->kid, "%s", kid);
    key->secret = malloc (secret_size);
    assert (key->secret);
    memcpy (key->secret, secret, secret_size);
    key->secret_size = secret_size;
    self->key_count++;
    return 0;
}

int
auth_jwt_remove_key (auth_jwt_t *self, const char *kid)
{
    assert (self);
    int index = kid ? s_key_find (self, kid) : -1;
    if (index == -1 || (size_t) index == self->current)
        return -1;
    s_key_clear (&self->keys[index]);
    //  Keep the set dense; the current key may move down one place
    memmove (&self->keys[index], &self->keys[index + 1],
             (self->key_count - (size_t) index - 1) * sizeof (s_key_t));
    self->key_count--;
    memset (&self->keys[self->key_count], 0, sizeof (s_key_t));
    if (self->current > (size_t) index)
        self->current--;
    return 0;
}

int
auth_jwt_set_current (auth_jwt_t *self, const char *kid)
{
    assert (self);
    int index = kid ? s_key_find (self, kid) : -1;
    if (index == -1)
        return -1;
    self->current = (size_t) index;
    return 0;
}

void
auth_jwt_set_ttl (auth_jwt_t *self, int64_t seconds)
{
    assert (self);
    assert (seconds >= 1 && seconds <= 86400);
    self->ttl = seconds;
}

void
auth_jwt_set_leeway (auth_jwt_t *self, int64_t seconds)
{
    assert (self);
    assert (seconds >= 0 && seconds <= 300);
    self->leeway = seconds;
}

//  Copy a reason into a caller's error buffer, which may be NULL.
static void
s_error (char *error, size_t error_size, const char *reason)
{
    if (error && error_size > 0)
        snprintf (error, error_size, "%s", reason);
}

//  True when value is a string of 1..AUTH_JWT_CLAIM_MAX bytes.
static bool
s_claim_valid (const char *value)
{
    if (!value)
        return false;
    size_t len = strnlen (value, AUTH_JWT_CLAIM_MAX + 1);
    return len > 0 && len <= AUTH_JWT_CLAIM_MAX;
}

char *
auth_jwt_issue (auth_jwt_t *self, const auth_jwt_claims_t *claims, int64_t now,
                char *error, size_t error_size)
{
    assert (self);
    assert (claims);
    if (self->key_count == 0) {
        s_error (error, error_size, "no signing key");
        return NULL;
    }
    if (!s_claim_valid (claims->sub) || !s_claim_valid (claims->tid)
        || !auth_role_name (claims->role)) {
        s_error (error, error_size, "sub, tid and role are required");
        return NULL;
    }
    //  sid is optional; a buffer without its NUL is a caller's bug, refused
    bool has_sid = claims->sid[0] != '\0';
    if (has_sid && !s_claim_valid (claims->sid)) {
        s_error (error, error_size, "sid is too long");
        return NULL;
    }
    s_key_t *key = &self->keys[self->current];
    unsigned char raw_jti[16];
    char jti[sodium_base64_ENCODED_LEN (16, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf (raw_jti, sizeof raw_jti);
    sodium_bin2base64 (jti, sizeof jti, raw_jti, sizeof raw_jti,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);

    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new (&jwt) != 0) {
        s_error (error, error_size, "out of memory");
        return NULL;
    }
    int rc = jwt_set_alg (jwt, JWT_ALG_HS256, key->secret, (int) key->secret_size);
    rc = rc ? rc : jwt_add_header (jwt, "typ", "JWT");
    rc = rc ? rc : jwt_add_header (jwt, "kid", key->kid);
    rc = rc ? rc : jwt_add_grant (jwt, "iss", self->issuer);
    rc = rc ? rc : jwt_add_grant (jwt, "aud", self->audience);
    rc = rc ? rc : jwt_add_grant (jwt, "sub", claims->sub);
    rc = rc ? rc : jwt_add_grant (jwt, "tid", claims->tid);
    rc = rc ? rc : jwt_add_grant (jwt, "role", auth_role_name (claims->role));
    rc = rc ? rc : jwt_add_grant_int (jwt, "iat", (long) now);
    rc = rc ? rc : jwt_add_grant_int (jwt, "exp", (long) (now + self->ttl));
    rc = rc ? rc : jwt_add_grant (jwt, "jti", jti);
    if (has_sid)
        rc = rc ? rc : jwt_add_grant (jwt, "sid", claims->sid);
    char *encoded = rc ? NULL : jwt_encode_str (jwt);
    if (encoded) {
        //  Hand back memory from our allocator, whatever libjwt was built with
        token = strdup (encoded);
        assert (token);
        free (encoded);
    }
    else
        s_error (error, error_size, "libjwt failed to encode the token");
    jwt_free (jwt);
    return token;
}

//  Decode one base64url segment (no padding, canonical) of len characters into
//  a fresh buffer with a NUL after the data; returns NULL when not valid.
static unsigned char *
s_segment_decode (const char *segment, size_t len, size_t *size)
{
    unsigned char *data = malloc (len * 3 / 4 + 2);
    assert (data);
    const char *end = NULL;
    if (sodium_base642bin (data, len * 3 / 4 + 1, segment, len, NULL, size, &end,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING)
            != 0
        || end != segment + len) {
        free (data);
        return NULL;
    }
    data[*size] = '\0';
    return data;
}

//  Parse one base64url segment holding a JSON object; NULL when it does not.
static json_t *
s_segment_json (const char *segment, size_t len)
{
    size_t size = 0;
    unsigned char *data = s_segment_decode (segment, len, &size);
    if (!data)
        return NULL;
    json_t *json = json_loadb ((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
    free (data);
    if (json && !json_is_object (json)) {
        json_decref (json);
        json = NULL;
    }
    return json;
}

//  The value of a string member of object that holds no NUL, else NULL.
static const char *
s_json_string (json_t *object, const char *name)
{
    json_t *value = json_object_get (object, name);
    if (!json_is_string (value))
        return NULL;
    const char *string = json_string_value (value);
    return strlen (string) == json_string_length (value) ? string : NULL;
}

//  True when aud (a string or an array of strings) holds audience.
static bool
s_audience_matches (json_t *aud, const char *audience)
{
    if (json_is_string (aud))
        return json_string_length (aud) == strlen (audience)
               && strcmp (json_string_value (aud), audience) == 0;
    if (!json_is_array (aud))
        return false;
    size_t index;
    json_t *item;
    json_array_foreach (aud, index, item)
    {
        if (json_is_string (item) && json_string_length (item) == strlen (audience)
            && strcmp (json_string_value (item), audience) == 0)
            return true;
    }
    return false;
}

//  Check the HS256 signature of token, whose signed part is the first
//  signed_len bytes and whose signature segment follows, with key.
static bool
s_signature_valid (const char *token, size_t signed_len, const char *signature,
                   size_t signature_len, const s_key_t *key)
{
    size_t size = 0;
    unsigned char *mac = s_segment_decode (signature, signature_len, &size);
    if (!mac)
        return false;
    bool valid = false;
    if (size == crypto_auth_hmacsha256_BYTES) {
        crypto_auth_hmacsha256_state state;
        unsigned char expected[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_init (&state, key->secret, key->secret_size);
        crypto_auth_hmacsha256_update (&state, (const unsigned char *) token, signed_len);
        crypto_auth_hmacsha256_final (&state, expected);
        valid = sodium_memcmp (expected, mac, sizeof expected) == 0;
    }
    free (mac);
    return valid;
}

//  The checks of auth_jwt_verify on a token of len bytes (<= AUTH_JWT_MAX_SIZE).
static auth_jwt_error_t
s_verify (auth_jwt_t *self, const char *token, size_t len, int64_t now,
          auth_jwt_claims_t *claims, char *error, size_t error_size)
{
    //  Three segments: header.payload.signature, base64url only
    const char *dot1 = memchr (token, '.', len);
    const char *dot2 = dot1 ? memchr (dot1 + 1, '.', len - (size_t) (dot1 + 1 - token))
                            : NULL;
    if (!dot2 || memchr (dot2 + 1, '.', len - (size_t) (dot2 + 1 - token))) {
        s_error (error, error_size, "not three dot-separated segments");
        return AUTH_JWT_MALFORMED;
    }
    const char *signature = dot2 + 1;
    size_t signature_len = len - (size_t) (signature - token);

    //  The header: alg pinned, kid in the set, typ JWT or absent, no crit
    json_t *header = s_segment_json (token, (size_t) (dot1 - token));
    if (!header) {
        s_error (error, error_size, "header is not a base64url JSON object");
        return AUTH_JWT_MALFORMED;
    }
    auth_jwt_error_t code = AUTH_JWT_OK;
    const char *alg = s_json_string (header, "alg");
    const char *typ = s_json_string (header, "typ");
    const char *kid = s_json_string (header, "kid");
    int index = -1;
    if (!alg || strcmp (alg, S_ALG) != 0) {
        s_error (error, error_size, "alg is not " S_ALG);
        code = AUTH_JWT_BAD_ALGORITHM;
    }
    else if (json_object_get (header, "crit")) {
        s_error (error, error_size, "crit header not supported");
        code = AUTH_JWT_MALFORMED;
    }
    else if (json_object_get (header, "typ") && (!typ || strcasecmp (typ, "JWT") != 0)) {
        s_error (error, error_size, "typ is not JWT");
        code = AUTH_JWT_BAD_TYPE;
    }
    else if (!kid || (index = s_key_find (self, kid)) == -1) {
        s_error (error, error_size, kid ? "kid not in the key set" : "kid missing");
        code = AUTH_JWT_UNKNOWN_KEY;
    }
    json_decref (header);
    if (code != AUTH_JWT_OK)
        return code;
    const s_key_t *key = &self->keys[index];

    json_t *payload = s_segment_json (dot1 + 1, (size_t) (dot2 - dot1 - 1));
    if (!payload) {
        s_error (error, error_size, "payload is not a base64url JSON object");
        return AUTH_JWT_MALFORMED;
    }
    //  The signature, ours first, then libjwt's with the key the kid selects
    if (!s_signature_valid (token, (size_t) (dot2 - token), signature, signature_len,
                            key)) {
        s_error (error, error_size, "signature does not verify");
        json_decref (payload);
        return AUTH_JWT_BAD_SIGNATURE;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode (&jwt, token, key->secret, (int) key->secret_size) != 0
        || jwt_get_alg (jwt) != JWT_ALG_HS256) {
        s_error (error, error_size, "signature does not verify (libjwt)");
        jwt_free (jwt);
        json_decref (payload);
        return AUTH_JWT_BAD_SIGNATURE;
    }
    jwt_free (jwt);

    //  Registered claims, then ours
    const char *iss = s_json_string (payload, "iss");
    json_t *exp = json_object_get (payload, "exp");
    json_t *iat = json_object_get (payload, "iat");
    json_t *nbf = json_object_get (payload, "nbf");
    const char *sub = s_json_string (payload, "sub");
    const char *tid = s_json_string (payload, "tid");
    const char *jti = s_json_string (payload, "jti");
    const char *sid = s_json_string (payload, "sid");
    auth_role_t role = auth_role_parse (s_json_string (payload, "role"));
    if (!iss || strcmp (iss, self->issuer) != 0) {
        s_error (error, error_size, "iss is not ours");
        code = AUTH_JWT_BAD_ISSUER;
    }
    else if (!s_audience_matches (json_object_get (payload, "aud"), self->audience)) {
        s_error (error, error_size, "aud does not hold ours");
        code = AUTH_JWT_BAD_AUDIENCE;
    }
    else if (!json_is_integer (exp) || !json_is_integer (iat)
             || (nbf && !json_is_integer (nbf))) {
        s_error (error, error_size, "exp and iat must be integers");
        code = AUTH_JWT_INVALID_CLAIMS;
    }
    else if (now - self->leeway >= json_integer_value (exp)) {
        s_error (error, error_size, "token has expired");
        code = AUTH_JWT_EXPIRED;
    }
    else if (json_integer_value (iat) > now + self->leeway
             || (nbf && json_integer_value (nbf) > now + self->leeway)) {
        s_error (error, error_size, "token is not valid yet (iat or nbf)");
        code = AUTH_JWT_NOT_YET_VALID;
    }
    else if (!s_claim_valid (sub) || !s_claim_valid (tid) || role == AUTH_ROLE_NONE
             || (json_object_get (payload, "jti") && !s_claim_valid (jti))
             || (json_object_get (payload, "sid") && !s_claim_valid (sid))) {
        s_error (error, error_size, "sub, tid, role, jti or sid missing or invalid");
        code = AUTH_JWT_INVALID_CLAIMS;
    }
    else {
        snprintf (claims->sub, sizeof claims->sub, "%s", sub);
        snprintf (claims->tid, sizeof claims->tid, "%s", tid);
        snprintf (claims->jti, sizeof claims->jti, "%s", jti ? jti : "");
        snprintf (claims->sid, sizeof claims->sid, "%s", sid ? sid : "");
        snprintf (claims->kid, sizeof claims->kid, "%s", key->kid);
        claims->role = role;
        claims->exp = json_integer_value (exp);
        claims->iat = json_integer_value (iat);
    }
    json_decref (payload);
    return code;
}

auth_jwt_error_t
auth_jwt_verify (auth_jwt_t *self, const char *token, int64_t now,
                 auth_jwt_claims_t *claims, char *error, size_t error_size)
{
    assert (self);
    assert (claims);
    memset (claims, 0, sizeof *claims);
    s_error (error, error_size, "");
    if (!token || !*token) {
        s_error (error, error_size, "no token");
        return AUTH_JWT_MALFORMED;
    }
    size_t len = strnlen (token, AUTH_JWT_MAX_SIZE + 1);
    if (len > AUTH_JWT_MAX_SIZE) {
        s_error (error, error_size, "token is larger than 8192 bytes");
        return AUTH_JWT_MALFORMED;
    }
    auth_jwt_error_t code = s_verify (self, token, len, now, claims, error, error_size);
    if (code != AUTH_JWT_OK)
        memset (claims, 0, sizeof *claims);
    return code;
}

//  --------------------------------------------------------------------------
//  Selftest

#define S_SECRET1 "k1-secret-0123456789abcdef0123456789abcdef"
#define S_SECRET2 "k2-secret-fedcba9876543210fedcba9876543210"
#define S_NOW 1764000000

//  Append the base64url form of size bytes at data to buffer at *at.
static void
s_b64_append (char *buffer, size_t buffer_size, size_t *at, const void *data, size_t size)
{
    size_t need = sodium_base64_ENCODED_LEN (size,
                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert (*at + need <= buffer_size);
    sodium_bin2base64 (buffer + *at, need, data, size,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *at += need - 1;
}

//  Build a token from header and payload JSON texts, signed with HMAC-SHA-256
//  (mac 256), HMAC-SHA-512 (mac 512) with secret, or with signature text as is
//  (mac 0). Returns a fresh string.
static char *
s_forge (const char *header, const char *payload, int mac, const char *secret,
         const char *signature)
{
    size_t size = 3 * (strlen (header) + strlen (payload)) + 256
                  + (signature ? strlen (signature) : 0);
    char *token = malloc (size);
    assert (token);
    size_t at = 0;
    s_b64_append (token, size, &at, header, strlen (header));
    token[at++] = '.';
    s_b64_append (token, size, &at, payload, strlen (payload));
    size_t signed_len = at;
    token[at++] = '.';
    token[at] = '\0';
    if (mac == 256) {
        unsigned char out[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state state;
        crypto_auth_hmacsha256_init (&state, (const unsigned char *) secret,
                                     strlen (secret));
        crypto_auth_hmacsha256_update (&state, (unsigned char *) token, signed_len);
        crypto_auth_hmacsha256_final (&state, out);
        s_b64_append (token, size, &at, out, sizeof out);
    }
    else if (mac == 512) {
        unsigned char out[crypto_auth_hmacsha512_BYTES];
        crypto_auth_hmacsha512_state state;
        crypto_auth_hmacsha512_init (&state, (const unsigned char *) secret,
                                     strlen (secret));
        crypto_auth_hmacsha512_update (&state, (unsigned char *) token, signed_len);
        crypto_auth_hmacsha512_final (&state, out);
        s_b64_append (token, size, &at, out, sizeof out);
    }
    else if (signature) {
        snprintf (token + at, size - at, "%s", signature);
    }
    return token;
}

//  Verify a token and check the outcome; frees the token.
static void
s_expect (auth_jwt_t *jwt, char *token, int64_t now, auth_jwt_error_t expected,
          bool verbose)
{
    auth_jwt_claims_t claims;
    char error[128];
    auth_jwt_error_t code = auth_jwt_verify (jwt, token, now, &claims, error,
                                             sizeof error);
    if (verbose || code != expected)
        printf ("\n   %s (%s), expected %s", auth_jwt_error_name (code), error,
                auth_jwt_error_name (expected));
    assert (code == expected);
    if (code != AUTH_JWT_OK)
        assert (claims.sub[0] == '\0' && claims.role == AUTH_ROLE_NONE);
    free (token);
}

#define S_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"
#define S_CLAIMS                                                                         \
    "\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\",\"sub\":\"u1\","             \
    "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000"
#define S_PAYLOAD "{" S_CLAIMS ",\"exp\":1764000900}"

void
auth_jwt_test (bool verbose)
{
    printf (" * auth_jwt: ");
    char error[128];
    auth_jwt_t *jwt = auth_jwt_new ("https://chorus.test", "chorus-api");
    assert (jwt);
    auth_jwt_claims_t claims = {.sub = "u1", .tid = "t1", .role = AUTH_ROLE_MEMBER};
    //  No key yet; bad keys refused
    assert (auth_jwt_issue (jwt, &claims, S_NOW, error, sizeof error) == NULL);
    assert (strcmp (error, "no signing key") == 0);
    assert (auth_jwt_add_key (jwt, "k1", "short", 5) == -1);
    assert (auth_jwt_add_key (jwt, "bad kid", S_SECRET1, strlen (S_SECRET1)) == -1);
    assert (auth_jwt_add_key (jwt, "", S_SECRET1, strlen (S_SECRET1)) == -1);
    assert (auth_jwt_add_key (jwt, "k1", S_SECRET1, strlen (S_SECRET1)) == 0);
    assert (auth_jwt_add_key (jwt, "k1", S_SECRET2, strlen (S_SECRET2)) == -1);

    //  Round trip
    char *token = auth_jwt_issue (jwt, &claims, S_NOW, error, sizeof error);
    assert (token);
    if (verbose)
        printf ("\n   %s", token);
    auth_jwt_claims_t got;
    assert (auth_jwt_verify (jwt, token, S_NOW, &got, error, sizeof error)
            == AUTH_JWT_OK);
    assert (strcmp (got.sub, "u1") == 0 && strcmp (got.tid, "t1") == 0);
    assert (got.role == AUTH_ROLE_MEMBER && strcmp (got.kid, "k1") == 0);
    assert (got.iat == S_NOW && got.exp == S_NOW + AUTH_JWT_DEFAULT_TTL);
    assert (strlen (got.jti) == 22);
    //  Expiry and leeway (30 s by default): valid until exp + 30 exclusive
    assert (auth_jwt_verify (jwt, token, S_NOW + 929, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_jwt_verify (jwt, token, S_NOW + 930, &got, error, sizeof error)
            == AUTH_JWT_EXPIRED);
    assert (strcmp (error, "token has expired") == 0);
    //  Issued in the future beyond the leeway
    assert (auth_jwt_verify (jwt, token, S_NOW - 30, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_jwt_verify (jwt, token, S_NOW - 31, &got, NULL, 0)
            == AUTH_JWT_NOT_YET_VALID);
    auth_jwt_set_leeway (jwt, 0);
    assert (auth_jwt_verify (jwt, token, S_NOW + 900, &got, NULL, 0) == AUTH_JWT_EXPIRED);
    assert (auth_jwt_verify (jwt, token, S_NOW + 899, &got, NULL, 0) == AUTH_JWT_OK);
    auth_jwt_set_leeway (jwt, AUTH_JWT_DEFAULT_LEEWAY);

    //  Tampering: one signature character flipped, one claim changed without
    //  re-signing (the role, an escalation), the signature cut short
    char *dot2 = strrchr (token, '.');
    assert (dot2);
    char *copy = strdup (token);
    copy[dot2 - token + 1] = copy[dot2 - token + 1] == 'A' ? 'B' : 'A';
    s_expect (jwt, copy, S_NOW, AUTH_JWT_BAD_SIGNATURE, verbose);
    char *escalated = s_forge (
        S_HEADER,
        "{\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\","
        "\"sub\":\"u1\",\"tid\":\"t1\",\"role\":\"platform_admin\","
        "\"iat\":1764000000,\"exp\":1764000900}",
        0, NULL, dot2 + 1);
    s_expect (jwt, strdup (escalated), S_NOW, AUTH_JWT_BAD_SIGNATURE, verbose);
    free (escalated);
    copy = strdup (token);
    copy[strlen (copy) - 4] = '\0';
    s_expect (jwt, copy, S_NOW, AUTH_JWT_BAD_SIGNATURE, verbose);

    //  A well-formed token forged here verifies; the same with a role claim
    //  changed and re-signed with another secret does not
    s_expect (jwt, s_forge (S_HEADER, S_PAYLOAD, 256, S_SECRET1, NULL), S_NOW,
              AUTH_JWT_OK, verbose);
    s_expect (jwt, s_forge (S_HEADER, S_PAYLOAD, 256, S_SECRET2, NULL), S_NOW,
              AUTH_JWT_BAD_SIGNATURE, verbose);

    //  alg none, in every spelling, with or without a signature; alg missing
    //  or not a string; other algorithms, even correctly signed with our secret
    const char *none_headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"None\",\"kid\":\"k1\"}",
        "{\"alg\":\"NONE\",\"kid\":\"k1\"}",
        "{\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":null,\"kid\":\"k1\"}",
        "{\"alg\":256,\"kid\":\"k1\"}",
        "{\"alg\":\"hs256\",\"kid\":\"k1\"}",
    };
    for (size_t i = 0; i < sizeof none_headers / sizeof none_headers[0]; i++) {
        s_expect (jwt, s_forge (none_headers[i], S_PAYLOAD, 0, NULL, ""), S_NOW,
                  AUTH_JWT_BAD_ALGORITHM, verbose);
        s_expect (jwt, s_forge (none_headers[i], S_PAYLOAD, 256, S_SECRET1, NULL), S_NOW,
                  AUTH_JWT_BAD_ALGORITHM, verbose);
    }
    //  jansson refuses NUL in strings: "HS256\0" is no way around the pin
    s_expect (jwt,
              s_forge ("{\"alg\":\"HS256\\u0000\",\"kid\":\"k1\"}", S_PAYLOAD, 256,
                       S_SECRET1, NULL),
              S_NOW, AUTH_JWT_MALFORMED, verbose);
    char *hs512 = s_forge ("{\"alg\":\"HS512\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
                           S_PAYLOAD, 512, S_SECRET1, NULL);
    //  libjwt 1.10 alone takes the algorithm from the token: with our HS256
    //  secret it accepts this HS512 token (shown, not asserted)
    jwt_t *raw = NULL;
    int rc = jwt_decode (&raw, hs512, (const unsigned char *) S_SECRET1,
                         (int) strlen (S_SECRET1));
    if (verbose)
        printf ("\n   libjwt jwt_decode of an HS512 token with the HS256 secret: %s",
                rc == 0 ? "accepted" : "refused");
    jwt_free (raw);
    //  ... and refuses alg none when given a key (also shown, not asserted)
    char *none = s_forge ("{\"alg\":\"none\",\"kid\":\"k1\"}", S_PAYLOAD, 0, NULL, "");
    raw = NULL;
    rc = jwt_decode (&raw, none, (const unsigned char *) S_SECRET1,
                     (int) strlen (S_SECRET1));
    if (verbose)
        printf ("\n   libjwt jwt_decode of an alg none token with a key: %s",
                rc == 0 ? "accepted" : "refused");
    jwt_free (raw);
    free (none);
    s_expect (jwt, hs512, S_NOW, AUTH_JWT_BAD_ALGORITHM, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"RS256\",\"kid\":\"k1\"}", S_PAYLOAD, 0, NULL,
                       "c2lnbmF0dXJl"),
              S_NOW, AUTH_JWT_BAD_ALGORITHM, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"EdDSA\",\"kid\":\"k1\"}", S_PAYLOAD, 0, NULL,
                       "c2lnbmF0dXJl"),
              S_NOW, AUTH_JWT_BAD_ALGORITHM, verbose);

    //  Keys: no kid, an unknown kid, a known kid with another key's signature
    s_expect (jwt, s_forge ("{\"alg\":\"HS256\"}", S_PAYLOAD, 256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_UNKNOWN_KEY, verbose);
    s_expect (
        jwt,
        s_forge ("{\"alg\":\"HS256\",\"kid\":\"k2\"}", S_PAYLOAD, 256, S_SECRET2, NULL),
        S_NOW, AUTH_JWT_UNKNOWN_KEY, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"HS256\",\"kid\":7}", S_PAYLOAD, 256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_UNKNOWN_KEY, verbose);

    //  Header forms: typ absent or "jwt" accepted, other types, crit and
    //  duplicate members refused
    s_expect (
        jwt,
        s_forge ("{\"alg\":\"HS256\",\"kid\":\"k1\"}", S_PAYLOAD, 256, S_SECRET1, NULL),
        S_NOW, AUTH_JWT_OK, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}", S_PAYLOAD,
                       256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_OK, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k1\"}", S_PAYLOAD,
                       256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_BAD_TYPE, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"HS256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}", S_PAYLOAD,
                       256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_MALFORMED, verbose);
    s_expect (jwt,
              s_forge ("{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"k1\"}", S_PAYLOAD,
                       256, S_SECRET1, NULL),
              S_NOW, AUTH_JWT_MALFORMED, verbose);

    //  Claims: issuer, audience (a string or an array holding ours), times,
    //  Chorus claims
    struct {
        const char *payload;
        auth_jwt_error_t expected;
    } cases[] = {
        {"{\"iss\":\"https://evil.test\",\"aud\":\"chorus-api\",\"sub\":\"u1\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_BAD_ISSUER},
        {"{\"aud\":\"chorus-api\",\"sub\":\"u1\",\"tid\":\"t1\",\"role\":\"member\","
         "\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_BAD_ISSUER},
        {"{\"iss\":\"https://chorus.test\",\"aud\":\"other-api\",\"sub\":\"u1\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_BAD_AUDIENCE},
        {"{\"iss\":\"https://chorus.test\",\"aud\":[\"x\",\"chorus-api\"],\"sub\":\"u1\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_OK},
        {"{\"iss\":\"https://chorus.test\",\"aud\":[\"x\"],\"sub\":\"u1\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_BAD_AUDIENCE},
        {"{" S_CLAIMS "}", AUTH_JWT_INVALID_CLAIMS},
        {"{" S_CLAIMS ",\"exp\":\"1764000900\"}", AUTH_JWT_INVALID_CLAIMS},
        {"{" S_CLAIMS ",\"exp\":1764000900.5}", AUTH_JWT_INVALID_CLAIMS},
        {"{" S_CLAIMS ",\"exp\":1763999000}", AUTH_JWT_EXPIRED},
        {"{" S_CLAIMS ",\"exp\":1764000900,\"nbf\":1764000100}", AUTH_JWT_NOT_YET_VALID},
        {"{" S_CLAIMS ",\"exp\":1764000900,\"nbf\":1764000000}", AUTH_JWT_OK},
        {"{\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\",\"sub\":\"u1\","
         "\"tid\":\"t1\",\"role\":\"owner\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_INVALID_CLAIMS},
        {"{\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\",\"sub\":\"u1\","
         "\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_INVALID_CLAIMS},
        {"{\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\",\"sub\":\"\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_INVALID_CLAIMS},
        {"{\"iss\":\"https://chorus.test\",\"aud\":\"chorus-api\",\"sub\":\"u\\u00001\","
         "\"tid\":\"t1\",\"role\":\"member\",\"iat\":1764000000,\"exp\":1764000900}",
         AUTH_JWT_MALFORMED},
        {"{" S_CLAIMS ",\"exp\":1764000900,\"sub\":\"u2\"}", AUTH_JWT_MALFORMED},
        {"[1,2]", AUTH_JWT_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_expect (jwt, s_forge (S_HEADER, cases[i].payload, 256, S_SECRET1, NULL), S_NOW,
                  cases[i].expected, verbose);

    //  The same key under another issuer/audience configuration
    auth_jwt_t *other = auth_jwt_new ("https://chorus.test", "billing-api");
    assert (auth_jwt_add_key (other, "k1", S_SECRET1, strlen (S_SECRET1)) == 0);
    s_expect (other, strdup (token), S_NOW, AUTH_JWT_BAD_AUDIENCE, verbose);
    auth_jwt_destroy (&other);
    other = auth_jwt_new ("https://other.test", "chorus-api");
    assert (auth_jwt_add_key (other, "k1", S_SECRET1, strlen (S_SECRET1)) == 0);
    s_expect (other, strdup (token), S_NOW, AUTH_JWT_BAD_ISSUER, verbose);
    auth_jwt_destroy (&other);
    assert (other == NULL);
    auth_jwt_destroy (&other);

    //  Malformed and oversized input, refused before any parsing
    const char *malformed[] = {"",
                               "abc",
                               "a.b",
                               "a.b.c.d",
                               "..",
                               "e30.e30.",
                               "e30.e30",
                               "e3!.e30.abc",
                               "e30=.e30.abc",
                               "W10.e30.abc",
                               "bm90IGpzb24.e30.abc"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        s_expect (jwt, strdup (malformed[i]), S_NOW,
                  i == 5 ? AUTH_JWT_BAD_ALGORITHM : AUTH_JWT_MALFORMED, verbose);
    assert (auth_jwt_verify (jwt, NULL, S_NOW, &got, NULL, 0) == AUTH_JWT_MALFORMED);
    char *big = malloc (AUTH_JWT_MAX_SIZE + 2);
    assert (big);
    size_t token_len = strlen (token);
    memcpy (big, token, token_len);
    memset (big + token_len, 'A', AUTH_JWT_MAX_SIZE + 1 - token_len);
    big[AUTH_JWT_MAX_SIZE + 1] = '\0';
    assert (auth_jwt_verify (jwt, big, S_NOW, &got, error, sizeof error)
            == AUTH_JWT_MALFORMED);
    assert (strcmp (error, "token is larger than 8192 bytes") == 0);
    free (big);

    //  Rotation: k2 becomes current; k1 tokens verify until k1 is removed
    assert (auth_jwt_add_key (jwt, "k2", S_SECRET2, strlen (S_SECRET2)) == 0);
    assert (auth_jwt_set_current (jwt, "k3") == -1);
    assert (auth_jwt_set_current (jwt, "k2") == 0);
    claims.role = AUTH_ROLE_TENANT_ADMIN;
    char *rotated = auth_jwt_issue (jwt, &claims, S_NOW, error, sizeof error);
    assert (rotated);
    assert (auth_jwt_verify (jwt, rotated, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strcmp (got.kid, "k2") == 0 && got.role == AUTH_ROLE_TENANT_ADMIN);
    assert (strcmp (got.jti, "") != 0);
    assert (auth_jwt_verify (jwt, token, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (auth_jwt_remove_key (jwt, "k2") == -1);  //  current
    assert (auth_jwt_remove_key (jwt, "k1") == 0);
    assert (auth_jwt_verify (jwt, token, S_NOW, &got, NULL, 0) == AUTH_JWT_UNKNOWN_KEY);
    assert (auth_jwt_verify (jwt, rotated, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    free (rotated);

    //  Session id: absent unless given; issued, verified and returned when given
    char *no_sid = auth_jwt_issue (jwt, &claims, S_NOW, error, sizeof error);
    assert (no_sid);
    assert (auth_jwt_verify (jwt, no_sid, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (got.sid[0] == '\0' && strcmp (got.kid, "k2") == 0);
    free (no_sid);
    auth_jwt_claims_t session = {
        .sub = "u1", .tid = "t1", .role = AUTH_ROLE_MEMBER, .sid = "family-42"};
    char *with_sid = auth_jwt_issue (jwt, &session, S_NOW, error, sizeof error);
    assert (with_sid);
    assert (auth_jwt_verify (jwt, with_sid, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strcmp (got.sid, "family-42") == 0 && strcmp (got.sub, "u1") == 0);
    free (with_sid);
    memset (session.sid, 's', AUTH_JWT_CLAIM_MAX);  //  the longest sid
    session.sid[AUTH_JWT_CLAIM_MAX] = '\0';
    with_sid = auth_jwt_issue (jwt, &session, S_NOW, error, sizeof error);
    assert (with_sid);
    assert (auth_jwt_verify (jwt, with_sid, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
    assert (strlen (got.sid) == AUTH_JWT_CLAIM_MAX);
    free (with_sid);
    memset (session.sid, 's', sizeof session.sid);  //  no NUL: refused
    assert (auth_jwt_issue (jwt, &session, S_NOW, error, sizeof error) == NULL);
    assert (strcmp (error, "sid is too long") == 0);
    //  Forged sid claims, signed with the right key: a string of 1..255 bytes only
    char long_sid[AUTH_JWT_CLAIM_MAX + 2];
    memset (long_sid, 'x', AUTH_JWT_CLAIM_MAX + 1);
    long_sid[AUTH_JWT_CLAIM_MAX + 1] = '\0';
    char sid_payload[1024];
    struct {
        const char *sid;
        auth_jwt_error_t expected;
    } sids[] = {
        {"\"fam-1\"", AUTH_JWT_OK},           {"\"\"", AUTH_JWT_INVALID_CLAIMS},
        {"7", AUTH_JWT_INVALID_CLAIMS},       {"null", AUTH_JWT_INVALID_CLAIMS},
        {"[\"a\"]", AUTH_JWT_INVALID_CLAIMS}, {"\"a\\u0000b\"", AUTH_JWT_MALFORMED},
        {NULL, AUTH_JWT_INVALID_CLAIMS},  //  long_sid
    };
    for (size_t i = 0; i < sizeof sids / sizeof sids[0]; i++) {
        if (sids[i].sid)
            snprintf (sid_payload, sizeof sid_payload,
                      "{" S_CLAIMS ",\"exp\":1764000900,\"sid\":%s}", sids[i].sid);
        else
            snprintf (sid_payload, sizeof sid_payload,
                      "{" S_CLAIMS ",\"exp\":1764000900,\"sid\":\"%s\"}", long_sid);
        char *forged = s_forge ("{\"alg\":\"HS256\",\"kid\":\"k2\"}", sid_payload, 256,
                                S_SECRET2, NULL);
        if (sids[i].expected == AUTH_JWT_OK) {
            assert (auth_jwt_verify (jwt, forged, S_NOW, &got, NULL, 0) == AUTH_JWT_OK);
            assert (strcmp (got.sid, "fam-1") == 0);
        }
        s_expect (jwt, forged, S_NOW, sids[i].expected, verbose);
    }

    //  Issuing refuses incomplete claims
    auth_jwt_claims_t bad = {.sub = "u1", .tid = "", .role = AUTH_ROLE_MEMBER};
    assert (auth_jwt_issue (jwt, &bad, S_NOW, error, sizeof error) == NULL);
    bad = (auth_jwt_claims_t){.sub = "u1", .tid = "t1", .role = AUTH_ROLE_NONE};
    assert (auth_jwt_issue (jwt, &bad, S_NOW, error, sizeof error) == NULL);

    assert (auth_role_parse ("platform_admin") == AUTH_ROLE_PLATFORM_ADMIN);
    assert (auth_role_parse ("Member") == AUTH_ROLE_NONE);
    assert (auth_role_parse (NULL) == AUTH_ROLE_NONE);
    assert (strcmp (auth_jwt_error_name (AUTH_JWT_EXPIRED), "expired") == 0);
    assert (strcmp (auth_jwt_error_name (AUTH_JWT_BAD_TYPE), "bad_type") == 0);
    free (token);
    auth_jwt_destroy (&jwt);
    assert (jwt == NULL);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
