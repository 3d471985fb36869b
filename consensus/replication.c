/* Leader-side replication: progress states, the inflight window, appends, heartbeats and the
 * commit rule (Raft paper 5.3, 5.4.2; thesis 10.2 pipelining; etcd-io/raft tracker/progress.go). */
#include "consensus/internal.h"

#include <string.h>

bool cs_inflights_full(const struct consensus *c, const struct cs_progress *pr)
{
	return pr->inflight_count >= c->inflight_msgs_max ||
	       pr->inflight_bytes_total >= c->inflight_bytes_max;
}

static void inflights_add(struct consensus *c, struct cs_progress *pr, uint64_t index,
                          uint64_t bytes)
{
	CL_ASSERT(pr->inflight_count < c->inflight_msgs_max);
	uint32_t slot = (pr->inflight_start + pr->inflight_count) % c->inflight_msgs_max;
	CL_ASSERT(pr->inflight_count == 0 ||
	          pr->inflight_index[(slot + c->inflight_msgs_max - 1) % c->inflight_msgs_max] <
	              index);
	pr->inflight_index[slot] = index;
	pr->inflight_bytes[slot] = bytes;
	pr->inflight_count++;
	pr->inflight_bytes_total += bytes;
}

static void inflights_pop(struct cs_progress *pr, uint32_t ring)
{
	pr->inflight_bytes_total -= pr->inflight_bytes[pr->inflight_start];
	pr->inflight_start = (pr->inflight_start + 1) % ring;
	pr->inflight_count--;
}

/* The follower acknowledged everything up to `index`: those appends are no longer in flight. */
void cs_inflights_free_to(const struct consensus *c, struct cs_progress *pr, uint64_t index)
{
	while (pr->inflight_count > 0 && pr->inflight_index[pr->inflight_start] <= index) {
		inflights_pop(pr, c->inflight_msgs_max);
	}
}

static void inflights_reset(struct cs_progress *pr)
{
	pr->inflight_start = 0;
	pr->inflight_count = 0;
	pr->inflight_bytes_total = 0;
}

/* Probe: one append at a time. Replicate: pipelined until the window is full. */
bool cs_progress_is_paused(const struct consensus *c, const struct cs_progress *pr)
{
	if (pr->state == CONSENSUS_PROGRESS_PROBE) {
		return pr->probe_sent;
	}
	return cs_inflights_full(c, pr);
}

void cs_progress_become_probe(struct consensus *c, struct cs_progress *pr)
{
	(void)c;
	pr->state = CONSENSUS_PROGRESS_PROBE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	inflights_reset(pr);
}

void cs_progress_become_replicate(struct consensus *c, struct cs_progress *pr)
{
	(void)c;
	pr->state = CONSENSUS_PROGRESS_REPLICATE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	inflights_reset(pr);
}

/* An acknowledgement of `index`; false if it tells nothing new (stale or duplicate). */
bool cs_progress_maybe_update(struct cs_progress *pr, uint64_t index)
{
	bool updated = false;
	if (pr->match < index) {
		pr->match = index;
		pr->probe_sent = false;
		updated = true;
	}
	if (pr->next < index + 1) {
		pr->next = index + 1;
	}
	return updated;
}

/*
 * A rejection of the append after `rejected`; `hint` is where the follower's log may match.
 * False if the rejection is stale. next never drops to or below match (etcd-io/raft
 * Progress.MaybeDecrTo).
 */
bool cs_progress_maybe_decr_to(struct cs_progress *pr, uint64_t rejected, uint64_t hint)
{
	if (pr->state == CONSENSUS_PROGRESS_REPLICATE) {
		if (rejected <= pr->match) {
			return false;
		}
		pr->next = pr->match + 1;
		return true;
	}
	if (pr->next - 1 != rejected) {
		return false;
	}
	uint64_t next = rejected < hint + 1 ? rejected : hint + 1;
	pr->next = next > pr->match + 1 ? next : pr->match + 1;
	pr->probe_sent = false;
	return true;
}

/* A heartbeat answer proves the follower is reachable: free one slot so a window filled by
 * lost appends cannot stall replication forever (etcd-io/raft Inflights.FreeFirstOne). */
void cs_inflights_free_first(const struct consensus *c, struct cs_progress *pr)
{
	if (pr->inflight_count > 0) {
		inflights_pop(pr, c->inflight_msgs_max);
	}
}

/*
 * Sends the next append to `pr` if its flow allows (Raft paper 5.3 AppendEntries with the
 * consistency check on index/log_term). Empty appends (commit only) go only if
 * `send_if_empty`. Failure to build the message (memory, storage) is returned; the progress
 * is then unchanged.
 */
int cs_send_append(struct consensus *c, struct cs_progress *pr, bool send_if_empty, bool *out_sent)
{
	*out_sent = false;
	CL_ASSERT(c->role == CONSENSUS_ROLE_LEADER && pr->id != c->id);
	if (cs_progress_is_paused(c, pr)) {
		return CARELOG_OK;
	}
	uint64_t last = cs_log_last_index(c);
	CL_ASSERT(pr->next >= 1 && pr->next <= last + 1);
	uint64_t prev = pr->next - 1;
	uint64_t prev_term;
	int rc = cs_log_term(c, prev, &prev_term);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct consensus_entry *ents = NULL;
	uint32_t count = 0;
	uint32_t cap = 0;
	uint64_t bytes = 0;
	if (pr->next <= last) {
		uint64_t want = last - pr->next + 1;
		cap = want < CONSENSUS_APPEND_ENTRIES_MAX ? (uint32_t)want
		                                          : CONSENSUS_APPEND_ENTRIES_MAX;
		ents = cs_alloc(c, cap * sizeof(*ents));
		if (ents == NULL) {
			return CARELOG_ENOMEM;
		}
		rc = cs_log_copy_entries(c, pr->next, last + 1, c->append_bytes_max, cap, ents,
		                         &count);
		if (rc != CARELOG_OK) {
			cs_free(c, ents, cap * sizeof(*ents));
			return rc;
		}
		for (uint32_t i = 0; i < count; i++) {
			bytes += ents[i].data_len;
		}
	}
	if (count == 0 && !send_if_empty) {
		return CARELOG_OK;
	}
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_APPEND,
	    .to = pr->id,
	    .term = c->term,
	    .index = prev,
	    .log_term = prev_term,
	    .commit = c->commit,
	    .entries_count = count,
	};
	if (pr->state == CONSENSUS_PROGRESS_REPLICATE) {
		/* Pipelining (thesis 10.2.1): next moves optimistically past what was sent. */
		if (count > 0) {
			uint64_t end = ents[count - 1].index;
			pr->next = end + 1;
			inflights_add(c, pr, end, bytes);
		}
	} else {
		pr->probe_sent = true;
	}
	cs_send(c, &m, ents, cap);
	*out_sent = true;
	return CARELOG_OK;
}

/* Appends (or commit-only empties) to every other member. Messages that cannot be built are
 * as good as lost; the first error is returned for the caller's information. */
int cs_bcast_append(struct consensus *c)
{
	int first = CARELOG_OK;
	for (uint32_t i = 0; i < c->progress_count; i++) {
		struct cs_progress *pr = &c->progress[i];
		if (pr->id == c->id) {
			continue;
		}
		bool sent;
		int rc = cs_send_append(c, pr, true, &sent);
		if (first == CARELOG_OK) {
			first = rc;
		}
	}
	return first;
}

/* Raft paper 5.2 heartbeats; the commit is capped at what the follower is known to hold, and
 * ctx carries the latest ReadIndex round (thesis 6.4). */
void cs_send_heartbeat(struct consensus *c, struct cs_progress *pr)
{
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_HEARTBEAT,
	    .to = pr->id,
	    .term = c->term,
	    .commit = pr->match < c->commit ? pr->match : c->commit,
	    .ctx = c->read_seq,
	};
	cs_send(c, &m, NULL, 0);
}

void cs_bcast_heartbeat(struct consensus *c)
{
	for (uint32_t i = 0; i < c->progress_count; i++) {
		if (c->progress[i].id != c->id) {
			cs_send_heartbeat(c, &c->progress[i]);
		}
	}
}

/*
 * Raft paper 5.3/5.4.2 (Figure 8): advance commit to the index a quorum (both majorities when
 * joint) has, but only if that entry is of the current term; earlier terms' entries commit
 * indirectly.
 */
int cs_maybe_commit(struct consensus *c, bool *out_committed)
{
	*out_committed = false;
	uint64_t mci = cs_quorum_committed_index(c);
	if (mci == UINT64_MAX || mci <= c->commit) {
		return CARELOG_OK;
	}
	CL_ASSERT(mci <= cs_log_last_index(c));
	uint64_t t;
	int rc = cs_log_term(c, mci, &t);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (t != c->term) {
		return CARELOG_OK;
	}
	c->commit = mci;
	*out_committed = true;
	cs_reads_activate(c);
	return CARELOG_OK;
}

int cs_append_local(struct consensus *c, uint8_t type, uint8_t *data_owned, uint32_t data_len,
                    uint64_t *out_index)
{
	CL_ASSERT(c->role == CONSENSUS_ROLE_LEADER);
	CL_ASSERT(c->unstable_count < CONSENSUS_UNSTABLE_ENTRIES_MAX);
	uint64_t index = cs_log_last_index(c) + 1;
	if (c->unstable_count == 0) {
		c->unstable_offset = index;
	}
	c->unstable[c->unstable_count] = (struct consensus_entry){
	    .term = c->term,
	    .index = index,
	    .type = type,
	    .data_len = data_len,
	    .data = data_owned,
	};
	c->unstable_count++;
	c->uncommitted_bytes += data_len;
	CL_ASSERT(cs_log_last_index(c) == index);
	*out_index = index;
	return CARELOG_OK;
}

/* The leader's own entries became durable: it now counts itself for them (thesis 10.2.1),
 * which is how a single voter commits. */
int cs_leader_persisted(struct consensus *c)
{
	struct cs_progress *self = cs_progress_find(c, c->id);
	if (self == NULL) {
		return CARELOG_OK;
	}
	(void)cs_progress_maybe_update(self, cs_log_stable_index(c));
	bool committed;
	int rc = cs_maybe_commit(c, &committed);
	if (rc == CARELOG_OK && committed) {
		rc = cs_bcast_append(c);
	}
	return rc;
}

/* Thesis 3.10: the target is caught up; tell it to start an election at once. */
void cs_send_timeout_now(struct consensus *c, consensus_node_id to)
{
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_TIMEOUT_NOW,
	    .to = to,
	    .term = c->term,
	};
	cs_send(c, &m, NULL, 0);
}
