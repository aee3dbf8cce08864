/*  db_testing: selftest helpers for code that talks to PostgreSQL (see db_testing.h). */
#include "db_testing.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

const char *
db_testing_url (void)
{
    const char *url = getenv ("CHORUS_TEST_DATABASE_URL");
    if (!url || !*url) {
        fprintf (stderr,
                 "\nCHORUS_TEST_DATABASE_URL is not set: these tests need a real "
                 "PostgreSQL. Run them through `tools/chorus test`, or start one with "
                 "tools/dev/postgres start and export CHORUS_TEST_DATABASE_URL=<the "
                 "URL it prints>.\n");
        exit (1);
    }
    return url;
}

PGconn *
db_testing_connect (const char *url)
{
    PGconn *pg = PQconnectdb (url);
    assert (pg);
    if (PQstatus (pg) != CONNECTION_OK) {
        fprintf (stderr, "db_testing: cannot connect to %s: %s", url,
                 PQerrorMessage (pg));
        assert (false);
    }
    db_testing_exec (pg, "SET client_min_messages = warning");
    return pg;
}

void
db_testing_exec (PGconn *pg, const char *sql)
{
    PGresult *result = PQexec (pg, sql);
    ExecStatusType status = PQresultStatus (result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fprintf (stderr, "db_testing: %s: %s", sql, PQresultErrorMessage (result));
        assert (false);
    }
    PQclear (result);
}

void
db_testing_test (bool verbose)
{
    printf (" * db_testing: ");
    //  @selftest
    PGconn *pg = db_testing_connect (db_testing_url ());
    db_testing_exec (pg, "CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1)");
    PQfinish (pg);
    //  @end
    printf ("OK\n");
}
