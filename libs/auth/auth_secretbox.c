/*  auth_secretbox: secrets sealed at rest (see auth_secretbox.h).              */
#include "auth_secretbox.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _auth_secretbox_t {
    unsigned char key[crypto_secretbox_KEYBYTES];  //  the derived key
};

//  A message for *error (caller frees).
static char *
s_error (const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

auth_secretbox_t *
auth_secretbox_new (const char *master, char **error)
{
    if (sodium_init () < 0) {
        *error = s_error ("libsodium failed to initialise");
        return NULL;
    }
    unsigned char raw[64];
    size_t raw_len = 0;
    if (!master || !*master
        || sodium_base642bin (raw, sizeof raw, master, strlen (master), " \n", &raw_len,
                              NULL, sodium_base64_VARIANT_ORIGINAL)
        || raw_len != crypto_kdf_KEYBYTES) {
        sodium_memzero (raw, sizeof raw);
        *error = s_error ("CHORUS_SECRET_KEY must be the base64 text of 32 random bytes "
                          "(head -c 32 /dev/urandom | base64)");
        return NULL;
    }
    auth_secretbox_t *self = calloc (1, sizeof (auth_secretbox_t));
    assert (self);
    int rc = crypto_kdf_derive_from_key (self->key, sizeof self->key, 2, "chorussb", raw);
    assert (rc == 0);
    sodium_memzero (raw, sizeof raw);
    return self;
}

auth_secretbox_t *
auth_secretbox_new_from_config (core_config_t *config, char **error)
{
    return auth_secretbox_new (core_config_str (config, "secret_key"), error);
}

void
auth_secretbox_destroy (auth_secretbox_t **self_p)
{
    auth_secretbox_t *self = *self_p;
    if (!self)
        return;
    sodium_memzero (self, sizeof *self);
    free (self);
    *self_p = NULL;
}

char *
auth_secretbox_seal (auth_secretbox_t *self, const char *plaintext)
{
    size_t len = plaintext ? strlen (plaintext) : 0;
    if (len == 0 || len > AUTH_SECRETBOX_MAX)
        return NULL;
    size_t sealed_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
    unsigned char *sealed = malloc (sealed_len);
    assert (sealed);
    randombytes_buf (sealed, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy (sealed + crypto_secretbox_NONCEBYTES,
                           (const unsigned char *) plaintext, len, sealed, self->key);
    size_t text_size = sodium_base64_ENCODED_LEN (sealed_len,
                                                  sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc (text_size);
    assert (text);
    sodium_bin2base64 (text, text_size, sealed, sealed_len,
                       sodium_base64_VARIANT_ORIGINAL);
    free (sealed);
    return text;
}

char *
auth_secretbox_open (auth_secretbox_t *self, const char *sealed_text)
{
    size_t text_len = sealed_text ? strlen (sealed_text) : 0;
    size_t max = text_len / 4 * 3 + 3;
    if (text_len == 0 || max > 2 * AUTH_SECRETBOX_MAX)
        return NULL;
    unsigned char *sealed = malloc (max);
    assert (sealed);
    size_t sealed_len = 0;
    if (sodium_base642bin (sealed, max, sealed_text, text_len, NULL, &sealed_len, NULL,
                           sodium_base64_VARIANT_ORIGINAL)
        || sealed_len <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        free (sealed);
        return NULL;
    }
    size_t len = sealed_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    char *plaintext = malloc (len + 1);
    assert (plaintext);
    if (crypto_secretbox_open_easy (
            (unsigned char *) plaintext, sealed + crypto_secretbox_NONCEBYTES,
            sealed_len - crypto_secretbox_NONCEBYTES, sealed, self->key)) {
        free (sealed);
        free (plaintext);
        return NULL;
    }
    free (sealed);
    plaintext[len] = 0;
    if (strlen (plaintext) != len) {  //  a NUL inside: not something we sealed
        sodium_memzero (plaintext, len);
        free (plaintext);
        return NULL;
    }
    return plaintext;
}

void
auth_secretbox_test (bool verbose)
{
    (void) verbose;
    printf (" * auth_secretbox: ");
    char *error = NULL;
    assert (auth_secretbox_new ("", &error) == NULL && error);
    free (error);
    error = NULL;
    assert (auth_secretbox_new ("c2hvcnQ=", &error) == NULL && error);
    free (error);
    const char *master = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const char *other = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    auth_secretbox_t *box = auth_secretbox_new (master, &error);
    auth_secretbox_t *foreign = auth_secretbox_new (other, &error);
    assert (box && foreign);
    char *sealed = auth_secretbox_seal (box, "sk-live-1234");
    char *again = auth_secretbox_seal (box, "sk-live-1234");
    assert (sealed && again && strcmp (sealed, again) != 0);  //  fresh nonces
    assert (!strstr (sealed, "sk-live"));
    char *opened = auth_secretbox_open (box, sealed);
    assert (opened && strcmp (opened, "sk-live-1234") == 0);
    free (opened);
    //  Another key, a flipped byte, garbage: nothing opens
    assert (auth_secretbox_open (foreign, sealed) == NULL);
    sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
    assert (auth_secretbox_open (box, sealed) == NULL);
    assert (auth_secretbox_open (box, "not base64 !!") == NULL);
    assert (auth_secretbox_open (box, "") == NULL);
    assert (auth_secretbox_open (box, "AAAA") == NULL);
    assert (auth_secretbox_seal (box, "") == NULL);
    free (sealed);
    free (again);
    auth_secretbox_destroy (&box);
    auth_secretbox_destroy (&foreign);
    auth_secretbox_destroy (&box);
    printf ("OK\n");
}
