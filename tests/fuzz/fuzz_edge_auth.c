/*  fuzz_edge_auth: what the edge reads from a client to decide who it is, before
    anything reaches the bus. The first byte holds flags (trust the proxy, which
    cookie name), the second where the rest splits into an Authorization header
    value and a Cookie header value. Both go through the credential reader
    (RFC 6750 Bearer, RFC 6265 cookie-string), the classifier and, for anything
    that looks like a JWT, the verifier with a pinned algorithm (auth_jwt); the
    whole text also goes through the X-Forwarded-For reader, the cookie writer and
    the requirement check. Nothing may crash, leak or read out of bounds.        */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_jwt.h"
#include "edge_auth.h"

//  The key the seed corpus's valid tokens are signed with, and their time
#define S_SECRET "fuzz-edge-auth-secret-0123456789abcdef"
#define S_KID "fuzz"
#define S_NOW 1764000000

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    const char *text = (const char *) data + 2;
    size_t len = size - 2;
    size_t split = len * data[1] / 255;

    edge_credential_t *credential = malloc (sizeof *credential);
    if (!credential)
        return 0;
    edge_auth_credential (flags & 1 ? NULL : text, flags & 1 ? 0 : split, text + split,
                          len - split, credential);
    char value[512];
    const char *name = flags & 2 ? EDGE_AUTH_REFRESH_COOKIE : EDGE_AUTH_ACCESS_COOKIE;
    (void) edge_auth_cookie (text + split, len - split, name, value, sizeof value);
    (void) edge_auth_bearer (text, split, value, sizeof value);
    (void) edge_auth_classify (text, len);

    edge_identity_t identity = {0};
    if (credential->kind == EDGE_CRED_JWT) {
        auth_jwt_t *jwt = auth_jwt_new ("chorus", "chorus-api");
        if (auth_jwt_add_key (jwt, S_KID, S_SECRET, strlen (S_SECRET)) == 0) {
            auth_jwt_claims_t claims;
            char error[128];
            if (auth_jwt_verify (jwt, credential->token, S_NOW, &claims, error,
                                 sizeof error)
                == AUTH_JWT_OK) {
                identity.kind = EDGE_CRED_JWT;
                identity.role = claims.role;
                memcpy (identity.user_id, claims.sub, sizeof identity.user_id);
                memcpy (identity.tenant_id, claims.tid, sizeof identity.tenant_id);
                memcpy (identity.session_id, claims.sid, sizeof identity.session_id);
            }
        }
        auth_jwt_destroy (&jwt);
    }
    else if (credential->kind == EDGE_CRED_API_KEY) {
        char hash[65];
        edge_auth_key_hash (credential->token, hash);
        identity.kind = EDGE_CRED_API_KEY;
        identity.scopes = flags >> 4;
        identity.role = (auth_role_t) ((flags >> 2) & 3);
    }
    static const char *methods[] = {"GET", "POST", "DELETE", "HEAD"};
    for (int need = EDGE_NEED_PUBLIC; need <= EDGE_NEED_PLATFORM_ADMIN; need++)
        (void) edge_auth_permit ((edge_need_t) need, methods[flags >> 6], &identity);
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    edge_auth_headers (&identity, "127.0.0.1", &headers);

    char ip[EDGE_AUTH_IP_MAX];
    (void) edge_auth_client_ip ("192.0.2.1", text, len, true, ip, sizeof ip);
    char *copy = malloc (len + 1);
    if (copy) {
        memcpy (copy, text, len);
        copy[len] = '\0';
        char *line = edge_auth_set_cookie (name, copy, "/", (int64_t) len, flags & 8);
        free (line);
        free (copy);
    }
    free (credential);
    return 0;
}
