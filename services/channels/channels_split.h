/*  channels_split: cut a reply into parts a platform accepts. Each platform
    limits one message: WhatsApp 4096 characters, Messenger 2000, Telegram 4096
    UTF-16 code units, Slack 4000 (it truncates past 40000), Instagram 1000
    bytes. A part ends at the last line break, else the last space, in its
    second half, else where the limit falls (never inside a UTF-8 sequence);
    the break itself is dropped.                                              */
#ifndef CHANNELS_SPLIT_H_INCLUDED
#define CHANNELS_SPLIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  How a platform counts a message's length.
typedef enum {
    CHANNELS_COUNT_CHARACTERS,  //  Unicode code points
    CHANNELS_COUNT_UTF16,       //  UTF-16 code units (past U+FFFF: two)
    CHANNELS_COUNT_BYTES        //  UTF-8 bytes
} channels_count_t;

//  The limit and the way of counting of platform; false for an unknown one.
bool channels_split_limit (const char *platform, size_t *limit, channels_count_t *count);

//  Split text into parts of at most limit units: returns how many (at least
//  one, "" for an empty text) in a new array of new strings (*parts_p, freed
//  with channels_split_free). The text is assumed to be UTF-8.
size_t channels_split (const char *text, size_t limit, channels_count_t count,
                       char ***parts_p);
void channels_split_free (char ***parts_p, size_t count);

void channels_split_test (bool verbose);

#endif
