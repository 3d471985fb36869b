/* The simulator's invariant checks (Raft §5.2-5.4, thesis ch. 4 and 6.4) over a run's history. */
#include "sim_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "sim_prng.h"

void sim_violation_set(struct sim_violation *v, const char *invariant, const char *fmt, ...)
{
	if (v->set) {
		return;
	}
	v->set = true;
	snprintf(v->invariant, sizeof(v->invariant), "%s", invariant);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
	va_end(ap);
}

static void sim_grow_array(void **buf, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap) {
		return;
	}
	uint64_t ncap = *cap == 0 ? 64 : *cap;
	while (ncap < need) {
		ncap *= 2;
	}
	uint8_t *p = realloc(*buf, (size_t)ncap * elem);
	CL_ASSERT(p != NULL);
	memset(p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
	*buf = p;
	*cap = ncap;
}

void sim_history_init(struct sim_history *h)
{
	memset(h, 0, sizeof(*h));
}

void sim_history_free(struct sim_history *h)
{
	if (h == NULL) {
		return;
	}
	free(h->leader_of_term);
	free(h->votes);
	free(h->lm);
	free(h->committed);
	free(h->chain_at);
	free(h->proposal_index);
	free(h->acked);
	memset(h, 0, sizeof(*h));
}

void sim_check_leader(struct sim_history *h, struct sim_violation *v, uint64_t term,
                      consensus_node_id id)
{
	sim_grow_array((void **)&h->leader_of_term, &h->terms_cap, term + 1,
	               sizeof(*h->leader_of_term));
	consensus_node_id seen = h->leader_of_term[term];
	if (seen == 0) {
		h->leader_of_term[term] = id;
	} else if (seen != id) {
		sim_violation_set(v, "election safety",
		                  "two leaders in term %" PRIu64 ": n%" PRIu64 " and n%" PRIu64,
		                  term, seen, id);
	}
}

void sim_history_record_vote(struct sim_history *h, uint64_t term, consensus_node_id voter,
                             consensus_node_id candidate)
{
	sim_grow_array((void **)&h->votes, &h->votes_cap, h->votes_count + 1, sizeof(*h->votes));
	h->votes[h->votes_count++] = (struct sim_vote){term, voter, candidate};
}

static bool sim_voted(const struct sim_history *h, uint64_t term, consensus_node_id voter,
                      consensus_node_id candidate)
{
	for (uint64_t i = h->votes_count; i > 0; i--) {
		const struct sim_vote *r = &h->votes[i - 1];
		if (r->term == term && r->voter == voter && r->candidate == candidate) {
			return true;
		}
	}
	return false;
}

static bool sim_majority_voted(const struct sim_history *h, uint64_t term, consensus_node_id leader,
                               const consensus_node_id *voters, uint32_t count,
                               uint32_t *out_granted)
{
	uint32_t granted = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (sim_voted(h, term, voters[i], leader)) {
			granted++;
		}
	}
	*out_granted = granted;
	return granted > count / 2;
}

void sim_check_vote_quorum(const struct sim_history *h, struct sim_violation *v, uint64_t term,
                           consensus_node_id leader, const struct sim_conf *conf)
{
	uint32_t granted = 0;
	if (conf->voters_count == 0 ||
	    !sim_majority_voted(h, term, leader, conf->voters, conf->voters_count, &granted)) {
		sim_violation_set(v, "leader elected by a quorum of durable votes",
		                  "n%" PRIu64 " leads term %" PRIu64 " with %u of %u durable votes",
		                  leader, term, granted, conf->voters_count);
		return;
	}
	if (conf->outgoing_count != 0 &&
	    !sim_majority_voted(h, term, leader, conf->outgoing, conf->outgoing_count, &granted)) {
		sim_violation_set(v, "leader elected by a quorum of durable votes",
		                  "n%" PRIu64 " leads term %" PRIu64
		                  " with %u of %u durable votes of the outgoing (joint) voters",
		                  leader, term, granted, conf->outgoing_count);
	}
}

static uint64_t sim_lm_hash(uint64_t index, uint64_t term)
{
	return sim_fnv_u64(sim_fnv_u64(sim_fnv_init(), index), term);
}

static struct sim_lm_slot *sim_lm_find(struct sim_history *h, uint64_t index, uint64_t term)
{
	if (h->lm_count * 2 + 2 > h->lm_cap) {
		uint64_t old_cap = h->lm_cap;
		struct sim_lm_slot *old = h->lm;
		h->lm_cap = old_cap == 0 ? 1024 : old_cap * 2;
		h->lm = calloc((size_t)h->lm_cap, sizeof(*h->lm));
		CL_ASSERT(h->lm != NULL);
		for (uint64_t i = 0; i < old_cap; i++) {
			if (old[i].index == 0) {
				continue;
			}
			uint64_t j = sim_lm_hash(old[i].index, old[i].term) & (h->lm_cap - 1);
			while (h->lm[j].index != 0) {
				j = (j + 1) & (h->lm_cap - 1);
			}
			h->lm[j] = old[i];
		}
		free(old);
	}
	uint64_t j = sim_lm_hash(index, term) & (h->lm_cap - 1);
	while (h->lm[j].index != 0 && (h->lm[j].index != index || h->lm[j].term != term)) {
		j = (j + 1) & (h->lm_cap - 1);
	}
	return &h->lm[j];
}

void sim_check_log_write(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                         const struct sim_disk *d, uint64_t first, uint64_t last,
                         uint64_t truncated_from, bool is_leader)
{
	if (truncated_from != 0 && is_leader) {
		sim_violation_set(v, "leader append-only",
		                  "leader n%" PRIu64 " truncated its own log from index %" PRIu64,
		                  node, truncated_from);
		return;
	}
	for (uint64_t i = first; i <= last; i++) {
		const struct sim_log_entry *e = sim_disk_entry(d, i);
		CL_ASSERT(e != NULL);
		struct sim_lm_slot *slot = sim_lm_find(h, i, e->term);
		if (slot->index == 0) {
			slot->index = i;
			slot->term = e->term;
			slot->prefix_hash = e->prefix_hash;
			h->lm_count++;
		} else if (slot->prefix_hash != e->prefix_hash) {
			sim_violation_set(v, "log matching",
			                  "n%" PRIu64 " wrote index %" PRIu64 " term %" PRIu64
			                  " with a different entry or prefix than another node",
			                  node, i, e->term);
			return;
		}
		if (i <= h->commit_max) {
			const struct sim_committed *c = &h->committed[i - 1];
			if (e->term > c->commit_term && e->prefix_hash != c->prefix_hash) {
				sim_violation_set(v, "leader completeness",
				                  "n%" PRIu64 " wrote index %" PRIu64
				                  " term %" PRIu64
				                  " over the entry committed there (term %" PRIu64
				                  ", committed by term %" PRIu64 ")",
				                  node, i, e->term, c->term, c->commit_term);
				return;
			}
		}
	}
}

void sim_check_commit(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                      const struct sim_disk *d, uint64_t commit, uint64_t term)
{
	if (commit > d->log_len) {
		sim_violation_set(v, "commit within the durable log",
		                  "n%" PRIu64 " made commit %" PRIu64 " durable with only %" PRIu64
		                  " entries",
		                  node, commit, d->log_len);
		return;
	}
	uint64_t common = commit < h->commit_max ? commit : h->commit_max;
	if (common != 0 && sim_disk_prefix(d, common) != h->committed[common - 1].prefix_hash) {
		/* Find the first disagreeing index for the report. */
		uint64_t i = 1;
		while (i < common && sim_disk_prefix(d, i) == h->committed[i - 1].prefix_hash) {
			i++;
		}
		sim_violation_set(v, "state machine safety (committed entries agree)",
		                  "n%" PRIu64 " has commit %" PRIu64 " but its entry at %" PRIu64
		                  " (term %" PRIu64
		                  ") differs from the one committed there (term %" PRIu64 ")",
		                  node, commit, i, sim_disk_term(d, i), h->committed[i - 1].term);
		return;
	}
	if (commit <= h->commit_max) {
		return;
	}
	sim_grow_array((void **)&h->committed, &h->committed_cap, commit, sizeof(*h->committed));
	for (uint64_t i = h->commit_max + 1; i <= commit; i++) {
		const struct sim_log_entry *e = sim_disk_entry(d, i);
		h->committed[i - 1] = (struct sim_committed){
		    .term = e->term, .prefix_hash = e->prefix_hash, .commit_term = term};
	}
	h->commit_max = commit;
}

void sim_check_leader_complete(const struct sim_history *h, struct sim_violation *v,
                               consensus_node_id node, const struct sim_disk *d, uint64_t term)
{
	/* Entries committed by the leader of `term` or a later one need not be here yet (a
	 * candidate's last vote can arrive after later terms committed); all others must. */
	uint64_t need = 0;
	for (uint64_t i = h->commit_max; i > 0; i--) {
		if (h->committed[i - 1].commit_term < term) {
			need = i;
			break;
		}
	}
	if (need == 0) {
		return;
	}
	if (d->log_len < need || sim_disk_prefix(d, need) != h->committed[need - 1].prefix_hash) {
		sim_violation_set(v, "leader completeness",
		                  "n%" PRIu64 " became leader of term %" PRIu64 " with %" PRIu64
		                  " durable entries, without the committed entries up to %" PRIu64,
		                  node, term, d->log_len, need);
	}
}

void sim_check_hard_state(struct sim_violation *v, consensus_node_id node, const char *what,
                          const struct consensus_hard_state *before,
                          const struct consensus_hard_state *after)
{
	if (after->term < before->term) {
		sim_violation_set(v, "term never decreases",
		                  "n%" PRIu64 " %s term %" PRIu64 " -> %" PRIu64, node, what,
		                  before->term, after->term);
	} else if (after->term == before->term && before->vote != 0 &&
	           after->vote != before->vote) {
		sim_violation_set(v, "one vote per term",
		                  "n%" PRIu64 " %s changed its vote in term %" PRIu64
		                  " from n%" PRIu64 " to n%" PRIu64,
		                  node, what, after->term, before->vote, after->vote);
	} else if (after->commit < before->commit) {
		sim_violation_set(v, "commit never decreases",
		                  "n%" PRIu64 " %s commit %" PRIu64 " -> %" PRIu64, node, what,
		                  before->commit, after->commit);
	}
}

void sim_check_apply(struct sim_history *h, struct sim_violation *v, consensus_node_id node,
                     uint64_t index, uint64_t chain)
{
	CL_ASSERT(index >= 1);
	if (index > h->chain_len) {
		CL_ASSERT(index == h->chain_len + 1); /* nodes apply contiguously */
		sim_grow_array((void **)&h->chain_at, &h->chain_cap, index, sizeof(*h->chain_at));
		h->chain_at[index - 1] = chain;
		h->chain_len = index;
		return;
	}
	if (h->chain_at[index - 1] != chain) {
		sim_violation_set(v, "same applied sequence everywhere",
		                  "n%" PRIu64 " chain at applied index %" PRIu64 " is %016" PRIx64
		                  ", first applier had %016" PRIx64,
		                  node, index, chain, h->chain_at[index - 1]);
	}
}

void sim_check_proposal_applied(struct sim_history *h, struct sim_violation *v,
                                consensus_node_id node, uint64_t id, uint64_t index)
{
	sim_grow_array((void **)&h->proposal_index, &h->proposals_cap, id + 1,
	               sizeof(*h->proposal_index));
	uint64_t seen = h->proposal_index[id];
	if (seen == 0) {
		h->proposal_index[id] = index;
	} else if (seen != index) {
		sim_violation_set(v, "each proposal applied once",
		                  "n%" PRIu64 " applied proposal %" PRIu64 " at %" PRIu64
		                  ", it was applied at %" PRIu64 " before",
		                  node, id, index, seen);
	}
}

void sim_history_ack(struct sim_history *h, uint64_t id, uint64_t index)
{
	sim_grow_array((void **)&h->acked, &h->acked_cap, h->acked_count + 1, sizeof(*h->acked));
	h->acked[h->acked_count].id = id;
	h->acked[h->acked_count].index = index;
	h->acked_count++;
	if (index > h->acked_index_max) {
		h->acked_index_max = index;
	}
}

void sim_check_read(struct sim_violation *v, consensus_node_id node, uint64_t ctx,
                    uint64_t read_index, uint64_t required)
{
	if (read_index < required) {
		sim_violation_set(v, "linearizable ReadIndex",
		                  "n%" PRIu64 " read ctx %" PRIu64 " got read index %" PRIu64
		                  ", but a write acknowledged before the read began is at %" PRIu64,
		                  node, ctx, read_index, required);
	}
}

void sim_check_acked_present(const struct sim_history *h, struct sim_violation *v,
                             consensus_node_id node, const struct sim_disk *d,
                             uint64_t (*id_at)(const struct sim_log_entry *e))
{
	for (uint64_t i = 0; i < h->acked_count; i++) {
		const struct sim_acked *a = &h->acked[i];
		const struct sim_log_entry *e = sim_disk_entry(d, a->index);
		if (e == NULL) {
			continue; /* this log does not reach it (yet) */
		}
		if (id_at(e) != a->id) {
			sim_violation_set(v, "no acknowledged proposal lost",
			                  "proposal %" PRIu64 " was acknowledged at index %" PRIu64
			                  ", n%" PRIu64 " has another entry there (term %" PRIu64
			                  ")",
			                  a->id, a->index, node, e->term);
			return;
		}
	}
}
