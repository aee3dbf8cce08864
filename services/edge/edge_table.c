/*  edge_table: the route table (see the header and schemas/auth.md "Routes").   */
#include "edge_table.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const char *const s_services[] = {"auth",     "chat",         "agents",
                                         "rag",      "integrations", "workflows",
                                         "channels", "analytics"};

static const char *const s_platforms[] = {"whatsapp", "messenger", "instagram",
                                          "telegram", "slack"};

//  The query parameters of a list route (auth.md: ?cursor=&limit=)
#define S_PAGE                                                                           \
    {                                                                                    \
        {"cursor", "string", 0, 0, "Where to go on: next_cursor of the previous page"},  \
        {                                                                                \
            "limit", "integer", 1, 100, "Items per page, newest first (default 50)"      \
        }                                                                                \
    }

static const edge_route_t s_routes[] = {
    {.method = "GET",
     .pattern = "/healthz",
     .kind = EDGE_ROUTE_HEALTHZ,
     .status = 200,
     .summary = "Liveness: 200 whenever the edge serves",
     .reply_schema = "Status"},
    {.method = "GET",
     .pattern = "/readyz",
     .kind = EDGE_ROUTE_READYZ,
     .status = 200,
     .summary = "Readiness: broker, database and Redis checks (503 when one fails)",
     .reply_schema = "Ready"},
    {.method = "GET",
     .pattern = "/metrics",
     .kind = EDGE_ROUTE_METRICS,
     .status = 200,
     .summary = "Prometheus text exposition of the edge's metrics"},
    {.method = "GET",
     .pattern = "/openapi.json",
     .kind = EDGE_ROUTE_OPENAPI,
     .status = 200,
     .summary = "This OpenAPI document"},
    {.method = "GET",
     .pattern = "/.well-known/jwks.json",
     .kind = EDGE_ROUTE_JWKS,
     .status = 200,
     .summary = "The public keys of access tokens (JWKS) when they are EdDSA; 404 with "
                "HS256"},
    {.method = "GET",
     .pattern = "/api/v1/ws",
     .kind = EDGE_ROUTE_WS,
     .status = 101,
     .streams = true,
     .summary = "WebSocket: JSON messages auth/ping/request/cancel, streamed "
                "partial/final/error; credentials from the upgrade request's "
                "Authorization header or chorus_access cookie, or a first "
                "{\"type\":\"auth\",\"token\":...} message",
     .need = EDGE_NEED_OPTIONAL},
    {.method = "GET",
     .pattern = "/api/v1/services",
     .kind = EDGE_ROUTE_BUS,
     .service = "broker",
     .command = "status",
     .status = 200,
     .summary = "The broker's view of every service: replicas, credit, load",
     .reply_schema = "BrokerStatus"},
    {.method = "GET",
     .pattern = "/api/v1/services/{name}/ping",
     .kind = EDGE_ROUTE_BUS,
     .service = "{name}",
     .command = "ping",
     .status = 200,
     .streams = true,
     .summary = "Ping a service over the bus; count > 1 streams count replies",
     .reply_schema = "PingReply",
     .query = {{"count", "integer", 1, 1000,
                "Replies to send (count-1 partials, then final)"},
               {"interval_ms", "integer", 0, 60000, "Milliseconds between replies"}}},
    {.method = "GET",
     .pattern = "/api/v1/services/{name}/health",
     .kind = EDGE_ROUTE_BUS,
     .service = "{name}",
     .command = "health",
     .status = 200,
     .summary = "Health of one replica of a service",
     .reply_schema = "HealthReply"},
    {.method = "POST",
     .pattern = "/api/v1/auth/register",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "register",
     .status = 201,
     .summary = "Create a user (and, without an invite, a tenant it administers); "
                "answers tokens and sets the cookies",
     .request_schema = "RegisterRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_PUBLIC,
     .flags = EDGE_ROUTE_TOKENS},
    {.method = "POST",
     .pattern = "/api/v1/auth/login",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "login",
     .status = 200,
     .summary = "Log in with email and password; answers tokens and sets the cookies",
     .request_schema = "LoginRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_PUBLIC,
     .flags = EDGE_ROUTE_TOKENS},
    {.method = "POST",
     .pattern = "/api/v1/auth/refresh",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "refresh",
     .status = 200,
     .summary = "Rotate a refresh token (body or chorus_refresh cookie) into new tokens",
     .request_schema = "RefreshRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_PUBLIC,
     .flags = EDGE_ROUTE_TOKENS | EDGE_ROUTE_REFRESH_COOKIE},
    {.method = "POST",
     .pattern = "/api/v1/auth/logout",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "logout",
     .status = 204,
     .summary =
         "End the session of a refresh token (body or cookie) and clear the cookies",
     .request_schema = "RefreshRequest",
     .reply_schema = NULL,
     .need = EDGE_NEED_OPTIONAL,
     .flags = EDGE_ROUTE_LOGOUT | EDGE_ROUTE_REFRESH_COOKIE},
    {.method = "GET",
     .pattern = "/api/v1/auth/me",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "me",
     .status = 200,
     .summary = "Who the credential belongs to: user, tenant, tenants, and the API key",
     .request_schema = NULL,
     .reply_schema = "MeReply",
     .need = EDGE_NEED_USER,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/switch",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "switch",
     .status = 200,
     .summary = "A new session in another tenant of the user",
     .request_schema = "SwitchRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_JWT,
     .flags = EDGE_ROUTE_TOKENS},
    {.method = "POST",
     .pattern = "/api/v1/auth/password",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "password.change",
     .status = 200,
     .summary = "Change the password; every other session ends",
     .request_schema = "PasswordChangeRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_JWT,
     .flags = EDGE_ROUTE_TOKENS},
    {.method = "POST",
     .pattern = "/api/v1/auth/password/forgot",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "password.forgot",
     .status = 202,
     .summary = "Mail a single-use password reset token (always accepted)",
     .request_schema = "PasswordForgotRequest",
     .reply_schema = "StatusReply",
     .need = EDGE_NEED_PUBLIC,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/password/reset",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "password.reset",
     .status = 200,
     .summary = "Set a new password with a mailed reset token; every session ends",
     .request_schema = "PasswordResetRequest",
     .reply_schema = "StatusReply",
     .need = EDGE_NEED_PUBLIC,
     .flags = 0},
    {.method = "GET",
     .pattern = "/api/v1/auth/invites",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "invites.list",
     .status = 200,
     .summary = "Invites of the tenant, newest first",
     .request_schema = NULL,
     .reply_schema = "InviteList",
     .query = S_PAGE,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/invites",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "invites.create",
     .status = 201,
     .summary = "Invite someone into the tenant with a role (the token is mailed and "
                "answered once)",
     .request_schema = "InviteCreateRequest",
     .reply_schema = "Invite",
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "DELETE",
     .pattern = "/api/v1/auth/invites/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "invites.delete",
     .status = 204,
     .summary = "Withdraw an invite",
     .request_schema = NULL,
     .reply_schema = NULL,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/invites/accept",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "invites.accept",
     .status = 200,
     .summary = "Join the tenant of an invite; answers tokens for it",
     .request_schema = "InviteAcceptRequest",
     .reply_schema = "TokenReply",
     .need = EDGE_NEED_JWT,
     .flags = EDGE_ROUTE_TOKENS},
    {.method = "GET",
     .pattern = "/api/v1/auth/members",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "members.list",
     .status = 200,
     .summary = "Members of the tenant, newest first",
     .request_schema = NULL,
     .reply_schema = "MemberList",
     .query = S_PAGE,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "PATCH",
     .pattern = "/api/v1/auth/members/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "members.update",
     .status = 200,
     .summary = "Change a member's role",
     .request_schema = "MemberUpdateRequest",
     .reply_schema = "Member",
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "DELETE",
     .pattern = "/api/v1/auth/members/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "members.delete",
     .status = 204,
     .summary = "Remove a member from the tenant",
     .request_schema = NULL,
     .reply_schema = NULL,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "GET",
     .pattern = "/api/v1/auth/tenants",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "tenants.list",
     .status = 200,
     .summary = "Every tenant, newest first",
     .request_schema = NULL,
     .reply_schema = "TenantList",
     .query = S_PAGE,
     .need = EDGE_NEED_PLATFORM_ADMIN,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/tenants",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "tenants.create",
     .status = 201,
     .summary = "Create a tenant",
     .request_schema = "TenantCreateRequest",
     .reply_schema = "Tenant",
     .need = EDGE_NEED_PLATFORM_ADMIN,
     .flags = 0},
    {.method = "GET",
     .pattern = "/api/v1/auth/tenants/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "tenants.get",
     .status = 200,
     .summary = "One tenant",
     .request_schema = NULL,
     .reply_schema = "Tenant",
     .need = EDGE_NEED_PLATFORM_ADMIN,
     .flags = 0},
    {.method = "PATCH",
     .pattern = "/api/v1/auth/tenants/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "tenants.update",
     .status = 200,
     .summary = "Rename a tenant",
     .request_schema = "TenantUpdateRequest",
     .reply_schema = "Tenant",
     .need = EDGE_NEED_PLATFORM_ADMIN,
     .flags = 0},
    {.method = "DELETE",
     .pattern = "/api/v1/auth/tenants/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "tenants.delete",
     .status = 204,
     .summary = "Delete a tenant",
     .request_schema = NULL,
     .reply_schema = NULL,
     .need = EDGE_NEED_PLATFORM_ADMIN,
     .flags = 0},
    {.method = "GET",
     .pattern = "/api/v1/auth/api-keys",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "api_keys.list",
     .status = 200,
     .summary = "API keys of the tenant, newest first (never the keys themselves)",
     .request_schema = NULL,
     .reply_schema = "ApiKeyList",
     .query = S_PAGE,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "POST",
     .pattern = "/api/v1/auth/api-keys",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "api_keys.create",
     .status = 201,
     .summary = "Create an API key; the key itself is answered once",
     .request_schema = "ApiKeyCreateRequest",
     .reply_schema = "ApiKey",
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "DELETE",
     .pattern = "/api/v1/auth/api-keys/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "api_keys.delete",
     .status = 204,
     .summary = "Revoke an API key",
     .request_schema = NULL,
     .reply_schema = NULL,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},
    {.method = "GET",
     .pattern = "/api/v1/auth/audit",
     .kind = EDGE_ROUTE_BUS,
     .service = "auth",
     .command = "audit.list",
     .status = 200,
     .summary = "Security events of the tenant, newest first",
     .request_schema = NULL,
     .reply_schema = "AuditList",
     .query = S_PAGE,
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = 0},

    //  Agents (schemas/chat.md "Routes"): the agents service
    {.method = "GET",
     .pattern = "/api/v1/agents",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.list",
     .status = 200,
     .summary = "Agents of the tenant, newest first",
     .reply_schema = "AgentList",
     .query = S_PAGE,
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/agents",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.create",
     .status = 201,
     .summary = "Create an agent (at least name and system_prompt; provider and model "
                "default to the platform's)",
     .request_schema = "Agent",
     .reply_schema = "Agent",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "GET",
     .pattern = "/api/v1/agents/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.get",
     .status = 200,
     .summary = "One agent",
     .reply_schema = "Agent",
     .need = EDGE_NEED_USER},
    {.method = "PATCH",
     .pattern = "/api/v1/agents/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.update",
     .status = 200,
     .summary = "Change the fields present in the body",
     .request_schema = "Agent",
     .reply_schema = "Agent",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "DELETE",
     .pattern = "/api/v1/agents/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.delete",
     .status = 204,
     .summary = "Delete an agent",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "PUT",
     .pattern = "/api/v1/agents/{id}/avatar",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.avatar_put",
     .status = 200,
     .summary = "Upload the agent's avatar: the raw image as the body, Content-Type "
                "image/png, image/jpeg, image/webp or image/gif (checked against the "
                "file's magic bytes), at most CHORUS_EDGE_AVATAR_MAX_BODY (1 MiB)",
     .reply_schema = "Agent",
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = EDGE_ROUTE_UPLOAD},
    {.method = "GET",
     .pattern = "/api/v1/agents/{id}/avatar",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.avatar_get",
     .status = 200,
     .summary = "The agent's avatar: the image bytes with their Content-Type",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_VERBATIM},
    {.method = "DELETE",
     .pattern = "/api/v1/agents/{id}/avatar",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.avatar_delete",
     .status = 204,
     .summary = "Remove the agent's avatar",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "POST",
     .pattern = "/api/v1/agents/{id}/test",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "agents.test",
     .status = 200,
     .streams = true,
     .summary = "Try the agent on one message (content) without storing anything; "
                "SSE events message.delta, tool.call, message.completed with Accept: "
                "text/event-stream",
     .request_schema = "TurnRequest",
     .reply_schema = "TurnResult",
     .need = EDGE_NEED_TENANT_ADMIN,
     .flags = EDGE_ROUTE_EVENTS},
    {.method = "GET",
     .pattern = "/api/v1/providers",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "providers.list",
     .status = 200,
     .summary = "The tenant's provider settings (keys are never returned)",
     .reply_schema = "ProviderList",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "PUT",
     .pattern = "/api/v1/providers/{provider}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "providers.put",
     .status = 200,
     .summary = "Set the tenant's API key and base URL of a provider (the key is sealed "
                "at rest)",
     .request_schema = "ProviderSetting",
     .reply_schema = "ProviderSetting",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "DELETE",
     .pattern = "/api/v1/providers/{provider}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "providers.delete",
     .status = 204,
     .summary = "Forget the tenant's setting of a provider",
     .need = EDGE_NEED_TENANT_ADMIN},

    //  Conversations and messages: the chat service
    {.method = "GET",
     .pattern = "/api/v1/conversations",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.list",
     .status = 200,
     .summary = "Conversations of the tenant, newest first",
     .reply_schema = "ConversationList",
     .query = {{"cursor", "string", 0, 0,
                "Where to go on: next_cursor of the previous page"},
               {"limit", "integer", 1, 100, "Items per page, newest first (default 50)"},
               {"archived", "boolean", 0, 0,
                "Archived conversations instead (default false)"},
               {"agent_id", "string", 0, 0, "Only the conversations with this agent"},
               {"channel", "string", 0, 0,
                "Only those of a platform (whatsapp, messenger, instagram, telegram, "
                "slack), or web for those without one"},
               {"status", "string", 0, 0, "Only those open, pending or resolved"},
               {"assignee_id", "string", 0, 0,
                "Only those assigned to this member, or none: those the agent answers"}},
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.create",
     .status = 201,
     .summary = "Start a conversation with an agent",
     .request_schema = "ConversationCreateRequest",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},
    {.method = "GET",
     .pattern = "/api/v1/conversations/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.get",
     .status = 200,
     .summary = "A conversation and the newest page of its messages",
     .reply_schema = "ConversationDetail",
     .need = EDGE_NEED_USER},
    {.method = "PATCH",
     .pattern = "/api/v1/conversations/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.update",
     .status = 200,
     .summary = "Rename or archive a conversation",
     .request_schema = "ConversationUpdateRequest",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},
    {.method = "DELETE",
     .pattern = "/api/v1/conversations/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.delete",
     .status = 204,
     .summary = "Delete a conversation and its messages",
     .need = EDGE_NEED_USER},
    {.method = "GET",
     .pattern = "/api/v1/conversations/{id}/messages",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "messages.list",
     .status = 200,
     .summary = "Messages of a conversation, newest first",
     .reply_schema = "MessageList",
     .query = S_PAGE,
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/messages",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "messages.send",
     .status = 200,
     .streams = true,
     .summary = "Send a message and get the agent's reply: the assistant Message, or "
                "with Accept: text/event-stream the events message.created, "
                "message.delta, tool.call, message.completed (ids <message id>:<n>); "
                "Last-Event-ID resumes a reply instead",
     .request_schema = "SendRequest",
     .reply_schema = "Message",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_EVENTS | EDGE_ROUTE_RESUME},
    {.method = "GET",
     .pattern = "/api/v1/conversations/{id}/messages/{message_id}/events",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "messages.send",
     .status = 200,
     .streams = true,
     .summary = "EventSource's way to follow a reply: the events of assistant message "
                "message_id after Last-Event-ID (all without it), then the live ones",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_EVENTS | EDGE_ROUTE_RESUME | EDGE_ROUTE_REPLAY},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/cancel",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.cancel",
     .status = 200,
     .summary = "Stop the running turn of a conversation and its upstream request",
     .reply_schema = "CancelReply",
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/assign",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.assign",
     .status = 200,
     .summary = "Hand the conversation to a member of the tenant (assignee_id; absent "
                "or null: back to the agent); the agent stays silent while a member "
                "holds it",
     .request_schema = "AssignRequest",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/unassign",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.unassign",
     .status = 200,
     .summary = "Give the conversation back to the agent (open, no assignee)",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/resolve",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.resolve",
     .status = 200,
     .summary = "Mark the conversation resolved (a new message from its contact "
                "reopens it)",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/conversations/{id}/reopen",
     .kind = EDGE_ROUTE_BUS,
     .service = "chat",
     .command = "conversations.reopen",
     .status = 200,
     .summary = "Open a resolved or pending conversation again",
     .reply_schema = "Conversation",
     .need = EDGE_NEED_USER},

    //  Channels (schemas/channels.md "Routes"): the channels service
    {.method = "GET",
     .pattern = "/api/v1/channels/connections",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.list",
     .status = 200,
     .summary = "Channel connections of the tenant, newest first (credentials are "
                "never returned)",
     .reply_schema = "ConnectionList",
     .query = S_PAGE,
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/channels/connections",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.create",
     .status = 201,
     .summary = "Connect a channel: platform, agent_id, name, the platform's ids and "
                "credentials (sealed at rest); answers the webhook_url, and a "
                "generated Telegram secret_token once",
     .request_schema = "Connection",
     .reply_schema = "Connection",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "GET",
     .pattern = "/api/v1/channels/connections/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.get",
     .status = 200,
     .summary = "One channel connection and its webhook_url",
     .reply_schema = "Connection",
     .need = EDGE_NEED_USER},
    {.method = "PATCH",
     .pattern = "/api/v1/channels/connections/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.update",
     .status = 200,
     .summary = "Change the fields present; a credential present replaces the stored "
                "one, \"\" clears an optional one",
     .request_schema = "Connection",
     .reply_schema = "Connection",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "DELETE",
     .pattern = "/api/v1/channels/connections/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.delete",
     .status = 204,
     .summary = "Delete a connection with its inbox and outbound rows",
     .need = EDGE_NEED_TENANT_ADMIN},
    {.method = "GET",
     .pattern = "/api/v1/channels/connections/{id}/inbox",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "inbox.list",
     .status = 200,
     .summary = "Messages stored from the connection's webhooks, newest first",
     .reply_schema = "InboxList",
     .query = {{"cursor", "string", 0, 0,
                "Where to go on: next_cursor of the previous page"},
               {"limit", "integer", 1, 100, "Items per page, newest first (default 50)"},
               {"status", "string", 0,
                0, "Only messages in this state: received, processing, done, failed"}},
     .need = EDGE_NEED_USER},
    {.method = "GET",
     .pattern = "/api/v1/channels/connections/{id}/outbound",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "outbound.list",
     .status = 200,
     .summary = "Messages sent (or being sent) through the connection, one per part, "
                "newest first, with their delivery status and the platform's error",
     .reply_schema = "OutboundList",
     .query =
         {{"cursor", "string", 0, 0, "Where to go on: next_cursor of the previous page"},
          {"limit", "integer", 1, 100, "Items per page, newest first (default 50)"},
          {"status", "string", 0, 0,
           "Only deliveries in this state: queued, sending, sent, delivered, read, "
           "failed"}},
     .need = EDGE_NEED_USER},
    {.method = "POST",
     .pattern = "/api/v1/channels/connections/{id}/test",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "connections.test",
     .status = 200,
     .summary = "Try the connection's credentials on the platform's API (ok, or the "
                "platform's error)",
     .reply_schema = "ConnectionTest",
     .need = EDGE_NEED_TENANT_ADMIN},

    //  Webhooks of the platforms: raw bytes in, the service's WebhookReply out
    {.method = "GET",
     .pattern = "/webhooks/{platform}/{connection_id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "webhooks.receive",
     .status = 200,
     .summary = "A platform's webhook handshake (Meta's GET with hub.mode, "
                "hub.verify_token and hub.challenge): the channels service answers",
     .query = {{"hub.mode", "string", 0, 0, "Meta's handshake: subscribe"},
               {"hub.verify_token", "string", 0, 0,
                "The verify token given in Meta's app dashboard"},
               {"hub.challenge", "string", 0, 0,
                "Echoed as text/plain when the token matches"}},
     .need = EDGE_NEED_PUBLIC,
     .flags = EDGE_ROUTE_WEBHOOK},
    {.method = "POST",
     .pattern = "/webhooks/{platform}/{connection_id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "channels",
     .command = "webhooks.receive",
     .status = 200,
     .summary = "A platform's webhook: the raw body and its signature headers go to "
                "the channels service, which verifies and stores it; its answer "
                "(status, Content-Type, body) is written out as it is",
     .need = EDGE_NEED_PUBLIC,
     .flags = EDGE_ROUTE_WEBHOOK},

    //  The OpenAI-compatible API: each agent is a model
    {.method = "GET",
     .pattern = "/v1/models",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "openai_models",
     .status = 200,
     .summary = "The tenant's enabled agents as OpenAI models (id: the agent's name)",
     .reply_schema = "OpenAIModelList",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_OPENAI},
    {.method = "GET",
     .pattern = "/v1/models/{id}",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "openai_model",
     .status = 200,
     .summary = "One enabled agent of the tenant as an OpenAI model, by its name (or "
                "id); 404 model_not_found otherwise",
     .reply_schema = "OpenAIModel",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_OPENAI},
    {.method = "POST",
     .pattern = "/v1/chat/completions",
     .kind = EDGE_ROUTE_BUS,
     .service = "agents",
     .command = "openai_chat",
     .status = 200,
     .streams = true,
     .summary = "OpenAI's chat completions with an agent as the model (its name or "
                "id); with \"stream\": true, chat.completion.chunk events and "
                "data: [DONE]",
     .request_schema = "OpenAIChatRequest",
     .reply_schema = "OpenAIChatCompletion",
     .need = EDGE_NEED_USER,
     .flags = EDGE_ROUTE_OPENAI},
};

const edge_route_t *
edge_table_routes (size_t *count)
{
    *count = sizeof s_routes / sizeof s_routes[0];
    return s_routes;
}

const char *const *
edge_table_services (size_t *count)
{
    *count = sizeof s_services / sizeof s_services[0];
    return s_services;
}

const char *const *
edge_table_platforms (size_t *count)
{
    *count = sizeof s_platforms / sizeof s_platforms[0];
    return s_platforms;
}

void
edge_table_test (bool verbose)
{
    printf (" * edge_table: ");
    size_t count = 0;
    const edge_route_t *routes = edge_table_routes (&count);
    size_t auth_routes = 0;
    for (size_t i = 0; i < count; i++) {
        const edge_route_t *r = &routes[i];
        assert (r->method && r->pattern && r->pattern[0] == '/' && r->summary);
        assert (r->status >= 100 && r->status < 300);
        //  A bus route names its command; 204 routes answer no body
        assert (r->kind != EDGE_ROUTE_BUS || (r->service && r->command));
        assert (r->status != 204 || !r->reply_schema);
        //  Bodies only where methods carry them
        if (strcmp (r->method, "GET") == 0 || strcmp (r->method, "DELETE") == 0)
            assert (!r->request_schema);
        //  Every method and pattern once
        for (size_t j = 0; j < i; j++)
            assert (strcmp (routes[j].pattern, r->pattern) != 0
                    || strcmp (routes[j].method, r->method) != 0);
        //  Services routes stay public; auth routes follow auth.md
        if (strncmp (r->pattern, "/api/v1/services", 16) == 0)
            assert (r->need == EDGE_NEED_PUBLIC);
        if (r->service && strcmp (r->service, "auth") == 0) {
            auth_routes++;
            assert (strncmp (r->pattern, "/api/v1/auth/", 13) == 0);
        }
        //  Paged lists take cursor and limit 1..100 (not the providers, which
        //  are a handful, nor OpenAI's model list)
        if (r->reply_schema && strstr (r->reply_schema, "List")
            && strcmp (r->reply_schema, "ProviderList") != 0
            && strcmp (r->reply_schema, "OpenAIModelList") != 0) {
            assert (strcmp (r->query[0].name, "cursor") == 0);
            assert (strcmp (r->query[1].name, "limit") == 0);
            assert (r->query[1].min == 1 && r->query[1].max == 100);
        }
        //  Streaming flags only where the route streams; OpenAI's under /v1/
        if (r->flags & (EDGE_ROUTE_EVENTS | EDGE_ROUTE_REPLAY))
            assert (r->streams);
        if (r->flags & EDGE_ROUTE_REPLAY)
            assert ((r->flags & EDGE_ROUTE_RESUME)
                    && strstr (r->pattern, "{message_id}"));
        assert (!(r->flags & EDGE_ROUTE_OPENAI)
                == (strncmp (r->pattern, "/v1/", 4) != 0));
        //  Webhooks: public, raw (no JSON body), never streamed, under /webhooks/
        if (r->flags & EDGE_ROUTE_WEBHOOK)
            assert (r->need == EDGE_NEED_PUBLIC && !r->request_schema && !r->streams
                    && !r->reply_schema && r->kind == EDGE_ROUTE_BUS
                    && strcmp (r->service, "channels") == 0
                    && strcmp (r->command, "webhooks.receive") == 0);
        assert (!(r->flags & EDGE_ROUTE_WEBHOOK)
                == (strncmp (r->pattern, "/webhooks/", 10) != 0));
        //  Uploads take raw bytes, verbatim replies answer them: neither streams
        if (r->flags & EDGE_ROUTE_UPLOAD)
            assert (strcmp (r->method, "PUT") == 0 && !r->request_schema && !r->streams
                    && r->kind == EDGE_ROUTE_BUS && r->need != EDGE_NEED_PUBLIC);
        if (r->flags & EDGE_ROUTE_VERBATIM)
            assert (strcmp (r->method, "GET") == 0 && !r->reply_schema && !r->streams
                    && r->kind == EDGE_ROUTE_BUS);
        if (verbose)
            printf ("\n   %-6s %-34s %-16s %s", r->method, r->pattern,
                    r->command ? r->command : "-", edge_auth_need_name (r->need));
    }
    assert (auth_routes == 25);

    //  schemas/chat.md "Routes": command, who, success status
    static const struct {
        const char *method, *pattern, *service, *command;
        edge_need_t need;
        int status;
    } chat_md[] = {
        {"GET", "/api/v1/agents", "agents", "agents.list", EDGE_NEED_USER, 200},
        {"POST", "/api/v1/agents", "agents", "agents.create", EDGE_NEED_TENANT_ADMIN,
         201},
        {"GET", "/api/v1/agents/{id}", "agents", "agents.get", EDGE_NEED_USER, 200},
        {"PATCH", "/api/v1/agents/{id}", "agents", "agents.update",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"DELETE", "/api/v1/agents/{id}", "agents", "agents.delete",
         EDGE_NEED_TENANT_ADMIN, 204},
        {"PUT", "/api/v1/agents/{id}/avatar", "agents", "agents.avatar_put",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"GET", "/api/v1/agents/{id}/avatar", "agents", "agents.avatar_get",
         EDGE_NEED_USER, 200},
        {"DELETE", "/api/v1/agents/{id}/avatar", "agents", "agents.avatar_delete",
         EDGE_NEED_TENANT_ADMIN, 204},
        {"POST", "/api/v1/agents/{id}/test", "agents", "agents.test",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"GET", "/api/v1/providers", "agents", "providers.list", EDGE_NEED_TENANT_ADMIN,
         200},
        {"PUT", "/api/v1/providers/{provider}", "agents", "providers.put",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"DELETE", "/api/v1/providers/{provider}", "agents", "providers.delete",
         EDGE_NEED_TENANT_ADMIN, 204},
        {"GET", "/api/v1/conversations", "chat", "conversations.list", EDGE_NEED_USER,
         200},
        {"POST", "/api/v1/conversations", "chat", "conversations.create", EDGE_NEED_USER,
         201},
        {"GET", "/api/v1/conversations/{id}", "chat", "conversations.get", EDGE_NEED_USER,
         200},
        {"PATCH", "/api/v1/conversations/{id}", "chat", "conversations.update",
         EDGE_NEED_USER, 200},
        {"DELETE", "/api/v1/conversations/{id}", "chat", "conversations.delete",
         EDGE_NEED_USER, 204},
        {"GET", "/api/v1/conversations/{id}/messages", "chat", "messages.list",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/messages", "chat", "messages.send",
         EDGE_NEED_USER, 200},
        {"GET", "/api/v1/conversations/{id}/messages/{message_id}/events", "chat",
         "messages.send", EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/cancel", "chat", "conversations.cancel",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/assign", "chat", "conversations.assign",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/unassign", "chat", "conversations.unassign",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/resolve", "chat", "conversations.resolve",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/conversations/{id}/reopen", "chat", "conversations.reopen",
         EDGE_NEED_USER, 200},
        {"GET", "/v1/models", "agents", "openai_models", EDGE_NEED_USER, 200},
        {"GET", "/v1/models/{id}", "agents", "openai_model", EDGE_NEED_USER, 200},
        {"POST", "/v1/chat/completions", "agents", "openai_chat", EDGE_NEED_USER, 200},
    };
    size_t chat_routes = 0;
    for (size_t i = 0; i < count; i++)
        if (routes[i].service
            && (strcmp (routes[i].service, "agents") == 0
                || strcmp (routes[i].service, "chat") == 0))
            chat_routes++;
    assert (chat_routes == sizeof chat_md / sizeof chat_md[0]);
    for (size_t c = 0; c < sizeof chat_md / sizeof chat_md[0]; c++) {
        const edge_route_t *r = NULL;
        for (size_t i = 0; i < count && !r; i++)
            if (strcmp (routes[i].method, chat_md[c].method) == 0
                && strcmp (routes[i].pattern, chat_md[c].pattern) == 0)
                r = &routes[i];
        assert (r && r->kind == EDGE_ROUTE_BUS);
        assert (strcmp (r->service, chat_md[c].service) == 0);
        assert (strcmp (r->command, chat_md[c].command) == 0);
        assert (r->need == chat_md[c].need && r->status == chat_md[c].status);
    }

    //  schemas/channels.md "Routes"
    static const struct {
        const char *method, *pattern, *command;
        edge_need_t need;
        int status;
    } channels_md[] = {
        {"GET", "/api/v1/channels/connections", "connections.list", EDGE_NEED_USER, 200},
        {"POST", "/api/v1/channels/connections", "connections.create",
         EDGE_NEED_TENANT_ADMIN, 201},
        {"GET", "/api/v1/channels/connections/{id}", "connections.get", EDGE_NEED_USER,
         200},
        {"PATCH", "/api/v1/channels/connections/{id}", "connections.update",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"DELETE", "/api/v1/channels/connections/{id}", "connections.delete",
         EDGE_NEED_TENANT_ADMIN, 204},
        {"GET", "/api/v1/channels/connections/{id}/inbox", "inbox.list", EDGE_NEED_USER,
         200},
        {"GET", "/api/v1/channels/connections/{id}/outbound", "outbound.list",
         EDGE_NEED_USER, 200},
        {"POST", "/api/v1/channels/connections/{id}/test", "connections.test",
         EDGE_NEED_TENANT_ADMIN, 200},
        {"GET", "/webhooks/{platform}/{connection_id}", "webhooks.receive",
         EDGE_NEED_PUBLIC, 200},
        {"POST", "/webhooks/{platform}/{connection_id}", "webhooks.receive",
         EDGE_NEED_PUBLIC, 200},
    };
    size_t channel_routes = 0;
    for (size_t i = 0; i < count; i++)
        if (routes[i].service && strcmp (routes[i].service, "channels") == 0)
            channel_routes++;
    assert (channel_routes == sizeof channels_md / sizeof channels_md[0]);
    for (size_t c = 0; c < sizeof channels_md / sizeof channels_md[0]; c++) {
        const edge_route_t *r = NULL;
        for (size_t i = 0; i < count && !r; i++)
            if (strcmp (routes[i].method, channels_md[c].method) == 0
                && strcmp (routes[i].pattern, channels_md[c].pattern) == 0)
                r = &routes[i];
        assert (r && r->kind == EDGE_ROUTE_BUS);
        assert (strcmp (r->service, "channels") == 0);
        assert (strcmp (r->command, channels_md[c].command) == 0);
        assert (r->need == channels_md[c].need && r->status == channels_md[c].status);
    }
    size_t services = 0, platforms = 0;
    assert (edge_table_services (&services) && services == 8);
    assert (edge_table_platforms (&platforms) && platforms == 5);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
