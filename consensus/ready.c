/* The ready batch: what to persist, send, apply and answer; and its acknowledgement
 * (etcd-io/raft rawnode.go Ready/Advance). */
#include "consensus/internal.h"

#include <string.h>

static struct consensus_soft_state soft_state(const struct consensus *c)
{
	struct consensus_soft_state s = {.leader = c->leader, .role = c->role};
	return s;
}

static struct consensus_hard_state hard_state(const struct consensus *c)
{
	struct consensus_hard_state h = {.term = c->term, .vote = c->vote, .commit = c->commit};
	return h;
}

static bool soft_equal(struct consensus_soft_state a, struct consensus_soft_state b)
{
	return a.leader == b.leader && a.role == b.role;
}

static bool hard_equal(struct consensus_hard_state a, struct consensus_hard_state b)
{
	return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

bool consensus_has_ready(const struct consensus *c)
{
	if (c->in_ready) {
		return false;
	}
	return !soft_equal(soft_state(c), c->prev_soft_state) ||
	       !hard_equal(hard_state(c), c->prev_hard_state) || c->unstable_count > 0 ||
	       c->msgs_count > 0 || c->msgs_early_count > 0 || c->read_states_count > 0 ||
	       c->commit > c->applied;
}

int consensus_ready(struct consensus *c, struct consensus_ready *out)
{
	CL_ASSERT(!c->in_ready);
	if (out == NULL) {
		return CARELOG_EINVAL;
	}
	/* Committed entries first: the only part that can fail (storage read, memory). */
	uint32_t n = 0;
	if (c->commit > c->applied) {
		int rc = cs_log_copy_entries(c, c->applied + 1, c->commit + 1, c->ready_bytes_max,
		                             CONSENSUS_READY_ENTRIES_MAX, c->committed, &n);
		if (rc != CARELOG_OK) {
			return rc;
		}
		CL_ASSERT(n > 0 && c->committed[0].index == c->applied + 1);
	}
	c->committed_count = n;
	c->committed_owned = n;

	memset(out, 0, sizeof(*out));
	out->soft_state = soft_state(c);
	out->soft_state_changed = !soft_equal(out->soft_state, c->prev_soft_state);
	out->hard_state = hard_state(c);
	out->hard_state_changed = !hard_equal(out->hard_state, c->prev_hard_state);
	out->entries = c->unstable_count > 0 ? c->unstable : NULL;
	out->entries_count = c->unstable_count;
	out->messages_early = c->msgs_early_count > 0 ? c->msgs_early : NULL;
	out->messages_early_count = c->msgs_early_count;
	out->messages = c->msgs_count > 0 ? c->msgs : NULL;
	out->messages_count = c->msgs_count;
	out->committed = n > 0 ? c->committed : NULL;
	out->committed_count = n;
	out->read_states = c->read_states_count > 0 ? c->read_states : NULL;
	out->read_states_count = c->read_states_count;

	c->unstable_handed_out = c->unstable_count;
	c->msgs_handed_out = c->msgs_count;
	c->msgs_early_handed_out = c->msgs_early_count;
	c->read_states_handed_out = c->read_states_count;
	c->ready_hard_state = out->hard_state;
	c->ready_soft_state = out->soft_state;
	c->in_ready = true;
	return CARELOG_OK;
}

/* Etcd-io/raft auto-leave: once the joint configuration is applied, the leader proposes the
 * empty change that leaves it (thesis 4.3 second phase). */
static void maybe_auto_leave(struct consensus *c)
{
	if (c->role != CONSENSUS_ROLE_LEADER || !c->conf.auto_leave ||
	    !cs_conf_is_joint(&c->conf) || c->applied < c->pending_conf_index ||
	    c->transferee != 0) {
		return;
	}
	struct consensus_conf_change leave = {.transition = CONSENSUS_CONF_TRANSITION_AUTO};
	(void)consensus_propose_conf_change(c, &leave, NULL, 0, NULL);
}

void consensus_advance(struct consensus *c, const struct consensus_ready *rd)
{
	CL_ASSERT(c->in_ready);
	CL_ASSERT(rd == NULL || rd->entries_count == c->unstable_handed_out);
	c->in_ready = false;
	c->prev_hard_state = c->ready_hard_state;
	c->prev_soft_state = c->ready_soft_state;
	bool persisted = c->unstable_handed_out > 0;
	cs_log_drop_unstable(c, c->unstable_handed_out);
	c->unstable_handed_out = 0;
	cs_messages_release(c);

	if (c->committed_count > 0) {
		c->applied = c->committed[c->committed_count - 1].index;
		if (c->role == CONSENSUS_ROLE_LEADER) {
			/* Only this leader's own entries were counted as uncommitted. */
			for (uint32_t i = 0; i < c->committed_count; i++) {
				const struct consensus_entry *e = &c->committed[i];
				if (e->term == c->term) {
					uint64_t b = e->data_len;
					c->uncommitted_bytes =
					    c->uncommitted_bytes > b ? c->uncommitted_bytes - b : 0;
				}
			}
		}
	}
	cs_entries_free(c, c->committed, c->committed_owned);
	c->committed_count = 0;
	c->committed_owned = 0;

	uint32_t rest = c->read_states_count - c->read_states_handed_out;
	memmove(c->read_states, c->read_states + c->read_states_handed_out,
	        rest * sizeof(*c->read_states));
	c->read_states_count = rest;
	c->read_states_handed_out = 0;

	if (c->role == CONSENSUS_ROLE_LEADER && persisted) {
		(void)cs_leader_persisted(c);
	}
	maybe_auto_leave(c);
}
