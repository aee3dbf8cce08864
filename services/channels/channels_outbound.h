/*  channels_outbound: replies out (schemas/channels.md, "Replies out"). The
    sender takes due outbound parts (a message's parts in order, FOR UPDATE SKIP
    LOCKED), sends each through its platform's API (channels_send) on the HTTP
    client, and stores the outcome with its event (channels.outbound_finish):
    sent with the platform's id, queued again after the wait the platform asked
    for or an exponential backoff (429, 5xx, transient errors, no answer), or
    failed with the platform's error after a permanent error or the last
    attempt. Also the commands outbound.enqueue (chat: a member's message),
    outbound.list and connections.test.                                       */
#ifndef CHANNELS_OUTBOUND_H_INCLUDED
#define CHANNELS_OUTBOUND_H_INCLUDED

#include "channels_state.h"

//  Take due parts now if there is room.
void channels_outbound_kick (channels_state_t *state);

//  The service stops: drop the sends in flight (their parts are taken again
//  when their leases end).
void channels_outbound_shutdown (channels_state_t *state);

//  outbound.enqueue, outbound.list, connections.test.
void channels_outbound_enqueue (service_runtime_t *runtime, bus_request_t *request,
                                void *state);
void channels_outbound_list (service_runtime_t *runtime, bus_request_t *request,
                             void *state);
void channels_outbound_check (service_runtime_t *runtime, bus_request_t *request,
                              void *state);

//  A PostgreSQL text[] literal of count strings (caller frees): {"a","b\"c"}.
char *channels_outbound_array (char **items, size_t count);

//  The wait before attempt (the next one's number) of a send in ms: what the
//  platform asked (retry_after_s >= 0), else exponential from 1 s, at most 5
//  minutes.
int64_t channels_outbound_backoff_ms (int64_t attempt, int64_t retry_after_s);

void channels_outbound_test (bool verbose);

#endif
