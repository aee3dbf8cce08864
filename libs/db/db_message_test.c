/*  db_message_test: the selftest of db_message, kept in its own file so the module
    stays under the size where it should split (STYLE.md). Needs a real PostgreSQL
    (CHORUS_TEST_DATABASE_URL, see db_testing.h).                                  */
#include "db_message.h"
#include "db_testing.h"

#include "auth.pb-c.h"
#include "codec_test.pb-c.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Run a query that must return rows; the caller clears the result.
static PGresult *
s_test_query (PGconn *pg, const char *sql)
{
    PGresult *result = PQexec (pg, sql);
    if (PQresultStatus (result) != PGRES_TUPLES_OK)
        fprintf (stderr, "\n%s: %s", sql, PQresultErrorMessage (result));
    assert (PQresultStatus (result) == PGRES_TUPLES_OK);
    return result;
}

//  The message made from the first row of a query, or NULL with error.
static ProtobufCMessage *
s_test_row (PGconn *pg, const ProtobufCMessageDescriptor *desc, const char *sql,
            char *error, size_t error_size)
{
    PGresult *result = s_test_query (pg, sql);
    ProtobufCMessage *msg = db_message_from_row (desc, result, 0, error, error_size);
    PQclear (result);
    return msg;
}

//  Assert that the first row of a query fails as desc with exactly this error.
static void
s_test_error (PGconn *pg, const ProtobufCMessageDescriptor *desc, const char *sql,
              const char *expected, bool verbose)
{
    char error[256];
    ProtobufCMessage *msg = s_test_row (pg, desc, sql, error, sizeof error);
    if (verbose || msg || strcmp (error, expected))
        printf ("\n   %s -> %s (expected: %s)", sql, msg ? "made" : error, expected);
    assert (!msg);
    assert (strcmp (error, expected) == 0);
}

void
db_message_test (bool verbose)
{
    printf (" * db_message: ");
    PGconn *pg = db_testing_connect (db_testing_url ());
    char error[256];

    //  @selftest
    //  A proto2 message: columns named after fields, NULL leaves a field absent,
    //  dotted names fill sub-messages created on demand
    const ProtobufCMessageDescriptor *td = &chorus_auth__token_reply__descriptor;
    ChorusAuth__TokenReply *reply = (ChorusAuth__TokenReply *) s_test_row (
        pg, td,
        "SELECT 'jwt' AS access_token, NULL::text AS token_type, 3600 AS expires_in,"
        " NULL::bigint AS refresh_expires_in, 'u1' AS \"user.id\","
        " true AS \"user.platform_admin\", NULL::text AS \"tenant.id\"",
        error, sizeof error);
    assert (reply);
    assert (streq (reply->access_token, "jwt") && reply->token_type == NULL);
    assert (reply->refresh_token == NULL);
    assert (reply->has_expires_in && reply->expires_in == 3600);
    assert (!reply->has_refresh_expires_in);
    assert (reply->user && streq (reply->user->id, "u1") && reply->user->email == NULL);
    assert (reply->user->has_platform_admin && reply->user->platform_admin);
    assert (reply->tenant == NULL);  //  only NULL columns: not created
    protobuf_c_message_free_unpacked (&reply->base, NULL);

    //  Arrays: quoting, escapes, NULL elements left out, the string "NULL" kept
    ChorusAuth__ApiKey *key = (ChorusAuth__ApiKey *) s_test_row (
        pg, &chorus_auth__api_key__descriptor,
        "SELECT 'k1' AS id, ARRAY['read', 'c d', 'q\"uote', 'back\\slash', '', NULL,"
        " 'NULL', '{x}', ' sp '] AS scopes, NULL::text AS expires_at",
        error, sizeof error);
    assert (key);
    assert (streq (key->id, "k1") && key->expires_at == NULL && key->name == NULL);
    const char *scopes[] = {"read", "c d",  "q\"uote", "back\\slash",
                            "",     "NULL", "{x}",     " sp "};
    assert (key->n_scopes == sizeof scopes / sizeof scopes[0]);
    for (size_t i = 0; i < key->n_scopes; i++)
        assert (streq (key->scopes[i], scopes[i]));
    protobuf_c_message_free_unpacked (&key->base, NULL);
    key = (ChorusAuth__ApiKey *) s_test_row (pg, &chorus_auth__api_key__descriptor,
                                             "SELECT '{}'::text[] AS scopes, 'k' AS id",
                                             error, sizeof error);
    assert (key && key->n_scopes == 0 && key->scopes == NULL);
    protobuf_c_message_free_unpacked (&key->base, NULL);

    //  A proto3 message with every scalar type, an enum by name and by number,
    //  bytes in hex, a oneof member, two levels of nesting, repeated scalars
    const ProtobufCMessageDescriptor *ad = &chorus__codec_test__all_types__descriptor;
    Chorus__CodecTest__AllTypes *all = (Chorus__CodecTest__AllTypes *) s_test_row (
        pg, ad,
        "SELECT -2147483648 AS f_int32, -9223372036854775808 AS f_int64,"
        " 4294967295 AS f_uint32, 18446744073709551615 AS f_uint64,"
        " 2147483647 AS f_sint32, 9223372036854775807 AS f_sint64,"
        " 123456789 AS f_fixed32, 9223372036854775808 AS f_fixed64,"
        " -1 AS f_sfixed32, -1099511627776 AS f_sfixed64, false AS f_bool,"
        " 1.5::real AS f_float, -2.25e300::float8 AS f_double,"
        " '\xe2\x9c\x93 ok' AS f_string, '\\x0a00ff'::bytea AS f_bytes,"
        " 'color_blue' AS f_enum, 'in' AS \"f_inner.name\", -7 AS \"f_inner.value\","
        " 9 AS \"f_inner.child.value\", NULL::text AS c_text, 42 AS c_number,"
        " ARRAY[0, -1, 2147483647] AS r_int32,"
        " ARRAY[18446744073709551615] AS r_uint64, '{t,f,true}'::text[] AS r_bool,"
        " ARRAY[0.5::real, 'Infinity'] AS r_float, ARRAY['NaN'::float8, 1e-300]"
        " AS r_double, ARRAY['\\x0102'::bytea, ''] AS r_bytes,"
        " ARRAY['COLOR_RED', '2', '-3'] AS r_enum, '{ 1 , 2,3 }'::int[] AS r_fixed32,"
        " '[0:0]={-5}'::bigint[] AS r_sfixed64",
        error, sizeof error);
    if (!all)
        printf ("\n   %s\n", error);
    assert (all);
    assert (all->f_int32 == INT32_MIN && all->f_int64 == INT64_MIN);
    assert (all->f_uint32 == UINT32_MAX && all->f_uint64 == UINT64_MAX);
    assert (all->f_sint32 == INT32_MAX && all->f_sint64 == INT64_MAX);
    assert (all->f_fixed32 == 123456789u && all->f_fixed64 == (uint64_t) 1 << 63);
    assert (all->f_sfixed32 == -1 && all->f_sfixed64 == -((int64_t) 1 << 40));
    assert (all->f_bool == 0 && all->f_float == 1.5f && all->f_double == -2.25e300);
    assert (streq (all->f_string, "\xe2\x9c\x93 ok"));
    assert (all->f_bytes.len == 3 && memcmp (all->f_bytes.data, "\x0a\x00\xff", 3) == 0);
    assert (all->f_enum == CHORUS__CODEC_TEST__COLOR__COLOR_BLUE);
    assert (all->f_inner && streq (all->f_inner->name, "in"));
    assert (all->f_inner->value == -7 && all->f_inner->child);
    assert (all->f_inner->child->value == 9 && streq (all->f_inner->child->name, ""));
    assert (all->choice_case == CHORUS__CODEC_TEST__ALL_TYPES__CHOICE_C_NUMBER);
    assert (all->c_number == 42);
    assert (all->n_r_int32 == 3 && all->r_int32[1] == -1 && all->r_int32[2] == INT32_MAX);
    assert (all->n_r_uint64 == 1 && all->r_uint64[0] == UINT64_MAX);
    assert (all->n_r_bool == 3 && all->r_bool[0] && !all->r_bool[1] && all->r_bool[2]);
    assert (all->n_r_float == 2 && all->r_float[0] == 0.5f && isinf (all->r_float[1]));
    assert (all->n_r_double == 2 && isnan (all->r_double[0]));
    assert (all->r_double[1] == 1e-300);
    assert (all->n_r_bytes == 2 && all->r_bytes[0].len == 2);
    assert (all->r_bytes[0].data[1] == 2 && all->r_bytes[1].len == 0);
    assert (all->n_r_enum == 3 && all->r_enum[0] == CHORUS__CODEC_TEST__COLOR__COLOR_RED);
    assert (all->r_enum[1] == CHORUS__CODEC_TEST__COLOR__COLOR_GREEN);
    assert (all->r_enum[2] == CHORUS__CODEC_TEST__COLOR__COLOR_BLUE);
    assert (all->n_r_fixed32 == 3 && all->r_fixed32[2] == 3);
    assert (all->n_r_sfixed64 == 1 && all->r_sfixed64[0] == -5);
    assert (all->n_r_string == 0 && all->n_r_inner == 0);
    protobuf_c_message_free_unpacked (&all->base, NULL);
    //  proto3 NULL: the field keeps its zero value
    all = (Chorus__CodecTest__AllTypes *) s_test_row (
        pg, ad, "SELECT NULL::text AS f_string, NULL::int AS f_int32", error,
        sizeof error);
    assert (all && streq (all->f_string, "") && all->f_int32 == 0);
    protobuf_c_message_free_unpacked (&all->base, NULL);

    //  Every row appended to a repeated message field, twice
    db_testing_exec (pg, "CREATE TEMP TABLE invites (id text, email text, role text,"
                         " created_at timestamptz, accepted_at timestamptz);"
                         "INSERT INTO invites VALUES"
                         " ('i1', 'a@example.com', 'member', '2024-05-01Z', NULL),"
                         " ('i2', 'b@example.com', 'tenant_admin', '2024-05-02Z',"
                         "  '2024-05-03Z'), ('i3', NULL, 'member', '2024-05-04Z', NULL)");
    ChorusAuth__InviteList *list = (ChorusAuth__InviteList *) db_message_new (
        &chorus_auth__invite_list__descriptor);
    PGresult *result = s_test_query (
        pg, "SELECT id, email, role, to_char (created_at AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, accepted_at::text"
            " AS accepted_at FROM invites ORDER BY id");
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == 0);
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == 0);
    PQclear (result);
    assert (list->n_data == 6 && list->next_cursor == NULL);
    assert (streq (list->data[0]->id, "i1") && streq (list->data[5]->id, "i3"));
    assert (streq (list->data[0]->created_at, "2024-05-01T00:00:00Z"));
    assert (list->data[0]->accepted_at == NULL && list->data[1]->accepted_at);
    assert (list->data[2]->email == NULL && list->data[2]->token == NULL);
    //  A bad row leaves the list as it was; nothing to append is no change
    result = s_test_query (pg, "SELECT * FROM (VALUES ('i7', 'x'), ('i8', 'y')) AS v"
                               " (id, \"bogus\") WHERE id = 'i7' OR id = 'i8'");
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == -1);
    assert (streq (error, "column 'bogus': no field 'bogus' in chorus_auth.Invite"));
    PQclear (result);
    result = s_test_query (pg, "SELECT 'i7' AS id UNION ALL SELECT 'i8'"
                               " UNION ALL SELECT NULL");
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == 0);
    PQclear (result);
    assert (list->n_data == 9 && list->data[8]->id == NULL);
    result = s_test_query (pg, "SELECT 'x' AS id, v AS \"next_cursor\" FROM"
                               " generate_series (1, 2) AS v");
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == -1);
    assert (streq (error, "column 'next_cursor': no field 'next_cursor' in "
                          "chorus_auth.Invite"));
    PQclear (result);
    result = s_test_query (pg, "SELECT 'ok' AS id, '1' AS role UNION ALL"
                               " SELECT 'bad', '2' ORDER BY 1 DESC");
    assert (db_message_append_rows (&list->base, "role", result, error, sizeof error)
            == -1);
    assert (streq (error, "no repeated message field 'role' in chorus_auth.InviteList"));
    assert (
        db_message_append_rows (&list->base, "next_cursor", result, error, sizeof error)
        == -1);
    PQclear (result);
    result = s_test_query (pg, "SELECT 1 AS \"limit\" WHERE false");
    assert (db_message_append_rows (&list->base, "data", result, error, sizeof error)
            == 0);
    PQclear (result);
    assert (list->n_data == 9);
    protobuf_c_message_free_unpacked (&list->base, NULL);
    //  @end

    //  A failing row after good ones: the good ones are undone
    ChorusAuth__TenantList *tenants = (ChorusAuth__TenantList *) db_message_new (
        &chorus_auth__tenant_list__descriptor);
    result = s_test_query (pg, "SELECT * FROM (VALUES ('t1', '3'), ('t2', '-1'))"
                               " AS v (id, member_count)");
    assert (db_message_append_rows (&tenants->base, "data", result, error, sizeof error)
            == -1);
    assert (streq (error, "row 1: column 'member_count': out of range for uint32"));
    assert (tenants->n_data == 0);
    PQclear (result);
    protobuf_c_message_free_unpacked (&tenants->base, NULL);

    //  Errors name the column
    const ProtobufCMessageDescriptor *ld = &chorus_auth__list_request__descriptor;
    s_test_error (pg, td, "SELECT 'x' AS nope",
                  "column 'nope': no field 'nope' in chorus_auth.TokenReply", verbose);
    s_test_error (pg, td, "SELECT 'x' AS \"user.nick\"",
                  "column 'user.nick': no field 'nick' in chorus_auth.User", verbose);
    s_test_error (pg, td, "SELECT 'x' AS \"access_token.x\"",
                  "column 'access_token.x': field 'access_token' is not a single message",
                  verbose);
    s_test_error (pg, td, "SELECT 'x' AS \"user\"",
                  "column 'user': field 'user' is a message (name its fields, as "
                  "'user.<field>')",
                  verbose);
    s_test_error (pg, td, "SELECT 'x' AS \"user.\"",
                  "column 'user.': no field '' in chorus_auth.User", verbose);
    s_test_error (pg, td, "SELECT 'a' AS access_token, 'b' AS access_token",
                  "column 'access_token': given twice", verbose);
    s_test_error (pg, td, "SELECT 'abc' AS expires_in",
                  "column 'expires_in': not an integer", verbose);
    s_test_error (pg, td, "SELECT '' AS expires_in",
                  "column 'expires_in': not an integer", verbose);
    s_test_error (pg, td, "SELECT ' 1' AS expires_in",
                  "column 'expires_in': not an integer", verbose);
    s_test_error (pg, td, "SELECT 1.5 AS expires_in",
                  "column 'expires_in': not an integer", verbose);
    s_test_error (pg, td, "SELECT 9223372036854775808 AS expires_in",
                  "column 'expires_in': out of range for int64", verbose);
    s_test_error (pg, td, "SELECT 99999999999999999999999 AS expires_in",
                  "column 'expires_in': out of range for int64", verbose);
    s_test_error (pg, ld, "SELECT 4294967296 AS \"limit\"",
                  "column 'limit': out of range for uint32", verbose);
    s_test_error (pg, ld, "SELECT -1 AS \"limit\"",
                  "column 'limit': out of range for uint32", verbose);
    s_test_error (pg, ad, "SELECT 2147483648 AS f_int32",
                  "column 'f_int32': out of range for int32", verbose);
    s_test_error (pg, ad, "SELECT -2147483649 AS f_sint32",
                  "column 'f_sint32': out of range for sint32", verbose);
    s_test_error (pg, ad, "SELECT -1 AS f_fixed64",
                  "column 'f_fixed64': out of range for fixed64", verbose);
    s_test_error (pg, ad, "SELECT 1e300::float8 AS f_float",
                  "column 'f_float': out of range for float", verbose);
    s_test_error (pg, ad, "SELECT '1e999' AS f_double",
                  "column 'f_double': out of range for double", verbose);
    s_test_error (pg, ad, "SELECT '1.5x' AS f_double", "column 'f_double': not a number",
                  verbose);
    s_test_error (pg, ad, "SELECT 'yes' AS f_bool", "column 'f_bool': not a boolean",
                  verbose);
    s_test_error (pg, ad, "SELECT 'PURPLE' AS f_enum",
                  "column 'f_enum': not a Color value", verbose);
    s_test_error (pg, ad, "SELECT 7 AS f_enum", "column 'f_enum': not a Color value",
                  verbose);
    s_test_error (pg, ad, "SELECT 'zz' AS f_bytes",
                  "column 'f_bytes': not bytea in hex format", verbose);
    s_test_error (pg, ad, "SELECT '\\x0g' AS f_bytes",
                  "column 'f_bytes': not bytea in hex format", verbose);
    s_test_error (pg, ad, "SELECT 'x' AS c_text, 1 AS c_number",
                  "column 'c_number': conflicts with 'c_text' (same oneof)", verbose);
    s_test_error (pg, ad, "SELECT 'x' AS c_text, 'n' AS \"c_inner.name\"",
                  "column 'c_inner.name': conflicts with 'c_text' (same oneof)", verbose);
    s_test_error (pg, ad, "SELECT ARRAY[1, 2] AS r_inner",
                  "column 'r_inner': field 'r_inner' is a repeated message (see "
                  "db_message_append_rows)",
                  verbose);
    s_test_error (pg, ad, "SELECT 'x' AS \"r_inner.name\"",
                  "column 'r_inner.name': field 'r_inner' is not a single message",
                  verbose);
    s_test_error (pg, ad, "SELECT ARRAY[1, 2147483648] AS r_int32",
                  "column 'r_int32': element 2: out of range for int32", verbose);
    s_test_error (pg, ad, "SELECT '{NULL,1,x}'::text[] AS r_int32",
                  "column 'r_int32': element 3: not an integer", verbose);
    s_test_error (pg, ad, "SELECT ARRAY[ARRAY[1, 2], ARRAY[3, 4]] AS r_int32",
                  "column 'r_int32': not a one-dimensional array literal", verbose);
    s_test_error (pg, ad, "SELECT 'read' AS r_string",
                  "column 'r_string': not a one-dimensional array literal", verbose);
    const char *bad_arrays[] = {"{a",   "{a,}",   "{,a}",     "{\"a}",   "{a\"b\"}",
                                "{a}x", "{a,b\\", "{\"a\"b}", "[1:1]{a}"};
    for (size_t i = 0; i < sizeof bad_arrays / sizeof bad_arrays[0]; i++) {
        char sql[128];
        snprintf (sql, sizeof sql, "SELECT '%s' AS r_string", bad_arrays[i]);
        s_test_error (pg, ad, sql,
                      "column 'r_string': not a one-dimensional array literal", verbose);
    }
    char name[200];
    memset (name, 'a', 63);
    name[63] = 0;
    char sql[256];
    snprintf (sql, sizeof sql, "SELECT 1 AS \"%s\"", name);
    result = s_test_query (pg, sql);
    assert (!db_message_from_row (ad, result, 0, error, sizeof error));
    assert (strstr (error, "no field 'aaaa"));
    assert (!db_message_from_row (ad, result, 1, error, sizeof error));
    assert (streq (error, "row 1 out of range (1 rows)"));
    assert (!db_message_from_row (ad, result, -1, NULL, 0));
    assert (!db_message_from_row (NULL, result, 0, error, sizeof error));
    assert (streq (error, "no message type"));
    assert (!db_message_from_row (ad, NULL, 0, error, sizeof error));
    PQclear (result);
    //  Deep names: "f_inner.child.child....value", 10 parts (PostgreSQL cuts names
    //  at 63 bytes)
    char deep[512] = "SELECT 5 AS \"f_inner";
    size_t used = strlen (deep);
    for (int i = 0; i < 8; i++)
        used += (size_t) snprintf (deep + used, sizeof deep - used, ".child");
    snprintf (deep + used, sizeof deep - used, ".value\"");
    all = (Chorus__CodecTest__AllTypes *) s_test_row (pg, ad, deep, error, sizeof error);
    assert (all);
    Chorus__CodecTest__Inner *inner = all->f_inner;
    for (int i = 0; i < 8; i++)
        inner = inner->child;
    assert (inner->value == 5 && inner->child == NULL);
    protobuf_c_message_free_unpacked (&all->base, NULL);

    PQfinish (pg);
    printf ("OK\n");
}
