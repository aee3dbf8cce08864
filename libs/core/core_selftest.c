/*  core_selftest: command-line runner for module selftests.                       */
#include "core_selftest.h"

#include <stdio.h>
#include <string.h>

int
core_selftest_main (int argc, char **argv, const core_selftest_t *tests, size_t count)
{
    bool verbose = false;
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "-v"))
            verbose = true;
        else
            named++;
    }
    setvbuf (stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "-v"))
            continue;
        size_t t;
        for (t = 0; t < count; t++)
            if (!strcmp (argv[i], tests[t].name))
                break;
        if (t == count) {
            fprintf (stderr, "unknown test '%s'; known:", argv[i]);
            for (t = 0; t < count; t++)
                fprintf (stderr, " %s", tests[t].name);
            fprintf (stderr, "\n");
            return 2;
        }
        tests[t].test (verbose);
    }
    if (named == 0)
        for (size_t t = 0; t < count; t++)
            tests[t].test (verbose);
    return 0;
}
