/*  bus_echo: the echo service, a real replica that answers "echo" requests (Echo:
    `parts` partial replies then a final one, each carrying the data back, after
    delay_ms), "ping" and "stats" (EchoStats). The bus tests, chorus-bus-echo and the benchmarks use it
    to exercise the broker without any business logic in the way.

        bus_echo_config_t config = {.brokers = "tcp://127.0.0.1:7100",
                                    .service = "echo", .credit = 8};
        zactor_t *echo = zactor_new (bus_echo_actor, &config);                    */
#ifndef BUS_ECHO_H_INCLUDED
#define BUS_ECHO_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *brokers;    //  broker endpoints, comma-separated
    const char *service;    //  service name to serve
    uint32_t credit;        //  requests held at once
    const char *replica;    //  replica id (NULL: host:pid)
    int heartbeat_ms;       //  0: default
    int liveness;           //  0: default
    const char *log_level;  //  log level name
} bus_echo_config_t;

//  Actor. Pipe commands: "STATS" -> "88" (requests handled, cancels seen);
//  "DRAIN" -> stops taking work, answers "i" 0 once drained; "$TERM".
void bus_echo_actor (zsock_t *pipe, void *args);

#endif
