/* Shared fixture for the daemon's unit tests. */
#include "fixture.h"

#include "carelog/errors.h"
#include "node/daemon/node.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(cl_crypto_init(), CARELOG_OK);
	snprintf(f->dir, sizeof(f->dir), "/tmp/carelog-daemon-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(cl_sign_keypair(f->public_key, f->secret), CARELOG_OK);
	struct membership *m = &f->membership;
	m->has_cluster_id = true;
	for (size_t i = 0; i < sizeof(m->cluster_id); i++) {
		m->cluster_id[i] = (uint8_t)(0xa0 + i);
	}
	m->count = 1;
	m->members[0].id = FIXTURE_NODE_ID;
	snprintf(m->members[0].org, sizeof(m->members[0].org), "%s", FIXTURE_ORG);
	/* Port 0: the kernel picks one, so test binaries running side by side never collide (a
	 * lone voter dials nobody). */
	snprintf(m->members[0].address, sizeof(m->members[0].address), "tcp://127.0.0.1:0");
	memcpy(m->members[0].public_key, f->public_key, sizeof(f->public_key));
	m->members[0].voter = true;
	m->has_params = true;
	m->params.body_max_bytes = 4096;
	assert_int_equal(
	    membership_genesis_entry(m, f->genesis, sizeof(f->genesis), &f->genesis_len),
	    CARELOG_OK);
}

void fixture_open_store(struct fixture *f, const char *sub, struct storage **out_storage,
                        struct node_apply_state *out_state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	struct storage_options o = {.dir = path, .map_size_bytes = 64ULL << 20, .readers_max = 16};
	struct storage *s = NULL;
	assert_int_equal(storage_open(&o, &s), CARELOG_OK);
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(s, &t), CARELOG_OK);
	struct storage_identity id = {.node_id = FIXTURE_NODE_ID};
	memcpy(id.cluster_id, f->membership.cluster_id, sizeof(id.cluster_id));
	assert_int_equal(storage_identity_put(t, &id), CARELOG_OK);
	struct storage_entry e = {.index = 1,
	                          .term = 1,
	                          .type = CONSENSUS_ENTRY_CONF,
	                          .data_len = (uint32_t)f->genesis_len,
	                          .data = f->genesis};
	assert_int_equal(storage_log_append(t, &e, 1), CARELOG_OK);
	struct storage_hard_state hs = {.term = 1, .vote = 0, .commit = 1};
	assert_int_equal(storage_hard_state_put(t, &hs), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	memset(out_state, 0, sizeof(*out_state));
	assert_int_equal(node_recover(s, out_state, 16), CARELOG_OK);
	assert_int_equal(out_state->applied_index, 1);
	assert_true(out_state->has_membership);
	*out_storage = s;
}

void fixture_cleanup(struct fixture *f)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
}

size_t fixture_record(const struct fixture *f, const char *patient, const char *request_id,
                      const char *body, uint64_t time_ms, uint8_t *out, size_t cap,
                      uint8_t out_id[JOURNAL_ID_BYTES])
{
	struct journal_append in = {
	    .kind = "note",
	    .patient = patient,
	    .author = "hpr-1234",
	    .role = "physician",
	    .unit = "cardiology",
	    .request_id = request_id,
	    .body = (const uint8_t *)body,
	    .body_len = strlen(body),
	};
	struct journal_signer signer = {
	    .node_id = FIXTURE_NODE_ID, .org = FIXTURE_ORG, .secret_key = f->secret};
	struct journal_signed sig;
	const char *reason = NULL;
	assert_int_equal(journal_sign(&in, &signer, time_ms, 4096, &sig, &reason), CARELOG_OK);
	struct journal_record r = {.leader_time_ms = time_ms,
	                           .header = sig.header_buf,
	                           .header_len = sig.header_len,
	                           .signature = sig.signature,
	                           .salt = sig.salt,
	                           .body = in.body,
	                           .body_len = in.body_len};
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, out, cap, &len), CARELOG_OK);
	if (out_id != NULL) {
		memcpy(out_id, sig.id, JOURNAL_ID_BYTES);
	}
	return len;
}
