/*  channels_server: the channels service on the shared runtime. Its state holds
    the box that seals credentials, the public URL of the webhooks, the
    publisher of the events its SQL writes and the delivery machinery (the HTTP
    client, the platforms' base URLs, a poll timer); its commands are
    channels_store's (connections, inbox listing), channels_receive's
    (webhooks) and channels_outbound's (queueing, listing, testing). The
    inbox worker (channels_inbox) and the sender (channels_outbound) run from
    the timer and from kicks when rows arrive.                              */
#include "channels_server.h"

#include <assert.h>

#include "channels_inbox.h"
#include "channels_outbound.h"
#include "channels_receive.h"
#include "channels_store.h"

const core_config_option_t channels_server_options[] = {
    {"public_url", "CHORUS_PUBLIC_URL", CORE_CONFIG_STRING, 0, 0, "http://127.0.0.1:8080",
     "channels: the edge's public base URL, which webhook URLs are built on"},
    {"whatsapp_api_url", "CHORUS_WHATSAPP_API_URL", CORE_CONFIG_STRING, 0, 0,
     "https://graph.facebook.com/v21.0",
     "channels: base URL of the WhatsApp Cloud API (Graph API with its version)"},
    {"messenger_api_url", "CHORUS_MESSENGER_API_URL", CORE_CONFIG_STRING, 0, 0,
     "https://graph.facebook.com/v21.0",
     "channels: base URL of Messenger's Send API (Graph API with its version)"},
    {"instagram_api_url", "CHORUS_INSTAGRAM_API_URL", CORE_CONFIG_STRING, 0, 0,
     "https://graph.facebook.com/v21.0",
     "channels: base URL of Instagram's Send API (Graph API with its version)"},
    {"telegram_api_url", "CHORUS_TELEGRAM_API_URL", CORE_CONFIG_STRING, 0, 0,
     "https://api.telegram.org", "channels: base URL of the Telegram Bot API"},
    {"slack_api_url", "CHORUS_SLACK_API_URL", CORE_CONFIG_STRING, 0, 0,
     "https://slack.com/api", "channels: base URL of the Slack Web API"},
    {"channels_turn_timeout_ms", "CHORUS_CHANNELS_TURN_TIMEOUT_MS", CORE_CONFIG_INT, 1000,
     3600000, "300000",
     "channels: longest wait for chat (and the agent's turn) to answer a message"},
    {"channels_inbox_attempts", "CHORUS_CHANNELS_INBOX_ATTEMPTS", CORE_CONFIG_INT, 1, 100,
     "10", "channels: tries of an inbound message before it is marked failed"},
    {"channels_send_attempts", "CHORUS_CHANNELS_SEND_ATTEMPTS", CORE_CONFIG_INT, 1, 100,
     "8", "channels: tries of a reply part before it is marked failed"},
    {"channels_inbox_concurrency", "CHORUS_CHANNELS_INBOX_CONCURRENCY", CORE_CONFIG_INT,
     1, 10000, "64", "channels: inbound messages processed at once per replica"},
    {"channels_send_concurrency", "CHORUS_CHANNELS_SEND_CONCURRENCY", CORE_CONFIG_INT, 1,
     10000, "64", "channels: reply parts sent at once per replica"},
    {"channels_poll_ms", "CHORUS_CHANNELS_POLL_MS", CORE_CONFIG_INT, 50, 60000, "500",
     "channels: how often the inbox and the outbound queue are looked at"},
    {"channels_process", "CHORUS_CHANNELS_PROCESS", CORE_CONFIG_BOOL, 0, 0, "true",
     "channels: this replica processes the inbox and sends replies (false: it only "
     "receives webhooks, other replicas deliver)"},
    {"channels_lease_s", "CHORUS_CHANNELS_LEASE_S", CORE_CONFIG_INT, 3, 3600, "30",
     "channels: a message or part taken by a replica that stops renewing it is taken "
     "again after this long"},
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
    {"outbound.enqueue", channels_outbound_enqueue},
    {"outbound.list", channels_outbound_list},
    {"connections.test", channels_outbound_check},
};

//  Index of an option in the table above.
static size_t
s_option (const char *name)
{
    for (size_t i = 0; i < channels_server_option_count; i++)
        if (streq (channels_server_options[i].name, name))
            return i;
    assert (false);
    return 0;
}

static const char *const s_platforms[] = {"whatsapp", "messenger", "instagram",
                                          "telegram", "slack"};

const char *
channels_state_api_url (channels_state_t *state, const char *platform)
{
    for (size_t i = 0; platform && i < 5; i++)
        if (streq (platform, s_platforms[i]))
            return state->api_url[i];
    return NULL;
}

//  An http(s) URL without its trailing slashes (caller frees), or NULL.
static char *
s_base_url (const char *value)
{
    if (!value
        || (strncmp (value, "http://", 7) != 0 && strncmp (value, "https://", 8) != 0))
        return NULL;
    char *url = strdup (value);
    assert (url);
    size_t length = strlen (url);
    while (length > 0 && url[length - 1] == '/')
        url[--length] = 0;
    return url;
}

//  The delivery options (the defaults when one is bad: only chorusd gets this
//  far with a bad one).
static void
s_read_options (channels_state_t *state, core_config_t *own)
{
    for (size_t i = 0; i < 5; i++) {
        char name[32];
        snprintf (name, sizeof name, "%s_api_url", s_platforms[i]);
        const core_config_option_t *option = &channels_server_options[s_option (name)];
        state->api_url[i] = s_base_url (own ? core_config_str (own, name) : NULL);
        if (!state->api_url[i]) {
            core_log_warn (state->log, NULL, "%s must be an http(s) URL: using %s",
                           option->env, option->fallback);
            state->api_url[i] = s_base_url (option->fallback);
        }
    }
    struct {
        const char *name;
        int64_t *slot;
    } numbers[] = {{"channels_turn_timeout_ms", &state->turn_timeout_ms},
                   {"channels_inbox_attempts", &state->inbox_attempts},
                   {"channels_send_attempts", &state->send_attempts},
                   {"channels_inbox_concurrency", &state->inbox_concurrency},
                   {"channels_send_concurrency", &state->send_concurrency},
                   {"channels_poll_ms", &state->poll_ms},
                   {"channels_lease_s", &state->lease_s}};
    state->process = own ? core_config_bool (own, "channels_process") : true;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        *numbers[i].slot =
            own ? core_config_int (own, numbers[i].name)
                : strtoll (channels_server_options[s_option (numbers[i].name)].fallback,
                           NULL, 10);
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    channels_state_t *state = (channels_state_t *) arg;
    state->ticks++;
    channels_inbox_tick (state);
    channels_outbound_kick (state);
    return 0;
}

//  The handlers' state, made once the runtime is up. The service's options are
//  read from the environment through our own table, so that the service finds
//  them whichever process (chorus-channels or chorusd) runs it.
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
    core_config_t *own = core_config_new (channels_server_options,
                                          channels_server_option_count, &error);
    if (!own) {
        core_log_warn (state->log, NULL, "configuration: %s (using the defaults)", error);
        free (error);
    }
    state->public_url = s_base_url (own ? core_config_str (own, "public_url") : NULL);
    if (!state->public_url) {
        core_log_warn (state->log, NULL,
                       "CHORUS_PUBLIC_URL must be an http(s) URL: using the default");
        state->public_url = s_base_url (channels_server_options[0].fallback);
    }
    s_read_options (state, own);
    core_config_destroy (&own);
    state->events = channels_receive_publisher (core_config_str (config, "brokers"));
    state->inbox_jobs = zlistx_new ();
    state->send_jobs = zlistx_new ();
    zloop_t *loop = service_runtime_loop (runtime);
    state->http = http_client_new (state->log);
    if (http_client_attach (state->http, loop) != 0) {
        core_log_error (state->log, NULL, "the platforms' HTTP client cannot start");
        http_client_destroy (&state->http);
    }
    state->timer = state->process
                       ? zloop_timer (loop, (size_t) state->poll_ms, 0, s_on_tick, state)
                       : -1;
    assert (state->timer >= 0 || !state->process);
    return state;
}

//  Destroy the state, wiping the sealing key. The database pool is gone: rows in
//  flight stay taken until their leases end, then a replica takes them again.
static void
s_state_destroy (void **state_p)
{
    channels_state_t *state = (channels_state_t *) *state_p;
    if (!state)
        return;
    if (state->timer >= 0)
        zloop_timer_end (service_runtime_loop (state->runtime), state->timer);
    channels_inbox_shutdown (state);
    channels_outbound_shutdown (state);
    http_client_destroy (&state->http);
    zlistx_destroy (&state->inbox_jobs);
    zlistx_destroy (&state->send_jobs);
    for (size_t i = 0; i < 5; i++)
        free (state->api_url[i]);
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
