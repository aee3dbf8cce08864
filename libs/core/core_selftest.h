/*  core_selftest: the runner every library's and service's selftest binary uses.
    `<runner> <module>` runs one module's <module>_test; `<runner>` runs them all;
    `-v` makes tests verbose. CMake registers one CTest per module.                */
#ifndef CORE_SELFTEST_H_INCLUDED
#define CORE_SELFTEST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;             //  module name, e.g. "bus_broker"
    void (*test) (bool verbose);  //  its selftest
} core_selftest_t;

//  Run the tests named on the command line (all when none); returns the exit code.
int core_selftest_main (int argc, char **argv, const core_selftest_t *tests,
                        size_t count);

#endif
