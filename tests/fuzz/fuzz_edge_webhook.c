/*  fuzz_edge_webhook: what the edge does with a webhook's bytes (edge_webhook).
    An even first byte: the rest is a service's reply to webhooks.receive; when
    it is accepted, its status is 200..599 and its Content-Type is printable
    ASCII without CR or LF (a reply can never break the header block). An odd
    first byte: the rest, split at newlines, is the query parameters lws decoded;
    the query the edge builds from them holds only URL characters and decodes,
    as the channels service decodes it, to the same parameters. The same bytes
    go in as header values and the body, and come out of the encoded
    WebhookRequest exactly.                                                      */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels.pb-c.h"
#include "codec_msgpack.h"
#include "edge_routes.h"
#include "edge_webhook.h"

#define S_MAX_PARAMS 64

//  Check that query decodes to the count parameters in params (split on '&',
//  then at the first '=', percent-decoded with '+' a space).
static void
s_check_query (const char *query, char *const *params, const size_t *lens, size_t count)
{
    for (const char *c = query; *c; c++)
        assert ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                || (*c >= '0' && *c <= '9') || strchr ("-._~!$'()*,:@/?%&=", *c));
    assert (!strchr (query, '+') && !strchr (query, '#') && !strchr (query, ';'));
    const char *p = query;
    size_t seen = 0;
    while (*p) {
        size_t piece = strcspn (p, "&");
        assert (seen < count);
        const char *eq = memchr (p, '=', piece);
        size_t name_len = eq ? (size_t) (eq - p) : piece;
        char decoded[EDGE_WEBHOOK_QUERY_MAX + 1];
        int n = edge_routes_decode (decoded, sizeof decoded, p, name_len, true);
        assert (n >= 0);
        //  The parameter: name, then '=' and the value when it had one
        const char *want = params[seen];
        size_t want_len = lens[seen];
        const char *want_eq = memchr (want, '=', want_len);
        size_t want_name = want_eq ? (size_t) (want_eq - want) : want_len;
        assert ((size_t) n == want_name && memcmp (decoded, want, want_name) == 0);
        assert (!eq == !want_eq);
        if (eq) {
            int v = edge_routes_decode (decoded, sizeof decoded, eq + 1,
                                        piece - name_len - 1, true);
            assert (v >= 0 && (size_t) v == want_len - want_name - 1);
            assert (memcmp (decoded, want_eq + 1, (size_t) v) == 0);
        }
        seen++;
        p += piece + (p[piece] ? 1 : 0);
    }
    assert (seen == count);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *) data + 1;
    size_t len = size - 1;
    if (!(data[0] & 1)) {
        edge_webhook_reply_t reply;
        char error[256];
        if (edge_webhook_reply_decode (text, len, &reply, error, sizeof error) == 0) {
            assert (reply.status >= 200 && reply.status <= 599);
            size_t type_len = strlen (reply.content_type);
            assert (type_len >= 1 && type_len <= EDGE_WEBHOOK_CONTENT_TYPE_MAX);
            for (size_t i = 0; i < type_len; i++)
                assert (reply.content_type[i] >= 0x20 && reply.content_type[i] < 0x7f);
            assert (reply.body || reply.size == 0);
            edge_webhook_reply_free (&reply);
        }
        return 0;
    }

    //  Query parameters, split at newlines; those accepted must round-trip
    edge_webhook_t *webhook = edge_webhook_new ("whatsapp", "c", "POST");
    char *params[S_MAX_PARAMS];
    size_t lens[S_MAX_PARAMS], count = 0;
    const char *p = text, *end = text + len;
    while (p < end && count < S_MAX_PARAMS) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        size_t piece = nl ? (size_t) (nl - p) : (size_t) (end - p);
        if (edge_webhook_add_query (webhook, p, piece) == 0 && piece) {
            params[count] = malloc (piece);
            assert (params[count]);
            memcpy (params[count], p, piece);
            lens[count++] = piece;
        }
        p += piece + 1;
    }
    const char *query = edge_webhook_query (webhook);
    assert (strlen (query) <= EDGE_WEBHOOK_QUERY_MAX);
    s_check_query (query, params, lens, count);
    for (size_t i = 0; i < count; i++)
        free (params[i]);

    //  The same bytes as a header value and as the body
    size_t header_len = len < EDGE_WEBHOOK_HEADER_MAX + 8 ? len
                                                          : EDGE_WEBHOOK_HEADER_MAX + 8;
    bool header = edge_webhook_set_header (webhook, EDGE_WEBHOOK_SLACK_SIGNATURE, text,
                                           header_len)
                  == 0;
    assert (!header || header_len <= EDGE_WEBHOOK_HEADER_MAX);
    char *body = malloc (len + 1);
    assert (body);
    memcpy (body, text, len);
    edge_webhook_set_body (webhook, &body, len);
    size_t packed_size = 0;
    void *packed = edge_webhook_encode (webhook, &packed_size);
    assert (packed);
    ChorusChannels__WebhookRequest *request = (ChorusChannels__WebhookRequest *)
        codec_decode (&chorus_channels__webhook_request__descriptor, packed, packed_size,
                      NULL, 0);
    assert (request && request->has_body && request->body.len == len);
    assert (len == 0 || memcmp (request->body.data, text, len) == 0);
    assert (strcmp (request->query, query) == 0);
    assert (!header == !request->slack_signature);
    if (header)
        assert (strlen (request->slack_signature) == header_len
                && memcmp (request->slack_signature, text, header_len) == 0);
    protobuf_c_message_free_unpacked (&request->base, NULL);
    free (packed);
    edge_webhook_destroy (&webhook);
    return 0;
}
