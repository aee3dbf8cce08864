/*  db_migrate: applies a service's numbered SQL migrations at start, before its loop
    runs (it blocks). Files are `dir/NNN_name.sql`, versions 1, 2, 3 .. with no gap;
    each runs in its own transaction with search_path set to the schema, and is
    recorded with a SHA-256 checksum in <schema>.schema_migrations. Everything runs
    under a PostgreSQL advisory lock keyed on the schema name, so replicas starting
    together apply each file once. An applied file whose content changed, or an
    applied version whose file is gone, stops the service. Migration files must not
    contain BEGIN/COMMIT themselves. Used by every service that owns tables.     */
#ifndef DB_MIGRATE_H_INCLUDED
#define DB_MIGRATE_H_INCLUDED

#include <stdbool.h>

#include "core_log.h"

//  Apply pending migrations from dir to schema (created when missing). Returns the
//  number of files applied (0 when up to date), or -1 with *error set to a message
//  the caller frees.
int db_migrate_run (const char *conninfo, const char *schema, const char *dir,
                    core_log_t *log, char **error) __attribute__ ((warn_unused_result));

void db_migrate_test (bool verbose);

#endif
