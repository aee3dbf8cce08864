/*  chorus-integrations: the integrations service as a process.                                     */
#include "integrations_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main (argc, argv, "integrations", integrations_server_actor);
}
