/*  db_pool: asynchronous PostgreSQL connection pool (see db_pool.h).

    Each connection is a small state machine: DOWN (waiting for its reconnect time),
    CONNECTING (PQconnectPoll), IDLE, BUSY (one job in flight). A job is one query, or
    a transaction (BEGIN, statements, COMMIT) run statement by statement on one
    connection. Jobs wait in a bounded FIFO when no connection is idle.

    Timeouts: PQcancel opens a new connection synchronously and would block the loop,
    so a job past its deadline fails at once and its connection is closed and
    reopened (no backoff). The server notices the closed socket within a second, as
    every connection sets client_connection_check_interval, and rolls back.

    Prepared statements: the first time a connection runs a statement with
    parameters it prepares it (Parse once, under a name of its own), then executes
    the prepared one, then and every later time, so PostgreSQL parses and plans
    the services' few hundred statements once per connection instead of on every
    call. A failed prepare is the statement's error. At most S_PREPARED_MAX per
    connection; past that, statements run unnamed as before.

    Transactions are pipelined (libpq pipeline mode): BEGIN, every statement (with
    the Parse of those not yet prepared) and COMMIT go out at once, followed by one
    Sync, so a transaction costs one round trip, and the row locks it takes (the
    outbox counter's, say) are held only while the server runs it, not across the
    round trips to us. The first failing statement's error is the job's; the server
    skips the rest, COMMIT included, and a transaction block left open or failed
    is rolled back before the connection is idle again.                          */
#include "db_pool.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { S_DOWN, S_CONNECTING, S_IDLE, S_BUSY } s_state_t;

#define S_PREPARED_MAX 1024  //  statements prepared per connection

typedef struct {
    char *sql;      //  statement text
    int nparams;    //  parameter count
    char **params;  //  parameter copies, NULL entries for SQL NULL
    int *formats;   //  1 for a binary parameter (borrowed only), or NULL: all text
    int *lengths;   //  bytes of the binary ones, or NULL
} s_stmt_t;

typedef struct _s_job_t s_job_t;
struct _s_job_t {
    s_stmt_t *stmts;         //  statements to run in order
    size_t count;            //  number of statements
    size_t next;             //  index of the statement to send next
    bool tx;                 //  wrapped in BEGIN/COMMIT (stmts include them)
    bool borrowed;           //  stmts point at the caller's text, not copies
    bool rolling_back;       //  ROLLBACK sent after an error
    PGresult *result;        //  result kept for the callback
    char *error;             //  error to report (tx: saved before ROLLBACK)
    PGresult *error_result;  //  server error result matching error
    int64_t deadline;        //  monotonic ms
    int timeout_ms;          //  for the message
    db_result_fn *fn;        //  callback
    void *arg;               //  callback argument
    s_job_t *next_job;       //  queue link
};

//  One command of a pipelined transaction, in the order its results come.
typedef struct {
    size_t stmt;   //  the job's statement it belongs to
    bool prepare;  //  the statement's Parse (its Execute is the next piece)
} s_piece_t;

typedef struct {
    db_pool_t *pool;           //  owner
    int index;                 //  position in the pool, for logs
    s_state_t state;           //  see above
    PGconn *pg;                //  libpq connection, NULL when DOWN
    bool want_read;            //  poll for input
    bool want_write;           //  poll for output (connect or pending flush)
    int64_t retry_at;          //  DOWN: when to reconnect
    int64_t connect_deadline;  //  CONNECTING: give up then
    int backoff_ms;            //  next reconnect delay after a failure
    s_job_t *job;              //  BUSY: job in flight
    PGresult *pending;         //  BUSY: latest result of the running statement
    int reg_fd;                //  fd registered in zloop, -1 when none
    int reg_events;            //  ZMQ_POLLIN/OUT registered
    zhashx_t *prepared;        //  statement text -> its name on this connection
    bool preparing;            //  BUSY: the running statement's Parse is in flight
    uint64_t names;            //  prepared statement names used on this session
    s_piece_t *pieces;         //  BUSY, pipelined: the commands sent, or NULL
    size_t piece_count;        //  how many
    size_t piece_at;           //  the one whose results come next
} s_conn_t;

struct _db_pool_t {
    core_log_t *log;         //  borrowed logger
    char **keywords;         //  connection keywords for PQconnectStartParams
    char **values;           //  and their values
    int size;                //  connections
    int queue_max;           //  queue limit
    int query_timeout_ms;    //  default per-query deadline
    int connect_timeout_ms;  //  per attempt
    int backoff_min_ms;      //  first backoff
    int backoff_max_ms;      //  backoff cap
    s_conn_t *conns;         //  size connections
    s_job_t *head;           //  queue front
    s_job_t *tail;           //  queue back
    size_t queued;           //  jobs in queue
    zloop_t *loop;           //  attached zloop or NULL
    int timer_id;            //  zloop timer
    char error[600];         //  last refusal
    char down_reason[512];   //  last connection failure
};

static int64_t
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_job_destroy (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job)
        return;
    for (size_t i = 0; i < job->count; i++) {
        if (!job->borrowed) {
            free (job->stmts[i].sql);
            for (int p = 0; p < job->stmts[i].nparams; p++)
                free (job->stmts[i].params[p]);
        }
        free (job->stmts[i].params);
        free (job->stmts[i].formats);
        free (job->stmts[i].lengths);
    }
    free (job->stmts);
    PQclear (job->result);
    PQclear (job->error_result);
    free (job->error);
    free (job);
    *job_p = NULL;
}

//  Set a job's statement to copies of the text given, or (borrow) to the text
//  itself.
static void
s_stmt_set (s_stmt_t *dest, const char *sql, int nparams, const char *const *params,
            bool borrow)
{
    dest->sql = borrow ? (char *) sql : strdup (sql);
    assert (dest->sql);
    dest->nparams = nparams;
    dest->params = nparams ? calloc ((size_t) nparams, sizeof (char *)) : NULL;
    assert (!nparams || dest->params);
    for (int p = 0; p < nparams; p++)
        if (params[p]) {
            dest->params[p] = borrow ? (char *) params[p] : strdup (params[p]);
            assert (dest->params[p]);
        }
}

//  Call the job's callback once and free the job.
static void
s_job_finish (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (job->error)
        job->fn (job->error_result, job->error, job->arg);
    else
        job->fn (job->result, NULL, job->arg);
    s_job_destroy (job_p);
}

static void s_job_set_error (s_job_t *job, PGresult *result, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
static void
s_job_set_error (s_job_t *job, PGresult *result, const char *format, ...)
{
    if (job->error) {  //  keep the first error, drop later ones
        PQclear (result);
        return;
    }
    char buf[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (buf, sizeof buf, format, args);
    va_end (args);
    //  libpq messages end with newlines; callers log them on one line
    size_t len = strlen (buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = 0;
    job->error = strdup (buf);
    assert (job->error);
    job->error_result = result;
}

static void s_dispatch (db_pool_t *self);
static void s_sync_pollers (db_pool_t *self);
static int s_on_fd (zloop_t *loop, zmq_pollitem_t *item, void *arg);
static bool s_pool_live (db_pool_t *self);

//  Close the connection; a failure backs off, a deliberate close reconnects soon.
static void
s_conn_close (s_conn_t *conn, bool failure)
{
    db_pool_t *pool = conn->pool;
    if (pool->loop && conn->reg_fd >= 0) {
        zmq_pollitem_t item = {NULL, conn->reg_fd, 0, 0};
        zloop_poller_end (pool->loop, &item);
        conn->reg_fd = -1;
        conn->reg_events = 0;
    }
    PQclear (conn->pending);
    conn->pending = NULL;
    if (conn->pg) {
        PQfinish (conn->pg);
        conn->pg = NULL;
    }
    //  A new session knows none of them
    zhashx_purge (conn->prepared);
    conn->preparing = false;
    conn->names = 0;
    free (conn->pieces);
    conn->pieces = NULL;
    conn->piece_count = conn->piece_at = 0;
    conn->state = S_DOWN;
    conn->want_read = conn->want_write = false;
    if (failure) {
        conn->retry_at = s_now () + conn->backoff_ms;
        conn->backoff_ms *= 2;
        if (conn->backoff_ms > pool->backoff_max_ms)
            conn->backoff_ms = pool->backoff_max_ms;
    }
    else
        conn->retry_at = s_now ();
}

//  The connection broke: fail its job (if any) and schedule a reconnect.
static void
s_conn_broken (s_conn_t *conn, const char *why)
{
    db_pool_t *pool = conn->pool;
    char reason[512];
    snprintf (reason, sizeof reason, "%s", why && *why ? why : "connection lost");
    size_t len = strlen (reason);
    while (len && (reason[len - 1] == '\n' || reason[len - 1] == ' '))
        reason[--len] = 0;
    //  warn once per outage, not on every failed retry
    if (conn->state != S_CONNECTING || conn->backoff_ms == pool->backoff_min_ms)
        core_log_warn (pool->log, NULL, "db_pool: connection %d lost: %s", conn->index,
                       reason);
    else
        core_log_debug (pool->log, NULL, "db_pool: connection %d retry failed: %s",
                        conn->index, reason);
    snprintf (pool->down_reason, sizeof pool->down_reason, "%s", reason);
    s_job_t *job = conn->job;
    conn->job = NULL;
    s_conn_close (conn, true);
    if (job) {
        s_job_set_error (job, NULL, "database connection lost: %s", reason);
        s_job_finish (&job);
    }
    //  nothing open and nothing connecting: waiting jobs would only time out
    if (!s_pool_live (pool))
        while (pool->head) {
            s_job_t *waiting = pool->head;
            pool->head = waiting->next_job;
            if (!pool->head)
                pool->tail = NULL;
            pool->queued--;
            s_job_set_error (waiting, NULL, "database unreachable: %s", reason);
            s_job_finish (&waiting);
        }
}

//  True when some connection is open or trying to open.
static bool
s_pool_live (db_pool_t *self)
{
    for (int i = 0; i < self->size; i++)
        if (self->conns[i].state != S_DOWN)
            return true;
    return false;
}

static void
s_notice (void *arg, const char *message)
{
    s_conn_t *conn = (s_conn_t *) arg;
    core_log_debug (conn->pool->log, NULL, "db_pool: notice: %s", message);
}

static void
s_conn_start (s_conn_t *conn)
{
    db_pool_t *pool = conn->pool;
    conn->pg = PQconnectStartParams ((const char *const *) pool->keywords,
                                     (const char *const *) pool->values, 1);
    if (!conn->pg || PQstatus (conn->pg) == CONNECTION_BAD) {
        s_conn_broken (conn, conn->pg ? PQerrorMessage (conn->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor (conn->pg, s_notice, conn);
    conn->state = S_CONNECTING;
    conn->connect_deadline = s_now () + pool->connect_timeout_ms;
    //  PQconnectStart behaves as if PGRES_POLLING_WRITING was returned
    conn->want_read = false;
    conn->want_write = true;
}

//  Advance a connection attempt.
static void
s_conn_poll_connect (s_conn_t *conn)
{
    PostgresPollingStatusType status = PQconnectPoll (conn->pg);
    if (status == PGRES_POLLING_FAILED) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    if (status == PGRES_POLLING_OK) {
        if (PQsetnonblocking (conn->pg, 1) != 0) {
            s_conn_broken (conn, PQerrorMessage (conn->pg));
            return;
        }
        conn->state = S_IDLE;
        conn->backoff_ms = conn->pool->backoff_min_ms;
        conn->want_read = true;
        conn->want_write = false;
        core_log_debug (conn->pool->log, NULL, "db_pool: connection %d open",
                        conn->index);
        return;
    }
    conn->want_read = status == PGRES_POLLING_READING;
    conn->want_write = status == PGRES_POLLING_WRITING;
}

//  Flush output; returns -1 when the connection broke.
static int
s_conn_flush (s_conn_t *conn)
{
    int rc = PQflush (conn->pg);
    if (rc < 0) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return -1;
    }
    conn->want_write = rc == 1;
    return 0;
}

//  Send the job's next statement.
static void
s_conn_send (s_conn_t *conn)
{
    s_job_t *job = conn->job;
    const char *sql;
    int nparams = 0;
    const char *const *params = NULL;
    const int *lengths = NULL, *formats = NULL;
    if (job->rolling_back)
        sql = "ROLLBACK";
    else {
        s_stmt_t *stmt = &job->stmts[job->next];
        sql = stmt->sql;
        nparams = stmt->nparams;
        params = (const char *const *) stmt->params;
        lengths = stmt->lengths;
        formats = stmt->formats;
    }
    //  Statements with parameters run prepared (see the top)
    const char *name = nparams ? (const char *) zhashx_lookup (conn->prepared, sql)
                               : NULL;
    int sent;
    if (name)
        sent = PQsendQueryPrepared (conn->pg, name, nparams, params, lengths, formats, 0);
    else if (nparams && zhashx_size (conn->prepared) < S_PREPARED_MAX) {
        char fresh[24];
        snprintf (fresh, sizeof fresh, "chorus_%" PRIu64, conn->names + 1);
        sent = PQsendPrepare (conn->pg, fresh, sql, nparams, NULL);
        conn->preparing = true;
    }
    else
        sent = PQsendQueryParams (conn->pg, sql, nparams, NULL, params, lengths, formats,
                                  0);
    if (!sent) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    s_conn_flush (conn);
}

//  Keep result as the latest of the running statement (the statement's answer
//  is its last); COPY is not supported: the connection is dropped, true then.
static bool
s_conn_keep (s_conn_t *conn, PGresult *result)
{
    ExecStatusType status = PQresultStatus (result);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT
        || status == PGRES_COPY_BOTH) {
        PQclear (result);
        s_conn_broken (conn, "COPY is not supported by db_pool");
        return true;
    }
    PQclear (conn->pending);
    conn->pending = result;
    return false;
}

//  Send a whole transaction as one pipeline (see the top).
static void
s_conn_send_pipeline (s_conn_t *conn)
{
    s_job_t *job = conn->job;
    if (!PQenterPipelineMode (conn->pg)) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    conn->pieces = calloc (job->count * 2, sizeof (s_piece_t));
    assert (conn->pieces);
    conn->piece_count = conn->piece_at = 0;
    for (size_t i = 0; i < job->count; i++) {
        s_stmt_t *stmt = &job->stmts[i];
        const char *const *params = (const char *const *) stmt->params;
        const char *name = stmt->nparams
                               ? (const char *) zhashx_lookup (conn->prepared, stmt->sql)
                               : NULL;
        int sent = 1;
        if (!name && stmt->nparams && zhashx_size (conn->prepared) < S_PREPARED_MAX) {
            //  known from now on, so a repeat in this transaction runs it; forgotten
            //  again when its Parse fails or is skipped
            char *fresh = zsys_sprintf ("chorus_%" PRIu64, ++conn->names);
            assert (fresh);
            zhashx_insert (conn->prepared, stmt->sql, fresh);
            name = fresh;
            sent = PQsendPrepare (conn->pg, name, stmt->sql, stmt->nparams, NULL);
            conn->pieces[conn->piece_count++] = (s_piece_t){i, true};
        }
        if (sent && name)
            sent = PQsendQueryPrepared (conn->pg, name, stmt->nparams, params,
                                        stmt->lengths, stmt->formats, 0);
        else if (sent)
            sent = PQsendQueryParams (conn->pg, stmt->sql, stmt->nparams, NULL, params,
                                      stmt->lengths, stmt->formats, 0);
        if (!sent) {
            s_conn_broken (conn, PQerrorMessage (conn->pg));
            return;
        }
        conn->pieces[conn->piece_count++] = (s_piece_t){i, false};
    }
    if (!PQpipelineSync (conn->pg)) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    s_conn_flush (conn);
}

//  The next command of the pipeline ended with result (NULL: the server skipped it).
static void
s_piece_done (s_conn_t *conn, PGresult *result)
{
    s_job_t *job = conn->job;
    s_piece_t *piece = &conn->pieces[conn->piece_at++];
    s_stmt_t *stmt = &job->stmts[piece->stmt];
    ExecStatusType status = result ? PQresultStatus (result) : PGRES_PIPELINE_ABORTED;
    bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
              || status == PGRES_EMPTY_QUERY;
    if (piece->prepare && !ok)
        zhashx_delete (conn->prepared, stmt->sql);
    if (ok && !piece->prepare && piece->stmt == job->count - 2) {
        //  the transaction's last user statement
        PQclear (job->result);
        job->result = result;
        return;
    }
    if (!ok && status != PGRES_PIPELINE_ABORTED) {
        const char *message = PQresultErrorMessage (result);
        s_job_set_error (job, result, "%s", *message ? message : PQresStatus (status));
        return;
    }
    PQclear (result);
}

//  The pipeline's Sync came back: every command has answered.
static void
s_conn_pipeline_end (s_conn_t *conn)
{
    s_job_t *job = conn->job;
    while (conn->piece_at < conn->piece_count)
        s_piece_done (conn, NULL);
    free (conn->pieces);
    conn->pieces = NULL;
    conn->piece_count = conn->piece_at = 0;
    if (!PQexitPipelineMode (conn->pg)) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    if (PQtransactionStatus (conn->pg) != PQTRANS_IDLE) {
        //  a failed statement left the block open (its COMMIT was skipped)
        if (!job->error)
            s_job_set_error (job, NULL, "the transaction did not commit");
        job->rolling_back = true;
        s_conn_send (conn);
        return;
    }
    conn->job = NULL;
    conn->state = S_IDLE;
    s_job_finish (&job);
}

//  Read a pipelined transaction's results as they come.
static void
s_conn_read_pipeline (s_conn_t *conn)
{
    while (conn->state == S_BUSY && conn->pieces && !PQisBusy (conn->pg)) {
        PGresult *result = PQgetResult (conn->pg);
        if (result && PQresultStatus (result) == PGRES_PIPELINE_SYNC) {
            PQclear (result);
            PQclear (conn->pending);
            conn->pending = NULL;
            s_conn_pipeline_end (conn);
            return;
        }
        if (result) {
            if (s_conn_keep (conn, result))
                return;
            continue;
        }
        //  one command's results are complete
        PGresult *last = conn->pending;
        conn->pending = NULL;
        if (conn->piece_at < conn->piece_count)
            s_piece_done (conn, last);
        else
            PQclear (last);
    }
}

//  The Parse of the running statement ended with result: remember its name and
//  run it, or (failed) let it be the statement's error. false when it failed.
static bool
s_conn_prepared (s_conn_t *conn, PGresult *result)
{
    conn->preparing = false;
    if (!result || PQresultStatus (result) != PGRES_COMMAND_OK)
        return false;
    PQclear (result);
    s_stmt_t *stmt = &conn->job->stmts[conn->job->next];
    char *name = zsys_sprintf ("chorus_%" PRIu64, ++conn->names);
    assert (name);
    zhashx_insert (conn->prepared, stmt->sql, name);
    s_conn_send (conn);
    return true;
}

//  A statement of the job completed with conn->job->result (kept) as its result.
//  Returns true when the whole job is done (conn is then IDLE and job detached).
static bool
s_conn_statement_done (s_conn_t *conn, PGresult *result)
{
    s_job_t *job = conn->job;
    if (job->rolling_back) {
        PQclear (result);
        return true;
    }
    ExecStatusType status = result ? PQresultStatus (result) : PGRES_FATAL_ERROR;
    bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
              || status == PGRES_EMPTY_QUERY;
    if (!ok) {
        const char *message = result ? PQresultErrorMessage (result) : "";
        if (!*message)
            message = PQresStatus (status);
        s_job_set_error (job, result, "%s", message);
        if (job->tx && job->next > 0) {
            //  BEGIN ran: roll back before handing the connection back
            job->rolling_back = true;
            return false;
        }
        return true;
    }
    if (!job->tx || job->next == job->count - 2) {
        //  plain query, or the transaction's last user statement
        PQclear (job->result);
        job->result = result;
    }
    else
        PQclear (result);
    job->next++;
    return job->next == job->count;
}

//  Read whatever the server sent; complete statements and jobs.
static void
s_conn_read (s_conn_t *conn)
{
    if (!PQconsumeInput (conn->pg)) {
        s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    if (conn->state == S_IDLE) {
        //  nothing expected: drain (a FATAL before the server closes, say)
        PGresult *stray;
        while (!PQisBusy (conn->pg) && (stray = PQgetResult (conn->pg)))
            PQclear (stray);
        if (PQstatus (conn->pg) == CONNECTION_BAD)
            s_conn_broken (conn, PQerrorMessage (conn->pg));
        return;
    }
    if (conn->pieces) {
        s_conn_read_pipeline (conn);
        return;
    }
    //  BUSY: collect results until libpq returns NULL (statement complete)
    while (conn->state == S_BUSY && !PQisBusy (conn->pg)) {
        PGresult *result = PQgetResult (conn->pg);
        if (result) {
            if (s_conn_keep (conn, result))
                return;
            continue;
        }
        //  statement complete
        PGresult *last = conn->pending;
        conn->pending = NULL;
        if (conn->preparing && s_conn_prepared (conn, last))
            return;
        if (s_conn_statement_done (conn, last)) {
            s_job_t *job = conn->job;
            conn->job = NULL;
            conn->state = S_IDLE;
            s_job_finish (&job);
            return;
        }
        s_conn_send (conn);
        return;
    }
}

static void
s_conn_handle (s_conn_t *conn, bool readable, bool writable)
{
    if (conn->state == S_CONNECTING) {
        s_conn_poll_connect (conn);
        return;
    }
    if (conn->state != S_IDLE && conn->state != S_BUSY)
        return;
    if (writable && conn->want_write && s_conn_flush (conn) < 0)
        return;
    if (readable)
        s_conn_read (conn);
}

//  Hand queued jobs to idle connections.
static void
s_dispatch (db_pool_t *self)
{
    for (int i = 0; i < self->size && self->head; i++) {
        s_conn_t *conn = &self->conns[i];
        if (conn->state != S_IDLE)
            continue;
        s_job_t *job = self->head;
        self->head = job->next_job;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
        job->next_job = NULL;
        conn->job = job;
        conn->state = S_BUSY;
        if (job->tx)
            s_conn_send_pipeline (conn);
        else
            s_conn_send (conn);
        //  a send failure already failed the job; try the next connection
    }
}

//  Keep zloop pollers in step with what each connection wants.
static void
s_sync_pollers (db_pool_t *self)
{
    if (!self->loop)
        return;
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        int fd = conn->pg && conn->state != S_DOWN ? PQsocket (conn->pg) : -1;
        int events = (conn->want_read ? ZMQ_POLLIN : 0)
                     | (conn->want_write ? ZMQ_POLLOUT : 0);
        if (fd < 0)
            events = 0;
        if (fd == conn->reg_fd && events == conn->reg_events)
            continue;
        if (conn->reg_fd >= 0) {
            zmq_pollitem_t old = {NULL, conn->reg_fd, 0, 0};
            zloop_poller_end (self->loop, &old);
            conn->reg_fd = -1;
            conn->reg_events = 0;
        }
        if (fd >= 0 && events) {
            zmq_pollitem_t item = {NULL, fd, (short) events, 0};
            if (zloop_poller (self->loop, &item, s_on_fd, conn) == 0) {
                zloop_poller_set_tolerant (self->loop, &item);
                conn->reg_fd = fd;
                conn->reg_events = events;
            }
            else
                core_log_error (self->log, NULL, "db_pool: zloop_poller failed on fd %d",
                                fd);
        }
    }
}

//  After every entry: start due reconnects, dispatch, update pollers.
static void
s_settle (db_pool_t *self)
{
    s_dispatch (self);
    s_sync_pollers (self);
}

void
db_pool_tick (db_pool_t *self)
{
    assert (self);
    int64_t now = s_now ();
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        if (conn->state == S_DOWN && now >= conn->retry_at)
            s_conn_start (conn);
        else if (conn->state == S_CONNECTING && now >= conn->connect_deadline)
            s_conn_broken (conn, "connect timed out");
        else if (conn->state == S_BUSY && now >= conn->job->deadline) {
            s_job_t *job = conn->job;
            conn->job = NULL;
            core_log_warn (self->log, NULL,
                           "db_pool: query timed out after %d ms; closing connection %d",
                           job->timeout_ms, conn->index);
            s_conn_close (conn, false);
            s_job_set_error (job, NULL, "query timed out after %d ms", job->timeout_ms);
            s_job_finish (&job);
        }
    }
    //  expire queued jobs (FIFO with mixed timeouts: scan the whole queue)
    s_job_t *prev = NULL, *job = self->head;
    while (job) {
        s_job_t *next = job->next_job;
        if (now >= job->deadline) {
            if (prev)
                prev->next_job = next;
            else
                self->head = next;
            if (self->tail == job)
                self->tail = prev;
            self->queued--;
            s_job_set_error (
                job, NULL, "query timed out after %d ms waiting for a connection%s",
                job->timeout_ms, db_pool_healthy (self) ? "" : " (database unreachable)");
            s_job_finish (&job);
            //  the callback may have queued more; restart the scan safely
            prev = NULL;
            job = self->head;
            continue;
        }
        prev = job;
        job = next;
    }
    s_settle (self);
}

static int
s_on_fd (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_conn_t *conn = (s_conn_t *) arg;
    bool readable = (item->revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0;
    bool writable = (item->revents & (ZMQ_POLLOUT | ZMQ_POLLERR)) != 0;
    s_conn_handle (conn, readable, writable);
    s_settle (conn->pool);
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    db_pool_tick ((db_pool_t *) arg);
    return 0;
}

db_pool_t *
db_pool_new (const db_pool_config_t *config, core_log_t *log)
{
    assert (config);
    assert (log);
    if (!config->conninfo) {
        core_log_error (log, NULL, "db_pool: no conninfo");
        return NULL;
    }
    char *errmsg = NULL;
    PQconninfoOption *parsed = PQconninfoParse (config->conninfo, &errmsg);
    if (!parsed) {
        size_t len = errmsg ? strlen (errmsg) : 0;
        if (len && errmsg[len - 1] == '\n')
            errmsg[len - 1] = 0;
        core_log_error (log, NULL, "db_pool: bad conninfo: %s", errmsg ? errmsg : "?");
        PQfreemem (errmsg);
        return NULL;
    }
    const char *user_options = NULL;
    for (PQconninfoOption *o = parsed; o->keyword; o++)
        if (strcmp (o->keyword, "options") == 0 && o->val)
            user_options = o->val;

    db_pool_t *self = calloc (1, sizeof (db_pool_t));
    assert (self);
    self->log = log;
    self->size = config->size > 0 ? config->size : 4;
    self->queue_max = config->queue_max > 0 ? config->queue_max : 1000;
    self->query_timeout_ms = config->query_timeout_ms > 0 ? config->query_timeout_ms
                                                          : 30000;
    self->connect_timeout_ms = config->connect_timeout_ms > 0 ? config->connect_timeout_ms
                                                              : 5000;
    self->backoff_min_ms = config->backoff_min_ms > 0 ? config->backoff_min_ms : 100;
    self->backoff_max_ms = config->backoff_max_ms > 0 ? config->backoff_max_ms : 5000;
    if (self->backoff_max_ms < self->backoff_min_ms)
        self->backoff_max_ms = self->backoff_min_ms;

    //  dbname (expanded as the conninfo), then our overrides
    char options[512];
    snprintf (options, sizeof options, "%s%s-c client_connection_check_interval=1000",
              user_options ? user_options : "", user_options ? " " : "");
    PQconninfoFree (parsed);
    const char *keys[] = {"dbname", "options", "fallback_application_name", NULL};
    const char *vals[] = {config->conninfo, options,
                          config->application_name ? config->application_name : "chorus",
                          NULL};
    self->keywords = calloc (4, sizeof (char *));
    self->values = calloc (4, sizeof (char *));
    assert (self->keywords && self->values);
    for (int i = 0; keys[i]; i++) {
        self->keywords[i] = strdup (keys[i]);
        self->values[i] = strdup (vals[i]);
        assert (self->keywords[i] && self->values[i]);
    }
    if (config->application_name) {
        free (self->keywords[2]);
        self->keywords[2] = strdup ("application_name");
        assert (self->keywords[2]);
    }
    self->conns = calloc ((size_t) self->size, sizeof (s_conn_t));
    assert (self->conns);
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        conn->pool = self;
        conn->index = i;
        conn->state = S_DOWN;
        conn->reg_fd = -1;
        conn->backoff_ms = self->backoff_min_ms;
        conn->retry_at = 0;
        conn->prepared = zhashx_new ();
        zhashx_set_destructor (conn->prepared, (zhashx_destructor_fn *) zstr_free);
        s_conn_start (conn);
    }
    return self;
}

void
db_pool_destroy (db_pool_t **self_p)
{
    assert (self_p);
    db_pool_t *self = *self_p;
    if (!self)
        return;
    db_pool_detach (self);
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        s_job_t *job = conn->job;
        conn->job = NULL;
        s_conn_close (conn, false);
        zhashx_destroy (&conn->prepared);
        if (job) {
            s_job_set_error (job, NULL, "pool destroyed");
            s_job_finish (&job);
        }
    }
    while (self->head) {
        s_job_t *job = self->head;
        self->head = job->next_job;
        s_job_set_error (job, NULL, "pool destroyed");
        s_job_finish (&job);
    }
    for (int i = 0; self->keywords[i]; i++) {
        free (self->keywords[i]);
        free (self->values[i]);
    }
    free (self->keywords);
    free (self->values);
    free (self->conns);
    free (self);
    *self_p = NULL;
}

int
db_pool_attach (db_pool_t *self, zloop_t *loop)
{
    assert (self);
    assert (loop);
    if (self->loop)
        return -1;
    self->timer_id = zloop_timer (loop, DB_POOL_TICK_MS, 0, s_on_timer, self);
    if (self->timer_id < 0)
        return -1;
    self->loop = loop;
    s_settle (self);
    return 0;
}

void
db_pool_detach (db_pool_t *self)
{
    assert (self);
    if (!self->loop)
        return;
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        if (conn->reg_fd >= 0) {
            zmq_pollitem_t item = {NULL, conn->reg_fd, 0, 0};
            zloop_poller_end (self->loop, &item);
            conn->reg_fd = -1;
            conn->reg_events = 0;
        }
    }
    zloop_timer_end (self->loop, self->timer_id);
    self->loop = NULL;
}

static int
s_submit (db_pool_t *self, s_job_t *job)
{
    if (!s_pool_live (self)) {
        snprintf (self->error, sizeof self->error, "database unreachable: %s",
                  self->down_reason[0] ? self->down_reason : "no connection");
        s_job_destroy (&job);
        return -1;
    }
    if (self->queued >= (size_t) self->queue_max) {
        snprintf (self->error, sizeof self->error,
                  "database queue full (%d queries waiting)", self->queue_max);
        s_job_destroy (&job);
        return -1;
    }
    if (self->tail)
        self->tail->next_job = job;
    else
        self->head = job;
    self->tail = job;
    self->queued++;
    s_settle (self);
    return 0;
}

int
db_pool_query_timeout (db_pool_t *self, int timeout_ms, const char *sql, int nparams,
                       const char *const *params, db_result_fn *fn, void *arg)
{
    assert (self);
    if (!sql || !fn || nparams < 0 || (nparams > 0 && !params)) {
        snprintf (self->error, sizeof self->error, "bad query arguments");
        return -1;
    }
    s_job_t *job = calloc (1, sizeof (s_job_t));
    assert (job);
    job->stmts = calloc (1, sizeof (s_stmt_t));
    assert (job->stmts);
    job->count = 1;
    s_stmt_set (&job->stmts[0], sql, nparams, params, false);
    job->timeout_ms = timeout_ms > 0 ? timeout_ms : self->query_timeout_ms;
    job->deadline = s_now () + job->timeout_ms;
    job->fn = fn;
    job->arg = arg;
    return s_submit (self, job);
}

int
db_pool_query (db_pool_t *self, const char *sql, int nparams, const char *const *params,
               db_result_fn *fn, void *arg)
{
    return db_pool_query_timeout (self, 0, sql, nparams, params, fn, arg);
}

static int
s_tx (db_pool_t *self, int timeout_ms, const db_stmt_t *stmts, size_t count,
      const db_binary_t *binary, size_t binary_count, db_result_fn *fn, void *arg,
      bool borrow)
{
    assert (self);
    if (!stmts || count == 0 || !fn) {
        snprintf (self->error, sizeof self->error, "bad transaction arguments");
        return -1;
    }
    for (size_t i = 0; i < binary_count; i++)
        if (binary[i].stmt >= count || binary[i].param < 0
            || binary[i].param >= stmts[binary[i].stmt].nparams || binary[i].length < 0) {
            snprintf (self->error, sizeof self->error, "bad binary parameter %zu", i);
            return -1;
        }
    for (size_t i = 0; i < count; i++)
        if (!stmts[i].sql || stmts[i].nparams < 0
            || (stmts[i].nparams > 0 && !stmts[i].params)) {
            snprintf (self->error, sizeof self->error, "bad statement %zu", i);
            return -1;
        }
    s_job_t *job = calloc (1, sizeof (s_job_t));
    assert (job);
    job->tx = true;
    job->borrowed = borrow;
    job->count = count + 2;
    job->stmts = calloc (job->count, sizeof (s_stmt_t));
    assert (job->stmts);
    s_stmt_set (&job->stmts[0], "BEGIN", 0, NULL, borrow);
    for (size_t i = 0; i < count; i++)
        s_stmt_set (&job->stmts[i + 1], stmts[i].sql, stmts[i].nparams, stmts[i].params,
                    borrow);
    s_stmt_set (&job->stmts[count + 1], "COMMIT", 0, NULL, borrow);
    for (size_t i = 0; i < binary_count; i++) {
        s_stmt_t *stmt = &job->stmts[binary[i].stmt + 1];
        if (!stmt->formats) {
            stmt->formats = calloc ((size_t) stmt->nparams, sizeof (int));
            stmt->lengths = calloc ((size_t) stmt->nparams, sizeof (int));
            assert (stmt->formats && stmt->lengths);
        }
        stmt->formats[binary[i].param] = 1;
        stmt->lengths[binary[i].param] = binary[i].length;
    }
    job->timeout_ms = timeout_ms > 0 ? timeout_ms : self->query_timeout_ms;
    job->deadline = s_now () + job->timeout_ms;
    job->fn = fn;
    job->arg = arg;
    return s_submit (self, job);
}

int
db_pool_tx_timeout (db_pool_t *self, int timeout_ms, const db_stmt_t *stmts, size_t count,
                    db_result_fn *fn, void *arg)
{
    return s_tx (self, timeout_ms, stmts, count, NULL, 0, fn, arg, false);
}

int
db_pool_tx_borrowed (db_pool_t *self, int timeout_ms, const db_stmt_t *stmts,
                     size_t count, const db_binary_t *binary, size_t binary_count,
                     db_result_fn *fn, void *arg)
{
    return s_tx (self, timeout_ms, stmts, count, binary, binary_count, fn, arg, true);
}

int
db_pool_tx (db_pool_t *self, const db_stmt_t *stmts, size_t count, db_result_fn *fn,
            void *arg)
{
    return db_pool_tx_timeout (self, 0, stmts, count, fn, arg);
}

const char *
db_pool_error (db_pool_t *self)
{
    assert (self);
    return self->error;
}

size_t
db_pool_connected (db_pool_t *self)
{
    assert (self);
    size_t count = 0;
    for (int i = 0; i < self->size; i++)
        if (self->conns[i].state == S_IDLE || self->conns[i].state == S_BUSY)
            count++;
    return count;
}

bool
db_pool_healthy (db_pool_t *self)
{
    return db_pool_connected (self) > 0;
}

size_t
db_pool_queued (db_pool_t *self)
{
    assert (self);
    return self->queued;
}

size_t
db_pool_running (db_pool_t *self)
{
    assert (self);
    size_t count = 0;
    for (int i = 0; i < self->size; i++)
        if (self->conns[i].state == S_BUSY)
            count++;
    return count;
}

size_t
db_pool_pollfds (db_pool_t *self, db_pollfd_t *fds, size_t max)
{
    assert (self);
    size_t count = 0;
    for (int i = 0; i < self->size && count < max; i++) {
        s_conn_t *conn = &self->conns[i];
        if (!conn->pg || conn->state == S_DOWN || (!conn->want_read && !conn->want_write))
            continue;
        int fd = PQsocket (conn->pg);
        if (fd < 0)
            continue;
        fds[count].fd = fd;
        fds[count].events = (short) ((conn->want_read ? POLLIN : 0)
                                     | (conn->want_write ? POLLOUT : 0));
        fds[count].revents = 0;
        count++;
    }
    return count;
}

void
db_pool_handle (db_pool_t *self, int fd, short revents)
{
    assert (self);
    for (int i = 0; i < self->size; i++) {
        s_conn_t *conn = &self->conns[i];
        if (conn->pg && conn->state != S_DOWN && PQsocket (conn->pg) == fd) {
            bool error = (revents & (POLLERR | POLLHUP)) != 0;
            s_conn_handle (conn, error || (revents & POLLIN),
                           error || (revents & POLLOUT));
            break;
        }
    }
    s_settle (self);
}

size_t
db_pool_size (db_pool_t *self)
{
    return (size_t) self->size;
}
