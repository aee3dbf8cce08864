/*  bus_link: a DEALER to one broker plus its connection monitor (bus_link.h).     */
#include "bus_link.h"

#include <assert.h>

#include "bus_proto.h"

struct _bus_link_t {
    zsock_t *dealer;    //  the connection
    zsock_t *monitor;   //  its up/down events (not for inproc)
    char *endpoint;     //  broker request endpoint
    char proto[5];      //  protocol frame of what we send
    int64_t last_sent;  //  when we last sent anything (ms)
    int64_t last_recv;  //  when we last received anything (ms)
};

bus_link_t *
bus_link_new (const char *endpoint, const char *proto, core_log_t *log)
{
    bus_link_t *self = calloc (1, sizeof (bus_link_t));
    assert (self);
    self->endpoint = strdup (endpoint);
    snprintf (self->proto, sizeof self->proto, "%s", proto);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_sndhwm (self->dealer, 100000);
    zsock_set_rcvhwm (self->dealer, 100000);
    zsock_set_linger (self->dealer, 0);
    //  Nothing waits in a queue for a connection that is down
    zsock_set_immediate (self->dealer, 1);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 2000);
    if (strncmp (endpoint, "inproc://", 9) != 0) {
        //  tcp and ipc connect in the background: their handshakes are watched (an
        //  inproc peer is there at once). A unique name: an address can be reused
        //  while an old monitor still closes
        char monitor[80];
        zuuid_t *unique = zuuid_new ();
        snprintf (monitor, sizeof monitor, "inproc://bus-link-monitor-%s",
                  zuuid_str (unique));
        zuuid_destroy (&unique);
        int rc = zmq_socket_monitor (zsock_resolve (self->dealer), monitor,
                                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                                         | ZMQ_EVENT_DISCONNECTED);
        assert (rc == 0);
        self->monitor = zsock_new_pair (monitor);
        assert (self->monitor);
    }
    self->last_recv = bus_proto_now ();
    if (zsock_connect (self->dealer, "%s", endpoint) < 0 && log)
        core_log_error (log, NULL, "cannot connect to broker %s", endpoint);
    return self;
}

void
bus_link_destroy (bus_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_link_t *self = *self_p;
    if (self->monitor)
        zmq_socket_monitor (zsock_resolve (self->dealer), NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

int
bus_link_send (bus_link_t *self, uint8_t command, zmsg_t **args_p)
{
    zmsg_t *msg = args_p && *args_p ? *args_p : zmsg_new ();
    if (args_p)
        *args_p = NULL;
    zmsg_pushmem (msg, &command, 1);
    zmsg_pushstr (msg, self->proto);
    self->last_sent = bus_proto_now ();
    return bus_proto_send (&msg, self->dealer);
}

int
bus_link_sendv (bus_link_t *self, uint8_t command, const bus_part_t *args, size_t count)
{
    bus_part_t parts[2 + 6] = {{self->proto, 4}, {&command, 1}};
    if (count > 6)
        return -1;
    for (size_t i = 0; i < count; i++)
        parts[2 + i] = args[i];
    self->last_sent = bus_proto_now ();
    return bus_proto_sendv (self->dealer, parts, 2 + count);
}

int
bus_link_recv_parts (bus_link_t *self, zmq_msg_t *parts, size_t max, size_t *count)
{
    int rc = bus_proto_recv_parts (self->dealer, parts, max, count, NULL);
    if (rc == 0)
        self->last_recv = bus_proto_now ();
    return rc;
}

bus_link_event_t
bus_link_event (bus_link_t *self)
{
    if (!self->monitor)
        return BUS_LINK_NONE;
    zmsg_t *msg;
    while ((msg = bus_proto_recv (self->monitor, NULL))) {
        zframe_t *event = zmsg_first (msg);
        uint16_t id = 0;
        if (event && zframe_size (event) == 6)
            memcpy (&id, zframe_data (event), 2);
        zmsg_destroy (&msg);
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->last_recv = bus_proto_now ();
            return BUS_LINK_UP;
        }
        if (id == ZMQ_EVENT_DISCONNECTED)
            return BUS_LINK_DOWN;
    }
    return BUS_LINK_NONE;
}

bool
bus_link_unmonitored (bus_link_t *self)
{
    return self->monitor == NULL;
}

const char *
bus_link_endpoint (bus_link_t *self)
{
    return self->endpoint;
}

int64_t
bus_link_last_sent (bus_link_t *self)
{
    return self->last_sent;
}

int64_t
bus_link_last_recv (bus_link_t *self)
{
    return self->last_recv;
}

void
bus_link_touch (bus_link_t *self)
{
    self->last_recv = bus_proto_now ();
}

size_t
bus_link_sockets (bus_link_t *self, zsock_t **sockets, size_t max)
{
    size_t n = 0;
    if (n < max)
        sockets[n++] = self->dealer;
    if (self->monitor && n < max)
        sockets[n++] = self->monitor;
    return n;
}
