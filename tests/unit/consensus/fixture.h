/* In-memory test fixture for the consensus core: N cores, a stable log per node, a counting
 * and failing allocator, and a message pump under the test's manual control. */
#ifndef CARELOG_TEST_CONSENSUS_FIXTURE_H
#define CARELOG_TEST_CONSENSUS_FIXTURE_H

#include "consensus/consensus.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	FX_NODES_MAX = 8,
	FX_PENDING_MAX = 4096, /* messages in flight in the fake network */
	FX_APPLIED_MAX = 4096,
	FX_READS_MAX = 64,
	FX_DELIVER_ROUNDS_MAX = 100000,
};

/* Counting allocator; fails the allocation numbered `fail_at` (1-based) and, if fail_all,
 * every one after it. */
struct fx_alloc {
	struct consensus_allocator ops;
	uint64_t allocs;
	uint64_t frees;
	int64_t bytes_outstanding;
	uint64_t fail_at; /* 0 = never */
	bool fail_all;
	uint64_t failures;
};

void fx_alloc_init(struct fx_alloc *a);

struct fx_entry {
	uint64_t term;
	uint8_t type;
	uint32_t data_len;
	uint8_t *data;
};

struct fx_log {
	struct consensus_log_ops ops;
	struct fx_entry *entries; /* entries[i] has index i + 1 */
	uint64_t count;
	uint64_t capacity;
	int fail_term; /* error code the term callback returns when non-zero */
	int fail_entries;
};

struct fx_applied {
	uint64_t index;
	uint64_t term;
	uint8_t type;
	char data[64];
};

struct fx_node {
	consensus_node_id id;
	struct consensus *c;
	struct consensus_config config;
	struct fx_alloc alloc;
	struct fx_log log;
	struct consensus_hard_state hs; /* persisted */
	consensus_node_id voters[FX_NODES_MAX];
	uint32_t voters_count;
	consensus_node_id voters_out[FX_NODES_MAX];
	uint32_t voters_out_count;
	consensus_node_id learners[FX_NODES_MAX];
	uint32_t learners_count;
	consensus_node_id learners_next[FX_NODES_MAX];
	uint32_t learners_next_count;
	bool auto_leave;
	uint64_t applied;
	struct fx_applied applied_entries[FX_APPLIED_MAX];
	uint32_t applied_count;
	struct consensus_read_state reads[FX_READS_MAX];
	uint32_t reads_count;
	bool defer_conf; /* hold committed conf changes until fx_apply_deferred */
	struct consensus_conf_change deferred[8];
	uint32_t deferred_count;
	bool hold_ready; /* do not drain ready batches (a slow disk) */
	uint32_t ready_batches;
	uint64_t early_msgs_seen;
	bool down;
};

struct fx_msg {
	struct consensus_message m;
	struct consensus_entry *entries;
};

struct fx_cluster {
	struct fx_node nodes[FX_NODES_MAX];
	uint32_t count;
	struct fx_msg pending[FX_PENDING_MAX];
	uint32_t pending_count;
	bool cut[FX_NODES_MAX + 1][FX_NODES_MAX + 1]; /* cut[from][to] drops the message */
	bool drop_type[16];
	uint64_t delivered;
	uint64_t dropped;
};

struct fx_options {
	uint32_t voters;   /* ids 1..voters */
	uint32_t learners; /* ids voters+1 .. voters+learners */
	uint32_t extra;    /* ids that exist but are not members yet */
	bool pre_vote;
	bool check_quorum;
	uint32_t inflight_msgs_max;
	uint64_t append_bytes_max;
	uint64_t uncommitted_bytes_max;
	uint64_t seed;
};

struct fx_cluster *fx_new(const struct fx_options *o);
void fx_free(struct fx_cluster *cl);

struct fx_node *fx_node(struct fx_cluster *cl, consensus_node_id id);
struct consensus *fx_core(struct fx_cluster *cl, consensus_node_id id);

/* Replaces a node's stable log with entries of the given terms (index 1..n) and sets its
 * hard state, then restarts its core from that persisted state. */
void fx_set_log(struct fx_cluster *cl, consensus_node_id id, const uint64_t *terms, uint64_t n,
                uint64_t term, consensus_node_id vote, uint64_t commit);
/* Crash and restart from persisted state (log, hard state, applied conf). */
void fx_restart(struct fx_cluster *cl, consensus_node_id id);

/* Drains a node's ready batches: persist, queue messages, apply, collect reads. */
void fx_process(struct fx_cluster *cl, consensus_node_id id);
/* Handles exactly one ready batch (even when hold_ready); false if there was none. `out`
 * (may be NULL) receives the batch as handed out; its pointers are dead on return. */
bool fx_ready_once(struct fx_cluster *cl, consensus_node_id id, struct consensus_ready *out);
void fx_process_all(struct fx_cluster *cl);
/* Delivers queued messages (and their consequences) until the network is quiet. */
void fx_deliver(struct fx_cluster *cl);
/* Delivers only the queued messages of `type` (0 = any) from `from` to `to` (0 = any), once,
 * without delivering what they cause. Returns how many were delivered. */
uint32_t fx_deliver_only(struct fx_cluster *cl, uint8_t type, consensus_node_id from,
                         consensus_node_id to);
/* Delivers the queued message at position `i` (a copy stays queued if `duplicate`). */
void fx_deliver_at(struct fx_cluster *cl, uint32_t i, bool duplicate);
/* Drops every queued message. */
void fx_drop_pending(struct fx_cluster *cl);
uint32_t fx_count_pending(const struct fx_cluster *cl, uint8_t type, consensus_node_id from,
                          consensus_node_id to);

void fx_tick(struct fx_cluster *cl, consensus_node_id id, uint32_t ticks);
/* Ticks every live node `ticks` times, delivering after each tick. */
void fx_tick_all(struct fx_cluster *cl, uint32_t ticks);

void fx_isolate(struct fx_cluster *cl, consensus_node_id id);
void fx_cut(struct fx_cluster *cl, consensus_node_id a, consensus_node_id b);
void fx_heal(struct fx_cluster *cl);

/* Campaigns at `id` and delivers; returns the role afterwards. */
uint8_t fx_elect(struct fx_cluster *cl, consensus_node_id id);
int fx_propose(struct fx_cluster *cl, consensus_node_id id, const char *text);
int fx_conf(struct fx_cluster *cl, consensus_node_id id, uint8_t op, consensus_node_id node);
void fx_apply_deferred(struct fx_cluster *cl, consensus_node_id id);

uint8_t fx_role(struct fx_cluster *cl, consensus_node_id id);
uint64_t fx_term(struct fx_cluster *cl, consensus_node_id id);
uint64_t fx_commit(struct fx_cluster *cl, consensus_node_id id);
consensus_node_id fx_leader(struct fx_cluster *cl, consensus_node_id id);
/* The one leader among live nodes with the highest term, 0 if none. */
consensus_node_id fx_find_leader(struct fx_cluster *cl);
const struct consensus_progress *fx_progress(struct fx_cluster *cl, consensus_node_id leader,
                                             consensus_node_id of);
/* Term of the stable entry at `index` of a node (0 if beyond its log). */
uint64_t fx_log_term(struct fx_cluster *cl, consensus_node_id id, uint64_t index);
uint64_t fx_log_last(struct fx_cluster *cl, consensus_node_id id);
/* True if every live node's log equals `id`'s. */
bool fx_logs_equal(struct fx_cluster *cl, consensus_node_id a, consensus_node_id b);

/* Steps one crafted message into a core (from/to/term given), then processes the node. */
int fx_step(struct fx_cluster *cl, const struct consensus_message *m);
/* The last queued message from `from` (0 any) of `type`, or NULL. */
const struct consensus_message *fx_find_pending(const struct fx_cluster *cl, uint8_t type,
                                                consensus_node_id from, consensus_node_id to);

#endif
