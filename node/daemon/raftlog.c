/* consensus_log_ops over the LMDB store (see raftlog.h). */
#include "node/daemon/raftlog.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <string.h>

static uint64_t raftlog_last_index(void *ctx)
{
	const struct node_raftlog *rl = ctx;
	return rl->last_index;
}

static int raftlog_term(void *ctx, uint64_t index, uint64_t *out_term)
{
	struct node_raftlog *rl = ctx;
	if (index == 0) {
		*out_term = 0;
		return CARELOG_OK;
	}
	if (index > rl->last_index) {
		return CARELOG_ENOTFOUND;
	}
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(rl->storage, &t);
	struct storage_entry e;
	if (rc == CARELOG_OK) {
		rc = storage_log_get(t, index, &e);
	}
	if (rc == CARELOG_OK) {
		*out_term = e.term;
	} else if (rc == CARELOG_ENOTFOUND) {
		rc = CARELOG_ECORRUPT; /* a hole below the last index */
	}
	storage_txn_abort(t);
	return rc;
}

struct raftlog_copy {
	const struct consensus_allocator *alloc;
	struct consensus_entry *out;
	size_t capacity;
	size_t count;
	uint64_t bytes;
	uint64_t bytes_max;
	int err;
};

static int raftlog_visit(void *arg, const struct storage_entry *se)
{
	struct raftlog_copy *c = arg;
	if (c->count == c->capacity ||
	    (c->count > 0 && c->bytes + se->data_len > c->bytes_max)) {
		return 1; /* stop: enough for one message */
	}
	uint8_t *data = NULL;
	if (se->data_len > 0) {
		data = c->alloc->alloc(c->alloc->ctx, se->data_len);
		if (data == NULL) {
			c->err = CARELOG_ENOMEM;
			return 1;
		}
		memcpy(data, se->data, se->data_len);
	}
	c->out[c->count++] = (struct consensus_entry){.term = se->term,
	                                              .index = se->index,
	                                              .type = se->type,
	                                              .data_len = se->data_len,
	                                              .data = data};
	c->bytes += se->data_len;
	return 0;
}

static int raftlog_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                           const struct consensus_allocator *alloc, struct consensus_entry *out,
                           size_t out_capacity, size_t *out_count)
{
	struct node_raftlog *rl = ctx;
	if (lo == 0 || hi <= lo || hi - 1 > rl->last_index || out_capacity == 0) {
		return CARELOG_EINVAL;
	}
	struct raftlog_copy c = {
	    .alloc = alloc, .out = out, .capacity = out_capacity, .bytes_max = bytes_max};
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(rl->storage, &t);
	if (rc == CARELOG_OK) {
		rc = storage_log_scan(t, lo, hi - 1, raftlog_visit, &c);
		if (rc == 1) {
			rc = c.err;
		}
	}
	storage_txn_abort(t);
	if (rc == CARELOG_OK && (c.count == 0 || out[0].index != lo)) {
		rc = CARELOG_ECORRUPT; /* the range is below last_index: it must be there */
	}
	if (rc != CARELOG_OK) {
		for (size_t i = 0; i < c.count; i++) {
			if (out[i].data != NULL) {
				alloc->free(alloc->ctx, (void *)(uintptr_t)out[i].data, out[i].data_len);
			}
		}
		return rc;
	}
	*out_count = c.count;
	return CARELOG_OK;
}

void node_raftlog_init(struct node_raftlog *rl, struct storage *s)
{
	rl->storage = s;
	rl->ops = (struct consensus_log_ops){.ctx = rl,
	                                     .last_index = raftlog_last_index,
	                                     .term = raftlog_term,
	                                     .entries = raftlog_entries};
}
