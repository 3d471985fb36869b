/* Vote and pre-vote answers at a (pre-)candidate (Raft paper 5.2; thesis 9.6). */
#include "consensus/internal.h"

int cs_recv_vote_resp(struct consensus *c, const struct consensus_message *m)
{
	bool pre = m->type == CONSENSUS_MSG_PRE_VOTE_RESP;
	if ((pre && c->role == CONSENSUS_ROLE_PRE_CANDIDATE) ||
	    (!pre && c->role == CONSENSUS_ROLE_CANDIDATE)) {
		return cs_tally(c, m->from, !m->reject);
	}
	return CARELOG_OK;
}
