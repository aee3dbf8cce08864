/*  service_call: one request in progress in a service, and the continuation-
    passing toolkit handlers are written with. A handler decodes the request into
    a call, then chains steps: a query, a transaction, a change with its outbox
    event; each names the step that runs with its outcome. Every failure along
    the way answers the request with the right error code (schemas/bus.md) and
    frees the call, so a step only ever sees success. After handing a call to
    any service_call_* function the caller must not touch it again.

    A service that needs more per-call state allocates a bigger struct whose
    first member is the service_call_t (service_call_new's size argument) and
    frees its own fields in a free hook.                                       */
#ifndef SERVICE_CALL_H_INCLUDED
#define SERVICE_CALL_H_INCLUDED

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "service_runtime.h"

typedef struct _service_call_t service_call_t;

//  A step: runs with the last query's result (NULL after a change) once the
//  previous action succeeded.
typedef void (service_step_fn) (service_call_t *call, PGresult *result);

//  Size of a UUID in text with its NUL.
#define SERVICE_ID_SIZE 37

struct _service_call_t {
    service_runtime_t *runtime;          //  the service
    void *state;                         //  the service's state (borrowed)
    bus_request_t *request;              //  the request being answered
    const ChorusBus__Headers *headers;   //  its headers (borrowed from request)
    ProtobufCMessage *args;              //  its decoded arguments
    ProtobufCMessage *reply;             //  an answer built across steps, or NULL
    service_step_fn *next;               //  step after the pending action
    const char *conflict;                //  message for a unique violation
    uint32_t limit;                      //  page size of a list
    void (*free_fn) (service_call_t *);  //  frees a bigger struct's own fields
};

//  Start a call of size bytes (at least sizeof (service_call_t), zeroed) for
//  request (taking it), decoding its body as args_desc (an empty body is an empty
//  message) and then freeing the body (bus_request_drop_body: read it before).
//  On a bad body answers bad_request and returns NULL.
service_call_t *service_call_new (service_runtime_t *runtime, void *state,
                                  bus_request_t **request_p,
                                  const ProtobufCMessageDescriptor *args_desc,
                                  size_t size);

//  Answer with reply (NULL: an empty body) and free the call.
void service_call_reply (service_call_t *call, const ProtobufCMessage *reply);

//  Answer with a body already encoded as msgpack and free the call.
void service_call_reply_raw (service_call_t *call, const void *body, size_t size);

//  Send a partial reply (the call goes on).
void service_call_partial (service_call_t *call, const ProtobufCMessage *reply);

//  Send a partial reply already encoded as msgpack (the call goes on).
void service_call_partial_raw (service_call_t *call, const void *body, size_t size);

//  Answer with an error and free the call.
void service_call_fail (service_call_t *call, const char *code, const char *message);

//  Answer with an error that says when to retry (seconds) and free the call.
void service_call_fail_retry (service_call_t *call, const char *code, const char *message,
                              uint32_t retry_after_s);

//  Run one query; next gets its result.
void service_call_query (service_call_t *call, service_step_fn *next, const char *sql,
                         int nparams, const char *const *params);

//  Run statements in one transaction; next gets the last statement's result.
void service_call_tx (service_call_t *call, service_step_fn *next, const db_stmt_t *stmts,
                      size_t count);

//  A change and its event: the statements and the outbox row of topic (payload:
//  event, encoded by the codec) in one transaction; next runs with NULL.
void service_call_emit (service_call_t *call, service_step_fn *next,
                        const char *tenant_id, const char *topic,
                        const ProtobufCMessage *event, const db_stmt_t *stmts,
                        size_t count);

//  The same, with the statements' strings the caller's, kept as they are until next
//  runs (or the call fails); see service_events_emit_borrowed.
void service_call_emit_borrowed (service_call_t *call, service_step_fn *next,
                                 const char *tenant_id, const char *topic,
                                 const ProtobufCMessage *event, const db_stmt_t *stmts,
                                 size_t count);

//  Answer a page of a list: list_desc is a message with "repeated data" and
//  "next_cursor"; result holds up to limit + 1 rows whose columns are the
//  element's fields plus "_cursor". Frees the call.
void service_call_reply_list (service_call_t *call,
                              const ProtobufCMessageDescriptor *list_desc,
                              PGresult *result, uint32_t limit);

//  Reads row `row` of result into a new list element, or NULL (logged) when it
//  does not fit; for lists whose elements need more than their columns.
typedef ProtobufCMessage *(service_row_fn) (service_call_t *call, PGresult *result,
                                            int row);

//  service_call_reply_list with each element made by row_fn.
void service_call_reply_list_with (service_call_t *call,
                                   const ProtobufCMessageDescriptor *list_desc,
                                   PGresult *result, uint32_t limit,
                                   service_row_fn *row_fn);

//  Answer one row of result as a message of desc; no row is not_found (what
//  names the thing in the message: "no such <what>"). Frees the call.
void service_call_reply_row (service_call_t *call, PGresult *result,
                             const ProtobufCMessageDescriptor *desc, const char *what);

//  The page size a request asks for: 1..100, default 50 (has/limit of the args).
uint32_t service_call_page_limit (bool has_limit, uint32_t limit);

//  Header values, "" when absent.
const char *service_call_tenant (service_call_t *call);
const char *service_call_user (service_call_t *call);
const char *service_call_role (service_call_t *call);
const char *service_call_ip (service_call_t *call);
const char *service_call_request_id (service_call_t *call);

//  True when the headers carry a tenant admin (or a platform admin).
bool service_call_is_tenant_admin (service_call_t *call);
//  True when the headers carry a platform admin.
bool service_call_is_platform_admin (service_call_t *call);
//  True when the headers carry a user and a tenant (UUIDs); else answers
//  unauthorized, frees the call and returns false.
bool service_call_require_user (service_call_t *call);
//  service_call_require_user, and a tenant admin; else forbidden.
bool service_call_require_admin (service_call_t *call);

//  Copy the id argument of a request into out (SERVICE_ID_SIZE bytes, lower case).
//  An id that is not a UUID names no row: answers not_found ("no such <what>"),
//  frees the call and returns false.
bool service_call_take_id (service_call_t *call, const char *id, char *out,
                           const char *what);

//  True when cursor is a list cursor (cursor_of in schemas/sql/*: the hex of
//  "<microseconds>/<uuid>"), or NULL or "" (the first page).
bool service_cursor_valid (const char *cursor);
//  True when cursor is valid (service_cursor_valid); else answers bad_request
//  "invalid cursor", frees the call and returns false.
bool service_call_take_cursor (service_call_t *call, const char *cursor);

//  A step that answers with an empty body (204 at the edge).
void service_call_done_empty (service_call_t *call, PGresult *result);

//  True when s is a UUID in its canonical text form.
bool service_uuid_valid (const char *s);
//  A new random UUID into out (SERVICE_ID_SIZE bytes).
void service_uuid_new (char *out);
//  The current time as RFC 3339 UTC with microseconds into out (at least 32 bytes).
void service_time_rfc3339 (char *out, size_t size);

void service_call_test (bool verbose);

#endif
