/*  core_log: structured logs, one JSON object per line on stderr, with time, level,
    service, request id and message. Each actor owns one logger; the level is checked
    before any argument is formatted (use the macros).                              */
#ifndef CORE_LOG_H_INCLUDED
#define CORE_LOG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    CORE_LOG_DEBUG = 0,
    CORE_LOG_INFO = 1,
    CORE_LOG_WARN = 2,
    CORE_LOG_ERROR = 3,
    CORE_LOG_OFF = 4
} core_log_level_t;

typedef struct _core_log_t core_log_t;

//  Create a logger for a service at a level ("debug", "info", "warn", "error",
//  "off"); an unknown level name means "info".
core_log_t *core_log_new (const char *service, const char *level);
void core_log_destroy (core_log_t **self_p);

//  True when a line at this level would be written.
bool core_log_enabled (core_log_t *self, core_log_level_t level);

//  Write one line; request_id may be NULL. Prefer the macros below.
void core_log_write (core_log_t *self, core_log_level_t level, const char *request_id,
                     const char *format, ...) __attribute__ ((format (printf, 4, 5)));

//  Parse a level name; returns -1 for an unknown name.
int core_log_level_parse (const char *name);

#define core_log_at(log, lvl, rid, ...)                                                  \
    do {                                                                                 \
        if (core_log_enabled ((log), (lvl)))                                             \
            core_log_write ((log), (lvl), (rid), __VA_ARGS__);                           \
    } while (0)
#define core_log_debug(log, rid, ...) core_log_at (log, CORE_LOG_DEBUG, rid, __VA_ARGS__)
#define core_log_info(log, rid, ...) core_log_at (log, CORE_LOG_INFO, rid, __VA_ARGS__)
#define core_log_warn(log, rid, ...) core_log_at (log, CORE_LOG_WARN, rid, __VA_ARGS__)
#define core_log_error(log, rid, ...) core_log_at (log, CORE_LOG_ERROR, rid, __VA_ARGS__)

//  Append s to buf as a JSON string body (no quotes), escaping as RFC 8259 asks.
//  Writes at most size-1 bytes and always terminates; returns the length written.
size_t core_json_escape (char *buf, size_t size, const char *s);

void core_log_test (bool verbose);

#endif
