/*  chorus-agents: the agents service as a process.                                     */
#include "agents_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main_ex (argc, argv, "agents", agents_server_actor,
                            agents_server_options, agents_server_option_count);
}
