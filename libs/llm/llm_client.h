/*  llm_client: one streamed interface to language models, for the agents
    service. A stream is started from an llm_request and delivers llm_events to
    a callback, always from the service's zloop and never from inside
    llm_stream_start: text pieces, tool-call fragments, usage, and exactly one
    DONE or ERROR at the end. HTTP goes through libs/http's http_client (curl's
    multi interface on the same loop), so a thousand concurrent streams need no
    threads.

    Failures before anything was delivered (429 but OpenAI's insufficient_quota,
    408, 409, 5xx, connection refused, and a provider's error inside a 2xx stream
    such as Anthropic's overloaded_error after message_start) are
    retried with exponential backoff that honours Retry-After (or the
    provider's own hint), capped, at most max_attempts in all; once a piece
    was delivered, never. The total timeout covers every attempt and the waits
    between them; the idle timeout is per attempt.

        llm_client_t *llm = llm_client_new (loop, http, log);
        llm_request_t *request = llm_request_new (LLM_PROVIDER_OPENAI);
        llm_request_set_api_key (request, key);
        llm_request_set_model (request, "gpt-4o-mini");
        int rc = llm_request_add_message (request, "user", "Hello");
        char error[256];
        turn->stream = llm_stream_start (llm, request, s_on_event, turn,
                                         error, sizeof error);
        llm_request_destroy (&request);
        ...
        static void
        s_on_event (llm_stream_t *stream, const llm_event_t *event, void *arg)
        {
            ... DELTA: forward event->text; DONE / ERROR: finish the turn, then
            llm_stream_cancel (&turn->stream);
        }                                                                       */
#ifndef LLM_CLIENT_H_INCLUDED
#define LLM_CLIENT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_log.h"
#include "http_client.h"
#include "llm_event.h"
#include "llm_request.h"

typedef struct _llm_client_t llm_client_t;
typedef struct _llm_stream_t llm_stream_t;

//  Called for each event of a stream, from the loop. It may cancel the stream
//  (llm_stream_cancel), start others, or do nothing special; after DONE or
//  ERROR nothing more comes.
typedef void (llm_event_fn) (llm_stream_t *stream, const llm_event_t *event, void *arg);

//  ---------------------------------------------------------------------------
//  Client

//  Create a client on the loop, sending through http (attached to this loop
//  here if it is not yet) and logging to log (may be NULL); all borrowed, and
//  they must outlive the client.
llm_client_t *llm_client_new (zloop_t *loop, http_client_t *http, core_log_t *log);

//  Destroy the client: streams still running stop at once without further
//  events (their owners still free them with llm_stream_cancel).
void llm_client_destroy (llm_client_t **self_p);

//  Retries: at most max_attempts attempts in all (default 3; 1 for none), the
//  first wait base_ms (default 500), doubled each time, never over max_ms
//  (default 20000). A Retry-After longer than max_ms is not waited for: the
//  stream ends with rate_limited and the retry_after for the caller.
void llm_client_set_retry (llm_client_t *self, int max_attempts, int64_t base_ms,
                           int64_t max_ms);

//  Largest line or event of a provider's stream, in bytes (default 1 MiB); an
//  error reply's body is kept up to 64 KiB.
void llm_client_set_max_event (llm_client_t *self, size_t max_event);

//  Pause between the offline provider's pieces, in ms (default 15).
void llm_client_set_offline_pace (llm_client_t *self, int64_t ms);

//  Streams started and not yet freed.
size_t llm_client_streams (llm_client_t *self);

//  ---------------------------------------------------------------------------
//  Streams

//  Start a stream for the request (borrowed: it can be destroyed on return).
//  Events go to fn with arg, from the loop. Returns the stream, which the
//  caller owns and frees with llm_stream_cancel, also after its DONE or ERROR;
//  or NULL with the reason in error (size bytes) when the request cannot be
//  made (no model, no n8n webhook URL, ...). A failure to reach the provider
//  is an ERROR event, never a NULL.
llm_stream_t *llm_stream_start (llm_client_t *client, llm_request_t *request,
                                llm_event_fn *fn, void *arg, char *error, size_t size)
    __attribute__ ((warn_unused_result));

//  Cancel the stream if it still runs (its HTTP transfer is aborted and its
//  connection closed at once; no event comes after) and free it; sets *self_p
//  to NULL. Harmless on NULL. May be called from the stream's own callback.
void llm_stream_cancel (llm_stream_t **self_p);

//  Attempts made so far (1 once the first request went out).
int llm_stream_attempts (llm_stream_t *self);

//  True once DONE or ERROR was delivered.
bool llm_stream_ended (llm_stream_t *self);

void llm_client_test (bool verbose);

#endif
