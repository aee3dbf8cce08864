/*  chat_handoff: assign, unassign, resolve, reopen (see chat_handoff.h).       */
#include "chat_handoff.h"

#include <ctype.h>

#include "auth.pb-c.h"
#include "chat_conversations.h"

//  Make the change: status and assignee ("" none) of conversation call->id,
//  with its event, then answer the conversation.
static void
s_change (chat_call_t *call, const char *topic, const char *status, const char *assignee)
{
    const char *params[] = {call->id, call->tenant_id, status, assignee};
    db_stmt_t stmts[] = {
        {"SELECT chat.require (EXISTS (SELECT 1 FROM chat.conversations WHERE id = $1 "
         "AND tenant_id = $2), 'not_found', 'no such conversation')",
         2, params},
        {"UPDATE chat.conversations SET status = $3, assignee_id = NULLIF ($4, "
         "'')::uuid, "
         "updated_at = clock_timestamp () WHERE id = $1 AND tenant_id = $2",
         4, params}};
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.status = (char *) status;
    event.assignee_id = *assignee ? (char *) assignee : NULL;
    service_call_emit (&call->base, (service_step_fn *) chat_conversations_answer,
                       call->tenant_id, topic, &event.base, stmts, 2);
}

//  The call of a handoff command whose body names the conversation; NULL when
//  answered already.
static chat_call_t *
s_call (void *state, bus_request_t *request, const ProtobufCMessageDescriptor *desc)
{
    chat_call_t *call = chat_call_new ((chat_state_t *) state, &request, desc,
                                       sizeof (chat_call_t), CHAT_CALL_PLAIN);
    if (!call)
        return NULL;
    //  AssignRequest and IdRequest both have the id first
    const char *id = desc == &chorus_chat__assign_request__descriptor
                         ? ((ChorusChat__AssignRequest *) call->base.args)->id
                         : ((ChorusChat__IdRequest *) call->base.args)->id;
    return chat_call_take_id (call, id, "conversation") ? call : NULL;
}

static void
s_member_checked (chat_call_t *call, const bus_reply_t *reply)
{
    if (reply->kind == BUS_REPLY_ERROR) {
        if (reply->code && streq (reply->code, "not_found"))
            service_call_fail (&call->base, "bad_request",
                               "assignee_id is not a member of the tenant");
        else
            chat_call_fail_upstream (call, reply, "member");
        return;
    }
    s_change (call, "chat.conversation.assigned", "open", call->other_id);
}

void
chat_handoff_assign (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    chat_call_t *call = s_call (state, request, &chorus_chat__assign_request__descriptor);
    if (!call)
        return;
    const char *assignee = ((ChorusChat__AssignRequest *) call->base.args)->assignee_id;
    if (!assignee || !*assignee) {
        s_change (call, "chat.conversation.unassigned", "open", "");
        return;
    }
    if (!service_uuid_valid (assignee)) {
        service_call_fail (&call->base, "bad_request",
                           "assignee_id must be a member's user id");
        return;
    }
    snprintf (call->other_id, sizeof call->other_id, "%s", assignee);
    for (char *p = call->other_id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    ChorusAuth__IdRequest ask = CHORUS_AUTH__ID_REQUEST__INIT;
    ask.id = call->other_id;
    chat_call_ask (call, "auth", "members.get", &ask.base, 5000, s_member_checked, NULL);
}

void
chat_handoff_unassign (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    chat_call_t *call = s_call (state, request, &chorus_chat__id_request__descriptor);
    if (call)
        s_change (call, "chat.conversation.unassigned", "open", "");
}

//  resolve and reopen keep the assignee: read it first.
static void
s_status_read (chat_call_t *call, PGresult *result, const char *topic, const char *status)
{
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such conversation");
        return;
    }
    char assignee[SERVICE_ID_SIZE];
    snprintf (assignee, sizeof assignee, "%s", PQgetvalue (result, 0, 0));
    s_change (call, topic, status, assignee);
}

static void
s_resolve_read (chat_call_t *call, PGresult *result)
{
    s_status_read (call, result, "chat.conversation.resolved", "resolved");
}

static void
s_reopen_read (chat_call_t *call, PGresult *result)
{
    s_status_read (call, result, "chat.conversation.reopened", "open");
}

static void
s_status (void *state, bus_request_t *request, chat_step_fn *next)
{
    chat_call_t *call = s_call (state, request, &chorus_chat__id_request__descriptor);
    if (!call)
        return;
    const char *params[] = {call->id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) next,
                        "SELECT coalesce (assignee_id::text, '') FROM chat.conversations "
                        "WHERE id = $1 AND tenant_id = $2",
                        2, params);
}

void
chat_handoff_resolve (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    s_status (state, request, s_resolve_read);
}

void
chat_handoff_reopen (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    s_status (state, request, s_reopen_read);
}
