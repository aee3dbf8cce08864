/*  bus_proto: the frames of the Chorus bus (schemas/bus.md): protocol and command
    bytes, error codes, and one validating parser shared by the broker, the client
    and the worker. Nothing here touches a socket.                                 */
#ifndef BUS_PROTO_H_INCLUDED
#define BUS_PROTO_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define BUS_PROTO_CLIENT "CHC1"  //  first frame of client <-> broker messages
#define BUS_PROTO_WORKER "CHW1"  //  first frame of worker <-> broker messages

//  Commands, one byte in the second frame.
#define BUS_REQUEST 0x01     //  C->B, B->W
#define BUS_CANCEL 0x02      //  C->B, B->W
#define BUS_HEARTBEAT 0x03   //  both ways (C->B is answered by B->C)
#define BUS_READY 0x04       //  W->B
#define BUS_CREDIT 0x05      //  W->B
#define BUS_DISCONNECT 0x06  //  both ways between W and B
#define BUS_PARTIAL 0x11     //  W->B, B->C
#define BUS_FINAL 0x12       //  W->B, B->C
#define BUS_ERROR 0x13       //  W->B, B->C

//  Error codes (schemas/bus.md, "Error codes").
#define BUS_ERR_DEADLINE "deadline_exceeded"
#define BUS_ERR_UNAVAILABLE "unavailable"
#define BUS_ERR_BROKER_UNAVAILABLE "broker_unavailable"
#define BUS_ERR_WORKER_LOST "worker_lost"
#define BUS_ERR_BROKER_LOST "broker_lost"
#define BUS_ERR_CANCELLED "cancelled"
#define BUS_ERR_OVERLOADED "overloaded"
#define BUS_ERR_BAD_FRAME "bad_frame"
#define BUS_ERR_BAD_REQUEST "bad_request"
#define BUS_ERR_UNKNOWN_COMMAND "unknown_command"
#define BUS_ERR_INTERNAL "internal"
#define BUS_ERR_SHUTTING_DOWN "shutting_down"

#define BUS_NAME_MAX 64  //  longest service or command name
#define BUS_ID_MAX 64    //  longest request id frame
#define BUS_MAX_ARGS 5   //  most frames after the command frame

#define BUS_MAX_PARTS 16  //  most frames a valid message has, with room to spare

//  A view of one frame: borrowed bytes (a frame of a message, or data to send).
typedef struct {
    const void *data;  //  bytes
    size_t size;       //  how many
} bus_part_t;

//  A parsed message: borrowed views into the frames it came from.
typedef struct {
    bus_part_t identity;            //  routing id (messages read from a ROUTER)
    bool worker;                    //  CHW1 (true) or CHC1 (false)
    uint8_t command;                //  one of the commands above
    bus_part_t args[BUS_MAX_ARGS];  //  frames after the command frame
    size_t nargs;                   //  how many
} bus_frames_t;

//  Parse msg (which must stay alive while out is used). routed: msg was read from a
//  ROUTER and starts with an identity frame. from_worker_side / direction is checked
//  by the caller. Returns 0, or -1 with a reason in error.
int bus_proto_parse (zmsg_t *msg, bool routed, bus_frames_t *out, char *error,
                     size_t error_size) __attribute__ ((warn_unused_result));

//  The same over an array of frame views (the broker's receive path).
int bus_proto_parse_parts (const bus_part_t *parts, size_t count, bool routed,
                           bus_frames_t *out, char *error, size_t error_size)
    __attribute__ ((warn_unused_result));

//  Receive one whole message without waiting into parts (each initialised here;
//  the caller closes the first *count of them). Returns 0, or -1 when no message
//  is waiting. A message of more than max frames is drained and dropped, and
//  *count is set to max + 1 (the caller closes max). fd as in bus_proto_recv.
int bus_proto_recv_parts (zsock_t *sock, zmq_msg_t *parts, size_t max, size_t *count,
                          int *fd);

//  Copy a name-like frame (service, command, request id) into buf as a C string.
//  Refuses empty, too long, or anything but printable ASCII without spaces.
int bus_proto_name (const bus_part_t *part, char *buf, size_t size)
    __attribute__ ((warn_unused_result));

//  Build an error body (msgpack of Error) as a frame.
zframe_t *bus_proto_error_frame (const char *code, const char *message);

//  The same with retry_after_s: seconds the caller should wait (0: none).
zframe_t *bus_proto_error_frame_retry (const char *code, const char *message,
                                       uint32_t retry_after_s);

//  Decode an error body; code/message get "internal"/"malformed error" when broken.
void bus_proto_error_decode (const void *data, size_t size, char *code, size_t code_size,
                             char *message, size_t message_size);

//  The same, also returning retry_after_s (0 when absent or broken; may be NULL).
void bus_proto_error_decode_retry (const void *data, size_t size, char *code,
                                   size_t code_size, char *message, size_t message_size,
                                   uint32_t *retry_after_s);

//  Receive one whole message without waiting; NULL when none is there. fd, when
//  not NULL, gets the TCP connection's fd the message came from (-1 if unknown).
zmsg_t *bus_proto_recv (zsock_t *sock, int *fd);

//  Send a whole message without ever waiting; destroys it either way. Returns -1
//  when the peer is unknown or full (the message is dropped).
int bus_proto_send (zmsg_t **msg_p, zsock_t *sock);

//  Send count parts as one message without waiting and without building a zmsg
//  (the hot paths use it). -1 when the peer is unknown or full (nothing is sent).
int bus_proto_sendv (zsock_t *sock, const bus_part_t *parts, size_t count);

//  Monotonic clock in milliseconds.
int64_t bus_proto_now (void);

//  Given a broker request endpoint, write its events-in (offset 1) or events-out
//  (offset 2) endpoint: tcp ports +1/+2, other transports get "-events-in/-out".
int bus_proto_event_endpoint (const char *endpoint, int offset, char *buf, size_t size)
    __attribute__ ((warn_unused_result));

//  Split a comma-separated list of endpoints; returns a list of strings (caller
//  destroys) or NULL when empty.
zlist_t *bus_proto_endpoints (const char *list);

void bus_proto_test (bool verbose);

#endif
