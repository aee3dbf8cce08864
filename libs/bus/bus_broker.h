/*  bus_broker: the broker actor. Routes requests to services by name over one ROUTER
    socket (credit-based, least-loaded replica first), streams replies back, enforces
    deadlines, cancels, notices dead replicas (heartbeats and disconnects), answers
    its own "broker" service (status, ping), and proxies events XSUB -> XPUB.
    Used by services/broker (a process) and chorusd (all in one).

        zactor_t *broker = zactor_new (bus_broker_actor, &config);
        zstr_sendx (broker, "BIND", "tcp://127.0.0.1:7100", NULL);
        int port;  zsock_recv (broker, "i", &port);      //  -1 on failure
        ...
        zactor_destroy (&broker);

    BIND binds the request endpoint and the two event endpoints beside it (tcp: the
    next two ports; "tcp://host:*" picks three consecutive free ports; ipc and
    inproc: the endpoint with -events-in and -events-out). The sockets may be bound
    to several endpoints: bus_broker_bind_all binds each of a list.               */
#ifndef BUS_BROKER_H_INCLUDED
#define BUS_BROKER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *id;         //  broker id in status and logs (NULL: host:pid)
    const char *log_level;  //  log level name
    int heartbeat_ms;       //  heartbeat interval (0: 500)
    int liveness;           //  missed heartbeats before a peer is dead (0: 4)
    uint32_t queue_max;   //  requests waiting per service before "overloaded" (0: 10000)
    int hwm;              //  socket high-water marks (0: 100000)
    int64_t max_message;  //  ZMQ_MAXMSGSIZE (0: 16 MiB)
} bus_broker_config_t;

//  The actor; args is a bus_broker_config_t * (copied before the actor signals).
void bus_broker_actor (zsock_t *pipe, void *args);

//  BIND each endpoint of a comma-separated list, in order: 0, or -1 when one could
//  not be bound (logged by the broker) or the list names none.
int bus_broker_bind_all (zactor_t *broker, const char *list);

void bus_broker_test (bool verbose);

#endif
