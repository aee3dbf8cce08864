/*  edge_ws: the WebSocket API of the edge (GET /api/v1/ws). JSON text messages:
    {"type":"ping"} -> {"type":"pong"}; {"type":"request","id","method","path",
    "body"} runs the route table over the bus and streams {"type":"partial"|"final"
    |"error","id",...}; {"type":"cancel","id"} cancels. Each connection has a
    bounded send queue (closed with 1008 when a slow client fills it) and a largest
    message (1009). edge_server calls edge_ws_callback for WebSocket reasons.     */
#ifndef EDGE_WS_H_INCLUDED
#define EDGE_WS_H_INCLUDED

#include "edge_context.h"
#include "edge_http.h"

//  Handle one lws callback of a WebSocket connection; returns what lws expects.
int edge_ws_callback (edge_t *edge, struct lws *wsi, enum lws_callback_reasons reason,
                      edge_session_t *session, void *in, size_t len);

#endif
