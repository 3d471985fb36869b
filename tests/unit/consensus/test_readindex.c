/* Scenario tests: ReadIndex linearizable reads (Raft thesis 6.4). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void test_read_index_on_new_leader_waits_for_its_first_commit(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t log[] = {1, 1};
	for (consensus_node_id id = 1; id <= 3; id++) {
		fx_set_log(cl, id, log, 2, 1, 0, 1);
	}
	assert_int_equal(consensus_campaign(fx_core(cl, 1)), CARELOG_OK);
	fx_deliver_only(cl, CONSENSUS_MSG_VOTE, 1, 0);
	fx_deliver_only(cl, CONSENSUS_MSG_VOTE_RESP, 0, 1);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	/* The leader's commit (1) may be stale: index 2 might be committed already. */
	assert_int_equal(consensus_read_index(fx_core(cl, 1), 42), CARELOG_OK);
	fx_process(cl, 1);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	/* Heartbeats answered before the no-op commits do not release it either. */
	fx_tick(cl, 1, 1);
	fx_deliver_only(cl, CONSENSUS_MSG_HEARTBEAT, 1, 0);
	fx_deliver_only(cl, CONSENSUS_MSG_HEARTBEAT_RESP, 0, 1);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	fx_deliver(cl);
	struct fx_node *n = fx_node(cl, 1);
	assert_int_equal(n->reads_count, 1);
	assert_int_equal(n->reads[0].ctx, 42);
	assert_int_equal(n->reads[0].index, 3);
	fx_free(cl);
}

static void test_read_index_needs_a_heartbeat_quorum(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 1);
	assert_int_equal(consensus_read_index(fx_core(cl, 1), 7), CARELOG_OK);
	fx_tick_all(cl, 3);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	/* Possibly deposed: no answer until a quorum confirms leadership. */
	fx_heal(cl);
	fx_deliver(cl);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	fx_tick_all(cl, 1);
	assert_int_equal(fx_node(cl, 1)->reads_count, 1);
	assert_int_equal(fx_node(cl, 1)->reads[0].index, 1);
	fx_free(cl);
}

static void test_read_index_from_follower_and_learner_goes_through_leader(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .learners = 1};
	struct fx_cluster *cl = fx_new(&o);
	/* No leader known yet. */
	assert_int_equal(consensus_read_index(fx_core(cl, 2), 1), CARELOG_ENOTLEADER);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_propose(cl, 1, "v"), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(consensus_read_index(fx_core(cl, 2), 5), CARELOG_OK);
	assert_int_equal(consensus_read_index(fx_core(cl, 4), 6), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_node(cl, 2)->reads_count, 1);
	assert_int_equal(fx_node(cl, 2)->reads[0].ctx, 5);
	assert_int_equal(fx_node(cl, 2)->reads[0].index, 2);
	assert_int_equal(fx_node(cl, 4)->reads_count, 1);
	assert_int_equal(fx_node(cl, 4)->reads[0].ctx, 6);
	assert_int_equal(fx_node(cl, 4)->reads[0].index, 2);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	fx_free(cl);
}

static void test_single_voter_answers_read_index_directly(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1, .learners = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_deliver(cl);
	assert_int_equal(consensus_read_index(fx_core(cl, 1), 9), CARELOG_OK);
	fx_process(cl, 1);
	assert_int_equal(fx_node(cl, 1)->reads_count, 1);
	assert_int_equal(fx_node(cl, 1)->reads[0].index, 1);
	assert_int_equal(cl->pending_count, 0);
	assert_int_equal(consensus_read_index(fx_core(cl, 2), 10), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_node(cl, 2)->reads_count, 1);
	assert_int_equal(fx_node(cl, 2)->reads[0].ctx, 10);
	fx_free(cl);
}

static void test_pending_reads_are_bounded_and_dropped_on_step_down(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 1);
	struct consensus *c = fx_core(cl, 1);
	for (uint64_t i = 0; i < 16; i++) {
		assert_int_equal(consensus_read_index(c, i), CARELOG_OK);
	}
	assert_int_equal(consensus_read_index(c, 99), CARELOG_EBUSY);
	/* A forwarded request beyond the bound is dropped silently. */
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_READ_INDEX,
	    .from = 2,
	    .to = 1,
	    .term = 1,
	    .ctx = 5,
	};
	assert_int_equal(consensus_step(c, &m), CARELOG_OK);
	struct consensus_message hb = {
	    .type = CONSENSUS_MSG_HEARTBEAT, .from = 2, .to = 1, .term = 2};
	assert_int_equal(fx_step(cl, &hb), CARELOG_OK);
	fx_heal(cl);
	fx_tick_all(cl, 3);
	assert_int_equal(fx_node(cl, 1)->reads_count, 0);
	/* A follower ignores forwarded requests and stray answers to leaders are ignored. */
	assert_int_equal(fx_step(cl, &m), CARELOG_OK);
	fx_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_index_on_new_leader_waits_for_its_first_commit),
	    cmocka_unit_test(test_read_index_needs_a_heartbeat_quorum),
	    cmocka_unit_test(test_read_index_from_follower_and_learner_goes_through_leader),
	    cmocka_unit_test(test_single_voter_answers_read_index_directly),
	    cmocka_unit_test(test_pending_reads_are_bounded_and_dropped_on_step_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
