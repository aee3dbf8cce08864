/*  core_config: each program declares its options in one table (name, environment
    variable, type, bounds, default, help). Values come from the environment; a bad
    value stops the program at start with a message naming the variable. --help
    prints the table, and tools/ renders it as the README's configuration table.    */
#ifndef CORE_CONFIG_H_INCLUDED
#define CORE_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CORE_CONFIG_STRING, CORE_CONFIG_INT, CORE_CONFIG_BOOL } core_config_type_t;

typedef struct {
    const char *name;         //  option name used by code, e.g. "brokers"
    const char *env;          //  environment variable, e.g. "CHORUS_BROKERS"
    core_config_type_t type;  //  how the value is parsed
    int64_t min;              //  lowest accepted integer (ints only)
    int64_t max;              //  highest accepted integer (ints only)
    const char *fallback;     //  default value as text; NULL means required
    const char *help;         //  one line of help
} core_config_option_t;

typedef struct _core_config_t core_config_t;

//  Options every Chorus program understands (brokers, log level, ...).
extern const core_config_option_t core_config_common[];
extern const size_t core_config_common_count;

//  Build a configuration from the common options plus the program's own table
//  (which may be NULL), reading values from the environment. On a bad value returns
//  NULL and sets *error to a message naming the variable (caller frees).
core_config_t *core_config_new (const core_config_option_t *table, size_t count,
                                char **error);
void core_config_destroy (core_config_t **self_p);

//  Set a value as if it came from the environment; validated the same way.
int core_config_set (core_config_t *self, const char *name, const char *value,
                     char **error) __attribute__ ((warn_unused_result));

//  Typed access by option name. Asking for an undeclared option is a bug (asserts).
const char *core_config_str (core_config_t *self, const char *name);
int64_t core_config_int (core_config_t *self, const char *name);
bool core_config_bool (core_config_t *self, const char *name);

//  Print the table (common options first) as --help text.
void core_config_print_help (const char *program, const core_config_option_t *table,
                             size_t count, FILE *out);
//  Print the table as Markdown rows: | variable | type | default | help |.
void core_config_print_markdown (const core_config_option_t *table, size_t count,
                                 FILE *out);

//  Handle --help / --config-markdown for a program; returns true when it printed.
bool core_config_handle_args (int argc, char **argv, const char *program,
                              const core_config_option_t *table, size_t count);

void core_config_test (bool verbose);

#endif
