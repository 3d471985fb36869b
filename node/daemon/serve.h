/* Serving the read-side client operations (status, read, get, verify) from a read transaction. */
#ifndef CARELOG_NODE_DAEMON_SERVE_H
#define CARELOG_NODE_DAEMON_SERVE_H

/*
 * Transport-free: each function encodes one complete reply (success or an error reply whose
 * message says what was wrong) into `out`, which must start empty. They return CARELOG_OK when
 * a reply was encoded, or CARELOG_ENOMEM when not even an error reply could be.
 *
 * A value that fails its checksum or an entry that fails its integrity check is never served:
 * the reply is CARELOG_ECORRUPT naming the index, never the data. Read and get check each
 * entry without its signature (apply verified it once; a per-entry Ed25519 check made a
 * 200-entry timeline read cost ~12 ms): value CRC, record and header decode, salted body hash
 * and size, and that the entry_index row of the header's id points at that index as accepted
 * (so an altered header, even with a recomputed CRC, is caught). Verify re-checks signatures.
 */

#include "node/api/proto.h"
#include "node/daemon/loop.h"
#include "storage/storage.h"

#include <stdint.h>

enum {
	NODE_READ_LIMIT_DEFAULT = 100,
	NODE_READ_SCAN_INDEXES_MAX = 100000, /* patient index rows looked at per read */
	NODE_PROBLEM_BYTES_MAX = 200,
};

struct node_serve {
	struct storage *storage;
	uint64_t node_id;
	uint64_t stale_lag_max;
	struct node_loop *loop; /* NULL (tests): status from storage alone */
	void (*transport_stats)(void *ctx, struct proto_transport_stats *out); /* may be NULL */
	void *transport_ctx;
};

int node_serve_status(const struct node_serve *sv, struct proto_buf *out);
int node_serve_read(const struct node_serve *sv, const struct proto_read_req *req,
                    struct proto_buf *out);
int node_serve_get(const struct node_serve *sv, const struct proto_get_req *req,
                   struct proto_buf *out);
int node_serve_verify(const struct node_serve *sv, struct proto_buf *out);

/* An error reply with a formatted message. */
int node_serve_error(uint8_t op, int err, struct proto_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
