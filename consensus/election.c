/* Roles, ticks and elections: randomised timeouts, pre-vote, check-quorum, leadership transfer
 * (Raft paper 5.2; thesis 3.10 transfer, 4.2.3 disruptive servers, 6.2 check-quorum, 9.6
 * pre-vote). */
#include "consensus/internal.h"

/* Paper 5.2: timeouts are chosen at random from [election_ticks, 2 * election_ticks) so split
 * votes are rare and resolve quickly. */
void cs_reset_randomized_timeout(struct consensus *c)
{
	c->election_timeout_randomized =
	    c->election_ticks + (uint32_t)(cs_random(c) % c->election_ticks);
}

void cs_set_term(struct consensus *c, uint64_t term)
{
	CL_ASSERT(term >= c->term);
	if (term != c->term) {
		c->term = term;
		c->vote = 0;
		cs_outbox_drop_votes_before(c, term);
	}
}

void cs_abort_transfer(struct consensus *c)
{
	c->transferee = 0;
}

/* State shared by every role change (etcd-io/raft raft.reset). */
static void reset(struct consensus *c, uint64_t term)
{
	cs_set_term(c, term);
	c->leader = 0;
	c->election_elapsed = 0;
	c->heartbeat_elapsed = 0;
	cs_reset_randomized_timeout(c);
	cs_abort_transfer(c);
	cs_progress_reset_all(c);
	c->pending_conf_index = 0;
	c->uncommitted_bytes = 0;
	c->leader_first_index = 0;
	cs_reads_clear(c);
}

void cs_become_follower(struct consensus *c, uint64_t term, consensus_node_id leader)
{
	reset(c, term);
	c->role = CONSENSUS_ROLE_FOLLOWER;
	c->leader = leader;
}

/* Paper 5.2 and 5.4.2: a new leader appends a no-op of its term so that earlier entries
 * commit and ReadIndex has a current-term commit to wait for (thesis 6.4). */
int cs_become_leader(struct consensus *c)
{
	CL_ASSERT(c->role != CONSENSUS_ROLE_FOLLOWER);
	reset(c, c->term);
	c->role = CONSENSUS_ROLE_LEADER;
	c->leader = c->id;
	/* Conservatively treat any unapplied tail as holding a conf change (etcd-io/raft). */
	c->pending_conf_index = cs_log_last_index(c);
	uint64_t index;
	/* One unstable slot is always kept free for this no-op (cs_log_has_room held when the
	 * campaign started, and a candidate appends nothing). */
	int rc = cs_append_local(c, CONSENSUS_ENTRY_NORMAL, NULL, 0, &index);
	CL_ASSERT(rc == CARELOG_OK);
	c->leader_first_index = index;
	for (uint32_t i = 0; i < c->progress_count; i++) {
		struct cs_progress *pr = &c->progress[i];
		if (pr->id == c->id) {
			pr->next = index + 1;
		}
	}
	(void)cs_bcast_append(c);
	return CARELOG_OK;
}

static int request_votes(struct consensus *c, bool pre_vote, bool transfer)
{
	uint64_t last_term;
	int rc = cs_log_last_term(c, &last_term);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t last = cs_log_last_index(c);
	for (uint32_t i = 0; i < c->progress_count; i++) {
		consensus_node_id id = c->progress[i].id;
		if (id == c->id || !cs_conf_is_voter(&c->conf, id)) {
			continue;
		}
		struct consensus_message m = {
		    .type = pre_vote ? CONSENSUS_MSG_PRE_VOTE : CONSENSUS_MSG_VOTE,
		    .to = id,
		    /* Thesis 9.6: a pre-vote asks for the term it would use, without taking it. */
		    .term = pre_vote ? c->term + 1 : c->term,
		    .index = last,
		    .log_term = last_term,
		    .transfer = transfer,
		};
		cs_send(c, &m, NULL, 0);
	}
	return CARELOG_OK;
}

/* Counts our own vote and acts on the tally (one vote per voter: the first answer counts). */
int cs_tally(struct consensus *c, consensus_node_id from, bool granted)
{
	struct cs_progress *pr = cs_progress_find(c, from);
	if (pr != NULL && pr->vote == CS_VOTE_NONE) {
		pr->vote = granted ? CS_VOTE_GRANTED : CS_VOTE_REJECTED;
	}
	switch (cs_quorum_vote_result(c)) {
	case CS_QUORUM_WON:
		if (c->role == CONSENSUS_ROLE_PRE_CANDIDATE) {
			return cs_campaign(c, false, false);
		}
		return cs_become_leader(c);
	case CS_QUORUM_LOST:
		cs_become_follower(c, c->term, 0);
		return CARELOG_OK;
	default:
		return CARELOG_OK;
	}
}

int cs_campaign(struct consensus *c, bool pre_vote, bool transfer)
{
	if (pre_vote) {
		/* Thesis 9.6: term and vote stay as they are until a quorum says it would vote. */
		reset(c, c->term);
		c->role = CONSENSUS_ROLE_PRE_CANDIDATE;
	} else {
		reset(c, c->term + 1);
		c->role = CONSENSUS_ROLE_CANDIDATE;
		c->vote = c->id;
	}
	int rc = request_votes(c, pre_vote, transfer);
	if (rc != CARELOG_OK) {
		return rc;
	}
	return cs_tally(c, c->id, true);
}

/*
 * Starts an election if this node may (etcd-io/raft hup): voters only (thesis 4.2.1), and not
 * while a committed configuration change is still unapplied, since the node would campaign
 * under a configuration it is about to leave.
 */

int cs_hup(struct consensus *c, bool transfer)
{
	if (c->role == CONSENSUS_ROLE_LEADER || !cs_promotable(c)) {
		return CARELOG_OK;
	}
	/* A winner must be able to append its no-op: wait until the disk caught up. */
	if (!cs_log_has_room(c)) {
		return CARELOG_OK;
	}
	if (c->commit > c->applied) {
		bool pending;
		int rc = cs_log_has_conf_between(c, c->applied + 1, c->commit, &pending);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (pending) {
			return CARELOG_OK;
		}
	}
	if (c->pre_vote && !transfer) {
		return cs_campaign(c, true, false);
	}
	return cs_campaign(c, false, transfer);
}

int cs_tick_election(struct consensus *c)
{
	c->election_elapsed++;
	if (!cs_promotable(c) || c->election_elapsed < c->election_timeout_randomized) {
		return CARELOG_OK;
	}
	c->election_elapsed = 0;
	return cs_hup(c, false);
}

int cs_tick_heartbeat(struct consensus *c)
{
	c->heartbeat_elapsed++;
	c->election_elapsed++;
	if (c->election_elapsed >= c->election_ticks) {
		c->election_elapsed = 0;
		if (c->check_quorum) {
			/* Thesis 6.2: a leader that has not heard from a quorum for an election
			 * timeout steps down, so clients can find the real leader. */
			if (!cs_quorum_active(c)) {
				cs_become_follower(c, c->term, 0);
				return CARELOG_OK;
			}
			for (uint32_t i = 0; i < c->progress_count; i++) {
				struct cs_progress *pr = &c->progress[i];
				pr->recent_active = pr->id == c->id;
			}
		}
		/* Thesis 3.10: a transfer that did not finish within an election timeout is
		 * abandoned and proposals are accepted again. */
		cs_abort_transfer(c);
	}
	if (c->heartbeat_elapsed >= c->heartbeat_ticks) {
		c->heartbeat_elapsed = 0;
		cs_bcast_heartbeat(c);
	}
	return CARELOG_OK;
}
