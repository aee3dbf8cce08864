/*  db_testing: helpers for the selftests of libs/db and of services that own tables:
    the test server's URL (CHORUS_TEST_DATABASE_URL, set by tools/chorus test), a
    blocking side connection for set-up, and a waiter that runs a zloop until a
    condition holds or a timeout passes. Not for production code paths.          */
#ifndef DB_TESTING_H_INCLUDED
#define DB_TESTING_H_INCLUDED

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct _zloop_t zloop_t;
typedef struct _db_testing_waiter_t db_testing_waiter_t;

//  The test database URL; exits with a message saying how to get one when unset.
const char *db_testing_url (void);

//  Blocking connection for test set-up; asserts that it works.
PGconn *db_testing_connect (const char *url);

//  Run sql (several statements allowed) on a set-up connection; asserts success.
void db_testing_exec (PGconn *pg, const char *sql);

//  A waiter runs loop with a 5 ms check timer.
db_testing_waiter_t *db_testing_waiter_new (zloop_t *loop);
void db_testing_waiter_destroy (db_testing_waiter_t **self_p);

//  Run the loop until pred (arg) is true or timeout_ms passes; returns pred's value.
bool db_testing_wait (db_testing_waiter_t *self, bool (*pred) (void *), void *arg,
                      int timeout_ms);

//  Run the loop until *counter >= target or timeout_ms passes.
bool db_testing_wait_count (db_testing_waiter_t *self, int *counter, int target,
                            int timeout_ms);

void db_testing_test (bool verbose);

#endif
