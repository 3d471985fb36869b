/* Unit tests for the single-voter seam: the ready/advance sequence and its bounds. */
#include "carelog/errors.h"
#include "node/daemon/solo.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static struct solo *make(uint32_t entries_max, uint64_t bytes_max)
{
	struct solo_config c = {.node_id = 7, .entries_max = entries_max, .bytes_max = bytes_max};
	struct consensus_hard_state hs = {.term = 1, .vote = 0, .commit = 1};
	struct solo *s = NULL;
	assert_int_equal(solo_create(&c, &hs, 1, 1, &s), CARELOG_OK);
	return s;
}

static void test_solo_propose_persists_then_commits_in_the_next_ready(void **state)
{
	(void)state;
	struct solo *s = make(8, 1024);
	assert_false(solo_has_ready(s));
	uint64_t i1 = 0, i2 = 0;
	assert_int_equal(solo_propose(s, (const uint8_t *)"aa", 2, &i1), CARELOG_OK);
	assert_int_equal(solo_propose(s, (const uint8_t *)"bbb", 3, &i2), CARELOG_OK);
	assert_int_equal(i1, 2);
	assert_int_equal(i2, 3);
	assert_true(solo_has_ready(s));

	struct consensus_ready rd;
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	assert_int_equal(rd.entries_count, 2);
	assert_int_equal(rd.entries[0].index, 2);
	assert_int_equal(rd.entries[0].term, 1);
	assert_int_equal(rd.entries[0].type, CONSENSUS_ENTRY_NORMAL);
	assert_memory_equal(rd.entries[1].data, "bbb", 3);
	assert_true(rd.hard_state_changed);
	assert_int_equal(rd.hard_state.term, 1);
	assert_int_equal(rd.hard_state.vote, 7);
	assert_int_equal(rd.hard_state.commit, 3); /* durable with the entries: quorum of one */
	assert_int_equal(rd.committed_count, 0);   /* not applied before persisted */
	assert_int_equal(rd.messages_count + rd.messages_early_count + rd.read_states_count, 0);
	assert_false(solo_has_ready(s)); /* one ready outstanding at a time */
	solo_advance(s, &rd);
	assert_int_equal(solo_commit_index(s), 3);
	assert_int_equal(solo_applied_index(s), 1);

	assert_true(solo_has_ready(s));
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	assert_int_equal(rd.entries_count, 0);
	assert_false(rd.hard_state_changed);
	assert_int_equal(rd.committed_count, 2);
	assert_int_equal(rd.committed[0].index, 2);
	assert_int_equal(rd.committed[1].index, 3);
	assert_memory_equal(rd.committed[0].data, "aa", 2);
	solo_advance(s, &rd);
	assert_int_equal(solo_applied_index(s), 3);
	assert_false(solo_has_ready(s));
	solo_destroy(s);
}

static void test_solo_pipelines_new_entries_with_committed_ones(void **state)
{
	(void)state;
	struct solo *s = make(8, 1024);
	struct consensus_ready rd;
	assert_int_equal(solo_propose(s, (const uint8_t *)"a", 1, NULL), CARELOG_OK);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	solo_advance(s, &rd);
	assert_int_equal(solo_propose(s, (const uint8_t *)"b", 1, NULL), CARELOG_OK);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	assert_int_equal(rd.entries_count, 1);
	assert_int_equal(rd.entries[0].index, 3);
	assert_int_equal(rd.committed_count, 1);
	assert_int_equal(rd.committed[0].index, 2);
	assert_int_equal(rd.hard_state.commit, 3);
	solo_advance(s, &rd);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	assert_int_equal(rd.committed_count, 1);
	assert_int_equal(rd.committed[0].index, 3);
	solo_advance(s, &rd);
	assert_false(solo_has_ready(s));
	solo_destroy(s);
}

static void test_solo_bounds_entries_and_bytes_in_flight(void **state)
{
	(void)state;
	struct solo *s = make(2, 10);
	assert_int_equal(solo_propose(s, (const uint8_t *)"0123456789a", 11, NULL),
	                 CARELOG_ETOOBIG);
	assert_int_equal(solo_propose(s, (const uint8_t *)"012345", 6, NULL), CARELOG_OK);
	assert_int_equal(solo_propose(s, (const uint8_t *)"01234", 5, NULL), CARELOG_EBUSY);
	assert_int_equal(solo_propose(s, (const uint8_t *)"0123", 4, NULL), CARELOG_OK);
	assert_int_equal(solo_propose(s, (const uint8_t *)"", 0, NULL), CARELOG_EBUSY);
	struct consensus_ready rd;
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	solo_advance(s, &rd);
	/* Persisted but not applied: still held. */
	assert_int_equal(solo_propose(s, (const uint8_t *)"", 0, NULL), CARELOG_EBUSY);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	solo_advance(s, &rd);
	assert_int_equal(solo_propose(s, (const uint8_t *)"0123456789", 10, NULL), CARELOG_OK);
	solo_destroy(s);
}

static void test_solo_discard_drops_unpersisted_entries_and_keeps_committed(void **state)
{
	(void)state;
	struct solo *s = make(8, 1024);
	struct consensus_ready rd;
	assert_int_equal(solo_propose(s, (const uint8_t *)"a", 1, NULL), CARELOG_OK);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	solo_advance(s, &rd); /* index 2 persisted */
	uint64_t index = 0;
	assert_int_equal(solo_propose(s, (const uint8_t *)"b", 1, &index), CARELOG_OK);
	assert_int_equal(index, 3);
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	solo_discard(s, &rd); /* the transaction failed: 3 never stored, 2 not applied */
	assert_int_equal(solo_commit_index(s), 2);
	assert_int_equal(solo_applied_index(s), 1);
	assert_true(solo_has_ready(s));
	assert_int_equal(solo_ready(s, &rd), CARELOG_OK);
	assert_int_equal(rd.entries_count, 0);
	assert_int_equal(rd.committed_count, 1);
	assert_int_equal(rd.committed[0].index, 2);
	solo_advance(s, &rd);
	assert_int_equal(solo_propose(s, (const uint8_t *)"c", 1, &index), CARELOG_OK);
	assert_int_equal(index, 3); /* the dropped index is reused */
	solo_destroy(s);
}

static void test_solo_create_refuses_unapplied_or_zero_term_state(void **state)
{
	(void)state;
	struct solo_config c = {.node_id = 1, .entries_max = 4, .bytes_max = 64};
	struct consensus_hard_state hs = {.term = 1, .vote = 0, .commit = 5};
	struct solo *s = NULL;
	assert_int_equal(solo_create(&c, &hs, 5, 4, &s), CARELOG_EINVAL);
	hs.term = 0;
	assert_int_equal(solo_create(&c, &hs, 5, 5, &s), CARELOG_EINVAL);
	assert_null(s);
	solo_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_solo_propose_persists_then_commits_in_the_next_ready),
	    cmocka_unit_test(test_solo_pipelines_new_entries_with_committed_ones),
	    cmocka_unit_test(test_solo_bounds_entries_and_bytes_in_flight),
	    cmocka_unit_test(test_solo_discard_drops_unpersisted_entries_and_keeps_committed),
	    cmocka_unit_test(test_solo_create_refuses_unapplied_or_zero_term_state),
	};
	return cmocka_run_group_tests_name("daemon_solo", tests, NULL, NULL);
}
