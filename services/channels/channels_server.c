/*  channels_server: the channels service on the shared runtime. Its state holds
    the box that seals credentials, the public URL of the webhooks and the
    publisher of the inbox's events; its commands are channels_store's
    (connections, inbox listing) and channels_receive's (webhooks).          */
#include "channels_server.h"

#include <assert.h>

#include "channels_receive.h"
#include "channels_store.h"

const core_config_option_t channels_server_options[] = {
    {"public_url", "CHORUS_PUBLIC_URL", CORE_CONFIG_STRING, 0, 0, "http://127.0.0.1:8080",
     "channels: the edge's public base URL, which webhook URLs are built on"},
};
const size_t channels_server_option_count = sizeof channels_server_options
                                            / sizeof channels_server_options[0];

static const service_command_t s_commands[] = {
    {"connections.list", channels_store_list},
    {"connections.get", channels_store_get},
    {"connections.create", channels_store_create},
    {"connections.update", channels_store_update},
    {"connections.delete", channels_store_delete},
    {"inbox.list", channels_store_inbox},
    {"webhooks.receive", channels_receive},
};

//  CHORUS_PUBLIC_URL without its trailing slashes (caller frees). The option is
//  read from the environment through our own table, so that the service finds
//  it whichever process (chorus-channels or chorusd) runs it.
static char *
s_public_url (core_log_t *log)
{
    char *error = NULL;
    core_config_t *own = core_config_new (channels_server_options,
                                          channels_server_option_count, &error);
    const char *value = own ? core_config_str (own, "public_url") : NULL;
    if (!own) {
        core_log_warn (log, NULL, "configuration: %s", error);
        free (error);
    }
    if (!value
        || (strncmp (value, "http://", 7) != 0 && strncmp (value, "https://", 8) != 0)) {
        core_log_warn (log, NULL,
                       "CHORUS_PUBLIC_URL must be an http(s) URL: using the default");
        value = channels_server_options[0].fallback;
    }
    char *url = strdup (value);
    assert (url);
    size_t length = strlen (url);
    while (length > 0 && url[length - 1] == '/')
        url[--length] = 0;
    core_config_destroy (&own);
    return url;
}

//  The handlers' state, made once the runtime is up.
static void *
s_state_new (service_runtime_t *runtime)
{
    core_config_t *config = service_runtime_config (runtime);
    channels_state_t *state = calloc (1, sizeof (channels_state_t));
    assert (state);
    state->runtime = runtime;
    state->log = service_runtime_log (runtime);
    char *error = NULL;
    state->box = auth_secretbox_new_from_config (config, &error);
    if (!state->box) {
        core_log_warn (state->log, NULL,
                       "channel credentials cannot be stored or checked: %s", error);
        free (error);
    }
    state->public_url = s_public_url (state->log);
    state->events = channels_receive_publisher (core_config_str (config, "brokers"));
    return state;
}

//  Destroy the state, wiping the sealing key.
static void
s_state_destroy (void **state_p)
{
    channels_state_t *state = (channels_state_t *) *state_p;
    if (!state)
        return;
    auth_secretbox_destroy (&state->box);
    zsock_destroy (&state->events);
    free (state->public_url);
    free (state);
    *state_p = NULL;
}

static const service_definition_t s_definition = {
    .name = "channels",
    .schema = "channels",
    .uses_redis = false,
    .commands = s_commands,
    .command_count = sizeof s_commands / sizeof s_commands[0],
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
};

void
channels_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
