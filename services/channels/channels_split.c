/*  channels_split: replies cut at a platform's length limit (see the header).  */
#include "channels_split.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
channels_split_limit (const char *platform, size_t *limit, channels_count_t *count)
{
    static const struct {
        const char *platform;
        size_t limit;
        channels_count_t count;
    } table[] = {
        {"whatsapp", 4096, CHANNELS_COUNT_CHARACTERS},
        {"messenger", 2000, CHANNELS_COUNT_CHARACTERS},
        {"instagram", 1000, CHANNELS_COUNT_BYTES},
        {"telegram", 4096, CHANNELS_COUNT_UTF16},
        {"slack", 4000, CHANNELS_COUNT_CHARACTERS},
    };
    for (size_t i = 0; platform && i < sizeof table / sizeof table[0]; i++)
        if (strcmp (platform, table[i].platform) == 0) {
            *limit = table[i].limit;
            *count = table[i].count;
            return true;
        }
    return false;
}

//  Length in bytes of the UTF-8 sequence at p (1 for a stray byte), and its
//  units as count counts them.
static size_t
s_sequence (const unsigned char *p, channels_count_t count, size_t *units)
{
    size_t length = 1;
    if (p[0] >= 0xF0 && p[0] < 0xF8)
        length = 4;
    else if (p[0] >= 0xE0 && p[0] < 0xF0)
        length = 3;
    else if (p[0] >= 0xC0 && p[0] < 0xE0)
        length = 2;
    //  A sequence cut short by the end or a bad continuation is one byte
    for (size_t i = 1; i < length; i++)
        if ((p[i] & 0xC0) != 0x80) {
            length = 1;
            break;
        }
    *units = count == CHANNELS_COUNT_BYTES                  ? length
             : count == CHANNELS_COUNT_UTF16 && length == 4 ? 2
                                                            : 1;
    return length;
}

static char *
s_copy (const char *from, size_t size)
{
    char *part = malloc (size + 1);
    assert (part);
    memcpy (part, from, size);
    part[size] = 0;
    return part;
}

size_t
channels_split (const char *text, size_t limit, channels_count_t count, char ***parts_p)
{
    assert (limit >= 4);
    size_t capacity = 4, n = 0;
    char **parts = malloc (capacity * sizeof (char *));
    assert (parts);
    const unsigned char *at = (const unsigned char *) (text ? text : "");
    do {
        //  Walk to the limit, remembering the last line break and space
        const unsigned char *p = at, *newline = NULL, *space = NULL;
        size_t used = 0;
        while (*p) {
            size_t units;
            size_t length = s_sequence (p, count, &units);
            if (used + units > limit)
                break;
            used += units;
            if (*p == '\n' && used > limit / 2)
                newline = p;
            else if (*p == ' ' && used > limit / 2)
                space = p;
            p += length;
        }
        const unsigned char *end = p, *next = p;
        if (*p) {
            const unsigned char *cut = newline ? newline : space;
            if (cut) {
                end = cut;
                next = cut + 1;
            }
        }
        if (n == capacity) {
            capacity *= 2;
            parts = realloc (parts, capacity * sizeof (char *));
            assert (parts);
        }
        parts[n++] = s_copy ((const char *) at, (size_t) (end - at));
        at = next;
    } while (*at);
    *parts_p = parts;
    return n;
}

void
channels_split_free (char ***parts_p, size_t count)
{
    if (!*parts_p)
        return;
    for (size_t i = 0; i < count; i++)
        free ((*parts_p)[i]);
    free (*parts_p);
    *parts_p = NULL;
}

void
channels_split_test (bool verbose)
{
    (void) verbose;
    printf (" * channels_split: ");
    size_t limit;
    channels_count_t count;
    assert (channels_split_limit ("telegram", &limit, &count) && limit == 4096
            && count == CHANNELS_COUNT_UTF16);
    assert (!channels_split_limit ("email", &limit, &count));
    char **parts;
    //  Short and empty texts are one part
    size_t n = channels_split ("hello", 10, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 1 && strcmp (parts[0], "hello") == 0);
    channels_split_free (&parts, n);
    n = channels_split ("", 10, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 1 && strcmp (parts[0], "") == 0);
    channels_split_free (&parts, n);
    //  At the last space in the second half
    n = channels_split ("aaaa bbbb cccc dddd", 12, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 2 && strcmp (parts[0], "aaaa bbbb") == 0
            && strcmp (parts[1], "cccc dddd") == 0);
    channels_split_free (&parts, n);
    //  A line break wins over a later space
    n = channels_split ("aaaaaaa\nbb cc dd", 12, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 2 && strcmp (parts[0], "aaaaaaa") == 0
            && strcmp (parts[1], "bb cc dd") == 0);
    channels_split_free (&parts, n);
    //  No break: hard cut, and never inside a character
    n = channels_split ("abcdefghij", 4, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 3 && strcmp (parts[2], "ij") == 0);
    channels_split_free (&parts, n);
    const char *accents = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";  //  5 x e-acute
    n = channels_split (accents, 4, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 2 && strlen (parts[0]) == 8 && strlen (parts[1]) == 2);
    channels_split_free (&parts, n);
    n = channels_split (accents, 5, CHANNELS_COUNT_BYTES, &parts);
    assert (n == 3 && strlen (parts[0]) == 4 && strlen (parts[2]) == 2);
    channels_split_free (&parts, n);
    //  An emoji is two UTF-16 units
    const char *emoji = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80";
    n = channels_split (emoji, 4, CHANNELS_COUNT_UTF16, &parts);
    assert (n == 2 && strlen (parts[0]) == 8 && strlen (parts[1]) == 4);
    channels_split_free (&parts, n);
    n = channels_split (emoji, 4, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 1);
    channels_split_free (&parts, n);
    //  A long text: every part within the limit, nothing but breaks lost
    char text[10001];
    for (int i = 0; i < 10000; i++)
        text[i] = i % 7 == 6 ? ' ' : 'x';
    text[10000] = 0;
    n = channels_split (text, 4096, CHANNELS_COUNT_CHARACTERS, &parts);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert (strlen (parts[i]) <= 4096);
        total += strlen (parts[i]);
    }
    assert (n == 3 && total == 10000 - (n - 1));
    channels_split_free (&parts, n);
    //  Stray bytes count as one each
    n = channels_split ("\xff\xfe\xfd\xfc\xfb", 4, CHANNELS_COUNT_CHARACTERS, &parts);
    assert (n == 2);
    channels_split_free (&parts, n);
    printf ("OK\n");
}
