/* libFuzzer target for the peer wire codec: any input is refused cleanly or round-trips exactly. */
#include "replication/wire.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { FUZZ_WHY_BYTES = 128 };

static bool fuzz_bytes_equal(const uint8_t *a, uint32_t a_len, const uint8_t *b, uint32_t b_len)
{
	return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static bool fuzz_raft_equal(const struct consensus_message *a, const struct consensus_message *b)
{
	if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term ||
	    a->log_term != b->log_term || a->index != b->index || a->commit != b->commit ||
	    a->reject != b->reject || a->reject_hint != b->reject_hint ||
	    a->transfer != b->transfer || a->ctx != b->ctx ||
	    a->entries_count != b->entries_count) {
		return false;
	}
	for (uint32_t i = 0; i < a->entries_count; i++) {
		const struct consensus_entry *x = &a->entries[i];
		const struct consensus_entry *y = &b->entries[i];
		if (x->term != y->term || x->index != y->index || x->type != y->type ||
		    !fuzz_bytes_equal(x->data, x->data_len, y->data, y->data_len)) {
			return false;
		}
	}
	return true;
}

static bool fuzz_msg_equal(const struct replication_wire_msg *a,
                           const struct replication_wire_msg *b)
{
	if (a->type != b->type) {
		return false;
	}
	switch (a->type) {
	case REPLICATION_WIRE_RAFT:
		return fuzz_raft_equal(&a->u.raft, &b->u.raft);
	case REPLICATION_WIRE_FORWARD:
		return fuzz_bytes_equal(a->u.forward.request_key, a->u.forward.request_key_len,
		                        b->u.forward.request_key, b->u.forward.request_key_len) &&
		       fuzz_bytes_equal(a->u.forward.record, a->u.forward.record_len,
		                        b->u.forward.record, b->u.forward.record_len);
	case REPLICATION_WIRE_FORWARD_RESULT:
		return fuzz_bytes_equal(
		           a->u.forward_result.request_key, a->u.forward_result.request_key_len,
		           b->u.forward_result.request_key, b->u.forward_result.request_key_len) &&
		       a->u.forward_result.err == b->u.forward_result.err &&
		       a->u.forward_result.index == b->u.forward_result.index;
	case REPLICATION_WIRE_PROGRESS: {
		const struct replication_wire_progress *x = &a->u.progress;
		const struct replication_wire_progress *y = &b->u.progress;
		if (x->term != y->term || x->leader != y->leader || x->commit != y->commit ||
		    x->members_count != y->members_count) {
			return false;
		}
		for (uint32_t i = 0; i < x->members_count; i++) {
			if (x->members[i].id != y->members[i].id ||
			    x->members[i].match != y->members[i].match ||
			    x->members[i].voter != y->members[i].voter) {
				return false;
			}
		}
		return true;
	}
	default:
		return false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct consensus_entry entries[CONSENSUS_APPEND_ENTRIES_MAX];
	static struct consensus_entry entries_again[CONSENSUS_APPEND_ENTRIES_MAX];
	struct replication_wire_msg m;
	char why[FUZZ_WHY_BYTES];
	int rc = replication_wire_decode(data, size, entries, CL_ARRAY_LEN(entries), &m, why,
	                                 sizeof(why));
	if (rc != CARELOG_OK) {
		CL_ASSERT(rc == CARELOG_EPROTO || rc == CARELOG_EVERSION);
		CL_ASSERT(why[0] != '\0'); /* every refusal says what was wrong */
		return 0;
	}
	/* Accepted input is canonical: it re-encodes to exactly the same bytes... */
	size_t need = 0;
	CL_ASSERT(replication_wire_encoded_size(&m, &need) == CARELOG_OK);
	CL_ASSERT(need == size);
	uint8_t *again = malloc(need);
	CL_ASSERT(again != NULL);
	size_t len = 0;
	CL_ASSERT(replication_wire_encode(&m, again, need, &len) == CARELOG_OK);
	CL_ASSERT(len == size && memcmp(again, data, size) == 0);
	/* ...which decode to an equal message. */
	struct replication_wire_msg m2;
	rc = replication_wire_decode(again, len, entries_again, CL_ARRAY_LEN(entries_again), &m2,
	                             why, sizeof(why));
	CL_ASSERT(rc == CARELOG_OK);
	CL_ASSERT(fuzz_msg_equal(&m, &m2));
	free(again);
	return 0;
}
