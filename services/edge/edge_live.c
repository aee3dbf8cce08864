/*  edge_live: conversations and tenants watched over WebSockets (see the header).  */
#include "edge_live.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>

#include "bus.pb-c.h"
#include "bus_proto.h"
#include "codec_json.h"
#include "codec_msgpack.h"

#define S_ID_MAX 80                //  ids kept (UUIDs, with room)
#define S_PRESENCE_TTL_MS 45000    //  an announcement not renewed ends
#define S_PRESENCE_RENEW_MS 15000  //  how often our own are renewed
#define S_TYPING_REPEAT_MS 1000    //  a repeated typing state goes out at most this often

//  One thing a watcher watches: a conversation, or its tenant (conversation "").
typedef struct {
    void *watcher;
    edge_live_send_fn *send;
    char tenant[S_ID_MAX];
    char user[S_ID_MAX];
    char conversation[S_ID_MAX];
    bool typing;        //  the last typing state published
    int64_t typing_at;  //  when (ms), to publish a repeat at most once a second
} s_watch_t;

struct _edge_live_t {
    core_log_t *log;
    zsock_t *sub;             //  every broker's events-out
    zsock_t *pub;             //  every broker's events-in (typing, presence)
    char origin[40];          //  this edge, in what it publishes
    uint64_t published;       //  what it published so far (n)
    zhashx_t *conversations;  //  conversation id -> zlistx_t of s_watch_t
    zhashx_t *tenants;        //  tenant id -> zlistx_t of s_watch_t (tenant watches)
    zhashx_t *watchers;       //  "%p" of a watcher -> zlistx_t of its s_watch_t
    zhashx_t *presence;       //  conversation -> zhashx_t "user|origin" -> expiry
    zhashx_t *seen;           //  publisher or origin -> last seq or n (uint64_t *)
    zhashx_t *wanted;         //  topic prefix subscribed -> watches that need it
    int64_t next_tick;        //  ms: expiries
    int64_t next_renew;       //  ms: our own announcements again
};

static int64_t
s_now (void)
{
    return zclock_mono ();
}

static void
s_list_destroy (void **item)
{
    zlistx_destroy ((zlistx_t **) item);
}

static void
s_hash_destroy (void **item)
{
    zhashx_destroy ((zhashx_t **) item);
}

//  ---------------------------------------------------------------------------------
//  Publishing (typing, presence)

static void
s_publish (edge_live_t *self, const char *kind, const char *tenant,
           const char *conversation, const char *user, const char *key, bool value)
{
    if (!self->pub)
        return;
    char topic[S_ID_MAX + 32];
    snprintf (topic, sizeof topic, "edge.%s.%s", kind, conversation);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    const char *pairs[][2] = {
        {"conversation_id", conversation}, {"user_id", user}, {"origin", self->origin}};
    for (size_t i = 0; i < 3; i++) {
        msgpack_pack_str_with_body (&pk, pairs[i][0], strlen (pairs[i][0]));
        msgpack_pack_str_with_body (&pk, pairs[i][1], strlen (pairs[i][1]));
    }
    msgpack_pack_str_with_body (&pk, "n", 1);
    msgpack_pack_uint64 (&pk, ++self->published);
    msgpack_pack_str_with_body (&pk, key, strlen (key));
    if (value)
        msgpack_pack_true (&pk);
    else
        msgpack_pack_false (&pk);
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = "edge";
    meta.tenant_id = (char *) tenant;
    meta.time_ms = (int64_t) zclock_time ();
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_append (msg, &(zframe_t *){codec_encode_frame (&meta.base)});
    zmsg_addmem (msg, buf.data, buf.size);
    bus_proto_send (&msg, self->pub);
    msgpack_sbuffer_destroy (&buf);
}

//  Whether a local watcher other than `except` watches conversation as user.
static bool
s_watched_as (edge_live_t *self, const char *conversation, const char *user,
              const s_watch_t *except)
{
    zlistx_t *list = (zlistx_t *) zhashx_lookup (self->conversations, conversation);
    for (s_watch_t *w = list ? (s_watch_t *) zlistx_first (list) : NULL; w;
         w = (s_watch_t *) zlistx_next (list))
        if (w != except && streq (w->user, user))
            return true;
    return false;
}

//  Count a watch's need of topic prefix (delta +1 or -1): the socket subscribes
//  to it while anything needs it, so events nobody here watches (a reply's tokens
//  in a conversation no client of this edge follows) never reach this edge.
static void
s_want (edge_live_t *self, const char *prefix, int delta)
{
    char *count = (char *) zhashx_lookup (self->wanted, prefix);
    long now = (count ? strtol (count, NULL, 10) : 0) + delta;
    if (now <= 0) {
        if (count) {
            zsock_set_unsubscribe (self->sub, prefix);
            zhashx_delete (self->wanted, prefix);
        }
        return;
    }
    if (!count)
        zsock_set_subscribe (self->sub, prefix);
    zhashx_update (self->wanted, prefix, zsys_sprintf ("%ld", now));
}

//  The prefixes a watch needs: the tenant's durable events (chat conversations
//  and messages, channel deliveries), and for a conversation its reply streams,
//  typing and presence (topics that end with the conversation's id).
static void
s_want_watch (edge_live_t *self, const s_watch_t *watch, int delta)
{
    static const char *const durable[] = {"chat.conversation.", "chat.message.",
                                          "channels."};
    for (size_t i = 0; i < sizeof durable / sizeof durable[0]; i++)
        s_want (self, durable[i], delta);
    if (!*watch->conversation)
        return;
    static const char *const kinds[] = {"chat.stream.", "edge.typing.", "edge.presence."};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char prefix[S_ID_MAX + 32];
        snprintf (prefix, sizeof prefix, "%s%s", kinds[i], watch->conversation);
        s_want (self, prefix, delta);
    }
}

//  ---------------------------------------------------------------------------------
//  Watches

edge_live_t *
edge_live_new (const char *brokers, core_log_t *log)
{
    zlist_t *endpoints = bus_proto_endpoints (brokers);
    if (!endpoints)
        return NULL;
    edge_live_t *self = calloc (1, sizeof *self);
    assert (self);
    self->log = log;
    self->sub = zsock_new (ZMQ_SUB);
    self->pub = zsock_new (ZMQ_PUB);
    assert (self->sub && self->pub);
    zsock_set_rcvhwm (self->sub, 100000);
    zsock_set_sndhwm (self->pub, 10000);
    zsock_set_linger (self->pub, 0);
    for (char *endpoint = (char *) zlist_first (endpoints); endpoint;
         endpoint = (char *) zlist_next (endpoints)) {
        char out[256], in[256];
        if (bus_proto_event_endpoint (endpoint, 2, out, sizeof out) == 0)
            zsock_connect (self->sub, "%s", out);
        if (bus_proto_event_endpoint (endpoint, 1, in, sizeof in) == 0)
            zsock_connect (self->pub, "%s", in);
    }
    zlist_destroy (&endpoints);
    //  Nothing until a client watches something (s_want)
    zuuid_t *uuid = zuuid_new ();
    snprintf (self->origin, sizeof self->origin, "%s", zuuid_str_canonical (uuid));
    zuuid_destroy (&uuid);
    self->conversations = zhashx_new ();
    zhashx_set_destructor (self->conversations, s_list_destroy);
    self->tenants = zhashx_new ();
    zhashx_set_destructor (self->tenants, s_list_destroy);
    self->watchers = zhashx_new ();
    zhashx_set_destructor (self->watchers, s_list_destroy);
    self->presence = zhashx_new ();
    zhashx_set_destructor (self->presence, s_hash_destroy);
    self->seen = zhashx_new ();
    zhashx_set_destructor (self->seen, (zhashx_destructor_fn *) zstr_free);
    self->wanted = zhashx_new ();
    zhashx_set_destructor (self->wanted, (zhashx_destructor_fn *) zstr_free);
    self->next_renew = s_now () + S_PRESENCE_RENEW_MS;
    return self;
}

void
edge_live_destroy (edge_live_t **self_p)
{
    edge_live_t *self = *self_p;
    if (!self)
        return;
    //  The watches themselves are owned by the watchers' lists
    zhashx_t *watchers = self->watchers;
    for (zlistx_t *list = (zlistx_t *) zhashx_first (watchers); list;
         list = (zlistx_t *) zhashx_next (watchers))
        for (s_watch_t *w = (s_watch_t *) zlistx_first (list); w;
             w = (s_watch_t *) zlistx_next (list))
            free (w);
    zhashx_destroy (&self->conversations);
    zhashx_destroy (&self->tenants);
    zhashx_destroy (&self->watchers);
    zhashx_destroy (&self->presence);
    zhashx_destroy (&self->seen);
    zhashx_destroy (&self->wanted);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->pub);
    free (self);
    *self_p = NULL;
}

zsock_t *
edge_live_socket (edge_live_t *self)
{
    return self->sub;
}

static zlistx_t *
s_list (zhashx_t *hash, const char *key)
{
    zlistx_t *list = (zlistx_t *) zhashx_lookup (hash, key);
    if (!list) {
        list = zlistx_new ();
        zhashx_insert (hash, key, list);
    }
    return list;
}

static void
s_list_remove (zhashx_t *hash, const char *key, s_watch_t *watch)
{
    zlistx_t *list = (zlistx_t *) zhashx_lookup (hash, key);
    if (!list)
        return;
    void *handle = zlistx_find (list, watch);
    if (handle)
        zlistx_delete (list, handle);
    if (zlistx_size (list) == 0)
        zhashx_delete (hash, key);
}

static s_watch_t *
s_find (edge_live_t *self, void *watcher, const char *conversation)
{
    char key[32];
    snprintf (key, sizeof key, "%p", watcher);
    zlistx_t *mine = (zlistx_t *) zhashx_lookup (self->watchers, key);
    for (s_watch_t *w = mine ? (s_watch_t *) zlistx_first (mine) : NULL; w;
         w = (s_watch_t *) zlistx_next (mine))
        if (streq (w->conversation, conversation))
            return w;
    return NULL;
}

static int
s_watch (edge_live_t *self, void *watcher, edge_live_send_fn *send, const char *tenant,
         const char *conversation, const char *user)
{
    if (s_find (self, watcher, conversation))
        return 0;
    char key[32];
    snprintf (key, sizeof key, "%p", watcher);
    zlistx_t *mine = s_list (self->watchers, key);
    if (zlistx_size (mine) >= EDGE_LIVE_MAX_WATCHES)
        return -1;
    s_watch_t *watch = calloc (1, sizeof *watch);
    assert (watch);
    watch->watcher = watcher;
    watch->send = send;
    snprintf (watch->tenant, sizeof watch->tenant, "%s", tenant);
    snprintf (watch->user, sizeof watch->user, "%s", user);
    snprintf (watch->conversation, sizeof watch->conversation, "%s", conversation);
    zlistx_add_end (mine, watch);
    s_want_watch (self, watch, +1);
    if (*conversation) {
        bool first = !s_watched_as (self, conversation, user, NULL);
        zlistx_add_end (s_list (self->conversations, conversation), watch);
        if (first)
            s_publish (self, "presence", tenant, conversation, user, "online", true);
    }
    else
        zlistx_add_end (s_list (self->tenants, tenant), watch);
    return 0;
}

int
edge_live_watch (edge_live_t *self, void *watcher, edge_live_send_fn *send,
                 const char *tenant_id, const char *conversation_id, const char *user_id)
{
    assert (conversation_id && *conversation_id);
    return s_watch (self, watcher, send, tenant_id, conversation_id, user_id);
}

int
edge_live_watch_tenant (edge_live_t *self, void *watcher, edge_live_send_fn *send,
                        const char *tenant_id, const char *user_id)
{
    return s_watch (self, watcher, send, tenant_id, "", user_id);
}

//  Forget one watch (taken off the watcher's list by the caller).
static void
s_unwatch (edge_live_t *self, s_watch_t *watch)
{
    s_want_watch (self, watch, -1);
    if (*watch->conversation) {
        s_list_remove (self->conversations, watch->conversation, watch);
        if (!s_watched_as (self, watch->conversation, watch->user, NULL))
            s_publish (self, "presence", watch->tenant, watch->conversation, watch->user,
                       "online", false);
    }
    else
        s_list_remove (self->tenants, watch->tenant, watch);
    free (watch);
}

bool
edge_live_unwatch (edge_live_t *self, void *watcher, const char *conversation_id)
{
    const char *conversation = conversation_id ? conversation_id : "";
    s_watch_t *watch = s_find (self, watcher, conversation);
    if (!watch)
        return false;
    char key[32];
    snprintf (key, sizeof key, "%p", watcher);
    s_list_remove (self->watchers, key, watch);
    s_unwatch (self, watch);
    return true;
}

void
edge_live_unwatch_all (edge_live_t *self, void *watcher)
{
    char key[32];
    snprintf (key, sizeof key, "%p", watcher);
    zlistx_t *mine = (zlistx_t *) zhashx_lookup (self->watchers, key);
    for (s_watch_t *w = mine ? (s_watch_t *) zlistx_first (mine) : NULL; w;
         w = (s_watch_t *) zlistx_next (mine))
        s_unwatch (self, w);
    zhashx_delete (self->watchers, key);
}

bool
edge_live_typing (edge_live_t *self, void *watcher, const char *conversation_id,
                  bool typing)
{
    if (!conversation_id || !*conversation_id)
        return false;
    s_watch_t *watch = s_find (self, watcher, conversation_id);
    if (!watch)
        return false;
    //  A client sending "typing" on every key press publishes a change at once and
    //  the same state again at most once a second
    int64_t now = s_now ();
    if (watch->typing_at && watch->typing == typing
        && now - watch->typing_at < S_TYPING_REPEAT_MS)
        return true;
    watch->typing = typing;
    watch->typing_at = now;
    s_publish (self, "typing", watch->tenant, conversation_id, watch->user, "typing",
               typing);
    return true;
}

//  ---------------------------------------------------------------------------------
//  Presence

//  Whether user has an unexpired announcement at conversation.
static bool
s_present (zhashx_t *entries, const char *user, int64_t now)
{
    size_t len = strlen (user);
    for (int64_t *expiry = entries ? (int64_t *) zhashx_first (entries) : NULL; expiry;
         expiry = (int64_t *) zhashx_next (entries)) {
        const char *key = (const char *) zhashx_cursor (entries);
        if (strncmp (key, user, len) == 0 && key[len] == '|' && *expiry > now)
            return true;
    }
    return false;
}

char *
edge_live_presence (edge_live_t *self, const char *conversation_id)
{
    json_t *users = json_array ();
    int64_t now = s_now ();
    zhashx_t *entries = (zhashx_t *) zhashx_lookup (self->presence, conversation_id);
    for (int64_t *expiry = entries ? (int64_t *) zhashx_first (entries) : NULL; expiry;
         expiry = (int64_t *) zhashx_next (entries)) {
        if (*expiry <= now)
            continue;
        char user[S_ID_MAX];
        snprintf (user, sizeof user, "%s", (const char *) zhashx_cursor (entries));
        char *bar = strchr (user, '|');
        if (bar)
            *bar = 0;
        bool listed = false;
        for (size_t i = 0; i < json_array_size (users) && !listed; i++)
            listed = streq (json_string_value (json_array_get (users, i)), user);
        if (!listed)
            json_array_append_new (users, json_string (user));
    }
    //  Ours, whose announcement may not have come back through a broker yet
    zlistx_t *list = (zlistx_t *) zhashx_lookup (self->conversations, conversation_id);
    for (s_watch_t *w = list ? (s_watch_t *) zlistx_first (list) : NULL; w;
         w = (s_watch_t *) zlistx_next (list)) {
        bool listed = false;
        for (size_t i = 0; i < json_array_size (users) && !listed; i++)
            listed = streq (json_string_value (json_array_get (users, i)), w->user);
        if (!listed)
            json_array_append_new (users, json_string (w->user));
    }
    char *text = json_dumps (users, JSON_COMPACT);
    json_decref (users);
    assert (text);
    return text;
}

//  ---------------------------------------------------------------------------------
//  Delivery

//  Send text to the watchers of a conversation (and, tenant_too, of its tenant)
//  in tenant, but not to those watching as skip_user.
static void
s_deliver (edge_live_t *self, const char *tenant, const char *conversation,
           bool tenant_too, const char *skip_user, const char *text)
{
    size_t size = strlen (text);
    zlistx_t *lists[2] = {
        conversation && *conversation
            ? (zlistx_t *) zhashx_lookup (self->conversations, conversation)
            : NULL,
        tenant_too ? (zlistx_t *) zhashx_lookup (self->tenants, tenant) : NULL};
    for (size_t i = 0; i < 2; i++)
        for (s_watch_t *w = lists[i] ? (s_watch_t *) zlistx_first (lists[i]) : NULL; w;
             w = (s_watch_t *) zlistx_next (lists[i]))
            if (streq (w->tenant, tenant) && !(skip_user && streq (w->user, skip_user)))
                w->send (w->watcher, text, size);
}

//  false when key's counter has seen n already (a copy through another broker).
static bool
s_fresh (edge_live_t *self, const char *key, uint64_t n)
{
    char *last = (char *) zhashx_lookup (self->seen, key);
    if (last && strtoull (last, NULL, 10) >= n)
        return false;
    zhashx_update (self->seen, key, zsys_sprintf ("%" PRIu64, n));
    return true;
}

static const char *
s_str (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value && strlen (value) < S_ID_MAX ? value : NULL;
}

static void
s_send_json (edge_live_t *self, json_t *out, const char *tenant, const char *conversation,
             bool tenant_too, const char *skip_user)
{
    char *text = json_dumps (out, JSON_COMPACT);
    if (text)
        s_deliver (self, tenant, conversation, tenant_too, skip_user, text);
    free (text);
}

//  A presence announcement: record it; tell the watchers when the user's state
//  at the conversation changes.
static void
s_presence (edge_live_t *self, const char *tenant, json_t *payload)
{
    const char *conversation = s_str (payload, "conversation_id");
    const char *user = s_str (payload, "user_id");
    const char *origin = s_str (payload, "origin");
    if (!conversation || !user || !origin)
        return;
    int64_t now = s_now ();
    zhashx_t *entries = (zhashx_t *) zhashx_lookup (self->presence, conversation);
    if (!entries) {
        entries = zhashx_new ();
        zhashx_set_destructor (entries, (zhashx_destructor_fn *) zstr_free);
        zhashx_insert (self->presence, conversation, entries);
    }
    bool before = s_present (entries, user, now);
    char key[2 * S_ID_MAX + 2];
    snprintf (key, sizeof key, "%s|%s", user, origin);
    if (json_is_true (json_object_get (payload, "online"))) {
        int64_t *expiry = malloc (sizeof *expiry);
        assert (expiry);
        *expiry = now + S_PRESENCE_TTL_MS;
        zhashx_update (entries, key, expiry);
    }
    else
        zhashx_delete (entries, key);
    bool after = s_present (entries, user, now);
    if (zhashx_size (entries) == 0)
        zhashx_delete (self->presence, conversation);
    if (before == after)
        return;
    json_t *out = json_pack ("{s:s, s:s, s:s, s:b}", "type", "presence",
                             "conversation_id", conversation, "user_id", user, "online",
                             after);
    s_send_json (self, out, tenant, conversation, false, NULL);
    json_decref (out);
}

//  One event from the bus.
static void
s_event (edge_live_t *self, const char *topic, const ChorusBus__EventMeta *meta,
         json_t *payload)
{
    const char *tenant = meta->tenant_id ? meta->tenant_id : "";
    if (!*tenant || !json_is_object (payload))
        return;
    bool live = meta->seq == 0;
    if (live) {
        //  Best effort: copies through several brokers carry the same origin and n
        const char *origin = s_str (payload, "origin");
        json_t *n = json_object_get (payload, "n");
        if (!origin || !json_is_integer (n)
            || !s_fresh (self, origin, (uint64_t) json_integer_value (n)))
            return;
    }
    else {
        char key[96];
        snprintf (key, sizeof key, "publisher:%s",
                  meta->publisher ? meta->publisher : "");
        if (!s_fresh (self, key, meta->seq))
            return;
    }
    if (live && strncmp (topic, "chat.stream.", 12) == 0) {
        json_t *stream = json_object_get (payload, "stream");
        const char *conversation = s_str (payload, "conversation_id");
        if (!conversation || !json_is_object (stream))
            return;
        json_t *out = json_pack (
            "{s:s, s:s, s:O?, s:O?, s:O?}", "type", "event", "conversation_id",
            conversation, "event", json_object_get (stream, "event"), "id",
            json_object_get (stream, "id"), "data", json_object_get (stream, "data"));
        if (out)
            s_send_json (self, out, tenant, conversation, false, NULL);
        json_decref (out);
    }
    else if (live && strncmp (topic, "edge.typing.", 12) == 0) {
        const char *conversation = s_str (payload, "conversation_id");
        const char *user = s_str (payload, "user_id");
        if (!conversation || !user)
            return;
        json_t *out = json_pack ("{s:s, s:s, s:s, s:b}", "type", "typing",
                                 "conversation_id", conversation, "user_id", user,
                                 "typing",
                                 json_is_true (json_object_get (payload, "typing")));
        s_send_json (self, out, tenant, conversation, false, user);
        json_decref (out);
    }
    else if (live && strncmp (topic, "edge.presence.", 14) == 0)
        s_presence (self, tenant, payload);
    else if (!live) {
        //  A durable event: to the tenant's watchers, and to the conversation's
        const char *conversation = NULL;
        if (strncmp (topic, "chat.conversation.", 18) == 0)
            conversation = s_str (payload, "id");
        else
            conversation = s_str (payload, "conversation_id");
        json_t *out = json_pack ("{s:s, s:s, s:O}", "type", "event", "topic", topic,
                                 "data", payload);
        if (out && conversation)
            json_object_set_new (out, "conversation_id", json_string (conversation));
        if (out)
            s_send_json (self, out, tenant, conversation, true, NULL);
        json_decref (out);
    }
}

void
edge_live_process (edge_live_t *self)
{
    while (zsock_events (self->sub) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (self->sub);
        if (!msg)
            break;
        char *topic = zmsg_popstr (msg);
        zframe_t *meta_frame = zmsg_pop (msg);
        zframe_t *payload = zmsg_pop (msg);
        ChorusBus__EventMeta *meta = meta_frame ? (ChorusBus__EventMeta *) codec_decode (
                                         &chorus_bus__event_meta__descriptor,
                                         zframe_data (meta_frame),
                                         zframe_size (meta_frame), NULL, 0)
                                                : NULL;
        if (topic && meta && payload) {
            msgpack_unpacked unpacked;
            msgpack_unpacked_init (&unpacked);
            if (msgpack_unpack_next (&unpacked, (const char *) zframe_data (payload),
                                     zframe_size (payload), NULL)
                == MSGPACK_UNPACK_SUCCESS) {
                json_t *json = codec_msgpack_to_jansson (&unpacked.data);
                s_event (self, topic, meta, json);
                json_decref (json);
            }
            msgpack_unpacked_destroy (&unpacked);
        }
        if (meta)
            protobuf_c_message_free_unpacked (&meta->base, NULL);
        zframe_destroy (&meta_frame);
        zframe_destroy (&payload);
        zstr_free (&topic);
        zmsg_destroy (&msg);
    }
}

void
edge_live_tick (edge_live_t *self)
{
    int64_t now = s_now ();
    if (now >= self->next_renew) {
        //  Our own announcements again, one per (conversation, user)
        self->next_renew = now + S_PRESENCE_RENEW_MS;
        zhashx_t *done = zhashx_new ();
        for (zlistx_t *list = (zlistx_t *) zhashx_first (self->conversations); list;
             list = (zlistx_t *) zhashx_next (self->conversations))
            for (s_watch_t *w = (s_watch_t *) zlistx_first (list); w;
                 w = (s_watch_t *) zlistx_next (list)) {
                char key[2 * S_ID_MAX + 2];
                snprintf (key, sizeof key, "%s|%s", w->conversation, w->user);
                if (zhashx_insert (done, key, w) == 0)
                    s_publish (self, "presence", w->tenant, w->conversation, w->user,
                               "online", true);
            }
        zhashx_destroy (&done);
    }
    if (now < self->next_tick)
        return;
    self->next_tick = now + 1000;
    //  Announcements not renewed: their users leave (told when nobody else is left)
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, (zlistx_destructor_fn *) zstr_free);
    for (zhashx_t *entries = (zhashx_t *) zhashx_first (self->presence); entries;
         entries = (zhashx_t *) zhashx_next (self->presence)) {
        const char *conversation = (const char *) zhashx_cursor (self->presence);
        for (int64_t *expiry = (int64_t *) zhashx_first (entries); expiry;
             expiry = (int64_t *) zhashx_next (entries))
            if (*expiry <= now)
                zlistx_add_end (gone,
                                zsys_sprintf ("%s %s", conversation,
                                              (const char *) zhashx_cursor (entries)));
    }
    for (char *item = (char *) zlistx_first (gone); item;
         item = (char *) zlistx_next (gone)) {
        char *space = strchr (item, ' ');
        *space = 0;
        zhashx_t *entries = (zhashx_t *) zhashx_lookup (self->presence, item);
        zhashx_delete (entries, space + 1);
        char *bar = strchr (space + 1, '|');
        if (bar)
            *bar = 0;
        if (!s_present (entries, space + 1, now)) {
            //  The tenant is a watcher's: only they can be told
            zlistx_t *list = (zlistx_t *) zhashx_lookup (self->conversations, item);
            s_watch_t *any = list ? (s_watch_t *) zlistx_first (list) : NULL;
            if (any) {
                json_t *out = json_pack ("{s:s, s:s, s:s, s:b}", "type", "presence",
                                         "conversation_id", item, "user_id", space + 1,
                                         "online", false);
                s_send_json (self, out, any->tenant, item, false, NULL);
                json_decref (out);
            }
        }
        if (zhashx_size (entries) == 0)
            zhashx_delete (self->presence, item);
    }
    zlistx_destroy (&gone);
}

//  ---------------------------------------------------------------------------------

static void
s_collect (void *watcher, const char *text, size_t size)
{
    zlistx_add_end ((zlistx_t *) watcher, zsys_sprintf ("%.*s", (int) size, text));
}

void
edge_live_test (bool verbose)
{
    (void) verbose;
    printf (" * edge_live: ");
    assert (edge_live_new ("", NULL) == NULL);
    edge_live_t *live = edge_live_new ("inproc://edge-live-test", NULL);
    assert (live && edge_live_socket (live));
    zlistx_t *a = zlistx_new (), *b = zlistx_new ();
    zlistx_set_destructor (a, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_destructor (b, (zlistx_destructor_fn *) zstr_free);
    const char *tenant = "t1", *other = "t2";
    assert (edge_live_watch (live, a, s_collect, tenant, "c1", "alice") == 0);
    assert (edge_live_watch (live, a, s_collect, tenant, "c1", "alice") == 0);  //  once
    assert (edge_live_watch (live, b, s_collect, tenant, "c1", "bob") == 0);
    assert (edge_live_watch_tenant (live, b, s_collect, tenant, "bob") == 0);
    char *present = edge_live_presence (live, "c1");
    assert (streq (present, "[\"alice\",\"bob\"]"));
    //  Subscribed to what the watches need: c1's topics once, the durable ones
    assert (streq ((char *) zhashx_lookup (live->wanted, "chat.stream.c1"), "2"));
    assert (streq ((char *) zhashx_lookup (live->wanted, "channels."), "3"));
    free (present);
    //  A live stream event reaches the conversation's watchers of its tenant only
    ChorusBus__EventMeta meta = CHORUS_BUS__EVENT_META__INIT;
    meta.publisher = "chat";
    meta.tenant_id = (char *) tenant;
    json_t *payload = json_pack (
        "{s:s, s:s, s:i, s:{s:s, s:s, s:{s:s}}}", "conversation_id", "c1", "origin", "o1",
        "n", 1, "stream", "event", "message.delta", "id", "m:3", "data", "delta", "hi");
    s_event (live, "chat.stream.c1", &meta, payload);
    assert (zlistx_size (a) == 1 && zlistx_size (b) == 1);
    assert (strstr ((char *) zlistx_first (a), "\"event\":\"message.delta\""));
    //  The same event through another broker: dropped
    s_event (live, "chat.stream.c1", &meta, payload);
    assert (zlistx_size (a) == 1);
    meta.tenant_id = (char *) other;
    json_object_set_new (payload, "n", json_integer (2));
    s_event (live, "chat.stream.c1", &meta, payload);
    assert (zlistx_size (a) == 1);
    json_decref (payload);
    //  A durable event: to the tenant's watchers and the conversation's
    meta.tenant_id = (char *) tenant;
    meta.seq = 7;
    payload = json_pack ("{s:s, s:s}", "id", "c1", "status", "resolved");
    s_event (live, "chat.conversation.resolved", &meta, payload);
    assert (zlistx_size (a) == 2 && zlistx_size (b) == 3);         //  b: both watches
    s_event (live, "chat.conversation.resolved", &meta, payload);  //  seen
    assert (zlistx_size (a) == 2);
    json_decref (payload);
    //  Typing reaches the others, not the typist
    meta.seq = 0;
    payload = json_pack ("{s:s, s:s, s:s, s:i, s:b}", "conversation_id", "c1", "user_id",
                         "alice", "origin", "o2", "n", 1, "typing", 1);
    s_event (live, "edge.typing.c1", &meta, payload);
    assert (zlistx_size (a) == 2 && zlistx_size (b) == 4);
    assert (strstr ((char *) zlistx_last (b), "\"typing\":true"));
    json_decref (payload);
    //  Presence from another edge: carol arrives, then leaves
    payload = json_pack ("{s:s, s:s, s:s, s:i, s:b}", "conversation_id", "c1", "user_id",
                         "carol", "origin", "o3", "n", 1, "online", 1);
    s_event (live, "edge.presence.c1", &meta, payload);
    assert (zlistx_size (a) == 3 && strstr ((char *) zlistx_last (a), "carol"));
    present = edge_live_presence (live, "c1");
    assert (strstr (present, "carol") && strstr (present, "alice"));
    free (present);
    json_object_set_new (payload, "n", json_integer (2));
    json_object_set_new (payload, "online", json_false ());
    s_event (live, "edge.presence.c1", &meta, payload);
    assert (zlistx_size (a) == 4
            && strstr ((char *) zlistx_last (a), "\"online\":false"));
    json_decref (payload);
    //  Unwatching
    uint64_t before = live->published;
    assert (edge_live_typing (live, a, "c1", true));
    assert (edge_live_typing (live, a, "c1", true));  //  a repeat: held back
    assert (live->published == before + 1);
    assert (edge_live_typing (live, a, "c1", false));  //  a change: at once
    assert (live->published == before + 2);
    assert (!edge_live_typing (live, a, "c2", true));
    assert (edge_live_unwatch (live, a, "c1"));
    assert (!edge_live_unwatch (live, a, "c1"));
    assert (!edge_live_typing (live, a, "c1", false));
    for (int i = 0; i < EDGE_LIVE_MAX_WATCHES; i++) {
        char id[16];
        snprintf (id, sizeof id, "x%d", i);
        assert (edge_live_watch (live, a, s_collect, tenant, id, "alice") == 0);
    }
    assert (edge_live_watch (live, a, s_collect, tenant, "one-more", "alice") == -1);
    edge_live_unwatch_all (live, a);
    edge_live_unwatch_all (live, b);
    assert (zhashx_size (live->wanted) == 0);  //  nothing watched: nothing comes
    edge_live_tick (live);
    edge_live_destroy (&live);
    zlistx_destroy (&a);
    zlistx_destroy (&b);
    printf ("OK\n");
}
