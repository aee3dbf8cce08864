/*  chorus-analytics: the analytics service as a process.                                     */
#include "analytics_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main (argc, argv, "analytics", analytics_server_actor);
}
