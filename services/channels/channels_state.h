/*  channels_state: what the channels service's handlers share: the runtime, the
    box that seals connection credentials, the public URL webhook addresses are
    built on, the socket that publishes the events its SQL writes, and the
    delivery machinery: the HTTP client that calls the platforms, their base
    URLs, the limits of the inbox worker and the sender and what they have in
    flight. channels_server owns it.                                          */
#ifndef CHANNELS_STATE_H_INCLUDED
#define CHANNELS_STATE_H_INCLUDED

#include "auth_secretbox.h"
#include "channels.pb-c.h"
#include "http_client.h"
#include "service_call.h"

typedef struct {
    service_runtime_t *runtime;  //  the runtime (bus, database, log)
    core_log_t *log;             //  its logger
    auth_secretbox_t *box;       //  seals credentials, NULL without a secret key
    char *public_url;            //  CHORUS_PUBLIC_URL without a trailing slash
    zsock_t *events;             //  PUB to every broker's events-in, or NULL
    http_client_t *http;         //  the platforms' APIs
    char *api_url[5];            //  base URL per platform (channels_state_api_url)
    int64_t turn_timeout_ms;     //  longest wait for chat to answer a message
    int64_t inbox_attempts;      //  tries of an inbound message before it fails
    int64_t send_attempts;       //  tries of an outbound part before it fails
    int64_t inbox_concurrency;   //  inbound messages processed at once
    int64_t send_concurrency;    //  parts being sent at once
    int64_t poll_ms;             //  how often due rows are looked for
    int64_t lease_s;             //  how long a taken row stays taken unrenewed
    bool process;                //  this replica processes the inbox and sends
    int timer;                   //  the poll (zloop timer id)
    uint32_t ticks;              //  timer ticks so far
    zlistx_t *inbox_jobs;        //  inbound messages in flight
    bool inbox_claiming;         //  a claim query is in flight
    bool inbox_again;            //  claim again when it ends
    bool renewing;               //  a lease renewal is in flight
    zlistx_t *send_jobs;         //  parts being sent
    bool send_claiming;          //  a claim query is in flight
    bool send_again;             //  claim again when it ends
} channels_state_t;

//  The base URL of platform's API, or NULL for an unknown platform.
const char *channels_state_api_url (channels_state_t *state, const char *platform);

#endif
