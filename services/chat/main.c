/*  chorus-chat: the chat service as a process.                                     */
#include "chat_server.h"
#include "service_main.h"

int
main (int argc, char **argv)
{
    return service_main_ex (argc, argv, "chat", chat_server_actor, chat_server_options,
                            chat_server_option_count);
}
