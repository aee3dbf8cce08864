/*  channels_receive: the webhooks.receive command (schemas/channels.md,
    "Webhooks: what the service does"). The edge passes a webhook's raw bytes;
    this loads the connection (the tenant comes from it), verifies the request
    with channels_verify, parses it with the platform's parser, stores its
    messages in the inbox with their events in one transaction, publishes the
    events once committed, and answers the WebhookReply the edge writes out.  */
#ifndef CHANNELS_RECEIVE_H_INCLUDED
#define CHANNELS_RECEIVE_H_INCLUDED

#include "channels_state.h"

//  Largest webhook body accepted, in bytes
#define CHANNELS_RECEIVE_MAX_BODY (4u * 1024u * 1024u)

//  The bus command (service_handler_fn); state is the channels_state_t.
void channels_receive (service_runtime_t *runtime, bus_request_t *request, void *state);

//  A PUB socket connected to the events-in endpoint of every broker in brokers
//  (CHORUS_BROKERS), for the events the inbox writes; NULL when none parses.
zsock_t *channels_receive_publisher (const char *brokers);

//  Publish the event of row `row` of a result whose columns are seq, topic,
//  tenant, payload (hex msgpack) and ms, as the channels SQL functions return
//  them once committed.
void channels_receive_publish (channels_state_t *self, PGresult *result, int row);

void channels_receive_test (bool verbose);

#endif
