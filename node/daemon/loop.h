/* The node's event loop: the one writer thread that signs, proposes, persists and applies. */
#ifndef CARELOG_NODE_DAEMON_LOOP_H
#define CARELOG_NODE_DAEMON_LOOP_H

/*
 * The loop thread owns the consensus core (consensus/consensus.h) and is the only writer of the
 * replicated store. It takes three kinds of input:
 *
 *   - client items (node_loop_submit, from the client server's threads): appends, policy
 *     entries, linearizable read points (ReadIndex), membership changes and leadership
 *     transfers;
 *   - peer payloads (node_loop_receive, from the transport's thread): Raft messages, appends
 *     forwarded by followers and learners, forward results and the leader's progress table;
 *   - time: consensus_tick every tick_ms.
 *
 * An append is made exactly once per request id: a request id already committed (request_index)
 * is answered with the first entry's index and id; one already in flight here gets the waiter
 * attached to the existing proposal; otherwise this node signs it (author = the request's actor
 * (req->actor) with the config's defaults for what it leaves out: actor_default,
 * actor_default_role, the config's unit; org from the applied membership's entry for this node,
 * never from the request). A policy item (PROTO_OP_POLICY) is signed exactly like an append of
 * its kind, with its body encoded here (node/journal/policy.h), media type POLICY_MEDIA_TYPE and
 * sensitivity normal. An append whose request id was refused at apply (node/daemon/apply.h) is
 * answered CARELOG_EDENIED with the reason, and so is every retry of it. The leader proposes the
 * record stamped with its time; a follower or learner forwards the signed record to the leader
 * (FORWARD) and keeps it to forward again on a retry or a leader change. Either way the waiter is
 * answered when this node applies an entry with that request key.
 *
 * One ready batch = ONE write transaction: apply committed entries (signatures verified with
 * the key the configuration held at that log position), persist new entries and hard state,
 * commit with one sync (group commit); messages that depend on it are sent only after the sync.
 * Waiters are answered only after the transaction that applied their entry committed, so every
 * answer is durable. Any failure to persist (a failed sync, a full map) is fatal: the fatal hook
 * runs (default: log and _exit(1)); Raft's promises cannot be taken back once made.
 */

#include "node/api/proto.h"
#include "consensus/consensus.h"
#include "node/daemon/apply.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum {
	NODE_LOOP_WAITERS_PER_PROPOSAL_MAX = 16, /* retries attached to one in-flight request id */
	NODE_LOOP_MESSAGE_BYTES_MAX = 256,
};

/* The role recorded when neither the request's actor nor the config names one (the team's
 * decision: an actor without a role acts as the node's operator; operators write no records). */
#define NODE_LOOP_ROLE_DEFAULT "operator"

/* Who is waiting for an append: opaque to the loop, interpreted by the reply callback. */
struct node_waiter {
	void *owner;
	uint64_t generation;
};

/* The answer to one client item. */
struct node_append_result {
	int err; /* CARELOG_OK: done */
	char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
	/* APPEND, POLICY: the committed index; READ: the read point (serve once applied >= it);
	 * MEMBER: the configuration entry's index (applied); TRANSFER: 0. */
	uint64_t index;
	uint8_t id[JOURNAL_ID_BYTES]; /* APPEND, POLICY: the entry id */
	bool duplicate; /* APPEND, POLICY: the request id had already committed or was in flight */
	uint64_t leader_id; /* TRANSFER: the leader when answered */
};

/* One queued client item (append, policy entry, linearizable read point, member change,
 * transfer): a private copy of the request message and its decoded view. Allocate with
 * node_append_item_create; ownership passes to the loop on a successful submit. */
struct node_append_item {
	struct node_waiter waiter;
	struct proto_request req; /* views into bytes */
	size_t bytes_len;
	uint8_t bytes[];
};

/* Copies `message` and decodes it; CARELOG_ENOMEM, CARELOG_EINVAL for an operation the loop
 * does not take (status, get, verify, access-log, btg-list; local reads are served without
 * it), or the decoder's error (then NULL). */
int node_append_item_create(const uint8_t *message, size_t len, struct node_waiter waiter,
                            struct node_append_item **out);
void node_append_item_free(struct node_append_item *item); /* accepts NULL */

typedef void (*node_loop_reply_fn)(void *ctx, struct node_waiter waiter,
                                   const struct node_append_result *result);
typedef void (*node_loop_applied_fn)(void *ctx, uint64_t applied_index, uint64_t commit_index);
typedef uint64_t (*node_clock_ms_fn)(void *ctx);
typedef void (*node_fatal_fn)(void *ctx, int err);
/* Sends one peer payload; must not block (drop instead: Raft retransmits). */
typedef int (*node_loop_send_fn)(void *ctx, uint64_t to, uint8_t channel, const uint8_t *payload,
                                 size_t len);
/* The applied membership changed (start, and after each configuration entry): the peers to
 * trust and dial. Called on the loop thread. */
typedef void (*node_loop_members_fn)(void *ctx, const struct membership *m);

enum {
	NODE_LOOP_CHANNEL_CONTROL = 0,
	NODE_LOOP_CHANNEL_BULK = 1,
};

struct node_loop_config {
	uint64_t node_id;
	const uint8_t *secret_key; /* CL_SIGN_SECRET_BYTES, borrowed for the loop's lifetime */
	const char *actor_default; /* author when the request's actor names no id */
	const char *actor_default_role; /* role when it names none; NULL = NODE_LOOP_ROLE_DEFAULT */
	const char *unit;               /* header unit when the actor names none */
	uint32_t queue_max;         /* client items waiting for the loop */
	uint32_t batch_entries_max; /* appends per write transaction */
	uint64_t batch_bytes_max;   /* request bytes per write transaction */
	uint64_t request_bytes_max; /* largest single request (bounds one record) */
	uint32_t request_timeout_ms; /* an in-flight request is forgotten after this (its client
	                                was told "pending" by then) */
	node_clock_ms_fn clock_ms;  /* NULL = wall clock (leader time stamps) */
	void *clock_ctx;
	node_loop_reply_fn reply; /* called on the loop thread */
	void *reply_ctx;
	node_loop_applied_fn applied; /* called after each committed transaction; may be NULL */
	void *applied_ctx;
	node_fatal_fn fatal; /* NULL = log and _exit(1) */
	void *fatal_ctx;
	/* Replication. With send NULL the node is alone (tests): peers' messages are dropped. */
	node_loop_send_fn send;
	void *send_ctx;
	node_loop_members_fn members;
	void *members_ctx;
	uint32_t tick_ms;          /* 0 = 100 */
	uint32_t election_ticks;   /* 0 = 10 */
	uint32_t heartbeat_ticks;  /* 0 = 1 */
	uint32_t inflight_msgs_max; /* 0 = 32 */
	uint64_t append_bytes_max; /* 0 = 4 MiB: entry bytes per append message */
	uint64_t seed;             /* election jitter; 0 = random */
};

enum { NODE_LOOP_MEMBERS_MAX = MEMBERSHIP_MEMBERS_MAX };

/* What `status` shows; a copy published by the loop thread. */
struct node_loop_status {
	uint64_t term;
	uint64_t leader_id;
	uint8_t role; /* enum consensus_role */
	bool learner; /* this node is a learner in the applied configuration */
	uint64_t commit_index;
	uint64_t known_commit_index; /* max(commit, the leader's commit as last heard) */
	uint64_t applied_index;
	uint64_t last_index;
	uint64_t progress_age_ms; /* 0 on the leader */
	uint32_t members_count;
	struct {
		uint64_t id;
		bool has_match;
		uint64_t match_index;
	} members[NODE_LOOP_MEMBERS_MAX];
	uint64_t verified_signatures;
	uint64_t syncs;
};

struct node_loop;

/* `state` is what storage holds after recovery (applied == commit); copied. `s` borrowed. */
int node_loop_create(const struct node_loop_config *config, struct storage *s,
                     const struct node_apply_state *state, struct node_loop **out);
/* Stops the thread and answers every waiter left (queued: CARELOG_ECLOSED; in flight:
 * CARELOG_EPENDING). The loop's state stays readable (status, indexes) until destroy. */
void node_loop_answer_leftovers(struct node_loop *l);
/* node_loop_answer_leftovers, then frees. Accepts NULL. */
void node_loop_destroy(struct node_loop *l);

/* Starts the loop thread. */
int node_loop_start(struct node_loop *l);
/* Stops taking appends (CARELOG_ECLOSED), finishes what was queued and in flight, answers,
 * joins the thread. Idempotent. */
void node_loop_stop(struct node_loop *l);

/* Queues a client item; ownership of `item` passes to the loop on CARELOG_OK. CARELOG_EBUSY when
 * the queue is full, CARELOG_ECLOSED when stopping. Thread-safe. */
int node_loop_submit(struct node_loop *l, struct node_append_item *item);

/* Queues one authenticated peer payload (copied). Never blocks: a full queue drops it
 * (counted; Raft retransmits). Thread-safe. */
void node_loop_receive(struct node_loop *l, uint64_t from, uint8_t channel, const uint8_t *payload,
                       size_t len);

/* A copy of the latest published status. Thread-safe. */
void node_loop_get_status(struct node_loop *l, struct node_loop_status *out);

/* Without a thread (tests): drains the queues and runs ready batches until none is left. */
int node_loop_run_until_idle(struct node_loop *l);
/* Without a thread (tests): one tick of logical time. */
void node_loop_tick(struct node_loop *l);

/* Published after each committed transaction. Thread-safe. */
uint64_t node_loop_applied_index(const struct node_loop *l);
uint64_t node_loop_commit_index(const struct node_loop *l);
/* max(commit index, the leader's commit index as last heard). Thread-safe. */
uint64_t node_loop_known_commit_index(const struct node_loop *l);

/* The wall clock in milliseconds since the epoch. */
uint64_t node_clock_wall_ms(void *ctx);
/* The CLOCK_REALTIME time `ms` from now, for pthread_cond_timedwait (the daemon's threads). */
struct timespec node_deadline_after_ms(uint32_t ms);

#endif
