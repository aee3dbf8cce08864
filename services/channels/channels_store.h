/*  channels_store: the channel connections of a tenant (create, read, update,
    delete, with credentials sealed at rest and never returned) and the listing
    of a connection's inbox (schemas/channels.md, "Connections"). Bus handlers
    of channels_server; every query is scoped by the header's tenant.          */
#ifndef CHANNELS_STORE_H_INCLUDED
#define CHANNELS_STORE_H_INCLUDED

#include "channels_state.h"

//  True when platform is one of whatsapp, messenger, instagram, telegram, slack.
bool channels_store_platform_known (const char *platform);

//  True for the platforms Meta runs (whatsapp, messenger, instagram).
bool channels_store_platform_meta (const char *platform);

//  The bus commands (service_handler_fn); state is the channels_state_t.
void channels_store_list (service_runtime_t *runtime, bus_request_t *request,
                          void *state);
void channels_store_get (service_runtime_t *runtime, bus_request_t *request, void *state);
void channels_store_create (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void channels_store_update (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void channels_store_delete (service_runtime_t *runtime, bus_request_t *request,
                            void *state);
void channels_store_inbox (service_runtime_t *runtime, bus_request_t *request,
                           void *state);

void channels_store_test (bool verbose);

#endif
