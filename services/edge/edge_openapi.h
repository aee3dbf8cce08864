/*  edge_openapi: the OpenAPI 3.1 document of the edge, generated from the route
    table (edge_table) so it cannot drift: paths, parameters, who may call each
    route (security, x-chorus-auth), and the request and reply schemas, which come
    from the protobuf-c descriptors of schemas/bus.proto and schemas/auth.proto.
    schemas/openapi.json is its checked-in copy (`chorus-edge --openapi` writes
    it) and the selftest proves both agree with the table route for route.      */
#ifndef EDGE_OPENAPI_H_INCLUDED
#define EDGE_OPENAPI_H_INCLUDED

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

//  Build the document from the route table (new reference).
json_t *edge_openapi_document (void);

//  The message type a route's request_schema names, or NULL (not a message type).
const ProtobufCMessageDescriptor *edge_openapi_message (const char *name);

//  The document as indented text (caller frees).
char *edge_openapi_text (void);

//  Check a document against the route table: every route is in it and every
//  operation in it is a route. Returns 0, or -1 with the first difference in error.
int edge_openapi_check (json_t *document, char *error, size_t error_size);

void edge_openapi_test (bool verbose);

#endif
