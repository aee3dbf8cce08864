/*  core_config: option tables read from the environment, validated at start.     */
#include "core_config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const core_config_option_t core_config_common[] = {
    {"brokers", "CHORUS_BROKERS", CORE_CONFIG_STRING, 0, 0, "tcp://127.0.0.1:7100",
     "Comma-separated request endpoints of every broker; a broker's event endpoints "
     "are the next two ports (or <endpoint>-events-in/-out for ipc and inproc)"},
    {"log_level", "CHORUS_LOG_LEVEL", CORE_CONFIG_STRING, 0, 0, "info",
     "debug, info, warn, error or off"},
    {"heartbeat_ms", "CHORUS_HEARTBEAT_MS", CORE_CONFIG_INT, 50, 60000, "500",
     "Bus heartbeat interval in milliseconds"},
    {"heartbeat_liveness", "CHORUS_HEARTBEAT_LIVENESS", CORE_CONFIG_INT, 2, 100, "4",
     "Missed heartbeats before a bus peer is declared dead"},
    {"database_url", "CHORUS_DATABASE_URL", CORE_CONFIG_STRING, 0, 0, "",
     "PostgreSQL connection string (empty: services that need it report unhealthy)"},
    {"database_pool", "CHORUS_DATABASE_POOL", CORE_CONFIG_INT, 1, 64, "2",
     "PostgreSQL connections per service replica"},
    {"database_queue", "CHORUS_DATABASE_QUEUE", CORE_CONFIG_INT, 10, 1000000, "20000",
     "Queries a service replica keeps waiting for a PostgreSQL connection, and events "
     "waiting for their outbox transaction (past it: unavailable)"},
    {"redis_url", "CHORUS_REDIS_URL", CORE_CONFIG_STRING, 0, 0, "",
     "Redis URL, redis://host:port[/db] (empty: no Redis)"},
    {"request_timeout_ms", "CHORUS_REQUEST_TIMEOUT_MS", CORE_CONFIG_INT, 10, 3600000,
     "30000", "Default deadline of a bus request when the caller sets none"},
    {"max_message", "CHORUS_MAX_MESSAGE", CORE_CONFIG_INT, 1024, 268435456, "16777216",
     "Largest bus message in bytes (ZMQ_MAXMSGSIZE)"},
    {"hwm", "CHORUS_HWM", CORE_CONFIG_INT, 100, 10000000, "10000",
     "High-water mark of every bus socket, in messages"},
    {"secret_key", "CHORUS_SECRET_KEY", CORE_CONFIG_STRING, 0, 0, "",
     "Master key: base64 of 32 random bytes; encrypts secrets at rest and, when "
     "CHORUS_JWT_SECRET (HS256) or CHORUS_JWT_PRIVATE_KEY (EdDSA) is empty, derives "
     "the access-token key"},
    {"jwt_algorithm", "CHORUS_JWT_ALGORITHM", CORE_CONFIG_STRING, 0, 0, "HS256",
     "Algorithm of access tokens, the only one accepted: HS256 (shared secret) or "
     "EdDSA (Ed25519: verifiers need only public keys)"},
    {"jwt_secret", "CHORUS_JWT_SECRET", CORE_CONFIG_STRING, 0, 0, "",
     "HS256 secret of access tokens, 32..512 bytes of text (empty: derived from "
     "CHORUS_SECRET_KEY)"},
    {"jwt_previous_secrets", "CHORUS_JWT_PREVIOUS_SECRETS", CORE_CONFIG_STRING, 0, 0, "",
     "Comma-separated former JWT secrets: tokens they signed still verify (rotation)"},
    {"jwt_private_key", "CHORUS_JWT_PRIVATE_KEY", CORE_CONFIG_STRING, 0, 0, "",
     "EdDSA: base64 of the 32-byte Ed25519 seed that signs access tokens (empty: "
     "derived from CHORUS_SECRET_KEY)"},
    {"jwt_public_keys", "CHORUS_JWT_PUBLIC_KEYS", CORE_CONFIG_STRING, 0, 0, "",
     "EdDSA: comma-separated base64 Ed25519 public keys that verify access tokens "
     "(all a verifier without the private key needs)"},
    {"jwt_previous_public_keys", "CHORUS_JWT_PREVIOUS_PUBLIC_KEYS", CORE_CONFIG_STRING, 0,
     0, "",
     "EdDSA: comma-separated base64 public keys of former signing keys: tokens they "
     "signed still verify (rotation)"},
    {"jwt_issuer", "CHORUS_JWT_ISSUER", CORE_CONFIG_STRING, 0, 0, "chorus",
     "iss claim of access tokens, issued and required"},
    {"jwt_audience", "CHORUS_JWT_AUDIENCE", CORE_CONFIG_STRING, 0, 0, "chorus-api",
     "aud claim of access tokens, issued and required"},
    {"jwt_ttl_s", "CHORUS_JWT_TTL_S", CORE_CONFIG_INT, 60, 86400, "900",
     "Lifetime of an access token in seconds"},
};
const size_t core_config_common_count = sizeof core_config_common
                                        / sizeof core_config_common[0];

typedef struct {
    const core_config_option_t *option;  //  declaration
    char *text;                          //  current value as text
    int64_t number;                      //  parsed value for ints and bools
} s_value_t;

struct _core_config_t {
    s_value_t *values;  //  one per option, common ones first
    size_t count;       //  number of values
};

static char *
s_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *out = NULL;
    if (vasprintf (&out, format, args) < 0)
        out = NULL;
    va_end (args);
    return out;
}

//  Parse text for one option into value; on error set *error.
static int
s_parse (s_value_t *value, const char *text, char **error)
{
    const core_config_option_t *opt = value->option;
    int64_t number = 0;
    if (opt->type == CORE_CONFIG_INT) {
        char *end = NULL;
        errno = 0;
        long long parsed = strtoll (text, &end, 10);
        if (errno || end == text || *end) {
            if (error)
                *error = s_format ("%s: '%s' is not an integer", opt->env, text);
            return -1;
        }
        if (parsed < opt->min || parsed > opt->max) {
            if (error)
                *error = s_format ("%s: %lld is outside %lld..%lld", opt->env, parsed,
                                   (long long) opt->min, (long long) opt->max);
            return -1;
        }
        number = parsed;
    }
    else if (opt->type == CORE_CONFIG_BOOL) {
        if (!strcmp (text, "1") || !strcmp (text, "true") || !strcmp (text, "yes")
            || !strcmp (text, "on"))
            number = 1;
        else if (!strcmp (text, "0") || !strcmp (text, "false") || !strcmp (text, "no")
                 || !strcmp (text, "off") || !*text)
            number = 0;
        else {
            if (error)
                *error = s_format ("%s: '%s' is not a boolean (true/false)", opt->env,
                                   text);
            return -1;
        }
    }
    char *copy = strdup (text);
    assert (copy);
    free (value->text);
    value->text = copy;
    value->number = number;
    return 0;
}

core_config_t *
core_config_new (const core_config_option_t *table, size_t count, char **error)
{
    core_config_t *self = calloc (1, sizeof (core_config_t));
    assert (self);
    self->count = core_config_common_count + count;
    self->values = calloc (self->count, sizeof (s_value_t));
    assert (self->values);
    for (size_t i = 0; i < self->count; i++) {
        s_value_t *value = &self->values[i];
        value->option = i < core_config_common_count
                            ? &core_config_common[i]
                            : &table[i - core_config_common_count];
        const char *text = getenv (value->option->env);
        if (!text)
            text = value->option->fallback;
        if (!text) {
            if (error)
                *error = s_format ("%s is required: %s", value->option->env,
                                   value->option->help);
            core_config_destroy (&self);
            return NULL;
        }
        if (s_parse (value, text, error)) {
            core_config_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
core_config_destroy (core_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    core_config_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free (self->values[i].text);
    free (self->values);
    free (self);
    *self_p = NULL;
}

static s_value_t *
s_find (core_config_t *self, const char *name)
{
    //  The program's own table comes last, so it may override a common option
    for (size_t i = self->count; i-- > 0;)
        if (strcmp (self->values[i].option->name, name) == 0)
            return &self->values[i];
    return NULL;
}

int
core_config_set (core_config_t *self, const char *name, const char *value, char **error)
{
    s_value_t *slot = s_find (self, name);
    if (!slot) {
        if (error)
            *error = s_format ("unknown option '%s'", name);
        return -1;
    }
    return s_parse (slot, value, error);
}

const char *
core_config_str (core_config_t *self, const char *name)
{
    s_value_t *slot = s_find (self, name);
    assert (slot);
    return slot->text;
}

int64_t
core_config_int (core_config_t *self, const char *name)
{
    s_value_t *slot = s_find (self, name);
    assert (slot && slot->option->type != CORE_CONFIG_STRING);
    return slot->number;
}

bool
core_config_bool (core_config_t *self, const char *name)
{
    return core_config_int (self, name) != 0;
}

static const char *
s_type_name (core_config_type_t type)
{
    return type == CORE_CONFIG_INT ? "int" : type == CORE_CONFIG_BOOL ? "bool" : "string";
}

static void
s_print_rows (const core_config_option_t *table, size_t count, FILE *out, bool markdown)
{
    for (size_t i = 0; i < count; i++) {
        const core_config_option_t *opt = &table[i];
        char bounds[64] = "";
        if (opt->type == CORE_CONFIG_INT)
            snprintf (bounds, sizeof bounds, " %lld..%lld", (long long) opt->min,
                      (long long) opt->max);
        if (markdown)
            fprintf (out, "| `%s` | %s%s | `%s` | %s |\n", opt->env,
                     s_type_name (opt->type), bounds,
                     opt->fallback ? opt->fallback : "(required)", opt->help);
        else
            fprintf (out, "  %-28s %s%s, default '%s'\n      %s\n", opt->env,
                     s_type_name (opt->type), bounds,
                     opt->fallback ? opt->fallback : "(required)", opt->help);
    }
}

void
core_config_print_help (const char *program, const core_config_option_t *table,
                        size_t count, FILE *out)
{
    fprintf (out, "%s: configured by environment variables\n\n", program);
    s_print_rows (core_config_common, core_config_common_count, out, false);
    s_print_rows (table, count, out, false);
}

void
core_config_print_markdown (const core_config_option_t *table, size_t count, FILE *out)
{
    s_print_rows (table, count, out, true);
}

bool
core_config_handle_args (int argc, char **argv, const char *program,
                         const core_config_option_t *table, size_t count)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
            core_config_print_help (program, table, count, stdout);
            return true;
        }
        if (!strcmp (argv[i], "--config-markdown")) {
            core_config_print_markdown (table, count, stdout);
            return true;
        }
    }
    return false;
}

void
core_config_test (bool verbose)
{
    printf (" * core_config: ");
    static const core_config_option_t table[] = {
        {"port", "CHORUS_TEST_PORT", CORE_CONFIG_INT, 1, 65535, "8080", "port"},
        {"flag", "CHORUS_TEST_FLAG", CORE_CONFIG_BOOL, 0, 0, "false", "flag"},
        {"name", "CHORUS_TEST_NAME", CORE_CONFIG_STRING, 0, 0, "x", "name"},
    };
    char *error = NULL;
    unsetenv ("CHORUS_TEST_PORT");
    setenv ("CHORUS_TEST_FLAG", "yes", 1);
    core_config_t *config = core_config_new (table, 3, &error);
    assert (config && !error);
    assert (core_config_int (config, "port") == 8080);
    assert (core_config_bool (config, "flag"));
    assert (strcmp (core_config_str (config, "name"), "x") == 0);
    assert (core_config_int (config, "heartbeat_ms") > 0);
    assert (core_config_set (config, "port", "70000", &error) == -1);
    assert (error && strstr (error, "CHORUS_TEST_PORT"));
    free (error);
    error = NULL;
    assert (core_config_int (config, "port") == 8080);
    assert (core_config_set (config, "port", "9", &error) == 0);
    assert (core_config_int (config, "port") == 9);
    core_config_destroy (&config);
    core_config_destroy (&config);

    setenv ("CHORUS_TEST_PORT", "12ab", 1);
    config = core_config_new (table, 3, &error);
    assert (!config);
    assert (error && strstr (error, "CHORUS_TEST_PORT") && strstr (error, "12ab"));
    if (verbose)
        printf ("%s ", error);
    free (error);
    unsetenv ("CHORUS_TEST_PORT");
    unsetenv ("CHORUS_TEST_FLAG");
    printf ("OK\n");
}
