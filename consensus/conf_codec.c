/* Encoding and decoding of CONF entry data (the byte format documented in consensus.h). */
#include "consensus/consensus.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"

#include <string.h>

enum { CONF_VERSION = 1, CONF_CHANGE_BYTES = 9 };

static bool conf_change_valid(const struct consensus_conf_change *cc)
{
	if (cc->transition > CONSENSUS_CONF_TRANSITION_EXPLICIT) {
		return false;
	}
	if (cc->count > CONSENSUS_CONF_CHANGES_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < cc->count; i++) {
		uint8_t op = cc->changes[i].op;
		if (op < CONSENSUS_CONF_ADD_VOTER || op > CONSENSUS_CONF_REMOVE) {
			return false;
		}
		if (cc->changes[i].node_id == 0) {
			return false;
		}
	}
	return true;
}

int consensus_conf_encode(const struct consensus_conf_change *cc, const uint8_t *context,
                          uint32_t context_len, uint8_t *out, size_t out_capacity, size_t *out_len)
{
	if (cc == NULL || out == NULL || out_len == NULL || (context == NULL && context_len > 0)) {
		return CARELOG_EINVAL;
	}
	if (!conf_change_valid(cc)) {
		return CARELOG_EINVAL;
	}
	size_t need = 3 + (size_t)CONF_CHANGE_BYTES * cc->count + 4 + (size_t)context_len;
	if (need > out_capacity) {
		return CARELOG_ETOOBIG;
	}
	uint8_t *p = out;
	*p++ = CONF_VERSION;
	*p++ = cc->transition;
	*p++ = cc->count;
	for (uint32_t i = 0; i < cc->count; i++) {
		*p++ = cc->changes[i].op;
		cl_put_u64be(p, cc->changes[i].node_id);
		p += 8;
	}
	cl_put_u32be(p, context_len);
	p += 4;
	if (context_len > 0) {
		memcpy(p, context, context_len);
		p += context_len;
	}
	CL_ASSERT((size_t)(p - out) == need);
	*out_len = need;
	return CARELOG_OK;
}

int consensus_conf_decode(const uint8_t *data, size_t len, struct consensus_conf_change *out,
                          const uint8_t **out_context, uint32_t *out_context_len)
{
	if ((data == NULL && len > 0) || out == NULL) {
		return CARELOG_EINVAL;
	}
	if (len < 3) {
		return CARELOG_EPROTO;
	}
	if (data[0] != CONF_VERSION) {
		return CARELOG_EVERSION;
	}
	struct consensus_conf_change cc;
	memset(&cc, 0, sizeof(cc));
	cc.transition = data[1];
	cc.count = data[2];
	if (cc.count > CONSENSUS_CONF_CHANGES_MAX) {
		return CARELOG_EPROTO;
	}
	size_t off = 3;
	if (len - off < (size_t)CONF_CHANGE_BYTES * cc.count + 4) {
		return CARELOG_EPROTO;
	}
	for (uint32_t i = 0; i < cc.count; i++) {
		cc.changes[i].op = data[off];
		cc.changes[i].node_id = cl_get_u64be(data + off + 1);
		off += CONF_CHANGE_BYTES;
	}
	uint32_t context_len = cl_get_u32be(data + off);
	off += 4;
	if (len - off != context_len) {
		return CARELOG_EPROTO;
	}
	if (!conf_change_valid(&cc)) {
		return CARELOG_EPROTO;
	}
	*out = cc;
	if (out_context != NULL) {
		*out_context = context_len > 0 ? data + off : NULL;
	}
	if (out_context_len != NULL) {
		*out_context_len = context_len;
	}
	return CARELOG_OK;
}
