/*  chorus-workflows: the workflows service as a process.                                     */
#include "workflows_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main (argc, argv, "workflows", workflows_server_actor);
}
