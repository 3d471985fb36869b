/* ReadIndex requests forwarded by followers and learners, and the leader's answers
 * (thesis 6.4, 6.4.1). */
#include "consensus/internal.h"

int cs_recv_read_index(struct consensus *c, const struct consensus_message *m)
{
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK; /* not (or no longer) the leader: the asker times out and retries
		                    */
	}
	int rc = cs_read_request(c, m->from, m->ctx);
	return rc == CARELOG_EBUSY ? CARELOG_OK : rc;
}

int cs_recv_read_index_resp(struct consensus *c, const struct consensus_message *m)
{
	if (c->role == CONSENSUS_ROLE_LEADER) {
		return CARELOG_OK;
	}
	cs_read_state_add(c, m->index, m->ctx);
	return CARELOG_OK;
}
