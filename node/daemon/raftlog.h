/* The consensus core's view of the stable log: consensus_log_ops over the LMDB store. */
#ifndef CARELOG_NODE_DAEMON_RAFTLOG_H
#define CARELOG_NODE_DAEMON_RAFTLOG_H

/*
 * Called only on the loop thread, never while it holds the write transaction: each call reads
 * through its own short read transaction. last_index is kept by the loop (it is the one
 * writer) so the core's most frequent question costs nothing.
 */

#include "consensus/consensus.h"
#include "storage/storage.h"

#include <stdint.h>

struct node_raftlog {
	struct consensus_log_ops ops; /* ops.ctx points at this struct */
	struct storage *storage;      /* borrowed */
	uint64_t last_index;          /* updated by the loop after each persisted batch */
};

/* Fills `rl` (keeps last_index as set by the caller). */
void node_raftlog_init(struct node_raftlog *rl, struct storage *s);

#endif
