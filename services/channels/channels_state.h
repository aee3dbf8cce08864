/*  channels_state: what the channels service's handlers share: the runtime, the
    box that seals connection credentials, the public URL webhook addresses are
    built on, and the socket that publishes the events the inbox writes.
    channels_server owns it.                                                   */
#ifndef CHANNELS_STATE_H_INCLUDED
#define CHANNELS_STATE_H_INCLUDED

#include "auth_secretbox.h"
#include "channels.pb-c.h"
#include "service_call.h"

typedef struct {
    service_runtime_t *runtime;  //  the runtime (bus, database, log)
    core_log_t *log;             //  its logger
    auth_secretbox_t *box;       //  seals credentials, NULL without a secret key
    char *public_url;            //  CHORUS_PUBLIC_URL without a trailing slash
    zsock_t *events;             //  PUB to every broker's events-in, or NULL
} channels_state_t;

#endif
