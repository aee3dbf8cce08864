/*  edge_revocations: the credentials the edge must refuse before they expire
    (schemas/auth.md "Revocation"), kept in memory from the auth service's
    revocations.list answers: revoked sessions (every token with that sid), users
    and members (tokens issued before a time) and API keys, each until the time
    its tokens would have expired anyway. Pure: edge_guard polls the auth service
    and asks here for every credential.                                         */
#ifndef EDGE_REVOCATIONS_H_INCLUDED
#define EDGE_REVOCATIONS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.pb-c.h"
#include "edge_auth.h"

//  Most revocations held at once; more are dropped (and counted)
#define EDGE_REVOCATIONS_MAX 1000000

typedef struct _edge_revocations_t edge_revocations_t;

edge_revocations_t *edge_revocations_new (void);
void edge_revocations_destroy (edge_revocations_t **self_p);

//  Take in one revocations.list answer at unix time now. Rows of an unknown kind,
//  without an id, or already past their until are skipped. Returns true when the
//  service holds more after this page (ask again at once with _after).
bool edge_revocations_apply (edge_revocations_t *self,
                             const ChorusAuth__RevocationList *list, int64_t now);

//  The after_seq of the next revocations.list request.
uint64_t edge_revocations_after (edge_revocations_t *self);

//  True when a verified JWT's identity (sub, tid, sid, iat) is revoked at now.
bool edge_revocations_token_revoked (edge_revocations_t *self,
                                     const edge_identity_t *identity, int64_t now);

//  True when API key key_id is revoked at now.
bool edge_revocations_key_revoked (edge_revocations_t *self, const char *key_id,
                                   int64_t now);

//  Forget revocations whose until has passed.
void edge_revocations_prune (edge_revocations_t *self, int64_t now);

//  Revocations held, and rows dropped because the store was full.
size_t edge_revocations_size (edge_revocations_t *self);
uint64_t edge_revocations_dropped (edge_revocations_t *self);

void edge_revocations_test (bool verbose);

#endif
