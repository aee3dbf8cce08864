/*  chat_events: stream event bodies and the reply event log (see chat_events.h). */
#include "chat_events.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <inttypes.h>

#include "chat.pb-c.h"
#include "codec_msgpack.h"
#include "service_call.h"

void
chat_events_live (msgpack_sbuffer *out, const char *conversation_id, const char *origin,
                  uint64_t n, const void *event, size_t size)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    codec_pack_str (&pk, "conversation_id");
    codec_pack_str (&pk, conversation_id);
    codec_pack_str (&pk, "origin");
    codec_pack_str (&pk, origin);
    codec_pack_str (&pk, "n");
    msgpack_pack_uint64 (&pk, n);
    codec_pack_str (&pk, "stream");
    msgpack_sbuffer_write (out, event, size);  //  the event's own map, as it is
}

int
chat_events_parse_id (const char *text, char *message_id, uint32_t *n)
{
    if (!text || strlen (text) < 36)
        return -1;
    char id[SERVICE_ID_SIZE];
    memcpy (id, text, 36);
    id[36] = 0;
    if (!service_uuid_valid (id))
        return -1;
    const char *rest = text + 36;
    uint64_t value = 0;
    if (*rest == ':') {
        rest++;
        if (!*rest || strlen (rest) > 10)
            return -1;
        for (; *rest; rest++) {
            if (!isdigit ((unsigned char) *rest))
                return -1;
            value = value * 10 + (uint64_t) (*rest - '0');
        }
        if (value > UINT32_MAX)
            return -1;
    }
    else if (*rest)
        return -1;
    for (char *p = id; *p; p++)
        *p = (char) tolower ((unsigned char) *p);
    memcpy (message_id, id, SERVICE_ID_SIZE);
    *n = (uint32_t) value;
    return 0;
}

void
chat_events_key (char *key, size_t size, const char *message_id)
{
    snprintf (key, size, "chorus:chat:events:%s", message_id);
}

void
chat_events_follow_key (char *key, size_t size, const char *message_id)
{
    snprintf (key, size, "chorus:chat:follow:%s", message_id);
}

//  Event log writes are fire and forget; the callback must not touch anything
//  that may be gone by the time Redis answers (or the client is destroyed).
static void
s_ignored (redisReply *reply, const char *error, void *arg)
{
    (void) reply;
    (void) error;
    (void) arg;
}

void
chat_events_record (redis_client_t *redis, const char *message_id, uint32_t n,
                    const char *event, const void *body, size_t size, int64_t ttl_s)
{
    if (!redis || !redis_client_healthy (redis))
        return;
    char key[80], id[24];
    chat_events_key (key, sizeof key, message_id);
    snprintf (id, sizeof id, "0-%" PRIu32, n);
    const char *argv[] = {"XADD", key, id, event, (const char *) body};
    size_t lengths[] = {4, strlen (key), strlen (id), strlen (event), size};
    if (redis_client_command_argv (redis, s_ignored, NULL, 5, argv, lengths))
        return;
    if (ttl_s > 0) {
        char seconds[24];
        snprintf (seconds, sizeof seconds, "%" PRId64, ttl_s);
        const char *expire[] = {"EXPIRE", key, seconds};
        if (redis_client_command_argv (redis, s_ignored, NULL, 3, expire, NULL))
            return;
    }
}

int
chat_events_follow (redis_client_t *redis, const char *message_id)
{
    char key[80], ttl[16];
    chat_events_follow_key (key, sizeof key, message_id);
    snprintf (ttl, sizeof ttl, "%d", CHAT_EVENTS_FOLLOW_MS);
    const char *argv[] = {"SET", key, "1", "PX", ttl};
    return redis_client_command_argv (redis, s_ignored, NULL, 5, argv, NULL);
}

void
chat_events_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_events: ");
    const char *id = "0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d";
    //  Last-Event-ID
    char parsed[SERVICE_ID_SIZE];
    uint32_t n = 99;
    assert (chat_events_parse_id ("0B8E2A4C-5D6F-4A1B-9C3D-2E4F6A8B0C1D:17", parsed, &n)
            == 0);
    assert (streq (parsed, id) && n == 17);
    assert (chat_events_parse_id (id, parsed, &n) == 0 && n == 0);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:1x", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d:99999999999",
                                  parsed, &n)
            == -1);
    assert (chat_events_parse_id ("0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d;1", parsed, &n)
            == -1);
    assert (chat_events_parse_id ("nope", parsed, &n) == -1);
    assert (chat_events_parse_id (NULL, parsed, &n) == -1);
    char key[80];
    chat_events_key (key, sizeof key, id);
    assert (streq (key, "chorus:chat:events:0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    chat_events_follow_key (key, sizeof key, id);
    assert (streq (key, "chorus:chat:follow:0b8e2a4c-5d6f-4a1b-9c3d-2e4f6a8b0c1d"));
    printf ("OK\n");
}
