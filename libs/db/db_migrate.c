/*  db_migrate: numbered SQL migrations applied at service start (see db_migrate.h).
    This is the one place in libs/db that blocks: it runs before the loop starts.  */
#include "db_migrate.h"
#include "db_testing.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_FILES 10000
#define S_MAX_FILE_SIZE (16 * 1024 * 1024)

typedef struct {
    int version;        //  NNN
    char *name;         //  file name
    char *path;         //  full path
    char *sql;          //  content
    char checksum[65];  //  hex SHA-256 of the content
} s_file_t;

static int s_fail (char **error, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
static int
s_fail (char **error, const char *format, ...)
{
    char buf[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (buf, sizeof buf, format, args);
    va_end (args);
    size_t len = strlen (buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = 0;
    if (error) {
        free (*error);
        *error = strdup (buf);
        assert (*error);
    }
    return -1;
}

static bool
s_schema_valid (const char *schema)
{
    if (!schema || !*schema || strlen (schema) > 63)
        return false;
    if (!(islower ((unsigned char) schema[0]) || schema[0] == '_'))
        return false;
    for (const char *c = schema; *c; c++)
        if (!(islower ((unsigned char) *c) || isdigit ((unsigned char) *c) || *c == '_'))
            return false;
    return true;
}

//  Parse "NNN_name.sql"; returns the version, 0 for a non-.sql file, -1 when the
//  name of a .sql file is malformed.
static int
s_parse_name (const char *name)
{
    size_t len = strlen (name);
    if (len < 4 || strcmp (name + len - 4, ".sql") != 0)
        return 0;
    const char *c = name;
    long version = 0;
    while (isdigit ((unsigned char) *c)) {
        version = version * 10 + (*c - '0');
        if (version > 1000000)
            return -1;
        c++;
    }
    if (c == name || *c != '_' || version < 1)
        return -1;
    for (c++; c < name + len - 4; c++)
        if (!(isalnum ((unsigned char) *c) || *c == '_' || *c == '-'))
            return -1;
    return (int) version;
}

static char *
s_read_file (const char *path, char **error)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        s_fail (error, "cannot open %s: %s", path, strerror (errno));
        return NULL;
    }
    //  Room for the file as it is now, and one byte more to notice it grew
    struct stat info;
    size_t room = fstat (fileno (file), &info) == 0 && info.st_size >= 0
                          && info.st_size <= S_MAX_FILE_SIZE
                      ? (size_t) info.st_size + 1
                      : S_MAX_FILE_SIZE + 1;
    char *data = malloc (room + 1);
    assert (data);
    size_t size = fread (data, 1, room, file);
    bool failed = ferror (file) || (size == room && room <= S_MAX_FILE_SIZE);
    fclose (file);
    if (failed || size > S_MAX_FILE_SIZE || memchr (data, 0, size)) {
        s_fail (error, "cannot read %s (unreadable, over %d bytes, or binary)", path,
                S_MAX_FILE_SIZE);
        free (data);
        return NULL;
    }
    data[size] = 0;
    return data;
}

static int
s_compare_files (const void *a, const void *b)
{
    return ((const s_file_t *) a)->version - ((const s_file_t *) b)->version;
}

static void
s_files_free (s_file_t *files, int count)
{
    for (int i = 0; i < count; i++) {
        free (files[i].name);
        free (files[i].path);
        free (files[i].sql);
    }
    free (files);
}

//  Load dir's migration files, sorted, checking versions run 1..N with no gap.
static int
s_load_dir (const char *dir, s_file_t **files_p, int *count_p, char **error)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return s_fail (error, "cannot open migrations directory %s: %s", dir,
                       strerror (errno));
    s_file_t *files = NULL;
    int count = 0, rc = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        int version = s_parse_name (entry->d_name);
        if (version == 0)
            continue;
        if (version < 0) {
            rc = s_fail (error, "bad migration file name %s/%s (want NNN_name.sql)", dir,
                         entry->d_name);
            break;
        }
        if (count == S_MAX_FILES) {
            rc = s_fail (error, "too many migration files in %s", dir);
            break;
        }
        files = realloc (files, (size_t) (count + 1) * sizeof (s_file_t));
        assert (files);
        s_file_t *file = &files[count++];
        memset (file, 0, sizeof *file);
        file->version = version;
        file->name = strdup (entry->d_name);
        size_t size = strlen (dir) + strlen (entry->d_name) + 2;
        file->path = malloc (size);
        assert (file->name && file->path);
        snprintf (file->path, size, "%s/%s", dir, entry->d_name);
        file->sql = s_read_file (file->path, error);
        if (!file->sql) {
            rc = -1;
            break;
        }
    }
    closedir (handle);
    if (rc == 0 && count > 0) {
        qsort (files, (size_t) count, sizeof (s_file_t), s_compare_files);
        for (int i = 0; i < count && rc == 0; i++)
            if (files[i].version != i + 1)
                rc = s_fail (error,
                             "migrations in %s: %s has version %d, expected %d "
                             "(versions start at 1 with no gap or duplicate)",
                             dir, files[i].name, files[i].version, i + 1);
    }
    if (rc) {
        s_files_free (files, count);
        return -1;
    }
    *files_p = files;
    *count_p = count;
    return 0;
}

//  Run a statement; returns the result when it succeeded, else NULL with *error.
static PGresult *
s_exec (PGconn *pg, const char *sql, int nparams, const char *const *params, char **error)
{
    PGresult *result = PQexecParams (pg, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus (result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return result;
    s_fail (error, "%s", result ? PQresultErrorMessage (result) : PQerrorMessage (pg));
    PQclear (result);
    return NULL;
}

static bool
s_run (PGconn *pg, const char *sql, int nparams, const char *const *params, char **error)
{
    PGresult *result = s_exec (pg, sql, nparams, params, error);
    PQclear (result);
    return result != NULL;
}

static void
s_notice (void *arg, const char *message)
{
    core_log_t *log = (core_log_t *) arg;
    core_log_debug (log, NULL, "db_migrate: %s", message);
}

//  The work, with the connection open and the lock held.
static int
s_migrate (PGconn *pg, const char *schema, s_file_t *files, int count, core_log_t *log,
           char **error)
{
    char sql[512];
    snprintf (sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
    if (!s_run (pg, sql, 0, NULL, error))
        return -1;
    snprintf (sql, sizeof sql,
              "CREATE TABLE IF NOT EXISTS \"%s\".schema_migrations ("
              "version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
              "applied_at timestamptz NOT NULL DEFAULT now ())",
              schema);
    if (!s_run (pg, sql, 0, NULL, error))
        return -1;
    //  checksums, computed by the server so that nothing else needs a hash
    for (int i = 0; i < count; i++) {
        const char *params[] = {files[i].sql};
        PGresult *result = s_exec (
            pg, "SELECT encode (sha256 (convert_to ($1, 'UTF8')), 'hex')", 1, params,
            error);
        if (!result)
            return s_fail (error, "checksum of %s: %s", files[i].name, *error);
        snprintf (files[i].checksum, sizeof files[i].checksum, "%s",
                  PQgetvalue (result, 0, 0));
        PQclear (result);
    }
    snprintf (
        sql, sizeof sql,
        "SELECT version, name, checksum FROM \"%s\".schema_migrations ORDER BY version",
        schema);
    PGresult *applied = s_exec (pg, sql, 0, NULL, error);
    if (!applied)
        return -1;
    int rows = PQntuples (applied);
    int rc = 0;
    for (int row = 0; row < rows && rc == 0; row++) {
        long version = strtol (PQgetvalue (applied, row, 0), NULL, 10);
        if (version < 1 || version > count)
            rc = s_fail (error,
                         "schema %s has migration %ld (%s) applied but no such file; "
                         "refusing to run",
                         schema, version, PQgetvalue (applied, row, 1));
        else if (strcmp (files[version - 1].checksum, PQgetvalue (applied, row, 2)) != 0)
            rc = s_fail (error,
                         "migration %s was changed after it was applied to schema %s "
                         "(checksum differs); add a new migration instead",
                         files[version - 1].name, schema);
        else if (version != row + 1)
            rc = s_fail (error, "schema %s: applied migrations have a gap before %ld",
                         schema, version);
    }
    PQclear (applied);
    if (rc)
        return -1;
    int applied_now = 0;
    for (int i = rows; i < count; i++) {
        s_file_t *file = &files[i];
        core_log_info (log, NULL, "db_migrate: applying %s to schema %s", file->name,
                       schema);
        snprintf (sql, sizeof sql, "SET LOCAL search_path TO \"%s\", public", schema);
        if (!s_run (pg, "BEGIN", 0, NULL, error))
            return -1;
        bool ok = s_run (pg, sql, 0, NULL, error);
        if (ok) {
            //  simple protocol: a file may hold several statements
            PGresult *result = PQexec (pg, file->sql);
            ExecStatusType status = PQresultStatus (result);
            ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
                 || status == PGRES_EMPTY_QUERY;
            if (!ok)
                s_fail (error, "%s",
                        result ? PQresultErrorMessage (result) : PQerrorMessage (pg));
            PQclear (result);
        }
        if (ok) {
            char version[16];
            snprintf (version, sizeof version, "%d", file->version);
            const char *params[] = {version, file->name, file->checksum};
            snprintf (sql, sizeof sql,
                      "INSERT INTO \"%s\".schema_migrations (version, name, checksum) "
                      "VALUES ($1, $2, $3)",
                      schema);
            ok = s_run (pg, sql, 3, params, error)
                 && s_run (pg, "COMMIT", 0, NULL, error);
        }
        if (!ok) {
            char *cause = *error;
            *error = NULL;
            PQclear (PQexec (pg, "ROLLBACK"));
            s_fail (error, "migration %s failed: %s", file->path, cause ? cause : "?");
            free (cause);
            return -1;
        }
        applied_now++;
    }
    return applied_now;
}

int
db_migrate_run (const char *conninfo, const char *schema, const char *dir,
                core_log_t *log, char **error)
{
    assert (log);
    if (error)
        *error = NULL;
    char *local_error = NULL;
    if (!error)
        error = &local_error;
    if (!conninfo || !dir)
        return s_fail (error, "db_migrate: conninfo and dir are required");
    if (!s_schema_valid (schema))
        return s_fail (error, "bad schema name '%s' (want [a-z_][a-z0-9_]*, at most 63)",
                       schema ? schema : "");
    s_file_t *files = NULL;
    int count = 0;
    if (s_load_dir (dir, &files, &count, error))
        return -1;
    PGconn *pg = PQconnectdb (conninfo);
    if (!pg || PQstatus (pg) != CONNECTION_OK) {
        s_fail (error, "cannot connect to the database: %s",
                pg ? PQerrorMessage (pg) : "?");
        PQfinish (pg);
        s_files_free (files, count);
        return -1;
    }
    PQsetNoticeProcessor (pg, s_notice, log);
    char key[128];
    snprintf (key, sizeof key, "chorus.migrate.%s", schema);
    const char *params[] = {key};
    int rc = -1;
    if (s_run (pg, "SELECT pg_advisory_lock (hashtextextended ($1, 0))", 1, params,
               error)) {
        rc = s_migrate (pg, schema, files, count, log, error);
        char *unlock_error = NULL;
        if (!s_run (pg, "SELECT pg_advisory_unlock (hashtextextended ($1, 0))", 1, params,
                    &unlock_error))
            core_log_warn (log, NULL, "db_migrate: unlock: %s", unlock_error);
        free (unlock_error);
    }
    PQfinish (pg);
    s_files_free (files, count);
    if (rc >= 0)
        core_log_info (log, NULL,
                       "db_migrate: schema %s up to date (%d applied, %d total)", schema,
                       rc, count);
    else
        core_log_error (log, NULL, "db_migrate: schema %s: %s", schema, *error);
    free (local_error);
    return rc;
}

//  --------------------------------------------------------------------------
//  Selftest: needs a real server in CHORUS_TEST_DATABASE_URL.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *url;     //  database
    const char *schema;  //  target schema
    const char *dir;     //  migrations
    core_log_t *log;     //  shared logger
    int rc;              //  db_migrate_run's answer
} s_runner_t;

static void *
s_runner (void *arg)
{
    s_runner_t *runner = (s_runner_t *) arg;
    char *error = NULL;
    runner->rc = db_migrate_run (runner->url, runner->schema, runner->dir, runner->log,
                                 &error);
    if (runner->rc < 0)
        fprintf (stderr, "db_migrate_test runner: %s\n", error);
    free (error);
    return NULL;
}

static void
s_write_file (const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "w");
    assert (file);
    fputs (content, file);
    fclose (file);
}

static long
s_query_long (PGconn *pg, const char *sql)
{
    PGresult *result = PQexec (pg, sql);
    assert (PQresultStatus (result) == PGRES_TUPLES_OK);
    long value = strtol (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);
    return value;
}

void
db_migrate_test (bool verbose)
{
    printf (" * db_migrate: ");
    const char *url = db_testing_url ();
    core_log_t *log = core_log_new ("db_migrate_test", verbose ? "debug" : "off");
    PGconn *admin = db_testing_connect (url);
    char schema[64], schema2[64], sql[512];
    snprintf (schema, sizeof schema, "db_migrate_test_%d", (int) getpid ());
    snprintf (schema2, sizeof schema2, "db_migrate_test2_%d", (int) getpid ());
    snprintf (sql, sizeof sql,
              "DROP SCHEMA IF EXISTS %s CASCADE; DROP SCHEMA IF EXISTS %s CASCADE",
              schema, schema2);
    PQclear (PQexec (admin, sql));
    const char *fixtures = DB_TESTDATA_DIR "/migrations";

    //  @selftest
    //  Four replicas start together: each file is applied exactly once
    s_runner_t runners[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        runners[i] = (s_runner_t){url, schema, fixtures, log, -2};
        assert (pthread_create (&threads[i], NULL, s_runner, &runners[i]) == 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join (threads[i], NULL);
        assert (runners[i].rc >= 0);
        total += runners[i].rc;
    }
    assert (total == 2);
    snprintf (sql, sizeof sql, "SELECT count(*) FROM %s.notes", schema);
    assert (s_query_long (admin, sql) == 1);
    snprintf (sql, sizeof sql, "SELECT count(*) FROM %s.schema_migrations", schema);
    assert (s_query_long (admin, sql) == 2);

    //  Running again applies nothing
    char *error = NULL;
    assert (db_migrate_run (url, schema, fixtures, log, &error) == 0);
    assert (error == NULL);

    //  A changed applied file, a gap, a failing file and a bad name are refused
    char dir[] = "/tmp/db_migrate_test.XXXXXX";
    assert (mkdtemp (dir));
    s_write_file (dir, "001_init.sql", "CREATE TABLE t (id int PRIMARY KEY);");
    s_write_file (dir, "README.md", "not a migration");
    assert (db_migrate_run (url, schema2, dir, log, &error) == 1);
    s_write_file (dir, "001_init.sql", "CREATE TABLE t (id bigint PRIMARY KEY);");
    assert (db_migrate_run (url, schema2, dir, log, &error) == -1);
    assert (error && strstr (error, "checksum"));
    free (error);
    error = NULL;
    s_write_file (dir, "001_init.sql", "CREATE TABLE t (id int PRIMARY KEY);");
    s_write_file (dir, "003_later.sql", "SELECT 1;");
    assert (db_migrate_run (url, schema2, dir, log, &error) == -1);
    assert (error && strstr (error, "gap"));
    free (error);
    error = NULL;
    char path[512];
    snprintf (path, sizeof path, "%s/003_later.sql", dir);
    unlink (path);
    s_write_file (dir, "002_broken.sql",
                  "INSERT INTO t VALUES (1); CREATE TABLE oops (;");
    assert (db_migrate_run (url, schema2, dir, log, &error) == -1);
    assert (error && strstr (error, "002_broken.sql") && strstr (error, "syntax"));
    free (error);
    error = NULL;
    snprintf (sql, sizeof sql, "SELECT count(*) FROM %s.t", schema2);
    assert (s_query_long (admin, sql) == 0);  //  rolled back
    s_write_file (dir, "002_broken.sql", "INSERT INTO t VALUES (1);");
    assert (db_migrate_run (url, schema2, dir, log, &error) == 1);
    assert (s_query_long (admin, sql) == 1);
    s_write_file (dir, "3_bad name.sql", "SELECT 1;");
    assert (db_migrate_run (url, schema2, dir, log, &error) == -1);
    assert (error && strstr (error, "bad migration file name"));
    free (error);
    error = NULL;
    assert (db_migrate_run (url, "Robert'); DROP", dir, log, &error) == -1);
    assert (error && strstr (error, "bad schema name"));
    free (error);
    error = NULL;
    assert (db_migrate_run ("postgresql://nobody@127.0.0.1:1/x", schema2, fixtures, log,
                            &error)
            == -1);
    assert (error && strstr (error, "cannot connect"));
    free (error);
    error = NULL;
    //  @end

    const char *names[] = {"001_init.sql", "002_broken.sql", "3_bad name.sql",
                           "README.md"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        unlink (path);
    }
    rmdir (dir);
    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE; DROP SCHEMA %s CASCADE", schema,
              schema2);
    PQclear (PQexec (admin, sql));
    PQfinish (admin);
    core_log_destroy (&log);
    printf ("OK\n");
}
