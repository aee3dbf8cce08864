/*  channels_meta: WhatsApp, Messenger and Instagram webhook bodies
    (channels_meta.h).                                                           */
#include "channels_meta.h"

#include <assert.h>
#include <czmq.h>

//  The text a WhatsApp message shows, by its type: the body, a caption, a
//  button's title, a place's name; NULL when it has none.
static const char *
s_whatsapp_text (json_t *message, const char *type)
{
    json_t *part = json_object_get (message, type);
    if (streq (type, "text"))
        return channels_batch_str (part, "body");
    if (streq (type, "interactive")) {
        const char *title = channels_batch_str (json_object_get (part, "button_reply"),
                                                "title");
        return title ? title
                     : channels_batch_str (json_object_get (part, "list_reply"), "title");
    }
    if (streq (type, "button"))
        return channels_batch_str (part, "text");
    if (streq (type, "location"))
        return channels_batch_str (part, "name");
    return channels_batch_str (part, "caption");
}

//  The profile name of wa_id among a change's contacts, or NULL.
static const char *
s_whatsapp_name (json_t *contacts, const char *wa_id)
{
    size_t index;
    json_t *contact;
    json_array_foreach (contacts, index, contact)
    {
        const char *id = channels_batch_str (contact, "wa_id");
        if (id && streq (id, wa_id))
            return channels_batch_str (json_object_get (contact, "profile"), "name");
    }
    return NULL;
}

//  One change's value: its messages and statuses.
static channels_parse_t
s_whatsapp_value (json_t *value, const char *account_id, channels_batch_t *batch)
{
    json_t *messages = json_object_get (value, "messages");
    json_t *statuses = json_object_get (value, "statuses");
    const char *phone_number_id = channels_batch_str (json_object_get (value, "metadata"),
                                                      "phone_number_id");
    if (account_id && (!phone_number_id || !streq (phone_number_id, account_id))) {
        //  Another number's traffic: acknowledged, not ours to store
        for (size_t i = 0; i < json_array_size (messages) + json_array_size (statuses);
             i++)
            channels_batch_ignore (batch);
        return CHANNELS_PARSE_OK;
    }
    json_t *contacts = json_object_get (value, "contacts");
    size_t index;
    json_t *message;
    json_array_foreach (messages, index, message)
    {
        const char *type = channels_batch_str (message, "type");
        const char *from = channels_batch_str (message, "from");
        if (!json_is_object (message) || !type || !from || streq (type, "reaction")) {
            channels_batch_ignore (batch);
            continue;
        }
        channels_item_t item = {.kind = "message",
                                .external_id = channels_batch_str (message, "id"),
                                .message_id = channels_batch_str (message, "id"),
                                .sender_id = from,
                                .sender_name = s_whatsapp_name (contacts, from),
                                .chat_id = from,
                                .message_type = type,
                                .text = s_whatsapp_text (message, type),
                                .sent_at = channels_batch_str (message, "timestamp"),
                                .payload = message};
        if (channels_batch_add (batch, &item))
            return CHANNELS_PARSE_TOO_MANY;
    }
    json_t *status;
    json_array_foreach (statuses, index, status)
    {
        const char *state = channels_batch_str (status, "status");
        if (!state
            || !(streq (state, "sent") || streq (state, "delivered")
                 || streq (state, "read") || streq (state, "failed"))) {
            channels_batch_ignore (batch);
            continue;
        }
        json_t *errors = json_object_get (status, "errors");
        char code[32];
        channels_item_t item = {
            .kind = "status",
            .external_id = channels_batch_str (status, "id"),
            .sender_id = channels_batch_str (status, "recipient_id"),
            .status = state,
            .sent_at = channels_batch_str (status, "timestamp"),
            .error_code = channels_batch_id (json_array_get (errors, 0), "code", code,
                                             sizeof code),
            .error = json_is_array (errors) ? errors : NULL,
            .payload = status};
        if (channels_batch_add (batch, &item))
            return CHANNELS_PARSE_TOO_MANY;
    }
    return CHANNELS_PARSE_OK;
}

//  WhatsApp's entry[].changes[]: the messages field's values, the rest ignored.
static channels_parse_t
s_whatsapp (json_t *entries, const char *account_id, channels_batch_t *batch)
{
    size_t index;
    json_t *entry;
    json_array_foreach (entries, index, entry)
    {
        size_t at;
        json_t *change;
        json_array_foreach (json_object_get (entry, "changes"), at, change)
        {
            const char *field = channels_batch_str (change, "field");
            json_t *value = json_object_get (change, "value");
            if (!field || !streq (field, "messages") || !json_is_object (value)) {
                channels_batch_ignore (batch);
                continue;
            }
            channels_parse_t rc = s_whatsapp_value (value, account_id, batch);
            if (rc != CHANNELS_PARSE_OK)
                return rc;
        }
    }
    return CHANNELS_PARSE_OK;
}

//  One entry[].messaging[] item of Messenger or Instagram.
static channels_parse_t
s_messaging_item (json_t *event, channels_batch_t *batch)
{
    json_t *message = json_object_get (event, "message");
    json_t *postback = json_object_get (event, "postback");
    char sender[64], when[32] = "";
    const char *sender_id = channels_batch_id (json_object_get (event, "sender"), "id",
                                               sender, sizeof sender);
    json_t *timestamp = json_object_get (event, "timestamp");
    if (json_is_integer (timestamp) && json_integer_value (timestamp) >= 0) {
        //  Meta gives milliseconds here
        json_int_t ms = json_integer_value (timestamp);
        snprintf (when, sizeof when, "%" JSON_INTEGER_FORMAT ".%03d", ms / 1000,
                  (int) (ms % 1000));
    }
    channels_item_t item = {.kind = "message",
                            .sender_id = sender_id,
                            .chat_id = sender_id,
                            .sent_at = *when ? when : NULL,
                            .payload = event};
    if (json_is_object (message)
        && !json_is_true (json_object_get (message, "is_echo"))) {
        item.external_id = channels_batch_str (message, "mid");
        item.text = channels_batch_str (message, "text");
        item.message_type = item.text
                                ? "text"
                                : channels_batch_str (
                                    json_array_get (
                                        json_object_get (message, "attachments"), 0),
                                    "type");
        if (!item.message_type)
            item.message_type = "unknown";
    }
    else if (json_is_object (postback)) {
        item.external_id = channels_batch_str (postback, "mid");
        item.text = channels_batch_str (postback, "title");
        item.message_type = "postback";
    }
    //  Echoes of our own sends, deliveries, reads, reactions: not messages to answer
    if (!item.external_id || !sender_id) {
        channels_batch_ignore (batch);
        return CHANNELS_PARSE_OK;
    }
    item.message_id = item.external_id;
    return channels_batch_add (batch, &item) ? CHANNELS_PARSE_TOO_MANY
                                             : CHANNELS_PARSE_OK;
}

//  Messenger's and Instagram's entry[].messaging[], for the connection's account.
static channels_parse_t
s_messaging (json_t *entries, const char *account_id, channels_batch_t *batch)
{
    size_t index;
    json_t *entry;
    json_array_foreach (entries, index, entry)
    {
        char id[64];
        const char *page = channels_batch_id (entry, "id", id, sizeof id);
        json_t *messaging = json_object_get (entry, "messaging");
        bool ours = !account_id || (page && streq (page, account_id));
        size_t at;
        json_t *event;
        json_array_foreach (messaging, at, event)
        {
            if (!ours) {
                channels_batch_ignore (batch);
                continue;
            }
            if (s_messaging_item (event, batch) != CHANNELS_PARSE_OK)
                return CHANNELS_PARSE_TOO_MANY;
        }
        //  Instagram comments and other fields arrive as changes: not messages
        for (size_t i = 0; i < json_array_size (json_object_get (entry, "changes")); i++)
            channels_batch_ignore (batch);
    }
    return CHANNELS_PARSE_OK;
}

channels_parse_t
channels_meta_parse (const char *platform, const char *account_id, const void *body,
                     size_t size, channels_batch_t *batch)
{
    const char *object = streq (platform, "whatsapp")    ? "whatsapp_business_account"
                         : streq (platform, "messenger") ? "page"
                         : streq (platform, "instagram") ? "instagram"
                                                         : NULL;
    json_t *root = object && body ? json_loadb ((const char *) body, size,
                                                JSON_REJECT_DUPLICATES, NULL)
                                  : NULL;
    const char *given = channels_batch_str (root, "object");
    json_t *entries = json_object_get (root, "entry");
    channels_parse_t rc = CHANNELS_PARSE_BAD;
    if (given && streq (given, object) && json_is_array (entries))
        rc = streq (platform, "whatsapp") ? s_whatsapp (entries, account_id, batch)
                                          : s_messaging (entries, account_id, batch);
    json_decref (root);
    return rc;
}

void
channels_meta_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_meta: ");
    //  A WhatsApp batch: two messages (text, image with caption), a reaction, a
    //  status, and a change of another phone number
    const char *whatsapp =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"WABA\","
        "\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":"
        "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550001111\","
        "\"phone_number_id\":\"106540352242922\"},\"contacts\":[{\"profile\":{\"name\":"
        "\"Kerry Fisher\"},\"wa_id\":\"16315551234\"}],\"messages\":[{\"from\":"
        "\"16315551234\",\"id\":\"wamid.AAA\",\"timestamp\":\"1700000000\",\"type\":"
        "\"text\",\"text\":{\"body\":\"Hello \\u00e9\"}},{\"from\":\"16315551234\","
        "\"id\":\"wamid.BBB\",\"timestamp\":\"1700000001\",\"type\":\"image\","
        "\"image\":{\"caption\":\"look\",\"id\":\"m1\"}},{\"from\":\"16315551234\","
        "\"id\":\"wamid.CCC\",\"timestamp\":\"1700000002\",\"type\":\"reaction\","
        "\"reaction\":{\"message_id\":\"wamid.AAA\",\"emoji\":\"x\"}}],\"statuses\":[{"
        "\"id\":\"wamid.OUT\",\"status\":\"failed\",\"timestamp\":\"1700000003\","
        "\"recipient_id\":\"16315551234\",\"errors\":[{\"code\":131047,\"title\":"
        "\"Re-engagement message\"}]},{\"id\":\"wamid.OUT\",\"status\":\"deleted\"}]}},"
        "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"999\"},"
        "\"messages\":[{\"from\":\"1\",\"id\":\"wamid.OTHER\",\"type\":\"text\"}]}},"
        "{\"field\":\"account_update\",\"value\":{}}]}]}";
    channels_batch_t *batch = channels_batch_new ();
    assert (channels_meta_parse ("whatsapp", "106540352242922", whatsapp,
                                 strlen (whatsapp), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 2 && channels_batch_statuses (batch) == 1);
    //  reaction, unknown status, the other number's message, account_update
    assert (channels_batch_ignored (batch) == 4);
    assert (streq (channels_batch_get (batch, 0, "external_id"), "wamid.AAA"));
    assert (streq (channels_batch_get (batch, 0, "text"), "Hello \xc3\xa9"));
    assert (streq (channels_batch_get (batch, 0, "sender_name"), "Kerry Fisher"));
    assert (streq (channels_batch_get (batch, 0, "chat_id"), "16315551234"));
    assert (streq (channels_batch_get (batch, 0, "sent_at"), "1700000000"));
    assert (streq (channels_batch_get (batch, 1, "message_type"), "image"));
    assert (streq (channels_batch_get (batch, 1, "text"), "look"));
    assert (streq (channels_batch_get (batch, 2, "kind"), "status"));
    assert (streq (channels_batch_get (batch, 2, "status"), "failed"));
    assert (streq (channels_batch_get (batch, 2, "error_code"), "131047"));
    channels_batch_destroy (&batch);

    //  Without an account filter, the other number's message counts too
    batch = channels_batch_new ();
    assert (channels_meta_parse ("whatsapp", NULL, whatsapp, strlen (whatsapp), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 3);
    channels_batch_destroy (&batch);

    //  Messenger: a text, an attachment, an echo, a delivery, a postback
    const char *messenger =
        "{\"object\":\"page\",\"entry\":[{\"id\":\"PAGE1\",\"time\":1458692752478,"
        "\"messaging\":[{\"sender\":{\"id\":\"PSID1\"},\"recipient\":{\"id\":\"PAGE1\"},"
        "\"timestamp\":1458692752478,\"message\":{\"mid\":\"m_1\",\"text\":\"hi\"}},"
        "{\"sender\":{\"id\":\"PSID1\"},\"recipient\":{\"id\":\"PAGE1\"},\"timestamp\":"
        "1458692752479,\"message\":{\"mid\":\"m_2\",\"attachments\":[{\"type\":"
        "\"image\",\"payload\":{\"url\":\"https://x\"}}]}},{\"sender\":{\"id\":"
        "\"PAGE1\"},\"recipient\":{\"id\":\"PSID1\"},\"timestamp\":1,\"message\":{"
        "\"mid\":\"m_3\",\"is_echo\":true,\"text\":\"ours\"}},{\"sender\":{\"id\":"
        "\"PSID1\"},\"recipient\":{\"id\":\"PAGE1\"},\"delivery\":{\"mids\":[\"m_3\"]}},"
        "{\"sender\":{\"id\":\"PSID1\"},\"recipient\":{\"id\":\"PAGE1\"},\"timestamp\":"
        "5,\"postback\":{\"mid\":\"m_4\",\"title\":\"Get started\",\"payload\":\"GO\"}}"
        "]},{\"id\":\"PAGE2\",\"messaging\":[{\"sender\":{\"id\":\"P\"},\"message\":{"
        "\"mid\":\"m_9\",\"text\":\"elsewhere\"}}]}]}";
    batch = channels_batch_new ();
    assert (
        channels_meta_parse ("messenger", "PAGE1", messenger, strlen (messenger), batch)
        == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 3);
    assert (channels_batch_ignored (batch) == 3);  //  echo, delivery, PAGE2
    assert (streq (channels_batch_get (batch, 0, "external_id"), "m_1"));
    assert (streq (channels_batch_get (batch, 0, "chat_id"), "PSID1"));
    assert (streq (channels_batch_get (batch, 0, "sent_at"), "1458692752.478"));
    assert (streq (channels_batch_get (batch, 1, "message_type"), "image"));
    assert (channels_batch_get (batch, 1, "text") == NULL);
    assert (streq (channels_batch_get (batch, 2, "message_type"), "postback"));
    assert (streq (channels_batch_get (batch, 2, "text"), "Get started"));
    assert (streq (channels_batch_get (batch, 2, "sent_at"), "0.005"));
    channels_batch_destroy (&batch);

    //  Instagram has the same shape under its own object; numeric ids are read too
    const char *instagram =
        "{\"object\":\"instagram\",\"entry\":[{\"id\":17841400000000000,\"time\":1,"
        "\"messaging\":[{\"sender\":{\"id\":\"IGSID\"},\"recipient\":{\"id\":"
        "\"17841400000000000\"},\"timestamp\":1700000000000,\"message\":{\"mid\":"
        "\"ig_1\",\"text\":\"hey\"}}],\"changes\":[{\"field\":\"comments\"}]}]}";
    batch = channels_batch_new ();
    assert (channels_meta_parse ("instagram", "17841400000000000", instagram,
                                 strlen (instagram), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_batch_messages (batch) == 1 && channels_batch_ignored (batch) == 1);
    //  ... but not as Messenger, nor as WhatsApp
    assert (channels_meta_parse ("messenger", NULL, instagram, strlen (instagram), batch)
            == CHANNELS_PARSE_BAD);
    assert (channels_meta_parse ("whatsapp", NULL, instagram, strlen (instagram), batch)
            == CHANNELS_PARSE_BAD);
    channels_batch_destroy (&batch);

    //  Broken bodies
    const char *bad[] = {"",
                         "[]",
                         "{\"object\":\"page\"}",
                         "{\"object\":\"page\",\"entry\":{}}",
                         "{\"object\":\"page\",\"entry\":[]} x",
                         "{\"object\":\"page\",\"object\":\"page\",\"entry\":[]}",
                         "{\"object\":1,\"entry\":[]}",
                         "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        batch = channels_batch_new ();
        assert (channels_meta_parse ("messenger", NULL, bad[i], strlen (bad[i]), batch)
                == CHANNELS_PARSE_BAD);
        channels_batch_destroy (&batch);
    }
    //  Odd members are ignored, never trusted
    const char *odd = "{\"object\":\"page\",\"entry\":[1,{\"messaging\":[1,{\"message\":"
                      "{\"mid\":2}},{\"sender\":{\"id\":\"s\"},\"message\":[]}]},"
                      "{\"messaging\":{}}]}";
    batch = channels_batch_new ();
    assert (channels_meta_parse ("messenger", NULL, odd, strlen (odd), batch)
            == CHANNELS_PARSE_OK);
    assert (channels_batch_size (batch) == 0 && channels_batch_ignored (batch) == 3);
    assert (channels_meta_parse ("telegram", NULL, odd, strlen (odd), batch)
            == CHANNELS_PARSE_BAD);
    assert (channels_meta_parse ("messenger", NULL, NULL, 0, batch)
            == CHANNELS_PARSE_BAD);
    channels_batch_destroy (&batch);

    //  A batch past the maximum is refused whole
    size_t count = CHANNELS_BATCH_MAX + 1;
    char *big = malloc (count * 80 + 100);
    assert (big);
    size_t at = (size_t) snprintf (big, 100,
                                   "{\"object\":\"page\",\"entry\":[{"
                                   "\"messaging\":[");
    for (size_t i = 0; i < count; i++)
        at += (size_t) snprintf (big + at, 80,
                                 "%s{\"sender\":{\"id\":\"s\"},\"message\":{\"mid\":"
                                 "\"m%zu\"}}",
                                 i ? "," : "", i);
    at += (size_t) snprintf (big + at, 10, "]}]}");
    batch = channels_batch_new ();
    assert (channels_meta_parse ("messenger", NULL, big, at, batch)
            == CHANNELS_PARSE_TOO_MANY);
    channels_batch_destroy (&batch);
    free (big);
    printf ("OK\n");
}
