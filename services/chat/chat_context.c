/*  chat_context: history within a model's context budget (see chat_context.h). */
#include "chat_context.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

//  Context windows by model name prefix (tokens). Longest prefix wins.
static const struct {
    const char *prefix;  //  model name prefix, lower case
    uint32_t window;     //  context window in tokens
} s_windows[] = {
    {"gpt-3.5-turbo", 16385}, {"gpt-4", 8192},         {"gpt-4-32k", 32768},
    {"gpt-4-turbo", 128000},  {"gpt-4o", 128000},      {"gpt-4.1", 1047576},
    {"gpt-4.5", 128000},      {"gpt-5", 400000},       {"o1", 200000},
    {"o3", 200000},           {"o4", 200000},          {"claude", 200000},
    {"gemini", 32768},        {"gemini-1.5", 1048576}, {"gemini-2", 1048576},
    {"llama3", 8192},         {"llama3.1", 131072},    {"llama3.2", 131072},
    {"llama3.3", 131072},     {"mistral", 32768},      {"mixtral", 32768},
    {"qwen2", 32768},         {"qwen2.5", 32768},      {"phi3", 4096},
    {"gemma", 8192},          {"deepseek", 65536},
};

uint32_t
chat_context_tokens (const char *text)
{
    if (!text)
        return 0;
    uint64_t characters = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if ((*p & 0xC0) != 0x80)  //  not a continuation byte
            characters++;
    uint64_t tokens = (characters + 3) / 4;
    return tokens > UINT32_MAX ? UINT32_MAX : (uint32_t) tokens;
}

uint32_t
chat_context_window (const char *model, uint32_t fallback)
{
    if (!model)
        return fallback;
    //  Provider-qualified names ("openai/gpt-4o") match on their last part
    const char *slash = strrchr (model, '/');
    if (slash)
        model = slash + 1;
    size_t best = 0;
    uint32_t window = fallback;
    for (size_t i = 0; i < sizeof s_windows / sizeof s_windows[0]; i++) {
        size_t len = strlen (s_windows[i].prefix);
        if (len > best && strncasecmp (model, s_windows[i].prefix, len) == 0) {
            best = len;
            window = s_windows[i].window;
        }
    }
    return window;
}

uint32_t
chat_context_budget (const char *model, uint32_t fallback, uint32_t max_tokens,
                     uint32_t system_tokens)
{
    uint64_t window = chat_context_window (model, fallback);
    uint64_t reply = max_tokens ? max_tokens : 1024;
    if (reply > window / 2)
        reply = window / 2;
    uint64_t used = reply + (uint64_t) system_tokens + 2 * CHAT_CONTEXT_MESSAGE_OVERHEAD;
    return used >= window ? 0 : (uint32_t) (window - used);
}

size_t
chat_context_fit (const uint32_t *tokens, size_t count, uint32_t budget)
{
    uint64_t used = 0;
    size_t kept = 0;
    while (kept < count) {
        uint64_t cost = (uint64_t) tokens[kept] + CHAT_CONTEXT_MESSAGE_OVERHEAD;
        if (kept > 0 && used + cost > budget)
            break;
        used += cost;
        kept++;
    }
    return kept;
}

void
chat_context_test (bool verbose)
{
    (void) verbose;
    printf (" * chat_context: ");
    assert (chat_context_tokens (NULL) == 0);
    assert (chat_context_tokens ("") == 0);
    assert (chat_context_tokens ("abc") == 1);
    assert (chat_context_tokens ("abcd") == 1);
    assert (chat_context_tokens ("abcde") == 2);
    //  Characters, not bytes: four two-byte letters are one token
    assert (chat_context_tokens ("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9") == 1);

    assert (chat_context_window ("gpt-4o-mini", 100) == 128000);
    assert (chat_context_window ("gpt-4", 100) == 8192);
    assert (chat_context_window ("GPT-4-turbo-preview", 100) == 128000);
    assert (chat_context_window ("gpt-4.1-nano", 100) == 1047576);
    assert (chat_context_window ("claude-3-5-sonnet-latest", 100) == 200000);
    assert (chat_context_window ("llama3.1:8b", 100) == 131072);
    assert (chat_context_window ("llama3:8b", 100) == 8192);
    assert (chat_context_window ("openai/gpt-4o", 100) == 128000);
    assert (chat_context_window ("my-own-model", 100) == 100);
    assert (chat_context_window (NULL, 100) == 100);

    //  The reply and the system prompt come out of the window
    assert (chat_context_budget ("unknown", 8192, 0, 0) == 8192 - 1024 - 8);
    assert (chat_context_budget ("unknown", 8192, 512, 100) == 8192 - 512 - 100 - 8);
    assert (chat_context_budget ("unknown", 8192, 100000, 0) == 8192 - 4096 - 8);
    assert (chat_context_budget ("unknown", 8192, 0, 9000) == 0);

    //  Newest first: the oldest are dropped, the newest always stays
    uint32_t tokens[] = {10, 20, 30, 40};
    assert (chat_context_fit (tokens, 4, 1000) == 4);
    assert (chat_context_fit (tokens, 4, 14 + 24 + 34) == 3);
    assert (chat_context_fit (tokens, 4, 14 + 24 + 33) == 2);
    assert (chat_context_fit (tokens, 4, 0) == 1);
    assert (chat_context_fit (tokens, 0, 1000) == 0);
    uint32_t huge[] = {50000, 1};
    assert (chat_context_fit (huge, 2, 100) == 1);
    printf ("OK\n");
}
