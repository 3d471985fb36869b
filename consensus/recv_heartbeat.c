/* Heartbeats and their answers: leader liveness, commit propagation, ReadIndex rounds
 * (Raft paper 5.2, thesis 6.2 check-quorum, 6.4 ReadIndex). */
#include "consensus/internal.h"

int cs_recv_heartbeat(struct consensus *c, const struct consensus_message *m)
{
	if (c->role == CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK;
	}
	cs_follow_sender(c, m);
	/* The leader caps the commit at our match, so we hold those entries. */
	if (m->commit > c->commit) {
		CL_ASSERT(m->commit <= cs_log_last_index(c));
		c->commit = m->commit;
	}
	struct consensus_message r = {
	    .type = CONSENSUS_MSG_HEARTBEAT_RESP,
	    .to = m->from,
	    .term = c->term,
	    .ctx = m->ctx,
	};
	cs_send(c, &r, NULL, 0);
	return CARELOG_OK;
}

int cs_recv_heartbeat_resp(struct consensus *c, const struct consensus_message *m)
{
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK;
	}
	struct cs_progress *pr = cs_progress_find(c, m->from);
	if (pr == NULL) {
		return CARELOG_OK;
	}
	pr->recent_active = true;
	pr->probe_sent = false;
	if (pr->state == CONSENSUS_PROGRESS_REPLICATE && cs_inflights_full(c, pr)) {
		cs_inflights_free_first(c, pr);
	}
	if (pr->match < cs_log_last_index(c)) {
		bool sent;
		(void)cs_send_append(c, pr, true, &sent);
	}
	if (m->ctx > pr->read_ack && m->ctx <= c->read_seq) {
		pr->read_ack = m->ctx;
		cs_reads_release_confirmed(c);
	}
	return CARELOG_OK;
}
