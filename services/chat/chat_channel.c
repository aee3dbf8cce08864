/*  chat_channel: channel.inbound and members' replies (see chat_channel.h).     */
#include "chat_channel.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>

#include "channels.pb-c.h"
#include "chat_conversations.h"
#include "chat_events.h"

//  The longest contact id, contact name and thread id kept.
#define S_FIELD_MAX 256

static bool
s_word_char (unsigned char c)
{
    return isalnum (c) || c >= 0x80;
}

bool
chat_channel_wants_person (const char *keywords, const char *content)
{
    if (!keywords || !content)
        return false;
    const char *at = keywords;
    while (*at) {
        while (*at == ',' || *at == ' ')
            at++;
        const char *end = at;
        while (*end && *end != ',')
            end++;
        size_t length = (size_t) (end - at);
        while (length && at[length - 1] == ' ')
            length--;
        for (const char *p = content; length && *p; p++) {
            if (strncasecmp (p, at, length) != 0)
                continue;
            bool starts = p == content || !s_word_char ((unsigned char) p[-1]);
            bool ends = !s_word_char ((unsigned char) p[length]);
            if (starts && ends)
                return true;
        }
        at = end;
    }
    return false;
}

//  A conversation title for a contact: "<Platform>: <name or id>", at most
//  CHAT_TITLE_MAX characters (cut on a character boundary).
static void
s_title (const char *channel, const char *name, const char *contact, char *out,
         size_t size)
{
    static const char *const labels[][2] = {{"whatsapp", "WhatsApp"},
                                            {"messenger", "Messenger"},
                                            {"instagram", "Instagram"},
                                            {"telegram", "Telegram"},
                                            {"slack", "Slack"}};
    const char *label = channel;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (streq (channel, labels[i][0]))
            label = labels[i][1];
    snprintf (out, size, "%s: %s", label, name && *name ? name : contact);
    //  Characters, not bytes: at most 150, then back to a character start
    size_t characters = 0, i = 0;
    for (; out[i]; i++)
        if (((unsigned char) out[i] & 0xC0) != 0x80 && ++characters > 150)
            break;
    out[i] = 0;
}

//  ---------------------------------------------------------------------------------
//  channel.inbound

//  Answer ChannelInboundReply with outcome and the message of row 0 (or none).
static void
s_answer (chat_call_t *call, const char *outcome, PGresult *result)
{
    ChorusChat__ChannelInboundReply answer = CHORUS_CHAT__CHANNEL_INBOUND_REPLY__INIT;
    answer.conversation_id = call->id;
    answer.outcome = (char *) outcome;
    char error[200] = "";
    if (result && PQntuples (result) == 1) {
        answer.reply = chat_message_from_row (result, 0, error, sizeof error);
        if (!answer.reply) {
            core_log_error (call->state->log, service_call_request_id (&call->base),
                            "inbound reply: %s", error);
            service_call_fail (&call->base, "internal", "the reply could not be read");
            return;
        }
    }
    service_call_reply (&call->base, &answer.base);
    if (answer.reply)
        protobuf_c_message_free_unpacked (&answer.reply->base, NULL);
}

static void
s_answer_replied (chat_call_t *call, PGresult *result)
{
    s_answer (call, "replied", result);
}

static void
s_answer_handoff (chat_call_t *call, PGresult *result)
{
    s_answer (call, "handoff", result);
}

static void
s_answer_held (chat_call_t *call, PGresult *result)
{
    (void) result;
    s_answer (call, "held", NULL);
}

//  Read message id (the reply) and answer with it, through step next.
static void
s_read_message (chat_call_t *call, const char *id, chat_step_fn *next)
{
    const char *params[] = {id, call->tenant_id};
    service_call_query (&call->base, (service_step_fn *) next,
                        "SELECT " CHAT_MESSAGE_COLUMNS
                        "FROM chat.messages m WHERE m.id = $1 AND m.tenant_id = $2",
                        2, params);
}

static void
s_handed_off (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    s_read_message (call, turn->message_id, s_answer_handoff);
}

//  The notice is stored: the conversation waits for a member.
static void
s_notice_stored (chat_call_t *call, PGresult *result)
{
    (void) result;
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.status = "pending";
    service_call_emit (&call->base, (service_step_fn *) s_handed_off, call->tenant_id,
                       "chat.conversation.handoff", &event.base, NULL, 0);
}

//  Store the contact's message (and, on a handoff, the agent's notice and the
//  pending status) with its event; next runs after.
static void
s_store_contact_message (chat_turn_t *turn, bool handoff, chat_step_fn *next)
{
    chat_call_t *call = &turn->call;
    ChorusChat__ChannelInboundRequest *args = (ChorusChat__ChannelInboundRequest *)
                                                  call->base.args;
    service_uuid_new (turn->user_message_id);
    service_uuid_new (turn->message_id);
    char now[40];
    chat_turn_now_text (now, sizeof now);
    const char *user[] = {turn->user_message_id, call->tenant_id,    call->id,
                          args->content,         args->external_key, now};
    const char *notice[] = {
        turn->message_id, call->tenant_id,       call->id,
        turn->agent_id,   turn->user_message_id, call->state->handoff_reply};
    const char *conversation[] = {call->id, call->tenant_id, handoff ? "2" : "1",
                                  handoff ? "pending" : ""};
    db_stmt_t stmts[3] = {
        {"INSERT INTO chat.messages (id, tenant_id, conversation_id, role, content, "
         "author_type, external_key, status, created_at, updated_at) VALUES ($1, $2, $3, "
         "'user', $4, 'contact', $5, 'complete', $6, $6)",
         6, user},
        {"UPDATE chat.conversations SET message_count = message_count + $3::integer, "
         "status = coalesce (NULLIF ($4, ''), status), updated_at = clock_timestamp () "
         "WHERE id = $1 AND tenant_id = $2",
         4, conversation},
        {"INSERT INTO chat.messages (id, tenant_id, conversation_id, role, author_id, "
         "author_type, reply_to, content, status, created_at, updated_at) VALUES ($1, "
         "$2, "
         "$3, 'assistant', $4, 'agent', $5, $6, 'complete', clock_timestamp (), "
         "clock_timestamp ())",
         6, notice}};
    ChorusChat__Message event = CHORUS_CHAT__MESSAGE__INIT;
    event.id = turn->user_message_id;
    event.conversation_id = call->id;
    event.role = "user";
    event.content = args->content;
    event.author_type = "contact";
    event.status = "complete";
    event.created_at = now;
    event.updated_at = now;
    service_call_emit (&call->base, (service_step_fn *) next, call->tenant_id,
                       "chat.message.created", &event.base, stmts, handoff ? 3 : 2);
}

//  What to do with the message, once the conversation's events are out.
static void
s_decide (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    ChorusChat__ChannelInboundRequest *args = (ChorusChat__ChannelInboundRequest *)
                                                  call->base.args;
    if (*turn->user_message_id) {
        //  Sent again: the message is stored already
        if (streq (turn->previous_status, "complete"))
            s_read_message (call, turn->message_id, s_answer_replied);
        else if (streq (turn->previous_status, "streaming"))
            service_call_fail_retry (&call->base, "unavailable",
                                     "the reply to this message is being written", 5);
        else if (turn->held)
            s_answer (call, "held", NULL);
        else
            chat_turn_begin (turn, turn->agent_id, turn->user_message_id,
                             turn->user_created_at, NULL);
        return;
    }
    if (turn->held)
        s_store_contact_message (turn, false, s_answer_held);
    else if (chat_channel_wants_person (call->state->handoff_keywords, args->content))
        s_store_contact_message (turn, true, s_notice_stored);
    else
        chat_turn_begin (turn, turn->agent_id, NULL, NULL, args->external_key);
}

static void
s_reopened_event (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    if (!turn->reopened) {
        s_decide (call, NULL);
        return;
    }
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.status = "open";
    service_call_emit (&call->base, (service_step_fn *) s_decide, call->tenant_id,
                       "chat.conversation.reopened", &event.base, NULL, 0);
}

static void
s_found (chat_call_t *call, PGresult *result)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    if (PQntuples (result) != 1) {
        service_call_fail (&call->base, "internal", "the conversation was not stored");
        return;
    }
    snprintf (call->id, sizeof call->id, "%s", PQgetvalue (result, 0, 0));
    snprintf (turn->agent_id, sizeof turn->agent_id, "%s", PQgetvalue (result, 0, 1));
    const char *status = PQgetvalue (result, 0, 2);
    turn->held = !PQgetisnull (result, 0, 3) || streq (status, "pending");
    turn->created = streq (PQgetvalue (result, 0, 4), "t");
    turn->reopened = streq (PQgetvalue (result, 0, 5), "resolved");
    snprintf (turn->user_message_id, sizeof turn->user_message_id, "%s",
              PQgetvalue (result, 0, 6));
    snprintf (turn->user_created_at, sizeof turn->user_created_at, "%s",
              PQgetvalue (result, 0, 7));
    snprintf (turn->message_id, sizeof turn->message_id, "%s", PQgetvalue (result, 0, 8));
    snprintf (turn->previous_status, sizeof turn->previous_status, "%s",
              PQgetvalue (result, 0, 9));
    if (!turn->created) {
        s_reopened_event (call, NULL);
        return;
    }
    ChorusChat__ChannelInboundRequest *args = (ChorusChat__ChannelInboundRequest *)
                                                  call->base.args;
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.agent_id = turn->agent_id;
    event.channel = args->channel;
    event.connection_id = args->connection_id;
    event.contact_id = args->contact_id;
    event.contact_name = args->contact_name;
    event.status = "open";
    service_call_emit (&call->base, (service_step_fn *) s_reopened_event, call->tenant_id,
                       "chat.conversation.created", &event.base, NULL, 0);
}

//  A text field of the request: present, at most max bytes; NULL or the problem.
static const char *
s_field_problem (const char *value, size_t max, bool required, const char *name,
                 char *out, size_t size)
{
    if (required && (!value || !*value))
        snprintf (out, size, "%s is required", name);
    else if (value && strlen (value) > max)
        snprintf (out, size, "%s must be at most %zu bytes", name, max);
    else
        return NULL;
    return out;
}

void
chat_channel_inbound (service_runtime_t *runtime, bus_request_t *request, void *state_)
{
    (void) runtime;
    chat_state_t *state = (chat_state_t *) state_;
    chat_turn_t *turn = chat_turn_new (state, &request,
                                       &chorus_chat__channel_inbound_request__descriptor);
    if (!turn)
        return;
    chat_call_t *call = &turn->call;
    ChorusChat__ChannelInboundRequest *args = (ChorusChat__ChannelInboundRequest *)
                                                  call->base.args;
    turn->inbound = true;
    turn->author_type = "contact";
    turn->content_in = args->content;
    char problem[96];
    if (!args->connection_id || !streq (args->connection_id, call->user_id)) {
        service_call_fail (&call->base, "bad_request",
                           "connection_id must be the caller's user id");
        return;
    }
    if (!chat_conversations_channel_known (args->channel)) {
        service_call_fail (&call->base, "bad_request", "channel is not a platform");
        return;
    }
    if (!args->agent_id || !service_uuid_valid (args->agent_id)) {
        service_call_fail (&call->base, "bad_request", "agent_id must be a UUID");
        return;
    }
    const char *bad = s_field_problem (args->contact_id, S_FIELD_MAX, true, "contact_id",
                                       problem, sizeof problem);
    if (!bad)
        bad = s_field_problem (args->contact_name, S_FIELD_MAX, false, "contact_name",
                               problem, sizeof problem);
    if (!bad)
        bad = s_field_problem (args->thread_id, S_FIELD_MAX, false, "thread_id", problem,
                               sizeof problem);
    if (!bad)
        bad = s_field_problem (args->external_key, S_FIELD_MAX, true, "external_key",
                               problem, sizeof problem);
    if (!bad)
        bad = s_field_problem (args->content, (size_t) state->content_max, true,
                               "content", problem, sizeof problem);
    if (bad) {
        service_call_fail (&call->base, "bad_request", bad);
        return;
    }
    char id[SERVICE_ID_SIZE], title[CHAT_TITLE_MAX * 4 + 1];
    service_uuid_new (id);
    s_title (args->channel, args->contact_name, args->contact_id, title, sizeof title);
    const char *params[] = {id,
                            call->tenant_id,
                            args->agent_id,
                            title,
                            args->connection_id,
                            args->channel,
                            args->contact_id,
                            args->contact_name ? args->contact_name : "",
                            args->thread_id ? args->thread_id : "",
                            args->external_key};
    //  The conversation (made, or its agent and contact name brought up to date,
    //  reopened when resolved), its status before, and what was stored for the
    //  key: the contact's message and the newest reply to it
    service_call_query (
        &call->base, (service_step_fn *) s_found,
        "WITH old AS (SELECT status FROM chat.conversations WHERE tenant_id = $2 AND "
        "connection_id = $5 AND contact_id = $7 AND thread_id = $9), c AS (INSERT INTO "
        "chat.conversations AS v (id, tenant_id, agent_id, title, created_by, channel, "
        "connection_id, contact_id, contact_name, thread_id) VALUES ($1, $2, $3, $4, $5, "
        "$6, $5, $7, NULLIF ($8, ''), $9) ON CONFLICT (tenant_id, connection_id, "
        "contact_id, thread_id) WHERE connection_id IS NOT NULL DO UPDATE SET agent_id = "
        "EXCLUDED.agent_id, contact_name = coalesce (EXCLUDED.contact_name, "
        "v.contact_name), archived = false, status = CASE WHEN v.status = 'resolved' "
        "THEN 'open' ELSE v.status END RETURNING v.id, v.agent_id, v.status, "
        "v.assignee_id, (v.xmax = 0) AS created) SELECT c.id, c.agent_id, c.status, "
        "c.assignee_id, c.created, (SELECT status FROM old), u.id, chat.rfc3339 "
        "(u.created_at), r.id, r.status FROM c LEFT JOIN chat.messages u ON "
        "u.conversation_id = c.id AND u.external_key = $10 LEFT JOIN LATERAL (SELECT id, "
        "status FROM chat.messages WHERE conversation_id = c.id AND reply_to = u.id "
        "ORDER "
        "BY created_at DESC, id DESC LIMIT 1) r ON true",
        10, params);
}

//  ---------------------------------------------------------------------------------
//  A member's message to a channel's contact

static void
s_member_answer (chat_call_t *call, PGresult *result)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    char error[200] = "";
    ChorusChat__Message *message = PQntuples (result) == 1 ? chat_message_from_row (
                                       result, 0, error, sizeof error)
                                                           : NULL;
    if (!message) {
        service_call_fail (&call->base, "internal", "the message could not be read");
        return;
    }
    if (turn->stream) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        if (service_stream_message (&buf, SERVICE_STREAM_COMPLETED, message->id, 1,
                                    &message->base)
            == 0)
            chat_call_reply_raw (call, buf.data, buf.size);
        else
            service_call_fail (&call->base, "internal", "the message could not be sent");
        msgpack_sbuffer_destroy (&buf);
    }
    else
        service_call_reply (&call->base, &message->base);
    protobuf_c_message_free_unpacked (&message->base, NULL);
}

static void
s_member_failed (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    service_call_fail (&call->base, turn->error_code ? turn->error_code : "unavailable",
                       turn->error_message);
}

static void
s_member_queued (chat_call_t *call, const bus_reply_t *reply)
{
    chat_turn_t *turn = (chat_turn_t *) call;
    if (reply->kind != BUS_REPLY_ERROR) {
        s_read_message (call, turn->message_id, s_member_answer);
        return;
    }
    //  Stored, but it will not go out: say so on the message and to the member
    const char *code = chat_call_upstream_code (reply->code);
    char message[400];
    snprintf (message, sizeof message,
              "the message is stored as failed: the channel did not take it (%s)",
              reply->message && *reply->message ? reply->message : code);
    turn->error_code = strdup (streq (code, "not_found") ? "unavailable" : code);
    turn->error_message = strdup (message);
    assert (turn->error_code && turn->error_message);
    const char *params[] = {turn->message_id, call->tenant_id, message};
    db_stmt_t stmts[] = {{"UPDATE chat.messages SET status = 'failed', error = $3, "
                          "updated_at = clock_timestamp () WHERE id = $1 AND tenant_id "
                          "= $2",
                          3, params}};
    service_call_tx (&call->base, (service_step_fn *) s_member_failed, stmts, 1);
}

static void
s_member_enqueue (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    ChorusChannels__OutboundRequest ask = CHORUS_CHANNELS__OUTBOUND_REQUEST__INIT;
    ask.connection_id = turn->connection_id;
    ask.conversation_id = call->id;
    ask.message_id = turn->message_id;
    ask.contact_id = turn->contact_id;
    ask.thread_id = turn->thread_id;
    ask.text = (char *) turn->content_in;
    chat_call_ask (call, "channels", "outbound.enqueue", &ask.base, 10000,
                   s_member_queued, NULL);
}

static void
s_member_stored (chat_call_t *call, PGresult *result)
{
    (void) result;
    chat_turn_t *turn = (chat_turn_t *) call;
    if (!turn->created) {
        s_member_enqueue (call, NULL);
        return;
    }
    //  Nobody held the conversation: the member who answers takes it
    ChorusChat__Conversation event = CHORUS_CHAT__CONVERSATION__INIT;
    event.id = call->id;
    event.status = "open";
    event.assignee_id = call->user_id;
    service_call_emit (&call->base, (service_step_fn *) s_member_enqueue, call->tenant_id,
                       "chat.conversation.assigned", &event.base, NULL, 0);
}

void
chat_channel_member_reply (chat_turn_t *turn, PGresult *result)
{
    chat_call_t *call = &turn->call;
    //  Not a turn: a cancel ends it like any other call
    call->kind = CHAT_CALL_PLAIN;
    turn->connection_id = strdup (PQgetvalue (result, 0, 1));
    turn->contact_id = strdup (PQgetvalue (result, 0, 2));
    turn->thread_id = strdup (PQgetvalue (result, 0, 3));
    assert (turn->connection_id && turn->contact_id && turn->thread_id);
    //  created: the member takes the conversation (nobody held it)
    turn->created = PQgetisnull (result, 0, 4);
    service_uuid_new (turn->message_id);
    char now[40];
    chat_turn_now_text (now, sizeof now);
    const char *message[] = {turn->message_id, call->tenant_id, call->id,
                             turn->content_in, call->user_id,   now};
    const char *conversation[] = {call->id, call->tenant_id, call->user_id};
    db_stmt_t stmts[] = {
        {"INSERT INTO chat.messages (id, tenant_id, conversation_id, role, content, "
         "author_id, author_type, status, created_at, updated_at) VALUES ($1, $2, $3, "
         "'assistant', $4, $5, 'member', 'complete', $6, $6)",
         6, message},
        {"UPDATE chat.conversations SET message_count = message_count + 1, assignee_id = "
         "coalesce (assignee_id, $3::uuid), status = 'open', updated_at = "
         "clock_timestamp () WHERE id = $1 AND tenant_id = $2",
         3, conversation}};
    ChorusChat__Message event = CHORUS_CHAT__MESSAGE__INIT;
    event.id = turn->message_id;
    event.conversation_id = call->id;
    event.role = "assistant";
    event.content = (char *) turn->content_in;
    event.author_id = call->user_id;
    event.author_type = "member";
    event.status = "complete";
    event.created_at = now;
    event.updated_at = now;
    service_call_emit (&call->base, (service_step_fn *) s_member_stored, call->tenant_id,
                       "chat.message.created", &event.base, stmts, 2);
}

void
chat_channel_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_channel: ");
    const char *keywords = "human, real person,operator";
    assert (chat_channel_wants_person (keywords, "I want a HUMAN please"));
    assert (chat_channel_wants_person (keywords, "human"));
    assert (chat_channel_wants_person (keywords, "a real person, now"));
    assert (chat_channel_wants_person (keywords, "Operator!"));
    assert (!chat_channel_wants_person (keywords, "that is humane"));
    assert (!chat_channel_wants_person (keywords, "cooperator"));
    assert (!chat_channel_wants_person (keywords, "a real personality"));
    assert (!chat_channel_wants_person ("", "human"));
    assert (!chat_channel_wants_person (" , ,", "human"));
    char title[CHAT_TITLE_MAX * 4 + 1];
    s_title ("whatsapp", "Alice", "15550001", title, sizeof title);
    assert (streq (title, "WhatsApp: Alice"));
    s_title ("slack", "", "C123", title, sizeof title);
    assert (streq (title, "Slack: C123"));
    char name[400];
    memset (name, 'x', 300);
    name[300] = 0;
    s_title ("telegram", name, "1", title, sizeof title);
    assert (strlen (title) == 150);
    //  A multibyte name is cut on a character boundary
    char wide[401];
    for (int i = 0; i < 200; i++)
        memcpy (wide + 2 * i, "\xc3\xa9", 2);
    wide[400] = 0;
    s_title ("telegram", wide, "1", title, sizeof title);
    assert (strlen (title) == 10 + 140 * 2);
    printf ("OK\n");
}
