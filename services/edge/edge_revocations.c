/*  edge_revocations: revoked sessions, users, members and API keys by key
    "<kind>:<id>[:<tenant>]", each with the time before which tokens are refused
    (at) and the time the row can go (until).                                   */
#include "edge_revocations.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t at;     //  tokens issued before this are refused (users, members)
    int64_t until;  //  when the row may go (its tokens have expired by then)
} s_row_t;

struct _edge_revocations_t {
    zhashx_t *rows;    //  key -> s_row_t *
    uint64_t after;    //  highest sequence number taken in
    uint64_t dropped;  //  rows not kept because the store was full
};

//  zhashx destructor of a row.
static void
s_row_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

edge_revocations_t *
edge_revocations_new (void)
{
    edge_revocations_t *self = calloc (1, sizeof *self);
    assert (self);
    self->rows = zhashx_new ();
    assert (self->rows);
    zhashx_set_destructor (self->rows, s_row_destroy);
    return self;
}

void
edge_revocations_destroy (edge_revocations_t **self_p)
{
    assert (self_p);
    edge_revocations_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->rows);
    free (self);
    *self_p = NULL;
}

//  Write the key of a row into key; returns false when it does not fit.
static bool
s_key (char *key, size_t size, const char *kind, const char *id, const char *tenant)
{
    int n = snprintf (key, size, "%s:%s%s%s", kind, id, tenant ? ":" : "",
                      tenant ? tenant : "");
    return n > 0 && (size_t) n < size;
}

//  The row under key that is still in force at now, or NULL.
static s_row_t *
s_row (edge_revocations_t *self, const char *key, int64_t now)
{
    s_row_t *row = (s_row_t *) zhashx_lookup (self->rows, key);
    return row && row->until > now ? row : NULL;
}

bool
edge_revocations_apply (edge_revocations_t *self, const ChorusAuth__RevocationList *list,
                        int64_t now)
{
    assert (self);
    if (!list)
        return false;
    uint64_t highest = self->after;
    for (size_t i = 0; i < list->n_data; i++) {
        const ChorusAuth__Revocation *r = list->data[i];
        if (!r)
            continue;
        if (r->has_seq && r->seq > highest)
            highest = r->seq;
        const char *kind = r->kind;
        bool member = kind && strcmp (kind, "member") == 0;
        bool known = kind
                     && (member || strcmp (kind, "session") == 0
                         || strcmp (kind, "user") == 0 || strcmp (kind, "api_key") == 0);
        int64_t until = r->has_until ? r->until : 0;
        if (!known || !r->id || !*r->id || until <= now
            || (member && (!r->tenant_id || !*r->tenant_id)))
            continue;
        char key[3 * EDGE_AUTH_ID_MAX + 16];
        if (!s_key (key, sizeof key, kind, r->id, member ? r->tenant_id : NULL))
            continue;
        s_row_t *row = (s_row_t *) zhashx_lookup (self->rows, key);
        if (!row) {
            if (zhashx_size (self->rows) >= EDGE_REVOCATIONS_MAX) {
                self->dropped++;
                continue;
            }
            row = calloc (1, sizeof *row);
            assert (row);
            zhashx_insert (self->rows, key, row);
        }
        int64_t at = r->has_at ? r->at : 0;
        if (at > row->at)
            row->at = at;
        if (until > row->until)
            row->until = until;
    }
    //  An empty page means we are up to date: last_seq is the service's newest
    if (list->n_data == 0 && list->has_last_seq && list->last_seq > highest)
        highest = list->last_seq;
    bool more = list->n_data > 0 && list->has_last_seq && list->last_seq > highest;
    self->after = highest;
    return more;
}

uint64_t
edge_revocations_after (edge_revocations_t *self)
{
    assert (self);
    return self->after;
}

bool
edge_revocations_token_revoked (edge_revocations_t *self, const edge_identity_t *identity,
                                int64_t now)
{
    assert (self && identity);
    char key[3 * EDGE_AUTH_ID_MAX + 16];
    if (*identity->session_id
        && s_key (key, sizeof key, "session", identity->session_id, NULL)
        && s_row (self, key, now))
        return true;
    s_row_t *row = NULL;
    if (s_key (key, sizeof key, "user", identity->user_id, NULL)
        && (row = s_row (self, key, now)) && identity->iat < row->at)
        return true;
    if (s_key (key, sizeof key, "member", identity->user_id, identity->tenant_id)
        && (row = s_row (self, key, now)) && identity->iat < row->at)
        return true;
    return false;
}

bool
edge_revocations_key_revoked (edge_revocations_t *self, const char *key_id, int64_t now)
{
    assert (self);
    char key[EDGE_AUTH_ID_MAX + 16];
    return key_id && *key_id && s_key (key, sizeof key, "api_key", key_id, NULL)
           && s_row (self, key, now);
}

void
edge_revocations_prune (edge_revocations_t *self, int64_t now)
{
    assert (self);
    zlistx_t *keys = zhashx_keys (self->rows);
    for (const char *key = (const char *) zlistx_first (keys); key;
         key = (const char *) zlistx_next (keys)) {
        s_row_t *row = (s_row_t *) zhashx_lookup (self->rows, key);
        if (row && row->until <= now)
            zhashx_delete (self->rows, key);
    }
    zlistx_destroy (&keys);
}

size_t
edge_revocations_size (edge_revocations_t *self)
{
    assert (self);
    return zhashx_size (self->rows);
}

uint64_t
edge_revocations_dropped (edge_revocations_t *self)
{
    assert (self);
    return self->dropped;
}

//  --------------------------------------------------------------------------
//  Selftest

#define S_NOW 1764000000

//  A revocation row.
static ChorusAuth__Revocation
s_revocation (uint64_t seq, const char *kind, const char *id, const char *tenant,
              int64_t at, int64_t until)
{
    ChorusAuth__Revocation r = CHORUS_AUTH__REVOCATION__INIT;
    r.has_seq = true;
    r.seq = seq;
    r.kind = (char *) kind;
    r.id = (char *) id;
    r.tenant_id = (char *) tenant;
    r.has_at = true;
    r.at = at;
    r.has_until = true;
    r.until = until;
    return r;
}

//  A JWT identity of user in tenant with session sid, issued at iat.
static edge_identity_t
s_token (const char *user, const char *tenant, const char *sid, int64_t iat)
{
    edge_identity_t identity = {.kind = EDGE_CRED_JWT, .iat = iat};
    snprintf (identity.user_id, sizeof identity.user_id, "%s", user);
    snprintf (identity.tenant_id, sizeof identity.tenant_id, "%s", tenant);
    snprintf (identity.session_id, sizeof identity.session_id, "%s", sid);
    return identity;
}

void
edge_revocations_test (bool verbose)
{
    printf (" * edge_revocations: ");
    edge_revocations_t *self = edge_revocations_new ();
    assert (edge_revocations_after (self) == 0);
    ChorusAuth__Revocation rows[] = {
        s_revocation (1, "session", "s1", NULL, S_NOW, S_NOW + 900),
        s_revocation (2, "user", "u2", NULL, S_NOW, S_NOW + 900),
        s_revocation (3, "member", "u3", "t3", S_NOW, S_NOW + 900),
        s_revocation (4, "api_key", "k4", "t3", S_NOW, S_NOW + 900),
        s_revocation (5, "session", "s5", NULL, S_NOW - 900, S_NOW - 1),  //  over
        s_revocation (6, "bogus", "x", NULL, S_NOW, S_NOW + 900),
        s_revocation (7, "member", "u7", NULL, S_NOW, S_NOW + 900),  //  no tenant
        s_revocation (8, "user", "", NULL, S_NOW, S_NOW + 900),
    };
    ChorusAuth__Revocation *pointers[8];
    for (size_t i = 0; i < 8; i++)
        pointers[i] = &rows[i];
    ChorusAuth__RevocationList list = CHORUS_AUTH__REVOCATION_LIST__INIT;
    list.n_data = 8;
    list.data = pointers;
    list.has_last_seq = true;
    list.last_seq = 8;
    assert (!edge_revocations_apply (self, &list, S_NOW));
    assert (edge_revocations_after (self) == 8);
    assert (edge_revocations_size (self) == 4);

    //  Sessions: every token of the sid; users and members: issued before at
    edge_identity_t t = s_token ("u1", "t1", "s1", S_NOW + 5);
    assert (edge_revocations_token_revoked (self, &t, S_NOW + 10));
    t = s_token ("u1", "t1", "s9", S_NOW - 5);
    assert (!edge_revocations_token_revoked (self, &t, S_NOW + 10));
    t = s_token ("u2", "t1", "s9", S_NOW - 1);
    assert (edge_revocations_token_revoked (self, &t, S_NOW + 10));
    t = s_token ("u2", "t1", "s9", S_NOW);  //  issued at the revocation: new
    assert (!edge_revocations_token_revoked (self, &t, S_NOW + 10));
    t = s_token ("u3", "t3", "", S_NOW - 1);
    assert (edge_revocations_token_revoked (self, &t, S_NOW + 10));
    t = s_token ("u3", "t4", "", S_NOW - 1);  //  another tenant of the same user
    assert (!edge_revocations_token_revoked (self, &t, S_NOW + 10));
    assert (edge_revocations_key_revoked (self, "k4", S_NOW));
    assert (!edge_revocations_key_revoked (self, "k5", S_NOW));
    assert (!edge_revocations_key_revoked (self, "", S_NOW));
    //  Past until, rows no longer count and go at the next prune
    t = s_token ("u1", "t1", "s1", S_NOW + 5);
    assert (!edge_revocations_token_revoked (self, &t, S_NOW + 900));
    assert (!edge_revocations_key_revoked (self, "k4", S_NOW + 901));

    //  Paging: rows up to 10 of 12 came; an empty page moves to last_seq; a row
    //  seen again extends its until and at
    ChorusAuth__Revocation more[] = {
        s_revocation (10, "session", "s1", NULL, S_NOW + 10, S_NOW + 2000)};
    ChorusAuth__Revocation *more_ptr = &more[0];
    list.n_data = 1;
    list.data = &more_ptr;
    list.last_seq = 12;
    assert (edge_revocations_apply (self, &list, S_NOW));
    assert (edge_revocations_after (self) == 10);
    list.n_data = 0;
    assert (!edge_revocations_apply (self, &list, S_NOW));
    assert (edge_revocations_after (self) == 12);
    assert (edge_revocations_apply (self, NULL, S_NOW) == false);
    edge_revocations_prune (self, S_NOW + 1000);
    assert (edge_revocations_size (self) == 1);
    assert (edge_revocations_token_revoked (self, &t, S_NOW + 1500));
    edge_revocations_prune (self, S_NOW + 2000);
    assert (edge_revocations_size (self) == 0);
    assert (edge_revocations_dropped (self) == 0);
    if (verbose)
        printf ("(after %llu) ", (unsigned long long) edge_revocations_after (self));
    edge_revocations_destroy (&self);
    edge_revocations_destroy (&self);
    printf ("OK\n");
}
