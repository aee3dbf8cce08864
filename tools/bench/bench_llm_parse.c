/*  bench-llm-parse: how fast agents reads an OpenAI stream, against jansson in the
    same run. A stream of 200 chat.completion.chunk events, as bench-llm-upstream
    sends them, goes through llm_parser in 4 KiB pieces (as curl hands them over),
    read by llm_openai_chunk (the reader agents uses) and by the general reader that
    builds a jansson tree of every chunk (the reference, the same events: the fuzz
    target compares them). One core, no I/O. Prints
        figure parse_openai_chunk_ns <ns per chunk>      SSE split, read, delivery
        figure parse_openai_general_ns <ns per chunk>    the same through jansson
        figure parse_openai_vs_general <ratio> x
    Options: --rounds N (streams per reader and pass, default 2000), --passes N (the
    best of N passes is kept, default 5).                                         */
#include "llm_parser.h"
#include "llm_private.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CHUNKS 200  //  chunks in the stream
#define S_PIECE 4096  //  bytes handed to the parser at once

typedef struct {
    long deltas;  //  DELTA events seen
    long ends;    //  DONE events seen
} s_count_t;

static int
s_on_event (const llm_event_t *event, void *arg)
{
    s_count_t *count = (s_count_t *) arg;
    if (event->type == LLM_EVENT_DELTA)
        count->deltas++;
    else if (event->type == LLM_EVENT_DONE)
        count->ends++;
    return 0;
}

static double
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

//  The body of one stream: the chunks bench-llm-upstream writes, then [DONE].
static char *
s_stream (size_t *size_p)
{
    size_t room = S_CHUNKS * 400 + 64, size = 0;
    char *body = malloc (room);
    assert (body);
    for (int i = 1; i <= S_CHUNKS; i++)
        size += (size_t) snprintf (
            body + size, room - size,
            "data: {\"id\":\"chatcmpl-bench000000000000001\",\"object\":"
            "\"chat.completion.chunk\",\"created\":1765050000,\"model\":\"bench-model\","
            "\"system_fingerprint\":\"fp_bench\",\"choices\":[{\"index\":0,\"delta\":"
            "{\"content\":\" t%d@1765050000%06d\"},\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n",
            i, i * 7919 % 1000000);
    size += (size_t) snprintf (body + size, room - size, "data: [DONE]\n\n");
    *size_p = size;
    return body;
}

//  ns per chunk over rounds streams, the best of passes.
static double
s_measure (const char *body, size_t size, bool general, long rounds, long passes)
{
    double best = 0;
    for (long pass = 0; pass < passes; pass++) {
        s_count_t count = {0, 0};
        double started = s_now_ns ();
        for (long r = 0; r < rounds; r++) {
            llm_parser_t *parser = llm_parser_new (LLM_PROVIDER_OPENAI, 0, s_on_event,
                                                   &count);
            assert (parser);
            parser->general_json = general;
            //  the last piece ends the stream ([DONE]): the parser says so
            for (size_t at = 0; at < size; at += S_PIECE) {
                size_t n = size - at < S_PIECE ? size - at : S_PIECE;
                if (llm_parser_feed (parser, body + at, n))
                    break;
            }
            llm_parser_finish (parser);
            assert (llm_parser_ended (parser));
            llm_parser_destroy (&parser);
        }
        double ns = (s_now_ns () - started) / ((double) rounds * S_CHUNKS);
        //  every chunk read, every stream ended: the readers did the work
        assert (count.deltas == rounds * S_CHUNKS && count.ends == rounds);
        if (pass == 0 || ns < best)
            best = ns;
    }
    return best;
}

int
main (int argc, char **argv)
{
    long rounds = 2000, passes = 5;
    bool bad = false;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL;
        long value = i + 1 < argc ? strtol (argv[i + 1], &end, 10) : 0;
        bad = bad || !end || *end || value < 1 || value > 1000000;
        if (strcmp (argv[i], "--rounds") == 0)
            rounds = value;
        else if (strcmp (argv[i], "--passes") == 0)
            passes = value;
        else
            bad = true;
    }
    if (bad) {
        fprintf (stderr, "usage: bench-llm-parse [--rounds N] [--passes N]\n");
        return 2;
    }
    size_t size = 0;
    char *body = s_stream (&size);
    double chunk = s_measure (body, size, false, rounds, passes);
    double general = s_measure (body, size, true, rounds, passes);
    printf ("figure parse_openai_chunk_ns %.1f ns\n", chunk);
    printf ("figure parse_openai_general_ns %.1f ns\n", general);
    printf ("figure parse_openai_vs_general %.3f x\n", chunk / general);
    free (body);
    return 0;
}
