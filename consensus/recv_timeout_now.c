/* TIMEOUT_NOW: the leader hands over; campaign at once, past pre-vote and leases (thesis 3.10). */
#include "consensus/internal.h"

int cs_recv_timeout_now(struct consensus *c, const struct consensus_message *m)
{
	(void)m;
	if (c->role != CONSENSUS_ROLE_FOLLOWER) {
		return CARELOG_OK;
	}
	return cs_hup(c, true);
}
