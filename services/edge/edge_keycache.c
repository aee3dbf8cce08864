/*  edge_keycache: API key answers by key hash, bounded in age and number.       */
#include "edge_keycache.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool refused;              //  the auth service refused the key
    edge_identity_t identity;  //  who it acts for (when not refused)
    int64_t stored_ms;         //  when the answer came (monotonic ms)
} s_entry_t;

struct _edge_keycache_t {
    zhashx_t *entries;   //  key hash -> s_entry_t *
    int64_t max_age_ms;  //  how long an answer is used
    size_t max_entries;  //  most answers kept
};

//  zhashx destructor of an entry.
static void
s_entry_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

edge_keycache_t *
edge_keycache_new (int64_t max_age_ms, size_t max_entries)
{
    edge_keycache_t *self = calloc (1, sizeof *self);
    assert (self);
    self->entries = zhashx_new ();
    assert (self->entries);
    zhashx_set_destructor (self->entries, s_entry_destroy);
    self->max_age_ms = max_age_ms;
    self->max_entries = max_entries;
    return self;
}

void
edge_keycache_destroy (edge_keycache_t **self_p)
{
    assert (self_p);
    edge_keycache_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->entries);
    free (self);
    *self_p = NULL;
}

const edge_identity_t *
edge_keycache_lookup (edge_keycache_t *self, const char *hash, int64_t now_ms,
                      int64_t now_s, bool *refused)
{
    assert (self && hash && refused);
    *refused = false;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, hash);
    if (!entry)
        return NULL;
    if (now_ms - entry->stored_ms >= self->max_age_ms) {
        zhashx_delete (self->entries, hash);
        return NULL;
    }
    if (entry->refused
        || (entry->identity.expires_at > 0 && entry->identity.expires_at <= now_s)) {
        *refused = true;
        return NULL;
    }
    return &entry->identity;
}

void
edge_keycache_store (edge_keycache_t *self, const char *hash,
                     const edge_identity_t *identity, int64_t now_ms)
{
    assert (self && hash);
    if (self->max_age_ms <= 0)
        return;
    if (!zhashx_lookup (self->entries, hash)
        && zhashx_size (self->entries) >= self->max_entries) {
        edge_keycache_prune (self, now_ms);
        if (zhashx_size (self->entries) >= self->max_entries)
            return;  //  full of fresh answers: this one is not cached
    }
    s_entry_t *entry = calloc (1, sizeof *entry);
    assert (entry);
    entry->refused = identity == NULL;
    if (identity)
        entry->identity = *identity;
    entry->stored_ms = now_ms;
    zhashx_update (self->entries, hash, entry);
}

void
edge_keycache_forget_key (edge_keycache_t *self, const char *key_id)
{
    assert (self && key_id);
    zlistx_t *keys = zhashx_keys (self->entries);
    for (const char *hash = (const char *) zlistx_first (keys); hash;
         hash = (const char *) zlistx_next (keys)) {
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, hash);
        if (entry && !entry->refused && strcmp (entry->identity.api_key_id, key_id) == 0)
            zhashx_delete (self->entries, hash);
    }
    zlistx_destroy (&keys);
}

void
edge_keycache_prune (edge_keycache_t *self, int64_t now_ms)
{
    assert (self);
    zlistx_t *keys = zhashx_keys (self->entries);
    for (const char *hash = (const char *) zlistx_first (keys); hash;
         hash = (const char *) zlistx_next (keys)) {
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, hash);
        if (entry && now_ms - entry->stored_ms >= self->max_age_ms)
            zhashx_delete (self->entries, hash);
    }
    zlistx_destroy (&keys);
}

size_t
edge_keycache_size (edge_keycache_t *self)
{
    assert (self);
    return zhashx_size (self->entries);
}

//  Copy an id of 1..EDGE_AUTH_ID_MAX bytes into out; false when it does not fit.
static bool
s_copy_id (char *out, size_t size, const char *id)
{
    if (!id || !*id || strlen (id) >= size)
        return false;
    memcpy (out, id, strlen (id) + 1);
    return true;
}

int
edge_keycache_identity (const ChorusAuth__ApiKeyIdentity *answer,
                        edge_identity_t *identity)
{
    assert (answer && identity);
    memset (identity, 0, sizeof *identity);
    identity->kind = EDGE_CRED_API_KEY;
    identity->role = auth_role_parse (answer->role);
    identity->scopes = edge_auth_scopes (answer->scopes, answer->n_scopes);
    identity->expires_at = answer->has_expires_at ? answer->expires_at : 0;
    if (!s_copy_id (identity->api_key_id, sizeof identity->api_key_id, answer->key_id)
        || !s_copy_id (identity->tenant_id, sizeof identity->tenant_id, answer->tenant_id)
        || !s_copy_id (identity->user_id, sizeof identity->user_id, answer->user_id)
        || identity->role == AUTH_ROLE_NONE
        || identity->role == AUTH_ROLE_PLATFORM_ADMIN) {
        memset (identity, 0, sizeof *identity);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Selftest

void
edge_keycache_test (bool verbose)
{
    printf (" * edge_keycache: ");
    char *scopes[] = {"read", "admin"};
    ChorusAuth__ApiKeyIdentity answer = CHORUS_AUTH__API_KEY_IDENTITY__INIT;
    answer.key_id = "k1";
    answer.tenant_id = "t1";
    answer.user_id = "u1";
    answer.role = "tenant_admin";
    answer.n_scopes = 2;
    answer.scopes = scopes;
    answer.has_expires_at = true;
    answer.expires_at = 1000;
    edge_identity_t identity;
    assert (edge_keycache_identity (&answer, &identity) == 0);
    assert (identity.kind == EDGE_CRED_API_KEY
            && identity.role == AUTH_ROLE_TENANT_ADMIN);
    assert (identity.scopes == (EDGE_SCOPE_READ | EDGE_SCOPE_ADMIN));
    assert (strcmp (identity.api_key_id, "k1") == 0 && identity.expires_at == 1000);
    assert (*identity.session_id == '\0');
    //  Answers the edge cannot use
    answer.role = "platform_admin";
    edge_identity_t bad;
    assert (edge_keycache_identity (&answer, &bad) == -1 && bad.kind == EDGE_CRED_NONE);
    answer.role = "owner";
    assert (edge_keycache_identity (&answer, &bad) == -1);
    answer.role = "member";
    answer.tenant_id = NULL;
    assert (edge_keycache_identity (&answer, &bad) == -1);

    edge_keycache_t *cache = edge_keycache_new (2000, 2);
    bool refused = true;
    assert (!edge_keycache_lookup (cache, "h1", 0, 10, &refused) && !refused);
    edge_keycache_store (cache, "h1", &identity, 100);
    edge_keycache_store (cache, "h2", NULL, 100);
    const edge_identity_t *got = edge_keycache_lookup (cache, "h1", 2099, 10, &refused);
    assert (got && !refused && strcmp (got->user_id, "u1") == 0);
    assert (!edge_keycache_lookup (cache, "h2", 2099, 10, &refused) && refused);
    //  Expired keys are refused from the cache; stale answers are forgotten
    assert (!edge_keycache_lookup (cache, "h1", 200, 1000, &refused) && refused);
    assert (!edge_keycache_lookup (cache, "h1", 2100, 10, &refused) && !refused);
    assert (edge_keycache_size (cache) == 1);
    //  Full: a new answer goes in only when an old one is stale
    edge_keycache_store (cache, "h1", &identity, 2100);
    edge_keycache_store (cache, "h3", &identity, 2100);  //  h2 (stored at 100) goes
    assert (edge_keycache_size (cache) == 2);
    assert (edge_keycache_lookup (cache, "h3", 2101, 10, &refused));
    edge_keycache_store (cache, "h4", NULL, 2101);  //  full of fresh answers: not kept
    assert (!edge_keycache_lookup (cache, "h4", 2102, 10, &refused) && !refused);
    //  A revoked key leaves at once
    edge_keycache_forget_key (cache, "k1");
    assert (edge_keycache_size (cache) == 0);
    edge_keycache_store (cache, "h4", NULL, 3000);
    edge_keycache_prune (cache, 5000);
    assert (edge_keycache_size (cache) == 0);
    //  A cache of age 0 keeps nothing
    edge_keycache_t *none = edge_keycache_new (0, 10);
    edge_keycache_store (none, "h1", &identity, 0);
    assert (edge_keycache_size (none) == 0);
    edge_keycache_destroy (&none);
    if (verbose)
        printf ("(max 2 answers) ");
    edge_keycache_destroy (&cache);
    edge_keycache_destroy (&cache);
    printf ("OK\n");
}
