/*  channels_telegram: Telegram updates (channels_telegram.h).                 */
#include "channels_telegram.h"

#include <assert.h>
#include <czmq.h>

//  Kinds of message content, in the order they are looked for
static const char *const s_types[] = {"photo",    "video",   "voice",     "audio",
                                      "document", "sticker", "animation", "video_note",
                                      "location", "contact", "poll",      "venue"};

channels_parse_t
channels_telegram_parse (const void *body, size_t size, channels_batch_t *batch)
{
    json_t *update = body ? json_loadb ((const char *) body, size, JSON_REJECT_DUPLICATES,
                                        NULL)
                          : NULL;
    json_t *update_id = json_object_get (update, "update_id");
    if (!json_is_integer (update_id) || json_integer_value (update_id) < 0) {
        json_decref (update);
        return CHANNELS_PARSE_BAD;
    }
    json_t *message = json_object_get (update, "message");
    json_t *from = json_object_get (message, "from");
    char external[32], chat[32], sender[32], message_id[32], thread[32], when[32];
    snprintf (external, sizeof external, "%" JSON_INTEGER_FORMAT,
              json_integer_value (update_id));
    channels_item_t item = {
        .kind = "message",
        .external_id = external,
        .message_id = channels_batch_id (message, "message_id", message_id,
                                         sizeof message_id),
        .sender_id = channels_batch_id (from, "id", sender, sizeof sender),
        .chat_id = channels_batch_id (json_object_get (message, "chat"), "id", chat,
                                      sizeof chat),
        .thread_id = channels_batch_id (message, "message_thread_id", thread,
                                        sizeof thread),
        .sent_at = channels_batch_id (message, "date", when, sizeof when),
        .payload = update};
    //  Edited messages, channel posts, callbacks...: not messages to answer; nor
    //  what bots write
    if (!json_is_object (message) || !item.chat_id
        || json_is_true (json_object_get (from, "is_bot"))) {
        channels_batch_ignore (batch);
        json_decref (update);
        return CHANNELS_PARSE_OK;
    }
    item.text = channels_batch_str (message, "text");
    item.message_type = item.text ? "text" : NULL;
    for (size_t i = 0; !item.message_type && i < sizeof s_types / sizeof s_types[0]; i++)
        if (json_object_get (message, s_types[i]))
            item.message_type = s_types[i];
    if (!item.message_type)
        item.message_type = "unknown";
    if (!item.text)
        item.text = channels_batch_str (message, "caption");
    //  "First Last", or the username
    const char *first = channels_batch_str (from, "first_name");
    const char *last = channels_batch_str (from, "last_name");
    char *name = NULL;
    if (first && last && asprintf (&name, "%s %s", first, last) < 0)
        name = NULL;
    item.sender_name = name    ? name
                       : first ? first
                               : channels_batch_str (from, "username");
    channels_parse_t rc = channels_batch_add (batch, &item) ? CHANNELS_PARSE_TOO_MANY
                                                            : CHANNELS_PARSE_OK;
    free (name);
    json_decref (update);
    return rc;
}

void
channels_telegram_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_telegram: ");
    const char *text =
        "{\"update_id\":10000,\"message\":{\"date\":1441645532,\"chat\":{\"last_name\":"
        "\"Test Lastname\",\"id\":1111111,\"type\":\"private\",\"first_name\":\"Test "
        "Firstname\",\"username\":\"Testusername\"},\"message_id\":1365,\"from\":{"
        "\"last_name\":\"Test Lastname\",\"id\":1111111,\"is_bot\":false,\"first_name\":"
        "\"Test Firstname\",\"username\":\"Testusername\"},\"text\":\"/start\"}}";
    channels_batch_t *batch = channels_batch_new ();
    assert (channels_telegram_parse (text, strlen (text), batch) == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 1);
    assert (streq (channels_batch_get (batch, 0, "external_id"), "10000"));
    assert (streq (channels_batch_get (batch, 0, "message_id"), "1365"));
    assert (streq (channels_batch_get (batch, 0, "chat_id"), "1111111"));
    assert (streq (channels_batch_get (batch, 0, "sender_id"), "1111111"));
    assert (streq (channels_batch_get (batch, 0, "sender_name"),
                   "Test Firstname Test Lastname"));
    assert (streq (channels_batch_get (batch, 0, "text"), "/start"));
    assert (streq (channels_batch_get (batch, 0, "message_type"), "text"));
    assert (streq (channels_batch_get (batch, 0, "sent_at"), "1441645532"));
    assert (channels_batch_get (batch, 0, "thread_id") == NULL);
    channels_batch_destroy (&batch);

    //  A photo with a caption in a forum topic of a group (negative chat id)
    const char *photo =
        "{\"update_id\":10001,\"message\":{\"message_id\":7,\"message_thread_id\":3,"
        "\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"Ann\"},\"chat\":{\"id\":"
        "-1001234567890,\"type\":\"supergroup\"},\"date\":1700000000,\"photo\":[{"
        "\"file_id\":\"x\"}],\"caption\":\"see\"}}";
    batch = channels_batch_new ();
    assert (channels_telegram_parse (photo, strlen (photo), batch) == CHANNELS_PARSE_OK);
    assert (streq (channels_batch_get (batch, 0, "chat_id"), "-1001234567890"));
    assert (streq (channels_batch_get (batch, 0, "thread_id"), "3"));
    assert (streq (channels_batch_get (batch, 0, "message_type"), "photo"));
    assert (streq (channels_batch_get (batch, 0, "text"), "see"));
    assert (streq (channels_batch_get (batch, 0, "sender_name"), "Ann"));

    //  Ignored: an edited message, a bot's message, a message without a chat
    const char *ignored[] = {
        "{\"update_id\":1,\"edited_message\":{\"chat\":{\"id\":1},\"text\":\"x\"}}",
        ("{\"update_id\":2,\"message\":{\"chat\":{\"id\":1},\"from\":{\"id\":9,"
         "\"is_bot\":true},\"text\":\"x\"}}"),
        "{\"update_id\":3,\"message\":{\"chat\":{},\"text\":\"x\"}}",
        "{\"update_id\":4,\"message\":\"x\"}"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        assert (channels_telegram_parse (ignored[i], strlen (ignored[i]), batch)
                == CHANNELS_PARSE_OK);
    assert (channels_batch_size (batch) == 1 && channels_batch_ignored (batch) == 4);

    //  Not an update
    const char *bad[] = {"",
                         "[]",
                         "{}",
                         "{\"update_id\":\"1\"}",
                         "{\"update_id\":-1}",
                         "{\"update_id\":1.5}",
                         "{\"update_id\":1}}",
                         "{\"update_id\":1,\"update_id\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert (channels_telegram_parse (bad[i], strlen (bad[i]), batch)
                == CHANNELS_PARSE_BAD);
    assert (channels_telegram_parse (NULL, 0, batch) == CHANNELS_PARSE_BAD);
    assert (channels_batch_size (batch) == 1);
    channels_batch_destroy (&batch);
    printf ("OK\n");
}
