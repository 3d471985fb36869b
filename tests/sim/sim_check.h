/* The simulator's invariants: a global history of the run and the checks made against it. */
#ifndef CARELOG_SIM_CHECK_H
#define CARELOG_SIM_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/consensus.h"
#include "sim_disk.h"

/* The first violated invariant of a run; later ones are ignored (they are usually echoes). */
struct sim_violation {
	bool set;
	char invariant[64];
	char detail[512];
};

void sim_violation_set(struct sim_violation *v, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One persisted vote: `voter` durably voted for `candidate` in `term`. */
struct sim_vote {
	uint64_t term;
	consensus_node_id voter;
	consensus_node_id candidate;
};

/* What the run knows to be committed at one index (from some node's durable commit). */
struct sim_committed {
	uint64_t term;
	uint64_t prefix_hash;
	/* Term of the first node that reported this index committed: the entry was committed by
	 * the leader of this term or an earlier one, so every leader of a later term holds it. */
	uint64_t commit_term;
};

struct sim_lm_slot {
	uint64_t index; /* 0 = empty */
	uint64_t term;
	uint64_t prefix_hash;
};

struct sim_history {
	consensus_node_id *leader_of_term; /* indexed by term; 0 = none seen */
	uint64_t terms_cap;

	struct sim_vote *votes;
	uint64_t votes_count, votes_cap;

	struct sim_lm_slot *lm; /* open addressing on (index, term) */
	uint64_t lm_count, lm_cap;

	struct sim_committed *committed; /* committed[i - 1] for index i */
	uint64_t commit_max, committed_cap;

	uint64_t *chain_at; /* chain_at[i - 1]: the chain head after applying index i */
	uint64_t chain_len, chain_cap;

	uint64_t *proposal_index; /* by proposal id: where it was applied (0 = not yet) */
	uint64_t proposals_cap;
	uint64_t acked_count;
	uint64_t acked_index_max; /* a read that starts now must return at least this */
	struct sim_acked {
		uint64_t id;
		uint64_t index;
	} * acked; /* every acknowledged proposal, in acknowledgement order */
	uint64_t acked_cap;
};

void sim_history_init(struct sim_history *h);
void sim_history_free(struct sim_history *h);

/* Election safety: at most one leader per term. */
void sim_check_leader(struct sim_history *h, struct sim_violation *v, uint64_t term,
                      consensus_node_id id);
/* Records that `voter` durably voted for `candidate` in `term`. */
void sim_history_record_vote(struct sim_history *h, uint64_t term, consensus_node_id voter,
                             consensus_node_id candidate);
/* A new leader holds durable votes from a quorum of its configuration (each half if joint). */
void sim_check_vote_quorum(const struct sim_history *h, struct sim_violation *v, uint64_t term,
                           consensus_node_id leader, const struct sim_conf *conf);

/*
 * After entries [first, last] were written to `d`: log matching (same index and term => same
 * prefix), leader append-only (a leader never truncates), and leader completeness (an entry of a
 * term at least that of the committed entry at its index must be the committed entry).
 */
void sim_check_log_write(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                         const struct sim_disk *d, uint64_t first, uint64_t last,
                         uint64_t truncated_from, bool is_leader);
/* A node's commit index agrees with every other commit seen (state machine safety); records it. */
void sim_check_commit(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                      const struct sim_disk *d, uint64_t commit, uint64_t term);
/* A new leader's log holds every committed entry (leader completeness, Raft §5.4.1). */
void sim_check_leader_complete(const struct sim_history *h, struct sim_violation *v,
                               consensus_node_id node, const struct sim_disk *d, uint64_t term);
/* A term, vote or commit going backwards, or a vote changing within a term. */
void sim_check_hard_state(struct sim_violation *v, consensus_node_id node, const char *what,
                          const struct consensus_hard_state *before,
                          const struct consensus_hard_state *after);
/* Every node applies the same sequence: the chain at `index` is the same everywhere. */
void sim_check_apply(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                     uint64_t index, uint64_t chain);
/* A proposal id applied twice (a duplicated client write). */
void sim_check_proposal_applied(struct sim_history *h, struct sim_violation *v,
                                consensus_node_id node, uint64_t id, uint64_t index);
void sim_history_ack(struct sim_history *h, uint64_t id, uint64_t index);
/* No acknowledged proposal is lost: each is at its index in `d` (a log that reaches it).
 * `id_at` reads the proposal id of an entry (0 if none). */
void sim_check_acked_present(const struct sim_history *h, struct sim_violation *v,
                             consensus_node_id node, const struct sim_disk *d,
                             uint64_t (*id_at)(const struct sim_log_entry *e));
/* A ReadIndex read that started when acked_index_max was `required` returned `read_index`. */
void sim_check_read(struct sim_violation *v, consensus_node_id node, uint64_t ctx,
                    uint64_t read_index, uint64_t required);

#endif
