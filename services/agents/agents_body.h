/*  agents_body: the body of agents.create and agents.update (schemas/chat.md): the
    Agent with its tools read as JSON and checked, and the fields given as null. */
#ifndef AGENTS_BODY_H_INCLUDED
#define AGENTS_BODY_H_INCLUDED

#include "agents.pb-c.h"
#include "service_call.h"

typedef struct _agents_body_t agents_body_t;

//  Read size bytes of msgpack (0: an empty map). A tool's parameters are an object
//  or a string holding one, its type function (when absent), integration, workflow
//  or mcp. NULL with error filled (naming the field: "tools[1].type ...") when the
//  body is not an acceptable Agent.
agents_body_t *agents_body_new (const uint8_t *data, size_t size, char *error,
                                size_t error_size);

void agents_body_destroy (agents_body_t **self_p);

//  The Agent read, tools included; the caller owns it. NULL once taken.
ChorusAgents__Agent *agents_body_take_agent (agents_body_t *self);

//  True when the body had "tools" (an array, or null for none).
bool agents_body_tools_given (const agents_body_t *self);

//  True when field (an Agent field name) was given as null.
bool agents_body_null (const agents_body_t *self, const char *field);

void agents_body_test (bool verbose);

#endif
