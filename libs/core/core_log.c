/*  core_log: JSON-lines logger used by every service, the broker and the edge.
    One write(2) per line keeps lines whole when several threads share stderr.      */
#include "core_log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct _core_log_t {
    char *service;           //  service name written on every line
    core_log_level_t level;  //  lowest level written
    int fd;                  //  where lines go (stderr)
};

static const char *s_level_names[] = {"debug", "info", "warn", "error", "off"};

int
core_log_level_parse (const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= CORE_LOG_OFF; i++)
        if (strcmp (name, s_level_names[i]) == 0)
            return i;
    return -1;
}

core_log_t *
core_log_new (const char *service, const char *level)
{
    core_log_t *self = calloc (1, sizeof (core_log_t));
    assert (self);
    self->service = strdup (service ? service : "chorus");
    assert (self->service);
    int parsed = core_log_level_parse (level);
    self->level = parsed < 0 ? CORE_LOG_INFO : (core_log_level_t) parsed;
    self->fd = STDERR_FILENO;
    return self;
}

void
core_log_destroy (core_log_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->service);
    free (*self_p);
    *self_p = NULL;
}

bool
core_log_enabled (core_log_t *self, core_log_level_t level)
{
    return self && level >= self->level && level < CORE_LOG_OFF;
}

size_t
core_json_escape (char *buf, size_t size, const char *s)
{
    size_t n = 0;
    if (size == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *) s; p && *p; p++) {
        char esc[8];
        size_t len = 0;
        switch (*p) {
            case '"':
                memcpy (esc, "\\\"", 2);
                len = 2;
                break;
            case '\\':
                memcpy (esc, "\\\\", 2);
                len = 2;
                break;
            case '\n':
                memcpy (esc, "\\n", 2);
                len = 2;
                break;
            case '\r':
                memcpy (esc, "\\r", 2);
                len = 2;
                break;
            case '\t':
                memcpy (esc, "\\t", 2);
                len = 2;
                break;
            default:
                if (*p < 0x20)
                    len = (size_t) snprintf (esc, sizeof esc, "\\u%04x", *p);
                else {
                    esc[0] = (char) *p;
                    len = 1;
                }
        }
        if (n + len >= size)
            break;
        memcpy (buf + n, esc, len);
        n += len;
    }
    buf[n] = 0;
    return n;
}

void
core_log_write (core_log_t *self, core_log_level_t level, const char *request_id,
                const char *format, ...)
{
    if (!core_log_enabled (self, level))
        return;
    char message[2048];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);

    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char stamp[40];
    strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char escaped[4096], rid[160], service[96];
    core_json_escape (escaped, sizeof escaped, message);
    core_json_escape (rid, sizeof rid, request_id ? request_id : "");
    core_json_escape (service, sizeof service, self->service);

    char line[4608];
    int len = snprintf (line, sizeof line,
                        "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"service\":\"%s\","
                        "\"request_id\":\"%s\",\"message\":\"%s\"}\n",
                        stamp, (int) (tv.tv_usec / 1000), s_level_names[level], service,
                        rid, escaped);
    if (len < 0)
        return;
    if ((size_t) len >= sizeof line) {
        len = sizeof line - 1;
        line[len - 1] = '\n';
    }
    ssize_t rc = write (self->fd, line, (size_t) len);
    (void) rc;
}

void
core_log_test (bool verbose)
{
    printf (" * core_log: ");
    char buf[64];
    core_json_escape (buf, sizeof buf, "a\"b\\c\nd\x01");
    assert (strcmp (buf, "a\\\"b\\\\c\\nd\\u0001") == 0);
    //  Truncation never splits an escape and always terminates
    core_json_escape (buf, 4, "\"\"\"");
    assert (strcmp (buf, "\\\"") == 0);
    assert (core_log_level_parse ("warn") == CORE_LOG_WARN);
    assert (core_log_level_parse ("loud") == -1);

    core_log_t *log = core_log_new ("test", "warn");
    assert (!core_log_enabled (log, CORE_LOG_INFO));
    assert (core_log_enabled (log, CORE_LOG_ERROR));
    //  Lines go to a pipe so the test can read what was written
    int fds[2];
    assert (pipe (fds) == 0);
    log->fd = fds[1];
    core_log_info (log, "r1", "not written %d", 1);
    core_log_warn (log, "r-2", "quote \" here");
    char got[512] = {0};
    ssize_t n = read (fds[0], got, sizeof got - 1);
    assert (n > 0);
    assert (strstr (got, "\"level\":\"warn\""));
    assert (strstr (got, "\"request_id\":\"r-2\""));
    assert (strstr (got, "\"message\":\"quote \\\" here\""));
    assert (strstr (got, "\"service\":\"test\""));
    assert (got[n - 1] == '\n');
    assert (strchr (got, '\n') == got + n - 1);
    close (fds[0]);
    close (fds[1]);
    core_log_destroy (&log);
    core_log_destroy (&log);
    if (verbose)
        printf ("%s", got);
    printf ("OK\n");
}
