/*  db_message: PGresult rows into protobuf-c messages (see db_message.h).

    Columns are resolved to field paths once per result (a plan), then each row's
    text values are parsed by field type into a message allocated with malloc, the
    way protobuf_c_message_free_unpacked (msg, NULL) expects to free it.          */
#include "db_message.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define s_member(type, msg, offset) (*(type *) ((char *) (msg) + (offset)))

//  One column of a result, resolved against a message type.
typedef struct {
    const char *name;                                            //  column name
    const ProtobufCFieldDescriptor *path[DB_MESSAGE_MAX_DEPTH];  //  outermost first
    size_t depth;                                                //  entries in path
} s_column_t;

//  Cursor over the elements of a one-dimensional PostgreSQL array literal.
typedef struct {
    const char *at;    //  next character to read
    const char *end;   //  end of the literal
    bool done;         //  the closing brace was read
    char *value;       //  current element, unescaped and terminated
    size_t value_len;  //  its length
    bool is_null;      //  current element is an unquoted NULL
} s_array_t;


static void s_fail (char *error, size_t error_size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Write a reason into an optional error buffer.
static void
s_fail (char *error, size_t error_size, const char *format, ...)
{
    if (!error || error_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

//  Name of a scalar type, for range errors.
static const char *
s_type_name (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32:
            return "int32";
        case PROTOBUF_C_TYPE_SINT32:
            return "sint32";
        case PROTOBUF_C_TYPE_SFIXED32:
            return "sfixed32";
        case PROTOBUF_C_TYPE_INT64:
            return "int64";
        case PROTOBUF_C_TYPE_SINT64:
            return "sint64";
        case PROTOBUF_C_TYPE_SFIXED64:
            return "sfixed64";
        case PROTOBUF_C_TYPE_UINT32:
            return "uint32";
        case PROTOBUF_C_TYPE_FIXED32:
            return "fixed32";
        case PROTOBUF_C_TYPE_UINT64:
            return "uint64";
        case PROTOBUF_C_TYPE_FIXED64:
            return "fixed64";
        case PROTOBUF_C_TYPE_FLOAT:
            return "float";
        default:
            return "its type";
    }
}

//  Size of one element of a field's type in a repeated array.
static size_t
s_element_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            return sizeof (uint32_t);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            return sizeof (uint64_t);
        case PROTOBUF_C_TYPE_FLOAT:
            return sizeof (float);
        case PROTOBUF_C_TYPE_DOUBLE:
            return sizeof (double);
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
            return sizeof (int);
        case PROTOBUF_C_TYPE_STRING:
            return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (ProtobufCMessage *);
    }
    return 0;
}

//  Read a decimal integer (optional '-', digits, nothing else) as a sign and a
//  magnitude. Returns 0, -1 when it is not one, 1 when it exceeds 64 bits.
static int
s_parse_decimal (const char *text, bool *negative, uint64_t *magnitude)
{
    *negative = *text == '-';
    if (*negative)
        text++;
    if (!isdigit ((unsigned char) *text))
        return -1;
    uint64_t value = 0;
    int rc = 0;
    for (; *text; text++) {
        if (!isdigit ((unsigned char) *text))
            return -1;
        unsigned digit = (unsigned) (*text - '0');
        if (value > (UINT64_MAX - digit) / 10)
            rc = 1;  //  keep going: trailing junk still makes it "not an integer"
        else
            value = value * 10 + digit;
    }
    *magnitude = value;
    return rc;
}

//  Parse a decimal integer within [-min_magnitude, max] into *out (as int64 bits
//  for signed types). Writes a reason and returns -1 otherwise.
static int
s_parse_integer (const char *text, ProtobufCType type, uint64_t min_magnitude,
                 uint64_t max, uint64_t *out, char *reason, size_t reason_size)
{
    bool negative;
    uint64_t magnitude;
    int rc = s_parse_decimal (text, &negative, &magnitude);
    if (rc < 0) {
        s_fail (reason, reason_size, "not an integer");
        return -1;
    }
    if (rc > 0 || (negative ? magnitude > min_magnitude : magnitude > max)) {
        s_fail (reason, reason_size, "out of range for %s", s_type_name (type));
        return -1;
    }
    *out = negative ? (uint64_t) 0 - magnitude : magnitude;
    return 0;
}

//  Parse a floating point number (as strtod reads it, whole text) into *out.
static int
s_parse_real (const char *text, double *out, char *reason, size_t reason_size)
{
    if (*text == 0 || isspace ((unsigned char) *text)) {
        s_fail (reason, reason_size, "not a number");
        return -1;
    }
    char *end;
    errno = 0;
    double value = strtod (text, &end);
    if (*end) {
        s_fail (reason, reason_size, "not a number");
        return -1;
    }
    if (errno == ERANGE && isinf (value)) {
        s_fail (reason, reason_size, "out of range for double");
        return -1;
    }
    *out = value;
    return 0;
}

//  Value of one hex digit, or -1.
static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Parse PostgreSQL's hex bytea format ("\x0a0b") into a new buffer.
static int
s_parse_bytes (const char *text, size_t len, ProtobufCBinaryData *out, char *reason,
               size_t reason_size)
{
    if (len < 2 || text[0] != '\\' || text[1] != 'x' || (len - 2) % 2) {
        s_fail (reason, reason_size, "not bytea in hex format");
        return -1;
    }
    size_t size = (len - 2) / 2;
    uint8_t *data = NULL;
    if (size) {
        data = malloc (size);
        assert (data);
    }
    for (size_t i = 0; i < size; i++) {
        int high = s_hex_digit (text[2 + 2 * i]);
        int low = s_hex_digit (text[3 + 2 * i]);
        if (high < 0 || low < 0) {
            free (data);
            s_fail (reason, reason_size, "not bytea in hex format");
            return -1;
        }
        data[i] = (uint8_t) (high << 4 | low);
    }
    out->data = data;
    out->len = size;
    return 0;
}

//  Parse one value of a field's (scalar) type from text of len bytes, terminated,
//  into the memory at member. Writes a reason and returns -1 when it does not parse.
static int
s_parse_value (const ProtobufCFieldDescriptor *field, const char *text, size_t len,
               void *member, char *reason, size_t reason_size)
{
    uint64_t u;
    double d;
    switch (field->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
            if (s_parse_integer (text, field->type, (uint64_t) INT32_MAX + 1, INT32_MAX,
                                 &u, reason, reason_size))
                return -1;
            *(int32_t *) member = (int32_t) (int64_t) u;
            return 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
            if (s_parse_integer (text, field->type, (uint64_t) INT64_MAX + 1, INT64_MAX,
                                 &u, reason, reason_size))
                return -1;
            *(int64_t *) member = (int64_t) u;
            return 0;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
            if (s_parse_integer (text, field->type, 0, UINT32_MAX, &u, reason,
                                 reason_size))
                return -1;
            *(uint32_t *) member = (uint32_t) u;
            return 0;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
            if (s_parse_integer (text, field->type, 0, UINT64_MAX, &u, reason,
                                 reason_size))
                return -1;
            *(uint64_t *) member = u;
            return 0;
        case PROTOBUF_C_TYPE_FLOAT:
            if (s_parse_real (text, &d, reason, reason_size))
                return -1;
            if (isfinite (d) && fabs (d) > FLT_MAX) {
                s_fail (reason, reason_size, "out of range for float");
                return -1;
            }
            *(float *) member = (float) d;
            return 0;
        case PROTOBUF_C_TYPE_DOUBLE:
            if (s_parse_real (text, &d, reason, reason_size))
                return -1;
            *(double *) member = d;
            return 0;
        case PROTOBUF_C_TYPE_BOOL:
            if (strcasecmp (text, "t") == 0 || strcasecmp (text, "true") == 0)
                *(protobuf_c_boolean *) member = 1;
            else if (strcasecmp (text, "f") == 0 || strcasecmp (text, "false") == 0)
                *(protobuf_c_boolean *) member = 0;
            else {
                s_fail (reason, reason_size, "not a boolean");
                return -1;
            }
            return 0;
        case PROTOBUF_C_TYPE_ENUM: {
            const ProtobufCEnumDescriptor *ed = field->descriptor;
            for (unsigned i = 0; i < ed->n_values; i++)
                if (strcasecmp (ed->values[i].name, text) == 0) {
                    *(int *) member = ed->values[i].value;
                    return 0;
                }
            bool negative;
            uint64_t magnitude;
            if (s_parse_decimal (text, &negative, &magnitude) == 0
                && magnitude <= INT32_MAX) {
                int value = negative ? -(int) magnitude : (int) magnitude;
                if (protobuf_c_enum_descriptor_get_value (ed, value)) {
                    *(int *) member = value;
                    return 0;
                }
            }
            s_fail (reason, reason_size, "not a %s value", ed->short_name);
            return -1;
        }
        case PROTOBUF_C_TYPE_STRING: {
            char *s = malloc (len + 1);
            assert (s);
            memcpy (s, text, len + 1);
            *(char **) member = s;
            return 0;
        }
        case PROTOBUF_C_TYPE_BYTES:
            return s_parse_bytes (text, len, member, reason, reason_size);
        case PROTOBUF_C_TYPE_MESSAGE:
            break;  //  refused when the plan is made
    }
    s_fail (reason, reason_size, "unsupported field type");
    return -1;
}

//  Start reading an array literal of len bytes (dimension decoration such as
//  "[0:1]=" allowed), unescaping elements into value (len + 1 bytes).
static int
s_array_start (s_array_t *self, const char *text, size_t len, char *value)
{
    self->at = text;
    self->end = text + len;
    self->value = value;
    self->done = false;
    if (self->at < self->end && *self->at == '[') {
        while (self->at < self->end && *self->at == '[') {
            const char *close = memchr (self->at, ']', (size_t) (self->end - self->at));
            if (!close)
                return -1;
            self->at = close + 1;
        }
        if (self->at == self->end || *self->at != '=')
            return -1;
        self->at++;
    }
    while (self->at < self->end && isspace ((unsigned char) *self->at))
        self->at++;
    if (self->at == self->end || *self->at != '{')
        return -1;
    self->at++;
    while (self->at < self->end && isspace ((unsigned char) *self->at))
        self->at++;
    if (self->at < self->end && *self->at == '}') {
        self->at++;
        self->done = true;
    }
    return 0;
}

//  Read the next element. Returns 1 (element in value, is_null set), 0 at the end,
//  or -1 when the literal is malformed or nests arrays.
static int
s_array_next (s_array_t *self)
{
    if (self->done) {
        while (self->at < self->end && isspace ((unsigned char) *self->at))
            self->at++;
        return self->at == self->end ? 0 : -1;
    }
    while (self->at < self->end && isspace ((unsigned char) *self->at))
        self->at++;
    if (self->at == self->end || *self->at == '{')
        return -1;
    size_t len = 0;
    self->is_null = false;
    if (*self->at == '"') {
        self->at++;
        while (true) {
            if (self->at == self->end)
                return -1;
            char c = *self->at++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (self->at == self->end)
                    return -1;
                c = *self->at++;
            }
            self->value[len++] = c;
        }
    }
    else {
        size_t kept = 0;  //  length without trailing unescaped white space
        bool escaped = false;
        while (self->at < self->end && *self->at != ',' && *self->at != '}') {
            char c = *self->at++;
            if (c == '"' || c == '{')
                return -1;
            if (c == '\\') {
                if (self->at == self->end)
                    return -1;
                self->value[len++] = *self->at++;
                escaped = true;
                kept = len;
            }
            else {
                self->value[len++] = c;
                if (!isspace ((unsigned char) c))
                    kept = len;
            }
        }
        len = kept;
        if (len == 0)
            return -1;
        self->value[len] = 0;
        self->is_null = !escaped && strcasecmp (self->value, "NULL") == 0;
    }
    self->value[len] = 0;
    self->value_len = len;
    while (self->at < self->end && isspace ((unsigned char) *self->at))
        self->at++;
    if (self->at == self->end)
        return -1;
    if (*self->at == '}')
        self->done = true;
    else if (*self->at != ',')
        return -1;
    self->at++;
    return 1;
}

//  Set a repeated scalar field of msg from an array literal: NULL elements are
//  left out. Writes a reason and returns -1 when it does not parse.
static int
s_parse_array (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
               const char *text, size_t len, char *reason, size_t reason_size)
{
    char *value = malloc (len + 1);
    assert (value);
    //  First pass: check the syntax and count the elements
    s_array_t array;
    size_t count = 0;
    int rc = s_array_start (&array, text, len, value);
    while (rc == 0) {
        int next = s_array_next (&array);
        if (next == 0)
            break;
        if (next < 0)
            rc = -1;
        else if (!array.is_null)
            count++;
    }
    if (rc) {
        free (value);
        s_fail (reason, reason_size, "not a one-dimensional array literal");
        return -1;
    }
    if (count == 0) {
        free (value);
        return 0;
    }
    //  Second pass: the values, into an array the message owns from the start
    size_t element = s_element_size (field->type);
    char *items = calloc (count, element);
    assert (items);
    s_member (void *, msg, field->offset) = items;
    s_member (size_t, msg, field->quantifier_offset) = count;
    rc = s_array_start (&array, text, len, value);
    assert (rc == 0);
    size_t index = 0;     //  next slot in items
    size_t position = 0;  //  1-based position in the literal, NULLs included
    while (s_array_next (&array) == 1) {
        position++;
        if (array.is_null)
            continue;
        char inner[160];
        if (s_parse_value (field, array.value, array.value_len, items + index * element,
                           inner, sizeof inner)) {
            s_fail (reason, reason_size, "element %zu: %s", position, inner);
            rc = -1;
            break;
        }
        index++;
    }
    free (value);
    return rc;
}

//  Select field when it is a oneof member; -1 when another member of its oneof is
//  already set.
static int
s_select (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
          const char *column, char *error, size_t error_size)
{
    if (!(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return 0;
    uint32_t *which = &s_member (uint32_t, msg, field->quantifier_offset);
    if (*which != 0 && *which != field->id) {
        const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field (
            msg->descriptor, *which);
        s_fail (error, error_size, "column '%s': conflicts with '%s' (same oneof)",
                column, other ? other->name : "?");
        return -1;
    }
    //  Selected before the value is set, so free_unpacked frees it
    *which = field->id;
    return 0;
}

//  Resolve a column name to a field path in desc. Returns 0, or -1 with error.
static int
s_resolve (const ProtobufCMessageDescriptor *desc, s_column_t *column, char *error,
           size_t error_size)
{
    const char *segment = column->name;
    column->depth = 0;
    while (true) {
        const char *dot = strchr (segment, '.');
        size_t len = dot ? (size_t) (dot - segment) : strlen (segment);
        const ProtobufCFieldDescriptor *field = NULL;
        char name[128];
        if (len < sizeof name) {
            memcpy (name, segment, len);
            name[len] = 0;
            field = protobuf_c_message_descriptor_get_field_by_name (desc, name);
        }
        if (!field) {
            s_fail (error, error_size, "column '%s': no field '%.*s' in %s", column->name,
                    (int) (len > 64 ? 64 : len), segment, desc->name);
            return -1;
        }
        if (column->depth == DB_MESSAGE_MAX_DEPTH) {
            s_fail (error, error_size, "column '%s': nested too deep", column->name);
            return -1;
        }
        column->path[column->depth++] = field;
        if (!dot)
            break;
        if (field->type != PROTOBUF_C_TYPE_MESSAGE
            || field->label == PROTOBUF_C_LABEL_REPEATED) {
            s_fail (error, error_size, "column '%s': field '%s' is not a single message",
                    column->name, field->name);
            return -1;
        }
        desc = field->descriptor;
        segment = dot + 1;
    }
    const ProtobufCFieldDescriptor *leaf = column->path[column->depth - 1];
    if (leaf->type == PROTOBUF_C_TYPE_MESSAGE
        && leaf->label == PROTOBUF_C_LABEL_REPEATED) {
        s_fail (error, error_size,
                "column '%s': field '%s' is a repeated message (see "
                "db_message_append_rows)",
                column->name, leaf->name);
        return -1;
    }
    if (leaf->type == PROTOBUF_C_TYPE_MESSAGE) {
        s_fail (error, error_size,
                "column '%s': field '%s' is a message (name its fields, as '%s.<field>')",
                column->name, leaf->name, column->name);
        return -1;
    }
    return 0;
}

//  Resolve every column of result against desc: a new plan to free, or NULL with
//  error.
static s_column_t *
s_plan_new (const ProtobufCMessageDescriptor *desc, const PGresult *result, char *error,
            size_t error_size)
{
    int count = PQnfields (result);
    s_column_t *columns = calloc (count > 0 ? (size_t) count : 1, sizeof *columns);
    assert (columns);
    for (int c = 0; c < count; c++) {
        s_column_t *column = &columns[c];
        column->name = PQfname (result, c);
        if (!column->name)
            column->name = "?";
        //  Columns named "_..." are for the caller (list cursors): not fields
        if (column->name[0] == '_') {
            column->depth = 0;
            continue;
        }
        int rc = s_resolve (desc, column, error, error_size);
        if (rc == 0 && PQfformat (result, c) != 0) {
            s_fail (error, error_size, "column '%s': not in text format", column->name);
            rc = -1;
        }
        for (int other = 0; rc == 0 && other < c; other++)
            if (strcmp (columns[other].name, column->name) == 0) {
                s_fail (error, error_size, "column '%s': given twice", column->name);
                rc = -1;
            }
        if (rc) {
            free (columns);
            return NULL;
        }
    }
    return columns;
}

//  Set one column's non-NULL value in msg, creating sub-messages on the way.
static int
s_set_column (ProtobufCMessage *msg, const s_column_t *column, const char *text,
              size_t len, char *error, size_t error_size)
{
    ProtobufCMessage *at = msg;
    for (size_t i = 0; i + 1 < column->depth; i++) {
        const ProtobufCFieldDescriptor *field = column->path[i];
        if (s_select (at, field, column->name, error, error_size))
            return -1;
        ProtobufCMessage **sub = &s_member (ProtobufCMessage *, at, field->offset);
        if (!*sub)
            *sub = db_message_new (field->descriptor);
        at = *sub;
    }
    const ProtobufCFieldDescriptor *field = column->path[column->depth - 1];
    if (s_select (at, field, column->name, error, error_size))
        return -1;
    char reason[192];
    int rc;
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        rc = s_parse_array (at, field, text, len, reason, sizeof reason);
    else {
        rc = s_parse_value (field, text, len, (char *) at + field->offset, reason,
                            sizeof reason);
        //  proto2 optional scalars and bytes say they are set in a has_ flag
        if (rc == 0 && !(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            && field->label == PROTOBUF_C_LABEL_OPTIONAL
            && field->type != PROTOBUF_C_TYPE_STRING)
            s_member (protobuf_c_boolean, at, field->quantifier_offset) = 1;
    }
    if (rc)
        s_fail (error, error_size, "column '%s': %s", column->name, reason);
    return rc;
}

//  A new message of type desc from one row, using a plan made for desc.
static ProtobufCMessage *
s_from_row (const ProtobufCMessageDescriptor *desc, const s_column_t *columns,
            const PGresult *result, int row, char *error, size_t error_size)
{
    ProtobufCMessage *msg = db_message_new (desc);
    int count = PQnfields (result);
    for (int c = 0; c < count; c++) {
        if (columns[c].depth == 0 || PQgetisnull (result, row, c))
            continue;
        const char *text = PQgetvalue (result, row, c);
        int len = PQgetlength (result, row, c);
        if (!text || len < 0
            || s_set_column (msg, &columns[c], text, (size_t) len, error, error_size)) {
            protobuf_c_message_free_unpacked (msg, NULL);
            return NULL;
        }
    }
    return msg;
}

ProtobufCMessage *
db_message_new (const ProtobufCMessageDescriptor *desc)
{
    assert (desc && desc->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    ProtobufCMessage *msg = malloc (desc->sizeof_message);
    assert (msg);
    protobuf_c_message_init (desc, msg);
    return msg;
}

ProtobufCMessage *
db_message_from_row (const ProtobufCMessageDescriptor *desc, const PGresult *result,
                     int row, char *error, size_t error_size)
{
    if (error && error_size)
        error[0] = 0;
    if (!desc || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        s_fail (error, error_size, "no message type");
        return NULL;
    }
    if (!result) {
        s_fail (error, error_size, "no result");
        return NULL;
    }
    if (row < 0 || row >= PQntuples (result)) {
        s_fail (error, error_size, "row %d out of range (%d rows)", row,
                PQntuples (result));
        return NULL;
    }
    s_column_t *columns = s_plan_new (desc, result, error, error_size);
    if (!columns)
        return NULL;
    ProtobufCMessage *msg = s_from_row (desc, columns, result, row, error, error_size);
    free (columns);
    return msg;
}

int
db_message_append_rows (ProtobufCMessage *msg, const char *field_name,
                        const PGresult *result, char *error, size_t error_size)
{
    if (error && error_size)
        error[0] = 0;
    if (!msg || !msg->descriptor || !field_name || !result) {
        s_fail (error, error_size, "no message, field or result");
        return -1;
    }
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (msg->descriptor, field_name);
    if (!field || field->label != PROTOBUF_C_LABEL_REPEATED
        || field->type != PROTOBUF_C_TYPE_MESSAGE) {
        s_fail (error, error_size, "no repeated message field '%s' in %s", field_name,
                msg->descriptor->name);
        return -1;
    }
    int rows = PQntuples (result);
    if (rows <= 0)
        return 0;
    const ProtobufCMessageDescriptor *desc = field->descriptor;
    s_column_t *columns = s_plan_new (desc, result, error, error_size);
    if (!columns)
        return -1;
    size_t *count = &s_member (size_t, msg, field->quantifier_offset);
    ProtobufCMessage ***items = &s_member (ProtobufCMessage **, msg, field->offset);
    size_t before = *items ? *count : 0;
    assert (before <= SIZE_MAX / sizeof (ProtobufCMessage *) - (size_t) rows);
    ProtobufCMessage **grown = realloc (*items, (before + (size_t) rows) * sizeof *grown);
    assert (grown);
    *items = grown;
    int rc = 0;
    for (int row = 0; row < rows; row++) {
        char reason[256];
        ProtobufCMessage *item = s_from_row (desc, columns, result, row, reason,
                                             sizeof reason);
        if (!item) {
            s_fail (error, error_size, "row %d: %s", row, reason);
            rc = -1;
            break;
        }
        grown[before + (size_t) row] = item;
        *count = before + (size_t) row + 1;
    }
    if (rc) {
        //  Leave msg as it was: the rows added so far go again
        for (size_t i = before; i < *count; i++)
            protobuf_c_message_free_unpacked (grown[i], NULL);
        *count = before;
    }
    free (columns);
    return rc;
}
