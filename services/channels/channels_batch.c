/*  channels_batch: the parsed items of one webhook (channels_batch.h).        */
#include "channels_batch.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>

struct _channels_batch_t {
    json_t *items;    //  array of item objects, as channels.inbox_store reads them
    size_t messages;  //  message items among them
    size_t statuses;  //  status items among them
    size_t ignored;   //  items acknowledged but not stored
    char *challenge;  //  Slack's url_verification challenge, or NULL
};

channels_batch_t *
channels_batch_new (void)
{
    channels_batch_t *self = calloc (1, sizeof (channels_batch_t));
    assert (self);
    self->items = json_array ();
    assert (self->items);
    return self;
}

void
channels_batch_destroy (channels_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    channels_batch_t *self = *self_p;
    json_decref (self->items);
    free (self->challenge);
    free (self);
    *self_p = NULL;
}

//  True when s is decimal seconds ("1700000000", "1355517523.000005").
static bool
s_seconds_valid (const char *s)
{
    size_t length = strlen (s);
    size_t digits = strspn (s, "0123456789");
    if (digits == 0 || digits > 12 || length > 24)
        return false;
    if (s[digits] == 0)
        return true;
    return s[digits] == '.' && s[digits + 1]
           && strspn (s + digits + 1, "0123456789") == length - digits - 1;
}

//  Set key to a copy of value when value is not NULL; false when it is not UTF-8.
static bool
s_set (json_t *object, const char *key, const char *value)
{
    if (!value)
        return true;
    json_t *string = json_string (value);
    if (!string)
        return false;
    json_object_set_new (object, key, string);
    return true;
}

int
channels_batch_add (channels_batch_t *self, const channels_item_t *item)
{
    const char *ids[] = {item->external_id, item->message_id, item->sender_id,
                         item->chat_id, item->thread_id};
    bool valid = item->kind && item->external_id && *item->external_id
                 && (streq (item->kind, "message")
                     || (streq (item->kind, "status") && item->status));
    for (size_t i = 0; valid && i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] && strlen (ids[i]) > CHANNELS_BATCH_ID_MAX)
            valid = false;
    if (!valid) {
        self->ignored++;
        return 0;
    }
    if (json_array_size (self->items) >= CHANNELS_BATCH_MAX)
        return -1;
    json_t *object = json_object ();
    assert (object);
    const char *names[] = {"kind",        "external_id", "message_id", "sender_id",
                           "sender_name", "chat_id",     "thread_id",  "message_type",
                           "text",        "sent_at",     "status",     "error_code"};
    //  A time that is not decimal seconds is left out, the item kept
    const char *sent_at = item->sent_at && s_seconds_valid (item->sent_at) ? item->sent_at
                                                                           : NULL;
    const char *values[] = {item->kind,      item->external_id,  item->message_id,
                            item->sender_id, item->sender_name,  item->chat_id,
                            item->thread_id, item->message_type, item->text,
                            sent_at,         item->status,       item->error_code};
    for (size_t i = 0; valid && i < sizeof names / sizeof names[0]; i++)
        valid = s_set (object, names[i], values[i]);
    if (!valid) {
        json_decref (object);
        self->ignored++;
        return 0;
    }
    if (item->error)
        json_object_set (object, "error", item->error);
    json_object_set (object, "payload", item->payload ? item->payload : json_null ());
    json_array_append_new (self->items, object);
    if (streq (item->kind, "message"))
        self->messages++;
    else
        self->statuses++;
    return 0;
}

void
channels_batch_ignore (channels_batch_t *self)
{
    self->ignored++;
}

size_t
channels_batch_size (channels_batch_t *self)
{
    return json_array_size (self->items);
}

size_t
channels_batch_messages (channels_batch_t *self)
{
    return self->messages;
}

size_t
channels_batch_statuses (channels_batch_t *self)
{
    return self->statuses;
}

size_t
channels_batch_ignored (channels_batch_t *self)
{
    return self->ignored;
}

const char *
channels_batch_get (channels_batch_t *self, size_t index, const char *name)
{
    return json_string_value (
        json_object_get (json_array_get (self->items, index), name));
}

void
channels_batch_set_challenge (channels_batch_t *self, const char *challenge)
{
    free (self->challenge);
    self->challenge = challenge ? strdup (challenge) : NULL;
}

const char *
channels_batch_challenge (channels_batch_t *self)
{
    return self->challenge;
}

char *
channels_batch_json (channels_batch_t *self)
{
    char *text = json_dumps (self->items, JSON_COMPACT);
    assert (text);
    return text;
}

const char *
channels_batch_id (json_t *object, const char *key, char *buf, size_t size)
{
    json_t *value = json_object_get (object, key);
    if (json_is_string (value))
        return json_string_value (value);
    if (json_is_integer (value)) {
        snprintf (buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
        return buf;
    }
    return NULL;
}

const char *
channels_batch_str (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

bool
channels_batch_valid (channels_batch_t *self)
{
    size_t size = json_array_size (self->items);
    if (size > CHANNELS_BATCH_MAX || self->messages + self->statuses != size)
        return false;
    char *text = channels_batch_json (self);
    json_t *back = json_loads (text, JSON_REJECT_DUPLICATES, NULL);
    free (text);
    bool valid = json_is_array (back) && json_array_size (back) == size;
    size_t index;
    json_t *item;
    json_array_foreach (back, index, item)
    {
        const char *kind = channels_batch_str (item, "kind");
        const char *id = channels_batch_str (item, "external_id");
        const char *sent_at = channels_batch_str (item, "sent_at");
        if (!kind || !id || !*id || strlen (id) > CHANNELS_BATCH_ID_MAX
            || (!streq (kind, "message") && !streq (kind, "status"))
            || (sent_at && !s_seconds_valid (sent_at)))
            valid = false;
    }
    json_decref (back);
    const char *challenge = self->challenge;
    if (challenge && (!*challenge || strlen (challenge) > 256))
        valid = false;
    return valid;
}

void
channels_batch_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_batch: ");
    channels_batch_t *batch = channels_batch_new ();
    json_t *payload = json_pack ("{s:s}", "id", "wamid.1");
    channels_item_t item = {.kind = "message",
                            .external_id = "wamid.1",
                            .sender_id = "15551234567",
                            .chat_id = "15551234567",
                            .text = "h\xc3\xa9llo",
                            .sent_at = "1700000000",
                            .payload = payload};
    assert (channels_batch_add (batch, &item) == 0);
    item.external_id = "wamid.2";
    item.sent_at = "1355517523.000005";
    assert (channels_batch_add (batch, &item) == 0);
    //  A time that is not decimal seconds is left out
    item.external_id = "wamid.4";
    item.sent_at = "12:00";
    assert (channels_batch_add (batch, &item) == 0);
    assert (channels_batch_get (batch, 2, "sent_at") == NULL);
    item.external_id = "wamid.5";
    item.sent_at = "1.";
    assert (channels_batch_add (batch, &item) == 0);
    assert (channels_batch_get (batch, 3, "sent_at") == NULL);
    assert (streq (channels_batch_get (batch, 1, "sent_at"), "1355517523.000005"));
    //  Refused items are counted, never stored
    item.sent_at = NULL;
    item.external_id = "";
    assert (channels_batch_add (batch, &item) == 0);
    item.external_id = NULL;
    assert (channels_batch_add (batch, &item) == 0);
    char longer[CHANNELS_BATCH_ID_MAX + 2];
    memset (longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    item.external_id = "wamid.3";
    item.chat_id = longer;
    assert (channels_batch_add (batch, &item) == 0);
    item.chat_id = "c";
    item.text = "\xff";
    assert (channels_batch_add (batch, &item) == 0);
    item.text = NULL;
    item.kind = "status";  //  a status needs its status
    assert (channels_batch_add (batch, &item) == 0);
    item.kind = "other";
    assert (channels_batch_add (batch, &item) == 0);
    channels_batch_ignore (batch);
    json_t *error = json_pack ("[{s:i}]", "code", 131047);
    channels_item_t status = {.kind = "status",
                              .external_id = "wamid.out",
                              .status = "failed",
                              .error_code = "131047",
                              .error = error};
    assert (channels_batch_add (batch, &status) == 0);
    json_decref (error);
    assert (channels_batch_size (batch) == 5);
    assert (channels_batch_messages (batch) == 4 && channels_batch_statuses (batch) == 1);
    assert (channels_batch_ignored (batch) == 7);
    assert (channels_batch_valid (batch));
    assert (streq (channels_batch_get (batch, 1, "external_id"), "wamid.2"));
    assert (streq (channels_batch_get (batch, 0, "text"), "h\xc3\xa9llo"));
    assert (channels_batch_get (batch, 0, "thread_id") == NULL);
    assert (channels_batch_get (batch, 9, "kind") == NULL);
    char *json = channels_batch_json (batch);
    json_t *back = json_loads (json, 0, NULL);
    assert (back && json_array_size (back) == 5);
    assert (streq (json_string_value (json_object_get (
                       json_object_get (json_array_get (back, 0), "payload"), "id")),
                   "wamid.1"));
    assert (json_integer_value (json_object_get (
                json_array_get (json_object_get (json_array_get (back, 4), "error"), 0),
                "code"))
            == 131047);
    json_decref (back);
    free (json);
    assert (channels_batch_challenge (batch) == NULL);
    channels_batch_set_challenge (batch,
                                  "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    assert (streq (channels_batch_challenge (batch),
                   "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"));

    //  Bounded: the item past the maximum is refused
    item.kind = "message";
    item.chat_id = "c";
    char id[32];
    item.external_id = id;
    int rc = 0;
    for (size_t i = 0; i < CHANNELS_BATCH_MAX && rc == 0; i++) {
        snprintf (id, sizeof id, "m%zu", i);
        rc = channels_batch_add (batch, &item);
    }
    assert (rc == -1);
    assert (channels_batch_size (batch) == CHANNELS_BATCH_MAX);

    json_t *object = json_pack ("{s:s, s:I, s:b}", "a", "x", "n", (json_int_t) -42, "b",
                                1);
    char buf[32];
    assert (streq (channels_batch_id (object, "a", buf, sizeof buf), "x"));
    assert (streq (channels_batch_id (object, "n", buf, sizeof buf), "-42"));
    assert (channels_batch_id (object, "b", buf, sizeof buf) == NULL);
    assert (channels_batch_id (object, "z", buf, sizeof buf) == NULL);
    assert (channels_batch_id (NULL, "a", buf, sizeof buf) == NULL);
    assert (streq (channels_batch_str (object, "a"), "x"));
    assert (channels_batch_str (object, "n") == NULL);
    json_decref (object);
    json_decref (payload);
    channels_batch_destroy (&batch);
    channels_batch_destroy (&batch);
    printf ("OK\n");
}
