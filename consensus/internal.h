/* Internal state of the consensus core, shared by its source files (never installed). */
#ifndef CARELOG_CONSENSUS_INTERNAL_H
#define CARELOG_CONSENSUS_INTERNAL_H

#include "consensus/consensus.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	/* Per-member vote record during an election. */
	CS_VOTE_NONE = 0,
	CS_VOTE_GRANTED = 1,
	CS_VOTE_REJECTED = 2,
};

enum cs_quorum_result {
	CS_QUORUM_PENDING = 0,
	CS_QUORUM_LOST = 1,
	CS_QUORUM_WON = 2,
};

/* What the leader knows of one member (etcd-io/raft tracker.Progress; Raft paper 5.3). */
struct cs_progress {
	consensus_node_id id;
	uint64_t match;
	uint64_t next;
	uint8_t state;      /* enum consensus_progress_state */
	bool probe_sent;    /* probe state: an append is out, wait for its answer */
	bool recent_active; /* heard from it since the last check-quorum round */
	uint8_t vote;       /* CS_VOTE_* in the current election */
	uint64_t read_ack;  /* highest read sequence this member's heartbeat answer echoed */
	/* Ring of in-flight appends: last index and entry bytes of each (Raft thesis 10.2.1). */
	uint64_t *inflight_index;
	uint64_t *inflight_bytes;
	uint32_t inflight_start;
	uint32_t inflight_count;
	uint64_t inflight_bytes_total;
};

/* Entries an outgoing message owns: an array of `capacity` slots, the first entries_count used. */
struct cs_owned_entries {
	struct consensus_entry *entries;
	uint32_t capacity;
};

/* A membership: voters (incoming, outgoing while joint), learners (thesis 4.2.1, 4.3). */
struct cs_conf {
	consensus_node_id *voters;
	uint32_t voters_count;
	consensus_node_id *voters_outgoing;
	uint32_t voters_outgoing_count;
	consensus_node_id *learners;
	uint32_t learners_count;
	consensus_node_id *learners_next;
	uint32_t learners_next_count;
	bool auto_leave;
};

/* One pending ReadIndex request (thesis 6.4). */
struct cs_read_request {
	consensus_node_id from; /* the asking node; our own id for local requests */
	uint64_t ctx;
	uint64_t index; /* the commit index when it became active */
	uint64_t seq;   /* 0 until active (the leader has committed in its term) */
};

struct consensus {
	/* Configuration (copied at create). */
	consensus_node_id id;
	uint32_t election_ticks;
	uint32_t heartbeat_ticks;
	bool pre_vote;
	bool check_quorum;
	uint32_t members_max;
	uint32_t inflight_msgs_max;
	uint64_t inflight_bytes_max;
	uint64_t append_bytes_max;
	uint64_t uncommitted_bytes_max;
	uint64_t ready_bytes_max;
	uint32_t read_index_max;
	uint32_t messages_max;
	const struct consensus_allocator *alloc;
	const struct consensus_log_ops *log;
	uint64_t prng_state;

	/* Persistent state (Raft paper Figure 2) and what the last ready batch handed out. */
	uint64_t term;
	consensus_node_id vote;
	uint64_t commit;
	struct consensus_hard_state prev_hard_state;
	struct consensus_soft_state prev_soft_state;

	/* Volatile state. */
	uint8_t role;
	consensus_node_id leader;
	uint64_t applied;
	uint32_t election_elapsed;
	uint32_t heartbeat_elapsed;
	uint32_t election_timeout_randomized;
	consensus_node_id transferee; /* leadership transfer target (thesis 3.10) */
	uint64_t pending_conf_index;  /* last conf entry this leader appended */
	uint64_t leader_first_index;  /* this leader's no-op: committed in term once commit >= it */
	uint64_t uncommitted_bytes;   /* payload bytes this leader appended, not yet applied */
	bool in_ready;                /* between consensus_ready and consensus_advance */
	struct consensus_hard_state ready_hard_state; /* handed out by the current ready */
	struct consensus_soft_state ready_soft_state;

	/* Membership in force and the progress of every member. */
	struct cs_conf conf;
	struct cs_conf conf_scratch; /* the next configuration while it is being validated */
	struct cs_progress *progress;
	uint64_t *inflight_rings; /* the block the progress slots' rings are cut from */
	uint32_t progress_count;
	uint64_t *scratch_u64; /* members_max values for quorum computations */
	struct consensus_progress *status_progress;

	/* Unstable log: entries not yet handed out for persistence, from unstable_offset on. */
	struct consensus_entry *unstable;
	uint32_t unstable_count;
	uint64_t unstable_offset;
	uint32_t unstable_handed_out; /* prefix given to the caller in the current ready */

	/* Outgoing messages; entries of each are owned copies in msg_entries. */
	struct consensus_message *msgs;
	struct cs_owned_entries *msg_entries;
	uint32_t msgs_count;
	uint32_t msgs_handed_out;
	struct consensus_message *msgs_early;
	struct cs_owned_entries *msgs_early_entries;
	uint32_t msgs_early_count;
	uint32_t msgs_early_handed_out;
	uint64_t msgs_dropped;

	/* Committed entries handed out in the current ready; the first `committed_owned` have data
	 * allocated by the log ops (freed at advance), the rest borrow unstable data. */
	struct consensus_entry *committed;
	uint32_t committed_count;
	uint32_t committed_owned;

	/* ReadIndex. */
	struct cs_read_request *reads;
	uint32_t reads_count;
	uint64_t read_seq;
	struct consensus_read_state *read_states;
	uint32_t read_states_count;
	uint32_t read_states_handed_out;
};

/* consensus.c: allocation helpers and the PRNG. */
void *cs_alloc(struct consensus *c, size_t size_bytes);
void cs_free(struct consensus *c, void *ptr, size_t size_bytes);
uint64_t cs_random(struct consensus *c);
void cs_entry_free_data(struct consensus *c, struct consensus_entry *e);

/* log.c: the unstable suffix over the caller's stable log (Raft paper 5.3). */
uint64_t cs_log_last_index(const struct consensus *c);
int cs_log_term(const struct consensus *c, uint64_t index, uint64_t *out_term);
int cs_log_last_term(const struct consensus *c, uint64_t *out_term);
int cs_log_match_term(const struct consensus *c, uint64_t index, uint64_t term, bool *out_match);
int cs_log_is_up_to_date(const struct consensus *c, uint64_t last_index, uint64_t last_term,
                         bool *out_ok);
int cs_log_append(struct consensus *c, const struct consensus_entry *entries, uint32_t count);
int cs_log_find_conflict_by_term(const struct consensus *c, uint64_t index, uint64_t term,
                                 uint64_t floor, uint64_t *out_index, uint64_t *out_term);
int cs_log_copy_entries(struct consensus *c, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                        uint32_t count_max, struct consensus_entry *out, uint32_t *out_count);
uint64_t cs_log_stable_index(const struct consensus *c);
int cs_log_has_conf_between(struct consensus *c, uint64_t lo, uint64_t hi, bool *out_has);
void cs_log_drop_unstable(struct consensus *c, uint32_t count);
bool cs_log_has_room(const struct consensus *c);
void cs_entries_free(struct consensus *c, struct consensus_entry *entries, uint32_t count);

/* send.c: the outbox. */
bool cs_message_is_early(const struct consensus *c, const struct consensus_message *m);
void cs_send(struct consensus *c, struct consensus_message *m, struct consensus_entry *owned,
             uint32_t owned_capacity);
void cs_messages_release(struct consensus *c);
void cs_outbox_drop_acks_from(struct consensus *c, uint64_t index);
void cs_outbox_drop_votes_before(struct consensus *c, uint64_t term);

/* tracker.c / quorum: progress and majorities (thesis 4.3 for joint majorities). */
struct cs_progress *cs_progress_find(struct consensus *c, consensus_node_id id);
bool cs_conf_is_voter(const struct cs_conf *conf, consensus_node_id id);
bool cs_conf_is_joint(const struct cs_conf *conf);
bool cs_conf_is_member(const struct cs_conf *conf, consensus_node_id id);
bool cs_promotable(const struct consensus *c);
uint64_t cs_quorum_committed_index(struct consensus *c);
uint64_t cs_quorum_read_seq(struct consensus *c);
enum cs_quorum_result cs_quorum_vote_result(const struct consensus *c);
bool cs_quorum_active(const struct consensus *c);
bool cs_single_voter(const struct consensus *c);
void cs_progress_reset_all(struct consensus *c);
void cs_progress_init(struct consensus *c, struct cs_progress *pr, consensus_node_id id);

/* replication.c: flow control and appends (Raft paper 5.3, thesis 10.2). */
bool cs_progress_is_paused(const struct consensus *c, const struct cs_progress *pr);
void cs_progress_become_probe(struct consensus *c, struct cs_progress *pr);
void cs_progress_become_replicate(struct consensus *c, struct cs_progress *pr);
bool cs_progress_maybe_update(struct cs_progress *pr, uint64_t index);
bool cs_progress_maybe_decr_to(struct cs_progress *pr, uint64_t rejected, uint64_t hint);
void cs_inflights_free_to(const struct consensus *c, struct cs_progress *pr, uint64_t index);
void cs_inflights_free_first(const struct consensus *c, struct cs_progress *pr);
bool cs_inflights_full(const struct consensus *c, const struct cs_progress *pr);
int cs_send_append(struct consensus *c, struct cs_progress *pr, bool send_if_empty, bool *out_sent);
int cs_bcast_append(struct consensus *c);
void cs_bcast_heartbeat(struct consensus *c);
void cs_send_heartbeat(struct consensus *c, struct cs_progress *pr);
int cs_maybe_commit(struct consensus *c, bool *out_committed);
/* Appends one entry of this leader's term; takes `data_owned`. The caller checked room. */
int cs_append_local(struct consensus *c, uint8_t type, uint8_t *data_owned, uint32_t data_len,
                    uint64_t *out_index);
int cs_leader_persisted(struct consensus *c);
void cs_send_timeout_now(struct consensus *c, consensus_node_id to);

/* election.c: roles and elections (Raft paper 5.2, thesis 9.6 pre-vote, 6.2 check-quorum). */
void cs_become_follower(struct consensus *c, uint64_t term, consensus_node_id leader);
int cs_become_leader(struct consensus *c);
int cs_campaign(struct consensus *c, bool pre_vote, bool transfer);
int cs_hup(struct consensus *c, bool transfer);
int cs_tally(struct consensus *c, consensus_node_id from, bool granted);
void cs_reset_randomized_timeout(struct consensus *c);
int cs_tick_election(struct consensus *c);
int cs_tick_heartbeat(struct consensus *c);
void cs_abort_transfer(struct consensus *c);
void cs_set_term(struct consensus *c, uint64_t term);

/* recv_*.c: one handler per message type. */
void cs_follow_sender(struct consensus *c, const struct consensus_message *m);
int cs_recv_append(struct consensus *c, const struct consensus_message *m);
int cs_recv_append_resp(struct consensus *c, const struct consensus_message *m);
int cs_recv_heartbeat(struct consensus *c, const struct consensus_message *m);
int cs_recv_heartbeat_resp(struct consensus *c, const struct consensus_message *m);
int cs_recv_vote(struct consensus *c, const struct consensus_message *m);
int cs_recv_vote_resp(struct consensus *c, const struct consensus_message *m);
int cs_recv_timeout_now(struct consensus *c, const struct consensus_message *m);
int cs_recv_read_index(struct consensus *c, const struct consensus_message *m);
int cs_recv_read_index_resp(struct consensus *c, const struct consensus_message *m);

/* readindex.c (thesis 6.4). */
int cs_read_request(struct consensus *c, consensus_node_id from, uint64_t ctx);
void cs_reads_activate(struct consensus *c);
void cs_reads_release_confirmed(struct consensus *c);
void cs_reads_clear(struct consensus *c);
void cs_read_state_add(struct consensus *c, uint64_t index, uint64_t ctx);
bool cs_committed_in_term(const struct consensus *c);

/* confchange.c (thesis 4.3, etcd-io/raft confchange). */
int cs_conf_alloc(struct consensus *c, struct cs_conf *conf);
void cs_conf_free(struct consensus *c, struct cs_conf *conf);
int cs_conf_load(struct consensus *c, const struct consensus_conf_state *cs);
void cs_conf_export(const struct consensus *c, struct consensus_conf_state *out);

#endif
