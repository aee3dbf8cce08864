/*  edge_testservice: a replica for the edge's selftests. It answers "ping" (count
    replies interval_ms apart, or never in HOLD mode, or with 16 KB bodies in BIG
    mode) and "health", counts cancellations, and answers every other command with
    the generic "unknown_command" whose message lists the identity headers the
    edge sent (user, tenant, role, session, key, ip), so tests see them arrive.
    It is no auth service: it answers no auth command.

    In API mode it stands in for the chat and agents services instead: every
    other command answers {"command", "args", "user"} (the arguments it got), or
    as the args say: "hold" never answers, "error" (with "retry_after") fails
    with that code; with "stream": true, messages.send and agents.test stream
    chat.md's events ({"event","id","data"}: message.created with the args,
    message.delta, message.completed) and openai_chat OpenAI chunks, and
    "fail_mid" ends them with upstream_error after the first one. It also stands
    in for channels' webhooks.receive: it keeps the last WebhookRequest with the
    headers it came with (edge_testservice_webhook) and answers as the path's
    connection id says: "hold" never, "error-<code>" with that bus error,
    "garbage" with a body that is no WebhookReply, "status-<n>" with status n
    (text/plain), anything else 200 with the request's Content-Type and body
    echoed byte for byte.

        edge_testservice_config_t config = {brokers, "chat", EDGE_TESTSERVICE_NORMAL};
        zactor_t *chat = zactor_new (edge_testservice_actor, &config);
        int cancels = edge_testservice_cancels (chat);                          */
#ifndef EDGE_TESTSERVICE_H_INCLUDED
#define EDGE_TESTSERVICE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

//  How ping behaves.
typedef enum {
    EDGE_TESTSERVICE_NORMAL,  //  answers
    EDGE_TESTSERVICE_HOLD,    //  never answers: waits for a cancel or the deadline
    EDGE_TESTSERVICE_BIG,     //  answers with 16 KB bodies, eight at a time
    EDGE_TESTSERVICE_API      //  stands in for chat and agents (see above)
} edge_testservice_mode_t;

//  What the actor is started with (borrowed while it runs).
typedef struct {
    const char *brokers;           //  broker endpoint
    const char *service;           //  service name
    edge_testservice_mode_t mode;  //  how ping behaves
} edge_testservice_config_t;

//  The replica as an actor; args is an edge_testservice_config_t *.
void edge_testservice_actor (zsock_t *pipe, void *args);

//  Cancellations the replica has seen.
int edge_testservice_cancels (zactor_t *service);

//  Wait up to two seconds until the replica's cancellations pass n; true when
//  they did.
bool edge_testservice_wait_cancels (zactor_t *service, int n);

//  The last webhooks.receive the replica got: its msgpack body (a new frame the
//  caller destroys; NULL when none came) and, in headers (size bytes), the bus
//  headers it carried as "user=.. tenant=.. role=.. session=.. key=.. ip=..
//  timeout=..".
zframe_t *edge_testservice_webhook (zactor_t *service, char *headers, size_t size);

void edge_testservice_test (bool verbose);

#endif
