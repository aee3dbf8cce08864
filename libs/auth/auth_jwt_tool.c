/*  auth_jwt_tool: issue and verify Chorus access JWTs from the command line, for
    tests against other JWT libraries and for debugging. With issue/verify the key
    is HS256, from AUTH_JWT_KID (default "k1") and AUTH_JWT_SECRET (32+ bytes); with
    the config-* commands it is the configured key set (auth_keys:
    CHORUS_JWT_ALGORITHM, CHORUS_JWT_SECRET or CHORUS_SECRET_KEY,
    CHORUS_JWT_PREVIOUS_SECRETS, CHORUS_JWT_PRIVATE_KEY, CHORUS_JWT_PUBLIC_KEYS,
    CHORUS_JWT_PREVIOUS_PUBLIC_KEYS, CHORUS_JWT_ISSUER/AUDIENCE).

      auth_jwt_tool issue ISS AUD SUB TID ROLE [SID]   prints a token
      auth_jwt_tool verify ISS AUD               reads a token on stdin, prints
                                                 the claims as JSON (exit 0) or
                                                 the error name (exit 1)
      auth_jwt_tool config-issue SUB TID ROLE [SID]
      auth_jwt_tool config-verify < token
      auth_jwt_tool config-secret                prints the HS256 secret that signs
      auth_jwt_tool config-jwks                  prints the EdDSA public keys as a
                                                 JWKS document (exit 1 with HS256)
                                                                                 */
#include "auth_jwt.h"
#include "auth_keys.h"

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
    fprintf (stderr, "usage: auth_jwt_tool issue ISS AUD SUB TID ROLE [SID]\n"
                     "       auth_jwt_tool verify ISS AUD < token\n"
                     "       auth_jwt_tool config-issue SUB TID ROLE [SID]\n"
                     "       auth_jwt_tool config-verify < token\n"
                     "       auth_jwt_tool config-secret\n"
                     "       auth_jwt_tool config-jwks\n"
                     "environment: AUTH_JWT_SECRET (32+ bytes), AUTH_JWT_KID for "
                     "issue/verify; CHORUS_JWT_* and CHORUS_SECRET_KEY for config-*\n");
    return 2;
}

//  Issue a token for sub, tid, role and sid (may be NULL); prints it. Exit code.
static int
s_issue (auth_jwt_t *jwt, char **args, int count)
{
    auth_jwt_claims_t claims = {.role = auth_role_parse (args[2])};
    snprintf (claims.sub, sizeof claims.sub, "%s", args[0]);
    snprintf (claims.tid, sizeof claims.tid, "%s", args[1]);
    if (count == 4)
        snprintf (claims.sid, sizeof claims.sid, "%s", args[3]);
    char error[128];
    char *token = auth_jwt_issue (jwt, &claims, (int64_t) time (NULL), error,
                                  sizeof error);
    if (!token) {
        fprintf (stderr, "auth_jwt_tool: %s\n", error);
        return 1;
    }
    printf ("%s\n", token);
    free (token);
    return 0;
}

//  Verify the token on stdin; prints the claims or the error name. Exit code.
static int
s_verify (auth_jwt_t *jwt)
{
    char *token = s_read_token ();
    auth_jwt_claims_t claims;
    char error[128];
    auth_jwt_error_t code = auth_jwt_verify (jwt, token, (int64_t) time (NULL), &claims,
                                             error, sizeof error);
    free (token);
    if (code != AUTH_JWT_OK) {
        printf ("%s\n", auth_jwt_error_name (code));
        fprintf (stderr, "auth_jwt_tool: %s\n", error);
        return 1;
    }
    json_t *json = json_pack (
        "{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "sub", claims.sub, "tid", claims.tid,
        "role", auth_role_name (claims.role), "exp", (json_int_t) claims.exp, "iat",
        (json_int_t) claims.iat, "jti", claims.jti, "kid", claims.kid, "sid", claims.sid);
    char *text = json ? json_dumps (json, JSON_SORT_KEYS) : NULL;
    printf ("%s\n", text ? text : "{}");
    free (text);
    json_decref (json);
    return 0;
}

//  The config-* commands: the key set from the CHORUS_* environment.
static int
s_config_command (int argc, char **argv)
{
    const char *command = argv[1];
    bool issue = strcmp (command, "config-issue") == 0;
    bool verify = strcmp (command, "config-verify") == 0;
    bool secret = strcmp (command, "config-secret") == 0;
    bool jwks = strcmp (command, "config-jwks") == 0;
    if ((issue && argc != 5 && argc != 6) || ((verify || secret || jwks) && argc != 2)
        || !(issue || verify || secret || jwks))
        return s_usage ();
    char *error = NULL;
    core_config_t *config = core_config_new (NULL, 0, &error);
    if (!config) {
        fprintf (stderr, "auth_jwt_tool: %s\n", error);
        free (error);
        return 2;
    }
    int rc = 0;
    if (secret) {
        char text[AUTH_JWT_SECRET_MAX + 1];
        rc = auth_keys_secret (config, text, sizeof text, &error) ? 2 : 0;
        if (rc == 0)
            printf ("%s\n", text);
    }
    else {
        auth_jwt_t *jwt = auth_keys_jwt_new (config, &error);
        if (!jwt)
            rc = 2;
        else if (issue)
            rc = s_issue (jwt, argv + 2, argc - 2);
        else if (jwks) {
            char *text = auth_jwt_jwks (jwt);
            if (text)
                printf ("%s\n", text);
            else
                fprintf (stderr, "auth_jwt_tool: HS256 keys are never published\n");
            rc = text ? 0 : 1;
            free (text);
        }
        else
            rc = s_verify (jwt);
        auth_jwt_destroy (&jwt);
    }
    if (error)
        fprintf (stderr, "auth_jwt_tool: %s\n", error);
    free (error);
    core_config_destroy (&config);
    return rc;
}

int
main (int argc, char **argv)
{
    if (argc >= 2 && strncmp (argv[1], "config-", 7) == 0)
        return s_config_command (argc, argv);
    const char *secret = getenv ("AUTH_JWT_SECRET");
    const char *kid = getenv ("AUTH_JWT_KID");
    if (!kid)
        kid = "k1";
    if (argc < 4 || !secret)
        return s_usage ();
    bool issue = strcmp (argv[1], "issue") == 0;
    if ((issue && argc != 7 && argc != 8)
        || (!issue && (strcmp (argv[1], "verify") != 0 || argc != 4)))
        return s_usage ();
    auth_jwt_t *jwt = auth_jwt_new (argv[2], argv[3]);
    if (auth_jwt_add_key (jwt, kid, secret, strlen (secret)) == -1) {
        fprintf (stderr, "auth_jwt_tool: bad AUTH_JWT_KID or AUTH_JWT_SECRET\n");
        auth_jwt_destroy (&jwt);
        return 2;
    }
    int rc = issue ? s_issue (jwt, argv + 4, argc - 4) : s_verify (jwt);
    auth_jwt_destroy (&jwt);
    return rc;
}
