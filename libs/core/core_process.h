/*  core_process: process-wide settings a Chorus program applies once at the
    start of main, before it starts threads (broker, edge, each service; not
    chorusd, whose many allocating threads want glibc's arenas).               */
#ifndef CORE_PROCESS_H_INCLUDED
#define CORE_PROCESS_H_INCLUDED

#include <stdbool.h>

//  Most glibc malloc arenas a process uses unless MALLOC_ARENA_MAX says otherwise.
//  glibc's default (8 per core) gives every thread that allocates (ZeroMQ's I/O
//  threads, database workers) an arena of its own, and memory freed on one
//  thread then stays held in another's: the streams benchmark's agents process
//  held 48.6 KiB per open stream with the default, 28.7 KiB with two arenas.
#define CORE_PROCESS_ARENAS 2

//  glibc gives a heap's top back as soon as 128 KiB of it are free, and a reply
//  later grows it again (mprotect, then page faults on the new pages): chat
//  spent a sixth of its CPU so while replies streamed. Every arena now keeps up
//  to CORE_PROCESS_TRIM free; the main arena grows by CORE_PROCESS_TOP_PAD more
//  than asked (a thread's heap still grows page by page: glibc's grow_heap takes
//  no pad); blocks from CORE_PROCESS_MMAP up are mapped on their own (setting
//  the other two fixes that threshold, which glibc would otherwise move).
#define CORE_PROCESS_TOP_PAD (1 << 20)
#define CORE_PROCESS_TRIM (2 << 20)
#define CORE_PROCESS_MMAP (1 << 20)

//  Apply the settings: the malloc arena limit and the heap sizes above. Returns
//  the arena limit set, or 0 when MALLOC_ARENA_MAX is in the environment (glibc
//  has read it already) or the allocator refuses (AddressSanitizer's).
int core_process_tune (void);

void core_process_test (bool verbose);

#endif
