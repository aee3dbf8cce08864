/*  channels_send: the platforms' send APIs, as pure functions (no I/O): the HTTP
    request that sends a text (or checks the credentials, for connections.test)
    and what a platform's answer means: sent with its message id, worth trying
    again (429, 5xx, the platform's transient errors, with how long to wait), or
    failed for good with the platform's error code and message.

    WhatsApp Cloud API  POST {base}/{phone_number_id}/messages   (Bearer token)
    Messenger, Instagram POST {base}/{page_id}/messages         (Bearer token)
    Telegram Bot API    POST {base}/bot{token}/sendMessage
    Slack Web API       POST {base}/chat.postMessage             (Bearer token)
    and for the test: GET {base}/{phone_number_id}, GET {base}/me, getMe,
    auth.test.                                                                */
#ifndef CHANNELS_SEND_H_INCLUDED
#define CHANNELS_SEND_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A connection's account on its platform.
typedef struct {
    const char *platform;    //  whatsapp, messenger, instagram, telegram, slack
    const char *base_url;    //  the API's base URL, no trailing slash
    const char *token;       //  access token (Meta) or bot token (Telegram, Slack)
    const char *account_id;  //  phone_number_id (WhatsApp), page_id (Messenger, IG)
} channels_account_t;

//  An HTTP request to make (every field allocated; channels_http_free).
typedef struct {
    char *method;
    char *url;
    char *authorization;  //  Authorization header value, or NULL
    char *content_type;   //  or NULL without a body
    char *body;           //  or NULL
} channels_http_t;

//  What an answer means.
typedef struct {
    bool ok;                //  sent (or, for a test, the credentials work)
    bool retry;             //  not sent, but worth trying again later
    int64_t retry_after_s;  //  how long the platform asks to wait, -1: not said
    char external_id[320];  //  the platform's id of the sent message
    char error_code[64];    //  the platform's error code (or "http_<status>")
    char error[512];        //  the platform's error message
    char account[256];      //  a test: who the credentials are
} channels_outcome_t;

//  The request that sends text to chat_id (in thread_id when not empty: Slack).
//  -1 for an unknown platform or missing pieces.
int channels_send_message (const channels_account_t *account, const char *chat_id,
                           const char *thread_id, const char *text, channels_http_t *out);

//  The request that checks the account's credentials.
int channels_send_check (const channels_account_t *account, channels_http_t *out);

void channels_http_free (channels_http_t *http);

//  Read a platform's answer: status (0 when none arrived), the body, the
//  Retry-After header's seconds (-1 none). test: the answer to a channels_send_check request.
void channels_send_outcome (const char *platform, bool test, long status,
                            const char *body, size_t size, int64_t retry_after,
                            channels_outcome_t *out);

void channels_send_test (bool verbose);

#endif
