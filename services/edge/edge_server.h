/*  edge_server: the edge actor. One thread runs libwebsockets and the bus client
    together: the ZeroMQ sockets' ZMQ_FDs (the bus client's and the actor pipe's)
    are adopted into lws as raw file descriptors, bus_client_process runs when one
    is readable and after every send, and timers drive bus_client_tick, SSE
    heartbeats, readiness polls and Redis. lws runs on a libev loop of ours
    (epoll: a pass costs what is ready, not every open connection, as lws's own
    poll() loop did), whose timers these are. Used by services/edge/main.c
    (chorus-edge) and chorusd.

        core_config_t *config = core_config_new (edge_server_options,
                                                 edge_server_option_count, &error);
        zactor_t *edge = zactor_new (edge_server_actor, config);
        zstr_send (edge, "PORT");
        int port;  zsock_recv (edge, "i", &port);      //  -1: could not listen
        ...
        zactor_destroy (&edge);     //  $TERM: refuse new work, finish, stop

    The actor reads the configuration before it signals; the caller may destroy it
    afterwards.                                                                   */
#ifndef EDGE_SERVER_H_INCLUDED
#define EDGE_SERVER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "core_config.h"

//  The edge's own options (the common ones come from core_config).
extern const core_config_option_t edge_server_options[];
extern const size_t edge_server_option_count;

//  The actor; args is a core_config_t * built with edge_server_options.
//  Open files a process that is only the edge keeps beyond its connections
//  (the bus and Redis sockets, ZeroMQ's own, logs).
#define EDGE_SERVER_FD_RESERVE 256

//  For a process that runs nothing but the edge, before it starts: set the soft
//  open-file limit to max_connections plus EDGE_SERVER_FD_RESERVE (at most the
//  hard limit), which lets lws look descriptors up by index. Returns the limit,
//  or -1.
int edge_server_fit_fd_limit (int max_connections);

void edge_server_actor (zsock_t *pipe, void *args);

void edge_server_test (bool verbose);

#endif
