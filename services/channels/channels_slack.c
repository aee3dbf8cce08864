/*  channels_slack: Slack Events API bodies (channels_slack.h).                */
#include "channels_slack.h"

#include <assert.h>
#include <czmq.h>

//  True when challenge is 1..256 printable ASCII bytes.
static bool
s_challenge_valid (const char *challenge)
{
    size_t length = challenge ? strlen (challenge) : 0;
    if (length == 0 || length > 256)
        return false;
    for (size_t i = 0; i < length; i++)
        if ((unsigned char) challenge[i] < 0x21 || (unsigned char) challenge[i] > 0x7e)
            return false;
    return true;
}

//  True when event is a message a person wrote to the bot: an app_mention, or a
//  message in a direct conversation, in both cases not from a bot.
static bool
s_event_wanted (json_t *event, const char *bot_user_id)
{
    const char *type = channels_batch_str (event, "type");
    const char *user = channels_batch_str (event, "user");
    const char *subtype = channels_batch_str (event, "subtype");
    if (!type || !user || json_object_get (event, "bot_id")
        || json_object_get (event, "bot_profile")
        || (bot_user_id && *bot_user_id && streq (user, bot_user_id)))
        return false;
    if (subtype && !streq (subtype, "file_share") && !streq (subtype, "thread_broadcast"))
        return false;
    if (streq (type, "app_mention"))
        return true;
    const char *channel_type = channels_batch_str (event, "channel_type");
    return streq (type, "message") && channel_type && streq (channel_type, "im");
}

channels_parse_t
channels_slack_parse (const char *bot_user_id, const void *body, size_t size,
                      channels_batch_t *batch)
{
    json_t *root = body ? json_loadb ((const char *) body, size, JSON_REJECT_DUPLICATES,
                                      NULL)
                        : NULL;
    const char *type = channels_batch_str (root, "type");
    channels_parse_t rc = CHANNELS_PARSE_BAD;
    if (type && streq (type, "url_verification")) {
        const char *challenge = channels_batch_str (root, "challenge");
        if (s_challenge_valid (challenge)) {
            channels_batch_set_challenge (batch, challenge);
            rc = CHANNELS_PARSE_OK;
        }
    }
    else if (type && streq (type, "event_callback")) {
        json_t *event = json_object_get (root, "event");
        const char *event_id = channels_batch_str (root, "event_id");
        if (json_is_object (event) && event_id && *event_id) {
            rc = CHANNELS_PARSE_OK;
            if (!s_event_wanted (event, bot_user_id))
                channels_batch_ignore (batch);
            else {
                const char *ts = channels_batch_str (event, "ts");
                const char *thread = channels_batch_str (event, "thread_ts");
                bool mention = streq (channels_batch_str (event, "type"), "app_mention");
                char when[32];
                channels_item_t item = {
                    .kind = "message",
                    .external_id = event_id,
                    .message_id = ts,
                    .sender_id = channels_batch_str (event, "user"),
                    .chat_id = channels_batch_str (event, "channel"),
                    //  A mention is answered in its thread, a direct message in
                    //  place unless it is in a thread
                    .thread_id = thread    ? thread
                                 : mention ? ts
                                           : NULL,
                    .message_type = mention ? "mention" : "text",
                    .text = channels_batch_str (event, "text"),
                    .sent_at = channels_batch_id (root, "event_time", when, sizeof when),
                    .payload = root};
                if (!item.chat_id)
                    channels_batch_ignore (batch);
                else if (channels_batch_add (batch, &item))
                    rc = CHANNELS_PARSE_TOO_MANY;
            }
        }
    }
    else if (type) {
        //  app_rate_limited and whatever Slack adds later: acknowledged
        channels_batch_ignore (batch);
        rc = CHANNELS_PARSE_OK;
    }
    json_decref (root);
    return rc;
}

void
channels_slack_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_slack: ");
    channels_batch_t *batch = channels_batch_new ();
    const char *verification =
        "{\"token\":\"Jhj5dZrVaK7ZwHHjRyZWjbDl\",\"challenge\":"
        "\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\",\"type\":"
        "\"url_verification\"}";
    assert (channels_slack_parse (NULL, verification, strlen (verification), batch)
            == CHANNELS_PARSE_OK);
    assert (streq (channels_batch_challenge (batch),
                   "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"));
    assert (channels_batch_size (batch) == 0);
    channels_batch_destroy (&batch);

    //  A mention in a channel thread, and a direct message
    const char *mention =
        "{\"token\":\"x\",\"team_id\":\"T1\",\"api_app_id\":\"A1\",\"event\":{\"type\":"
        "\"app_mention\",\"user\":\"U061F7AUR\",\"text\":\"<@U0LAN0Z89> is it "
        "everything?\",\"ts\":\"1515449522.000016\",\"thread_ts\":\"1515449500.000001\","
        "\"channel\":\"C0LAN2Q65\",\"event_ts\":\"1515449522000016\"},\"type\":"
        "\"event_callback\",\"event_id\":\"Ev0LAN670R\",\"event_time\":1515449522}";
    const char *direct =
        "{\"type\":\"event_callback\",\"event_id\":\"Ev0DM\",\"event_time\":1700000000,"
        "\"event\":{\"type\":\"message\",\"channel_type\":\"im\",\"user\":\"U2\","
        "\"text\":\"hello\",\"ts\":\"1700000000.000100\",\"channel\":\"D024BE91L\"}}";
    batch = channels_batch_new ();
    assert (channels_slack_parse ("U0LAN0Z89", mention, strlen (mention), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_slack_parse ("U0LAN0Z89", direct, strlen (direct), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 2 && channels_batch_ignored (batch) == 0);
    assert (streq (channels_batch_get (batch, 0, "external_id"), "Ev0LAN670R"));
    assert (streq (channels_batch_get (batch, 0, "message_type"), "mention"));
    assert (streq (channels_batch_get (batch, 0, "chat_id"), "C0LAN2Q65"));
    assert (streq (channels_batch_get (batch, 0, "thread_id"), "1515449500.000001"));
    assert (streq (channels_batch_get (batch, 0, "message_id"), "1515449522.000016"));
    assert (streq (channels_batch_get (batch, 0, "sender_id"), "U061F7AUR"));
    assert (streq (channels_batch_get (batch, 0, "sent_at"), "1515449522"));
    assert (channels_batch_get (batch, 1, "thread_id") == NULL);
    assert (streq (channels_batch_get (batch, 1, "message_id"), "1700000000.000100"));
    assert (streq (channels_batch_get (batch, 1, "text"), "hello"));
    assert (channels_batch_challenge (batch) == NULL);

    //  Ignored: our own bot, another bot, an edit, a channel message (its mention
    //  comes as app_mention), another event type, app_rate_limited
    const char *ignored[] = {
        "{\"type\":\"event_callback\",\"event_id\":\"E1\",\"event\":{\"type\":"
        "\"message\",\"channel_type\":\"im\",\"user\":\"U0LAN0Z89\",\"channel\":\"D\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E2\",\"event\":{\"type\":"
        "\"message\",\"channel_type\":\"im\",\"user\":\"U3\",\"bot_id\":\"B1\","
        "\"channel\":\"D\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E3\",\"event\":{\"type\":"
        "\"message\",\"subtype\":\"message_changed\",\"channel_type\":\"im\",\"user\":"
        "\"U3\",\"channel\":\"D\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E4\",\"event\":{\"type\":"
        "\"message\",\"channel_type\":\"channel\",\"user\":\"U3\",\"channel\":\"C\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E5\",\"event\":{\"type\":"
        "\"reaction_added\",\"user\":\"U3\"}}",
        "{\"type\":\"app_rate_limited\",\"minute_rate_limited\":1518467820}",
        "{\"type\":\"event_callback\",\"event_id\":\"E6\",\"event\":{\"type\":"
        "\"app_mention\",\"user\":\"U3\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E7\",\"event\":{\"type\":"
        "\"app_mention\",\"user\":\"U3\",\"channel\":\"C\",\"bot_profile\":{}}}"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        assert (channels_slack_parse ("U0LAN0Z89", ignored[i], strlen (ignored[i]), batch)
                == CHANNELS_PARSE_OK);
    assert (channels_batch_size (batch) == 2);
    assert (channels_batch_ignored (batch) == sizeof ignored / sizeof ignored[0]);
    //  A file shared in a direct message is a message
    const char *file = "{\"type\":\"event_callback\",\"event_id\":\"E8\",\"event\":{"
                       "\"type\":\"message\",\"subtype\":\"file_share\",\"channel_type\":"
                       "\"im\",\"user\":\"U3\",\"channel\":\"D\",\"ts\":\"1.2\"}}";
    assert (channels_slack_parse (NULL, file, strlen (file), batch) == CHANNELS_PARSE_OK);
    assert (channels_batch_size (batch) == 3);

    //  Not Slack's shape
    const char *bad[] = {"",
                         "token=x&type=url_verification",
                         "{}",
                         "{\"type\":1}",
                         "{\"type\":\"url_verification\"}",
                         "{\"type\":\"url_verification\",\"challenge\":\"\"}",
                         "{\"type\":\"url_verification\",\"challenge\":\"a b\"}",
                         "{\"type\":\"event_callback\",\"event\":{}}",
                         "{\"type\":\"event_callback\",\"event_id\":\"E\"}",
                         "{\"type\":\"event_callback\",\"event_id\":\"E\",\"event\":[]}",
                         "{\"type\":\"event_callback\",\"event_id\":\"\",\"event\":{}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert (channels_slack_parse (NULL, bad[i], strlen (bad[i]), batch)
                == CHANNELS_PARSE_BAD);
    assert (channels_slack_parse (NULL, NULL, 0, batch) == CHANNELS_PARSE_BAD);
    assert (channels_batch_size (batch) == 3);
    channels_batch_destroy (&batch);
    printf ("OK\n");
}
