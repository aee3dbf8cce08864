-- db_migrate selftest fixture: a table, created unqualified (search_path is the schema).
CREATE TABLE notes (
    id serial PRIMARY KEY,
    body text NOT NULL
);
