/*  auth_call: one auth request in progress: a service_call (libs/service) with
    what auth's steps carry between them (ids, a token to hand out, a password
    hash), plus the two steps only auth has: an audited change (audit row and
    outbox event in one transaction) and a password job on the argon2id
    threads. After handing a call to any auth_call_* function the caller must
    not touch it again.                                                        */
#ifndef AUTH_CALL_H_INCLUDED
#define AUTH_CALL_H_INCLUDED

#include <czmq.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "auth.pb-c.h"
#include "auth_hasher.h"
#include "auth_jwt.h"
#include "auth_mail.h"
#include "auth_password.h"
#include "service_call.h"

//  The auth service's state, shared by its handlers.
typedef struct {
    service_runtime_t *runtime;                //  the runtime (bus, database, Redis, log)
    core_log_t *log;                           //  its logger
    auth_jwt_t *jwt;                           //  access-token issuer
    auth_hasher_t *hasher;                     //  argon2id threads
    auth_mail_t *mail;                         //  mail hook
    int64_t access_ttl_s;                      //  access-token lifetime
    int64_t refresh_ttl_s;                     //  refresh-token lifetime
    int64_t invite_ttl_s;                      //  invite lifetime
    int64_t reset_ttl_s;                       //  password-reset token lifetime
    int64_t login_ip_failures;                 //  failed logins per IP per minute
    int64_t login_account_failures;            //  failed logins per account per hour
    bool login_fail_open;                      //  login allowed while Redis is down
    const char *platform_admin_email;          //  registers as platform admin ("" none)
    char dummy_hash[AUTH_PASSWORD_HASH_SIZE];  //  verified for unknown emails
} auth_state_t;

typedef struct _auth_call_t auth_call_t;

//  A step: runs with the last query's result (NULL after a transaction or a
//  password job) once the previous action succeeded.
typedef void (auth_step_fn) (auth_call_t *call, PGresult *result);

//  Scratch identifiers a call carries between steps.
#define AUTH_ID_SIZE SERVICE_ID_SIZE

//  An auth request in progress: a service_call with what auth's steps carry.
struct _auth_call_t {
    service_call_t base;                 //  request, args, reply (first member)
    auth_state_t *state;                 //  the service
    auth_step_fn *next;                  //  step after the pending action
    char user_id[AUTH_ID_SIZE];          //  user concerned
    char tenant_id[AUTH_ID_SIZE];        //  tenant concerned
    char session_id[AUTH_ID_SIZE];       //  session concerned
    char other_id[AUTH_ID_SIZE];         //  invite, key or member concerned
    char *token;                         //  plain token to hand out, wiped
    char hash[AUTH_PASSWORD_HASH_SIZE];  //  a password hash made for the call
    bool matched;                        //  outcome of a password check
    char *text;                          //  any other string a step keeps
};

//  Start a call for request (taking it), decoding its body as args_desc. On a
//  bad body answers bad_request and returns NULL.
auth_call_t *auth_call_new (auth_state_t *state, bus_request_t **request_p,
                            const ProtobufCMessageDescriptor *args_desc);

//  The call's decoded arguments.
#define auth_call_args(call) ((call)->base.args)

//  Answer with reply (NULL: an empty body) and free the call.
void auth_call_reply (auth_call_t *call, const ProtobufCMessage *reply);

//  Answer with an error and free the call.
void auth_call_fail (auth_call_t *call, const char *code, const char *message);

//  Answer with an error that says when to retry (seconds) and free the call.
void auth_call_fail_retry (auth_call_t *call, const char *code, const char *message,
                           uint32_t retry_after_s);

//  Answer a page of a list (service_call_reply_list). Frees the call.
void auth_call_reply_list (auth_call_t *call, const ProtobufCMessageDescriptor *list_desc,
                           PGresult *result, uint32_t limit);

//  The page size a ListRequest asks for: 1..100, default 50.
uint32_t auth_list_limit (const ChorusAuth__ListRequest *list);

//  Run one query; next gets its result.
void auth_call_query (auth_call_t *call, auth_step_fn *next, const char *sql, int nparams,
                      const char *const *params);

//  Run statements in one transaction; next gets the last statement's result.
void auth_call_tx (auth_call_t *call, auth_step_fn *next, const db_stmt_t *stmts,
                   size_t count);

//  An audited change: the caller's statements, an audit_log row and the outbox
//  event "auth.<action>" (its payload: the AuditEntry) in one transaction.
//  tenant_id, actor_id, target_id may be NULL or ""; details is JSON text or NULL.
void auth_call_record (auth_call_t *call, auth_step_fn *next, const char *tenant_id,
                       const char *action, const char *actor_id, const char *target_id,
                       const char *details, const db_stmt_t *stmts, size_t count);

//  Hash password off the loop into call->hash; next runs with NULL.
void auth_call_hash (auth_call_t *call, auth_step_fn *next, const char *password);

//  Check password against hash (NULL: a dummy hash, same cost); next runs with
//  call->matched set.
void auth_call_verify (auth_call_t *call, auth_step_fn *next, const char *hash,
                       const char *password);

//  Header values, "" when absent, and role checks (service_call's).
#define auth_call_tenant(call) service_call_tenant (&(call)->base)
#define auth_call_user(call) service_call_user (&(call)->base)
#define auth_call_role(call) service_call_role (&(call)->base)
#define auth_call_ip(call) service_call_ip (&(call)->base)
#define auth_call_request_id(call) service_call_request_id (&(call)->base)
#define auth_call_is_tenant_admin(call) service_call_is_tenant_admin (&(call)->base)
#define auth_call_is_platform_admin(call) service_call_is_platform_admin (&(call)->base)
#define auth_uuid_valid service_uuid_valid
#define auth_uuid_new service_uuid_new

//  Refuse with the message: password rules. NULL when password is acceptable.
const char *auth_password_problem (const char *password);
//  Refuse with the message: email rules. NULL when email looks like an address.
const char *auth_email_problem (const char *email);

void auth_call_test (bool verbose);

#endif
