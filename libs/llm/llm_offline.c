/*  llm_offline: the answer of the built-in offline provider, and how it is cut
    into pieces for streaming.                                                  */
#include "llm_offline.h"
#include "llm_private.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_QUOTE 1200  //  bytes of one passage quoted

//  Append text to a growing string.
static void
s_append (char **out, const char *text)
{
    char *joined = zsys_sprintf ("%s%s", *out, text);
    assert (joined);
    zstr_free (out);
    *out = joined;
}

//  Bytes of text to quote: all of it up to S_MAX_QUOTE, else cut at a UTF-8
//  boundary.
static size_t
s_quote_size (const char *text)
{
    size_t size = strlen (text);
    if (size <= S_MAX_QUOTE)
        return size;
    size = S_MAX_QUOTE;
    while (size && ((unsigned char) text[size] & 0xC0) == 0x80)
        size--;
    return size;
}

char *
llm_offline_answer (llm_request_t *request)
{
    assert (request);
    if (request->passage_count == 0) {
        char *notice = strdup (LLM_OFFLINE_NOTICE);
        assert (notice);
        return notice;
    }
    char *out = zsys_sprintf ("%s", "No language model is configured for this agent yet, "
                                    "so here is what the knowledge base says:\n");
    assert (out);
    for (size_t i = 0; i < request->passage_count; i++) {
        llm_passage_t *p = &request->passages[i];
        char *quote = zsys_sprintf ("\n[%zu] %s\n> ", i + 1,
                                    *p->title ? p->title : "Untitled passage");
        assert (quote);
        s_append (&out, quote);
        zstr_free (&quote);
        //  Quote line by line so that every line keeps its "> "
        size_t size = s_quote_size (p->text);
        char *text = malloc (size + 1);
        assert (text);
        memcpy (text, p->text, size);
        text[size] = 0;
        for (char *line = text, *next; line; line = next) {
            next = strchr (line, '\n');
            if (next)
                *next++ = 0;
            s_append (&out, line);
            if (next)
                s_append (&out, "\n> ");
        }
        if (size < strlen (p->text))
            s_append (&out, " ...");
        free (text);
        if (*p->source) {
            char *source = zsys_sprintf ("\nSource: %s", p->source);
            assert (source);
            s_append (&out, source);
            zstr_free (&source);
        }
        s_append (&out, "\n");
    }
    char *copy = strdup (out);
    assert (copy);
    zstr_free (&out);
    return copy;
}

size_t
llm_offline_piece (const char *text, size_t offset, size_t max)
{
    assert (text);
    size_t size = strlen (text);
    if (offset >= size)
        return 0;
    size_t left = size - offset;
    if (left <= max)
        return left;
    size_t cut = max;
    //  End after a space near the limit when there is one
    for (size_t i = max; i > max / 2; i--)
        if (text[offset + i - 1] == ' ') {
            cut = i;
            break;
        }
    while (cut > 1 && ((unsigned char) text[offset + cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

void
llm_offline_test (bool verbose)
{
    printf (" * llm_offline: ");
    //  @selftest
    llm_request_t *request = llm_request_new (LLM_PROVIDER_OFFLINE);
    char *answer = llm_offline_answer (request);
    assert (strcmp (answer, LLM_OFFLINE_NOTICE) == 0);
    //  Pieces cover the text exactly, at spaces, never splitting UTF-8
    size_t offset = 0, pieces = 0;
    char rebuilt[512] = "";
    while (true) {
        size_t n = llm_offline_piece (answer, offset, 24);
        if (!n)
            break;
        assert (n <= 24);
        strncat (rebuilt, answer + offset, n);
        offset += n;
        pieces++;
    }
    assert (strcmp (rebuilt, answer) == 0 && pieces > 3);
    free (answer);
    const char *accents = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    assert (llm_offline_piece (accents, 0, 3) == 2);
    assert (llm_offline_piece (accents, 8, 3) == 0);

    int rc = llm_request_add_passage (request, "Opening hours",
                                      "We open at 9.\nWe close at 5.", "kb://faq/hours");
    rc |= llm_request_add_passage (request, NULL, "Parking is free.", NULL);
    assert (rc == 0);
    answer = llm_offline_answer (request);
    if (verbose)
        printf ("\n%s", answer);
    assert (strstr (answer, "[1] Opening hours\n> We open at 9.\n> We close at 5.\n"
                            "Source: kb://faq/hours\n"));
    assert (strstr (answer, "[2] Untitled passage\n> Parking is free.\n"));
    free (answer);
    llm_request_destroy (&request);
    //  @end
    printf ("OK\n");
}
