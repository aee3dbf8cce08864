/*  edge_webhook: the pure part of what the edge does for a platform's webhook
    (schemas/channels.md "Webhooks: what the edge does"). It collects one request
    into the channels service's WebhookRequest: the path's platform and connection
    id, the method, the query string, the named headers (each bounded) and the
    body bytes untouched; and it checks a FINAL WebhookReply before edge_http
    writes it out as it is (status 200..599, a Content-Type that cannot break the
    header block). No sockets: edge_http reads lws and sends, the fuzz target
    feeds it bytes.

    The query: lws decodes a request's query while it parses it and keeps only
    the decoded parameters, so the edge cannot pass the bytes after '?' as they
    came. Each parameter is encoded again instead (RFC 3986 unreserved characters
    and "!$'()*,:@/?" as they are, everything else as %XX): a query of plain
    values (Meta's hub.mode=subscribe&hub.verify_token=...&hub.challenge=...)
    comes out byte for byte, and any query decodes to the same pairs.

        edge_webhook_t *webhook = edge_webhook_new ("whatsapp", id, "POST");
        if (edge_webhook_add_query (webhook, "hub.mode=subscribe", 18)
            || edge_webhook_set_header (webhook, EDGE_WEBHOOK_HUB_SIGNATURE_256,
                                        value, len))
            ...400...
        edge_webhook_set_body (webhook, &body, size);
        size_t size;  void *packed = edge_webhook_encode (webhook, &size);      */
#ifndef EDGE_WEBHOOK_H_INCLUDED
#define EDGE_WEBHOOK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest query string passed on (longer: 400)
#define EDGE_WEBHOOK_QUERY_MAX 4096
//  Longest value of a named header (longer: 400)
#define EDGE_WEBHOOK_HEADER_MAX 1024
//  Longest Content-Type of a reply written out
#define EDGE_WEBHOOK_CONTENT_TYPE_MAX 256

typedef struct _edge_webhook_t edge_webhook_t;

//  The headers a webhook passes on, each into the WebhookRequest field of its name.
typedef enum {
    EDGE_WEBHOOK_CONTENT_TYPE = 0,         //  Content-Type
    EDGE_WEBHOOK_HUB_SIGNATURE_256,        //  X-Hub-Signature-256
    EDGE_WEBHOOK_TELEGRAM_SECRET_TOKEN,    //  X-Telegram-Bot-Api-Secret-Token
    EDGE_WEBHOOK_SLACK_SIGNATURE,          //  X-Slack-Signature
    EDGE_WEBHOOK_SLACK_REQUEST_TIMESTAMP,  //  X-Slack-Request-Timestamp
    EDGE_WEBHOOK_SLACK_RETRY_NUM,          //  X-Slack-Retry-Num
    EDGE_WEBHOOK_SLACK_RETRY_REASON,       //  X-Slack-Retry-Reason
    EDGE_WEBHOOK_HEADERS                   //  how many
} edge_webhook_header_t;

//  A checked FINAL reply of webhooks.receive, ready to be written out.
typedef struct {
    int status;                //  200..599
    const char *content_type;  //  printable, at most EDGE_WEBHOOK_CONTENT_TYPE_MAX
    const uint8_t *body;       //  the bytes to answer (may be NULL when size is 0)
    size_t size;               //  their length
    void *message;             //  the decoded message the fields point into
} edge_webhook_reply_t;

//  A webhook request to platform / connection_id (path segments as received)
//  by method (GET or POST). The strings are copied.
edge_webhook_t *edge_webhook_new (const char *platform, const char *connection_id,
                                  const char *method);
void edge_webhook_destroy (edge_webhook_t **self_p);

//  Add one query parameter as lws delivers it: "name=value" or "name", len bytes,
//  decoded. An empty one is skipped. Returns -1 when the query would grow past
//  EDGE_WEBHOOK_QUERY_MAX bytes or the parameter holds a NUL.
int edge_webhook_add_query (edge_webhook_t *self, const char *fragment, size_t len)
    __attribute__ ((warn_unused_result));

//  The query string as it goes to the service ("" when none).
const char *edge_webhook_query (edge_webhook_t *self);

//  The header's name as HTTP spells it ("X-Hub-Signature-256"), and the key lws
//  looks a custom header up by (lowercase, with the colon: "x-hub-signature-256:").
const char *edge_webhook_header_name (edge_webhook_header_t header);
const char *edge_webhook_header_key (edge_webhook_header_t header);

//  Set a header's value (len bytes). Returns -1 when it is longer than
//  EDGE_WEBHOOK_HEADER_MAX bytes or not UTF-8 without NUL; the field stays unset.
int edge_webhook_set_header (edge_webhook_t *self, edge_webhook_header_t header,
                             const char *value, size_t len)
    __attribute__ ((warn_unused_result));

//  The value of a header, NULL when unset.
const char *edge_webhook_header (edge_webhook_t *self, edge_webhook_header_t header);

//  Take the body: *body_p (malloc'd, size bytes, may be NULL when size is 0) is
//  owned by the webhook from here and *body_p is set to NULL.
void edge_webhook_set_body (edge_webhook_t *self, char **body_p, size_t size);

//  The WebhookRequest as a msgpack map (schemas/channels.proto), the body as bin
//  (empty when none was set), absent headers absent. Returns a new buffer (the
//  caller frees) with its length in *size, or NULL when it cannot be encoded.
void *edge_webhook_encode (edge_webhook_t *self, size_t *size);

//  Decode and check the body of a FINAL reply to webhooks.receive. Returns 0 with
//  reply filled (free it with edge_webhook_reply_free), or -1 with a reason in
//  error: not a WebhookReply, a status outside 200..599, a Content-Type that is
//  not 1..EDGE_WEBHOOK_CONTENT_TYPE_MAX printable ASCII characters. An absent
//  Content-Type is application/octet-stream.
int edge_webhook_reply_decode (const void *data, size_t size, edge_webhook_reply_t *reply,
                               char *error, size_t error_size)
    __attribute__ ((warn_unused_result));
void edge_webhook_reply_free (edge_webhook_reply_t *reply);

void edge_webhook_test (bool verbose);

#endif
