/*  auth_jwt_tool: issue and verify Chorus access JWTs from the command line, for
    tests against other JWT libraries and for debugging. The key comes from the
    environment: AUTH_JWT_KID (default "k1") and AUTH_JWT_SECRET (32+ bytes).

      auth_jwt_tool issue ISS AUD SUB TID ROLE   prints a token
      auth_jwt_tool verify ISS AUD                reads a token on stdin, prints
                                                  the claims as JSON (exit 0) or
                                                  the error name (exit 1)      */
#include "auth_jwt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Read at most a little more than AUTH_JWT_MAX_SIZE bytes of stdin, without a
//  trailing newline, so oversized tokens reach the verifier as they are.
static char *
s_read_token (void)
{
    size_t size = AUTH_JWT_MAX_SIZE * 2;
    char *token = malloc (size + 1);
    if (!token)
        return NULL;
    size_t len = fread (token, 1, size, stdin);
    while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
        len--;
    token[len] = '\0';
    return token;
}

//  Print the usage and return the exit code for it.
static int
s_usage (void)
{
    fprintf (stderr, "usage: auth_jwt_tool issue ISS AUD SUB TID ROLE\n"
                     "       auth_jwt_tool verify ISS AUD < token\n"
                     "environment: AUTH_JWT_SECRET (32+ bytes), AUTH_JWT_KID\n");
    return 2;
}

int
main (int argc, char **argv)
{
    const char *secret = getenv ("AUTH_JWT_SECRET");
    const char *kid = getenv ("AUTH_JWT_KID");
    if (!kid)
        kid = "k1";
    if (argc < 4 || !secret)
        return s_usage ();
    bool issue = strcmp (argv[1], "issue") == 0;
    if ((issue && argc != 7)
        || (!issue && (strcmp (argv[1], "verify") != 0 || argc != 4)))
        return s_usage ();
    auth_jwt_t *jwt = auth_jwt_new (argv[2], argv[3]);
    if (auth_jwt_add_key (jwt, kid, secret, strlen (secret)) == -1) {
        fprintf (stderr, "auth_jwt_tool: bad AUTH_JWT_KID or AUTH_JWT_SECRET\n");
        auth_jwt_destroy (&jwt);
        return 2;
    }
    int rc = 0;
    char error[128];
    if (issue) {
        auth_jwt_claims_t claims = {.role = auth_role_parse (argv[6])};
        snprintf (claims.sub, sizeof claims.sub, "%s", argv[4]);
        snprintf (claims.tid, sizeof claims.tid, "%s", argv[5]);
        char *token = auth_jwt_issue (jwt, &claims, (int64_t) time (NULL), error,
                                      sizeof error);
        if (token)
            printf ("%s\n", token);
        else {
            fprintf (stderr, "auth_jwt_tool: %s\n", error);
            rc = 1;
        }
        free (token);
    }
    else {
        char *token = s_read_token ();
        auth_jwt_claims_t claims;
        auth_jwt_error_t code = auth_jwt_verify (jwt, token, (int64_t) time (NULL),
                                                 &claims, error, sizeof error);
        if (code == AUTH_JWT_OK) {
            json_t *json = json_pack (
                "{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "sub", claims.sub, "tid",
                claims.tid, "role", auth_role_name (claims.role), "exp",
                (json_int_t) claims.exp, "iat", (json_int_t) claims.iat, "jti",
                claims.jti, "kid", claims.kid);
            char *text = json ? json_dumps (json, JSON_SORT_KEYS) : NULL;
            printf ("%s\n", text ? text : "{}");
            free (text);
            json_decref (json);
        }
        else {
            printf ("%s\n", auth_jwt_error_name (code));
            fprintf (stderr, "auth_jwt_tool: %s\n", error);
            rc = 1;
        }
        free (token);
    }
    auth_jwt_destroy (&jwt);
    return rc;
}
