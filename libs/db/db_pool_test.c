/*  db_pool_test: the selftest of db_pool, kept in its own file so the module stays
    under the size where it should split (STYLE.md). Needs a real PostgreSQL
    (CHORUS_TEST_DATABASE_URL, see db_testing.h).                                  */
#include "core_waiter.h"
#include "db_pool.h"
#include "db_testing.h"

#include <assert.h>
#include <czmq.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t
s_test_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    int done;          //  callbacks seen
    int ok;            //  successful ones
    int failed;        //  failed ones
    char error[512];   //  last error
    char sqlstate[8];  //  last SQLSTATE
    char value[64];    //  first column of the first row of the last result
} s_tally_t;

static void
s_tally_fn (PGresult *result, const char *error, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    tally->done++;
    if (error) {
        tally->failed++;
        snprintf (tally->error, sizeof tally->error, "%s", error);
        const char *state = result ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;
        snprintf (tally->sqlstate, sizeof tally->sqlstate, "%s", state ? state : "");
        return;
    }
    tally->ok++;
    if (PQntuples (result) > 0 && PQnfields (result) > 0)
        snprintf (tally->value, sizeof tally->value, "%s", PQgetvalue (result, 0, 0));
}

typedef struct {
    int expect;  //  expected doubled value
    int *good;   //  incremented when the answer matches
    int *done;   //  incremented on every callback
} s_echo_t;

static void
s_echo_fn (PGresult *result, const char *error, void *arg)
{
    s_echo_t *echo = (s_echo_t *) arg;
    (*echo->done)++;
    if (!error && PQntuples (result) == 1
        && strtol (PQgetvalue (result, 0, 0), NULL, 10) == echo->expect)
        (*echo->good)++;
}

static bool
s_all_connected (void *arg)
{
    db_pool_t *pool = (db_pool_t *) arg;
    return db_pool_connected (pool) == db_pool_size (pool);
}

void
db_pool_test (bool verbose)
{
    printf (" * db_pool: ");
    const char *url = db_testing_url ();
    core_log_t *log = core_log_new ("db_pool_test", verbose ? "debug" : "off");
    zloop_t *loop = zloop_new ();
    assert (loop);
    core_waiter_t *waiter = core_waiter_new (loop);

    //  a private schema for this run
    char schema[64], app[64], sql[512];
    snprintf (schema, sizeof schema, "db_pool_test_%d", (int) getpid ());
    snprintf (app, sizeof app, "chorus-db-pool-test-%d", (int) getpid ());
    PGconn *admin = db_testing_connect (url);
    snprintf (sql, sizeof sql,
              "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
              "CREATE TABLE %s.items (id int PRIMARY KEY, name text NOT NULL)",
              schema, schema, schema);
    db_testing_exec (admin, sql);

    //  @selftest
    //  A pool of 3 connections answers 300 concurrent queries inside a zloop
    db_pool_config_t config = {
        .conninfo = url, .size = 3, .queue_max = 1000, .application_name = app};
    db_pool_t *pool = db_pool_new (&config, log);
    assert (pool);
    assert (db_pool_attach (pool, loop) == 0);
    int good = 0, done = 0;
    s_echo_t echoes[300];
    for (int i = 0; i < 300; i++) {
        char value[16];
        snprintf (value, sizeof value, "%d", i);
        const char *params[] = {value};
        echoes[i] = (s_echo_t){i * 2, &good, &done};
        assert (
            db_pool_query (pool, "SELECT $1::int * 2", 1, params, s_echo_fn, &echoes[i])
            == 0);
    }
    assert (core_waiter_wait_count (waiter, &done, 300, 10000));
    assert (good == 300);
    assert (db_pool_healthy (pool));
    assert (db_pool_queued (pool) == 0);

    //  A syntax error comes back as an error with the server's SQLSTATE
    s_tally_t tally = {0};
    assert (db_pool_query (pool, "SELEC 1", 0, NULL, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strcmp (tally.sqlstate, "42601") == 0);
    assert (strstr (tally.error, "syntax error"));

    //  A transaction commits, and returns its last statement's result
    char insert[128], count_sql[128];
    snprintf (insert, sizeof insert, "INSERT INTO %s.items VALUES ($1, $2)", schema);
    snprintf (count_sql, sizeof count_sql, "SELECT count(*) FROM %s.items", schema);
    const char *row1[] = {"1", "one"}, *row2[] = {"2", "two"}, *row3[] = {"3", "three"};
    db_stmt_t commit_tx[] = {{insert, 2, row1}, {insert, 2, row2}, {count_sql, 0, NULL}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx (pool, commit_tx, 3, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "2") == 0);

    //  A borrowed transaction reads the caller's text as it is when it runs; its
    //  statement array may go at once (a heap copy, freed and scribbled over)
    char *name = strdup ("four"), *id = strdup ("4");
    const char *borrowed_row[] = {id, name};
    db_stmt_t *borrowed_tx = calloc (2, sizeof (db_stmt_t));
    assert (borrowed_tx);
    borrowed_tx[0] = (db_stmt_t){insert, 2, borrowed_row};
    borrowed_tx[1] = (db_stmt_t){count_sql, 0, NULL};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx_borrowed (pool, 0, borrowed_tx, 2, NULL, 0, s_tally_fn, &tally)
            == 0);
    memset (borrowed_tx, 0xff, 2 * sizeof (db_stmt_t));
    free (borrowed_tx);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "3") == 0);
    //  A binary parameter: bytes with a NUL in them, as bytea
    const char bytes[] = {0, 1, (char) 0xff};
    const char *binary_params[] = {"x", bytes};
    db_stmt_t binary_tx[] = {
        {"SELECT $1::text || encode ($2::bytea, 'hex')", 2, binary_params}};
    db_binary_t binary = {0, 1, 3};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx_borrowed (pool, 0, binary_tx, 1, &binary, 1, s_tally_fn, &tally)
            == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "x0001ff") == 0);
    db_binary_t outside = {0, 2, 3};
    assert (db_pool_tx_borrowed (pool, 0, binary_tx, 1, &outside, 1, s_tally_fn, &tally)
            == -1);
    assert (strstr (db_pool_error (pool), "binary"));
    //  The row is there; then it goes, so that what follows counts as before
    const char *after[] = {"SELECT name FROM %s.items WHERE id = 4",
                           "DELETE FROM %s.items WHERE id = 4"};
    for (int i = 0; i < 2; i++) {
        char sql[128];
        snprintf (sql, sizeof sql, after[i], schema);
        memset (&tally, 0, sizeof tally);
        assert (db_pool_query (pool, sql, 0, NULL, s_tally_fn, &tally) == 0);
        assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
        assert (tally.ok == 1 && (i == 1 || strcmp (tally.value, "four") == 0));
    }
    free (name);
    free (id);

    //  A failing statement rolls the whole transaction back
    db_stmt_t failing_tx[] = {{insert, 2, row3}, {insert, 2, row1}, {count_sql, 0, NULL}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx (pool, failing_tx, 3, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strcmp (tally.sqlstate, "23505") == 0);
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, count_sql, 0, NULL, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "2") == 0);

    //  A transaction past its deadline fails; the server rolls it back
    const char *row9[] = {"9", "nine"};
    db_stmt_t slow_tx[] = {{insert, 2, row9}, {"SELECT pg_sleep(10)", 0, NULL}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx_timeout (pool, 200, slow_tx, 2, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strstr (tally.error, "timed out"));

    //  A query past its deadline fails fast; the connection is replaced
    memset (&tally, 0, sizeof tally);
    int64_t started = s_test_now ();
    assert (db_pool_query_timeout (pool, 200, "SELECT pg_sleep(10)", 0, NULL, s_tally_fn,
                                   &tally)
            == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strstr (tally.error, "timed out"));
    assert (s_test_now () - started < 2000);
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, "SELECT 42", 0, NULL, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "42") == 0);

    //  Kill every pool connection on the server: the pool reconnects by itself
    assert (core_waiter_wait (waiter, s_all_connected, pool, 5000));
    const char *kill_params[] = {app};
    PGresult *killed = PQexecParams (
        admin,
        "SELECT count(*) FROM (SELECT pg_terminate_backend (pid) FROM "
        "pg_stat_activity WHERE application_name = $1) AS k",
        1, NULL, kill_params, NULL, NULL, 0);
    assert (PQresultStatus (killed) == PGRES_TUPLES_OK);
    //  3, plus maybe the backend still finishing the timed-out pg_sleep
    assert (strtol (PQgetvalue (killed, 0, 0), NULL, 10) >= 3);
    PQclear (killed);
    //  queries sent on a dying connection fail with an error, never hang
    int attempts = 0;
    memset (&tally, 0, sizeof tally);
    while (tally.ok == 0 && attempts < 100) {
        attempts++;
        int before = tally.done;
        if (db_pool_query (pool, "SELECT 7", 0, NULL, s_tally_fn, &tally) == 0)
            assert (core_waiter_wait_count (waiter, &tally.done, before + 1, 5000));
        else {
            //  every connection down: refused at once until one is back
            assert (strstr (db_pool_error (pool), "unreachable"));
            core_waiter_wait (waiter, s_all_connected, pool, 100);
        }
    }
    assert (tally.ok == 1 && strcmp (tally.value, "7") == 0);
    assert (core_waiter_wait (waiter, s_all_connected, pool, 5000));
    db_pool_destroy (&pool);
    assert (pool == NULL);

    //  One connection, pipelined transactions: a statement first prepared in a
    //  transaction that fails later stays prepared for the next one; a statement
    //  whose Parse fails is the error and is prepared again when it comes back
    config.size = 1;
    pool = db_pool_new (&config, log);
    assert (pool);
    assert (db_pool_attach (pool, loop) == 0);
    char upsert[160], broken[160];
    snprintf (upsert, sizeof upsert,
              "INSERT INTO %s.items VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name "
              "= excluded.name",
              schema);
    snprintf (broken, sizeof broken, "SELECT $1::int FROM %s.no_such_table", schema);
    const char *row4[] = {"4", "four"}, *row5[] = {"5", "five"}, *one[] = {"1"};
    db_stmt_t first_tx[] = {{upsert, 2, row4}, {insert, 2, row1}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx (pool, first_tx, 2, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strcmp (tally.sqlstate, "23505") == 0);
    db_stmt_t broken_tx[] = {{upsert, 2, row4}, {broken, 1, one}, {count_sql, 0, NULL}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx (pool, broken_tx, 3, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.failed == 1 && strcmp (tally.sqlstate, "42P01") == 0);
    snprintf (sql, sizeof sql, "CREATE TABLE %s.no_such_table (x int)", schema);
    db_testing_exec (admin, sql);
    db_stmt_t second_tx[] = {
        {upsert, 2, row4}, {upsert, 2, row5}, {broken, 1, one}, {count_sql, 0, NULL}};
    memset (&tally, 0, sizeof tally);
    assert (db_pool_tx (pool, second_tx, 4, s_tally_fn, &tally) == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strcmp (tally.value, "4") == 0);
    //  and the connection is out of its transaction: a plain query commits alone
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, "SELECT count(*) FROM pg_prepared_statements", 0, NULL,
                           s_tally_fn, &tally)
            == 0);
    assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
    assert (tally.ok == 1 && strtol (tally.value, NULL, 10) >= 3);
    db_pool_destroy (&pool);

    //  The queue is bounded: over the limit a query is refused at once
    config.size = 1;
    config.queue_max = 3;
    pool = db_pool_new (&config, log);
    assert (pool);
    assert (db_pool_attach (pool, loop) == 0);
    assert (core_waiter_wait (waiter, s_all_connected, pool, 5000));
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, "SELECT pg_sleep(0.2)", 0, NULL, s_tally_fn, &tally)
            == 0);
    assert (db_pool_running (pool) == 1);
    for (int i = 0; i < 3; i++)
        assert (db_pool_query (pool, "SELECT 1", 0, NULL, s_tally_fn, &tally) == 0);
    assert (db_pool_queued (pool) == 3);
    assert (db_pool_query (pool, "SELECT 1", 0, NULL, s_tally_fn, &tally) == -1);
    assert (strstr (db_pool_error (pool), "queue full"));
    assert (core_waiter_wait_count (waiter, &tally.done, 4, 5000));
    assert (tally.ok == 4);
    db_pool_destroy (&pool);

    //  Outside zloop: poll(2) over db_pool_pollfds, db_pool_handle and db_pool_tick
    pool = db_pool_new (&config, log);
    assert (pool);
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, "SELECT 'polled'", 0, NULL, s_tally_fn, &tally) == 0);
    int64_t deadline = s_test_now () + 5000;
    while (tally.done == 0 && s_test_now () < deadline) {
        db_pollfd_t fds[8];
        size_t count = db_pool_pollfds (pool, fds, 8);
        int rc = poll (fds, count, DB_POOL_TICK_MS);
        for (size_t i = 0; rc > 0 && i < count; i++)
            if (fds[i].revents)
                db_pool_handle (pool, fds[i].fd, fds[i].revents);
        db_pool_tick (pool);
    }
    assert (tally.ok == 1 && strcmp (tally.value, "polled") == 0);
    db_pool_destroy (&pool);

    //  An unreachable server: a waiting query fails when the connection attempt
    //  fails, later ones are refused at once while the pool is down; none hang
    config.conninfo = "postgresql://chorus@127.0.0.1:1/chorus";
    config.backoff_min_ms = 500;
    pool = db_pool_new (&config, log);
    assert (pool);
    assert (db_pool_attach (pool, loop) == 0);
    memset (&tally, 0, sizeof tally);
    if (db_pool_query (pool, "SELECT 1", 0, NULL, s_tally_fn, &tally) == 0) {
        assert (core_waiter_wait_count (waiter, &tally.done, 1, 5000));
        assert (tally.failed == 1 && strstr (tally.error, "unreachable"));
    }
    assert (!db_pool_healthy (pool));
    assert (db_pool_query (pool, "SELECT 1", 0, NULL, s_tally_fn, &tally) == -1);
    assert (strstr (db_pool_error (pool), "unreachable"));
    db_pool_destroy (&pool);

    //  Queries waiting when the pool goes away fail with "pool destroyed"
    config.conninfo = url;
    pool = db_pool_new (&config, log);
    assert (pool);
    memset (&tally, 0, sizeof tally);
    assert (db_pool_query (pool, "SELECT 1", 0, NULL, s_tally_fn, &tally) == 0);
    db_pool_destroy (&pool);
    assert (tally.failed == 1 && strstr (tally.error, "destroyed"));

    //  A bad conninfo is refused
    config.conninfo = "this is not a conninfo";
    assert (db_pool_new (&config, log) == NULL);
    //  @end

    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    db_testing_exec (admin, sql);
    PQfinish (admin);
    core_waiter_destroy (&waiter);
    zloop_destroy (&loop);
    core_log_destroy (&log);
    printf ("OK\n");
}
