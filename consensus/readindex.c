/* ReadIndex (Raft thesis 6.4): a read point is the leader's commit index once (1) the leader
 * has committed an entry of its term and (2) a heartbeat round confirmed it is still leader. */
#include "consensus/internal.h"

#include <string.h>

/* Thesis 6.4 step 1: until its no-op commits, a new leader does not know the latest commit. */
bool cs_committed_in_term(const struct consensus *c)
{
	CL_ASSERT(c->role == CONSENSUS_ROLE_LEADER && c->leader_first_index != 0);
	return c->commit >= c->leader_first_index;
}

void cs_read_state_add(struct consensus *c, uint64_t index, uint64_t ctx)
{
	if (c->read_states_count >= c->read_index_max) {
		return; /* the caller times the read out and retries */
	}
	c->read_states[c->read_states_count].index = index;
	c->read_states[c->read_states_count].ctx = ctx;
	c->read_states_count++;
}

static void respond(struct consensus *c, consensus_node_id from, uint64_t ctx, uint64_t index)
{
	if (from == c->id) {
		cs_read_state_add(c, index, ctx);
		return;
	}
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_READ_INDEX_RESP,
	    .to = from,
	    .term = c->term,
	    .index = index,
	    .ctx = ctx,
	};
	cs_send(c, &m, NULL, 0);
}

int cs_read_request(struct consensus *c, consensus_node_id from, uint64_t ctx)
{
	CL_ASSERT(c->role == CONSENSUS_ROLE_LEADER);
	if (cs_committed_in_term(c) && cs_single_voter(c)) {
		/* No one else could have been elected: the commit index is safe now. */
		respond(c, from, ctx, c->commit);
		return CARELOG_OK;
	}
	if (c->reads_count >= c->read_index_max) {
		return CARELOG_EBUSY;
	}
	c->reads[c->reads_count] = (struct cs_read_request){.from = from, .ctx = ctx};
	c->reads_count++;
	cs_reads_activate(c);
	return CARELOG_OK;
}

/* Gives every waiting request the current commit index and starts a heartbeat round for
 * them (thesis 6.4 steps 2-3). */
void cs_reads_activate(struct consensus *c)
{
	if (!cs_committed_in_term(c)) {
		return;
	}
	bool any = false;
	for (uint32_t i = 0; i < c->reads_count; i++) {
		struct cs_read_request *r = &c->reads[i];
		if (r->seq == 0) {
			r->seq = c->read_seq + 1;
			r->index = c->commit;
			any = true;
		}
	}
	if (!any) {
		return;
	}
	c->read_seq++;
	if (!cs_single_voter(c)) {
		cs_bcast_heartbeat(c);
	}
	cs_reads_release_confirmed(c);
}

/* Answers every request whose heartbeat round a quorum (both majorities when joint) echoed. */
void cs_reads_release_confirmed(struct consensus *c)
{
	uint64_t confirmed = cs_quorum_read_seq(c);
	uint32_t n = 0;
	while (n < c->reads_count && c->reads[n].seq != 0 && c->reads[n].seq <= confirmed) {
		respond(c, c->reads[n].from, c->reads[n].ctx, c->reads[n].index);
		n++;
	}
	memmove(c->reads, c->reads + n, (c->reads_count - n) * sizeof(*c->reads));
	c->reads_count -= n;
}

/* On any role change pending reads are dropped; callers time out and retry elsewhere. */
void cs_reads_clear(struct consensus *c)
{
	c->reads_count = 0;
}
