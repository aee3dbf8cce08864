/*  auth_secretbox: secrets sealed at rest (provider API keys, OAuth tokens,
    channel credentials). XSalsa20-Poly1305 (libsodium crypto_secretbox) under a
    key derived from CHORUS_SECRET_KEY (crypto_kdf, context "chorussb", subkey 2),
    with a fresh random nonce per seal; sealed text is base64 of nonce | box, so
    it fits a text column. A tampered or foreign value never opens.          */
#ifndef AUTH_SECRETBOX_H_INCLUDED
#define AUTH_SECRETBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "core_config.h"

//  Longest secret sealed, in bytes
#define AUTH_SECRETBOX_MAX 16384

typedef struct _auth_secretbox_t auth_secretbox_t;

//  A box keyed from master, the base64 text of 32 bytes (CHORUS_SECRET_KEY).
//  Returns NULL with *error set (caller frees) when the key is missing or bad.
auth_secretbox_t *auth_secretbox_new (const char *master, char **error);

//  The same from a configuration's secret_key option.
auth_secretbox_t *auth_secretbox_new_from_config (core_config_t *config, char **error);

//  Destroy it, wiping the key; harmless on NULL.
void auth_secretbox_destroy (auth_secretbox_t **self_p);

//  Seal plaintext (1..AUTH_SECRETBOX_MAX bytes, NUL-terminated). Returns fresh
//  base64 text the caller frees, or NULL for an empty or too long secret.
char *auth_secretbox_seal (auth_secretbox_t *self, const char *plaintext)
    __attribute__ ((warn_unused_result));

//  Open sealed text. Returns the fresh plaintext (caller wipes and frees), or
//  NULL when the text is malformed, tampered with or sealed under another key.
char *auth_secretbox_open (auth_secretbox_t *self, const char *sealed)
    __attribute__ ((warn_unused_result));

void auth_secretbox_test (bool verbose);

#endif
