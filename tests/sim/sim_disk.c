/* The simulated disk: written and durable views of one node's log, hard state and applied state. */
#include "sim_disk.h"

#include <stdlib.h>
#include <string.h>

#include "carelog/errors.h"
#include "common/assert.h"
#include "sim_prng.h"

static int sim_disk_term_op(void *ctx, uint64_t index, uint64_t *out_term);
static uint64_t sim_disk_last_index_op(void *ctx);
static int sim_disk_entries_op(void *ctx, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                               const struct consensus_allocator *alloc, struct consensus_entry *out,
                               size_t out_capacity, size_t *out_count);

void sim_disk_init(struct sim_disk *d)
{
	memset(d, 0, sizeof(*d));
	d->ops.ctx = d;
	d->ops.last_index = sim_disk_last_index_op;
	d->ops.term = sim_disk_term_op;
	d->ops.entries = sim_disk_entries_op;
}

static void sim_entry_release(struct sim_log_entry *e)
{
	free(e->data);
	memset(e, 0, sizeof(*e));
}

void sim_disk_free(struct sim_disk *d)
{
	if (d == NULL) {
		return;
	}
	for (uint64_t i = 0; i < d->log_len; i++) {
		sim_entry_release(&d->log[i]);
	}
	if (d->undo_first != 0) {
		for (uint64_t i = d->undo_first; i <= d->durable_len; i++) {
			sim_entry_release(&d->undo[i - d->undo_first]);
		}
	}
	free(d->log);
	free(d->undo);
	memset(d, 0, sizeof(*d));
}

uint64_t sim_entry_prefix_hash(uint64_t prefix_before, uint64_t term, uint64_t index, uint8_t type,
                               uint64_t data_hash)
{
	uint64_t h = sim_fnv_u64(sim_fnv_init(), prefix_before);
	h = sim_fnv_u64(h, term);
	h = sim_fnv_u64(h, index);
	h = sim_fnv_u64(h, type);
	return sim_fnv_u64(h, data_hash);
}

static void sim_grow(void **buf, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap) {
		return;
	}
	uint64_t ncap = *cap == 0 ? 64 : *cap;
	while (ncap < need) {
		ncap *= 2;
	}
	void *p = realloc(*buf, (size_t)ncap * elem);
	CL_ASSERT(p != NULL); /* the simulator itself does not survive host OOM */
	*buf = p;
	*cap = ncap;
}

/* Moves durable entries [from, old_undo_first or durable_len] into the undo area. */
static void sim_disk_save_undo(struct sim_disk *d, uint64_t from)
{
	uint64_t upto = d->undo_first != 0 ? d->undo_first - 1 : d->durable_len;
	if (from > upto) {
		return;
	}
	uint64_t saved = d->undo_first != 0 ? d->durable_len - d->undo_first + 1 : 0;
	uint64_t add = upto - from + 1;
	sim_grow((void **)&d->undo, &d->undo_cap, saved + add, sizeof(*d->undo));
	memmove(&d->undo[add], &d->undo[0], (size_t)saved * sizeof(*d->undo));
	for (uint64_t i = from; i <= upto; i++) {
		d->undo[i - from] = d->log[i - 1];
		memset(&d->log[i - 1], 0, sizeof(d->log[i - 1]));
	}
	d->undo_first = from;
}

static void sim_disk_truncate(struct sim_disk *d, uint64_t from)
{
	if (from > d->log_len) {
		return;
	}
	if (from <= d->durable_len) {
		sim_disk_save_undo(d, from);
	}
	for (uint64_t i = from; i <= d->log_len; i++) {
		sim_entry_release(&d->log[i - 1]); /* saved entries were already moved out */
	}
	d->log_len = from - 1;
}

int sim_disk_write(struct sim_disk *d, const struct consensus_entry *entries, size_t count,
                   uint64_t *out_truncated_from)
{
	if (count == 0) {
		*out_truncated_from = 0;
		return CARELOG_OK;
	}
	uint64_t first = entries[0].index;
	if (first == 0 || first > d->log_len + 1) {
		return CARELOG_EINVAL;
	}
	for (size_t i = 1; i < count; i++) {
		if (entries[i].index != first + i) {
			return CARELOG_EINVAL;
		}
	}
	uint64_t truncated_from = first <= d->log_len ? first : 0;
	sim_disk_truncate(d, first);
	sim_grow((void **)&d->log, &d->log_cap, first - 1 + count, sizeof(*d->log));
	for (size_t i = 0; i < count; i++) {
		const struct consensus_entry *e = &entries[i];
		struct sim_log_entry *s = &d->log[e->index - 1];
		s->term = e->term;
		s->index = e->index;
		s->type = e->type;
		s->data_len = e->data_len;
		s->data = NULL;
		if (e->data_len != 0) {
			s->data = malloc(e->data_len);
			CL_ASSERT(s->data != NULL);
			memcpy(s->data, e->data, e->data_len);
		}
		s->data_hash = sim_fnv_bytes(sim_fnv_init(), s->data, s->data_len);
		s->prefix_hash = sim_entry_prefix_hash(sim_disk_prefix(d, e->index - 1), s->term,
		                                       s->index, s->type, s->data_hash);
		d->log_len = e->index;
	}
	*out_truncated_from = truncated_from;
	return CARELOG_OK;
}

void sim_disk_write_hard_state(struct sim_disk *d, const struct consensus_hard_state *hs)
{
	d->hard = *hs;
}

void sim_disk_sync(struct sim_disk *d)
{
	if (d->undo_first != 0) {
		for (uint64_t i = d->undo_first; i <= d->durable_len; i++) {
			sim_entry_release(&d->undo[i - d->undo_first]);
		}
		d->undo_first = 0;
	}
	d->durable_len = d->log_len;
	d->hard_durable = d->hard;
	d->syncs++;
}

void sim_disk_sync_applied(struct sim_disk *d)
{
	d->applied_durable = d->applied;
}

void sim_disk_crash(struct sim_disk *d)
{
	if (d->undo_first != 0) {
		sim_disk_truncate(d, d->undo_first);
		/* log_len is now undo_first - 1: put the durable entries back. */
		for (uint64_t i = d->undo_first; i <= d->durable_len; i++) {
			d->log[i - 1] = d->undo[i - d->undo_first];
			memset(&d->undo[i - d->undo_first], 0, sizeof(d->undo[0]));
		}
		d->log_len = d->durable_len;
		d->undo_first = 0;
	} else {
		sim_disk_truncate(d, d->durable_len + 1);
	}
	CL_ASSERT(d->log_len == d->durable_len);
	d->hard = d->hard_durable;
	d->applied = d->applied_durable;
}

const struct sim_log_entry *sim_disk_entry(const struct sim_disk *d, uint64_t index)
{
	if (index == 0 || index > d->log_len) {
		return NULL;
	}
	return &d->log[index - 1];
}

uint64_t sim_disk_term(const struct sim_disk *d, uint64_t index)
{
	const struct sim_log_entry *e = sim_disk_entry(d, index);
	return e == NULL ? 0 : e->term;
}

uint64_t sim_disk_prefix(const struct sim_disk *d, uint64_t index)
{
	CL_ASSERT(index <= d->log_len);
	return index == 0 ? 0 : d->log[index - 1].prefix_hash;
}

static uint64_t sim_disk_last_index_op(void *ctx)
{
	const struct sim_disk *d = ctx;
	return d->log_len;
}

static int sim_disk_term_op(void *ctx, uint64_t index, uint64_t *out_term)
{
	const struct sim_disk *d = ctx;
	if (index == 0) {
		*out_term = 0;
		return CARELOG_OK;
	}
	if (index > d->log_len) {
		return CARELOG_ENOTFOUND;
	}
	*out_term = d->log[index - 1].term;
	return CARELOG_OK;
}

static int sim_disk_entries_op(void *ctx, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                               const struct consensus_allocator *alloc, struct consensus_entry *out,
                               size_t out_capacity, size_t *out_count)
{
	const struct sim_disk *d = ctx;
	if (lo == 0 || lo > hi || hi > d->log_len + 1) {
		return CARELOG_ENOTFOUND;
	}
	size_t n = 0;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi && n < out_capacity; i++) {
		const struct sim_log_entry *s = &d->log[i - 1];
		if (n > 0 && bytes + s->data_len > bytes_max) {
			break;
		}
		uint8_t *data = NULL;
		if (s->data_len != 0) {
			data = alloc->alloc(alloc->ctx, s->data_len);
			if (data == NULL) {
				for (size_t j = 0; j < n; j++) {
					if (out[j].data_len != 0) {
						alloc->free(alloc->ctx,
						            (void *)(uintptr_t)out[j].data,
						            out[j].data_len);
					}
				}
				return CARELOG_ENOMEM;
			}
			memcpy(data, s->data, s->data_len);
		}
		out[n].term = s->term;
		out[n].index = s->index;
		out[n].type = s->type;
		out[n].data_len = s->data_len;
		out[n].data = data;
		bytes += s->data_len;
		n++;
	}
	*out_count = n;
	return CARELOG_OK;
}

static void sim_ids_copy(consensus_node_id *dst, uint32_t *dst_count, const consensus_node_id *src,
                         uint32_t count)
{
	CL_ASSERT(count <= SIM_CONF_IDS_MAX);
	if (count != 0) {
		memcpy(dst, src, count * sizeof(*dst));
	}
	*dst_count = count;
}

void sim_conf_from_state(struct sim_conf *out, const struct consensus_conf_state *cs)
{
	memset(out, 0, sizeof(*out));
	sim_ids_copy(out->voters, &out->voters_count, cs->voters, cs->voters_count);
	sim_ids_copy(out->outgoing, &out->outgoing_count, cs->voters_outgoing,
	             cs->voters_outgoing_count);
	sim_ids_copy(out->learners, &out->learners_count, cs->learners, cs->learners_count);
	sim_ids_copy(out->learners_next, &out->learners_next_count, cs->learners_next,
	             cs->learners_next_count);
	out->auto_leave = cs->auto_leave;
}

void sim_conf_to_state(const struct sim_conf *conf, struct consensus_conf_state *out)
{
	out->voters = conf->voters;
	out->voters_count = conf->voters_count;
	out->voters_outgoing = conf->outgoing;
	out->voters_outgoing_count = conf->outgoing_count;
	out->learners = conf->learners;
	out->learners_count = conf->learners_count;
	out->learners_next = conf->learners_next;
	out->learners_next_count = conf->learners_next_count;
	out->auto_leave = conf->auto_leave;
}

static bool sim_ids_contain(const consensus_node_id *ids, uint32_t count, consensus_node_id id)
{
	for (uint32_t i = 0; i < count; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

bool sim_conf_has_voter(const struct sim_conf *conf, consensus_node_id id)
{
	return sim_ids_contain(conf->voters, conf->voters_count, id) ||
	       sim_ids_contain(conf->outgoing, conf->outgoing_count, id);
}

bool sim_conf_has_member(const struct sim_conf *conf, consensus_node_id id)
{
	return sim_conf_has_voter(conf, id) ||
	       sim_ids_contain(conf->learners, conf->learners_count, id) ||
	       sim_ids_contain(conf->learners_next, conf->learners_next_count, id);
}

bool sim_conf_is_joint(const struct sim_conf *conf)
{
	return conf->outgoing_count != 0;
}

uint64_t sim_ids_mask(const consensus_node_id *ids, uint32_t count)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (ids[i] < 64) {
			m |= 1ULL << ids[i];
		}
	}
	return m;
}
