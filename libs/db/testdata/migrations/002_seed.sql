-- db_migrate selftest fixture: several statements in one file; applied exactly once.
CREATE INDEX notes_body_idx ON notes (body);
INSERT INTO notes (body) VALUES ('seeded');
