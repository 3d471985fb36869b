/* RequestVote and pre-vote receiver (Raft paper 5.2, 5.4.1 election restriction; thesis 9.6). */
#include "consensus/internal.h"

int cs_recv_vote(struct consensus *c, const struct consensus_message *m)
{
	bool pre = m->type == CONSENSUS_MSG_PRE_VOTE;
	/* One vote per term: repeat it for the same candidate, else only if we have neither
	 * voted nor heard of a leader this term. A pre-vote for a later term binds nothing. */
	bool can_vote =
	    c->vote == m->from || (c->vote == 0 && c->leader == 0) || (pre && m->term > c->term);
	bool up_to_date = false;
	if (can_vote) {
		int rc = cs_log_is_up_to_date(c, m->index, m->log_term, &up_to_date);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
	struct consensus_message r = {
	    .type = pre ? CONSENSUS_MSG_PRE_VOTE_RESP : CONSENSUS_MSG_VOTE_RESP,
	    .to = m->from,
	};
	if (can_vote && up_to_date) {
		/* Answer in the candidate's term. The answer leaves only after the vote is durable
		 * (it goes in rd.messages, after rd.hard_state). */
		r.term = m->term;
		if (!pre) {
			c->election_elapsed = 0;
			c->vote = m->from;
		}
	} else {
		r.term = c->term;
		r.reject = true;
	}
	cs_send(c, &r, NULL, 0);
	return CARELOG_OK;
}
