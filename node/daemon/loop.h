/* The node's event loop: the one writer thread that signs, proposes, persists and applies. */
#ifndef CARELOG_NODE_DAEMON_LOOP_H
#define CARELOG_NODE_DAEMON_LOOP_H

/*
 * Client threads (nng callbacks) hand decoded appends to node_loop_submit (a bounded queue).
 * The loop thread drains up to batch entries_max / bytes_max of them and, for each:
 *
 *   1. exactly once: a request id already committed (request_index) is answered with the first
 *      entry's index and id (duplicate); one already in flight in this process gets the waiter
 *      attached to the existing proposal (the node encodes and signs once per request id);
 *   2. otherwise signs it (author = request actor or actor_default; unit from config; org from
 *      the applied membership's entry for this node, never from the request), wraps it in a
 *      record stamped with the leader time (the clock seam) and proposes it.
 *
 * Then one ready batch = ONE write transaction: apply committed entries, persist new entries
 * and hard state, commit with one sync (group commit). Waiters are answered only after the
 * transaction that applied their entry committed, so every answer is durable. A failed sync
 * (CARELOG_EIO) is fatal: the fatal hook runs (default: log and _exit(1)). CARELOG_EMAPFULL
 * refuses the batch's new appends with that error; reads keep being served.
 */

#include "node/api/proto.h"
#include "node/daemon/apply.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	NODE_LOOP_WAITERS_PER_PROPOSAL_MAX = 16, /* retries attached to one in-flight request id */
	NODE_LOOP_MESSAGE_BYTES_MAX = 256,
};

/* The role recorded when a request names an actor without one (the format requires a role). */
#define NODE_LOOP_ROLE_DEFAULT "unspecified"

/* Who is waiting for an append: opaque to the loop, interpreted by the reply callback. */
struct node_waiter {
	void *owner;
	uint64_t generation;
};

/* The answer to one append. */
struct node_append_result {
	int err; /* CARELOG_OK: committed */
	char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
	uint64_t index;
	uint8_t id[JOURNAL_ID_BYTES];
	bool duplicate; /* the request id had already committed or was in flight */
};

/* One queued append: a private copy of the request message and its decoded view. Allocate
 * with node_append_item_create; ownership passes to the loop on a successful submit. */
struct node_append_item {
	struct node_waiter waiter;
	struct proto_append_req req; /* views into bytes */
	size_t bytes_len;
	uint8_t bytes[];
};

/* Copies `message` and decodes it; CARELOG_ENOMEM, or the decoder's error (then NULL). */
int node_append_item_create(const uint8_t *message, size_t len, struct node_waiter waiter,
                            struct node_append_item **out);
void node_append_item_free(struct node_append_item *item); /* accepts NULL */

typedef void (*node_loop_reply_fn)(void *ctx, struct node_waiter waiter,
                                   const struct node_append_result *result);
typedef void (*node_loop_applied_fn)(void *ctx, uint64_t applied_index, uint64_t commit_index);
typedef uint64_t (*node_clock_ms_fn)(void *ctx);
typedef void (*node_fatal_fn)(void *ctx, int err);

struct node_loop_config {
	uint64_t node_id;
	const uint8_t *secret_key; /* CL_SIGN_SECRET_BYTES, borrowed for the loop's lifetime */
	const char *actor_default;
	const char *unit;
	uint32_t queue_max;         /* appends waiting for the loop */
	uint32_t batch_entries_max; /* appends per write transaction */
	uint64_t batch_bytes_max;   /* request bytes per write transaction */
	uint64_t request_bytes_max; /* largest single request (bounds one record) */
	node_clock_ms_fn clock_ms;  /* NULL = wall clock */
	void *clock_ctx;
	node_loop_reply_fn reply; /* called on the loop thread */
	void *reply_ctx;
	node_loop_applied_fn applied; /* called after each committed transaction; may be NULL */
	void *applied_ctx;
	node_fatal_fn fatal; /* NULL = log and _exit(1) */
	void *fatal_ctx;
};

struct node_loop;

/* `state` is what storage holds after recovery (applied == commit); copied. `s` borrowed. */
int node_loop_create(const struct node_loop_config *config, struct storage *s,
                     const struct node_apply_state *state, struct node_loop **out);
/* Stops first if running. Accepts NULL. Unanswered waiters get CARELOG_ECLOSED. */
void node_loop_destroy(struct node_loop *l);

/* Starts the loop thread. */
int node_loop_start(struct node_loop *l);
/* Stops taking appends (CARELOG_ECLOSED), finishes what was queued and in flight, answers,
 * joins the thread. Idempotent. */
void node_loop_stop(struct node_loop *l);

/* Queues an append; ownership of `item` passes to the loop on CARELOG_OK. CARELOG_EBUSY when
 * the queue is full, CARELOG_ECLOSED when stopping. Thread-safe. */
int node_loop_submit(struct node_loop *l, struct node_append_item *item);

/* Without a thread (tests): drains the queue and runs ready batches until none is left. */
int node_loop_run_until_idle(struct node_loop *l);

/* Published after each committed transaction. Thread-safe. */
uint64_t node_loop_applied_index(const struct node_loop *l);
uint64_t node_loop_commit_index(const struct node_loop *l);

/* The wall clock in milliseconds since the epoch. */
uint64_t node_clock_wall_ms(void *ctx);

#endif
