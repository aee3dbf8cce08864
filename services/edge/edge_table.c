/*  edge_table: the route table (see the header and schemas/auth.md "Routes").   */
#include "edge_table.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const char *const s_services[] = {"auth",     "chat",         "agents",
                                         "rag",      "integrations", "workflows",
                                         "channels", "analytics"};

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
        //  List routes take cursor and limit 1..100
        if (r->reply_schema && strstr (r->reply_schema, "List")) {
            assert (strcmp (r->query[0].name, "cursor") == 0);
            assert (strcmp (r->query[1].name, "limit") == 0);
            assert (r->query[1].min == 1 && r->query[1].max == 100);
        }
        if (verbose)
            printf ("\n   %-6s %-34s %-16s %s", r->method, r->pattern,
                    r->command ? r->command : "-", edge_auth_need_name (r->need));
    }
    assert (auth_routes == 25);
    size_t services = 0;
    assert (edge_table_services (&services) && services == 8);
    if (verbose)
        printf ("\n  ");
    printf ("OK\n");
}
