/*  chorus-auth: the auth service as a process.                                     */
#include "auth_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main (argc, argv, "auth", auth_server_actor);
}
