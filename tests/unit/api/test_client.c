/* Unit tests for libcarelog against an in-process fake node speaking the client protocol. */
#include "carelog/carelog.h"
#include "node/api/proto.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/*
 * The fake node answers by the request's patient (or op):
 *   "pending"  append answered committed = false        "denied"  err EDENIED "no care relation"
 *   "silent"   no answer at all (the client times out)  "garbage" bytes that are not msgpack
 *   "pending-err" err EPENDING                           "toobig"  err ETOOBIG with the node's text
 *   anything else: a normal answer
 * Appends are deduplicated by request id like the real node; policy entries are answered like
 * appends (by their patient too). Every request's actor map is recorded.
 * Membership and transfer requests are answered by node id:
 *   FAKE_ID_NOT_LEADER  err ENOTLEADER "not the leader; the leader is node 2"
 *   FAKE_ID_SILENT      no answer (the client times out after sending)
 *   anything else: index FAKE_MEMBER_INDEX_BASE + action (transfer: leader_id = to)
 */

/*
 * Timeouts. A call the fake answers gets TEST_CALL_TIMEOUT_MS: it only bounds how long a broken
 * client or fake can stall a test, so it is generous for ASan on a loaded 2-core machine and
 * never decides a result. A call meant to time out gets TEST_SILENT_TIMEOUT_MS after the
 * connection is known to be up (test_connect), so the outcome never depends on load.
 */
enum {
	TEST_CALL_TIMEOUT_MS = 20000,
	TEST_SILENT_TIMEOUT_MS = 300,
};

enum {
	FAKE_STOP_ID_BYTE = 0xee, /* a get of an id starting with this byte stops the fake */
	FAKE_REQUEST_IDS_MAX = 4096,
	FAKE_ENTRIES = 3,
	FAKE_ID_NOT_LEADER = 4242,
	FAKE_ID_SILENT = 4343,
	FAKE_MEMBER_INDEX_BASE = 250000,
};

struct fake_node {
	nng_socket socket;
	char url[128];
	pthread_t thread;
	pthread_mutex_t lock;
	uint32_t requests_seen;
	uint32_t last_timeout_ms;
	char last_request_id[PROTO_REQUEST_ID_BYTES_MAX + 1];
	char last_actor[PROTO_ACTOR_BYTES_MAX + 1];
	uint8_t last_op;
	char last_actor_role[PROTO_ROLE_BYTES_MAX + 1];
	char last_actor_unit[PROTO_UNIT_BYTES_MAX + 1];
	char last_actor_purpose[PROTO_PURPOSE_BYTES_MAX + 1];
	bool last_history;
	struct proto_policy_req last_policy; /* views valid only inside fake_run: copies below */
	char last_policy_kind[PROTO_KIND_BYTES_MAX + 1];
	char last_policy_text[PROTO_TEXT_BYTES_MAX + 1];
	char last_policy_category1[PROTO_SENSITIVITY_BYTES_MAX + 1];
	char last_log_patient[PROTO_PATIENT_BYTES_MAX + 1];
	char last_log_actor[PROTO_ACTOR_BYTES_MAX + 1];
	char last_log_org[PROTO_ORG_BYTES_MAX + 1];
	uint32_t last_limit;
	uint32_t appends_committed;
	struct proto_member_req last_member; /* views valid only inside fake_run: copy below */
	char last_member_org[PROTO_ORG_BYTES_MAX + 1];
	char last_member_address[PROTO_ADDRESS_BYTES_MAX + 1];
	uint64_t last_transfer_to;
	bool stop; /* set by the fake's own thread when it gets the stop request */
	char request_ids[FAKE_REQUEST_IDS_MAX][PROTO_REQUEST_ID_BYTES_MAX + 1];
};

static struct fake_node fake;

/* The fake node runs on its own thread, where cmocka's assertions must not be used. */
#define FAKE_CHECK(expr)                                                                   \
	do {                                                                               \
		if (!(expr)) {                                                             \
			fprintf(stderr, "fake node: %s failed\n", #expr);                   \
			abort();                                                           \
		}                                                                          \
	} while (0)

static bool str_is(struct proto_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static struct proto_entry fake_entry(uint64_t index, struct proto_str patient)
{
	struct proto_entry e = {0};
	e.index = index;
	memset(e.id, (int)index, PROTO_ID_BYTES);
	e.kind = (struct proto_str){"note", 4};
	e.patient = patient;
	e.author = (struct proto_str){"hpr-1", 5};
	e.role = (struct proto_str){"doctor", 6};
	e.org = (struct proto_str){"st-olavs", 8};
	e.unit = (struct proto_str){"", 0};
	e.node_id = 1;
	e.time_ms = 1700000000000ull + index;
	e.status = (struct proto_str){"final", 5};
	e.sensitivity = (struct proto_str){"normal", 6};
	e.media_type = (struct proto_str){"text/plain", 10};
	e.request_id = (struct proto_str){"r", 1};
	e.body = index == 2 ? (struct proto_str){"\x00\x01\xff", 3}
			    : (struct proto_str){"body text", 9};
	return e;
}

/* Returns false when the request gets no answer. */
static bool fake_answer(const struct proto_request *req, struct proto_buf *out)
{
	struct proto_reply rep = {.op = req->op};
	struct proto_str patient = {0};
	if (req->op == PROTO_OP_APPEND) {
		patient = req->u.append.patient;
	} else if (req->op == PROTO_OP_READ) {
		patient = req->u.read.patient;
	} else if (req->op == PROTO_OP_POLICY) {
		patient = req->u.policy.patient;
	} else if (req->op == PROTO_OP_ACCESS_LOG) {
		patient = req->u.access_log.patient;
	}
	if (str_is(patient, "silent")) {
		return false;
	}
	if (str_is(patient, "garbage")) {
		out->data = malloc(4);
		memcpy(out->data, "\xc1\xc1\xc1\xc1", 4);
		out->len = 4;
		return true;
	}
	if (str_is(patient, "denied")) {
		FAKE_CHECK((proto_reply_encode_error(req->op, CARELOG_EDENIED,
							  "no care relation", out)) == CARELOG_OK);
		return true;
	}
	if (str_is(patient, "toobig")) { /* as carelogd answers a request over request_bytes_max */
		FAKE_CHECK((proto_reply_encode_error(req->op, CARELOG_ETOOBIG,
						     "request is 3000104 bytes; this node accepts at "
						     "most 1114112 (request_bytes_max)",
						     out)) == CARELOG_OK);
		return true;
	}
	if (str_is(patient, "pending-err")) {
		FAKE_CHECK((proto_reply_encode_error(req->op, CARELOG_EPENDING, "not yet", out)) == CARELOG_OK);
		return true;
	}
	struct proto_entry entries[FAKE_ENTRIES];
	struct proto_member members[3] = {
		{.id = 1, .role = {"voter", 5}, .org = {"helse-vest", 10},
		 .address = {"tcp://10.0.0.1:7401", 19}, .has_match = true, .match_index = 7},
		{.id = 9, .role = {"learner", 7}, .org = {"helse-nord", 10},
		 .address = {"tcp://10.0.0.9:7401", 19}, .has_match = true, .match_index = 6,
		 .lag = 1},
		{.id = 10, .role = {"learner", 7}, .org = {"helse-sor", 9},
		 .address = {"tcp://10.0.0.10:7401", 20}, .has_match = false, .lag = 7}};
	struct proto_str problems[1] = {{"log/3: checksum mismatch", 24}};
	struct proto_withheld_reason reasons[2] = {
	    {{"blocked by the patient", 22}, 2},
	    {{"shielded psychiatry entry of another unit", 41}, 1}};
	struct proto_access_row rows[2] = {{.node_id = 2,
	                                    .seq = 9,
	                                    .time_ms = 1764000000000ull,
	                                    .actor = {"hpr-9", 5},
	                                    .role = {"nurse", 5},
	                                    .org = {"kommune-x", 9},
	                                    .unit = {"", 0},
	                                    .patient = {"01017012345", 11},
	                                    .action = {"read", 4},
	                                    .allowed = false,
	                                    .basis = {"none", 4},
	                                    .outcome = {"EDENIED", 7},
	                                    .purpose = {"", 0}},
	                                   {.node_id = 1,
	                                    .seq = 3,
	                                    .time_ms = 1763990000000ull,
	                                    .actor = {"hpr-1", 5},
	                                    .role = {"physician", 9},
	                                    .org = {"st-olavs", 8},
	                                    .unit = {"cardio", 6},
	                                    .patient = {"01017012345", 11},
	                                    .action = {"get", 3},
	                                    .allowed = true,
	                                    .basis = {"relation", 8},
	                                    .count = 1,
	                                    .has_entry = true,
	                                    .outcome = {"OK", 2},
	                                    .purpose = {"ward round", 10},
	                                    .shipped = true}};
	memset(rows[1].entry, 0x77, PROTO_ID_BYTES);
	struct proto_btg_grant grant = {.index = 12,
	                                .patient = {"01017012345", 11},
	                                .actor = {"hpr-9", 5},
	                                .role = {"nurse", 5},
	                                .org = {"kommune-x", 9},
	                                .unit = {"legevakt", 8},
	                                .granted_ms = 1764000000000ull,
	                                .expires_ms = 1764086400000ull,
	                                .reason_code = {"emergency", 9},
	                                .reason_text = {"unconscious", 11}};
	memset(grant.id, 0x66, PROTO_ID_BYTES);
	switch (req->op) {
	case PROTO_OP_STATUS:
		rep.u.status = (struct proto_status_reply){
			.node_id = 1, .role = {"leader", 6}, .term = 2, .leader_id = 1,
			.commit_index = 7, .applied_index = 7, .members_count = 3,
			.members = members, .last_index = 7, .progress_age_ms = 0,
			.verified_signatures = 70, .syncs = 8,
			.transport = {.sent = 100, .received = 90, .dropped_auth = 3,
				      .dropped_replay = 2, .dropped_unknown = 1, .handshakes = 4},
			.has_audit = true,
			.audit = {.queued_rows = 12, .next_seq = 40, .shipped_seq = 27, .syncs = 31,
				  .write_failures = 1, .ship_failures = 2}};
		memset(rep.u.status.chain_head, 0xab, PROTO_ID_BYTES);
		break;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY: {
		struct proto_str request_id = req->op == PROTO_OP_APPEND ? req->u.append.request_id
		                                                         : req->u.policy.request_id;
		rep.u.append.request_id = request_id;
		if (str_is(patient, "pending")) {
			rep.u.append.committed = false;
			break;
		}
		pthread_mutex_lock(&fake.lock);
		uint32_t found = 0;
		for (uint32_t i = 0; i < fake.appends_committed; i++) {
			if (str_is(request_id, fake.request_ids[i])) {
				found = i + 1;
			}
		}
		if (found == 0 && fake.appends_committed < FAKE_REQUEST_IDS_MAX) {
			snprintf(fake.request_ids[fake.appends_committed],
			         sizeof(fake.request_ids[0]), "%.*s", (int)request_id.len,
			         request_id.ptr);
			found = ++fake.appends_committed;
			rep.u.append.duplicate = false;
		} else {
			rep.u.append.duplicate = true;
		}
		pthread_mutex_unlock(&fake.lock);
		rep.u.append.committed = true;
		rep.u.append.index = found;
		memset(rep.u.append.id, (int)found, PROTO_ID_BYTES);
		break;
	}
	case PROTO_OP_READ:
		for (uint32_t i = 0; i < FAKE_ENTRIES; i++) {
			entries[i] = fake_entry(i + 1, patient);
		}
		entries[0].has_superseded_by = true;
		memset(entries[0].superseded_by, 0x44, PROTO_ID_BYTES);
		rep.u.read = (struct proto_read_reply){.applied_index = 7,
		                                       .lag = 2,
		                                       .stale = true,
		                                       .withheld = 3,
		                                       .more = true,
						       .entries_count = FAKE_ENTRIES,
		                                       .entries = entries,
		                                       .basis = {"relation", 8},
		                                       .withheld_reasons_count = 2,
		                                       .withheld_reasons = reasons};
		break;
	case PROTO_OP_ACCESS_LOG:
		rep.u.access_log = (struct proto_access_log_reply){
		    .applied_index = 40, .rows_count = 2, .rows = rows};
		break;
	case PROTO_OP_BTG_LIST:
		rep.u.btg_list = (struct proto_btg_list_reply){.grants_count = 1, .grants = &grant};
		break;
	case PROTO_OP_GET:
		if (req->u.get.id[0] == FAKE_STOP_ID_BYTE) {
			fake.stop = true; /* answer, then leave the loop: see fake_stop */
		}
		if (req->u.get.id[0] == 6) { /* an erased entry */
			rep.u.get = fake_entry(6, (struct proto_str){"p", 1});
			rep.u.get.body = (struct proto_str){"", 0};
			rep.u.get.body_erased = true;
			rep.u.get.erased_index = 60;
			rep.u.get.erased_time_ms = 1764000000500ull;
			rep.u.get.erased_author = (struct proto_str){"adm-1", 5};
			rep.u.get.erased_org = (struct proto_str){"st-olavs", 8};
			rep.u.get.erased_basis = (struct proto_str){"hpl 43: decision 17", 19};
			break;
		}
		if (req->u.get.id[0] != 5) {
			FAKE_CHECK((proto_reply_encode_error(req->op, CARELOG_ENOTFOUND,
								  "no such entry", out)) == CARELOG_OK);
			return true;
		}
		rep.u.get = fake_entry(5, (struct proto_str){"p", 1});
		rep.u.get.has_corrects = true;
		memset(rep.u.get.corrects, 0x33, PROTO_ID_BYTES);
		break;
	case PROTO_OP_MEMBER:
	case PROTO_OP_TRANSFER: {
		uint64_t id = req->op == PROTO_OP_MEMBER ? req->u.member.id : req->u.transfer.to;
		if (id == FAKE_ID_SILENT) {
			return false;
		}
		if (id == FAKE_ID_NOT_LEADER) {
			FAKE_CHECK(proto_reply_encode_error(req->op, CARELOG_ENOTLEADER,
							    "not the leader; the leader is node 2",
							    out) == CARELOG_OK);
			return true;
		}
		if (req->op == PROTO_OP_MEMBER) {
			rep.u.member.index = FAKE_MEMBER_INDEX_BASE + req->u.member.action;
		} else {
			rep.u.transfer.leader_id = id;
		}
		break;
	}
	case PROTO_OP_VERIFY:
		rep.u.verify = (struct proto_verify_reply){.ok = false, .entries_checked = 7,
							   .values_checked = 30, .problems_count = 4,
							   .problems_listed = 1,
							   .problems = problems, .applied_index = 7};
		break;
	default:
		break;
	}
	FAKE_CHECK((proto_reply_encode(&rep, out)) == CARELOG_OK);
	return true;
}

static void fake_copy(char *dst, size_t cap, struct proto_str s)
{
	snprintf(dst, cap, "%.*s", (int)s.len, s.ptr != NULL ? s.ptr : "");
}

/* One context served in turn, as carelogd's server does with many. */
static void *fake_run(void *arg)
{
	(void)arg;
	nng_ctx ctx;
	nng_aio *aio;
	FAKE_CHECK(nng_ctx_open(&ctx, fake.socket) == 0);
	FAKE_CHECK(nng_aio_alloc(&aio, NULL, NULL) == 0);
	for (;;) {
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			break; /* socket closed: the test is over */
		}
		nng_msg *msg = nng_aio_get_msg(aio);
		struct proto_request req;
		struct proto_buf out = {0};
		int rc = proto_request_decode(nng_msg_body(msg), nng_msg_len(msg), &req);
		bool answer = true;
		if (rc != CARELOG_OK) {
			FAKE_CHECK(proto_reply_encode_error(0, rc, "bad request", &out) == CARELOG_OK);
		} else {
			pthread_mutex_lock(&fake.lock);
			fake.requests_seen++;
			fake.last_timeout_ms = req.timeout_ms;
			fake.last_op = req.op;
			fake_copy(fake.last_actor, sizeof(fake.last_actor), req.actor.id);
			fake_copy(fake.last_actor_role, sizeof(fake.last_actor_role),
			          req.actor.role);
			fake_copy(fake.last_actor_unit, sizeof(fake.last_actor_unit),
			          req.actor.unit);
			fake_copy(fake.last_actor_purpose, sizeof(fake.last_actor_purpose),
			          req.actor.purpose);
			if (req.op == PROTO_OP_APPEND) {
				fake_copy(fake.last_request_id, sizeof(fake.last_request_id),
				          req.u.append.request_id);
			}
			if (req.op == PROTO_OP_READ) {
				fake.last_history = req.u.read.history;
				fake.last_limit = req.u.read.limit;
			}
			if (req.op == PROTO_OP_POLICY) {
				fake.last_policy = req.u.policy;
				fake_copy(fake.last_request_id, sizeof(fake.last_request_id),
				          req.u.policy.request_id);
				fake_copy(fake.last_policy_kind, sizeof(fake.last_policy_kind),
				          req.u.policy.kind);
				fake_copy(fake.last_policy_text, sizeof(fake.last_policy_text),
				          req.u.policy.text);
				fake_copy(fake.last_policy_category1,
				          sizeof(fake.last_policy_category1),
				          req.u.policy.categories[1]);
			}
			if (req.op == PROTO_OP_ACCESS_LOG) {
				fake_copy(fake.last_log_patient, sizeof(fake.last_log_patient),
				          req.u.access_log.patient);
				fake_copy(fake.last_log_actor, sizeof(fake.last_log_actor),
				          req.u.access_log.actor_id);
				fake_copy(fake.last_log_org, sizeof(fake.last_log_org),
				          req.u.access_log.actor_org);
				fake.last_limit = req.u.access_log.limit;
			}
			if (req.op == PROTO_OP_BTG_LIST) {
				fake_copy(fake.last_log_patient, sizeof(fake.last_log_patient),
				          req.u.btg_list.patient);
				fake.last_limit = req.u.btg_list.limit;
			}
			if (req.op == PROTO_OP_MEMBER) {
				fake.last_member = req.u.member;
				snprintf(fake.last_member_org, sizeof(fake.last_member_org), "%.*s",
					 (int)req.u.member.org.len, req.u.member.org.ptr);
				snprintf(fake.last_member_address, sizeof(fake.last_member_address),
					 "%.*s", (int)req.u.member.address.len,
					 req.u.member.address.ptr);
			}
			if (req.op == PROTO_OP_TRANSFER) {
				fake.last_transfer_to = req.u.transfer.to;
			}
			pthread_mutex_unlock(&fake.lock);
			answer = fake_answer(&req, &out);
		}
		if (!answer) {
			nng_msg_free(msg);
			continue;
		}
		nng_msg_clear(msg);
		FAKE_CHECK(nng_msg_append(msg, out.data, out.len) == 0);
		proto_buf_free(&out);
		nng_aio_set_msg(aio, msg);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			nng_msg_free(nng_aio_get_msg(aio));
		}
		if (fake.stop) {
			break;
		}
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return NULL;
}

/*
 * The fake listens on tcp://127.0.0.1 (an ephemeral port), not ipc://: nng 1.5.2's ipc listener
 * stops accepting for good after a client disconnects during the connection handshake
 * (nanomsg/nng#1518, fixed upstream by #1519), which
 * test_invalid_arguments_are_refused_before_sending does on purpose.
 */
static int fake_start(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.lock, NULL);
	nng_listener listener;
	int port = 0;
	if (nng_rep0_open(&fake.socket) != 0 ||
	    nng_listen(fake.socket, "tcp://127.0.0.1:0", &listener, 0) != 0 ||
	    nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) != 0) {
		return -1;
	}
	snprintf(fake.url, sizeof(fake.url), "tcp://127.0.0.1:%d", port);
	return pthread_create(&fake.thread, NULL, fake_run, NULL) == 0 ? 0 : -1;
}

/* Stops the fake from its own thread before closing the socket: closing an nng socket while
 * another thread is inside nng_ctx_send on it can panic nng 1.5.2. */
static int fake_stop(void **state)
{
	(void)state;
	struct carelog_client *c = NULL;
	if (carelog_client_open(fake.url, &c) != CARELOG_OK) {
		return -1;
	}
	struct carelog_get_args g = {0};
	memset(g.id, FAKE_STOP_ID_BYTE, sizeof(g.id));
	struct carelog_entry *e = NULL;
	int rc = carelog_get(c, &g, TEST_CALL_TIMEOUT_MS, &e);
	carelog_client_close(c);
	if (rc != CARELOG_ENOTFOUND) {
		return -1;
	}
	pthread_join(fake.thread, NULL);
	nng_close(fake.socket);
	pthread_mutex_destroy(&fake.lock);
	return 0;
}

static struct carelog_client *client_for_fake(void)
{
	struct carelog_client *c = NULL;
	assert_int_equal(carelog_client_open(fake.url, &c), CARELOG_OK);
	assert_non_null(c);
	return c;
}

/* Waits (bounded by TEST_CALL_TIMEOUT_MS) until `c` has a connection, by one answered call:
 * after it, a request is handed to the connection at once and only the reply can be late. */
static void test_connect(struct carelog_client *c)
{
	struct carelog_status *s = NULL;
	assert_int_equal(carelog_status(c, TEST_CALL_TIMEOUT_MS, &s), CARELOG_OK);
	carelog_status_free(s);
}

/* ---------------------------------------------------------------- tests */

static void test_status_returns_members_as_owned_copies(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_status *s = NULL;
	assert_int_equal(carelog_status(c, TEST_CALL_TIMEOUT_MS, &s), CARELOG_OK);
	assert_int_equal(s->node_id, 1);
	assert_string_equal(s->role, "leader");
	assert_int_equal(s->commit_index, 7);
	assert_int_equal(s->chain_head[31], 0xab);
	assert_int_equal(s->members_count, 3);
	assert_string_equal(s->members[1].role, "learner");
	assert_int_equal(s->members[1].match_index, 6);
	assert_true(s->members[1].has_match);
	assert_int_equal(s->members[1].lag, 1);
	assert_false(s->members[2].has_match);
	assert_int_equal(s->members[2].match_index, 0);
	assert_int_equal(s->members[2].lag, 7);
	assert_int_equal(s->last_index, 7);
	assert_int_equal(s->verified_signatures, 70);
	assert_int_equal(s->syncs, 8);
	assert_int_equal(s->transport.sent, 100);
	assert_int_equal(s->transport.received, 90);
	assert_int_equal(s->transport.dropped_auth, 3);
	assert_int_equal(s->transport.dropped_replay, 2);
	assert_int_equal(s->transport.dropped_unknown, 1);
	assert_int_equal(s->transport.handshakes, 4);
	assert_true(s->has_audit);
	assert_int_equal(s->audit.queued_rows, 12);
	assert_int_equal(s->audit.next_seq, 40);
	assert_int_equal(s->audit.shipped_seq, 27);
	assert_int_equal(s->audit.syncs, 31);
	assert_int_equal(s->audit.write_failures, 1);
	assert_int_equal(s->audit.ship_failures, 2);
	/* the node may take most of the caller's time, never all of it */
	assert_true(fake.last_timeout_ms > 0 && fake.last_timeout_ms < TEST_CALL_TIMEOUT_MS);
	carelog_client_close(c); /* results outlive the client */
	assert_string_equal(s->members[0].role, "voter");
	assert_string_equal(s->members[0].org, "helse-vest");
	assert_string_equal(s->members[2].address, "tcp://10.0.0.10:7401");
	carelog_status_free(s);
	carelog_status_free(NULL);
}

static void test_membership_calls_send_their_fields_and_return_the_index(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	uint8_t key[CARELOG_PUBLIC_KEY_BYTES];
	for (size_t i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)(0x40 + i);
	}
	struct carelog_learner_args a = {.id = 4, .org = "helse-nord",
					 .address = "tcp://10.0.0.4:7401", .public_key = key};
	uint64_t index = 0;
	assert_int_equal(carelog_member_add_learner(c, &a, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_OK);
	assert_int_equal(index, FAKE_MEMBER_INDEX_BASE + PROTO_MEMBER_ADD_LEARNER);
	pthread_mutex_lock(&fake.lock);
	assert_int_equal(fake.last_member.action, PROTO_MEMBER_ADD_LEARNER);
	assert_int_equal(fake.last_member.id, 4);
	assert_string_equal(fake.last_member_org, "helse-nord");
	assert_string_equal(fake.last_member_address, "tcp://10.0.0.4:7401");
	assert_true(fake.last_member.has_public_key);
	assert_memory_equal(fake.last_member.public_key, key, sizeof(key));
	pthread_mutex_unlock(&fake.lock);

	assert_int_equal(carelog_member_promote(c, 4, TEST_CALL_TIMEOUT_MS, &index), CARELOG_OK);
	assert_int_equal(index, FAKE_MEMBER_INDEX_BASE + PROTO_MEMBER_PROMOTE);
	assert_int_equal(fake.last_member.action, PROTO_MEMBER_PROMOTE);
	assert_int_equal(carelog_member_remove(c, 9, TEST_CALL_TIMEOUT_MS, &index), CARELOG_OK);
	assert_int_equal(index, FAKE_MEMBER_INDEX_BASE + PROTO_MEMBER_REMOVE);
	assert_int_equal(fake.last_member.id, 9);

	uint64_t leader = 0;
	assert_int_equal(carelog_transfer_leader(c, 3, TEST_CALL_TIMEOUT_MS, &leader), CARELOG_OK);
	assert_int_equal(leader, 3);
	assert_int_equal(fake.last_transfer_to, 3);

	/* the node's refusal comes back with its message; outputs stay untouched */
	index = 77;
	assert_int_equal(carelog_member_promote(c, FAKE_ID_NOT_LEADER, TEST_CALL_TIMEOUT_MS,
						&index),
			 CARELOG_ENOTLEADER);
	assert_string_equal(carelog_last_message(), "not the leader; the leader is node 2");
	assert_int_equal(index, 77);
	assert_int_equal(carelog_transfer_leader(c, FAKE_ID_NOT_LEADER, TEST_CALL_TIMEOUT_MS,
						 &leader),
			 CARELOG_ENOTLEADER);
	carelog_client_close(c);
}

static void test_membership_change_without_answer_is_pending_transfer_times_out(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	test_connect(c);
	uint64_t index = 77;
	/* the change may have been committed: pending, as for an append */
	assert_int_equal(carelog_member_remove(c, FAKE_ID_SILENT, TEST_SILENT_TIMEOUT_MS, &index),
			 CARELOG_EPENDING);
	assert_non_null(strstr(carelog_last_message(), "check status"));
	assert_int_equal(index, 77);
	/* a transfer changes no configuration: a plain timeout */
	uint64_t leader = 77;
	assert_int_equal(carelog_transfer_leader(c, FAKE_ID_SILENT, TEST_SILENT_TIMEOUT_MS,
						 &leader),
			 CARELOG_ETIMEDOUT);
	assert_int_equal(leader, 77);
	carelog_client_close(c);
}

static void test_membership_arguments_are_checked_before_sending(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	test_connect(c);
	uint32_t seen = fake.requests_seen;
	uint8_t key[CARELOG_PUBLIC_KEY_BYTES] = {0};
	uint64_t index = 0;
	struct carelog_learner_args a = {.id = 0, .org = "o", .address = "tcp://h:1",
					 .public_key = key};
	assert_int_equal(carelog_member_add_learner(c, &a, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	a.id = 5;
	a.public_key = NULL;
	assert_int_equal(carelog_member_add_learner(c, &a, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	a.public_key = key;
	a.org = "";
	assert_int_equal(carelog_member_add_learner(c, &a, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	char long_address[CARELOG_ADDRESS_BYTES_MAX + 2];
	memset(long_address, 'a', sizeof(long_address) - 1);
	long_address[sizeof(long_address) - 1] = '\0';
	a.org = "o";
	a.address = long_address;
	assert_int_equal(carelog_member_add_learner(c, &a, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "address"));
	assert_int_equal(carelog_member_add_learner(c, NULL, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	assert_int_equal(carelog_member_promote(c, 0, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	assert_int_equal(carelog_member_remove(c, 3, TEST_CALL_TIMEOUT_MS, NULL), CARELOG_EINVAL);
	assert_int_equal(carelog_transfer_leader(c, 0, TEST_CALL_TIMEOUT_MS, &index),
			 CARELOG_EINVAL);
	assert_int_equal(fake.requests_seen, seen);
	carelog_client_close(c);
}

static void test_append_generates_a_request_id_and_reports_commit(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_append_args a = {.patient = "p", .kind = "note", .body = "BT 120/80",
					.body_len = 9, .actor = "hpr-9"};
	struct carelog_append_result r;
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	assert_true(r.committed);
	assert_false(r.duplicate);
	assert_int_equal(r.index, 1);
	assert_int_equal(strlen(r.request_id), 32);
	assert_string_equal(r.request_id, fake.last_request_id);
	assert_string_equal(fake.last_actor, "hpr-9");
	/* a retry with the same request id is answered with the first entry */
	a.request_id = r.request_id;
	struct carelog_append_result again;
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &again), CARELOG_OK);
	assert_true(again.duplicate);
	assert_int_equal(again.index, r.index);
	carelog_client_close(c);
}

static void test_append_pending_answer_returns_the_request_id_to_retry(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	const char *patients[] = {"pending", "pending-err"};
	for (size_t i = 0; i < 2; i++) {
		struct carelog_append_args a = {.patient = patients[i], .kind = "note",
						.request_id = "fixed-rid-1"};
		struct carelog_append_result r;
		memset(&r, 0x55, sizeof(r));
		assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EPENDING);
		assert_string_equal(r.request_id, "fixed-rid-1");
		assert_false(r.committed);
		assert_int_equal(r.index, 0);
	}
	carelog_client_close(c);
}

static void test_append_without_answer_is_pending_not_lost(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	test_connect(c); /* else a slow connect would make this ECONNECT, not EPENDING */
	struct carelog_append_args a = {.patient = "silent", .kind = "note"};
	struct carelog_append_result r;
	assert_int_equal(carelog_append(c, &a, TEST_SILENT_TIMEOUT_MS, &r), CARELOG_EPENDING);
	assert_int_equal(strlen(r.request_id), 32);
	assert_non_null(strstr(carelog_last_message(), "same request id"));
	/* a read without answer is a plain timeout */
	struct carelog_read_args q = {.patient = "silent"};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_SILENT_TIMEOUT_MS, &res), CARELOG_ETIMEDOUT);
	assert_null(res);
	carelog_client_close(c);
}

static void test_node_errors_come_back_with_the_nodes_message(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_read_args q = {.patient = "denied"};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &res), CARELOG_EDENIED);
	assert_string_equal(carelog_last_message(), "no care relation");
	assert_null(res);
	struct carelog_get_args g = {0};
	struct carelog_entry *e = NULL;
	assert_int_equal(carelog_get(c, &g, TEST_CALL_TIMEOUT_MS, &e), CARELOG_ENOTFOUND);
	assert_null(e);
	carelog_client_close(c);
}

static void test_malformed_reply_is_eproto(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_read_args q = {.patient = "garbage"};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &res), CARELOG_EPROTO);
	assert_non_null(strstr(carelog_last_message(), "malformed reply"));
	carelog_client_close(c);
}

static void test_read_copies_entries_with_nul_terminated_strings_and_bodies(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_read_args q = {.patient = "01017012345",
				      .consistency = CARELOG_CONSISTENCY_LINEARIZABLE,
				      .limit = 10};
	struct carelog_read_result *r = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	carelog_client_close(c);
	assert_int_equal(r->applied_index, 7);
	assert_int_equal(r->lag, 2);
	assert_true(r->stale);
	assert_int_equal(r->withheld, 3);
	assert_true(r->more);
	assert_int_equal(r->entries_count, FAKE_ENTRIES);
	assert_string_equal(r->entries[0].patient, "01017012345");
	assert_string_equal(r->entries[0].org, "st-olavs");
	assert_string_equal(r->entries[0].unit, "");
	assert_string_equal((const char *)r->entries[0].body, "body text");
	assert_int_equal(r->entries[1].body_len, 3);
	assert_memory_equal(r->entries[1].body, "\x00\x01\xff", 4); /* NUL after the body */
	assert_int_equal(r->entries[2].time_ms, 1700000000003ull);
	carelog_read_result_free(r);
}

static void test_get_and_verify_results(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_get_args g = {0};
	memset(g.id, 5, sizeof(g.id));
	struct carelog_entry *e = NULL;
	assert_int_equal(carelog_get(c, &g, TEST_CALL_TIMEOUT_MS, &e), CARELOG_OK);
	assert_int_equal(e->index, 5);
	assert_true(e->has_corrects);
	assert_int_equal(e->corrects[0], 0x33);
	carelog_entry_free(e);
	struct carelog_verify_result *v = NULL;
	assert_int_equal(carelog_verify(c, TEST_CALL_TIMEOUT_MS, &v), CARELOG_OK);
	assert_false(v->ok);
	assert_int_equal(v->problems_count, 4);
	assert_int_equal(v->problems_listed, 1);
	assert_string_equal(v->problems[0], "log/3: checksum mismatch");
	carelog_verify_result_free(v);
	carelog_client_close(c);
}

static void test_invalid_arguments_are_refused_before_sending(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	/* one call first, so closing does not abort a connection handshake: nng 1.5.2 leaks the
	 * half-made pipe then, which LeakSanitizer reports */
	test_connect(c);
	uint32_t seen = fake.requests_seen;
	struct carelog_append_args a = {.patient = "", .kind = "note"};
	struct carelog_append_result r;
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EINVAL);
	a.patient = "p";
	a.body_len = 5; /* NULL body with a length */
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EINVAL);
	char long_id[CARELOG_REQUEST_ID_BYTES_MAX + 2];
	memset(long_id, 'r', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	a.body_len = 0;
	a.request_id = long_id;
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EINVAL);
	char long_patient[PROTO_PATIENT_BYTES_MAX + 2];
	memset(long_patient, 'p', sizeof(long_patient) - 1);
	long_patient[sizeof(long_patient) - 1] = '\0';
	struct carelog_read_args q = {.patient = long_patient};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &res), CARELOG_ETOOBIG);
	assert_int_equal(fake.requests_seen, seen);
	carelog_client_close(c);
	assert_int_equal(carelog_client_open("", &c), CARELOG_EINVAL);
	assert_int_equal(carelog_client_open("nonsense://x", &c), CARELOG_EINVAL);
	carelog_client_close(NULL);
}

static void test_oversized_requests_are_refused_locally_with_a_message(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	test_connect(c);
	uint32_t seen = fake.requests_seen;
	/* never read: the size is refused before the body is touched or encoded */
	size_t body_len = (size_t)PROTO_BODY_BYTES_MAX + 1;
	uint8_t *body = malloc(body_len);
	assert_non_null(body);
	struct carelog_append_args a = {.patient = "p", .kind = "note", .body = body,
					.body_len = body_len};
	struct carelog_append_result r;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "body is 67108865 bytes"));
	assert_non_null(strstr(carelog_last_message(), "not sent"));
	assert_int_equal(r.index, 0x5555555555555555ull); /* untouched on failure */
	free(body);
	char long_kind[PROTO_KIND_BYTES_MAX + 2];
	memset(long_kind, 'k', sizeof(long_kind) - 1);
	long_kind[sizeof(long_kind) - 1] = '\0';
	a = (struct carelog_append_args){.patient = "p", .kind = long_kind};
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "kind is 33 bytes"));
	struct carelog_read_args q = {.patient = "p", .limit = CARELOG_READ_LIMIT_MAX + 1};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &res), CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "limit 1001"));
	assert_null(res);
	assert_int_equal(fake.requests_seen, seen);
	/* the node's own refusal (over its request_bytes_max) is a plain failure, not pending,
	 * and carries the node's explanation */
	a = (struct carelog_append_args){.patient = "toobig", .kind = "note"};
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_ETOOBIG);
	assert_string_equal(carelog_last_message(),
			    "request is 3000104 bytes; this node accepts at most 1114112 "
			    "(request_bytes_max)");
	carelog_client_close(c);
}

/* ---------------------------------------------------------------- clinical access */

static void test_actor_default_goes_with_every_request_and_calls_override_id_and_role(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	assert_int_equal(
	    carelog_client_set_actor(c, "hpr-1", "nurse", "hjemmesykepleie", "home visit"),
	    CARELOG_OK);
	struct carelog_status *s = NULL;
	assert_int_equal(carelog_status(c, TEST_CALL_TIMEOUT_MS, &s), CARELOG_OK);
	carelog_status_free(s);
	pthread_mutex_lock(&fake.lock);
	assert_int_equal(fake.last_op, PROTO_OP_STATUS);
	assert_string_equal(fake.last_actor, "hpr-1");
	assert_string_equal(fake.last_actor_role, "nurse");
	assert_string_equal(fake.last_actor_unit, "hjemmesykepleie");
	assert_string_equal(fake.last_actor_purpose, "home visit");
	pthread_mutex_unlock(&fake.lock);
	/* a call's own actor and role win; unit and purpose stay the client's */
	struct carelog_append_args a = {
	    .patient = "p", .kind = "note", .actor = "hpr-9", .role = "physician"};
	struct carelog_append_result r;
	assert_int_equal(carelog_append(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	assert_string_equal(fake.last_actor, "hpr-9");
	assert_string_equal(fake.last_actor_role, "physician");
	assert_string_equal(fake.last_actor_unit, "hjemmesykepleie");
	assert_string_equal(fake.last_actor_purpose, "home visit");
	struct carelog_read_args q = {.patient = "p", .role = "midwife"};
	struct carelog_read_result *res = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &res), CARELOG_OK);
	carelog_read_result_free(res);
	assert_string_equal(fake.last_actor, "hpr-1");
	assert_string_equal(fake.last_actor_role, "midwife");
	/* an over-long field is refused and the previous actor kept */
	char long_purpose[CARELOG_PURPOSE_BYTES_MAX + 2];
	memset(long_purpose, 'w', sizeof(long_purpose) - 1);
	long_purpose[sizeof(long_purpose) - 1] = '\0';
	assert_int_equal(carelog_client_set_actor(c, "hpr-2", NULL, NULL, long_purpose),
	                 CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "purpose"));
	uint64_t index = 0;
	assert_int_equal(carelog_member_promote(c, 4, TEST_CALL_TIMEOUT_MS, &index), CARELOG_OK);
	assert_string_equal(fake.last_actor, "hpr-1");
	/* NULL clears: the node's defaults apply */
	assert_int_equal(carelog_client_set_actor(c, NULL, NULL, NULL, NULL), CARELOG_OK);
	uint64_t leader = 0;
	assert_int_equal(carelog_transfer_leader(c, 3, TEST_CALL_TIMEOUT_MS, &leader), CARELOG_OK);
	assert_string_equal(fake.last_actor, "");
	assert_string_equal(fake.last_actor_role, "");
	assert_string_equal(fake.last_actor_unit, "");
	assert_string_equal(fake.last_actor_purpose, "");
	assert_int_equal(carelog_client_set_actor(NULL, "x", NULL, NULL, NULL), CARELOG_EINVAL);
	carelog_client_close(c);
}

static void test_policy_sends_its_fields_and_reports_commit_pending_or_refusal(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	assert_int_equal(carelog_client_set_actor(c, "adm-1", "admin", NULL, NULL), CARELOG_OK);
	const char *const categories[] = {"psychiatry", "genetic"};
	uint8_t ref[CARELOG_ID_BYTES];
	memset(ref, 0x21, sizeof(ref));
	struct carelog_policy_args a = {.kind = "care-relation",
	                                .patient = "01017012345",
	                                .unit = "cardio",
	                                .from_ms = 1764000000000ull,
	                                .to_ms = 1764086400000ull,
	                                .categories_count = 2,
	                                .categories = categories,
	                                .text = "referral",
	                                .ref = ref,
	                                .hours = 5,
	                                .implicit_window_days = 30,
	                                .btg_hours_max = 48,
	                                .ambulance_hours_max = 12};
	struct carelog_append_result r;
	assert_int_equal(carelog_policy(c, &a, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	assert_true(r.committed);
	assert_int_equal(strlen(r.request_id), 32);
	pthread_mutex_lock(&fake.lock);
	assert_int_equal(fake.last_op, PROTO_OP_POLICY);
	assert_string_equal(fake.last_actor_role, "admin");
	assert_string_equal(fake.last_policy_kind, "care-relation");
	assert_string_equal(fake.last_policy_text, "referral");
	assert_string_equal(fake.last_policy_category1, "genetic");
	assert_string_equal(fake.last_request_id, r.request_id);
	assert_int_equal(fake.last_policy.categories_count, 2);
	assert_true(fake.last_policy.has_ref);
	assert_memory_equal(fake.last_policy.ref, ref, sizeof(ref));
	assert_int_equal(fake.last_policy.from_ms, 1764000000000ull);
	assert_int_equal(fake.last_policy.to_ms, 1764086400000ull);
	assert_int_equal(fake.last_policy.hours, 5);
	assert_int_equal(fake.last_policy.implicit_window_days, 30);
	assert_int_equal(fake.last_policy.btg_hours_max, 48);
	assert_int_equal(fake.last_policy.ambulance_hours_max, 12);
	pthread_mutex_unlock(&fake.lock);
	/* retrying with the request id is answered with the first entry */
	a.request_id = r.request_id;
	struct carelog_append_result again;
	assert_int_equal(carelog_policy(c, &a, TEST_CALL_TIMEOUT_MS, &again), CARELOG_OK);
	assert_true(again.duplicate);
	assert_int_equal(again.index, r.index);
	/* pending gives the request id back; a refusal the node's reason */
	struct carelog_policy_args p = {
	    .kind = "btg-grant", .patient = "pending", .request_id = "pol-rid"};
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(carelog_policy(c, &p, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EPENDING);
	assert_string_equal(r.request_id, "pol-rid");
	assert_int_equal(r.index, 0);
	p.patient = "denied";
	assert_int_equal(carelog_policy(c, &p, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EDENIED);
	assert_string_equal(carelog_last_message(), "no care relation");
	/* refused before sending */
	uint32_t seen = fake.requests_seen;
	struct carelog_policy_args bad = {.patient = "p"};
	assert_int_equal(carelog_policy(c, &bad, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EINVAL);
	const char *const seven[] = {"a", "b", "c", "d", "e", "f", "g"};
	bad = (struct carelog_policy_args){
	    .kind = "care-relation", .categories_count = 7, .categories = seven};
	assert_int_equal(carelog_policy(c, &bad, TEST_CALL_TIMEOUT_MS, &r), CARELOG_ETOOBIG);
	bad = (struct carelog_policy_args){.kind = "care-relation", .categories_count = 1};
	assert_int_equal(carelog_policy(c, &bad, TEST_CALL_TIMEOUT_MS, &r), CARELOG_EINVAL);
	char text[PROTO_TEXT_BYTES_MAX + 2];
	memset(text, 't', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	bad = (struct carelog_policy_args){.kind = "erasure", .text = text};
	assert_int_equal(carelog_policy(c, &bad, TEST_CALL_TIMEOUT_MS, &r), CARELOG_ETOOBIG);
	assert_non_null(strstr(carelog_last_message(), "text is 513 bytes"));
	assert_int_equal(fake.requests_seen, seen);
	carelog_client_close(c);
}

static void test_read_reports_basis_reasons_history_and_get_the_erasure(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_read_args q = {.patient = "01017012345", .history = true};
	struct carelog_read_result *r = NULL;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	assert_true(fake.last_history);
	assert_string_equal(r->basis, "relation");
	assert_int_equal(r->withheld, 3);
	assert_int_equal(r->withheld_reasons_count, 2);
	assert_string_equal(r->withheld_reasons[0].reason, "blocked by the patient");
	assert_int_equal(r->withheld_reasons[0].count, 2);
	assert_string_equal(r->withheld_reasons[1].reason,
	                    "shielded psychiatry entry of another unit");
	assert_true(r->entries[0].has_superseded_by);
	assert_int_equal(r->entries[0].superseded_by[31], 0x44);
	assert_false(r->entries[1].has_superseded_by);
	assert_false(r->entries[0].body_erased);
	assert_string_equal(r->entries[0].erased_author, "");
	carelog_read_result_free(r);
	q.history = false;
	assert_int_equal(carelog_read(c, &q, TEST_CALL_TIMEOUT_MS, &r), CARELOG_OK);
	assert_false(fake.last_history);
	carelog_read_result_free(r);

	struct carelog_get_args g = {0};
	memset(g.id, 6, sizeof(g.id));
	struct carelog_entry *e = NULL;
	assert_int_equal(carelog_get(c, &g, TEST_CALL_TIMEOUT_MS, &e), CARELOG_OK);
	carelog_client_close(c);
	assert_true(e->body_erased);
	assert_int_equal(e->body_len, 0);
	assert_int_equal(e->erased_index, 60);
	assert_int_equal(e->erased_time_ms, 1764000000500ull);
	assert_string_equal(e->erased_author, "adm-1");
	assert_string_equal(e->erased_org, "st-olavs");
	assert_string_equal(e->erased_basis, "hpl 43: decision 17");
	carelog_entry_free(e);
}

static void test_access_log_and_btg_list_results_are_owned_copies(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	struct carelog_access_log_args a = {
	    .actor_id = "hpr-9", .actor_org = "kommune-x", .limit = 50};
	struct carelog_access_log *l = NULL;
	assert_int_equal(carelog_access_log(c, &a, TEST_CALL_TIMEOUT_MS, &l), CARELOG_OK);
	pthread_mutex_lock(&fake.lock);
	assert_int_equal(fake.last_op, PROTO_OP_ACCESS_LOG);
	assert_string_equal(fake.last_log_patient, "");
	assert_string_equal(fake.last_log_actor, "hpr-9");
	assert_string_equal(fake.last_log_org, "kommune-x");
	assert_int_equal(fake.last_limit, 50);
	pthread_mutex_unlock(&fake.lock);
	struct carelog_btg_list_args b = {.patient = "01017012345", .limit = 7};
	struct carelog_btg_list *g = NULL;
	assert_int_equal(carelog_btg_list(c, &b, TEST_CALL_TIMEOUT_MS, &g), CARELOG_OK);
	assert_int_equal(fake.last_op, PROTO_OP_BTG_LIST);
	assert_string_equal(fake.last_log_patient, "01017012345");
	assert_int_equal(fake.last_limit, 7);

	/* refused before sending */
	uint32_t seen = fake.requests_seen;
	struct carelog_access_log *none = NULL;
	struct carelog_access_log_args bad[] = {
	    {0},
	    {.patient = "p", .actor_id = "a"},
	    {.patient = "p", .actor_org = "o"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(carelog_access_log(c, &bad[i], TEST_CALL_TIMEOUT_MS, &none),
		                 CARELOG_EINVAL);
	}
	struct carelog_access_log_args big = {.patient = "p",
	                                      .limit = CARELOG_ACCESS_LOG_ROWS_MAX + 1};
	assert_int_equal(carelog_access_log(c, &big, TEST_CALL_TIMEOUT_MS, &none), CARELOG_ETOOBIG);
	struct carelog_btg_list_args big_b = {.limit = CARELOG_BTG_GRANTS_MAX + 1};
	struct carelog_btg_list *none_b = NULL;
	assert_int_equal(carelog_btg_list(c, &big_b, TEST_CALL_TIMEOUT_MS, &none_b),
	                 CARELOG_ETOOBIG);
	assert_null(none);
	assert_null(none_b);
	assert_int_equal(fake.requests_seen, seen);
	carelog_client_close(c); /* results outlive the client */

	assert_int_equal(l->applied_index, 40);
	assert_int_equal(l->rows_count, 2);
	const struct carelog_access_row *w = &l->rows[0];
	assert_int_equal(w->node_id, 2);
	assert_int_equal(w->seq, 9);
	assert_string_equal(w->actor, "hpr-9");
	assert_string_equal(w->unit, "");
	assert_false(w->allowed);
	assert_string_equal(w->basis, "none");
	assert_string_equal(w->outcome, "EDENIED");
	assert_false(w->has_entry);
	assert_false(w->shipped);
	w = &l->rows[1];
	assert_true(w->allowed);
	assert_string_equal(w->role, "physician");
	assert_string_equal(w->org, "st-olavs");
	assert_string_equal(w->patient, "01017012345");
	assert_string_equal(w->action, "get");
	assert_int_equal(w->count, 1);
	assert_true(w->has_entry);
	assert_int_equal(w->entry[0], 0x77);
	assert_string_equal(w->purpose, "ward round");
	assert_true(w->shipped);
	carelog_access_log_free(l);
	carelog_access_log_free(NULL);

	assert_int_equal(g->grants_count, 1);
	const struct carelog_btg_grant *grant = &g->grants[0];
	assert_int_equal(grant->id[0], 0x66);
	assert_int_equal(grant->index, 12);
	assert_string_equal(grant->patient, "01017012345");
	assert_string_equal(grant->actor, "hpr-9");
	assert_string_equal(grant->role, "nurse");
	assert_string_equal(grant->org, "kommune-x");
	assert_string_equal(grant->unit, "legevakt");
	assert_int_equal(grant->granted_ms, 1764000000000ull);
	assert_int_equal(grant->expires_ms, 1764086400000ull);
	assert_string_equal(grant->reason_code, "emergency");
	assert_string_equal(grant->reason_text, "unconscious");
	carelog_btg_list_free(g);
	carelog_btg_list_free(NULL);
}

static void test_call_to_absent_node_is_econnect(void **state)
{
	(void)state;
	struct carelog_client *c = NULL;
	assert_int_equal(carelog_client_open("ipc:///tmp/carelog-test-nobody-here.sock", &c),
			 CARELOG_OK);
	struct carelog_status *s = NULL;
	assert_int_equal(carelog_status(c, 200, &s), CARELOG_ECONNECT);
	assert_non_null(strstr(carelog_last_message(), "carelog-test-nobody-here"));
	/* an append that never left was not appended: not pending */
	struct carelog_append_args a = {.patient = "p", .kind = "note"};
	struct carelog_append_result r;
	assert_int_equal(carelog_append(c, &a, 200, &r), CARELOG_ECONNECT);
	carelog_client_close(c);
}

/* 8 threads x 50 appends; a worker stops at its first failure, so a broken client or fake
 * fails the test within one TEST_CALL_TIMEOUT_MS instead of 50 of them. */
enum { THREADS = 8, APPENDS_PER_THREAD = 50 };

struct worker {
	struct carelog_client *client;
	int failures;
	uint64_t index_sum;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < APPENDS_PER_THREAD && w->failures == 0; i++) {
		struct carelog_append_args a = {.patient = "p", .kind = "note", .body = "x",
						.body_len = 1};
		struct carelog_append_result r;
		int rc = carelog_append(w->client, &a, TEST_CALL_TIMEOUT_MS, &r);
		if (rc != CARELOG_OK || !r.committed) {
			w->failures++;
			fprintf(stderr, "worker: append %d: %s: %s\n", i, carelog_errname(rc),
				carelog_last_message());
		} else {
			w->index_sum += r.index;
		}
	}
	return NULL;
}

static void test_one_client_shared_by_many_threads(void **state)
{
	(void)state;
	struct carelog_client *c = client_for_fake();
	test_connect(c);
	uint32_t before = fake.appends_committed;
	pthread_t threads[THREADS];
	struct worker workers[THREADS];
	for (int i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){.client = c};
		assert_int_equal(pthread_create(&threads[i], NULL, worker_run, &workers[i]), 0);
	}
	uint64_t sum = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(workers[i].failures, 0);
		sum += workers[i].index_sum;
	}
	/* every append got its own index exactly once: the indexes are before+1 .. before+n */
	uint64_t n = THREADS * APPENDS_PER_THREAD;
	assert_int_equal(fake.appends_committed - before, n);
	assert_int_equal(sum, n * before + n * (n + 1) / 2);
	carelog_client_close(c);
}

static void test_request_ids_are_fresh_hex(void **state)
{
	(void)state;
	char a[CARELOG_REQUEST_ID_HEX_BYTES], b[CARELOG_REQUEST_ID_HEX_BYTES];
	assert_int_equal(carelog_request_id_generate(a), CARELOG_OK);
	assert_int_equal(carelog_request_id_generate(b), CARELOG_OK);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_returns_members_as_owned_copies),
		cmocka_unit_test(test_membership_calls_send_their_fields_and_return_the_index),
		cmocka_unit_test(test_membership_change_without_answer_is_pending_transfer_times_out),
		cmocka_unit_test(test_membership_arguments_are_checked_before_sending),
		cmocka_unit_test(test_append_generates_a_request_id_and_reports_commit),
		cmocka_unit_test(test_append_pending_answer_returns_the_request_id_to_retry),
		cmocka_unit_test(test_append_without_answer_is_pending_not_lost),
		cmocka_unit_test(test_node_errors_come_back_with_the_nodes_message),
		cmocka_unit_test(test_malformed_reply_is_eproto),
		cmocka_unit_test(test_read_copies_entries_with_nul_terminated_strings_and_bodies),
		cmocka_unit_test(test_get_and_verify_results),
		cmocka_unit_test(test_invalid_arguments_are_refused_before_sending),
		cmocka_unit_test(test_oversized_requests_are_refused_locally_with_a_message),
	    cmocka_unit_test(
	        test_actor_default_goes_with_every_request_and_calls_override_id_and_role),
	    cmocka_unit_test(test_policy_sends_its_fields_and_reports_commit_pending_or_refusal),
	    cmocka_unit_test(test_read_reports_basis_reasons_history_and_get_the_erasure),
	    cmocka_unit_test(test_access_log_and_btg_list_results_are_owned_copies),
		cmocka_unit_test(test_call_to_absent_node_is_econnect),
		cmocka_unit_test(test_one_client_shared_by_many_threads),
		cmocka_unit_test(test_request_ids_are_fresh_hex),
	};
	const char *filter = getenv("CARELOG_TEST_FILTER"); /* run one test while debugging */
	if (filter != NULL) {
		cmocka_set_test_filter(filter);
	}
	const char *skip = getenv("CARELOG_TEST_SKIP");
	if (skip != NULL) {
		cmocka_set_skip_filter(skip);
	}
	int failed = cmocka_run_group_tests_name("client", tests, fake_start, fake_stop);
	nng_fini(); /* nng reaps closed sockets on its own threads: let it finish for LeakSanitizer */
	return failed;
}
