/*  core_process: process-wide settings (see the header).                        */
#include "core_process.h"

#include <assert.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int
core_process_tune (void)
{
    if (getenv ("MALLOC_ARENA_MAX"))
        return 0;
    int rc = mallopt (M_ARENA_MAX, CORE_PROCESS_ARENAS);
    if (rc == 1) {
        //  See the header: keep free memory, grow the main arena in steps
        mallopt (M_TOP_PAD, CORE_PROCESS_TOP_PAD);
        mallopt (M_TRIM_THRESHOLD, CORE_PROCESS_TRIM);
        mallopt (M_MMAP_THRESHOLD, CORE_PROCESS_MMAP);
    }
    return rc == 1 ? CORE_PROCESS_ARENAS : 0;
}

//  ---------------------------------------------------------------------------
//  Selftest

void
core_process_test (bool verbose)
{
    printf (" * core_process: ");
    //  @selftest
    int arenas = core_process_tune ();
    if (verbose)
        printf ("arenas %d ", arenas);
#if defined(__SANITIZE_ADDRESS__)
    assert (arenas == 0);  //  ASan's allocator takes no mallopt
#else
    assert (arenas == (getenv ("MALLOC_ARENA_MAX") ? 0 : CORE_PROCESS_ARENAS));
#endif
    //  Idempotent
    assert (core_process_tune () == arenas);
    void *p = malloc (100);
    assert (p);
    free (p);
    //  @end
    printf ("OK\n");
}
