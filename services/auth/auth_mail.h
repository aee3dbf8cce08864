/*  auth_mail: the pluggable mail hook of the auth service (schemas/auth.md,
    "Mail"). Password-reset and invite mails are written as one JSON file each
    into a folder (CHORUS_MAIL_DIR), which a mail relay, a test, or a developer
    reads; without a folder (development) the mail is logged, token included.  */
#ifndef AUTH_MAIL_H_INCLUDED
#define AUTH_MAIL_H_INCLUDED

#include <stdbool.h>

#include "core_log.h"

typedef struct _auth_mail_t auth_mail_t;

//  Create the hook for folder dir ("" or NULL: log only). The folder is created
//  when missing. Returns NULL when it cannot be created (logged).
auth_mail_t *auth_mail_new (const char *dir, core_log_t *log);
void auth_mail_destroy (auth_mail_t **self_p);

//  Send one mail: writes {"to", "subject", "text", "kind", "token"} to a temporary
//  file and renames it into the folder. Returns 0 or -1 (logged).
int auth_mail_send (auth_mail_t *self, const char *to, const char *subject,
                    const char *text, const char *kind, const char *token);

void auth_mail_test (bool verbose);

#endif
