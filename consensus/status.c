/* A snapshot of the core's state for status output and tests. */
#include "consensus/internal.h"

#include <string.h>

void consensus_get_status(const struct consensus *c, struct consensus_status *out)
{
	memset(out, 0, sizeof(*out));
	out->id = c->id;
	out->hard_state.term = c->term;
	out->hard_state.vote = c->vote;
	out->hard_state.commit = c->commit;
	out->soft_state.leader = c->leader;
	out->soft_state.role = c->role;
	out->applied = c->applied;
	out->transferee = c->transferee;
	out->messages_dropped = c->msgs_dropped;
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return;
	}
	for (uint32_t i = 0; i < c->progress_count; i++) {
		const struct cs_progress *pr = &c->progress[i];
		struct consensus_progress *p = &c->status_progress[i];
		p->id = pr->id;
		p->voter = cs_conf_is_voter(&c->conf, pr->id);
		p->match = pr->match;
		p->next = pr->next;
		p->state = pr->state;
		p->recent_active = pr->recent_active;
		p->inflight_count = pr->inflight_count;
	}
	out->progress_count = c->progress_count;
	out->progress = c->status_progress;
}
