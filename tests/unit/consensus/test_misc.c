/* Scenario tests: leadership transfer (thesis 3.10), allocation and storage failures, bad
 * input and configuration. */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void test_transfer_to_slow_follower_catches_it_up_first(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .pre_vote = true, .check_quorum = true};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx_propose(cl, 1, "behind"), CARELOG_OK);
	}
	fx_deliver(cl);
	fx_heal(cl);
	struct consensus *c = fx_core(cl, 1);
	assert_int_equal(consensus_transfer_leader(c, 3), CARELOG_OK);
	struct consensus_status st;
	consensus_get_status(c, &st);
	assert_int_equal(st.transferee, 3);
	/* Proposals are refused while the transfer runs. */
	assert_int_equal(fx_propose(cl, 1, "during"), CARELOG_ECLOSED);
	struct consensus_conf_change cc = {.count = 1};
	cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	cc.changes[0].node_id = 2;
	assert_int_equal(consensus_propose_conf_change(c, &cc, NULL, 0, NULL), CARELOG_ECLOSED);
	/* No TIMEOUT_NOW until 3 has the whole log. */
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_TIMEOUT_NOW, 1, 3), 0);
	fx_deliver(cl);
	assert_int_equal(fx_role(cl, 3), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_term(cl, 3), 2);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_leader(cl, 1), 3);
	assert_int_equal(fx_propose(cl, 3, "after"), CARELOG_OK);
	fx_deliver(cl);
	assert_true(fx_logs_equal(cl, 1, 3));
	fx_free(cl);
}

static void test_transfer_times_out_and_proposals_resume(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 3);
	struct consensus *c = fx_core(cl, 1);
	assert_int_equal(consensus_transfer_leader(c, 3), CARELOG_OK);
	assert_int_equal(consensus_transfer_leader(c, 3), CARELOG_OK); /* repeated: no-op */
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_ECLOSED);
	fx_tick(cl, 1, 9);
	fx_deliver(cl);
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_ECLOSED);
	fx_tick(cl, 1, 1);
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_OK);
	struct consensus_status st;
	consensus_get_status(c, &st);
	assert_int_equal(st.transferee, 0);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_free(cl);
}

static void test_transfer_request_validation(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .learners = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(consensus_transfer_leader(fx_core(cl, 1), 2), CARELOG_ENOTLEADER);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus *c = fx_core(cl, 1);
	assert_int_equal(consensus_transfer_leader(c, 7), CARELOG_ENOTFOUND);
	assert_int_equal(consensus_transfer_leader(c, 4), CARELOG_EINVAL);
	assert_int_equal(consensus_transfer_leader(c, 1), CARELOG_OK);
	/* Switching target aborts the first transfer; the caught-up target gets TIMEOUT_NOW. */
	fx_isolate(cl, 2);
	assert_int_equal(consensus_transfer_leader(c, 2), CARELOG_OK);
	assert_int_equal(consensus_transfer_leader(c, 3), CARELOG_OK);
	fx_process(cl, 1);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_TIMEOUT_NOW, 1, 3), 1);
	fx_free(cl);
}

static void test_removing_the_transfer_target_aborts_the_transfer(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_REMOVE, 3), CARELOG_OK);
	fx_node(cl, 1)->defer_conf = true;
	fx_deliver(cl);
	fx_isolate(cl, 3);
	assert_int_equal(consensus_transfer_leader(fx_core(cl, 1), 3), CARELOG_OK);
	fx_apply_deferred(cl, 1);
	struct consensus_status st;
	consensus_get_status(fx_core(cl, 1), &st);
	assert_int_equal(st.transferee, 0);
	assert_int_equal(fx_propose(cl, 1, "ok"), CARELOG_OK);
	fx_free(cl);
}

static int create_with(struct fx_alloc *a, struct fx_cluster *cl, struct consensus **out)
{
	struct fx_node *n = fx_node(cl, 1);
	struct consensus_config cfg = n->config;
	cfg.allocator = &a->ops;
	consensus_node_id voters[] = {1, 2, 3};
	struct consensus_conf_state cs = {.voters = voters, .voters_count = 3};
	return consensus_create(&cfg, &n->hs, &cs, out);
}

static void test_create_fails_cleanly_at_every_allocation(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	for (uint64_t k = 1; k < 100; k++) {
		struct fx_alloc a;
		fx_alloc_init(&a);
		a.fail_at = k;
		struct consensus *c = NULL;
		int rc = create_with(&a, cl, &c);
		if (rc == CARELOG_OK) {
			assert_true(k > 5);
			consensus_destroy(c);
			assert_int_equal(a.bytes_outstanding, 0);
			break;
		}
		assert_int_equal(rc, CARELOG_ENOMEM);
		assert_null(c);
		assert_int_equal(a.bytes_outstanding, 0);
	}
	consensus_destroy(NULL);
	fx_free(cl);
}

static void test_allocation_failure_returns_enomem_and_core_stays_consistent(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct fx_node *leader = fx_node(cl, 1);
	/* Proposal: copying the data fails. */
	leader->alloc.fail_at = leader->alloc.allocs + 1;
	assert_int_equal(fx_propose(cl, 1, "nomem"), CARELOG_ENOMEM);
	leader->alloc.fail_at = 0;
	assert_int_equal(fx_log_last(cl, 1), 1);
	/* Follower: copying appended entries fails; nothing is appended, nothing acked. */
	struct fx_node *f = fx_node(cl, 2);
	assert_int_equal(fx_propose(cl, 1, "one"), CARELOG_OK);
	f->alloc.fail_at = f->alloc.allocs + 1;
	f->alloc.fail_all = true;
	const struct consensus_message *app = fx_find_pending(cl, CONSENSUS_MSG_APPEND, 1, 2);
	assert_non_null(app);
	assert_int_equal(consensus_step(f->c, app), CARELOG_ENOMEM);
	assert_false(consensus_has_ready(f->c) && fx_log_last(cl, 2) > 1);
	f->alloc.fail_at = 0;
	f->alloc.fail_all = false;
	/* The second entry's copy fails: the first copy is released, nothing is appended. */
	struct consensus_entry two[2] = {
	    {.term = 1, .index = 2, .data_len = 1, .data = (const uint8_t *)"a"},
	    {.term = 1, .index = 3, .data_len = 1, .data = (const uint8_t *)"b"},
	};
	struct consensus_message app2 = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 1,
	    .to = 2,
	    .term = 1,
	    .index = 1,
	    .log_term = 1,
	    .entries = two,
	    .entries_count = 2,
	};
	f->alloc.fail_at = f->alloc.allocs + 2;
	assert_int_equal(consensus_step(f->c, &app2), CARELOG_ENOMEM);
	f->alloc.fail_at = 0;
	assert_int_equal(fx_log_last(cl, 2), 1);
	/* Leader: building appends fails; they count as lost and are resent later. */
	leader->alloc.fail_at = leader->alloc.allocs + 1;
	leader->alloc.fail_all = true;
	uint64_t idx;
	assert_int_equal(consensus_propose(leader->c, NULL, 0, &idx), CARELOG_OK);
	/* The ready batch cannot copy committed entries either: it fails and can be retried. */
	leader->alloc.fail_at = 0;
	leader->alloc.fail_all = false;
	fx_deliver(cl);
	fx_tick_all(cl, 3);
	for (consensus_node_id id = 2; id <= 3; id++) {
		assert_true(fx_logs_equal(cl, 1, id));
	}
	assert_int_equal(fx_commit(cl, 2), idx);
	/* Ready fails when a committed entry cannot be copied, and nothing is lost. */
	assert_int_equal(fx_propose(cl, 1, "r"), CARELOG_OK);
	struct fx_node *f3 = fx_node(cl, 3);
	f3->hold_ready = true;
	fx_deliver(cl);
	fx_tick_all(cl, 2);
	f3->alloc.fail_at = f3->alloc.allocs + 1;
	f3->alloc.fail_all = true;
	struct consensus_ready rd;
	if (consensus_has_ready(f3->c)) {
		int rc = consensus_ready(f3->c, &rd);
		assert_true(rc == CARELOG_ENOMEM || rc == CARELOG_OK);
		if (rc == CARELOG_OK) {
			consensus_advance(f3->c, &rd);
		}
	}
	f3->alloc.fail_at = 0;
	f3->alloc.fail_all = false;
	f3->hold_ready = false;
	fx_tick_all(cl, 3);
	assert_int_equal(f3->applied, fx_node(cl, 1)->applied);
	fx_free(cl);
}

static void test_storage_errors_are_returned(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_deliver(cl);
	struct fx_node *f = fx_node(cl, 2);
	f->log.fail_term = CARELOG_EIO;
	struct consensus_message v = {
	    .type = CONSENSUS_MSG_VOTE,
	    .from = 3,
	    .to = 2,
	    .term = 9,
	    .index = 1,
	    .log_term = 1,
	};
	assert_int_equal(consensus_step(f->c, &v), CARELOG_EIO);
	struct consensus_message app = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 3,
	    .to = 2,
	    .term = 9,
	    .index = 1,
	    .log_term = 1,
	};
	assert_int_equal(consensus_step(f->c, &app), CARELOG_EIO);
	f->log.fail_term = 0;
	fx_free(cl);
	/* Ready: copying committed entries from storage fails; nothing is handed out. */
	cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	f = fx_node(cl, 2);
	f->hold_ready = true;
	fx_isolate(cl, 3); /* only 2's ack can commit the entry */
	assert_int_equal(fx_propose(cl, 1, "io"), CARELOG_OK);
	fx_deliver(cl);
	assert_true(fx_ready_once(cl, 2, NULL)); /* persists the entry and acks it */
	fx_deliver(cl);                          /* the commit comes back */
	assert_int_equal(fx_commit(cl, 2), 2);
	f->log.fail_entries = CARELOG_EIO;
	struct consensus_ready rd;
	assert_true(consensus_has_ready(f->c));
	assert_int_equal(consensus_ready(f->c, &rd), CARELOG_EIO);
	f->log.fail_entries = 0;
	f->hold_ready = false;
	fx_process(cl, 2);
	assert_int_equal(f->applied, fx_node(cl, 1)->applied);
	fx_free(cl);
}

static void test_invalid_configuration_and_arguments_are_refused(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1};
	struct fx_cluster *cl = fx_new(&o);
	struct fx_node *n = fx_node(cl, 1);
	consensus_node_id voters[] = {1};
	struct consensus_conf_state cs = {.voters = voters, .voters_count = 1};
	struct consensus *c = NULL;
	struct consensus_config bad;
	bad = n->config;
	bad.id = 0;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.heartbeat_ticks = bad.election_ticks;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.members_max = 0;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.inflight_msgs_max = 0;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.read_index_max = 0;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.append_bytes_max = 0;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.allocator = NULL;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	struct consensus_log_ops ops = *bad.log;
	ops.term = NULL;
	bad.log = &ops;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	struct consensus_allocator al = *bad.allocator;
	al.free = NULL;
	bad.allocator = &al;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	assert_int_equal(consensus_create(NULL, &n->hs, &cs, &c), CARELOG_EINVAL);
	/* Commit beyond the log, applied beyond commit. */
	struct consensus_hard_state hs = {.term = 1, .commit = 5};
	assert_int_equal(consensus_create(&n->config, &hs, &cs, &c), CARELOG_EINVAL);
	bad = n->config;
	bad.applied = 3;
	assert_int_equal(consensus_create(&bad, &n->hs, &cs, &c), CARELOG_EINVAL);
	/* Bad membership: duplicate voter, learner that is also a voter, NULL list. */
	consensus_node_id dup[] = {1, 1};
	struct consensus_conf_state bad_cs = {.voters = dup, .voters_count = 2};
	assert_int_equal(consensus_create(&n->config, &n->hs, &bad_cs, &c), CARELOG_EINVAL);
	bad_cs = (struct consensus_conf_state){
	    .voters = voters, .voters_count = 1, .learners = voters, .learners_count = 1};
	assert_int_equal(consensus_create(&n->config, &n->hs, &bad_cs, &c), CARELOG_EINVAL);
	bad_cs = (struct consensus_conf_state){.voters = NULL, .voters_count = 1};
	assert_int_equal(consensus_create(&n->config, &n->hs, &bad_cs, &c), CARELOG_EINVAL);
	bad_cs =
	    (struct consensus_conf_state){.voters = voters, .voters_count = 1, .auto_leave = true};
	assert_int_equal(consensus_create(&n->config, &n->hs, &bad_cs, &c), CARELOG_EINVAL);
	/* Bad arguments on a live core. */
	assert_int_equal(consensus_propose(n->c, NULL, 3, NULL), CARELOG_EINVAL);
	assert_int_equal(consensus_step(n->c, NULL), CARELOG_EINVAL);
	struct consensus_message m = {.type = 99, .from = 2, .to = 1};
	assert_int_equal(consensus_step(n->c, &m), CARELOG_EPROTO);
	m.type = CONSENSUS_MSG_HEARTBEAT;
	m.entries_count = 1;
	assert_int_equal(consensus_step(n->c, &m), CARELOG_EPROTO);
	struct consensus_entry e = {.term = 1, .index = 1};
	m.entries = &e;
	assert_int_equal(consensus_step(n->c, &m), CARELOG_EPROTO);
	/* Messages for another node or from ourselves are dropped. */
	m = (struct consensus_message){
	    .type = CONSENSUS_MSG_HEARTBEAT, .from = 2, .to = 5, .term = 9};
	assert_int_equal(consensus_step(n->c, &m), CARELOG_OK);
	assert_int_equal(fx_term(cl, 1), 0);
	/* Malformed appends: entries out of sequence or with a future term. */
	m = (struct consensus_message){.type = CONSENSUS_MSG_APPEND,
	                               .from = 2,
	                               .to = 1,
	                               .term = 1,
	                               .entries = &e,
	                               .entries_count = 1};
	e.index = 3;
	assert_int_equal(consensus_step(n->c, &m), CARELOG_EPROTO);
	e.index = 1;
	e.term = 4;
	assert_int_equal(consensus_step(n->c, &m), CARELOG_EPROTO);
	assert_int_equal(consensus_ready(n->c, NULL), CARELOG_EINVAL);
	fx_free(cl);
}

static void test_restart_keeps_term_vote_commit_and_log(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .pre_vote = true};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx_propose(cl, 1, "keep"), CARELOG_OK);
	}
	fx_deliver(cl);
	fx_tick_all(cl, 1);
	for (consensus_node_id id = 1; id <= 3; id++) {
		fx_restart(cl, id);
		assert_int_equal(fx_term(cl, id), 1);
		assert_int_equal(fx_commit(cl, id), 4);
		assert_int_equal(fx_role(cl, id), CONSENSUS_ROLE_FOLLOWER);
	}
	fx_tick_all(cl, 40);
	consensus_node_id leader = fx_find_leader(cl);
	assert_true(leader != 0);
	assert_int_equal(fx_propose(cl, leader, "again"), CARELOG_OK);
	fx_deliver(cl);
	fx_tick_all(cl, 1);
	for (consensus_node_id id = 1; id <= 3; id++) {
		assert_true(fx_logs_equal(cl, leader, id));
		assert_int_equal(fx_node(cl, id)->applied, fx_log_last(cl, leader));
	}
	fx_free(cl);
}

static void test_status_reports_progress_on_leader_only(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2, .learners = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus_status st;
	consensus_get_status(fx_core(cl, 1), &st);
	assert_int_equal(st.id, 1);
	assert_int_equal(st.progress_count, 3);
	const struct consensus_progress *p3 = fx_progress(cl, 1, 3);
	assert_false(p3->voter);
	assert_int_equal(p3->match, 1);
	assert_true(fx_progress(cl, 1, 2)->voter);
	consensus_get_status(fx_core(cl, 2), &st);
	assert_int_equal(st.progress_count, 0);
	assert_int_equal(st.soft_state.leader, 1);
	fx_free(cl);
}

static void test_full_outbox_drops_messages_as_lost(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .inflight_msgs_max = 1};
	struct fx_cluster *cl = fx_new(&o);
	struct fx_node *n = fx_node(cl, 1);
	/* members_max 8 * (1 + 8) + 16 + 64 = 152 messages fit in one batch. */
	struct consensus_message hb = {
	    .type = CONSENSUS_MSG_HEARTBEAT, .from = 2, .to = 1, .term = 1};
	for (int i = 0; i < 200; i++) {
		assert_int_equal(consensus_step(n->c, &hb), CARELOG_OK);
	}
	struct consensus_status st;
	consensus_get_status(n->c, &st);
	assert_int_equal(st.messages_dropped, 48);
	struct consensus_ready rd;
	assert_true(fx_ready_once(cl, 1, &rd));
	assert_int_equal(rd.messages_count, 152);
	fx_drop_pending(cl);
	/* A leader's dropped appends are recovered like lost ones. */
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	n->hold_ready = true;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(consensus_propose(n->c, (const uint8_t *)"d", 1, NULL),
		                 CARELOG_OK);
		assert_int_equal(consensus_tick(n->c), CARELOG_OK);
	}
	n->hold_ready = false;
	fx_tick_all(cl, 10);
	assert_true(fx_logs_equal(cl, 1, 2));
	assert_true(fx_logs_equal(cl, 1, 3));
	fx_free(cl);
}

static void test_unstable_log_bound_refuses_proposals_until_persisted(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct fx_node *n = fx_node(cl, 1);
	n->hold_ready = true;
	uint32_t accepted = 0;
	while (consensus_propose(n->c, NULL, 0, NULL) == CARELOG_OK) {
		accepted++;
		assert_true(accepted < CONSENSUS_UNSTABLE_ENTRIES_MAX);
	}
	assert_int_equal(accepted, CONSENSUS_UNSTABLE_ENTRIES_MAX - 1);
	struct consensus_conf_change cc = {.count = 1};
	cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	cc.changes[0].node_id = 5;
	assert_int_equal(consensus_propose_conf_change(n->c, &cc, NULL, 0, NULL), CARELOG_EBUSY);
	n->hold_ready = false;
	fx_process(cl, 1);
	assert_int_equal(fx_commit(cl, 1), CONSENSUS_UNSTABLE_ENTRIES_MAX);
	assert_int_equal(consensus_propose(n->c, NULL, 0, NULL), CARELOG_OK);
	fx_free(cl);
}

static void test_follower_with_full_unstable_log_drops_appends(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2};
	struct fx_cluster *cl = fx_new(&o);
	struct fx_node *f = fx_node(cl, 2);
	struct consensus_entry ents[CONSENSUS_APPEND_ENTRIES_MAX];
	uint64_t index = 0;
	for (int round = 0; round < 20; round++) {
		for (uint32_t i = 0; i < CONSENSUS_APPEND_ENTRIES_MAX; i++) {
			ents[i] = (struct consensus_entry){.term = 1, .index = index + 1 + i};
		}
		struct consensus_message app = {
		    .type = CONSENSUS_MSG_APPEND,
		    .from = 1,
		    .to = 2,
		    .term = 1,
		    .index = index,
		    .log_term = index ? 1 : 0,
		    .entries = ents,
		    .entries_count = CONSENSUS_APPEND_ENTRIES_MAX,
		};
		assert_int_equal(consensus_step(f->c, &app), CARELOG_OK);
		uint64_t last = 0;
		struct consensus_ready rd;
		(void)last;
		if (round < 15) {
			index += CONSENSUS_APPEND_ENTRIES_MAX;
		}
		(void)rd;
	}
	/* 15 * 256 = 3840 fit below the bound of 4095; the rest were dropped. */
	assert_true(fx_ready_once(cl, 2, NULL));
	assert_int_equal(fx_log_last(cl, 2), 15 * CONSENSUS_APPEND_ENTRIES_MAX);
	struct consensus_message too_many = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 1,
	    .to = 2,
	    .term = 1,
	    .index = 0,
	    .entries = ents,
	    .entries_count = CONSENSUS_APPEND_ENTRIES_MAX + 1,
	};
	assert_int_equal(consensus_step(f->c, &too_many), CARELOG_EPROTO);
	fx_drop_pending(cl);
	fx_free(cl);
}

static void test_pre_vote_from_a_lower_term_is_told_the_term(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .pre_vote = true};
	struct fx_cluster *cl = fx_new(&o);
	fx_set_log(cl, 1, NULL, 0, 5, 0, 0);
	struct consensus_message pv = {
	    .type = CONSENSUS_MSG_PRE_VOTE, .from = 2, .to = 1, .term = 3};
	assert_int_equal(fx_step(cl, &pv), CARELOG_OK);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_PRE_VOTE_RESP, 1, 2);
	assert_non_null(r);
	assert_true(r->reject);
	assert_int_equal(r->term, 5);
	fx_free(cl);
}

static void test_no_campaign_while_a_committed_conf_change_is_unapplied(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx_propose(cl, 1, "pad"), CARELOG_OK);
	}
	fx_deliver(cl);
	uint64_t index;
	struct consensus_conf_change cc = {.count = 1};
	cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	cc.changes[0].node_id = 4;
	assert_int_equal(consensus_propose_conf_change(fx_core(cl, 1), &cc, NULL, 0, &index),
	                 CARELOG_OK);
	assert_int_equal(index, 5);
	struct fx_node *f = fx_node(cl, 2);
	/* Node 2 persists and acks but does not apply (its apply is slow). */
	fx_deliver(cl);
	fx_tick_all(cl, 1);
	assert_int_equal(fx_commit(cl, 2), 5);
	/* Fake "not yet applied" by restarting with applied behind the commit. */
	f->applied = 1;
	f->applied_count = 0;
	fx_restart(cl, 2);
	assert_int_equal(consensus_campaign(f->c), CARELOG_OK);
	assert_int_equal(fx_role(cl, 2), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_term(cl, 2), 1);
	/* Storage failing while checking: the error comes back. */
	f->log.fail_entries = CARELOG_EIO;
	assert_int_equal(consensus_campaign(f->c), CARELOG_EIO);
	f->log.fail_entries = 0;
	fx_process(cl, 2);
	assert_int_equal(f->applied, 5);
	assert_int_equal(consensus_campaign(f->c), CARELOG_OK);
	assert_int_equal(fx_role(cl, 2), CONSENSUS_ROLE_CANDIDATE);
	fx_drop_pending(cl);
	fx_free(cl);
}

static void test_leader_storage_failure_while_replicating(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx_propose(cl, 1, "s"), CARELOG_OK);
	}
	fx_drop_pending(cl);
	struct fx_node *l = fx_node(cl, 1);
	/* The follower rejects; reading terms for backtracking fails at the leader. */
	struct consensus_message rej = {
	    .type = CONSENSUS_MSG_APPEND_RESP,
	    .from = 2,
	    .to = 1,
	    .term = 1,
	    .reject = true,
	    .index = 4,
	    .reject_hint = 3,
	    .log_term = 1,
	};
	l->log.fail_term = CARELOG_EIO;
	assert_int_equal(consensus_step(l->c, &rej), CARELOG_EIO);
	l->log.fail_term = 0;
	l->log.fail_entries = CARELOG_EIO;
	fx_tick_all(cl, 3);
	l->log.fail_entries = 0;
	fx_tick_all(cl, 3);
	assert_true(fx_logs_equal(cl, 1, 2));
	fx_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_transfer_to_slow_follower_catches_it_up_first),
	    cmocka_unit_test(test_transfer_times_out_and_proposals_resume),
	    cmocka_unit_test(test_transfer_request_validation),
	    cmocka_unit_test(test_removing_the_transfer_target_aborts_the_transfer),
	    cmocka_unit_test(test_create_fails_cleanly_at_every_allocation),
	    cmocka_unit_test(test_allocation_failure_returns_enomem_and_core_stays_consistent),
	    cmocka_unit_test(test_storage_errors_are_returned),
	    cmocka_unit_test(test_invalid_configuration_and_arguments_are_refused),
	    cmocka_unit_test(test_restart_keeps_term_vote_commit_and_log),
	    cmocka_unit_test(test_status_reports_progress_on_leader_only),
	    cmocka_unit_test(test_full_outbox_drops_messages_as_lost),
	    cmocka_unit_test(test_unstable_log_bound_refuses_proposals_until_persisted),
	    cmocka_unit_test(test_follower_with_full_unstable_log_drops_appends),
	    cmocka_unit_test(test_pre_vote_from_a_lower_term_is_told_the_term),
	    cmocka_unit_test(test_no_campaign_while_a_committed_conf_change_is_unapplied),
	    cmocka_unit_test(test_leader_storage_failure_while_replicating),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
