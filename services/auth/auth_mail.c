/*  auth_mail: mails as JSON files in a folder (see auth_mail.h).               */
#include "auth_mail.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <uuid/uuid.h>

struct _auth_mail_t {
    char *dir;        //  folder, NULL: log only
    core_log_t *log;  //  logger (borrowed)
};

auth_mail_t *
auth_mail_new (const char *dir, core_log_t *log)
{
    auth_mail_t *self = calloc (1, sizeof (auth_mail_t));
    assert (self);
    self->log = log;
    if (dir && *dir) {
        if (mkdir (dir, 0700) && errno != EEXIST) {
            core_log_error (log, NULL, "cannot create mail folder %s: %s", dir,
                            strerror (errno));
            free (self);
            return NULL;
        }
        self->dir = strdup (dir);
        assert (self->dir);
    }
    return self;
}

void
auth_mail_destroy (auth_mail_t **self_p)
{
    auth_mail_t *self = *self_p;
    if (!self)
        return;
    free (self->dir);
    free (self);
    *self_p = NULL;
}

int
auth_mail_send (auth_mail_t *self, const char *to, const char *subject, const char *text,
                const char *kind, const char *token)
{
    if (!self->dir) {
        //  Development without a mail folder: the mail goes to the log, token and all
        core_log_warn (self->log, NULL,
                       "%s mail to %s not delivered (CHORUS_MAIL_DIR is unset); its "
                       "token: %s",
                       kind, to, token);
        return 0;
    }
    json_t *mail = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "to", to, "subject", subject,
                              "text", text, "kind", kind, "token", token);
    if (!mail)
        return -1;
    uuid_t uuid;
    char id[37];
    uuid_generate_random (uuid);
    uuid_unparse_lower (uuid, id);
    char path[1024], temporary[1100];
    snprintf (path, sizeof path, "%s/%lld-%s.json", self->dir, (long long) zclock_time (),
              id);
    snprintf (temporary, sizeof temporary, "%s.tmp", path);
    int rc = json_dump_file (mail, temporary, JSON_INDENT (2));
    json_decref (mail);
    if (rc == 0 && rename (temporary, path) != 0)
        rc = -1;
    if (rc) {
        core_log_error (self->log, NULL, "cannot write mail %s: %s", path,
                        strerror (errno));
        unlink (temporary);
        return -1;
    }
    core_log_info (self->log, NULL, "%s mail to %s written to %s", kind, to, path);
    return 0;
}

void
auth_mail_test (bool verbose)
{
    (void) verbose;
    printf (" * auth_mail: ");
    core_log_t *log = core_log_new ("auth", "off");
    char dir[] = "/tmp/auth-mail-XXXXXX";
    assert (mkdtemp (dir));
    char sub[128];
    snprintf (sub, sizeof sub, "%s/box", dir);
    auth_mail_t *mail = auth_mail_new (sub, log);
    assert (mail);
    assert (auth_mail_send (mail, "a@example.com", "Reset", "Use the token",
                            "password_reset", "tok123")
            == 0);
    zdir_t *folder = zdir_new (sub, NULL);
    assert (folder && zdir_count (folder) == 1);
    zfile_t **files = (zfile_t **) zdir_flatten (folder);
    json_t *read = json_load_file (zfile_filename (files[0], NULL), 0, NULL);
    assert (read);
    assert (streq (json_string_value (json_object_get (read, "to")), "a@example.com"));
    assert (streq (json_string_value (json_object_get (read, "kind")), "password_reset"));
    assert (streq (json_string_value (json_object_get (read, "token")), "tok123"));
    json_decref (read);
    zdir_flatten_free (&files);
    zdir_remove (folder, true);
    zdir_destroy (&folder);
    auth_mail_destroy (&mail);
    rmdir (dir);
    //  Without a folder it only logs
    mail = auth_mail_new ("", log);
    assert (mail && auth_mail_send (mail, "b@example.com", "s", "t", "invite", "x") == 0);
    auth_mail_destroy (&mail);
    auth_mail_destroy (&mail);
    core_log_destroy (&log);
    printf ("OK\n");
}
