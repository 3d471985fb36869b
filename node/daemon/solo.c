/* The single-voter seam: entries held in one fixed array from applied+1 to the last proposed. */
#include "node/daemon/solo.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <stdlib.h>
#include <string.h>

struct solo {
	struct solo_config config;
	struct consensus_hard_state hard_state;
	/* held[0] has index applied + 1; held[held_count - 1] is the last proposed entry. */
	struct consensus_entry *held; /* capacity entries_max, never reallocated: rd borrows it */
	uint32_t held_count;
	uint64_t held_bytes;
	uint64_t applied;         /* last index applied (acknowledged by advance) */
	uint64_t stable;          /* last index persisted (acknowledged by advance) */
	uint64_t last;            /* last index proposed */
	bool ready_out;           /* a ready batch is outstanding */
	uint64_t ready_last;      /* last index of the outstanding batch's entries */
	uint64_t ready_committed; /* last index of the outstanding batch's committed entries */
};

int solo_create(const struct solo_config *config, const struct consensus_hard_state *hard_state,
                uint64_t last_index, uint64_t applied, struct solo **out)
{
	if (config->entries_max == 0 || config->bytes_max == 0 || hard_state->term == 0 ||
	    applied > last_index || hard_state->commit != last_index || applied != last_index) {
		return CARELOG_EINVAL;
	}
	struct solo *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return CARELOG_ENOMEM;
	}
	s->held = calloc(config->entries_max, sizeof(*s->held));
	if (s->held == NULL) {
		free(s);
		return CARELOG_ENOMEM;
	}
	s->config = *config;
	s->hard_state = *hard_state;
	/* A single voter voted for itself in its term (what a consensus core would persist). */
	s->hard_state.vote = config->node_id;
	s->applied = applied;
	s->stable = last_index;
	s->last = last_index;
	*out = s;
	return CARELOG_OK;
}

void solo_destroy(struct solo *s)
{
	if (s == NULL) {
		return;
	}
	for (uint32_t i = 0; i < s->held_count; i++) {
		free((void *)(uintptr_t)s->held[i].data); /* ours: copied on propose */
	}
	free(s->held);
	free(s);
}

int solo_propose(struct solo *s, const uint8_t *data, uint32_t data_len, uint64_t *out_index)
{
	if (data_len > s->config.bytes_max) {
		return CARELOG_ETOOBIG;
	}
	if (s->held_count == s->config.entries_max ||
	    s->held_bytes + data_len > s->config.bytes_max) {
		return CARELOG_EBUSY;
	}
	uint8_t *copy = NULL;
	if (data_len > 0) {
		copy = malloc(data_len);
		if (copy == NULL) {
			return CARELOG_ENOMEM;
		}
		memcpy(copy, data, data_len);
	}
	s->last++;
	struct consensus_entry *e = &s->held[s->held_count++];
	e->term = s->hard_state.term;
	e->index = s->last;
	e->type = CONSENSUS_ENTRY_NORMAL;
	e->data_len = data_len;
	e->data = copy;
	s->held_bytes += data_len;
	CL_ASSERT(s->held[0].index == s->applied + 1);
	CL_ASSERT(s->last == s->applied + s->held_count);
	if (out_index != NULL) {
		*out_index = s->last;
	}
	return CARELOG_OK;
}

bool solo_has_ready(const struct solo *s)
{
	return !s->ready_out && (s->last > s->stable || s->stable > s->applied);
}

/* The held entry with `index` (applied < index <= last). */
static struct consensus_entry *held_at(struct solo *s, uint64_t index)
{
	CL_ASSERT(index > s->applied && index <= s->last);
	return &s->held[index - s->applied - 1];
}

int solo_ready(struct solo *s, struct consensus_ready *rd)
{
	CL_ASSERT(!s->ready_out);
	memset(rd, 0, sizeof(*rd));
	if (s->last > s->stable) {
		rd->entries = held_at(s, s->stable + 1);
		rd->entries_count = (size_t)(s->last - s->stable);
		rd->hard_state_changed = true;
	}
	if (s->stable > s->applied) {
		rd->committed = held_at(s, s->applied + 1);
		rd->committed_count = (size_t)(s->stable - s->applied);
	}
	rd->hard_state = s->hard_state;
	rd->hard_state.commit = s->last; /* durable together with the entries: a quorum of one */
	s->ready_out = true;
	s->ready_last = s->last;
	s->ready_committed = s->stable;
	return CARELOG_OK;
}

void solo_advance(struct solo *s, const struct consensus_ready *rd)
{
	CL_ASSERT(s->ready_out);
	CL_ASSERT(rd->committed_count == s->ready_committed - s->applied);
	s->ready_out = false;
	s->stable = s->ready_last;
	s->hard_state.commit = s->ready_last;
	uint32_t done = (uint32_t)(s->ready_committed - s->applied);
	for (uint32_t i = 0; i < done; i++) {
		s->held_bytes -= s->held[i].data_len;
		free((void *)(uintptr_t)s->held[i].data); /* ours: copied on propose */
	}
	s->held_count -= done;
	memmove(s->held, s->held + done, s->held_count * sizeof(*s->held));
	s->applied = s->ready_committed;
	CL_ASSERT(s->held_count == 0 || s->held[0].index == s->applied + 1);
	CL_ASSERT(s->stable <= s->last);
}

void solo_discard(struct solo *s, const struct consensus_ready *rd)
{
	CL_ASSERT(s->ready_out);
	(void)rd;
	s->ready_out = false;
	/* Drop every entry not yet persisted: the failed batch's and any proposed after it, since
	 * they would otherwise follow a gap. */
	while (s->last > s->stable) {
		struct consensus_entry *e = &s->held[--s->held_count];
		CL_ASSERT(e->index == s->last);
		s->held_bytes -= e->data_len;
		free((void *)(uintptr_t)e->data);
		s->last--;
	}
}

uint64_t solo_commit_index(const struct solo *s)
{
	return s->stable;
}

uint64_t solo_applied_index(const struct solo *s)
{
	return s->applied;
}

uint64_t solo_term(const struct solo *s)
{
	return s->hard_state.term;
}
