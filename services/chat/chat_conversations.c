/*  chat_conversations: conversation commands (see chat_conversations.h).      */
#include "chat_conversations.h"

#include <assert.h>

#include "chat_turn.h"
#include "db_message.h"

//  Messages a conversations.get answers with.
#define S_DETAIL_MESSAGES 50

//  The columns of a Conversation (alias c) with its last message preview.
#define S_CONVERSATION_COLUMNS                                                           \
    "c.id, c.agent_id, c.title, c.archived, c.created_by, c.message_count, c.channel, "  \
    "c.connection_id, c.contact_id, c.contact_name, NULLIF (c.thread_id, '') AS "        \
    "thread_id, c.status, c.assignee_id, "                                               \
    "chat.rfc3339 (c.created_at) AS created_at, chat.rfc3339 (c.updated_at) AS "         \
    "updated_at, lm.role AS \"last_message.role\", lm.content AS "                       \
    "\"last_message.content\", chat.rfc3339 (lm.created_at) AS "                         \
    "\"last_message.created_at\" FROM chat.conversations c LEFT JOIN LATERAL (SELECT "   \
    "m.role, left (m.content, 200) AS content, m.created_at FROM chat.messages m WHERE " \
    "m.conversation_id = c.id AND m.content <> '' ORDER BY m.created_at DESC, m.id "     \
    "DESC LIMIT 1) lm ON true "

//  The statement that answers not_found unless conversation $1 is tenant $2's.
#define S_REQUIRE_CONVERSATION                                                           \
    "SELECT chat.require (EXISTS (SELECT 1 FROM chat.conversations WHERE id = $1 AND "   \
    "tenant_id = $2), 'not_found', 'no such conversation')"

bool
chat_conversations_channel_known (const char *channel)
{
    static const char *const known[] = {"whatsapp", "messenger", "instagram", "telegram",
                                        "slack"};
    for (size_t i = 0; channel && i < sizeof known / sizeof known[0]; i++)
        if (streq (channel, known[i]))
            return true;
    return false;
}

const char *
chat_conversations_title_problem (const char *title)
{
    if (!title || !*title)
        return "title must not be empty";
    //  Characters, not bytes
    size_t characters = 0;
    for (const unsigned char *p = (const unsigned char *) title; *p; p++)
        if ((*p & 0xC0) != 0x80)
            characters++;
    return characters > CHAT_TITLE_MAX ? "title must be at most 200 characters" : NULL;
}

//  Answer conversation call->id of the tenant.
static void
s_conversation_read (chat_call_t *call, PGresult *result)
{
    service_call_reply_row (&call->base, result, &chorus_chat__conversation__descriptor,
                            "conversation");
}

void
chat_conversations_answer (chat_call_t *call, PGresult *result)
{
    (void) result;
    const char *params[] = {call->id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_conversation_read,
                        "SELECT " S_CONVERSATION_COLUMNS
                        "WHERE c.id = $1 AND c.tenant_id = $2",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  conversations.create

static void
s_create_checked (chat_call_t *call, const bus_reply_t *reply)
{
    if (reply->kind == BUS_REPLY_ERROR) {
        chat_call_fail_upstream (call, reply, "agent");
        return;
    }
    ChorusChat__ConversationCreateRequest
        *args = (ChorusChat__ConversationCreateRequest *) call->base.args;
    const char *title = args->title && *args->title ? args->title : "New conversation";
    service_uuid_new (call->id);
    const char *params[] = {call->id, call->tenant_id, call->other_id, title,
                            call->user_id};
    db_stmt_t stmts[] = {
        {"INSERT INTO chat.conversations (id, tenant_id, agent_id, title, created_by) "
         "VALUES ($1, $2, $3, $4, $5)",
         5, params}};
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.agent_id = call->other_id;
    event.title = (char *) title;
    event.has_archived = true;
    event.created_by = call->user_id;
    event.has_message_count = true;
    service_call_emit (&call->base, (service_step_fn *) chat_conversations_answer,
                       call->tenant_id, "chat.conversation.created", &event.base, stmts,
                       1);
}

void
chat_conversations_create (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new (
        (chat_state_t *) state, &request,
        &chorus_chat__conversation_create_request__descriptor, sizeof (chat_call_t),
        CHAT_CALL_PLAIN);
    if (!call)
        return;
    ChorusChat__ConversationCreateRequest
        *args = (ChorusChat__ConversationCreateRequest *) call->base.args;
    if (!args->agent_id || !*args->agent_id) {
        service_call_fail (&call->base, "bad_request", "agent_id is required");
        return;
    }
    const char *problem = args->title && *args->title
                              ? chat_conversations_title_problem (args->title)
                              : NULL;
    if (problem) {
        service_call_fail (&call->base, "bad_request", problem);
        return;
    }
    if (!chat_call_take_id (call, args->agent_id, "agent"))
        return;
    memcpy (call->other_id, call->id, sizeof call->id);
    ChorusAgents__IdRequest ask = CHORUS_AGENTS__ID_REQUEST__INIT;
    ask.id = call->other_id;
    chat_call_ask (call, "agents", "agents.get", &ask.base, 0, s_create_checked, NULL);
}

//  ---------------------------------------------------------------------------------
//  conversations.list

static void
s_list_read (chat_call_t *call, PGresult *result)
{
    service_call_reply_list (&call->base, &chorus_chat__conversation_list__descriptor,
                             result, call->base.limit);
}

void
chat_conversations_list (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new (
        (chat_state_t *) state, &request,
        &chorus_chat__conversation_list_request__descriptor, sizeof (chat_call_t),
        CHAT_CALL_PLAIN);
    if (!call)
        return;
    ChorusChat__ConversationListRequest *args = (ChorusChat__ConversationListRequest *)
                                                    call->base.args;
    if (!service_call_take_cursor (&call->base, args->cursor))
        return;
    const char *agent = "";
    if (args->agent_id && *args->agent_id) {
        if (!service_uuid_valid (args->agent_id)) {
            //  No conversation is with an agent that cannot exist
            ChorusChat__ConversationList empty = CHORUS_CHAT__CONVERSATION_LIST__INIT;
            service_call_reply (&call->base, &empty.base);
            return;
        }
        agent = args->agent_id;
    }
    const char *channel = args->channel ? args->channel : "";
    if (*channel && !streq (channel, "web")
        && !chat_conversations_channel_known (channel)) {
        service_call_fail (
            &call->base, "bad_request",
            "channel must be web, whatsapp, messenger, instagram, telegram "
            "or slack");
        return;
    }
    const char *status = args->status ? args->status : "";
    if (*status && !streq (status, "open") && !streq (status, "pending")
        && !streq (status, "resolved")) {
        service_call_fail (&call->base, "bad_request",
                           "status must be open, pending or resolved");
        return;
    }
    const char *assignee = args->assignee_id ? args->assignee_id : "";
    if (*assignee && !streq (assignee, "none") && !service_uuid_valid (assignee)) {
        //  Nobody can be assigned an id that cannot be a user
        ChorusChat__ConversationList empty = CHORUS_CHAT__CONVERSATION_LIST__INIT;
        service_call_reply (&call->base, &empty.base);
        return;
    }
    call->base.limit = service_call_page_limit (args->has_limit, args->limit);
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->base.limit + 1);
    const char *params[] = {
        call->tenant_id, args->cursor ? args->cursor : "",
        limit,           args->has_archived && args->archived ? "true" : "false",
        agent,           channel,
        status,          assignee};
    service_call_query (
        &call->base, (service_step_fn *) s_list_read,
        "SELECT chat.cursor_of (c.updated_at, c.id) AS _cursor, " S_CONVERSATION_COLUMNS
        "WHERE c.tenant_id = $1 AND c.archived = $4::boolean AND ($5 = '' OR c.agent_id "
        "= NULLIF ($5, '')::uuid) AND ($6 = '' OR ($6 = 'web' AND c.channel IS NULL) OR "
        "c.channel = $6) AND ($7 = '' OR c.status = $7) AND ($8 = '' OR ($8 = 'none' AND "
        "c.assignee_id IS NULL) OR c.assignee_id::text = $8) AND ($2 = '' OR (chat.ts_us "
        "(c.updated_at), c.id) < (chat.cursor_ts ($2), chat.cursor_id ($2))) ORDER BY "
        "c.updated_at DESC, c.id DESC LIMIT $3",
        8, params);
}

//  ---------------------------------------------------------------------------------
//  conversations.get

static void
s_detail_messages (chat_call_t *call, PGresult *result)
{
    ChorusChat__ConversationDetail *detail = (ChorusChat__ConversationDetail *)
                                                 call->base.reply;
    char error[200] = "";
    if (chat_message_append_rows (&detail->base, "messages", result, error,
                                  sizeof error)) {
        core_log_error (call->state->log, service_call_request_id (&call->base),
                        "conversation: %s", error);
        service_call_fail (&call->base, "internal", "the messages could not be read");
        return;
    }
    int cursor = PQfnumber (result, "_cursor");
    if (detail->n_messages > S_DETAIL_MESSAGES && cursor >= 0) {
        while (detail->n_messages > S_DETAIL_MESSAGES)
            protobuf_c_message_free_unpacked (
                &detail->messages[--detail->n_messages]->base, NULL);
        detail->messages_next_cursor = strdup (
            PQgetvalue (result, S_DETAIL_MESSAGES - 1, cursor));
        assert (detail->messages_next_cursor);
    }
    service_call_reply (&call->base, call->base.reply);
}

static void
s_detail_read (chat_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such conversation");
        return;
    }
    char error[200] = "";
    call->base.reply = db_message_from_row (&chorus_chat__conversation_detail__descriptor,
                                            result, 0, error, sizeof error);
    if (!call->base.reply) {
        core_log_error (call->state->log, service_call_request_id (&call->base),
                        "conversation: %s", error);
        service_call_fail (&call->base, "internal", "the conversation could not be read");
        return;
    }
    char limit[16];
    snprintf (limit, sizeof limit, "%d", S_DETAIL_MESSAGES + 1);
    const char *params[] = {call->id, call->tenant_id, limit};
    service_call_query (&call->base, (service_step_fn *) s_detail_messages,
                        "SELECT " CHAT_MESSAGE_COLUMNS
                        ", chat.cursor_of (m.created_at, m.id) AS _cursor FROM "
                        "chat.messages m WHERE m.conversation_id = $1 AND m.tenant_id = "
                        "$2 ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
                        3, params);
}

void
chat_conversations_get (service_runtime_t *runtime, bus_request_t *request, void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new ((chat_state_t *) state, &request,
                                       &chorus_chat__id_request__descriptor,
                                       sizeof (chat_call_t), CHAT_CALL_PLAIN);
    if (!call
        || !chat_call_take_id (call, ((ChorusChat__IdRequest *) call->base.args)->id,
                               "conversation"))
        return;
    const char *params[] = {call->id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) s_detail_read,
                        "SELECT " S_CONVERSATION_COLUMNS
                        "WHERE c.id = $1 AND c.tenant_id = $2",
                        2, params);
}

//  ---------------------------------------------------------------------------------
//  conversations.update, conversations.delete

//  Look up conversation call->id of the tenant first, so that a missing one
//  answers not_found without a failed change (the change checks again).
static void
s_exists (chat_call_t *call, service_step_fn *next)
{
    const char *params[] = {call->id, call->tenant_id};
    service_call_query (&call->base, next,
                        "SELECT agent_id FROM chat.conversations WHERE id = $1 AND "
                        "tenant_id = $2",
                        2, params);
}

static void
s_update (chat_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such conversation");
        return;
    }
    ChorusChat__ConversationUpdateRequest
        *args = (ChorusChat__ConversationUpdateRequest *) call->base.args;
    const char *archived = !args->has_archived ? NULL : args->archived ? "true" : "false";
    const char *params[] = {call->id, call->tenant_id, args->title, archived};
    db_stmt_t stmts[] = {
        {S_REQUIRE_CONVERSATION, 2, params},
        {"UPDATE chat.conversations SET title = COALESCE ($3, title), archived = "
         "COALESCE ($4::boolean, archived), updated_at = clock_timestamp () WHERE id = "
         "$1 AND tenant_id = $2",
         4, params}};
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.agent_id = PQgetvalue (result, 0, 0);
    event.title = args->title;
    event.has_archived = args->has_archived;
    event.archived = args->archived;
    service_call_emit (&call->base, (service_step_fn *) chat_conversations_answer,
                       call->tenant_id, "chat.conversation.updated", &event.base, stmts,
                       2);
}

void
chat_conversations_update (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new (
        (chat_state_t *) state, &request,
        &chorus_chat__conversation_update_request__descriptor, sizeof (chat_call_t),
        CHAT_CALL_PLAIN);
    if (!call)
        return;
    ChorusChat__ConversationUpdateRequest
        *args = (ChorusChat__ConversationUpdateRequest *) call->base.args;
    if (!chat_call_take_id (call, args->id, "conversation"))
        return;
    const char *problem = args->title ? chat_conversations_title_problem (args->title)
                                      : NULL;
    if (problem) {
        service_call_fail (&call->base, "bad_request", problem);
        return;
    }
    s_exists (call, (service_step_fn *) s_update);
}

static void
s_deleted (chat_call_t *call, PGresult *result)
{
    (void) result;
    //  Turns of the conversation running here stop now; elsewhere within a second
    chat_turn_stop_conversation (call->state, call->id);
    service_call_reply (&call->base, NULL);
}

static void
s_delete (chat_call_t *call, PGresult *result)
{
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "not_found", "no such conversation");
        return;
    }
    const char *params[] = {call->id, call->tenant_id};
    db_stmt_t stmts[] = {
        {S_REQUIRE_CONVERSATION, 2, params},
        {"DELETE FROM chat.conversations WHERE id = $1 AND tenant_id = $2", 2, params}};
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.agent_id = PQgetvalue (result, 0, 0);
    service_call_emit (&call->base, (service_step_fn *) s_deleted, call->tenant_id,
                       "chat.conversation.deleted", &event.base, stmts, 2);
}

void
chat_conversations_delete (service_runtime_t *runtime, bus_request_t *request,
                           void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new ((chat_state_t *) state, &request,
                                       &chorus_chat__id_request__descriptor,
                                       sizeof (chat_call_t), CHAT_CALL_PLAIN);
    if (call
        && chat_call_take_id (call, ((ChorusChat__IdRequest *) call->base.args)->id,
                              "conversation"))
        s_exists (call, (service_step_fn *) s_delete);
}

//  ---------------------------------------------------------------------------------
//  messages.list

static void
s_messages_read (chat_call_t *call, PGresult *result)
{
    chat_call_reply_messages (call, result, call->base.limit);
}

void
chat_conversations_messages (service_runtime_t *runtime, bus_request_t *request,
                             void *state)
{
    (void) runtime;
    chat_call_t *call = chat_call_new ((chat_state_t *) state, &request,
                                       &chorus_chat__message_list_request__descriptor,
                                       sizeof (chat_call_t), CHAT_CALL_PLAIN);
    if (!call)
        return;
    ChorusChat__MessageListRequest *args = (ChorusChat__MessageListRequest *)
                                               call->base.args;
    if (!chat_call_take_id (call, args->id, "conversation")
        || !service_call_take_cursor (&call->base, args->cursor))
        return;
    call->base.limit = service_call_page_limit (args->has_limit, args->limit);
    char limit[16];
    snprintf (limit, sizeof limit, "%u", call->base.limit + 1);
    const char *params[] = {call->id, call->tenant_id, args->cursor ? args->cursor : "",
                            limit};
    db_stmt_t stmts[] = {
        {S_REQUIRE_CONVERSATION, 2, params},
        {"SELECT " CHAT_MESSAGE_COLUMNS
         ", chat.cursor_of (m.created_at, m.id) AS _cursor FROM chat.messages m WHERE "
         "m.conversation_id = $1 AND m.tenant_id = $2 AND ($3 = '' OR (chat.ts_us "
         "(m.created_at), m.id) < (chat.cursor_ts ($3), chat.cursor_id ($3))) ORDER BY "
         "m.created_at DESC, m.id DESC LIMIT $4",
         4, params}};
    service_call_tx (&call->base, (service_step_fn *) s_messages_read, stmts, 2);
}

void
chat_conversations_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_conversations: ");
    assert (chat_conversations_title_problem ("Plans") == NULL);
    assert (chat_conversations_title_problem ("") != NULL);
    assert (chat_conversations_title_problem (NULL) != NULL);
    char title[4 * CHAT_TITLE_MAX + 8];
    memset (title, 'a', CHAT_TITLE_MAX);
    title[CHAT_TITLE_MAX] = 0;
    assert (chat_conversations_title_problem (title) == NULL);
    title[CHAT_TITLE_MAX] = 'a';
    title[CHAT_TITLE_MAX + 1] = 0;
    assert (chat_conversations_title_problem (title) != NULL);
    //  200 two-byte characters are fine: characters count, not bytes
    for (int i = 0; i < CHAT_TITLE_MAX; i++)
        memcpy (title + 2 * i, "\xc3\xa9", 2);
    title[2 * CHAT_TITLE_MAX] = 0;
    assert (chat_conversations_title_problem (title) == NULL);
    printf ("OK\n");
}
