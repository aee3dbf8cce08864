/*  chorus-auth: the auth service as a process.                                     */
#include "auth_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main_ex (argc, argv, "auth", auth_server_actor, auth_server_options,
                            auth_server_option_count);
}
