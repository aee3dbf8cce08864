/*  edge_auth: the pure part of the edge's authentication (schemas/auth.md "What the
    edge does"): reading the Authorization (RFC 6750 Bearer) and Cookie (RFC 6265
    cookie-string) headers into one credential, telling a JWT from an API key
    ("chr_..."), checking a route's requirement against a verified identity and
    an API key's scopes, the client address (X-Forwarded-For's last hop when the
    proxy is trusted), the bus headers of an identity and the Set-Cookie lines of
    the token cookies. No sockets and no state: edge_guard does the verifying,
    edge_http and edge_ws the I/O, and the fuzz target feeds it header bytes.   */
#ifndef EDGE_AUTH_H_INCLUDED
#define EDGE_AUTH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_jwt.h"
#include "bus.pb-c.h"

//  Longest credential text kept (a JWT the verifier would still look at)
#define EDGE_AUTH_TOKEN_MAX AUTH_JWT_MAX_SIZE
//  An API key: this prefix and 43 URL-safe base64 characters (32 bytes)
#define EDGE_AUTH_KEY_PREFIX "chr_"
#define EDGE_AUTH_KEY_LEN 47
//  Longest id kept in an identity (user, tenant, session, API key)
#define EDGE_AUTH_ID_MAX AUTH_JWT_CLAIM_MAX
//  Longest client address text (an IPv6 address with room to spare)
#define EDGE_AUTH_IP_MAX 64
//  Cookie names (auth.md "Cookies")
#define EDGE_AUTH_ACCESS_COOKIE "chorus_access"
#define EDGE_AUTH_REFRESH_COOKIE "chorus_refresh"

//  What a route asks of the caller (auth.md "Routes", column "who").
typedef enum {
    EDGE_NEED_PUBLIC = 0,     //  credentials are not looked at
    EDGE_NEED_OPTIONAL,       //  used when valid; a bad one is refused
    EDGE_NEED_USER,           //  any valid credential
    EDGE_NEED_JWT,            //  a user session (JWT), not an API key
    EDGE_NEED_TENANT_ADMIN,   //  role tenant_admin or platform_admin
    EDGE_NEED_PLATFORM_ADMIN  //  role platform_admin
} edge_need_t;

//  What a request presented.
typedef enum {
    EDGE_CRED_NONE = 0,  //  no Authorization header and no access cookie
    EDGE_CRED_JWT,       //  three base64url segments
    EDGE_CRED_API_KEY,   //  chr_ and 43 base64url characters
    EDGE_CRED_MALFORMED  //  something else: refused where credentials count
} edge_cred_kind_t;

//  A credential as read from the request headers.
typedef struct {
    edge_cred_kind_t kind;                //  what it looks like
    bool from_cookie;                     //  read from chorus_access, not the header
    char token[EDGE_AUTH_TOKEN_MAX + 1];  //  the token text ("" for NONE/MALFORMED)
} edge_credential_t;

//  API key scopes, as bits
#define EDGE_SCOPE_READ 1
#define EDGE_SCOPE_WRITE 2
#define EDGE_SCOPE_ADMIN 4

//  Who a verified credential acts for.
typedef struct {
    edge_cred_kind_t kind;                  //  JWT or API_KEY; NONE: anonymous
    char user_id[EDGE_AUTH_ID_MAX + 1];     //  user (sub, or the key's creator)
    char tenant_id[EDGE_AUTH_ID_MAX + 1];   //  tenant (tid, or the key's tenant)
    char session_id[EDGE_AUTH_ID_MAX + 1];  //  sid of a JWT, "" otherwise
    char api_key_id[EDGE_AUTH_ID_MAX + 1];  //  key id of an API key, "" otherwise
    auth_role_t role;                       //  role in the tenant
    unsigned scopes;                        //  EDGE_SCOPE_* of an API key
    int64_t iat;                            //  JWT issued at (unix seconds)
    int64_t expires_at;                     //  JWT exp or key expiry (0: never)
} edge_identity_t;

//  Read an Authorization header value (len bytes, need not be terminated): the
//  scheme "Bearer" (any case), one or more spaces, a b64token (RFC 6750 2.1),
//  optional trailing blanks. Writes the token (terminated) into token and returns
//  its length, or -1 when the value is anything else or the token does not fit.
int edge_auth_bearer (const char *value, size_t len, char *token, size_t size);

//  Find cookie name in a Cookie header value (RFC 6265 4.2.1 cookie-string,
//  tolerating extra blanks): writes its value (without the quotes of a quoted
//  value) into value and returns its length; -1 when absent, malformed or too
//  long. The first pair of that name wins.
int edge_auth_cookie (const char *header, size_t len, const char *name, char *value,
                      size_t size);

//  Tell what a token text of len bytes looks like (never NONE for len > 0).
edge_cred_kind_t edge_auth_classify (const char *token, size_t len);

//  Read the credential of a request from its Authorization and Cookie headers
//  (either may be NULL): the header wins over the chorus_access cookie; a header
//  that is not a well-formed Bearer token is MALFORMED.
void edge_auth_credential (const char *authorization, size_t authorization_len,
                           const char *cookie, size_t cookie_len,
                           edge_credential_t *credential);

//  Check a route's requirement for a request of method by identity (kind NONE:
//  anonymous). Returns 0 when allowed, 401 when a credential is needed and none
//  came, 403 when the role or an API key's scope is too low or an API key meets
//  a jwt route. Scopes: read for GET/HEAD, write for the other methods.
int edge_auth_permit (edge_need_t need, const char *method,
                      const edge_identity_t *identity);

//  The EDGE_SCOPE_* bits of scope names ("read", "write", "admin"; others ignored).
unsigned edge_auth_scopes (char *const *names, size_t count);

//  Wire name of a requirement ("public", "user"...).
const char *edge_auth_need_name (edge_need_t need);

//  Fill the identity fields of bus headers (tenant_id, user_id, role, session_id,
//  api_key_id, client_ip) from identity (may be NULL: anonymous) and client_ip;
//  the strings are borrowed from identity and client_ip.
void edge_auth_headers (const edge_identity_t *identity, const char *client_ip,
                        ChorusBus__Headers *headers);

//  The client's address: the last entry of X-Forwarded-For (xff, xff_len bytes)
//  when trust_proxy and it is an IP address, else peer. Writes it into out and
//  returns 0, or -1 when neither gives an address (out is then "").
int edge_auth_client_ip (const char *peer, const char *xff, size_t xff_len,
                         bool trust_proxy, char *out, size_t size);

//  A Set-Cookie header value for cookie name: value, Path, Max-Age (0 clears it),
//  HttpOnly, SameSite=Strict, and Secure when secure. Returns a new string (the
//  caller frees), or NULL when value holds characters a cookie value cannot.
char *edge_auth_set_cookie (const char *name, const char *value, const char *path,
                            int64_t max_age, bool secure);

//  The SHA-256 of an API key as 64 lowercase hex digits (hex holds 65 bytes): the
//  key_hash of api_keys.verify.
void edge_auth_key_hash (const char *key, char *hex);

void edge_auth_test (bool verbose);

#endif
