/*  db_message: rows of a PGresult into protobuf-c messages, driven only by the
    descriptors protoc-c generates. Services build their replies from SQL with it
    instead of hand-written per-type code: name the columns after the fields
    (`SELECT id, email, created_at::text AS created_at ...`, "user.id" for a field
    of a sub-message) and append the rows to the reply's repeated field.
    Works for proto3 (schemas/bus.proto) and proto2 (schemas/auth.proto) messages;
    everything it allocates is freed by protobuf_c_message_free_unpacked (msg, NULL).
    Row content is never trusted: what does not parse is an error naming the column. */
#ifndef DB_MESSAGE_H_INCLUDED
#define DB_MESSAGE_H_INCLUDED

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

//  Most dotted parts in a column name ("a.b.c" has 3).
#define DB_MESSAGE_MAX_DEPTH 16

//  New empty message of type desc (malloc'd and initialised, every field absent),
//  for db_message_append_rows; free it with protobuf_c_message_free_unpacked.
ProtobufCMessage *db_message_new (const ProtobufCMessageDescriptor *desc)
    __attribute__ ((warn_unused_result));

//  New message of type desc from row `row` of result: each column whose name is a
//  field name sets that field (columns named "_..." are skipped: they carry what
//  the caller reads itself, such as a list cursor); "user.id" sets field id of sub-message field user
//  (created on demand, one level or more). SQL NULL leaves the field absent (a
//  sub-message whose columns are all NULL is not created).
//  Text is parsed by the field's type: string; bool ("t"/"f"/"true"/"false");
//  int32/int64/uint32/uint64/sint/fixed (decimal, range-checked); float/double
//  (also NaN, Infinity); enum (by value name, case-insensitive, or the number of a
//  known value); repeated scalar fields from a one-dimensional PostgreSQL array
//  literal ({a,b,"c d",NULL} with quoting and backslash escapes; NULL elements are
//  left out); bytes from PostgreSQL's hex format (\x0a0b). Two columns may set
//  members of one oneof only when all but one are NULL. A column that names no
//  field (or names a message field itself), a column name given twice, or a value
//  that does not parse fails with a message naming the column, such as
//  "column 'limit': out of range for uint32". Results must be in text format;
//  PostgreSQL cuts column names at 63 bytes.
//  Free the result with protobuf_c_message_free_unpacked (msg, NULL).
ProtobufCMessage *db_message_from_row (const ProtobufCMessageDescriptor *desc,
                                       const PGresult *result, int row, char *error,
                                       size_t error_size)
    __attribute__ ((warn_unused_result));

//  Append every row of result, each as a new message of the field's type (as
//  db_message_from_row makes it), to the repeated message field `field` of msg,
//  which protobuf_c_message_free_unpacked must be able to free (db_message_new,
//  db_message_from_row or codec_decode made it). Returns 0, or -1 with error
//  filled ("row 2: column 'id': ...") and msg unchanged.
int db_message_append_rows (ProtobufCMessage *msg, const char *field,
                            const PGresult *result, char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

void db_message_test (bool verbose);

#endif
