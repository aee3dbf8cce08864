/*  channels_batch: what one verified webhook carries once parsed, whatever the
    platform: inbound messages to store, delivery statuses to apply, how many
    items were ignored, and Slack's url_verification challenge. The platform
    parsers (channels_meta, channels_telegram, channels_slack) fill it;
    channels_receive hands it to PostgreSQL (channels.inbox_store) as JSON. It
    copies what it is given and bounds what it holds.                         */
#ifndef CHANNELS_BATCH_H_INCLUDED
#define CHANNELS_BATCH_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  Most items one webhook may carry (Meta batches up to 1000 changes)
#define CHANNELS_BATCH_MAX 2000
//  Longest id (external_id, message_id, sender_id, chat_id, thread_id), in bytes
#define CHANNELS_BATCH_ID_MAX 256

//  Outcome of a platform parser.
typedef enum {
    CHANNELS_PARSE_OK = 0,         //  the batch holds what the body carries
    CHANNELS_PARSE_BAD = -1,       //  not JSON of the platform's shape
    CHANNELS_PARSE_TOO_MANY = -2,  //  more than CHANNELS_BATCH_MAX items
} channels_parse_t;

//  One item, as a parser describes it; every field is borrowed and copied by
//  channels_batch_add. NULL fields are absent.
typedef struct {
    const char *kind;          //  "message" or "status"
    const char *external_id;   //  message: dedupe key; status: the sent message's id
    const char *message_id;    //  the platform's message id
    const char *sender_id;     //  who wrote it
    const char *sender_name;   //  their display name
    const char *chat_id;       //  where a reply goes
    const char *thread_id;     //  Slack: the thread to answer in
    const char *message_type;  //  text, image, ...
    const char *text;          //  the text, caption or button title
    const char *sent_at;       //  the platform's time: decimal unix seconds
    const char *status;        //  status: sent, delivered, read, failed
    const char *error_code;    //  status failed: the platform's error code
    json_t *error;             //  status failed: the platform's errors (borrowed)
    json_t *payload;           //  the item as received (borrowed)
} channels_item_t;

typedef struct _channels_batch_t channels_batch_t;

//  A new empty batch.
channels_batch_t *channels_batch_new (void);

//  Destroy it; harmless on NULL.
void channels_batch_destroy (channels_batch_t **self_p);

//  Add an item. An item without kind or external_id, with an id longer than
//  CHANNELS_BATCH_ID_MAX, or with text that is not UTF-8 is counted as ignored
//  instead; a sent_at that is not decimal seconds is left out. Returns 0, or -1 when the batch already holds
//  CHANNELS_BATCH_MAX items (nothing added).
int channels_batch_add (channels_batch_t *self, const channels_item_t *item)
    __attribute__ ((warn_unused_result));

//  Count one item that is acknowledged but not stored.
void channels_batch_ignore (channels_batch_t *self);

//  Items held, messages and statuses among them, and items ignored.
size_t channels_batch_size (channels_batch_t *self);
size_t channels_batch_messages (channels_batch_t *self);
size_t channels_batch_statuses (channels_batch_t *self);
size_t channels_batch_ignored (channels_batch_t *self);

//  Field name of item index as text, or NULL (for tests and logs).
const char *channels_batch_get (channels_batch_t *self, size_t index, const char *name);

//  Slack's url_verification challenge (copied), or NULL.
void channels_batch_set_challenge (channels_batch_t *self, const char *challenge);
const char *channels_batch_challenge (channels_batch_t *self);

//  The items as a JSON array for channels.inbox_store (caller frees).
char *channels_batch_json (channels_batch_t *self);

//  The text of a JSON string or integer member of object as a decimal, into
//  buf; NULL when absent or of another type. Parsers read ids with it.
const char *channels_batch_id (json_t *object, const char *key, char *buf, size_t size);

//  The text of a JSON string member, or NULL.
const char *channels_batch_str (json_t *object, const char *key);

//  True when the batch keeps its promises: at most CHANNELS_BATCH_MAX items,
//  counts that add up, and JSON that parses back into items each with a kind
//  and an external_id within bounds. The fuzz targets check it after every parse.
bool channels_batch_valid (channels_batch_t *self);

void channels_batch_test (bool verbose);

#endif
