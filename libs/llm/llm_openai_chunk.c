/*  llm_openai_chunk: the common OpenAI chunk read without a JSON tree (see the
    header). One pass over the text scans it as strict JSON and tells us of every
    key and value; we follow where each sits (the chunk, its choices, a choice, its
    delta, usage) and keep what the events need. Nothing is emitted before the
    whole chunk was read, so a chunk that turns out to need the general reader
    (or is not JSON: the general reader says why) is handed over untouched.

    A stream's chunks begin with the same bytes (id, object, created, model,
    system_fingerprint) up to "choices": the bytes before that key, once a chunk
    was read, are kept in the parser, and a chunk that begins with the same bytes
    is read from the key on, in the state those bytes left the scanner in (the
    root object open, no key that matters seen), as their scan would give the
    same again.                                                                 */
#include "llm_openai_chunk.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "llm_openai.h"

#define S_DEPTH_MAX 32    //  deeper chunks go to the general reader
#define S_PREFIX_MAX 512  //  longest common beginning of chunks kept

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
    size_t prefix;  //  bytes before the root's "choices" key when none that matters
                    //  came before it, else 0
} s_chunk_t;

//  The container the next value is in, or S_OTHER before the first.
static s_frame_t
s_frame (s_chunk_t *self)
{
    return self->depth ? self->frames[self->depth - 1] : S_OTHER;
}

//  Stop: the general reader takes the chunk.
static int
s_general (s_chunk_t *self)
{
    self->general = true;
    return 0;
}

//  A scalar value arrived: what it means where it is. type is the value's kind:
//  'n' null, 'b' boolean, 'i' integer, 's' string (valid UTF-8 without NUL).
static int
s_scalar (s_chunk_t *self, char type, long long integer, const unsigned char *text,
          size_t len)
{
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
        //  Text without escapes points into the chunk: kept as it is. Unescaped
        //  text lives in the scanner's buffer: copied.
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
s_end (s_chunk_t *self)
{
    self->depth--;
    self->key = S_KEY_NONE;
    return 1;
}

//  The key that matters in frame named by text, or S_KEY_NONE (constant sizes:
//  the compiler compares words, not bytes).
#define S_IS(name) (len == sizeof name - 1 && memcmp (text, name, sizeof name - 1) == 0)
static s_key_t
s_key_of (s_frame_t frame, const unsigned char *text, size_t len)
{
    switch (frame) {
        case S_ROOT:
            return S_IS ("choices") ? S_KEY_CHOICES
                   : S_IS ("usage") ? S_KEY_USAGE
                   : S_IS ("error") ? S_KEY_ERROR
                                    : S_KEY_NONE;
        case S_CHOICE:
            return S_IS ("index")           ? S_KEY_INDEX
                   : S_IS ("delta")         ? S_KEY_DELTA
                   : S_IS ("finish_reason") ? S_KEY_FINISH
                                            : S_KEY_NONE;
        case S_DELTA:
            return S_IS ("content")      ? S_KEY_CONTENT
                   : S_IS ("tool_calls") ? S_KEY_TOOLS
                   : S_IS ("refusal")    ? S_KEY_REFUSAL
                                         : S_KEY_NONE;
        case S_USAGE:
            return S_IS ("prompt_tokens")       ? S_KEY_PROMPT
                   : S_IS ("completion_tokens") ? S_KEY_COMPLETION
                                                : S_KEY_NONE;
        default:
            return S_KEY_NONE;
    }
}
#undef S_IS

//  A map key: which one it is where it is (one that matters, twice: general).
static int
s_map_key (s_chunk_t *self, const unsigned char *text, size_t len)
{
    s_key_t key = s_key_of (s_frame (self), text, len);
    self->key = S_KEY_NONE;
    if (key == S_KEY_NONE)
        return 1;
    if (self->seen[self->depth - 1] & key)
        return s_general (self);  //  which one counts is the general reader's
    self->seen[self->depth - 1] |= key;
    self->key = key;
    return 1;
}

//  ---------------------------------------------------------------------------
//  The scanner: strict JSON (RFC 8259) in one pass, the events above for each
//  key and value. It gives up (false) on what is not JSON and on what it leaves
//  to the general reader: \u escapes (lone surrogates), numbers with a fraction
//  or an exponent, integers of more than 18 digits, more than S_DEPTH_MAX levels.

typedef struct {
    const unsigned char *at;   //  next byte
    const unsigned char *end;  //  past the last
    s_chunk_t *chunk;          //  who hears of the values
    char *scratch;             //  unescaped strings, malloc'd on first need
    size_t scratch_size;       //  its bytes
} s_scan_t;

//  Bytes that end a run of plain string text: the quote, the backslash, control
//  characters and every byte of a multi-byte UTF-8 sequence (1 in the table).
static const unsigned char s_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  00
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  10
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //  20
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //  30
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //  40
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,  //  50
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //  60
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //  70
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  80
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  90
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  a0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  b0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  c0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  d0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  e0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  //  f0
};

static void
s_skip_space (s_scan_t *self)
{
    while (self->at < self->end
           && (*self->at == ' ' || *self->at == '\n' || *self->at == '\r'
               || *self->at == '\t'))
        self->at++;
}

//  A string from its opening quote: *text_p/*len_p what it says (into the chunk
//  when it has no escapes, else into scratch). False when it is bad or not ours.
static bool
s_scan_string (s_scan_t *self, const unsigned char **text_p, size_t *len_p)
{
    const unsigned char *start = ++self->at;
    const unsigned char *at = start;
    bool high = false, escaped = false;
    while (true) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        //  Eight bytes a step: each test sets the high bit of the first byte that
        //  stops the run (below 0x20, 0x80 and up, '"', '\\'); any bits above it
        //  may be wrong, so the lowest one set is where the run ends
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        uint64_t stops = 0;
        while (self->end - at >= 8) {
            uint64_t word, quote, slash;
            memcpy (&word, at, 8);
            quote = word ^ (ones * '"');
            slash = word ^ (ones * '\\');
            stops = (((word - ones * 0x20) & ~word) | ((quote - ones) & ~quote)
                     | ((slash - ones) & ~slash) | word)
                    & highs;
            if (stops) {
                at += __builtin_ctzll (stops) >> 3;
                break;
            }
            at += 8;
        }
        if (!stops)
#endif
            while (at < self->end && !s_stop[*at])
                at++;
        if (at == self->end || *at < 0x20)
            return false;  //  unterminated, or a control character
        if (*at == '"')
            break;
        if (*at >= 0x80) {
            high = true;
            at++;
        }
        else {  //  a backslash
            if (at + 1 == self->end || !strchr ("\"\\/bfnrt", at[1]) || !at[1])
                return false;  //  \u (the general reader's) or not an escape
            escaped = true;
            at += 2;
        }
    }
    size_t raw = (size_t) (at - start);
    self->at = at + 1;
    if (high && !codec_check_utf8 ((const char *) start, raw))
        return false;
    if (!escaped) {
        *text_p = start;
        *len_p = raw;
        return true;
    }
    if (self->scratch_size < raw + 1) {
        free (self->scratch);
        self->scratch_size = raw + 1 > 256 ? raw + 1 : 256;
        self->scratch = malloc (self->scratch_size);
        assert (self->scratch);
    }
    char *out = self->scratch;
    for (const unsigned char *c = start; c < at; c++) {
        if (*c != '\\') {
            *out++ = (char) *c;
            continue;
        }
        c++;
        *out++ = *c == 'b'   ? '\b'
                 : *c == 'f' ? '\f'
                 : *c == 'n' ? '\n'
                 : *c == 'r' ? '\r'
                 : *c == 't' ? '\t'
                             : (char) *c;
    }
    *out = 0;
    *text_p = (const unsigned char *) self->scratch;
    *len_p = (size_t) (out - self->scratch);
    return true;
}

//  An integer (-?(0|[1-9][0-9]*), at most 18 digits); anything with a fraction
//  or an exponent is the general reader's.
static bool
s_scan_number (s_scan_t *self, long long *value_p)
{
    const unsigned char *at = self->at;
    bool negative = at < self->end && *at == '-';
    if (negative)
        at++;
    const unsigned char *digits = at;
    long long value = 0;
    while (at < self->end && *at >= '0' && *at <= '9') {
        value = value * 10 + (*at - '0');
        at++;
        if (at - digits > 18)
            return false;
    }
    if (at == digits || (*digits == '0' && at - digits > 1))
        return false;
    if (at < self->end && (*at == '.' || *at == 'e' || *at == 'E'))
        return false;
    self->at = at;
    *value_p = negative ? -value : value;
    return true;
}

static bool
s_scan_literal (s_scan_t *self, const char *word, size_t size)
{
    if ((size_t) (self->end - self->at) < size || memcmp (self->at, word, size) != 0)
        return false;
    self->at += size;
    return true;
}

static bool s_scan_value (s_scan_t *self);

static bool s_scan_members (s_scan_t *self, bool map);

//  An object or an array from its bracket.
static bool
s_scan_container (s_scan_t *self, bool map)
{
    s_chunk_t *chunk = self->chunk;
    if (!s_start (chunk, map))
        return false;
    self->at++;
    s_skip_space (self);
    if (self->at < self->end && *self->at == (map ? '}' : ']')) {
        self->at++;
        return s_end (chunk);
    }
    return s_scan_members (self, map);
}

//  The members of an open object or array, from the first one's start (a key's
//  quote in an object) to the closing bracket.
static bool
s_scan_members (s_scan_t *self, bool map)
{
    s_chunk_t *chunk = self->chunk;
    while (true) {
        if (map) {
            const unsigned char *key;
            const unsigned char *key_at = self->at;
            size_t len;
            if (self->at == self->end || *self->at != '"'
                || !s_scan_string (self, &key, &len) || !s_map_key (chunk, key, len))
                return false;
            if (chunk->depth == 1 && chunk->key == S_KEY_CHOICES
                && chunk->seen[0] == S_KEY_CHOICES && !chunk->usage)
                chunk->prefix = (size_t) (key_at - (const unsigned char *) chunk->data);
            s_skip_space (self);
            if (self->at == self->end || *self->at != ':')
                return false;
            self->at++;
        }
        if (!s_scan_value (self))
            return false;
        s_skip_space (self);
        if (self->at == self->end)
            return false;
        if (*self->at == ',') {
            self->at++;
            s_skip_space (self);
            continue;
        }
        if (*self->at != (map ? '}' : ']'))
            return false;
        self->at++;
        return s_end (chunk);
    }
}

static bool
s_scan_value (s_scan_t *self)
{
    s_skip_space (self);
    if (self->at == self->end)
        return false;
    s_chunk_t *chunk = self->chunk;
    const unsigned char *text;
    size_t len;
    long long integer;
    switch (*self->at) {
        case '{':
            return s_scan_container (self, true);
        case '[':
            return s_scan_container (self, false);
        case '"':
            return s_scan_string (self, &text, &len)
                   && s_scalar (chunk, 's', 0, text, len);
        case 't':
            return s_scan_literal (self, "true", 4) && s_scalar (chunk, 'b', 0, NULL, 0);
        case 'f':
            return s_scan_literal (self, "false", 5) && s_scalar (chunk, 'b', 0, NULL, 0);
        case 'n':
            return s_scan_literal (self, "null", 4) && s_scalar (chunk, 'n', 0, NULL, 0);
        default:
            return s_scan_number (self, &integer)
                   && s_scalar (chunk, 'i', integer, NULL, 0);
    }
}

bool
llm_openai_chunk_read (llm_parser_t *parser, const char *data, size_t size, int *rc)
{
    assert (parser && rc);
    s_chunk_t chunk;
    memset (&chunk, 0, sizeof chunk);
    chunk.data = data;
    chunk.size = size;
    s_scan_t scan = {(const unsigned char *) data, (const unsigned char *) data + size,
                     &chunk, NULL, 0};
    bool read;
    bool known = parser->openai_prefix_size && size > parser->openai_prefix_size
                 && memcmp (data, parser->openai_prefix, parser->openai_prefix_size) == 0;
    if (known) {
        //  The bytes the last chunk read began with: on from its "choices" key
        (void) s_start (&chunk, true);
        scan.at += parser->openai_prefix_size;
        read = s_scan_members (&scan, true);
    }
    else {
        s_skip_space (&scan);
        read = scan.at < scan.end && *scan.at == '{' && s_scan_value (&scan);
    }
    if (read) {
        s_skip_space (&scan);
        read = scan.at == scan.end;  //  white space only after the object
    }
    read = read && !chunk.general;
    free (scan.scratch);
    *rc = 0;
    if (read && !known) {  //  what the next chunks may begin with
        size_t prefix = chunk.prefix <= S_PREFIX_MAX ? chunk.prefix : 0;
        if (prefix != parser->openai_prefix_size) {
            free (parser->openai_prefix);
            parser->openai_prefix = prefix ? malloc (prefix) : NULL;
            assert (!prefix || parser->openai_prefix);
            parser->openai_prefix_size = prefix;
        }
        if (prefix)
            memcpy (parser->openai_prefix, data, prefix);
    }
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
    //  Escapes, white space, nesting and values the chunk does not need
    s_expect (" \r\n{ \"obfuscation\" : \"x\\/y\", \"a\":{\"b\":[[],{},true,false,-7]},"
              "\"choices\" :[ {\"delta\":{\"content\":\"tab\\there\\\\\\b\\f\\r\"},"
              "\"index\":0} ] }\t",
              true, "delta tab\there\\\b\f\r\ndone stop\n");
    s_expect ("{\"choices\":[{\"delta\":{\"content\":\"caf\xc3\xa9 \xe2\x82\xac\"}}]}",
              true, "delta caf\xc3\xa9 \xe2\x82\xac\ndone stop\n");
    s_expect (
        "{\"choices\":[{\"delta\":{\"content\":\"a long run of plain text \\\"then "
        "an escape\\\", then caf\xc3\xa9 after the eighth byte\"}}]}",
        true,
        "delta a long run of plain text \"then an escape\", then caf\xc3\xa9 after the "
        "eighth byte\ndone stop\n");
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
        "{\"created\":1.5,\"choices\":[]}",
        "{\"created\":1e3,\"choices\":[]}",
        "{\"created\":01,\"choices\":[]}",
        "{\"created\":1234567890123456789,\"choices\":[]}",
        "{\"created\":-,\"choices\":[]}",
        "{\"choices\":[],}",
        "{\"choices\":[1,]}",
        "{\"choices\" []}",
        "{\"choices\":[]",
        "{\"choices\":[\"a\tb\"]}",
        "{\"choices\":[\"sixteen bytes or\tmore\"]}",
        "{\"choices\":[\"sixteen bytes or\xc0\xaf more\"]}",
        "{\"choices\":[\"an unterminated string longer than eight bytes",
        "{\"choices\":[\"\\x\"]}",
        "{\"choices\":[nul]}",
        "{\"choices\":[truex]}",
        "{\"ch\xc0\xafoices\":[]}",
        "{} {}",
        "",
    };
    for (size_t i = 0; i < sizeof general / sizeof general[0]; i++)
        s_expect (general[i], false, NULL);
    if (verbose)
        printf ("(%zu left to the general reader) ", sizeof general / sizeof general[0]);

    //  One stream's chunks: the beginning the last one read had is not scanned
    //  again, and what follows it is read as strictly as ever
    s_log_t log = {0};
    llm_parser_t *parser = llm_parser_new (LLM_PROVIDER_OPENAI, 4096, s_record, &log);
    const char
        *head = "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\", ";
    const char *stream[] = {
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"}}]}",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"two\"}}],\"usage\":null}",
        "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[]}}]}",  //  general
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"th\\u0072ee\"}}]}",
        "\"choices\":[],\"choices\":[]}",  //  twice: the general reader's
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"four\"}}],}",  //  not JSON
        "}",  //  not JSON either
        "\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":4}}",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"five\"}}]}"};
    const bool took[] = {true, true, false, false, false, false, false, true, true};
    for (size_t i = 0; i < sizeof stream / sizeof stream[0]; i++) {
        char chunk[512];
        snprintf (chunk, sizeof chunk, "%s%s", head, stream[i]);
        int rc = -2;
        assert (llm_openai_chunk_read (parser, chunk, strlen (chunk), &rc) == took[i]);
        assert (!took[i] || rc == 0);
        if (i == 0)  //  the beginning kept: up to the key, spaces included
            assert (parser->openai_prefix_size == strlen (head));
    }
    //  A chunk that begins otherwise is scanned whole, and its beginning kept
    const char *other = "{\"id\":\"c2\",\"choices\":[{\"delta\":{\"content\":\"six\"}}]}";
    int rc = -2;
    assert (llm_openai_chunk_read (parser, other, strlen (other), &rc) && rc == 0);
    assert (parser->openai_prefix_size == strlen ("{\"id\":\"c2\","));
    //  None kept when a key that matters comes first
    const char *usage_first = "{\"usage\":null,\"choices\":[]}";
    assert (llm_openai_chunk_read (parser, usage_first, strlen (usage_first), &rc));
    assert (parser->openai_prefix_size == 0 && !parser->openai_prefix);
    llm_parser_emit_done (parser, NULL);
    assert (streq (log.log, "delta one\ndelta two\ndelta five\ndelta six\n"
                            "usage 3 4\ndone stop\n"));
    llm_parser_destroy (&parser);
    //  @end
    printf ("OK\n");
}
