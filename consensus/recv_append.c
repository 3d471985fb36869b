/* Follower side of AppendEntries: the consistency check, conflict truncation, commit, and the
 * fast-backtracking hint on rejection (Raft paper 5.3, Figure 2 receiver rules 1-5). */
#include "consensus/internal.h"

/* A leader's message in our term makes us its follower and restarts the election timer. */
void cs_follow_sender(struct consensus *c, const struct consensus_message *m)
{
	if (c->role != CONSENSUS_ROLE_FOLLOWER) {
		cs_become_follower(c, m->term, m->from);
	}
	c->leader = m->from;
	c->election_elapsed = 0;
}

static bool entries_well_formed(const struct consensus_message *m)
{
	if (m->entries_count > CONSENSUS_APPEND_ENTRIES_MAX) {
		return false;
	}
	uint64_t prev_term = m->log_term;
	for (uint32_t i = 0; i < m->entries_count; i++) {
		const struct consensus_entry *e = &m->entries[i];
		if (e->index != m->index + 1 + i || e->term < prev_term || e->term > m->term ||
		    (e->data_len > 0 && e->data == NULL)) {
			return false;
		}
		prev_term = e->term;
	}
	return true;
}

/* Appends what is new in `m` (its prefix already matches: receiver rule 3 truncates only at
 * the first conflict, so a delayed, shorter append never cuts entries we acknowledged). */
static int append_new(struct consensus *c, const struct consensus_message *m)
{
	for (uint32_t i = 0; i < m->entries_count; i++) {
		bool match;
		int rc = cs_log_match_term(c, m->entries[i].index, m->entries[i].term, &match);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (!match) {
			/* Leader completeness: a committed entry never conflicts. */
			CL_ASSERT(m->entries[i].index > c->commit);
			return cs_log_append(c, m->entries + i, m->entries_count - i);
		}
	}
	return CARELOG_OK;
}

int cs_recv_append(struct consensus *c, const struct consensus_message *m)
{
	if (c->role == CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK; /* two leaders in one term cannot happen (paper 5.2) */
	}
	if (!entries_well_formed(m)) {
		return CARELOG_EPROTO;
	}
	cs_follow_sender(c, m);
	struct consensus_message r = {
	    .type = CONSENSUS_MSG_APPEND_RESP,
	    .to = m->from,
	    .term = c->term,
	};
	if (m->index < c->commit) {
		/* Everything up to our commit matches the leader already. */
		r.index = c->commit;
		cs_send(c, &r, NULL, 0);
		return CARELOG_OK;
	}
	bool match;
	int rc = cs_log_match_term(c, m->index, m->log_term, &match);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (match) {
		rc = append_new(c, m);
		if (rc == CARELOG_EBUSY) {
			return CARELOG_OK; /* unstable log full: dropped, the leader retransmits */
		}
		if (rc != CARELOG_OK) {
			return rc;
		}
		uint64_t last_new = m->index + m->entries_count;
		/* Receiver rule 5; the ack names only what this message proved to match, never our
		 * last index (which may hold stale entries past it). */
		uint64_t commit = m->commit < last_new ? m->commit : last_new;
		if (commit > c->commit) {
			c->commit = commit;
		}
		r.index = last_new;
		cs_send(c, &r, NULL, 0);
		return CARELOG_OK;
	}
	/* Receiver rule 2 with a hint: the largest index <= the probed one whose term is <= the
	 * leader's term there; everything above it cannot match (thesis 5.3 optimisation). */
	uint64_t last = cs_log_last_index(c);
	uint64_t hint = m->index < last ? m->index : last;
	uint64_t hint_term;
	rc = cs_log_find_conflict_by_term(c, hint, m->log_term, c->commit, &hint, &hint_term);
	if (rc != CARELOG_OK) {
		return rc;
	}
	r.reject = true;
	r.index = m->index;
	r.reject_hint = hint;
	r.log_term = hint_term;
	cs_send(c, &r, NULL, 0);
	return CARELOG_OK;
}
