/*  fuzz_driver: a main() for libFuzzer-style targets (LLVMFuzzerTestOneInput) so
    every fuzz target also builds and runs as a plain test with any compiler. It
    runs each file of the corpus directories (or files) named on the command line,
    then a fixed number of pseudo-random and mutated inputs from a fixed seed, so a
    CTest run is deterministic. A crashing input is written to crash-<target>.bin
    in the current directory. Options: -runs=N (default 20000, or the environment
    variable CHORUS_FUZZ_RUNS), -seed=N, -max_len=N (default 4096), -v.           */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__ ((weak));
void __sanitizer_set_death_callback (void (*callback) (void)) __attribute__ ((weak));

#define S_MAX_FILE (1024 * 1024)  //  corpus files are cut at this size

typedef struct {
    uint8_t *data;  //  bytes of a corpus file
    size_t size;    //  their length
} s_input_t;

//  The input being run, for the crash handlers (the only mutable statics: a
//  signal handler has no other way to find it).
static const uint8_t *s_current;
static size_t s_current_size;
static char s_crash_path[512];

//  Write the input being run to the crash file; async-signal-safe.
static void
s_save_current (void)
{
    if (!s_current)
        return;  //  the crash is not in a target run
    int fd = open (s_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    size_t done = 0;
    while (done < s_current_size) {
        ssize_t n = write (fd, s_current + done, s_current_size - done);
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    close (fd);
    static const char note[] = "fuzz_driver: crashing input saved to ";
    ssize_t rc = write (2, note, sizeof note - 1);
    rc = write (2, s_crash_path, strlen (s_crash_path));
    rc = write (2, "\n", 1);
    (void) rc;
}

static void
s_on_signal (int sig)
{
    s_save_current ();
    signal (sig, SIG_DFL);
    raise (sig);
}

//  xorshift64*: small, fast, and the same everywhere.
static uint64_t
s_rand (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t
s_below (uint64_t *state, size_t n)
{
    return n ? (size_t) (s_rand (state) % n) : 0;
}

//  Run one input from an exactly-sized heap copy, so overreads are caught.
static void
s_run (const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc (size ? size : 1);
    if (!copy) {
        fprintf (stderr, "fuzz_driver: out of memory\n");
        exit (1);
    }
    if (size)
        memcpy (copy, data, size);
    s_current = copy;
    s_current_size = size;
    LLVMFuzzerTestOneInput (copy, size);
    s_current = NULL;
    s_current_size = 0;
    free (copy);
}

//  Read a file into a new input; false when it cannot be read.
static bool
s_load_file (const char *path, s_input_t *input)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return false;
    input->data = malloc (S_MAX_FILE);
    if (!input->data) {
        fclose (file);
        return false;
    }
    input->size = fread (input->data, 1, S_MAX_FILE, file);
    fclose (file);
    return true;
}

//  Add a file, or every regular file of a directory, to the corpus.
static void
s_load_path (const char *path, s_input_t **corpus, size_t *count, size_t *capacity)
{
    struct stat st;
    if (stat (path, &st)) {
        fprintf (stderr, "fuzz_driver: cannot read %s: %s\n", path, strerror (errno));
        exit (2);
    }
    char **names = NULL;
    size_t n_names = 0;
    if (S_ISDIR (st.st_mode)) {
        DIR *dir = opendir (path);
        if (!dir) {
            fprintf (stderr, "fuzz_driver: cannot open %s\n", path);
            exit (2);
        }
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (entry->d_name[0] == '.')
                continue;
            char full[4096];
            int len = snprintf (full, sizeof full, "%s/%s", path, entry->d_name);
            if (len < 0 || (size_t) len >= sizeof full)
                continue;
            if (stat (full, &st) || !S_ISREG (st.st_mode))
                continue;
            char **grown = realloc (names, (n_names + 1) * sizeof *names);
            if (!grown)
                break;
            names = grown;
            names[n_names++] = strdup (full);
        }
        closedir (dir);
        //  Same order on every file system
        for (size_t i = 1; i < n_names; i++)
            for (size_t j = i; j > 0 && strcmp (names[j - 1], names[j]) > 0; j--) {
                char *swap = names[j];
                names[j] = names[j - 1];
                names[j - 1] = swap;
            }
    }
    else {
        names = malloc (sizeof *names);
        if (names)
            names[n_names++] = strdup (path);
    }
    for (size_t i = 0; i < n_names; i++) {
        if (*count == *capacity) {
            size_t bigger = *capacity ? *capacity * 2 : 16;
            s_input_t *grown = realloc (*corpus, bigger * sizeof **corpus);
            if (!grown)
                exit (1);
            *corpus = grown;
            *capacity = bigger;
        }
        if (names[i] && s_load_file (names[i], &(*corpus)[*count]))
            (*count)++;
        free (names[i]);
    }
    free (names);
}

//  Bytes that often matter to parsers: msgpack and JSON type markers, limits.
static const uint8_t s_interesting[] = {
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
    0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb,
    0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, '{',  '}',  '[',  ']',  '"',  '\\', ':',
    ',',  '-',  '.',  'e',  '0',  '9',  'n',  't',  'f',  'u'};

//  Build one input into buf (capacity max_len) and return its length.
static size_t
s_generate (uint64_t *state, const s_input_t *corpus, size_t count, uint8_t *buf,
            size_t max_len)
{
    size_t size;
    if (count == 0 || s_below (state, 8) == 0) {
        //  Pure noise, often short, biased toward interesting bytes
        size = s_below (state, s_below (state, 4) == 0 ? max_len + 1 : 65);
        for (size_t i = 0; i < size; i++)
            buf[i] = s_below (state, 2)
                         ? (uint8_t) s_rand (state)
                         : s_interesting[s_below (state, sizeof s_interesting)];
        return size;
    }
    const s_input_t *base = &corpus[s_below (state, count)];
    size = base->size < max_len ? base->size : max_len;
    memcpy (buf, base->data, size);
    size_t mutations = 1 + s_below (state, 4);
    for (size_t m = 0; m < mutations; m++) {
        size_t at = s_below (state, size + 1);
        switch (s_below (state, 9)) {
            case 0:  //  flip a bit
                if (size)
                    buf[s_below (state, size)] ^= (uint8_t) (1u << s_below (state, 8));
                break;
            case 1:  //  random byte
                if (size)
                    buf[s_below (state, size)] = (uint8_t) s_rand (state);
                break;
            case 2:  //  interesting byte
                if (size)
                    buf[s_below (state, size)] =
                        s_interesting[s_below (state, sizeof s_interesting)];
                break;
            case 3:  //  insert a byte
                if (size < max_len) {
                    memmove (buf + at + 1, buf + at, size - at);
                    buf[at] = s_interesting[s_below (state, sizeof s_interesting)];
                    size++;
                }
                break;
            case 4: {  //  delete a run
                size_t len = s_below (state, size - at + 1);
                memmove (buf + at, buf + at + len, size - at - len);
                size -= len;
                break;
            }
            case 5:  //  truncate
                size = at;
                break;
            case 6: {  //  duplicate a run in place
                size_t len = s_below (state, size - at + 1);
                if (len && size + len <= max_len) {
                    memmove (buf + at + len, buf + at, size - at);
                    size += len;
                }
                break;
            }
            case 7: {  //  splice in a run of another input
                const s_input_t *other = &corpus[s_below (state, count)];
                size_t from = s_below (state, other->size + 1);
                size_t len = s_below (state, other->size - from + 1);
                if (len > max_len - at)
                    len = max_len - at;
                memcpy (buf + at, other->data + from, len);
                if (at + len > size)
                    size = at + len;
                break;
            }
            default:  //  big-endian 0xff.. / 0x7f.. run, as a length or count
                if (size >= 4) {
                    size_t pos = s_below (state, size - 3);
                    uint8_t fill = s_below (state, 2) ? 0xff : 0x7f;
                    buf[pos] = fill;
                    buf[pos + 1] = buf[pos + 2] = buf[pos + 3] = 0xff;
                }
                break;
        }
    }
    return size;
}

//  Parse "-name=value" as an unsigned number; false when arg is not that option.
static bool
s_option (const char *arg, const char *name, uint64_t *value)
{
    size_t len = strlen (name);
    if (strncmp (arg, name, len) || arg[len] != '=')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (arg + len + 1, &end, 0);
    if (errno || *end || end == arg + len + 1) {
        fprintf (stderr, "fuzz_driver: bad value in %s\n", arg);
        exit (2);
    }
    *value = v;
    return true;
}

int
main (int argc, char **argv)
{
    uint64_t runs = 20000, seed = 0x5eed, max_len = 4096, verbose = 0;
    const char *env = getenv ("CHORUS_FUZZ_RUNS");
    if (env) {
        char *end;
        unsigned long long v = strtoull (env, &end, 10);
        if (*end == 0 && end != env)
            runs = v;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize (&argc, &argv);
    const char *name = strrchr (argv[0], '/') ? strrchr (argv[0], '/') + 1 : argv[0];
    snprintf (s_crash_path, sizeof s_crash_path, "crash-%s.bin", name);

    s_input_t *corpus = NULL;
    size_t count = 0, capacity = 0;
    for (int i = 1; i < argc; i++) {
        if (s_option (argv[i], "-runs", &runs) || s_option (argv[i], "-seed", &seed)
            || s_option (argv[i], "-max_len", &max_len))
            continue;
        if (!strcmp (argv[i], "-v")) {
            verbose = 1;
            continue;
        }
        if (argv[i][0] == '-') {
            fprintf (stderr,
                     "usage: %s [-runs=N] [-seed=N] [-max_len=N] [-v] "
                     "[corpus dir or file]...\n",
                     name);
            return 2;
        }
        s_load_path (argv[i], &corpus, &count, &capacity);
    }
    if (max_len == 0 || max_len > S_MAX_FILE)
        max_len = S_MAX_FILE;
    if (seed == 0)
        seed = 0x5eed;  //  xorshift needs a non-zero state

    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback (s_save_current);
    int signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        signal (signals[i], s_on_signal);

    for (size_t i = 0; i < count; i++)
        s_run (corpus[i].data, corpus[i].size);
    uint8_t *buf = malloc (max_len + 1);
    if (!buf)
        return 1;
    uint64_t state = seed;
    for (uint64_t r = 0; r < runs; r++) {
        size_t size = s_generate (&state, corpus, count, buf, max_len);
        if (verbose)
            fprintf (stderr, "run %" PRIu64 ": %zu bytes\n", r, size);
        s_run (buf, size);
    }
    printf ("%s: %zu corpus inputs and %" PRIu64 " generated inputs (seed %" PRIu64
            ") passed\n",
            name, count, runs, seed);
    free (buf);
    for (size_t i = 0; i < count; i++)
        free (corpus[i].data);
    free (corpus);
    return 0;
}
