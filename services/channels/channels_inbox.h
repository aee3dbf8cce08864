/*  channels_inbox: processing after the answer (schemas/channels.md,
    "Processing"). A worker takes due inbox rows (oldest first, one at a time
    per chat, FOR UPDATE SKIP LOCKED so replicas share them) under a lease it
    renews while it works, asks chat channel.inbound with the connection's
    tenant (the connection id as the acting user), and ends the row in one
    transaction: done, with the agent's reply split into outbound parts, or
    back to received after a backoff, or failed after the last attempt. A row
    whose worker died is taken again when its lease ends.                     */
#ifndef CHANNELS_INBOX_H_INCLUDED
#define CHANNELS_INBOX_H_INCLUDED

#include "channels_state.h"

//  Take due rows now if there is room (after a webhook stored some).
void channels_inbox_kick (channels_state_t *state);

//  Every poll: take due rows, renew the leases of rows in flight.
void channels_inbox_tick (channels_state_t *state);

//  The service stops: forget the rows in flight (their leases end).
void channels_inbox_shutdown (channels_state_t *state);

//  Whether an error code of chat is worth another attempt, and the wait before
//  attempt (the next one's number) in ms: the retry_after_s asked, else
//  exponential from 2 s, at most 10 minutes.
bool channels_inbox_retryable (const char *code);
int64_t channels_inbox_backoff_ms (int64_t attempt, uint32_t retry_after_s);

void channels_inbox_test (bool verbose);

#endif
