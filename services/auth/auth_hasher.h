/*  auth_hasher: argon2id off the service's loop. Hashing a password costs tens of
    milliseconds and 19 MiB by design, so the auth service hands each hash and
    each verification to a small pool of threads and gets the outcome back as a
    callback in its own loop. Passwords are copied, and wiped once used.        */
#ifndef AUTH_HASHER_H_INCLUDED
#define AUTH_HASHER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _auth_hasher_t auth_hasher_t;

//  Outcome of a job: AUTH_HASHER_OK (hashed, or the password matched),
//  AUTH_HASHER_MISMATCH (verify: it did not), AUTH_HASHER_FAILED (a bad password
//  for hashing, or the hasher is being destroyed).
typedef enum {
    AUTH_HASHER_OK = 0,
    AUTH_HASHER_MISMATCH = 1,
    AUTH_HASHER_FAILED = -1
} auth_hasher_status_t;

//  Called once per accepted job from the owner's loop. hash is the new encoded
//  hash for a hash job, NULL otherwise (borrowed for the call).
typedef void (auth_hasher_fn) (auth_hasher_status_t status, const char *hash, void *arg);

//  Create a pool of threads (1..64) with at most queue_max jobs waiting or running.
auth_hasher_t *auth_hasher_new (int threads, size_t queue_max);

//  Stop the threads; jobs not yet answered end with AUTH_HASHER_FAILED.
void auth_hasher_destroy (auth_hasher_t **self_p);

//  Receive outcomes in a zloop. Returns 0 or -1.
int auth_hasher_attach (auth_hasher_t *self, zloop_t *loop)
    __attribute__ ((warn_unused_result));

//  Hash password (a fresh salt each time). Returns 0 when accepted, -1 when the
//  queue is full (fn is then not called).
int auth_hasher_hash (auth_hasher_t *self, const char *password, auth_hasher_fn *fn,
                      void *arg) __attribute__ ((warn_unused_result));

//  Check password against an encoded hash. Returns as auth_hasher_hash.
int auth_hasher_verify (auth_hasher_t *self, const char *hash, const char *password,
                        auth_hasher_fn *fn, void *arg)
    __attribute__ ((warn_unused_result));

//  Jobs waiting or running.
size_t auth_hasher_pending (auth_hasher_t *self);

void auth_hasher_test (bool verbose);

#endif
