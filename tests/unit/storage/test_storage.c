/* Unit tests for storage/: the log, meta records, indexes, map full, corruption detection. */
#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "storage/storage.h"

#include "raw_lmdb.h"

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

enum {
	TEST_PATH_BYTES = 256,
	TEST_REPORTS_MAX = 16,
	TEST_KEY_TEXT_BYTES = 128,
	TEST_MAP_SIZE_BYTES = 64u << 20,
};

struct fixture {
	char root[TEST_PATH_BYTES]; /* mkdtemp dir, removed at teardown */
	char dir[TEST_PATH_BYTES + 16]; /* root/data: storage_open must create it */
	struct storage *s;
};

/* --- fixture --- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct storage *open_store(const char *dir, uint64_t map_size_bytes)
{
	struct storage_options options = {
		.dir = dir, .map_size_bytes = map_size_bytes, .readers_max = 0};
	struct storage *s = NULL;
	assert_int_equal(storage_open(&options, &s), CARELOG_OK);
	assert_non_null(s);
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/carelog-storage-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/data", f->root);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	storage_close(f->s);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
}

static struct storage_txn *begin_write(struct storage *s)
{
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(s, &t), CARELOG_OK);
	return t;
}

static struct storage_txn *begin_read(struct storage *s)
{
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_read(s, &t), CARELOG_OK);
	return t;
}

/* --- helpers --- */

/* Entry `index` of term `term` whose data is "entry-<index>-t<term>" (kept in `buf`). */
static struct storage_entry make_entry(uint64_t index, uint64_t term, char *buf, size_t size)
{
	int n = snprintf(buf, size, "entry-%llu-t%llu", (unsigned long long)index,
			 (unsigned long long)term);
	assert_true(n > 0 && (size_t)n < size);
	return (struct storage_entry){.index = index,
				      .term = term,
				      .type = (uint8_t)(index % 3),
				      .data_len = (uint32_t)n,
				      .data = (const uint8_t *)buf};
}

enum { TEST_BATCH_MAX = 64, TEST_DATA_BYTES = 48 };

/* Appends [first, first + count) with term `term` in one committed txn. */
static void append_range(struct storage *s, uint64_t first, size_t count, uint64_t term)
{
	assert_true(count <= TEST_BATCH_MAX);
	static char bufs[TEST_BATCH_MAX][TEST_DATA_BYTES];
	struct storage_entry entries[TEST_BATCH_MAX];
	for (size_t i = 0; i < count; i++) {
		entries[i] = make_entry(first + i, term, bufs[i], sizeof(bufs[i]));
	}
	struct storage_txn *t = begin_write(s);
	assert_int_equal(storage_log_append(t, entries, count), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
}

static void assert_entry(struct storage_txn *t, uint64_t index, uint64_t term)
{
	char expected[TEST_DATA_BYTES];
	struct storage_entry want = make_entry(index, term, expected, sizeof(expected));
	struct storage_entry got;
	assert_int_equal(storage_log_get(t, index, &got), CARELOG_OK);
	assert_int_equal(got.index, index);
	assert_int_equal(got.term, term);
	assert_int_equal(got.type, want.type);
	assert_int_equal(got.data_len, want.data_len);
	assert_memory_equal(got.data, want.data, want.data_len);
}

static void assert_last(struct storage *s, uint64_t index, uint64_t term)
{
	struct storage_txn *t = begin_read(s);
	uint64_t last = 99, last_term = 99;
	assert_int_equal(storage_log_last(t, &last, &last_term), CARELOG_OK);
	assert_int_equal(last, index);
	assert_int_equal(last_term, term);
	storage_txn_abort(t);
}

struct reports {
	size_t count;
	char db[TEST_REPORTS_MAX][TEST_KEY_TEXT_BYTES];
	char key[TEST_REPORTS_MAX][TEST_KEY_TEXT_BYTES];
};

static void collect_report(void *arg, const char *db, const char *key)
{
	struct reports *r = arg;
	assert_true(r->count < TEST_REPORTS_MAX);
	snprintf(r->db[r->count], TEST_KEY_TEXT_BYTES, "%s", db);
	snprintf(r->key[r->count], TEST_KEY_TEXT_BYTES, "%s", key);
	r->count++;
}

/* Runs storage_verify and asserts it reported exactly one damaged record: (db, key). */
static void assert_verify_reports_only(struct storage *s, const char *db, const char *key)
{
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 0;
	assert_int_equal(storage_verify(s, collect_report, &r, &checked, &corrupt), CARELOG_OK);
	assert_int_equal(corrupt, 1);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.db[0], db);
	assert_string_equal(r.key[0], key);
	assert_true(checked >= 1);
}

static void assert_verify_clean(struct storage *s, uint64_t checked_expected)
{
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 99;
	assert_int_equal(storage_verify(s, collect_report, &r, &checked, &corrupt), CARELOG_OK);
	assert_int_equal(corrupt, 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(checked, checked_expected);
}

static void key_u64be(uint8_t out[8], uint64_t v)
{
	cl_put_u64be(out, v);
}

static void fill_bytes(uint8_t *out, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		out[i] = (uint8_t)(seed + i * 7);
	}
}

/* --- the log --- */

struct scan_collect {
	uint64_t indexes[TEST_BATCH_MAX];
	size_t count;
	size_t stop_after; /* 0: never stop */
};

static int collect_entry(void *arg, const struct storage_entry *e)
{
	struct scan_collect *c = arg;
	assert_true(c->count < TEST_BATCH_MAX);
	char expected[TEST_DATA_BYTES];
	struct storage_entry want = make_entry(e->index, e->term, expected, sizeof(expected));
	assert_int_equal(e->data_len, want.data_len);
	assert_memory_equal(e->data, want.data, want.data_len);
	c->indexes[c->count++] = e->index;
	if (c->stop_after != 0 && c->count == c->stop_after) {
		return 42;
	}
	return 0;
}

static void test_log_append_then_read_back_range(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 10, 1);
	append_range(f->s, 11, 5, 2);
	struct storage_txn *t = begin_read(f->s);
	for (uint64_t i = 1; i <= 15; i++) {
		assert_entry(t, i, i <= 10 ? 1 : 2);
	}
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 16, &e), CARELOG_ENOTFOUND);
	assert_int_equal(storage_log_get(t, 0, &e), CARELOG_ENOTFOUND);

	struct scan_collect c = {0};
	assert_int_equal(storage_log_scan(t, 4, 12, collect_entry, &c), CARELOG_OK);
	assert_int_equal(c.count, 9);
	for (size_t i = 0; i < c.count; i++) {
		assert_int_equal(c.indexes[i], 4 + i);
	}
	struct scan_collect beyond = {0};
	assert_int_equal(storage_log_scan(t, 14, 100, collect_entry, &beyond), CARELOG_OK);
	assert_int_equal(beyond.count, 2);
	struct scan_collect empty = {0};
	assert_int_equal(storage_log_scan(t, 9, 8, collect_entry, &empty), CARELOG_OK);
	assert_int_equal(empty.count, 0);
	storage_txn_abort(t);
	assert_last(f->s, 15, 2);
}

static void test_log_scan_stops_with_the_visitors_value(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 10, 1);
	struct storage_txn *t = begin_read(f->s);
	struct scan_collect c = {.stop_after = 3};
	assert_int_equal(storage_log_scan(t, 2, 10, collect_entry, &c), 42);
	assert_int_equal(c.count, 3);
	assert_int_equal(c.indexes[2], 4);
	storage_txn_abort(t);
}

static void test_log_last_of_empty_log_is_zero_zero(void **state)
{
	struct fixture *f = *state;
	assert_last(f->s, 0, 0);
	struct storage_txn *t = begin_read(f->s);
	struct scan_collect c = {0};
	assert_int_equal(storage_log_scan(t, 1, 100, collect_entry, &c), CARELOG_OK);
	assert_int_equal(c.count, 0);
	storage_txn_abort(t);
}

static void test_log_truncate_drops_uncommitted_suffix(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 20, 3);
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_truncate(t, 15), CARELOG_OK);
	assert_int_equal(storage_log_truncate(t, 0), CARELOG_EINVAL);
	assert_int_equal(storage_log_truncate(t, 100), CARELOG_OK); /* nothing there: no-op */
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	assert_last(f->s, 14, 3);
	t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 15, &e), CARELOG_ENOTFOUND);
	assert_entry(t, 14, 3);
	storage_txn_abort(t);
	assert_verify_clean(f->s, 14);
}

static void test_log_append_overwrites_conflicting_suffix(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 10, 1);
	/* A new leader of term 2 replaces 6..10 with 6..8. */
	append_range(f->s, 6, 3, 2);
	assert_last(f->s, 8, 2);
	struct storage_txn *t = begin_read(f->s);
	for (uint64_t i = 1; i <= 5; i++) {
		assert_entry(t, i, 1);
	}
	for (uint64_t i = 6; i <= 8; i++) {
		assert_entry(t, i, 2);
	}
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 9, &e), CARELOG_ENOTFOUND);
	storage_txn_abort(t);
	/* Overwriting from the very first entry works too. */
	append_range(f->s, 1, 2, 5);
	assert_last(f->s, 2, 5);
	assert_verify_clean(f->s, 2);
}

static void test_log_append_with_gap_is_refused(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 3, 1);
	char buf[TEST_DATA_BYTES];
	struct storage_entry gap = make_entry(5, 1, buf, sizeof(buf));
	struct storage_entry zero = make_entry(0, 1, buf, sizeof(buf));
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, &gap, 1), CARELOG_EINVAL);
	assert_int_equal(storage_log_append(t, &zero, 1), CARELOG_EINVAL);
	assert_int_equal(storage_log_append(t, NULL, 0), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	assert_last(f->s, 3, 1);
}

static void test_log_append_to_empty_log_must_start_at_one(void **state)
{
	struct fixture *f = *state;
	char buf[TEST_DATA_BYTES];
	struct storage_entry second = make_entry(2, 1, buf, sizeof(buf));
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, &second, 1), CARELOG_EINVAL);
	storage_txn_abort(t);
	assert_last(f->s, 0, 0);
}

static void test_log_entry_with_empty_and_large_data_round_trips(void **state)
{
	struct fixture *f = *state;
	enum { LARGE_BYTES = 200 * 1024 }; /* spans overflow pages */
	uint8_t *large = malloc(LARGE_BYTES);
	assert_non_null(large);
	for (size_t i = 0; i < LARGE_BYTES; i++) {
		large[i] = (uint8_t)(i * 31 + 7);
	}
	struct storage_entry entries[2] = {
		{.index = 1, .term = 1, .type = 2, .data_len = 0, .data = NULL},
		{.index = 2, .term = 1, .type = 1, .data_len = LARGE_BYTES, .data = large},
	};
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, entries, 2), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 1, &e), CARELOG_OK);
	assert_int_equal(e.data_len, 0);
	assert_int_equal(e.type, 2);
	assert_int_equal(storage_log_get(t, 2, &e), CARELOG_OK);
	assert_int_equal(e.data_len, LARGE_BYTES);
	assert_memory_equal(e.data, large, LARGE_BYTES);
	storage_txn_abort(t);
	free(large);
}

static void test_log_rewrite_replaces_body_and_keeps_term(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 3, 4);
	struct storage_txn *t = begin_write(f->s);
	struct storage_entry stripped = {
		.index = 2, .term = 4, .type = 2, .data_len = 4, .data = (const uint8_t *)"gone"};
	assert_int_equal(storage_log_rewrite(t, &stripped), CARELOG_OK);
	struct storage_entry wrong_term = stripped;
	wrong_term.term = 5;
	assert_int_equal(storage_log_rewrite(t, &wrong_term), CARELOG_EINVAL);
	struct storage_entry absent = stripped;
	absent.index = 9;
	assert_int_equal(storage_log_rewrite(t, &absent), CARELOG_ENOTFOUND);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 2, &e), CARELOG_OK);
	assert_int_equal(e.term, 4);
	assert_int_equal(e.data_len, 4);
	assert_memory_equal(e.data, "gone", 4);
	assert_entry(t, 3, 4);
	storage_txn_abort(t);
}

static void test_aborted_write_leaves_no_trace(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 2, 1);
	char buf[TEST_DATA_BYTES];
	struct storage_entry e = make_entry(3, 1, buf, sizeof(buf));
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, &e, 1), CARELOG_OK);
	struct storage_hard_state hs = {.term = 9, .vote = 2, .commit = 3};
	assert_int_equal(storage_hard_state_put(t, &hs), CARELOG_OK);
	storage_txn_abort(t);
	assert_last(f->s, 2, 1);
	t = begin_read(f->s);
	struct storage_hard_state got;
	assert_int_equal(storage_hard_state_get(t, &got), CARELOG_OK);
	assert_int_equal(got.term, 0);
	storage_txn_abort(t);
}

static void test_reader_sees_snapshot_while_writer_appends(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 2, 1);
	struct storage_txn *reader = begin_read(f->s);
	append_range(f->s, 3, 2, 1); /* commits while the reader is open */
	uint64_t last = 0, term = 0;
	assert_int_equal(storage_log_last(reader, &last, &term), CARELOG_OK);
	assert_int_equal(last, 2);
	assert_int_equal(storage_txn_commit(reader), CARELOG_OK); /* ends a read txn */
	assert_last(f->s, 4, 1);
}

/* --- meta records --- */

static void test_hard_state_and_applied_round_trip(void **state)
{
	struct fixture *f = *state;
	struct storage_txn *t = begin_read(f->s);
	struct storage_hard_state hs;
	memset(&hs, 0xff, sizeof(hs));
	assert_int_equal(storage_hard_state_get(t, &hs), CARELOG_OK);
	assert_int_equal(hs.term, 0);
	assert_int_equal(hs.vote, 0);
	assert_int_equal(hs.commit, 0);
	struct storage_applied applied;
	memset(&applied, 0xff, sizeof(applied));
	assert_int_equal(storage_applied_get(t, &applied), CARELOG_OK);
	assert_int_equal(applied.index, 0);
	uint8_t zero[STORAGE_HASH_BYTES] = {0};
	assert_memory_equal(applied.chain_head, zero, STORAGE_HASH_BYTES);
	storage_txn_abort(t);

	t = begin_write(f->s);
	struct storage_hard_state put_hs = {.term = 7, .vote = 3, .commit = 1234567890123ULL};
	struct storage_applied put_applied = {.index = 1234567890000ULL};
	fill_bytes(put_applied.chain_head, STORAGE_HASH_BYTES, 9);
	assert_int_equal(storage_hard_state_put(t, &put_hs), CARELOG_OK);
	assert_int_equal(storage_applied_put(t, &put_applied), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	t = begin_read(f->s);
	assert_int_equal(storage_hard_state_get(t, &hs), CARELOG_OK);
	assert_memory_equal(&hs, &put_hs, sizeof(hs));
	assert_int_equal(storage_applied_get(t, &applied), CARELOG_OK);
	assert_int_equal(applied.index, put_applied.index);
	assert_memory_equal(applied.chain_head, put_applied.chain_head, STORAGE_HASH_BYTES);
	storage_txn_abort(t);
}

static void test_identity_absent_on_fresh_dir_then_present(void **state)
{
	struct fixture *f = *state;
	struct storage_txn *t = begin_read(f->s);
	struct storage_identity id;
	assert_int_equal(storage_identity_get(t, &id), CARELOG_ENOTFOUND);
	storage_txn_abort(t);

	struct storage_identity mine = {.node_id = 42};
	fill_bytes(mine.cluster_id, STORAGE_CLUSTER_ID_BYTES, 1);
	t = begin_write(f->s);
	assert_int_equal(storage_identity_put(t, &mine), CARELOG_OK);
	assert_int_equal(storage_identity_put(t, &mine), CARELOG_OK); /* same again: no-op */
	struct storage_identity other = mine;
	other.node_id = 43;
	assert_int_equal(storage_identity_put(t, &other), CARELOG_EEXIST);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	t = begin_read(f->s);
	assert_int_equal(storage_identity_get(t, &id), CARELOG_OK);
	assert_int_equal(id.node_id, 42);
	assert_memory_equal(id.cluster_id, mine.cluster_id, STORAGE_CLUSTER_ID_BYTES);
	storage_txn_abort(t);
}

static void test_reopen_after_close_keeps_log_hard_state_applied_identity(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 30, 2);
	struct storage_txn *t = begin_write(f->s);
	struct storage_hard_state hs = {.term = 2, .vote = 5, .commit = 25};
	struct storage_applied applied = {.index = 25};
	fill_bytes(applied.chain_head, STORAGE_HASH_BYTES, 77);
	struct storage_identity identity = {.node_id = 5};
	fill_bytes(identity.cluster_id, STORAGE_CLUSTER_ID_BYTES, 3);
	assert_int_equal(storage_hard_state_put(t, &hs), CARELOG_OK);
	assert_int_equal(storage_applied_put(t, &applied), CARELOG_OK);
	assert_int_equal(storage_identity_put(t, &identity), CARELOG_OK);
	assert_int_equal(storage_meta_put(t, "membership", (const uint8_t *)"cfg", 3), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	reopen(f);

	assert_last(f->s, 30, 2);
	t = begin_read(f->s);
	for (uint64_t i = 1; i <= 30; i++) {
		assert_entry(t, i, 2);
	}
	struct storage_hard_state got_hs;
	assert_int_equal(storage_hard_state_get(t, &got_hs), CARELOG_OK);
	assert_memory_equal(&got_hs, &hs, sizeof(hs));
	struct storage_applied got_applied;
	assert_int_equal(storage_applied_get(t, &got_applied), CARELOG_OK);
	assert_int_equal(got_applied.index, 25);
	assert_memory_equal(got_applied.chain_head, applied.chain_head, STORAGE_HASH_BYTES);
	struct storage_identity got_identity;
	assert_int_equal(storage_identity_get(t, &got_identity), CARELOG_OK);
	assert_int_equal(got_identity.node_id, 5);
	assert_memory_equal(got_identity.cluster_id, identity.cluster_id, STORAGE_CLUSTER_ID_BYTES);
	const uint8_t *value;
	size_t len;
	assert_int_equal(storage_meta_get(t, "membership", &value, &len), CARELOG_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(value, "cfg", 3);
	storage_txn_abort(t);
	/* 30 log entries + hard_state, applied, identity, membership */
	assert_verify_clean(f->s, 34);
}

static void test_meta_put_get_and_names_checked(void **state)
{
	struct fixture *f = *state;
	struct storage_txn *t = begin_write(f->s);
	const uint8_t *value = NULL;
	size_t len = 0;
	assert_int_equal(storage_meta_get(t, "params", &value, &len), CARELOG_ENOTFOUND);
	assert_int_equal(storage_meta_put(t, "params", (const uint8_t *)"v1", 2), CARELOG_OK);
	assert_int_equal(storage_meta_put(t, "params", (const uint8_t *)"v22", 3), CARELOG_OK);
	assert_int_equal(storage_meta_put(t, "empty", NULL, 0), CARELOG_OK);
	assert_int_equal(storage_meta_put(t, "hard_state", (const uint8_t *)"x", 1),
			 CARELOG_EINVAL);
	assert_int_equal(storage_meta_put(t, "has space", (const uint8_t *)"x", 1), CARELOG_EINVAL);
	assert_int_equal(storage_meta_put(t, "", (const uint8_t *)"x", 1), CARELOG_EINVAL);
	assert_int_equal(
		storage_meta_put(t, "a-name-that-is-longer-than-32-bytes", (const uint8_t *)"x", 1),
		CARELOG_EINVAL);
	assert_int_equal(storage_meta_get(t, "identity", &value, &len), CARELOG_EINVAL);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	t = begin_read(f->s);
	assert_int_equal(storage_meta_get(t, "params", &value, &len), CARELOG_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(value, "v22", 3);
	assert_int_equal(storage_meta_get(t, "empty", &value, &len), CARELOG_OK);
	assert_int_equal(len, 0);
	storage_txn_abort(t);

	t = begin_write(f->s);
	assert_int_equal(storage_meta_delete(t, "params"), CARELOG_OK);
	assert_int_equal(storage_meta_delete(t, "params"), CARELOG_ENOTFOUND);
	assert_int_equal(storage_meta_get(t, "params", &value, &len), CARELOG_ENOTFOUND);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
}

/* --- indexes --- */

static void test_entry_index_round_trip(void **state)
{
	struct fixture *f = *state;
	uint8_t id[STORAGE_HASH_BYTES], other[STORAGE_HASH_BYTES];
	fill_bytes(id, STORAGE_HASH_BYTES, 1);
	fill_bytes(other, STORAGE_HASH_BYTES, 2);
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_index_entry_put(t, id, 77, 1), CARELOG_OK);
	assert_int_equal(storage_index_entry_put(t, id, 77, 3), CARELOG_OK); /* status update */
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	t = begin_read(f->s);
	uint64_t index = 0;
	uint8_t status = 0;
	assert_int_equal(storage_index_entry_get(t, id, &index, &status), CARELOG_OK);
	assert_int_equal(index, 77);
	assert_int_equal(status, 3);
	index = 5;
	assert_int_equal(storage_index_entry_get(t, other, &index, &status), CARELOG_ENOTFOUND);
	assert_int_equal(index, 5); /* untouched on failure */
	storage_txn_abort(t);
}

static void test_request_index_round_trip(void **state)
{
	struct fixture *f = *state;
	uint8_t id[STORAGE_HASH_BYTES];
	fill_bytes(id, STORAGE_HASH_BYTES, 4);
	const uint8_t key[] = "app-7/req-0001";
	uint8_t long_key[STORAGE_REQUEST_KEY_BYTES_MAX + 1];
	memset(long_key, 'k', sizeof(long_key));
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_index_request_put(t, key, sizeof(key) - 1, 12, id), CARELOG_OK);
	assert_int_equal(storage_index_request_put(t, long_key, STORAGE_REQUEST_KEY_BYTES_MAX, 13,
						   id),
			 CARELOG_OK);
	assert_int_equal(storage_index_request_put(t, long_key, sizeof(long_key), 14, id),
			 CARELOG_EINVAL);
	assert_int_equal(storage_index_request_put(t, key, 0, 14, id), CARELOG_EINVAL);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	t = begin_read(f->s);
	uint64_t index = 0;
	uint8_t got[STORAGE_HASH_BYTES];
	assert_int_equal(storage_index_request_get(t, key, sizeof(key) - 1, &index, got),
			 CARELOG_OK);
	assert_int_equal(index, 12);
	assert_memory_equal(got, id, STORAGE_HASH_BYTES);
	assert_int_equal(storage_index_request_get(t, long_key, STORAGE_REQUEST_KEY_BYTES_MAX,
						   &index, got),
			 CARELOG_OK);
	assert_int_equal(index, 13);
	assert_int_equal(storage_index_request_get(t, key, sizeof(key) - 2, &index, got),
			 CARELOG_ENOTFOUND);
	storage_txn_abort(t);
}

static void test_patient_scan_is_ordered_and_honours_from_index_capacity_and_more(void **state)
{
	struct fixture *f = *state;
	uint8_t alice[STORAGE_HASH_BYTES], bob[STORAGE_HASH_BYTES], carol[STORAGE_HASH_BYTES];
	fill_bytes(alice, STORAGE_HASH_BYTES, 10);
	fill_bytes(bob, STORAGE_HASH_BYTES, 11);
	memcpy(carol, alice, sizeof(carol));
	carol[STORAGE_HASH_BYTES - 1] ^= 1; /* shares a 31-byte prefix with alice */
	/* Added out of order, interleaved across patients, including a 2^32+ index. */
	const uint64_t alice_rows[] = {300, 5, 70000, 1, 4294967296ULL + 3, 64};
	struct storage_txn *t = begin_write(f->s);
	for (size_t i = 0; i < CL_ARRAY_LEN(alice_rows); i++) {
		assert_int_equal(storage_index_patient_add(t, alice, alice_rows[i]), CARELOG_OK);
		assert_int_equal(storage_index_patient_add(t, bob, alice_rows[i] + 1), CARELOG_OK);
		assert_int_equal(storage_index_patient_add(t, carol, alice_rows[i] + 2), CARELOG_OK);
	}
	assert_int_equal(storage_index_patient_add(t, alice, 64), CARELOG_OK); /* again: no-op */
	assert_int_equal(storage_index_patient_add(t, alice, 0), CARELOG_EINVAL);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	t = begin_read(f->s);
	uint64_t out[8];
	size_t count = 99;
	bool more = true;
	assert_int_equal(storage_index_patient_scan(t, alice, 0, out, 8, &count, &more), CARELOG_OK);
	const uint64_t all[] = {1, 5, 64, 300, 70000, 4294967296ULL + 3};
	assert_int_equal(count, CL_ARRAY_LEN(all));
	assert_false(more);
	assert_memory_equal(out, all, sizeof(all));

	assert_int_equal(storage_index_patient_scan(t, alice, 0, out, 2, &count, &more), CARELOG_OK);
	assert_int_equal(count, 2);
	assert_true(more);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 5);

	/* Next page: from the index after the last one seen. */
	assert_int_equal(storage_index_patient_scan(t, alice, 6, out, 3, &count, &more), CARELOG_OK);
	assert_int_equal(count, 3);
	assert_true(more);
	assert_int_equal(out[0], 64);
	assert_int_equal(out[2], 70000);

	assert_int_equal(storage_index_patient_scan(t, alice, 64, out, 8, &count, &more), CARELOG_OK);
	assert_int_equal(count, 4);
	assert_false(more);
	assert_int_equal(out[0], 64);

	/* Exactly filling the capacity: nothing more. */
	assert_int_equal(storage_index_patient_scan(t, alice, 300, out, 3, &count, &more),
			 CARELOG_OK);
	assert_int_equal(count, 3);
	assert_false(more);

	assert_int_equal(storage_index_patient_scan(t, alice, 4294967296ULL + 4, out, 8, &count,
						    &more),
			 CARELOG_OK);
	assert_int_equal(count, 0);
	assert_false(more);

	assert_int_equal(storage_index_patient_scan(t, alice, 0, NULL, 0, &count, &more),
			 CARELOG_OK);
	assert_int_equal(count, 0);
	assert_true(more);

	assert_int_equal(storage_index_patient_scan(t, bob, 0, out, 8, &count, &more), CARELOG_OK);
	assert_int_equal(count, 6);
	assert_int_equal(out[0], 2);

	uint8_t nobody[STORAGE_HASH_BYTES];
	fill_bytes(nobody, STORAGE_HASH_BYTES, 200);
	assert_int_equal(storage_index_patient_scan(t, nobody, 0, out, 8, &count, &more),
			 CARELOG_OK);
	assert_int_equal(count, 0);
	assert_false(more);
	storage_txn_abort(t);
}

/* --- environment --- */

static void test_map_full_returns_emapfull_and_store_stays_usable(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	f->s = open_store(f->dir, 1u << 20); /* 1 MiB: the configured size wins */
	enum { BODY_BYTES = 32 * 1024, ATTEMPTS_MAX = 64 };
	uint8_t *body = calloc(1, BODY_BYTES);
	assert_non_null(body);
	uint64_t committed = 0;
	int rc = CARELOG_OK;
	for (uint64_t i = 1; i <= ATTEMPTS_MAX && rc == CARELOG_OK; i++) {
		struct storage_entry e = {
			.index = i, .term = 1, .type = 0, .data_len = BODY_BYTES, .data = body};
		struct storage_txn *t = begin_write(f->s);
		rc = storage_log_append(t, &e, 1);
		if (rc != CARELOG_OK) {
			storage_txn_abort(t);
			break;
		}
		rc = storage_txn_commit(t);
		if (rc == CARELOG_OK) {
			committed = i;
		}
	}
	assert_int_equal(rc, CARELOG_EMAPFULL);
	assert_true(committed > 0);

	/* Everything committed before is still readable. */
	assert_last(f->s, committed, 1);
	struct storage_txn *t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, committed, &e), CARELOG_OK);
	assert_int_equal(e.data_len, BODY_BYTES);
	storage_txn_abort(t);
	struct storage_stats stats;
	assert_int_equal(storage_stats_get(f->s, &stats), CARELOG_OK);
	assert_int_equal(stats.log_entries, committed);
	assert_true(stats.used_bytes <= stats.map_size_bytes);

	/* The remedy works: a larger map and the next append fits. */
	storage_close(f->s);
	f->s = open_store(f->dir, 8u << 20);
	struct storage_entry next = {
		.index = committed + 1, .term = 1, .data_len = BODY_BYTES, .data = body};
	t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, &next, 1), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	assert_last(f->s, committed + 1, 1);
	assert_int_equal(storage_stats_get(f->s, &stats), CARELOG_OK);
	assert_true(stats.map_size_bytes >= (8u << 20));
	free(body);
}

static void test_stats_report_map_size_used_bytes_and_log_entries(void **state)
{
	struct fixture *f = *state;
	struct storage_stats before;
	assert_int_equal(storage_stats_get(f->s, &before), CARELOG_OK);
	assert_int_equal(before.map_size_bytes, TEST_MAP_SIZE_BYTES);
	assert_int_equal(before.log_entries, 0);
	append_range(f->s, 1, 50, 1);
	struct storage_stats after;
	assert_int_equal(storage_stats_get(f->s, &after), CARELOG_OK);
	assert_int_equal(after.log_entries, 50);
	assert_true(after.used_bytes > before.used_bytes);
}

static void test_second_open_of_same_dir_is_refused(void **state)
{
	struct fixture *f = *state;
	struct storage_options options = {.dir = f->dir, .map_size_bytes = TEST_MAP_SIZE_BYTES};
	struct storage *second = (struct storage *)0x1;
	assert_int_equal(storage_open(&options, &second), CARELOG_EBUSY);
	assert_ptr_equal(second, (struct storage *)0x1); /* untouched on failure */
}

static void test_open_creates_private_dir_and_refuses_missing_parent(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char missing[TEST_PATH_BYTES + 16];
	snprintf(missing, sizeof(missing), "%s/no/such", f->root);
	struct storage_options options = {.dir = missing};
	struct storage *s = NULL;
	assert_int_equal(storage_open(&options, &s), CARELOG_ENOTFOUND);
	assert_null(s);
}

static void test_other_format_version_is_refused_at_open(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	f->s = NULL;
	/* A well-formed identity record of format version 2, as a future carelog would write. */
	uint8_t value[4 + 4 + STORAGE_CLUSTER_ID_BYTES + 8] = {0};
	cl_put_u32be(value + 4, STORAGE_FORMAT_VERSION + 1);
	uint32_t crc = cl_crc32c(0, "identity", 8);
	crc = cl_crc32c(crc, value + 4, sizeof(value) - 4);
	cl_put_u32be(value, crc);
	raw_put(f->dir, "meta", "identity", 8, value, sizeof(value));
	struct storage_options options = {.dir = f->dir, .map_size_bytes = TEST_MAP_SIZE_BYTES};
	struct storage *s = NULL;
	assert_int_equal(storage_open(&options, &s), CARELOG_EVERSION);
	assert_null(s);
}

/* --- corruption --- */

static void test_corrupt_log_value_is_reported_not_served(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 1, 1);
	const char *body = "MARKER-LOG-7d1c9e0f4a";
	struct storage_entry e = {.index = 2,
				  .term = 1,
				  .type = 1,
				  .data_len = (uint32_t)strlen(body),
				  .data = (const uint8_t *)body};
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_log_append(t, &e, 1), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	append_range(f->s, 3, 1, 1);
	storage_close(f->s);
	assert_true(file_flip_marker(f->dir, body) >= 1);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);

	t = begin_read(f->s);
	struct storage_entry got = {.index = 99};
	assert_int_equal(storage_log_get(t, 2, &got), CARELOG_ECORRUPT);
	assert_int_equal(got.index, 99); /* nothing served */
	assert_entry(t, 1, 1);
	assert_entry(t, 3, 1);
	struct scan_collect c = {0};
	assert_int_equal(storage_log_scan(t, 1, 3, collect_entry, &c), CARELOG_ECORRUPT);
	assert_int_equal(c.count, 1); /* entry 1 only: the scan stops at the damage */
	storage_txn_abort(t);
	assert_verify_reports_only(f->s, "log", "2");
}

static void test_corrupt_last_log_entry_fails_last_but_can_be_overwritten(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 3, 1);
	storage_close(f->s);
	uint8_t key[8];
	key_u64be(key, 3);
	raw_flip(f->dir, "log", key, sizeof(key), 6); /* inside the term */
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	struct storage_txn *t = begin_read(f->s);
	uint64_t last = 0, term = 0;
	assert_int_equal(storage_log_last(t, &last, &term), CARELOG_ECORRUPT);
	storage_txn_abort(t);
	assert_verify_reports_only(f->s, "log", "3");
	append_range(f->s, 3, 1, 2); /* a leader's entry replaces the damaged one */
	assert_last(f->s, 3, 2);
	assert_verify_clean(f->s, 3);
}

static void test_corrupt_index_value_is_reported_not_served(void **state)
{
	struct fixture *f = *state;
	uint8_t id[STORAGE_HASH_BYTES], patient[STORAGE_HASH_BYTES];
	fill_bytes(id, STORAGE_HASH_BYTES, 0xa0);
	fill_bytes(patient, STORAGE_HASH_BYTES, 0x30);
	const uint8_t request[] = "scope/request-1";
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_index_entry_put(t, id, 9, 1), CARELOG_OK);
	assert_int_equal(storage_index_request_put(t, request, sizeof(request) - 1, 9, id),
			 CARELOG_OK);
	assert_int_equal(storage_index_patient_add(t, patient, 9), CARELOG_OK);
	assert_int_equal(storage_index_patient_add(t, patient, 10), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	storage_close(f->s);
	raw_flip(f->dir, "entry_index", id, sizeof(id), 11); /* the last byte of the index */
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);

	t = begin_read(f->s);
	uint64_t index = 5;
	uint8_t status = 5;
	assert_int_equal(storage_index_entry_get(t, id, &index, &status), CARELOG_ECORRUPT);
	assert_int_equal(index, 5);
	assert_int_equal(status, 5);
	uint8_t got[STORAGE_HASH_BYTES];
	assert_int_equal(storage_index_request_get(t, request, sizeof(request) - 1, &index, got),
			 CARELOG_OK);
	storage_txn_abort(t);
	char hex[2 * STORAGE_HASH_BYTES + 1];
	cl_hex_encode(hex, id, sizeof(id));
	assert_verify_reports_only(f->s, "entry_index", hex);

	/* A damaged patient row: the scan refuses rather than skip it; verify names its index. */
	storage_close(f->s);
	uint8_t row[STORAGE_HASH_BYTES + 8];
	memcpy(row, patient, STORAGE_HASH_BYTES);
	key_u64be(row + STORAGE_HASH_BYTES, 10);
	raw_flip(f->dir, "patient_index", row, sizeof(row), 0);
	/* and the request row */
	raw_flip(f->dir, "request_index", request, sizeof(request) - 1, 20);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	t = begin_read(f->s);
	uint64_t rows[4];
	size_t count = 77;
	bool more = false;
	assert_int_equal(storage_index_patient_scan(t, patient, 0, rows, 4, &count, &more),
			 CARELOG_ECORRUPT);
	assert_int_equal(count, 77);
	assert_int_equal(storage_index_request_get(t, request, sizeof(request) - 1, &index, got),
			 CARELOG_ECORRUPT);
	storage_txn_abort(t);
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 0;
	assert_int_equal(storage_verify(f->s, collect_report, &r, &checked, &corrupt), CARELOG_OK);
	assert_int_equal(corrupt, 3);
	assert_int_equal(checked, 4);
	char request_hex[2 * sizeof(request) + 1];
	cl_hex_encode(request_hex, request, sizeof(request) - 1);
	/* databases are walked in the order meta, log, entry, request, patient */
	assert_string_equal(r.db[0], "entry_index");
	assert_string_equal(r.key[0], hex);
	assert_string_equal(r.db[1], "request_index");
	assert_string_equal(r.key[1], request_hex);
	assert_string_equal(r.db[2], "patient_index");
	assert_string_equal(r.key[2], "10");
}

static void test_corrupt_meta_value_is_reported_not_served(void **state)
{
	struct fixture *f = *state;
	const char *marker = "MARKER-META-3b8e51c2d9";
	struct storage_hard_state hs = {.term = 3, .vote = 1, .commit = 2};
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_meta_put(t, "membership", (const uint8_t *)marker, strlen(marker)),
			 CARELOG_OK);
	assert_int_equal(storage_hard_state_put(t, &hs), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	storage_close(f->s);
	assert_true(file_flip_marker(f->dir, marker) >= 1);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);

	t = begin_read(f->s);
	const uint8_t *value = NULL;
	size_t len = 0;
	assert_int_equal(storage_meta_get(t, "membership", &value, &len), CARELOG_ECORRUPT);
	assert_null(value);
	struct storage_hard_state got;
	assert_int_equal(storage_hard_state_get(t, &got), CARELOG_OK);
	storage_txn_abort(t);
	assert_verify_reports_only(f->s, "meta", "membership");

	/* The typed records are checked the same way. */
	storage_close(f->s);
	raw_flip(f->dir, "meta", "hard_state", 10, 4 + 7);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	t = begin_read(f->s);
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(storage_hard_state_get(t, &got), CARELOG_ECORRUPT);
	assert_int_equal(got.term, 0x5a5a5a5a5a5a5a5aULL);
	storage_txn_abort(t);
}

static void test_short_value_is_reported_corrupt_not_a_crash(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 2, 1);
	uint8_t id[STORAGE_HASH_BYTES];
	fill_bytes(id, STORAGE_HASH_BYTES, 5);
	struct storage_txn *t = begin_write(f->s);
	assert_int_equal(storage_index_entry_put(t, id, 1, 0), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	storage_close(f->s);
	uint8_t key[8];
	key_u64be(key, 2);
	const uint8_t two[2] = {0xde, 0xad};
	raw_put(f->dir, "log", key, sizeof(key), two, sizeof(two));
	/* Long enough to hold a checksum, too short for an index entry, with a valid checksum. */
	uint8_t five[5] = {0, 0, 0, 0, 7};
	uint32_t crc = cl_crc32c(cl_crc32c(0, id, sizeof(id)), five + 4, 1);
	cl_put_u32be(five, crc);
	raw_put(f->dir, "entry_index", id, sizeof(id), five, sizeof(five));
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);

	t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 2, &e), CARELOG_ECORRUPT);
	uint64_t last = 0, term = 0;
	assert_int_equal(storage_log_last(t, &last, &term), CARELOG_ECORRUPT);
	uint64_t index;
	uint8_t status;
	assert_int_equal(storage_index_entry_get(t, id, &index, &status), CARELOG_ECORRUPT);
	storage_txn_abort(t);
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 0;
	assert_int_equal(storage_verify(f->s, collect_report, &r, &checked, &corrupt), CARELOG_OK);
	assert_int_equal(corrupt, 2);
	assert_string_equal(r.db[0], "log");
	assert_string_equal(r.key[0], "2");
	assert_string_equal(r.db[1], "entry_index");
}

static void test_value_moved_to_another_key_is_detected(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 3, 1);
	storage_close(f->s);
	/* Copy entry 2's intact value over entry 3: its checksum is valid for key 2 only. */
	struct raw r;
	raw_begin(&r, f->dir, "log");
	uint8_t k2[8], k3[8];
	key_u64be(k2, 2);
	key_u64be(k3, 3);
	MDB_val key2 = {.mv_size = 8, .mv_data = k2}, key3 = {.mv_size = 8, .mv_data = k3};
	MDB_val v;
	assert_int_equal(mdb_get(r.txn, r.dbi, &key2, &v), 0);
	uint8_t copy[128];
	assert_true(v.mv_size <= sizeof(copy));
	memcpy(copy, v.mv_data, v.mv_size);
	MDB_val moved = {.mv_size = v.mv_size, .mv_data = copy};
	assert_int_equal(mdb_put(r.txn, r.dbi, &key3, &moved, 0), 0);
	raw_end(&r);
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	struct storage_txn *t = begin_read(f->s);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, 3, &e), CARELOG_ECORRUPT);
	storage_txn_abort(t);
	assert_verify_reports_only(f->s, "log", "3");
}

static void test_missing_log_entry_is_reported_as_a_hole(void **state)
{
	struct fixture *f = *state;
	append_range(f->s, 1, 6, 1);
	storage_close(f->s);
	uint8_t key[8];
	key_u64be(key, 3);
	raw_del(f->dir, "log", key, sizeof(key));
	key_u64be(key, 4);
	raw_del(f->dir, "log", key, sizeof(key));
	f->s = open_store(f->dir, TEST_MAP_SIZE_BYTES);
	struct storage_txn *t = begin_read(f->s);
	struct scan_collect c = {0};
	assert_int_equal(storage_log_scan(t, 1, 6, collect_entry, &c), CARELOG_ECORRUPT);
	assert_int_equal(c.count, 2);
	struct scan_collect from_hole = {0};
	assert_int_equal(storage_log_scan(t, 3, 6, collect_entry, &from_hole), CARELOG_ECORRUPT);
	assert_int_equal(from_hole.count, 0);
	storage_txn_abort(t);
	assert_verify_reports_only(f->s, "log", "3-4");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_log_append_then_read_back_range),
		T(test_log_scan_stops_with_the_visitors_value),
		T(test_log_last_of_empty_log_is_zero_zero),
		T(test_log_truncate_drops_uncommitted_suffix),
		T(test_log_append_overwrites_conflicting_suffix),
		T(test_log_append_with_gap_is_refused),
		T(test_log_append_to_empty_log_must_start_at_one),
		T(test_log_entry_with_empty_and_large_data_round_trips),
		T(test_log_rewrite_replaces_body_and_keeps_term),
		T(test_aborted_write_leaves_no_trace),
		T(test_reader_sees_snapshot_while_writer_appends),
		T(test_hard_state_and_applied_round_trip),
		T(test_identity_absent_on_fresh_dir_then_present),
		T(test_reopen_after_close_keeps_log_hard_state_applied_identity),
		T(test_meta_put_get_and_names_checked),
		T(test_entry_index_round_trip),
		T(test_request_index_round_trip),
		T(test_patient_scan_is_ordered_and_honours_from_index_capacity_and_more),
		T(test_map_full_returns_emapfull_and_store_stays_usable),
		T(test_stats_report_map_size_used_bytes_and_log_entries),
		T(test_second_open_of_same_dir_is_refused),
		T(test_open_creates_private_dir_and_refuses_missing_parent),
		T(test_other_format_version_is_refused_at_open),
		T(test_corrupt_log_value_is_reported_not_served),
		T(test_corrupt_last_log_entry_fails_last_but_can_be_overwritten),
		T(test_corrupt_index_value_is_reported_not_served),
		T(test_corrupt_meta_value_is_reported_not_served),
		T(test_short_value_is_reported_corrupt_not_a_crash),
		T(test_value_moved_to_another_key_is_detected),
		T(test_missing_log_entry_is_reported_as_a_hole),
#undef T
	};
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
