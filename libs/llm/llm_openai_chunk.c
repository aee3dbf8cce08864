/*  llm_openai_chunk: the common OpenAI chunk read without a JSON tree (see the
    header). yajl calls us for every key and value; we follow where each sits
    (the chunk, its choices, a choice, its delta, usage) and keep what the events
    need. Nothing is emitted before the whole chunk parsed, so a chunk that turns
    out to need the general reader is handed over untouched.                    */
#include "llm_openai_chunk.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "codec_check.h"
#include "llm_openai.h"

#define S_DEPTH_MAX 32  //  deeper chunks go to the general reader

//  What a container is.
typedef enum {
    S_OTHER = 0,  //  anything we skip
    S_ROOT,       //  the chunk
    S_CHOICES,    //  its choices array
    S_CHOICE,     //  one choice
    S_DELTA,      //  a choice's delta
    S_USAGE       //  the usage object
} s_frame_t;

//  The keys that matter, as bits (to see one twice).
typedef enum {
    S_KEY_NONE = 0,
    S_KEY_CHOICES = 1,
    S_KEY_USAGE = 2,
    S_KEY_ERROR = 4,
    S_KEY_INDEX = 8,
    S_KEY_DELTA = 16,
    S_KEY_FINISH = 32,
    S_KEY_CONTENT = 64,
    S_KEY_TOOLS = 128,
    S_KEY_PROMPT = 256,
    S_KEY_COMPLETION = 512,
    S_KEY_REFUSAL = 1024
} s_key_t;

//  What one choice brought.
typedef struct {
    bool index_integer;   //  index was an integer
    long long index;      //  its value
    const char *content;  //  delta.content when a string, or NULL
    size_t content_size;  //  its bytes
    bool content_owned;   //  content is our copy (else it points into the chunk)
    bool finish_string;   //  finish_reason was a string
    char finish[32];      //  its value ("?" when longer: an unknown reason)
} s_choice_t;

//  The reader's state over one chunk.
typedef struct {
    s_frame_t frames[S_DEPTH_MAX];  //  containers we are in
    unsigned seen[S_DEPTH_MAX];     //  keys met in each map
    int depth;                      //  how many
    s_key_t key;                    //  key of the value that comes next
    bool general;                   //  the general reader must read it
    bool usage;                     //  a usage object came
    long long prompt;               //  usage.prompt_tokens, -1 not an integer
    long long completion;           //  usage.completion_tokens, -1 the same
    s_choice_t choices[LLM_OPENAI_CHUNK_CHOICES];  //  the choices
    int choice_count;                              //  how many
    const char *data;                              //  the chunk's text
    size_t size;                                   //  its bytes
} s_chunk_t;

//  yajl's allocations for one chunk come from here (a handle, its lexer and
//  stacks: a few hundred bytes), not from malloc; bigger ones fall back to it.
#define S_ARENA_SIZE 4096
typedef struct {
    size_t used;                                     //  bytes handed out
    _Alignas(max_align_t) char bytes[S_ARENA_SIZE];  //  the arena
} s_arena_t;

//  A block's size sits in front of it, for realloc.
typedef struct {
    size_t size;  //  bytes asked for
    _Alignas(max_align_t) char data[];
} s_block_t;

static bool
s_arena_has (s_arena_t *arena, void *ptr)
{
    return (char *) ptr >= arena->bytes && (char *) ptr < arena->bytes + S_ARENA_SIZE;
}

static void *
s_arena_malloc (void *ctx, size_t size)
{
    s_arena_t *arena = (s_arena_t *) ctx;
    size_t need = (sizeof (s_block_t) + size + _Alignof(max_align_t) - 1)
                  & ~(_Alignof(max_align_t) - 1);
    if (arena->used + need > S_ARENA_SIZE) {
        void *ptr = malloc (size);
        assert (ptr);
        return ptr;
    }
    s_block_t *block = (s_block_t *) (arena->bytes + arena->used);
    arena->used += need;
    block->size = size;
    return block->data;
}

static void
s_arena_free (void *ctx, void *ptr)
{
    if (ptr && !s_arena_has ((s_arena_t *) ctx, ptr))
        free (ptr);  //  arena blocks go with the arena
}

static void *
s_arena_realloc (void *ctx, void *ptr, size_t size)
{
    s_arena_t *arena = (s_arena_t *) ctx;
    if (!ptr)
        return s_arena_malloc (ctx, size);
    if (!s_arena_has (arena, ptr)) {
        void *grown = realloc (ptr, size);
        assert (grown);
        return grown;
    }
    s_block_t *block = (s_block_t *) ((char *) ptr - offsetof (s_block_t, data));
    void *grown = s_arena_malloc (ctx, size);
    memcpy (grown, ptr, block->size < size ? block->size : size);
    return grown;
}

//  True when text is ASCII without NUL (the common case), else what the general
//  reader would take: no NUL, UTF-8 without what yajl lets pass (overlong forms).
static bool
s_clean (const unsigned char *text, size_t len)
{
    size_t i = 0;
    while (i < len && text[i] - 1u < 0x7fu)
        i++;
    return i == len
           || (!memchr (text, 0, len) && codec_check_utf8 ((const char *) text, len));
}

//  The container the next value is in, or S_OTHER before the first.
static s_frame_t
s_frame (s_chunk_t *self)
{
    return self->depth ? self->frames[self->depth - 1] : S_OTHER;
}

//  Stop: the general reader takes the chunk (yajl ends with client_canceled).
static int
s_general (s_chunk_t *self)
{
    self->general = true;
    return 0;
}

//  A scalar value arrived: what it means where it is. type is the yajl value
//  kind: 'n' null, 'b' boolean, 'i' integer, 'd' real, 's' string.
static int
s_scalar (s_chunk_t *self, char type, long long integer, const unsigned char *text,
          size_t len)
{
    if (type == 's' && !s_clean (text, len))
        return s_general (self);  //  the general reader refuses NUL and what yajl lets
                                  //  pass of bad UTF-8 (overlong forms)
    s_frame_t frame = s_frame (self);
    s_key_t key = self->key;
    self->key = S_KEY_NONE;
    if (frame == S_ROOT && key == S_KEY_ERROR && type != 'n')
        return s_general (self);
    if (frame == S_DELTA && (key == S_KEY_TOOLS || key == S_KEY_REFUSAL) && type != 'n')
        return s_general (self);
    if (frame == S_CHOICES) {
        if (self->choice_count == LLM_OPENAI_CHUNK_CHOICES)
            return s_general (self);
        self->choice_count++;  //  not an object: a choice with nothing in it
        return 1;
    }
    s_choice_t *choice = self->choice_count ? &self->choices[self->choice_count - 1]
                                            : NULL;
    if (frame == S_CHOICE && key == S_KEY_INDEX && type == 'i') {
        choice->index_integer = true;
        choice->index = integer;
    }
    else if (frame == S_CHOICE && key == S_KEY_FINISH && type == 's') {
        choice->finish_string = true;
        snprintf (choice->finish, sizeof choice->finish, "%.*s", (int) len, text);
        if (len >= sizeof choice->finish)
            snprintf (choice->finish, sizeof choice->finish, "?");
    }
    else if (frame == S_DELTA && key == S_KEY_CONTENT && type == 's') {
        if (choice->content_owned)
            free ((char *) choice->content);
        //  Text without escapes is yajl's pointer into the chunk: kept as it is.
        //  Unescaped text lives in yajl's buffer until the next token: copied.
        const char *at = (const char *) text;
        choice->content_owned = !(at >= self->data
                                  && at + len <= self->data + self->size);
        if (choice->content_owned) {
            char *copy = malloc (len + 1);
            assert (copy);
            memcpy (copy, text, len);
            copy[len] = 0;
            at = copy;
        }
        choice->content = at;
        choice->content_size = len;
    }
    else if (frame == S_USAGE && (key == S_KEY_PROMPT || key == S_KEY_COMPLETION))
        *(key == S_KEY_PROMPT ? &self->prompt : &self->completion) = type == 'i' ? integer
                                                                                 : -1;
    return 1;
}

static int
s_null (void *ctx)
{
    return s_scalar ((s_chunk_t *) ctx, 'n', 0, NULL, 0);
}

static int
s_boolean (void *ctx, int value)
{
    (void) value;
    return s_scalar ((s_chunk_t *) ctx, 'b', 0, NULL, 0);
}

static int
s_integer (void *ctx, long long value)
{
    return s_scalar ((s_chunk_t *) ctx, 'i', value, NULL, 0);
}

static int
s_double (void *ctx, double value)
{
    (void) value;
    return s_scalar ((s_chunk_t *) ctx, 'd', 0, NULL, 0);
}

static int
s_string (void *ctx, const unsigned char *text, size_t len)
{
    return s_scalar ((s_chunk_t *) ctx, 's', 0, text, len);
}

//  A map or an array begins: push what it is.
static int
s_start (s_chunk_t *self, bool map)
{
    if (self->depth == S_DEPTH_MAX)
        return s_general (self);
    s_frame_t frame = s_frame (self);
    s_key_t key = self->key;
    self->key = S_KEY_NONE;
    s_frame_t next = S_OTHER;
    if (self->depth == 0)
        next = map ? S_ROOT : S_OTHER;
    else if (frame == S_ROOT && key == S_KEY_CHOICES && !map)
        next = S_CHOICES;
    else if (frame == S_ROOT && key == S_KEY_USAGE && map) {
        next = S_USAGE;
        self->usage = true;
        self->prompt = self->completion = -1;
    }
    else if (frame == S_ROOT && key == S_KEY_ERROR)
        return s_general (self);
    else if (frame == S_CHOICES) {
        if (self->choice_count == LLM_OPENAI_CHUNK_CHOICES)
            return s_general (self);
        self->choice_count++;
        next = map ? S_CHOICE : S_OTHER;
    }
    else if (frame == S_CHOICE && key == S_KEY_DELTA && map)
        next = S_DELTA;
    else if (frame == S_DELTA && (key == S_KEY_TOOLS || key == S_KEY_REFUSAL))
        return s_general (self);
    if (self->depth == 0 && !map)
        return s_general (self);  //  not an object: the general reader says so
    self->frames[self->depth] = next;
    self->seen[self->depth] = 0;
    self->depth++;
    return 1;
}

static int
s_start_map (void *ctx)
{
    return s_start ((s_chunk_t *) ctx, true);
}

static int
s_start_array (void *ctx)
{
    return s_start ((s_chunk_t *) ctx, false);
}

static int
s_end (void *ctx)
{
    s_chunk_t *self = (s_chunk_t *) ctx;
    self->depth--;
    self->key = S_KEY_NONE;
    return 1;
}

//  A map key: which one it is where it is (one that matters, twice: general).
static int
s_map_key (void *ctx, const unsigned char *text, size_t len)
{
    s_chunk_t *self = (s_chunk_t *) ctx;
    if (!s_clean (text, len))
        return s_general (self);
#define S_NAME(text) text, sizeof text - 1
    static const struct {
        s_frame_t frame;
        const char *name;
        size_t size;
        s_key_t key;
    } keys[] = {
        {S_ROOT, S_NAME ("choices"), S_KEY_CHOICES},
        {S_ROOT, S_NAME ("usage"), S_KEY_USAGE},
        {S_ROOT, S_NAME ("error"), S_KEY_ERROR},
        {S_CHOICE, S_NAME ("index"), S_KEY_INDEX},
        {S_CHOICE, S_NAME ("delta"), S_KEY_DELTA},
        {S_CHOICE, S_NAME ("finish_reason"), S_KEY_FINISH},
        {S_DELTA, S_NAME ("content"), S_KEY_CONTENT},
        {S_DELTA, S_NAME ("tool_calls"), S_KEY_TOOLS},
        {S_DELTA, S_NAME ("refusal"), S_KEY_REFUSAL},
        {S_USAGE, S_NAME ("prompt_tokens"), S_KEY_PROMPT},
        {S_USAGE, S_NAME ("completion_tokens"), S_KEY_COMPLETION},
    };
#undef S_NAME
    s_frame_t frame = s_frame (self);
    self->key = S_KEY_NONE;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].frame == frame && keys[i].size == len
            && memcmp (keys[i].name, text, len) == 0) {
            if (self->seen[self->depth - 1] & keys[i].key)
                return s_general (self);  //  which one counts is the general reader's
            self->seen[self->depth - 1] |= keys[i].key;
            self->key = keys[i].key;
            break;
        }
    return 1;
}

static const yajl_callbacks s_callbacks = {s_null, s_boolean,     s_integer,   s_double,
                                           NULL,   s_string,      s_start_map, s_map_key,
                                           s_end,  s_start_array, s_end};

//  True when data is JSON white space, then one object, then white space only:
//  yajl lets a token that is still open at the end pass after the value (where
//  jansson refuses trailing bytes). Only quotes, escapes and brackets are looked
//  at; the parse checks the rest. Also false on what is the general reader's:
//  \u escapes (yajl and jansson differ on lone surrogates) and \v or \f (yajl
//  takes them for white space, JSON does not).
static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
s_one_object (const char *data, size_t size)
{
    size_t at = 0;
    while (at < size && s_space (data[at]))
        at++;
    if (at == size || data[at] != '{')
        return false;
    int depth = 0;
    for (; at < size; at++) {
        char c = data[at];
        if (c == '"') {
            //  A string, to its closing quote
            for (at++; at < size && data[at] != '"'; at++)
                if (data[at] == '\\') {
                    if (at + 1 < size && data[at + 1] == 'u')
                        return false;
                    at++;
                }
                else if (data[at] == '\v' || data[at] == '\f')
                    return false;
            if (at >= size)
                return false;
        }
        else if (c == '\v' || c == '\f')
            return false;
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            break;
    }
    if (at >= size)
        return false;
    for (at++; at < size; at++)
        if (!s_space (data[at]))
            return false;
    return true;
}

bool
llm_openai_chunk_read (llm_parser_t *parser, const char *data, size_t size, int *rc)
{
    assert (parser && rc);
    if (!s_one_object (data, size))
        return false;
    s_chunk_t chunk;
    memset (&chunk, 0, sizeof chunk);
    chunk.data = data;
    chunk.size = size;
    s_arena_t arena;
    arena.used = 0;
    yajl_alloc_funcs funcs = {s_arena_malloc, s_arena_realloc, s_arena_free, &arena};
    yajl_handle yajl = yajl_alloc (&s_callbacks, &funcs, &chunk);
    assert (yajl);
    bool read = yajl_parse (yajl, (const unsigned char *) data, size) == yajl_status_ok
                && yajl_complete_parse (yajl) == yajl_status_ok && !chunk.general;
    yajl_free (yajl);
    *rc = 0;
    if (read) {
        if (chunk.usage) {
            parser->usage = true;
            parser->prompt_tokens = chunk.prompt;
            parser->completion_tokens = chunk.completion;
        }
        for (int i = 0; i < chunk.choice_count && *rc == 0; i++) {
            s_choice_t *choice = &chunk.choices[i];
            if (choice->index_integer && choice->index != 0)
                continue;  //  we ask for one choice
            if (choice->content
                && llm_parser_emit_delta (parser, choice->content, choice->content_size))
                *rc = -1;
            else if (choice->finish_string)
                llm_parser_set_finish (parser, llm_openai_finish (choice->finish));
        }
    }
    for (int i = 0; i < chunk.choice_count; i++)
        if (chunk.choices[i].content_owned)
            free ((char *) chunk.choices[i].content);
    return read;
}

//  ---------------------------------------------------------------------------
//  Selftest

//  Events as llm_event_format lines.
typedef struct {
    char log[1024];  //  the lines
    size_t size;     //  bytes in log
} s_log_t;

static int
s_record (const llm_event_t *event, void *arg)
{
    s_log_t *log = (s_log_t *) arg;
    size_t n = llm_event_format (event, log->log + log->size,
                                 sizeof log->log - log->size);
    log->size += n;
    assert (log->size < sizeof log->log - 1);
    log->log[log->size++] = '\n';
    log->log[log->size] = 0;
    return 0;
}

//  Read data, then end the stream: whether this reader took it, and the log of
//  its events and of the DONE after them (usage and the finish reason).
static void
s_expect (const char *data, bool read, const char *expected)
{
    s_log_t log = {0};
    llm_parser_t *parser = llm_parser_new (LLM_PROVIDER_OPENAI, 4096, s_record, &log);
    int rc = -2;
    bool took = llm_openai_chunk_read (parser, data, strlen (data), &rc);
    if (took != read)
        fprintf (stderr, "\nllm_openai_chunk: %s: %s\n", data, took ? "read" : "general");
    assert (took == read);
    if (read) {
        assert (rc == 0);
        llm_parser_emit_done (parser, NULL);
        if (strcmp (log.log, expected) != 0)
            fprintf (stderr, "\nllm_openai_chunk: %s:\n%s", data, log.log);
        assert (strcmp (log.log, expected) == 0);
    }
    else
        assert (log.size == 0);
    llm_parser_destroy (&parser);
}

void
llm_openai_chunk_test (bool verbose)
{
    printf (" * llm_openai_chunk: ");
    //  @selftest
    //  Read here: text, finish reasons, usage, choices other than 0 skipped
    s_expect (
        "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":"
        "0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi \\\"there\\\"\\n\"},"
        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
        true, "delta Hi \"there\"\n\ndone stop\n");
    s_expect ("{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
              "\"\",\"refusal\":null}}]}",
              true, "done stop\n");  //  the usual first chunk: refusal null stays here
    s_expect (
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}",
        true, "usage 9 2\ndone length\n");
    s_expect ("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"no\"}},5,"
              "{\"delta\":{\"content\":\"yes\"},\"finish_reason\":\"function_call\"}],"
              "\"usage\":{\"prompt_tokens\":\"x\"}}",
              true, "delta yes\nusage -1 -1\ndone tool_calls\n");
    //  Left to the general reader: nothing emitted here
    const char *general[] = {
        "{\"error\":{\"message\":\"boom\"}}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}",
        "{\"choices\":[{\"delta\":{\"refusal\":\"I can't help with that.\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"caf\\u00e9\"}}]}",
        "{\"choices\":[],\"choices\":[]}",
        "{\"choices\":[{\"index\":0,\"index\":1}]}",
        "[1]",
        "{oops",
        "{\"a\":1} x",
        "{\"choices\":[1,2,3,4,5]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}",
        "{\"choices\":[]}\":[x",
        "{\"choices\":[]}\v",
    };
    for (size_t i = 0; i < sizeof general / sizeof general[0]; i++)
        s_expect (general[i], false, NULL);
    if (verbose)
        printf ("(%zu left to the general reader) ", sizeof general / sizeof general[0]);
    //  @end
    printf ("OK\n");
}
