/*  agents_state: what the agents service's handlers share: the runtime, the
    sealing box for provider keys, the platform's default provider, and the LLM
    client (libs/llm) that runs turns. agents_server owns it.                */
#ifndef AGENTS_STATE_H_INCLUDED
#define AGENTS_STATE_H_INCLUDED

#include "agents.pb-c.h"
#include "auth_secretbox.h"
#include "service_call.h"

typedef struct {
    service_runtime_t *runtime;    //  the runtime (bus, database, log)
    core_log_t *log;               //  its logger
    auth_secretbox_t *box;         //  seals provider keys, NULL without a secret key
    const char *default_provider;  //  CHORUS_LLM_PROVIDER, "offline" when unset
    const char *default_model;     //  CHORUS_LLM_MODEL
    const char *default_api_key;   //  CHORUS_LLM_API_KEY
    const char *default_base_url;  //  CHORUS_LLM_BASE_URL
    void *http;                    //  the HTTP client (http_client_t *) under llm
    void *llm;                     //  the LLM client (llm_client_t *), agents_turn's
} agents_state_t;

#endif
