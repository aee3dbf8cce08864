/*  edge_auth: credentials from headers, requirements, client address, cookies.
    Pure functions over bytes; see the header.                                    */
#include "edge_auth.h"

#include <arpa/inet.h>
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  True for the characters of a b64token (RFC 6750 2.1), without the '=' padding.
static bool
s_b64token_char (unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

//  True for base64url characters (RFC 4648 5), as JWT segments and keys use.
static bool
s_b64url_char (unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '_';
}

//  True for a cookie-octet (RFC 6265 4.1.1).
static bool
s_cookie_octet (unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a)
           || (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

//  True for the blanks HTTP allows around values.
static bool
s_blank (char c)
{
    return c == ' ' || c == '\t';
}

int
edge_auth_bearer (const char *value, size_t len, char *token, size_t size)
{
    if (!value || !token || size == 0)
        return -1;
    size_t at = 0;
    while (at < len && s_blank (value[at]))
        at++;
    if (len - at < 7 || strncasecmp (value + at, "bearer", 6) != 0
        || !s_blank (value[at + 6]))
        return -1;
    at += 6;
    while (at < len && s_blank (value[at]))
        at++;
    size_t start = at;
    while (at < len && s_b64token_char ((unsigned char) value[at]))
        at++;
    if (at == start)
        return -1;
    while (at < len && value[at] == '=')
        at++;
    size_t end = at;
    while (at < len && s_blank (value[at]))
        at++;
    if (at != len || end - start >= size)
        return -1;
    memcpy (token, value + start, end - start);
    token[end - start] = '\0';
    return (int) (end - start);
}

//  edge_auth_cookie, also telling absent (-1) from present but malformed (-2).
static int
s_cookie (const char *header, size_t len, const char *name, char *value, size_t size)
{
    size_t name_len = strlen (name);
    size_t at = 0;
    while (at < len) {
        //  One cookie-pair up to the next ';'
        const char *semi = memchr (header + at, ';', len - at);
        size_t end = semi ? (size_t) (semi - header) : len;
        size_t start = at;
        while (start < end && s_blank (header[start]))
            start++;
        size_t stop = end;
        while (stop > start && s_blank (header[stop - 1]))
            stop--;
        const char *eq = memchr (header + start, '=', stop - start);
        if (eq && (size_t) (eq - (header + start)) == name_len
            && memcmp (header + start, name, name_len) == 0) {
            size_t v = (size_t) (eq - header) + 1, v_end = stop;
            while (v < v_end && s_blank (header[v]))
                v++;
            if (v_end - v >= 2 && header[v] == '"' && header[v_end - 1] == '"') {
                v++;
                v_end--;
            }
            for (size_t i = v; i < v_end; i++)
                if (!s_cookie_octet ((unsigned char) header[i]))
                    return -2;
            if (v_end - v >= size)
                return -2;
            memcpy (value, header + v, v_end - v);
            value[v_end - v] = '\0';
            return (int) (v_end - v);
        }
        at = end + 1;
    }
    return -1;
}

int
edge_auth_cookie (const char *header, size_t len, const char *name, char *value,
                  size_t size)
{
    if (!header || !name || !*name || !value || size == 0)
        return -1;
    int rc = s_cookie (header, len, name, value, size);
    return rc < 0 ? -1 : rc;
}

edge_cred_kind_t
edge_auth_classify (const char *token, size_t len)
{
    if (!token || len == 0)
        return EDGE_CRED_NONE;
    if (len == EDGE_AUTH_KEY_LEN && memcmp (token, EDGE_AUTH_KEY_PREFIX, 4) == 0) {
        size_t i = 4;
        while (i < len && s_b64url_char ((unsigned char) token[i]))
            i++;
        if (i == len)
            return EDGE_CRED_API_KEY;
    }
    //  header.payload.signature (the signature may be empty: alg none, refused later)
    size_t dots = 0, segment = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (segment == 0 && dots < 2)
                return EDGE_CRED_MALFORMED;
            dots++;
            segment = 0;
        }
        else if (s_b64url_char ((unsigned char) token[i]))
            segment++;
        else
            return EDGE_CRED_MALFORMED;
    }
    return dots == 2 ? EDGE_CRED_JWT : EDGE_CRED_MALFORMED;
}

void
edge_auth_credential (const char *authorization, size_t authorization_len,
                      const char *cookie, size_t cookie_len,
                      edge_credential_t *credential)
{
    assert (credential);
    credential->kind = EDGE_CRED_NONE;
    credential->from_cookie = false;
    credential->token[0] = '\0';
    int len = -1;
    if (authorization && authorization_len > 0) {
        len = edge_auth_bearer (authorization, authorization_len, credential->token,
                                sizeof credential->token);
        if (len < 0) {
            credential->kind = EDGE_CRED_MALFORMED;
            credential->token[0] = '\0';
            return;
        }
    }
    else if (cookie && cookie_len > 0) {
        len = s_cookie (cookie, cookie_len, EDGE_AUTH_ACCESS_COOKIE, credential->token,
                        sizeof credential->token);
        credential->from_cookie = true;
        if (len == -1 || len == 0) {
            credential->token[0] = '\0';
            credential->from_cookie = false;
            return;  //  no access cookie (an empty one is a cleared one)
        }
        if (len < 0) {
            credential->kind = EDGE_CRED_MALFORMED;
            credential->token[0] = '\0';
            return;
        }
    }
    else
        return;
    credential->kind = edge_auth_classify (credential->token, (size_t) len);
    if (credential->kind == EDGE_CRED_MALFORMED)
        credential->token[0] = '\0';
}

int
edge_auth_permit (edge_need_t need, const char *method, const edge_identity_t *identity)
{
    if (need == EDGE_NEED_PUBLIC)
        return 0;
    if (!identity
        || (identity->kind != EDGE_CRED_JWT && identity->kind != EDGE_CRED_API_KEY))
        return need == EDGE_NEED_OPTIONAL ? 0 : 401;
    if (identity->kind == EDGE_CRED_API_KEY) {
        if (need == EDGE_NEED_JWT || need == EDGE_NEED_PLATFORM_ADMIN)
            return 403;
        bool read = method
                    && (strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0);
        unsigned wanted = read ? EDGE_SCOPE_READ : EDGE_SCOPE_WRITE;
        if (!(identity->scopes & wanted))
            return 403;
        if (need == EDGE_NEED_TENANT_ADMIN && !(identity->scopes & EDGE_SCOPE_ADMIN))
            return 403;
    }
    if (need == EDGE_NEED_TENANT_ADMIN && identity->role != AUTH_ROLE_TENANT_ADMIN
        && identity->role != AUTH_ROLE_PLATFORM_ADMIN)
        return 403;
    if (need == EDGE_NEED_PLATFORM_ADMIN && identity->role != AUTH_ROLE_PLATFORM_ADMIN)
        return 403;
    return 0;
}

unsigned
edge_auth_scopes (char *const *names, size_t count)
{
    unsigned scopes = 0;
    for (size_t i = 0; names && i < count; i++) {
        if (!names[i])
            continue;
        if (strcmp (names[i], "read") == 0)
            scopes |= EDGE_SCOPE_READ;
        else if (strcmp (names[i], "write") == 0)
            scopes |= EDGE_SCOPE_WRITE;
        else if (strcmp (names[i], "admin") == 0)
            scopes |= EDGE_SCOPE_ADMIN;
    }
    return scopes;
}

const char *
edge_auth_need_name (edge_need_t need)
{
    static const char *names[] = {"public", "optional",     "user",
                                  "jwt",    "tenant_admin", "platform_admin"};
    return (size_t) need < sizeof names / sizeof names[0] ? names[need] : "unknown";
}

void
edge_auth_headers (const edge_identity_t *identity, const char *client_ip,
                   ChorusBus__Headers *headers)
{
    static char empty[] = "";
    bool known = identity
                 && (identity->kind == EDGE_CRED_JWT
                     || identity->kind == EDGE_CRED_API_KEY);
    const char *role = known ? auth_role_name (identity->role) : NULL;
    headers->tenant_id = known ? (char *) identity->tenant_id : empty;
    headers->user_id = known ? (char *) identity->user_id : empty;
    headers->role = role ? (char *) role : empty;
    headers->session_id = known ? (char *) identity->session_id : empty;
    headers->api_key_id = known ? (char *) identity->api_key_id : empty;
    headers->client_ip = client_ip ? (char *) client_ip : empty;
}

//  True when text is an IPv4 or IPv6 address.
static bool
s_is_ip (const char *text)
{
    unsigned char address[sizeof (struct in6_addr)];
    return inet_pton (AF_INET, text, address) == 1
           || inet_pton (AF_INET6, text, address) == 1;
}

int
edge_auth_client_ip (const char *peer, const char *xff, size_t xff_len, bool trust_proxy,
                     char *out, size_t size)
{
    assert (out && size > 0);
    out[0] = '\0';
    if (trust_proxy && xff && xff_len > 0) {
        size_t end = xff_len;
        while (end > 0 && s_blank (xff[end - 1]))
            end--;
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        while (start < end && s_blank (xff[start]))
            start++;
        char last[EDGE_AUTH_IP_MAX];
        if (end > start && end - start < sizeof last && end - start < size) {
            memcpy (last, xff + start, end - start);
            last[end - start] = '\0';
            if (s_is_ip (last)) {
                memcpy (out, last, end - start + 1);
                return 0;
            }
        }
    }
    if (peer && *peer && strlen (peer) < size) {
        memcpy (out, peer, strlen (peer) + 1);
        return 0;
    }
    return -1;
}

char *
edge_auth_set_cookie (const char *name, const char *value, const char *path,
                      int64_t max_age, bool secure)
{
    assert (name && value && path);
    for (const char *c = value; *c; c++)
        if (!s_cookie_octet ((unsigned char) *c))
            return NULL;
    char *text = NULL;
    if (asprintf (&text, "%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
                  name, value, path, (long long) (max_age > 0 ? max_age : 0),
                  secure ? "; Secure" : "")
        < 0)
        return NULL;
    return text;
}

void
edge_auth_key_hash (const char *key, char *hex)
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) key, strlen (key));
    sodium_bin2hex (hex, 2 * sizeof hash + 1, hash, sizeof hash);
}

//  --------------------------------------------------------------------------
//  Selftest

//  An identity of kind with role and scopes.
static edge_identity_t
s_identity (edge_cred_kind_t kind, auth_role_t role, unsigned scopes)
{
    edge_identity_t identity = {.kind = kind, .role = role, .scopes = scopes};
    snprintf (identity.user_id, sizeof identity.user_id, "u1");
    snprintf (identity.tenant_id, sizeof identity.tenant_id, "t1");
    return identity;
}

void
edge_auth_test (bool verbose)
{
    printf (" * edge_auth: ");
    char token[128];
    //  Bearer (RFC 6750): scheme in any case, b64token, padding, blanks
    const char *v = "Bearer abc.def-_~+/==";
    assert (edge_auth_bearer (v, strlen (v), token, sizeof token) == 14);
    assert (strcmp (token, "abc.def-_~+/==") == 0);
    v = "  bEaReR   tok  ";
    assert (edge_auth_bearer (v, strlen (v), token, sizeof token) == 3);
    const char *bad[] = {"",          "Bearer",       "Bearer ",   "Basic YTpi",
                         "Bearertok", "Bearer a b",   "Bearer =",  "Bearer a=b",
                         "Bearer a,", "Bearer \"a\"", "Token abc", "Bearer a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert (edge_auth_bearer (bad[i], strlen (bad[i]), token, sizeof token) == -1);
    assert (edge_auth_bearer ("Bearer abcdef", 13, token, 4) == -1);  //  too long
    assert (edge_auth_bearer ("Bearer abc\0def", 14, token, sizeof token) == -1);

    //  Cookies (RFC 6265 cookie-string), quoted values, first match, bad octets
    const char *c = "a=1; chorus_access=tok.en.x; chorus_access=second";
    assert (edge_auth_cookie (c, strlen (c), "chorus_access", token, sizeof token) == 8);
    assert (strcmp (token, "tok.en.x") == 0);
    c = "x=\"quoted\";y=2 ;  z = 3 ";
    assert (edge_auth_cookie (c, strlen (c), "x", token, sizeof token) == 6);
    assert (strcmp (token, "quoted") == 0);
    assert (edge_auth_cookie (c, strlen (c), "y", token, sizeof token) == 1);
    assert (edge_auth_cookie (c, strlen (c), "z", token, sizeof token) == -1);  //  "z "
    assert (edge_auth_cookie (c, strlen (c), "q", token, sizeof token) == -1);
    c = "chorus_access=a,b";
    assert (edge_auth_cookie (c, strlen (c), "chorus_access", token, sizeof token) == -1);
    c = "chorus_access=";
    assert (edge_auth_cookie (c, strlen (c), "chorus_access", token, sizeof token) == 0);
    assert (edge_auth_cookie (";;;=;", 5, "a", token, sizeof token) == -1);
    assert (edge_auth_cookie ("", 0, "a", token, sizeof token) == -1);

    //  Classification
    const char *jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln";
    assert (edge_auth_classify (jwt, strlen (jwt)) == EDGE_CRED_JWT);
    assert (edge_auth_classify ("a.b.", 4) == EDGE_CRED_JWT);  //  alg none shape
    assert (edge_auth_classify ("a..c", 4) == EDGE_CRED_MALFORMED);
    assert (edge_auth_classify ("a.b.c.d", 7) == EDGE_CRED_MALFORMED);
    assert (edge_auth_classify ("a.b", 3) == EDGE_CRED_MALFORMED);
    assert (edge_auth_classify ("garbage", 7) == EDGE_CRED_MALFORMED);
    assert (edge_auth_classify ("a+b.c.d", 7) == EDGE_CRED_MALFORMED);
    char key[EDGE_AUTH_KEY_LEN + 2] = "chr_";
    memset (key + 4, 'A', 43);
    key[47] = '\0';
    assert (edge_auth_classify (key, 47) == EDGE_CRED_API_KEY);
    assert (edge_auth_classify (key, 46) == EDGE_CRED_MALFORMED);
    key[20] = '.';
    assert (edge_auth_classify (key, 47) == EDGE_CRED_MALFORMED);
    assert (edge_auth_classify ("", 0) == EDGE_CRED_NONE);

    //  The credential: header first, then the cookie; malformed is remembered
    edge_credential_t *cred = malloc (sizeof *cred);
    assert (cred);
    char header[128];
    snprintf (header, sizeof header, "Bearer %s", jwt);
    const char *cookie = "chorus_access=x.y.z";
    edge_auth_credential (header, strlen (header), cookie, strlen (cookie), cred);
    assert (cred->kind == EDGE_CRED_JWT && !cred->from_cookie);
    assert (strcmp (cred->token, jwt) == 0);
    edge_auth_credential (NULL, 0, cookie, strlen (cookie), cred);
    assert (cred->kind == EDGE_CRED_JWT && cred->from_cookie);
    assert (strcmp (cred->token, "x.y.z") == 0);
    edge_auth_credential ("Basic YTpi", 10, cookie, strlen (cookie), cred);
    assert (cred->kind == EDGE_CRED_MALFORMED && cred->token[0] == '\0');
    edge_auth_credential ("Bearer garbage", 14, NULL, 0, cred);
    assert (cred->kind == EDGE_CRED_MALFORMED);
    edge_auth_credential (NULL, 0, "chorus_access=garbage", 21, cred);
    assert (cred->kind == EDGE_CRED_MALFORMED);
    edge_auth_credential (NULL, 0, "chorus_access=a\\b", 17, cred);
    assert (cred->kind == EDGE_CRED_MALFORMED);
    edge_auth_credential (NULL, 0, "chorus_access=; other=1", 23, cred);
    assert (cred->kind == EDGE_CRED_NONE);
    edge_auth_credential (NULL, 0, "other=1", 7, cred);
    assert (cred->kind == EDGE_CRED_NONE);
    edge_auth_credential (NULL, 0, NULL, 0, cred);
    assert (cred->kind == EDGE_CRED_NONE);
    free (cred);

    //  Requirements
    edge_identity_t none = {0};
    edge_identity_t member = s_identity (EDGE_CRED_JWT, AUTH_ROLE_MEMBER, 0);
    edge_identity_t admin = s_identity (EDGE_CRED_JWT, AUTH_ROLE_TENANT_ADMIN, 0);
    edge_identity_t root = s_identity (EDGE_CRED_JWT, AUTH_ROLE_PLATFORM_ADMIN, 0);
    edge_identity_t reader = s_identity (EDGE_CRED_API_KEY, AUTH_ROLE_MEMBER,
                                         EDGE_SCOPE_READ);
    edge_identity_t writer = s_identity (EDGE_CRED_API_KEY, AUTH_ROLE_MEMBER,
                                         EDGE_SCOPE_READ | EDGE_SCOPE_WRITE);
    edge_identity_t keyadmin = s_identity (EDGE_CRED_API_KEY, AUTH_ROLE_TENANT_ADMIN,
                                           EDGE_SCOPE_READ | EDGE_SCOPE_WRITE
                                               | EDGE_SCOPE_ADMIN);
    edge_identity_t readadmin = s_identity (EDGE_CRED_API_KEY, AUTH_ROLE_TENANT_ADMIN,
                                            EDGE_SCOPE_READ | EDGE_SCOPE_ADMIN);
    struct {
        edge_need_t need;
        const char *method;
        const edge_identity_t *who;
        int expected;
    } cases[] = {
        {EDGE_NEED_PUBLIC, "POST", &none, 0},
        {EDGE_NEED_PUBLIC, "POST", NULL, 0},
        {EDGE_NEED_OPTIONAL, "POST", &none, 0},
        {EDGE_NEED_OPTIONAL, "POST", &member, 0},
        {EDGE_NEED_OPTIONAL, "POST", &reader, 403},
        {EDGE_NEED_USER, "GET", &none, 401},
        {EDGE_NEED_USER, "GET", &member, 0},
        {EDGE_NEED_USER, "GET", &reader, 0},
        {EDGE_NEED_USER, "HEAD", &reader, 0},
        {EDGE_NEED_USER, "POST", &reader, 403},
        {EDGE_NEED_USER, "DELETE", &writer, 0},
        {EDGE_NEED_JWT, "POST", &member, 0},
        {EDGE_NEED_JWT, "POST", &keyadmin, 403},
        {EDGE_NEED_JWT, "POST", &none, 401},
        {EDGE_NEED_TENANT_ADMIN, "GET", &member, 403},
        {EDGE_NEED_TENANT_ADMIN, "GET", &admin, 0},
        {EDGE_NEED_TENANT_ADMIN, "GET", &root, 0},
        {EDGE_NEED_TENANT_ADMIN, "GET", &reader, 403},
        {EDGE_NEED_TENANT_ADMIN, "GET", &keyadmin, 0},
        {EDGE_NEED_TENANT_ADMIN, "GET", &readadmin, 0},
        {EDGE_NEED_TENANT_ADMIN, "POST", &readadmin, 403},
        {EDGE_NEED_TENANT_ADMIN, "POST", &keyadmin, 0},
        {EDGE_NEED_TENANT_ADMIN, "GET", &none, 401},
        {EDGE_NEED_PLATFORM_ADMIN, "GET", &admin, 403},
        {EDGE_NEED_PLATFORM_ADMIN, "GET", &root, 0},
        {EDGE_NEED_PLATFORM_ADMIN, "GET", &keyadmin, 403},
        {EDGE_NEED_PLATFORM_ADMIN, "GET", &none, 401},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = edge_auth_permit (cases[i].need, cases[i].method, cases[i].who);
        if (got != cases[i].expected || verbose)
            printf ("\n   case %zu: %s %s -> %d (expected %d)", i,
                    edge_auth_need_name (cases[i].need), cases[i].method, got,
                    cases[i].expected);
        assert (got == cases[i].expected);
    }
    char *names[] = {"read", "admin", "root", NULL};
    assert (edge_auth_scopes (names, 4) == (EDGE_SCOPE_READ | EDGE_SCOPE_ADMIN));
    assert (strcmp (edge_auth_need_name (EDGE_NEED_TENANT_ADMIN), "tenant_admin") == 0);

    //  Bus headers
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    snprintf (admin.session_id, sizeof admin.session_id, "s1");
    edge_auth_headers (&admin, "192.0.2.1", &headers);
    assert (strcmp (headers.user_id, "u1") == 0 && strcmp (headers.tenant_id, "t1") == 0);
    assert (strcmp (headers.role, "tenant_admin") == 0);
    assert (strcmp (headers.session_id, "s1") == 0 && *headers.api_key_id == '\0');
    assert (strcmp (headers.client_ip, "192.0.2.1") == 0);
    edge_auth_headers (NULL, NULL, &headers);
    assert (*headers.user_id == '\0' && *headers.role == '\0'
            && *headers.client_ip == '\0');

    //  Client address: the last X-Forwarded-For hop only when trusted
    char ip[EDGE_AUTH_IP_MAX];
    const char *xff = "203.0.113.9, 10.0.0.1 ,  2001:db8::7 ";
    assert (edge_auth_client_ip ("127.0.0.1", xff, strlen (xff), true, ip, sizeof ip)
            == 0);
    assert (strcmp (ip, "2001:db8::7") == 0);
    assert (edge_auth_client_ip ("127.0.0.1", xff, strlen (xff), false, ip, sizeof ip)
            == 0);
    assert (strcmp (ip, "127.0.0.1") == 0);
    xff = "203.0.113.9, not-an-ip";
    assert (edge_auth_client_ip ("127.0.0.1", xff, strlen (xff), true, ip, sizeof ip)
            == 0);
    assert (strcmp (ip, "127.0.0.1") == 0);
    assert (edge_auth_client_ip ("10.1.1.1", ",", 1, true, ip, sizeof ip) == 0);
    assert (strcmp (ip, "10.1.1.1") == 0);
    assert (edge_auth_client_ip (NULL, NULL, 0, true, ip, sizeof ip) == -1);
    assert (*ip == '\0');

    //  Set-Cookie
    char *line = edge_auth_set_cookie ("chorus_access", "a.b.c", "/", 900, false);
    assert (strcmp (line, "chorus_access=a.b.c; Path=/; Max-Age=900; HttpOnly; "
                          "SameSite=Strict")
            == 0);
    free (line);
    line = edge_auth_set_cookie ("chorus_refresh", "", "/api/v1/auth", 0, true);
    assert (strcmp (line, "chorus_refresh=; Path=/api/v1/auth; Max-Age=0; HttpOnly; "
                          "SameSite=Strict; Secure")
            == 0);
    free (line);
    assert (edge_auth_set_cookie ("x", "a;b", "/", 1, false) == NULL);
    assert (edge_auth_set_cookie ("x", "a\r\nSet-Cookie: y=1", "/", 1, false) == NULL);

    //  Key hash: SHA-256 hex
    char hex[65];
    edge_auth_key_hash ("abc", hex);
    assert (
        strcmp (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        == 0);
    printf ("OK\n");
}
