/* The Raft consensus core: a pure, deterministic state machine (no I/O, no clock, no malloc). */
#ifndef CARELOG_CONSENSUS_H
#define CARELOG_CONSENSUS_H

/*
 * Shape (after etcd-io/raft's RawNode): the caller feeds inputs (consensus_step, consensus_tick,
 * consensus_propose, consensus_read_index, consensus_transfer_leader, configuration changes)
 * and drains outputs as a *ready batch*:
 *
 *     while (consensus_has_ready(c)) {
 *         consensus_ready(c, &rd);
 *         send(rd.messages_early);                  may leave before persistence
 *         persist(rd.entries, rd.hard_state);       one synced transaction
 *         send(rd.messages);                        only after persistence
 *         apply(rd.committed);                      in order
 *         answer(rd.read_states);
 *         consensus_advance(c, &rd);
 *     }
 *
 * Everything the ready batch points at is owned by the core and borrowed by the caller until
 * consensus_advance. Between consensus_ready and consensus_advance the caller makes no other
 * call into the core except consensus_apply_conf_change (while applying rd.committed),
 * consensus_has_ready and consensus_get_status (asserted). Inputs are copied where the core keeps
 * them. All memory comes from the caller's allocator within the bounds in consensus_config; a
 * failed allocation returns CARELOG_ENOMEM and leaves the core in a consistent state.
 *
 * The log is never compacted (the journal is kept forever), so there are no snapshots: a new or
 * lagging member is caught up by ordinary log replication.
 *
 * The core uses only common/ (error codes, assertions, byte helpers). It does no logging.
 *
 * The node's event loop (node/daemon/loop.c) drives it; the wire codec (replication/wire.h)
 * carries struct consensus_message field for field: add fields freely, and the codec with them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t consensus_node_id; /* 0 means none */

enum consensus_entry_type {
	CONSENSUS_ENTRY_NORMAL = 0, /* opaque data; empty data = the leader's no-op */
	CONSENSUS_ENTRY_CONF = 1,   /* data starts with an encoded consensus_conf_change */
};

/* One log entry. `data` is borrowed: see the function that hands it out. */
struct consensus_entry {
	uint64_t term;
	uint64_t index;
	uint8_t type; /* enum consensus_entry_type */
	uint32_t data_len;
	const uint8_t *data;
};

/* What must be durable before any message that depends on it leaves the node. */
struct consensus_hard_state {
	uint64_t term;
	consensus_node_id vote;
	uint64_t commit;
};

enum consensus_role {
	CONSENSUS_ROLE_FOLLOWER = 0,
	CONSENSUS_ROLE_PRE_CANDIDATE = 1,
	CONSENSUS_ROLE_CANDIDATE = 2,
	CONSENSUS_ROLE_LEADER = 3,
};

/* Volatile state the caller may want to show or act on (not persisted). */
struct consensus_soft_state {
	consensus_node_id leader;
	uint8_t role; /* enum consensus_role */
};

/* A linearizable read is safe once the local node has applied `index`. */
struct consensus_read_state {
	uint64_t index;
	uint64_t ctx; /* the caller's value from consensus_read_index */
};

enum consensus_message_type {
	CONSENSUS_MSG_APPEND = 1,
	CONSENSUS_MSG_APPEND_RESP = 2,
	CONSENSUS_MSG_HEARTBEAT = 3,
	CONSENSUS_MSG_HEARTBEAT_RESP = 4,
	CONSENSUS_MSG_PRE_VOTE = 5,
	CONSENSUS_MSG_PRE_VOTE_RESP = 6,
	CONSENSUS_MSG_VOTE = 7,
	CONSENSUS_MSG_VOTE_RESP = 8,
	CONSENSUS_MSG_TIMEOUT_NOW = 9,
	CONSENSUS_MSG_READ_INDEX = 10,      /* follower/learner asks the leader */
	CONSENSUS_MSG_READ_INDEX_RESP = 11, /* leader answers with the safe index */
};

/* One message between cores. The wire codec in replication/ serialises exactly these fields. */
struct consensus_message {
	uint8_t type; /* enum consensus_message_type */
	consensus_node_id from;
	consensus_node_id to;
	uint64_t term;
	/* APPEND: term of the entry at `index`; VOTE: last log term; APPEND_RESP: hint term. */
	uint64_t log_term;
	/* APPEND: index preceding the entries; VOTE: last log index; APPEND_RESP: match (or the
	 * rejected index); READ_INDEX_RESP: the read point. */
	uint64_t index;
	uint64_t commit;
	bool reject;
	uint64_t reject_hint; /* APPEND_RESP reject: the follower's hint for fast backtracking */
	bool transfer;        /* VOTE/PRE_VOTE sent because of a leadership transfer */
	uint64_t ctx;         /* READ_INDEX(_RESP), HEARTBEAT(_RESP): read context */
	uint32_t entries_count;
	const struct consensus_entry *entries;
};

struct consensus_ready {
	bool soft_state_changed;
	struct consensus_soft_state soft_state;

	bool hard_state_changed;
	struct consensus_hard_state hard_state;

	/* To append to the stable log, in order. If entries[0].index <= the stable last index,
	 * the stable suffix from entries[0].index on must be replaced (truncated first). */
	const struct consensus_entry *entries;
	size_t entries_count;

	/* May be sent before `entries` and `hard_state` are durable (a leader's appends to
	 * followers, Raft thesis 10.2.1). */
	const struct consensus_message *messages_early;
	size_t messages_early_count;

	/* Must be sent only after `entries` and `hard_state` are durable. */
	const struct consensus_message *messages;
	size_t messages_count;

	/* Committed entries to apply, in index order, contiguous from applied+1. */
	const struct consensus_entry *committed;
	size_t committed_count;

	const struct consensus_read_state *read_states;
	size_t read_states_count;
};

/* The caller's memory. `free` receives the size that was allocated. */
struct consensus_allocator {
	void *ctx;
	void *(*alloc)(void *ctx, size_t size_bytes);
	void (*free)(void *ctx, void *ptr, size_t size_bytes);
};

/*
 * The caller's stable log (what earlier ready batches persisted). The core reads it to build
 * appends for followers and to hand out committed entries that are no longer in its memory.
 */
struct consensus_log_ops {
	void *ctx;
	/* Index of the last stable entry (0 if empty). */
	uint64_t (*last_index)(void *ctx);
	/* Term of the stable entry at `index` (index 0 has term 0). CARELOG_ENOTFOUND if beyond
	 * the last index; CARELOG_EIO or CARELOG_ECORRUPT on storage failure. */
	int (*term)(void *ctx, uint64_t index, uint64_t *out_term);
	/* Copies stable entries [lo, hi) into `out` (at most `out_capacity`, stopping before the
	 * total data exceeds `bytes_max` but always at least one), with each entry's data copied
	 * into memory from `alloc` (the core frees it with alloc->free and data_len). An entry with
	 * data_len 0 may have data NULL; the core frees every non-NULL data. On failure nothing
	 * stays allocated and *out_count is untouched. */
	int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t bytes_max,
	               const struct consensus_allocator *alloc, struct consensus_entry *out,
	               size_t out_capacity, size_t *out_count);
};

/* Membership (Raft thesis ch. 4; etcd-io/raft ConfChangeV2 semantics). */
enum consensus_conf_op {
	CONSENSUS_CONF_ADD_VOTER = 1,
	CONSENSUS_CONF_ADD_LEARNER = 2, /* also demotes a voter */
	CONSENSUS_CONF_REMOVE = 3,
};

enum consensus_conf_transition {
	CONSENSUS_CONF_TRANSITION_AUTO = 0,     /* simple if possible, else joint with auto-leave */
	CONSENSUS_CONF_TRANSITION_IMPLICIT = 1, /* joint, left automatically */
	CONSENSUS_CONF_TRANSITION_EXPLICIT = 2, /* joint, left by an empty change */
};

enum { CONSENSUS_CONF_CHANGES_MAX = 8 };

/* Fixed internal bounds (not configurable): entries awaiting persistence (proposals get
 * CARELOG_EBUSY and followers drop appends beyond it), entries per append message, committed
 * entries per ready batch. Outgoing messages per ready batch are bounded by
 * members_max * (inflight_msgs_max + 8) + read_index_max + 64; beyond it they are dropped as
 * if the network lost them (Raft retransmits), so drain ready batches often. */
enum {
	CONSENSUS_UNSTABLE_ENTRIES_MAX = 4096,
	CONSENSUS_APPEND_ENTRIES_MAX = 256,
	CONSENSUS_READY_ENTRIES_MAX = 1024,
};

struct consensus_conf_change {
	uint8_t transition; /* enum consensus_conf_transition */
	uint8_t count;      /* 0 = leave a joint configuration */
	struct {
		uint8_t op; /* enum consensus_conf_op */
		consensus_node_id node_id;
	} changes[CONSENSUS_CONF_CHANGES_MAX];
};

/* Encoded size of a conf change: 1 (version) + 1 + 1 + 9 * count, then u32 context length. */
enum { CONSENSUS_CONF_HEADER_BYTES_MAX = 3 + 9 * CONSENSUS_CONF_CHANGES_MAX + 4 };

/*
 * A CONF entry's data is (the leader's automatic leave of a joint configuration has count 0,
 * transition AUTO and an empty context): u8 version (1), u8 transition, u8 count, count x (u8 op,
 * u64be node id), u32be context length, context bytes. The context is opaque to the core (the node
 * puts member metadata there: addresses, keys, organisations).
 */
int consensus_conf_encode(const struct consensus_conf_change *cc, const uint8_t *context,
                          uint32_t context_len, uint8_t *out, size_t out_capacity, size_t *out_len);
/* Decodes; `out_context` points into `data`. CARELOG_EPROTO / CARELOG_EVERSION on bad input. */
int consensus_conf_decode(const uint8_t *data, size_t len, struct consensus_conf_change *out,
                          const uint8_t **out_context, uint32_t *out_context_len);

/* The membership in force (as applied). Arrays are caller-owned when passed in (copied). */
struct consensus_conf_state {
	const consensus_node_id *voters;
	uint32_t voters_count;
	const consensus_node_id *voters_outgoing; /* non-empty while joint */
	uint32_t voters_outgoing_count;
	const consensus_node_id *learners;
	uint32_t learners_count;
	const consensus_node_id *learners_next; /* voters demoted to learners on leaving joint */
	uint32_t learners_next_count;
	bool auto_leave;
};

struct consensus_config {
	consensus_node_id id;
	uint32_t election_ticks;  /* randomised in [election_ticks, 2 * election_ticks) */
	uint32_t heartbeat_ticks; /* < election_ticks */
	uint64_t seed;            /* seeds the election-jitter PRNG */
	bool pre_vote;
	bool check_quorum;
	uint32_t members_max;           /* bound on voters + learners (incl. joint) */
	uint32_t inflight_msgs_max;     /* per follower: appends sent but not acknowledged */
	uint64_t inflight_bytes_max;    /* per follower: their entry bytes; 0 = msgs x append max */
	uint64_t append_bytes_max;      /* per append message: entry data bytes */
	uint64_t uncommitted_bytes_max; /* leader refuses proposals beyond this (CARELOG_EBUSY) */
	uint64_t ready_bytes_max;       /* committed-entry bytes handed out per ready batch */
	uint32_t read_index_max;        /* pending ReadIndex requests */
	uint64_t applied;               /* last applied index when (re)starting */
	const struct consensus_allocator *allocator; /* borrowed for the core's lifetime */
	const struct consensus_log_ops *log;         /* borrowed for the core's lifetime */
};

struct consensus; /* opaque */

/*
 * Creates a core from persisted state: `hard_state` as last persisted, `conf_state` as of
 * config->applied (both copied), the stable log behind config->log. Starts as a follower with
 * no known leader. Errors: CARELOG_EINVAL (NULL argument; a bound of 0 or out of range;
 * heartbeat_ticks >= election_ticks; commit beyond the log's last index; applied beyond
 * commit; an inconsistent conf_state), CARELOG_ENOMEM (nothing stays allocated).
 */
int consensus_create(const struct consensus_config *config,
                     const struct consensus_hard_state *hard_state,
                     const struct consensus_conf_state *conf_state, struct consensus **out);
/* Frees everything the core holds, including an unadvanced ready batch. Accepts NULL. */
void consensus_destroy(struct consensus *c);

/* Advances logical time by one tick (elections, heartbeats, check-quorum, transfer timeout).
 * Errors come only from an election it starts: the log ops' errors or CARELOG_ENOMEM. */
int consensus_tick(struct consensus *c);
/*
 * Handles one message; copies what it keeps. Messages for another node or from a stale term
 * are dropped (CARELOG_OK), as are appends a full unstable log cannot take. Errors:
 * CARELOG_EINVAL (NULL), CARELOG_EPROTO (unknown type; entries on a non-APPEND; entries not
 * consecutive after m->index, of a later term than the message, or more than
 * CONSENSUS_APPEND_ENTRIES_MAX; an ack beyond the leader's log), CARELOG_ENOMEM (the message's
 * effect on the log is not applied; the sender retries), or the log ops' errors.
 */
int consensus_step(struct consensus *c, const struct consensus_message *m);
/* Leader only: CARELOG_ENOTLEADER elsewhere, CARELOG_EBUSY past the uncommitted cap or with
 * CONSENSUS_UNSTABLE_ENTRIES_MAX - 1 entries awaiting persistence, CARELOG_ECLOSED while a
 * leadership transfer is in progress, CARELOG_ENOMEM, CARELOG_EINVAL (NULL data with a
 * length). On success *out_index (may be NULL) is the index the entry will have if committed
 * in this term. Data is copied. */
int consensus_propose(struct consensus *c, const uint8_t *data, uint32_t data_len,
                      uint64_t *out_index);
/* One entry of a batch proposal (data copied by the core). */
struct consensus_proposal {
	const uint8_t *data;
	uint32_t data_len;
};

/* Proposes `count` entries in order with one append message per follower for all of them
 * (group commit on the leader). Stops at the first entry refused and returns its error (as
 * consensus_propose); the entries before it are proposed: *out_proposed says how many, and
 * *out_first_index (may be NULL) is the first one's index when *out_proposed > 0. */
int consensus_propose_batch(struct consensus *c, const struct consensus_proposal *items,
                            size_t count, size_t *out_proposed, uint64_t *out_first_index);
/* As consensus_propose for a CONF entry (data = consensus_conf_encode(cc, context)), plus:
 * CARELOG_EBUSY while an earlier conf change is not yet applied; CARELOG_EINVAL if `cc` is
 * malformed or would be refused when applied to the current configuration (removing every
 * voter, more than members_max members, a new change while joint, leaving when not joint). */
int consensus_propose_conf_change(struct consensus *c, const struct consensus_conf_change *cc,
                                  const uint8_t *context, uint32_t context_len,
                                  uint64_t *out_index);
/* Requests a linearizable read point (Raft thesis 6.4); answered in a later ready batch's
 * read_states with the same ctx. From followers and learners the request goes to the leader.
 * An answer may never come (leader change, lost message): time out and retry. Errors:
 * CARELOG_ENOTLEADER (not the leader and no leader known), CARELOG_EBUSY (the leader holds
 * read_index_max pending requests). */
int consensus_read_index(struct consensus *c, uint64_t ctx);
/* Leader only (CARELOG_ENOTLEADER): hands leadership to voter `to` (thesis 3.10): catches it
 * up, then sends it TIMEOUT_NOW; proposals get CARELOG_ECLOSED until the transfer ends or
 * is abandoned after an election timeout. CARELOG_ENOTFOUND if `to` is not a member,
 * CARELOG_EINVAL if it is a learner. Transferring to ourselves does nothing. */
int consensus_transfer_leader(struct consensus *c, consensus_node_id to);
/* Starts an election now (tests, single-voter bootstrap). Does nothing on a leader, a
 * learner, a non-member, or while a committed conf change awaits apply. */
int consensus_campaign(struct consensus *c);

/* Called by the node when it applies a CONF entry (inside or outside a ready batch); the
 * change takes effect now. CARELOG_EINVAL if it is invalid for the current configuration
 * (which then stays; every node judges alike). The returned conf state points into the core's
 * memory, valid until the next call into the core. A leader that is no longer a voter steps
 * down here. */
int consensus_apply_conf_change(struct consensus *c, const struct consensus_conf_change *cc,
                                struct consensus_conf_state *out_conf_state);

/* False while a ready batch is outstanding. */
bool consensus_has_ready(const struct consensus *c);
/* Fills `out` (see struct consensus_ready). Errors: CARELOG_EINVAL (NULL), CARELOG_ENOMEM or
 * the log ops' errors while copying committed entries; then nothing was handed out. */
int consensus_ready(struct consensus *c, struct consensus_ready *out);
/* Everything in `rd` was persisted, sent and handed to apply. */
void consensus_advance(struct consensus *c, const struct consensus_ready *rd);

enum consensus_progress_state {
	CONSENSUS_PROGRESS_PROBE = 0,     /* one append at a time until the follower matches */
	CONSENSUS_PROGRESS_REPLICATE = 1, /* pipelined appends within the inflight window */
};

struct consensus_progress {
	consensus_node_id id;
	bool voter; /* in the incoming or outgoing voters */
	uint64_t match;
	uint64_t next;
	uint8_t state; /* enum consensus_progress_state */
	bool recent_active;
	uint32_t inflight_count;
};

struct consensus_status {
	consensus_node_id id;
	struct consensus_hard_state hard_state;
	struct consensus_soft_state soft_state;
	uint64_t applied;
	consensus_node_id transferee;
	uint64_t messages_dropped; /* outgoing messages lost to a full outbox since create */
	uint32_t progress_count;   /* leader only */
	const struct consensus_progress *progress; /* valid until the next call into the core */
};

void consensus_get_status(const struct consensus *c, struct consensus_status *out);

#endif
