/*  chorus-rag: the rag service as a process.                                     */
#include "rag_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main (argc, argv, "rag", rag_server_actor);
}
