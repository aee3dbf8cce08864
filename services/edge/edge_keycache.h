/*  edge_keycache: what the auth service answered about API keys (api_keys.verify),
    by the key's SHA-256, for at most CHORUS_EDGE_API_KEY_CACHE_MS: the identity
    a key acts for, or that it was refused. A key whose expiry passed or that was
    revoked leaves at once. Pure (times are passed in); edge_guard asks the bus. */
#ifndef EDGE_KEYCACHE_H_INCLUDED
#define EDGE_KEYCACHE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.pb-c.h"
#include "edge_auth.h"

typedef struct _edge_keycache_t edge_keycache_t;

//  A cache keeping answers max_age_ms and at most max_entries of them.
edge_keycache_t *edge_keycache_new (int64_t max_age_ms, size_t max_entries);
void edge_keycache_destroy (edge_keycache_t **self_p);

//  The answer for hash (64 hex digits) at monotonic now_ms and unix time now_s:
//  the identity (borrowed until the next call) when the key was accepted, NULL
//  with *refused true when it was refused or has expired, NULL with *refused
//  false when nothing fresh is known.
const edge_identity_t *edge_keycache_lookup (edge_keycache_t *self, const char *hash,
                                             int64_t now_ms, int64_t now_s,
                                             bool *refused);

//  Remember an answer: identity (NULL: the key was refused) at now_ms.
void edge_keycache_store (edge_keycache_t *self, const char *hash,
                          const edge_identity_t *identity, int64_t now_ms);

//  Forget every answer about API key key_id (it was revoked).
void edge_keycache_forget_key (edge_keycache_t *self, const char *key_id);

//  Drop answers older than the maximum age.
void edge_keycache_prune (edge_keycache_t *self, int64_t now_ms);

size_t edge_keycache_size (edge_keycache_t *self);

//  Turn an ApiKeyIdentity answer into an identity; returns -1 when it lacks a
//  key id, tenant or user, names an unknown role or ids too long.
int edge_keycache_identity (const ChorusAuth__ApiKeyIdentity *answer,
                            edge_identity_t *identity);

void edge_keycache_test (bool verbose);

#endif
