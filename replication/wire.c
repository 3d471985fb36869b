/* The versioned msgpack payloads nodes exchange: msgpack-c's packer out, a strict reader in. */
#include "replication/wire.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "replication/mp_read.h"

#include <msgpack.h>

#include <stdio.h>
#include <string.h>

/* Array lengths: [version, type, ...fields] per wire type, and the nested arrays. */
enum {
	WIRE_RAFT_FIELDS = 14,
	WIRE_FORWARD_FIELDS = 4,
	WIRE_FORWARD_RESULT_FIELDS = 5,
	WIRE_PROGRESS_FIELDS = 6,
	WIRE_ENTRY_FIELDS = 4,
	WIRE_MEMBER_FIELDS = 3,
	WIRE_HEAD_FIELDS = 2, /* version and type: enough to judge the rest */
};

static const char *const wire_type_names[] = {
    [REPLICATION_WIRE_RAFT] = "raft",
    [REPLICATION_WIRE_FORWARD] = "forward",
    [REPLICATION_WIRE_FORWARD_RESULT] = "forward_result",
    [REPLICATION_WIRE_PROGRESS] = "progress",
};

const char *replication_wire_type_name(uint8_t type)
{
	if (type >= CL_ARRAY_LEN(wire_type_names) || wire_type_names[type] == NULL) {
		return "unknown";
	}
	return wire_type_names[type];
}

static uint32_t wire_fields(uint8_t type)
{
	switch (type) {
	case REPLICATION_WIRE_RAFT:
		return WIRE_RAFT_FIELDS;
	case REPLICATION_WIRE_FORWARD:
		return WIRE_FORWARD_FIELDS;
	case REPLICATION_WIRE_FORWARD_RESULT:
		return WIRE_FORWARD_RESULT_FIELDS;
	case REPLICATION_WIRE_PROGRESS:
		return WIRE_PROGRESS_FIELDS;
	default:
		return 0;
	}
}

static bool wire_raft_type_known(uint64_t type)
{
	return type >= CONSENSUS_MSG_APPEND && type <= CONSENSUS_MSG_READ_INDEX_RESP;
}

/* ---------------------------------------------------------------- checking before encoding */

static bool wire_bytes_ok(const uint8_t *ptr, uint32_t len)
{
	return ptr != NULL || len == 0;
}

static bool wire_request_key_ok(const uint8_t *key, uint32_t len)
{
	return key != NULL && len > 0 && len <= REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX;
}

static bool wire_raft_ok(const struct consensus_message *r)
{
	if (!wire_raft_type_known(r->type)) {
		return false;
	}
	if (r->entries_count == 0) {
		return true;
	}
	if (r->type != CONSENSUS_MSG_APPEND || r->entries_count > CONSENSUS_APPEND_ENTRIES_MAX ||
	    r->entries == NULL) {
		return false;
	}
	for (uint32_t i = 0; i < r->entries_count; i++) {
		const struct consensus_entry *e = &r->entries[i];
		if (e->type > CONSENSUS_ENTRY_CONF || !wire_bytes_ok(e->data, e->data_len)) {
			return false;
		}
	}
	return true;
}

/* True if `m` is a message the decoder accepts. */
static bool wire_msg_ok(const struct replication_wire_msg *m)
{
	switch (m->type) {
	case REPLICATION_WIRE_RAFT:
		return wire_raft_ok(&m->u.raft);
	case REPLICATION_WIRE_FORWARD:
		return wire_request_key_ok(m->u.forward.request_key,
		                           m->u.forward.request_key_len) &&
		       wire_bytes_ok(m->u.forward.record, m->u.forward.record_len);
	case REPLICATION_WIRE_FORWARD_RESULT:
		return wire_request_key_ok(m->u.forward_result.request_key,
		                           m->u.forward_result.request_key_len);
	case REPLICATION_WIRE_PROGRESS:
		return m->u.progress.members_count <= REPLICATION_WIRE_MEMBERS_MAX;
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- encoding */

/*
 * A msgpack_packer sink that writes into a caller buffer, or (out == NULL) only counts: the
 * size is computed by running the same packing code, so it is exact by construction.
 */
struct wire_sink {
	uint8_t *out;
	size_t capacity;
	size_t len;
	bool overflow;
};

static int wire_sink_write(void *data, const char *buf, size_t len)
{
	struct wire_sink *s = data;
	if (s->overflow || len > s->capacity - s->len) {
		s->overflow = true;
		return -1;
	}
	if (s->out != NULL && len > 0) {
		memcpy(s->out + s->len, buf, len);
	}
	s->len += len;
	return 0;
}

/* Packs bytes as a bin; NULL with length 0 is an empty bin. */
static void wire_pack_bin(msgpack_packer *pk, const uint8_t *ptr, uint32_t len)
{
	msgpack_pack_bin(pk, len);
	if (len > 0) {
		msgpack_pack_bin_body(pk, ptr, len);
	}
}

static void wire_pack_bool(msgpack_packer *pk, bool v)
{
	if (v) {
		msgpack_pack_true(pk);
	} else {
		msgpack_pack_false(pk);
	}
}

static void wire_pack_raft(msgpack_packer *pk, const struct consensus_message *r)
{
	msgpack_pack_uint8(pk, r->type);
	msgpack_pack_uint64(pk, r->from);
	msgpack_pack_uint64(pk, r->to);
	msgpack_pack_uint64(pk, r->term);
	msgpack_pack_uint64(pk, r->log_term);
	msgpack_pack_uint64(pk, r->index);
	msgpack_pack_uint64(pk, r->commit);
	wire_pack_bool(pk, r->reject);
	msgpack_pack_uint64(pk, r->reject_hint);
	wire_pack_bool(pk, r->transfer);
	msgpack_pack_uint64(pk, r->ctx);
	msgpack_pack_array(pk, r->entries_count);
	for (uint32_t i = 0; i < r->entries_count; i++) {
		const struct consensus_entry *e = &r->entries[i];
		msgpack_pack_array(pk, WIRE_ENTRY_FIELDS);
		msgpack_pack_uint64(pk, e->term);
		msgpack_pack_uint64(pk, e->index);
		msgpack_pack_uint8(pk, e->type);
		wire_pack_bin(pk, e->data, e->data_len);
	}
}

static void wire_pack_progress(msgpack_packer *pk, const struct replication_wire_progress *p)
{
	msgpack_pack_uint64(pk, p->term);
	msgpack_pack_uint64(pk, p->leader);
	msgpack_pack_uint64(pk, p->commit);
	msgpack_pack_array(pk, p->members_count);
	for (uint32_t i = 0; i < p->members_count; i++) {
		const struct replication_wire_member *mb = &p->members[i];
		msgpack_pack_array(pk, WIRE_MEMBER_FIELDS);
		msgpack_pack_uint64(pk, mb->id);
		msgpack_pack_uint64(pk, mb->match);
		wire_pack_bool(pk, mb->voter);
	}
}

/* Packs a checked message into the sink. The packer's return values are not checked one by
 * one: the sink records an overflow and refuses everything after it. */
static void wire_pack(struct wire_sink *s, const struct replication_wire_msg *m)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, s, wire_sink_write);
	msgpack_pack_array(&pk, wire_fields(m->type));
	msgpack_pack_uint8(&pk, REPLICATION_WIRE_VERSION);
	msgpack_pack_uint8(&pk, m->type);
	switch (m->type) {
	case REPLICATION_WIRE_RAFT:
		wire_pack_raft(&pk, &m->u.raft);
		break;
	case REPLICATION_WIRE_FORWARD:
		wire_pack_bin(&pk, m->u.forward.request_key, m->u.forward.request_key_len);
		wire_pack_bin(&pk, m->u.forward.record, m->u.forward.record_len);
		break;
	case REPLICATION_WIRE_FORWARD_RESULT:
		wire_pack_bin(&pk, m->u.forward_result.request_key,
		              m->u.forward_result.request_key_len);
		msgpack_pack_int32(&pk, m->u.forward_result.err);
		msgpack_pack_uint64(&pk, m->u.forward_result.index);
		break;
	case REPLICATION_WIRE_PROGRESS:
		wire_pack_progress(&pk, &m->u.progress);
		break;
	default:
		CL_UNREACHABLE(); /* wire_msg_ok ran first */
	}
}

int replication_wire_encoded_size(const struct replication_wire_msg *m, size_t *out_len)
{
	if (m == NULL || out_len == NULL || !wire_msg_ok(m)) {
		return CARELOG_EINVAL;
	}
	struct wire_sink s = {.capacity = SIZE_MAX};
	wire_pack(&s, m);
	if (s.overflow) {
		return CARELOG_ETOOBIG;
	}
	*out_len = s.len;
	return CARELOG_OK;
}

int replication_wire_encode(const struct replication_wire_msg *m, uint8_t *out, size_t out_capacity,
                            size_t *out_len)
{
	if (m == NULL || out_len == NULL || (out == NULL && out_capacity > 0) || !wire_msg_ok(m)) {
		return CARELOG_EINVAL;
	}
	struct wire_sink s = {.out = out, .capacity = out_capacity};
	wire_pack(&s, m);
	if (s.overflow) {
		return CARELOG_ETOOBIG;
	}
	*out_len = s.len;
	return CARELOG_OK;
}

/* ---------------------------------------------------------------- decoding */

static int wire_read_raft(struct replication_mp_reader *r, struct consensus_entry *entries,
                          struct consensus_message *out)
{
	uint64_t type = 0;
	/* Each read fails at once if an earlier one failed: checking the last one suffices. */
	if (replication_mp_read_uint(r, "raft.type", UINT8_MAX, &type) == CARELOG_OK &&
	    !wire_raft_type_known(type)) {
		replication_mp_fail(r, "raft.type", "unknown consensus message type");
	}
	out->type = (uint8_t)type;
	replication_mp_read_uint(r, "raft.from", UINT64_MAX, &out->from);
	replication_mp_read_uint(r, "raft.to", UINT64_MAX, &out->to);
	replication_mp_read_uint(r, "raft.term", UINT64_MAX, &out->term);
	replication_mp_read_uint(r, "raft.log_term", UINT64_MAX, &out->log_term);
	replication_mp_read_uint(r, "raft.index", UINT64_MAX, &out->index);
	replication_mp_read_uint(r, "raft.commit", UINT64_MAX, &out->commit);
	replication_mp_read_bool(r, "raft.reject", &out->reject);
	replication_mp_read_uint(r, "raft.reject_hint", UINT64_MAX, &out->reject_hint);
	replication_mp_read_bool(r, "raft.transfer", &out->transfer);
	replication_mp_read_uint(r, "raft.ctx", UINT64_MAX, &out->ctx);
	uint32_t count = 0;
	int rc = replication_mp_read_array(r, "raft.entries", &count);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (count > CONSENSUS_APPEND_ENTRIES_MAX) {
		return replication_mp_fail(r, "raft.entries", "more than 256 entries");
	}
	if (count > 0 && out->type != CONSENSUS_MSG_APPEND) {
		return replication_mp_fail(r, "raft.entries",
		                           "entries on a message other than APPEND");
	}
	for (uint32_t i = 0; i < count; i++) {
		struct consensus_entry *e = &entries[i];
		uint64_t entry_type = 0;
		replication_mp_read_array_of(r, "raft.entry", WIRE_ENTRY_FIELDS);
		replication_mp_read_uint(r, "raft.entry.term", UINT64_MAX, &e->term);
		replication_mp_read_uint(r, "raft.entry.index", UINT64_MAX, &e->index);
		replication_mp_read_uint(r, "raft.entry.type", CONSENSUS_ENTRY_CONF, &entry_type);
		e->type = (uint8_t)entry_type;
		rc = replication_mp_read_bin(r, "raft.entry.data", UINT32_MAX, &e->data,
		                             &e->data_len);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
	out->entries_count = count;
	out->entries = count > 0 ? entries : NULL;
	return CARELOG_OK;
}

static int wire_read_progress(struct replication_mp_reader *r,
                              struct replication_wire_progress *out)
{
	replication_mp_read_uint(r, "progress.term", UINT64_MAX, &out->term);
	replication_mp_read_uint(r, "progress.leader", UINT64_MAX, &out->leader);
	replication_mp_read_uint(r, "progress.commit", UINT64_MAX, &out->commit);
	uint32_t count = 0;
	int rc = replication_mp_read_array(r, "progress.members", &count);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (count > REPLICATION_WIRE_MEMBERS_MAX) {
		return replication_mp_fail(r, "progress.members", "more than 64 members");
	}
	for (uint32_t i = 0; i < count; i++) {
		struct replication_wire_member *mb = &out->members[i];
		replication_mp_read_array_of(r, "progress.member", WIRE_MEMBER_FIELDS);
		replication_mp_read_uint(r, "progress.member.id", UINT64_MAX, &mb->id);
		replication_mp_read_uint(r, "progress.member.match", UINT64_MAX, &mb->match);
		rc = replication_mp_read_bool(r, "progress.member.voter", &mb->voter);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
	out->members_count = count;
	return CARELOG_OK;
}

static int wire_read_request_key(struct replication_mp_reader *r, const char *field,
                                 const uint8_t **out_ptr, uint32_t *out_len)
{
	int rc = replication_mp_read_bin(r, field, REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX, out_ptr,
	                                 out_len);
	if (rc == CARELOG_OK && *out_len == 0) {
		rc = replication_mp_fail(r, field, "empty");
	}
	return rc;
}

/* Reads [version, type, ...] up to and including the last field; `m` is scratch. */
static int wire_read(struct replication_mp_reader *r, struct consensus_entry *entries,
                     struct replication_wire_msg *m)
{
	uint32_t fields = 0;
	int rc = replication_mp_read_array(r, "message", &fields);
	if (rc == CARELOG_OK && fields == 0) {
		rc = replication_mp_fail(r, "message", "empty array");
	}
	uint64_t version = 0;
	if (rc == CARELOG_OK) {
		rc = replication_mp_read_uint(r, "version", UINT64_MAX, &version);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (version != REPLICATION_WIRE_VERSION) {
		/* Judged before the rest: a later version may change everything after it. */
		replication_mp_fail(r, "version", "not supported (this node speaks version 1)");
		return CARELOG_EVERSION;
	}
	if (fields < WIRE_HEAD_FIELDS) {
		return replication_mp_fail(r, "message", "no type");
	}
	uint64_t type = 0;
	rc = replication_mp_read_uint(r, "type", UINT8_MAX, &type);
	if (rc == CARELOG_OK && wire_fields((uint8_t)type) == 0) {
		rc = replication_mp_fail(r, "type", "unknown message type");
	}
	if (rc == CARELOG_OK && fields != wire_fields((uint8_t)type)) {
		rc = replication_mp_fail(r, "message", "wrong number of fields for its type");
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	m->type = (uint8_t)type;
	switch (m->type) {
	case REPLICATION_WIRE_RAFT:
		return wire_read_raft(r, entries, &m->u.raft);
	case REPLICATION_WIRE_FORWARD: {
		struct replication_wire_forward *f = &m->u.forward;
		wire_read_request_key(r, "forward.request_key", &f->request_key,
		                      &f->request_key_len);
		return replication_mp_read_bin(r, "forward.record", UINT32_MAX, &f->record,
		                               &f->record_len);
	}
	case REPLICATION_WIRE_FORWARD_RESULT: {
		struct replication_wire_forward_result *f = &m->u.forward_result;
		wire_read_request_key(r, "forward_result.request_key", &f->request_key,
		                      &f->request_key_len);
		replication_mp_read_i32(r, "forward_result.err", &f->err);
		return replication_mp_read_uint(r, "forward_result.index", UINT64_MAX, &f->index);
	}
	case REPLICATION_WIRE_PROGRESS:
		return wire_read_progress(r, &m->u.progress);
	default:
		CL_UNREACHABLE(); /* wire_fields refused it */
	}
}

int replication_wire_decode(const uint8_t *bytes, size_t len, struct consensus_entry *entries,
                            size_t entries_capacity, struct replication_wire_msg *out, char *why,
                            size_t why_len)
{
	if (why != NULL && why_len > 0) {
		why[0] = '\0';
	}
	if ((bytes == NULL && len > 0) || entries == NULL ||
	    entries_capacity < CONSENSUS_APPEND_ENTRIES_MAX || out == NULL) {
		return CARELOG_EINVAL;
	}
	struct replication_mp_reader r;
	replication_mp_reader_init(&r, bytes, len);
	struct replication_wire_msg m;
	memset(&m, 0, sizeof(m));
	int rc = wire_read(&r, entries, &m);
	if (rc == CARELOG_OK) {
		rc = replication_mp_read_end(&r);
	}
	if (rc != CARELOG_OK) {
		CL_ASSERT(r.failed);
		if (why != NULL && why_len > 0) {
			snprintf(why, why_len, "%s", replication_mp_why(&r));
		}
		return rc;
	}
	*out = m;
	return CARELOG_OK;
}
