/* The log as the core sees it: unstable entries (not yet persisted) over the caller's stable
 * log read through consensus_log_ops (Raft paper 5.3, etcd-io/raft log.go / log_unstable.go). */
#include "consensus/internal.h"

#include <string.h>

static uint64_t stable_last(const struct consensus *c)
{
	return c->log->last_index(c->log->ctx);
}

uint64_t cs_log_last_index(const struct consensus *c)
{
	if (c->unstable_count > 0) {
		return c->unstable_offset + c->unstable_count - 1;
	}
	return stable_last(c);
}

/* The highest index that is durable and will not be replaced by pending unstable entries. */
uint64_t cs_log_stable_index(const struct consensus *c)
{
	uint64_t last = stable_last(c);
	if (c->unstable_count > 0 && c->unstable_offset - 1 < last) {
		return c->unstable_offset - 1;
	}
	return last;
}

int cs_log_term(const struct consensus *c, uint64_t index, uint64_t *out_term)
{
	if (index == 0) {
		*out_term = 0;
		return CARELOG_OK;
	}
	if (c->unstable_count > 0 && index >= c->unstable_offset) {
		if (index - c->unstable_offset >= c->unstable_count) {
			return CARELOG_ENOTFOUND;
		}
		*out_term = c->unstable[index - c->unstable_offset].term;
		return CARELOG_OK;
	}
	if (index > stable_last(c)) {
		return CARELOG_ENOTFOUND;
	}
	return c->log->term(c->log->ctx, index, out_term);
}

int cs_log_last_term(const struct consensus *c, uint64_t *out_term)
{
	return cs_log_term(c, cs_log_last_index(c), out_term);
}

int cs_log_match_term(const struct consensus *c, uint64_t index, uint64_t term, bool *out_match)
{
	uint64_t t;
	int rc = cs_log_term(c, index, &t);
	if (rc == CARELOG_ENOTFOUND) {
		*out_match = false;
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_match = t == term;
	return CARELOG_OK;
}

/* Raft paper 5.4.1: the candidate's log is at least as up-to-date as ours. */
int cs_log_is_up_to_date(const struct consensus *c, uint64_t last_index, uint64_t last_term,
                         bool *out_ok)
{
	uint64_t my_term;
	int rc = cs_log_last_term(c, &my_term);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_ok =
	    last_term > my_term || (last_term == my_term && last_index >= cs_log_last_index(c));
	return CARELOG_OK;
}

void cs_entry_free_data(struct consensus *c, struct consensus_entry *e)
{
	if (e->data != NULL) {
		/* The data was allocated by the core or by the log ops for the core. */
		uint8_t *data;
		memcpy(&data, &e->data, sizeof(data));
		cs_free(c, data, e->data_len);
		e->data = NULL;
	}
}

void cs_entries_free(struct consensus *c, struct consensus_entry *entries, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		cs_entry_free_data(c, &entries[i]);
	}
}

/* Room for one more proposal: the last unstable slot is kept for a new leader's no-op. */
bool cs_log_has_room(const struct consensus *c)
{
	return c->unstable_count < CONSENSUS_UNSTABLE_ENTRIES_MAX - 1;
}

/* Removes the first `count` unstable entries (persisted, or the core is going away). */
void cs_log_drop_unstable(struct consensus *c, uint32_t count)
{
	CL_ASSERT(count <= c->unstable_count);
	cs_entries_free(c, c->unstable, count);
	memmove(c->unstable, c->unstable + count,
	        (c->unstable_count - count) * sizeof(struct consensus_entry));
	c->unstable_count -= count;
	c->unstable_offset += count;
}

/* Copies `data` into core memory; NULL data for empty entries. */
static int dup_data(struct consensus *c, const uint8_t *data, uint32_t len, uint8_t **out)
{
	if (len == 0) {
		*out = NULL;
		return CARELOG_OK;
	}
	uint8_t *copy = cs_alloc(c, len);
	if (copy == NULL) {
		return CARELOG_ENOMEM;
	}
	memcpy(copy, data, len);
	*out = copy;
	return CARELOG_OK;
}

/*
 * Appends entries[0..count) (contiguous, entries[0].index <= last + 1), replacing whatever
 * the log held from entries[0].index on. All memory is taken before anything changes, so a
 * failure leaves the log as it was. One slot stays free for a new leader's no-op.
 */
int cs_log_append(struct consensus *c, const struct consensus_entry *entries, uint32_t count)
{
	CL_ASSERT(count > 0 && count <= CONSENSUS_APPEND_ENTRIES_MAX);
	uint64_t first = entries[0].index;
	CL_ASSERT(first >= 1 && first <= cs_log_last_index(c) + 1);
	CL_ASSERT(first > c->commit);
	uint32_t keep = 0;
	uint64_t offset = first;
	if (c->unstable_count > 0 && first >= c->unstable_offset) {
		keep = (uint32_t)(first - c->unstable_offset);
		offset = c->unstable_offset;
	}
	if ((uint64_t)keep + count > CONSENSUS_UNSTABLE_ENTRIES_MAX - 1) {
		return CARELOG_EBUSY;
	}
	uint8_t *data[CONSENSUS_APPEND_ENTRIES_MAX];
	for (uint32_t i = 0; i < count; i++) {
		CL_ASSERT(entries[i].index == first + i);
		int rc = dup_data(c, entries[i].data, entries[i].data_len, &data[i]);
		if (rc != CARELOG_OK) {
			for (uint32_t j = 0; j < i; j++) {
				cs_free(c, data[j], entries[j].data_len);
			}
			return rc;
		}
	}
	if (first <= cs_log_last_index(c)) {
		cs_outbox_drop_acks_from(c, first);
	}
	cs_entries_free(c, c->unstable + keep, c->unstable_count - keep);
	c->unstable_count = keep;
	c->unstable_offset = offset;
	for (uint32_t i = 0; i < count; i++) {
		struct consensus_entry *e = &c->unstable[keep + i];
		*e = entries[i];
		e->data = data[i];
	}
	c->unstable_count = keep + count;
	CL_ASSERT(cs_log_last_index(c) == first + count - 1);
	return CARELOG_OK;
}

/*
 * etcd-io/raft findConflictByTerm: the largest index <= `index` (and >= `floor`) whose term is
 * <= `term`. Both sides use it for fast backtracking (Raft thesis 5.3 "the leader can decrement
 * nextIndex to bypass all of the conflicting entries in that term"). The loop runs at most
 * index - floor times.
 */
int cs_log_find_conflict_by_term(const struct consensus *c, uint64_t index, uint64_t term,
                                 uint64_t floor, uint64_t *out_index, uint64_t *out_term)
{
	CL_ASSERT(index <= cs_log_last_index(c));
	for (;;) {
		uint64_t t;
		int rc = cs_log_term(c, index, &t);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (t <= term || index <= floor) {
			*out_index = index;
			*out_term = t;
			return CARELOG_OK;
		}
		index--;
	}
}

/*
 * Copies entries [lo, hi) into `out` (owned: data allocated, free with cs_entries_free), at
 * most `count_max` of them, stopping before the data exceeds `bytes_max` but always at least
 * one. On failure nothing stays allocated.
 */
int cs_log_copy_entries(struct consensus *c, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                        uint32_t count_max, struct consensus_entry *out, uint32_t *out_count)
{
	CL_ASSERT(lo < hi && hi <= cs_log_last_index(c) + 1 && count_max > 0);
	uint32_t n = 0;
	uint64_t bytes = 0;
	/* Stable part: below the unstable offset. */
	uint64_t stable_hi = hi;
	if (c->unstable_count > 0 && c->unstable_offset < stable_hi) {
		stable_hi = c->unstable_offset;
	}
	if (lo < stable_hi) {
		uint64_t want = stable_hi - lo;
		size_t cap = want < count_max ? (size_t)want : count_max;
		size_t got = 0;
		int rc = c->log->entries(c->log->ctx, lo, stable_hi, bytes_max, c->alloc, out, cap,
		                         &got);
		if (rc != CARELOG_OK) {
			return rc;
		}
		CL_ASSERT(got >= 1 && got <= cap);
		n = (uint32_t)got;
		for (uint32_t i = 0; i < n; i++) {
			CL_ASSERT(out[i].index == lo + i);
			bytes += out[i].data_len;
		}
		if (got < want || n == count_max) {
			*out_count = n;
			return CARELOG_OK;
		}
	}
	/* Unstable part. */
	for (uint64_t i = lo + n; i < hi && n < count_max; i++) {
		const struct consensus_entry *src = &c->unstable[i - c->unstable_offset];
		if (n > 0 && bytes + src->data_len > bytes_max) {
			break;
		}
		uint8_t *data;
		int rc = dup_data(c, src->data, src->data_len, &data);
		if (rc != CARELOG_OK) {
			cs_entries_free(c, out, n);
			return rc;
		}
		out[n] = *src;
		out[n].data = data;
		bytes += src->data_len;
		n++;
	}
	*out_count = n;
	return CARELOG_OK;
}

/* Whether a CONF entry lies in [lo, hi] (etcd-io/raft hasUnappliedConfChanges). Uses the
 * committed buffer as scratch: only called outside a ready batch. */
int cs_log_has_conf_between(struct consensus *c, uint64_t lo, uint64_t hi, bool *out_has)
{
	CL_ASSERT(!c->in_ready && c->committed_owned == 0);
	*out_has = false;
	while (lo <= hi) {
		uint32_t n = 0;
		int rc = cs_log_copy_entries(c, lo, hi + 1, c->ready_bytes_max,
		                             CONSENSUS_READY_ENTRIES_MAX, c->committed, &n);
		if (rc != CARELOG_OK) {
			return rc;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (c->committed[i].type == CONSENSUS_ENTRY_CONF) {
				*out_has = true;
			}
		}
		cs_entries_free(c, c->committed, n);
		if (*out_has) {
			return CARELOG_OK;
		}
		lo += n;
	}
	return CARELOG_OK;
}
