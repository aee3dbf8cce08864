/*  db_pool: a pool of PostgreSQL connections driven by libpq's asynchronous API, so
    that a service's loop never blocks on the database. Queries queue (up to a limit)
    when every connection is busy; each accepted query ends in exactly one callback,
    with a result or an error, and never hangs: it has a deadline, and a broken or
    timed-out connection is closed and reopened with backoff.

    Loop integration: `db_pool_attach` registers the pool in a czmq zloop. Any other
    loop (libwebsockets, poll, epoll) uses `db_pool_pollfds` each iteration to learn
    which fds to watch, `db_pool_handle` when one is ready, and `db_pool_tick` at least
    every `db_pool_tick` milliseconds. Used by every service that owns tables.    */
#ifndef DB_POOL_H_INCLUDED
#define DB_POOL_H_INCLUDED

#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "core_log.h"

typedef struct _db_pool_t db_pool_t;
typedef struct _zloop_t zloop_t;

//  Called once per accepted query or transaction. On success error is NULL and
//  result is the (last statement's) result. On failure error is a message; result is
//  the server's error result when there is one (read the SQLSTATE with
//  PQresultErrorField (result, PG_DIAG_SQLSTATE)), else NULL. The result is borrowed:
//  the pool clears it after the callback returns. The callback may submit queries;
//  it must not destroy the pool.
typedef void (db_result_fn) (PGresult *result, const char *error, void *arg);

//  Pool settings; zero fields take the defaults shown.
typedef struct {
    const char *conninfo;    //  libpq URL or key=value string (required)
    int size;                //  connections (4)
    int queue_max;           //  queries waiting for a connection (1000)
    int query_timeout_ms;    //  default deadline per query, queue wait included (30000)
    int connect_timeout_ms;  //  deadline for one connection attempt (5000)
    int backoff_min_ms;      //  first reconnect delay after a failure (100)
    int backoff_max_ms;      //  reconnect delay cap (5000)
    const char *application_name;  //  shown in pg_stat_activity ("chorus")
} db_pool_config_t;

//  One SQL statement with text parameters (NULL entries are SQL NULL), for
//  db_pool_tx. The pool copies everything it is given (db_pool_tx_borrowed: the
//  array, not the text).
typedef struct {
    const char *sql;            //  one statement, $1.. placeholders
    int nparams;                //  number of parameters
    const char *const *params;  //  parameter values as text
} db_stmt_t;

//  A parameter of db_pool_tx_borrowed given in PostgreSQL's binary format (a
//  bytea[] array, say) instead of as text: length bytes at its params entry.
typedef struct {
    size_t stmt;  //  index of the statement
    int param;    //  index of the parameter in it
    int length;   //  its bytes
} db_binary_t;

//  A descriptor the pool wants watched, in poll(2) terms.
typedef struct pollfd db_pollfd_t;

//  Create a pool and start connecting (without blocking). Returns NULL when the
//  configuration is invalid (logged).
db_pool_t *db_pool_new (const db_pool_config_t *config, core_log_t *log);

//  Close every connection and fail every pending query with "pool destroyed".
void db_pool_destroy (db_pool_t **self_p);

//  Drive the pool from a czmq zloop: fd pollers and one timer. Returns 0 or -1.
int db_pool_attach (db_pool_t *self, zloop_t *loop) __attribute__ ((warn_unused_result));

//  Remove the pool's pollers and timer from the loop it is attached to.
void db_pool_detach (db_pool_t *self);

//  Submit a query with the default timeout. Returns 0 when accepted (fn will be
//  called exactly once, later, from the loop), or -1 when refused at once (queue
//  full, bad arguments): fn is not called and db_pool_error() says why.
int db_pool_query (db_pool_t *self, const char *sql, int nparams,
                   const char *const *params, db_result_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  Same, with a deadline of timeout_ms (queue wait included).
int db_pool_query_timeout (db_pool_t *self, int timeout_ms, const char *sql, int nparams,
                           const char *const *params, db_result_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  Run count statements in order on one connection inside BEGIN .. COMMIT; on any
//  error ROLLBACK and report it. fn gets the last statement's result. Returns as
//  db_pool_query.
int db_pool_tx (db_pool_t *self, const db_stmt_t *stmts, size_t count, db_result_fn *fn,
                void *arg) __attribute__ ((warn_unused_result));

//  Same, with a deadline of timeout_ms for the whole transaction.
int db_pool_tx_timeout (db_pool_t *self, int timeout_ms, const db_stmt_t *stmts,
                        size_t count, db_result_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  Same, but the pool keeps pointers to the statements' text and parameters, not
//  copies: they must stay as they are until fn has run (or the call returned -1).
//  The db_stmt_t array itself may go once this returns. The binary_count
//  parameters binary names are sent in binary format.
int db_pool_tx_borrowed (db_pool_t *self, int timeout_ms, const db_stmt_t *stmts,
                         size_t count, const db_binary_t *binary, size_t binary_count,
                         db_result_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  Why the last db_pool_query / db_pool_tx was refused (borrowed).
const char *db_pool_error (db_pool_t *self);

//  True when at least one connection is open.
bool db_pool_healthy (db_pool_t *self);

//  Number of open connections, queries waiting, queries running.
size_t db_pool_connected (db_pool_t *self);
size_t db_pool_queued (db_pool_t *self);
size_t db_pool_running (db_pool_t *self);
//  Connections the pool keeps (its configured size).
size_t db_pool_size (db_pool_t *self);

//  Loop-agnostic driving. Fill fds (up to max) with the descriptors to watch and
//  return how many; ask again after every call into the pool, fds change.
size_t db_pool_pollfds (db_pool_t *self, db_pollfd_t *fds, size_t max);

//  Tell the pool fd is ready; revents in poll(2) terms (POLLIN, POLLOUT, POLLERR..).
void db_pool_handle (db_pool_t *self, int fd, short revents);

//  Run deadlines and reconnects; call at least every DB_POOL_TICK_MS.
void db_pool_tick (db_pool_t *self);
#define DB_POOL_TICK_MS 50

void db_pool_test (bool verbose);

#endif
