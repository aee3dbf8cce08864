/*  agents_server: the agents service on the shared runtime. Its state holds the
    box that seals provider keys and the platform's default provider; its
    commands are agents_store's (configuration) and agents_turn's (turns).     */
#include "agents_server.h"

#include <assert.h>

#include "agents_store.h"
#include "agents_turn.h"

const core_config_option_t agents_server_options[] = {
    {"llm_provider", "CHORUS_LLM_PROVIDER", CORE_CONFIG_STRING, 0, 0, "offline",
     "agents: the platform's default provider (openai, anthropic, gemini, ollama, "
     "offline)"},
    {"llm_model", "CHORUS_LLM_MODEL", CORE_CONFIG_STRING, 0, 0, "",
     "agents: the default provider's model"},
    {"llm_api_key", "CHORUS_LLM_API_KEY", CORE_CONFIG_STRING, 0, 0, "",
     "agents: the default provider's API key, for tenants without their own"},
    {"llm_base_url", "CHORUS_LLM_BASE_URL", CORE_CONFIG_STRING, 0, 0, "",
     "agents: the default provider's base URL (empty: the provider's own)"},
};
const size_t agents_server_option_count = sizeof agents_server_options
                                          / sizeof agents_server_options[0];

static const service_command_t s_commands[] = {
    {"agents.list", agents_store_list},
    {"agents.get", agents_store_get},
    {"agents.create", agents_store_create},
    {"agents.update", agents_store_update},
    {"agents.delete", agents_store_delete},
    {"agents.avatar_put", agents_store_avatar_put},
    {"agents.avatar_get", agents_store_avatar_get},
    {"agents.avatar_delete", agents_store_avatar_delete},
    {"providers.list", agents_store_providers_list},
    {"providers.put", agents_store_providers_put},
    {"providers.delete", agents_store_providers_delete},
    {"openai_models", agents_store_openai_models},
    {"openai_model", agents_store_openai_model},
    {"openai_chat", agents_turn_openai_chat},
    {"turn.run", agents_turn_run},
    {"agents.test", agents_turn_try},
};

static void *
s_state_new (service_runtime_t *runtime)
{
    core_config_t *config = service_runtime_config (runtime);
    agents_state_t *state = calloc (1, sizeof (agents_state_t));
    assert (state);
    state->runtime = runtime;
    state->log = service_runtime_log (runtime);
    char *error = NULL;
    state->box = auth_secretbox_new_from_config (config, &error);
    if (!state->box) {
        core_log_warn (state->log, NULL, "provider keys cannot be stored: %s", error);
        free (error);
    }
    state->default_provider = core_config_str (config, "llm_provider");
    if (!agents_store_provider_known (state->default_provider)
        || streq (state->default_provider, "n8n")) {
        core_log_warn (state->log, NULL,
                       "CHORUS_LLM_PROVIDER '%s' is not a provider: using offline",
                       state->default_provider);
        state->default_provider = "offline";
    }
    state->default_model = core_config_str (config, "llm_model");
    state->default_api_key = core_config_str (config, "llm_api_key");
    state->default_base_url = core_config_str (config, "llm_base_url");
    if (agents_turn_start (state))
        core_log_error (state->log, NULL, "the LLM client did not start: no turns");
    return state;
}

static void
s_state_destroy (void **state_p)
{
    agents_state_t *state = (agents_state_t *) *state_p;
    if (!state)
        return;
    //  Streams still running are cancelled with their requests
    agents_turn_stop (state);
    auth_secretbox_destroy (&state->box);
    free (state);
    *state_p = NULL;
}

static const service_definition_t s_definition = {
    .name = "agents",
    .schema = "agents",
    .uses_redis = false,
    .commands = s_commands,
    .command_count = sizeof s_commands / sizeof s_commands[0],
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .on_cancel = agents_turn_cancel,
};

void
agents_server_actor (zsock_t *pipe, void *args)
{
    service_runtime_actor (pipe, args, &s_definition);
}
