/* Leader side of AppendEntries answers: match/next, probe and replicate states, commit, and
 * leadership-transfer hand-off (Raft paper 5.3, thesis 3.10, 10.2.1). */
#include "consensus/internal.h"

/* Bound on appends sent in one go after an ack: the inflight window already limits them. */
static uint32_t sends_after_ack_max(const struct consensus *c)
{
	return c->inflight_msgs_max + 1;
}

static int on_reject(struct consensus *c, struct cs_progress *pr, const struct consensus_message *m)
{
	uint64_t hint = m->reject_hint;
	if (m->log_term > 0 && hint > 0) {
		/* Skip every entry of ours in a term the follower's hint rules out
		 * (etcd-io/raft findConflictByTerm on the leader side). */
		uint64_t last = cs_log_last_index(c);
		uint64_t from = hint < last ? hint : last;
		uint64_t t;
		int rc = cs_log_find_conflict_by_term(c, from, m->log_term, pr->match, &hint, &t);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
	if (!cs_progress_maybe_decr_to(pr, m->index, hint)) {
		return CARELOG_OK; /* stale rejection */
	}
	if (pr->state == CONSENSUS_PROGRESS_REPLICATE) {
		cs_progress_become_probe(c, pr);
	}
	bool sent;
	return cs_send_append(c, pr, true, &sent);
}

int cs_recv_append_resp(struct consensus *c, const struct consensus_message *m)
{
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK;
	}
	struct cs_progress *pr = cs_progress_find(c, m->from);
	if (pr == NULL) {
		return CARELOG_OK;
	}
	pr->recent_active = true;
	if (m->reject) {
		return on_reject(c, pr, m);
	}
	if (m->index > cs_log_last_index(c)) {
		return CARELOG_EPROTO; /* acks only what we sent in this term */
	}
	bool was_paused = cs_progress_is_paused(c, pr);
	if (!cs_progress_maybe_update(pr, m->index)) {
		return CARELOG_OK;
	}
	if (pr->state == CONSENSUS_PROGRESS_PROBE) {
		cs_progress_become_replicate(c, pr);
	} else {
		cs_inflights_free_to(c, pr, m->index);
	}
	bool committed;
	int rc = cs_maybe_commit(c, &committed);
	if (rc != CARELOG_OK) {
		return rc;
	}
	bool sent = false;
	if (committed) {
		(void)cs_bcast_append(c);
	} else if (was_paused) {
		(void)cs_send_append(c, pr, true, &sent);
	}
	/* Fill the window (thesis 10.2.1 pipelining). */
	for (uint32_t i = 0; i < sends_after_ack_max(c); i++) {
		(void)cs_send_append(c, pr, false, &sent);
		if (!sent) {
			break;
		}
	}
	if (m->from == c->transferee && pr->match == cs_log_last_index(c)) {
		cs_send_timeout_now(c, m->from);
	}
	return CARELOG_OK;
}
