/*  chorus-channels: the channels service as a process.                                 */
#include "channels_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main_ex (argc, argv, "channels", channels_server_actor,
                            channels_server_options, channels_server_option_count);
}
