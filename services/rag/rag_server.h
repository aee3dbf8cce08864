/*  rag_server: the rag service actor. The rag service owns knowledge bases, documents, chunks and search
    (DESIGN.md, "Services"). Run by services/rag/main.c and by chorusd.            */
#ifndef RAG_SERVER_H_INCLUDED
#define RAG_SERVER_H_INCLUDED

#include <czmq.h>

//  The actor; args is the process's core_config_t * (see service_runtime.h).
void rag_server_actor (zsock_t *pipe, void *args);

#endif
