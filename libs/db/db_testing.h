/*  db_testing: helpers for the selftests of libs/db and of services that own tables:
    the test server's URL (CHORUS_TEST_DATABASE_URL, set by tools/chorus test), a
    blocking side connection for set-up (core_waiter runs a loop until a condition
    holds). Not for production code paths.          */
#ifndef DB_TESTING_H_INCLUDED
#define DB_TESTING_H_INCLUDED

#include <libpq-fe.h>
#include <stdbool.h>

//  The test database URL; exits with a message saying how to get one when unset.
const char *db_testing_url (void);

//  Blocking connection for test set-up; asserts that it works.
PGconn *db_testing_connect (const char *url);

//  Run sql (several statements allowed) on a set-up connection; asserts success.
void db_testing_exec (PGconn *pg, const char *sql);

void db_testing_test (bool verbose);

#endif
