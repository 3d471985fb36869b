/* Unit tests for storage/: the policy db, the audit queue environment and offline compaction. */
#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "storage/storage.h"
#include "storage/storage_audit.h"

#include "raw_lmdb.h"

#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

enum {
	TEST_PATH_BYTES = 256,
	TEST_MAP_SIZE_BYTES = 64u << 20,
	TEST_KEYS_MAX = 32,
	TEST_KEY_BYTES_MAX = 64,
	TEST_REPORTS_MAX = 8,
	TEST_TEXT_BYTES = 128,
};

struct fixture {
	char root[TEST_PATH_BYTES];           /* mkdtemp dir, removed at teardown */
	char dir[TEST_PATH_BYTES + 16];       /* root/data: the main store */
	char audit_dir[TEST_PATH_BYTES + 16]; /* root/audit: the audit queue */
	struct storage *s;
	struct storage_audit *a;
};

/* --- fixture --- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct storage *open_store(const char *dir)
{
	struct storage_options options = {.dir = dir, .map_size_bytes = TEST_MAP_SIZE_BYTES};
	struct storage *s = NULL;
	assert_int_equal(storage_open(&options, &s), CARELOG_OK);
	assert_non_null(s);
	return s;
}

static struct storage_audit *open_audit(const char *dir)
{
	struct storage_audit_options options = {.dir = dir, .map_size_bytes = TEST_MAP_SIZE_BYTES};
	struct storage_audit *a = NULL;
	assert_int_equal(storage_audit_open(&options, &a), CARELOG_OK);
	assert_non_null(a);
	return a;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/carelog-storage-pa-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/data", f->root);
	snprintf(f->audit_dir, sizeof(f->audit_dir), "%s/audit", f->root);
	f->s = open_store(f->dir);
	f->a = open_audit(f->audit_dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_audit_close(f->a);
	storage_close(f->s);
	nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
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

static void close_store(struct fixture *f)
{
	storage_close(f->s);
	f->s = NULL;
}

/* --- helpers: policy rows --- */

struct key_bytes {
	const char *bytes;
	size_t len;
};

/* A key given as a C string literal with embedded bytes: K("ab\xff") */
#define K(lit) ((struct key_bytes){.bytes = (lit), .len = sizeof(lit) - 1})

static void put_row(struct storage_txn *t, struct key_bytes key, const char *value)
{
	assert_int_equal(storage_policy_put(t, (const uint8_t *)key.bytes, key.len,
					    (const uint8_t *)value, strlen(value)),
			 CARELOG_OK);
}

static void assert_row(struct storage_txn *t, struct key_bytes key, const char *value)
{
	const uint8_t *got = NULL;
	size_t len = 0;
	assert_int_equal(storage_policy_get(t, (const uint8_t *)key.bytes, key.len, &got, &len),
			 CARELOG_OK);
	assert_int_equal(len, strlen(value));
	assert_memory_equal(got, value, len);
}

/* The value of each row in these tests is "v:" followed by its key as hex. */
static void value_for(struct key_bytes key, char *out, size_t size)
{
	assert_true(size >= 2 + 2 * key.len + 1);
	memcpy(out, "v:", 2);
	cl_hex_encode(out + 2, (const uint8_t *)key.bytes, key.len);
}

static void put_rows(struct storage *s, const struct key_bytes *keys, size_t count)
{
	struct storage_txn *t = begin_write(s);
	for (size_t i = 0; i < count; i++) {
		char value[TEST_TEXT_BYTES];
		value_for(keys[i], value, sizeof(value));
		put_row(t, keys[i], value);
	}
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
}

struct visited {
	size_t count;
	uint8_t keys[TEST_KEYS_MAX][TEST_KEY_BYTES_MAX];
	size_t lens[TEST_KEYS_MAX];
	size_t stop_after; /* 0: never stop */
};

static int collect_row(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
		       size_t value_len)
{
	struct visited *v = arg;
	assert_true(v->count < TEST_KEYS_MAX);
	assert_true(key_len <= TEST_KEY_BYTES_MAX);
	char expected[TEST_TEXT_BYTES];
	value_for((struct key_bytes){.bytes = (const char *)key, .len = key_len}, expected,
		  sizeof(expected));
	assert_int_equal(value_len, strlen(expected));
	assert_memory_equal(value, expected, value_len);
	memcpy(v->keys[v->count], key, key_len);
	v->lens[v->count] = key_len;
	v->count++;
	return v->stop_after != 0 && v->count == v->stop_after ? 77 : 0;
}

static int scan(struct storage *s, struct key_bytes prefix, bool reverse, size_t limit,
		struct visited *out)
{
	struct storage_txn *t = begin_read(s);
	int rc = storage_policy_scan(t, (const uint8_t *)prefix.bytes, prefix.len, reverse, limit,
				     collect_row, out);
	storage_txn_abort(t);
	return rc;
}

static void assert_visited(const struct visited *v, const struct key_bytes *want, size_t count)
{
	assert_int_equal(v->count, count);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(v->lens[i], want[i].len);
		assert_memory_equal(v->keys[i], want[i].bytes, want[i].len);
	}
}

/* --- helpers: storage_verify and stderr --- */

struct reports {
	size_t count;
	char db[TEST_REPORTS_MAX][TEST_TEXT_BYTES];
	char key[TEST_REPORTS_MAX][TEST_TEXT_BYTES];
};

static void collect_report(void *arg, const char *db, const char *key)
{
	struct reports *r = arg;
	assert_true(r->count < TEST_REPORTS_MAX);
	snprintf(r->db[r->count], TEST_TEXT_BYTES, "%s", db);
	snprintf(r->key[r->count], TEST_TEXT_BYTES, "%s", key);
	r->count++;
}

static void assert_verify_clean(struct storage *s, uint64_t checked_expected)
{
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 99;
	assert_int_equal(storage_verify(s, collect_report, &r, &checked, &corrupt), CARELOG_OK);
	assert_int_equal(corrupt, 0);
	assert_int_equal(checked, checked_expected);
}

/* stderr (where cl_log writes) redirected to a temporary file. */
struct capture {
	int saved_fd;
	int fd;
};

static void capture_begin(struct capture *c)
{
	char path[] = "/tmp/carelog-storage-log-XXXXXX";
	fflush(stderr);
	c->fd = mkstemp(path);
	assert_true(c->fd >= 0);
	assert_int_equal(unlink(path), 0);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	assert_true(dup2(c->fd, STDERR_FILENO) >= 0);
}

/* Restores stderr; returns what was written (NUL-terminated, caller frees). */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
	close(c->saved_fd);
	off_t size = lseek(c->fd, 0, SEEK_END);
	assert_true(size >= 0);
	char *text = calloc(1, (size_t)size + 1);
	assert_non_null(text);
	assert_int_equal(pread(c->fd, text, (size_t)size, 0), (ssize_t)size);
	close(c->fd);
	return text;
}

/* --- policy db --- */

static void test_policy_put_get_overwrite_delete_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct storage_txn *t = begin_write(f->s);
	put_row(t, K("r\x01pat"), "first");
	assert_row(t, K("r\x01pat"), "first");
	put_row(t, K("r\x01pat"), "second, longer");
	assert_row(t, K("r\x01pat"), "second, longer");
	put_row(t, K("e"), ""); /* an empty value is a value */
	assert_row(t, K("e"), "");
	put_row(t, K("gone"), "x");
	assert_int_equal(storage_policy_delete(t, (const uint8_t *)"gone", 4), CARELOG_OK);
	assert_int_equal(storage_policy_delete(t, (const uint8_t *)"gone", 4), CARELOG_ENOTFOUND);
	const uint8_t *value = (const uint8_t *)"untouched";
	size_t len = 9;
	assert_int_equal(storage_policy_get(t, (const uint8_t *)"gone", 4, &value, &len),
			 CARELOG_ENOTFOUND);
	assert_memory_equal(value, "untouched", 9);
	assert_int_equal(len, 9);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	storage_close(f->s);
	f->s = open_store(f->dir);
	t = begin_read(f->s);
	assert_row(t, K("r\x01pat"), "second, longer");
	assert_row(t, K("e"), "");
	storage_txn_abort(t);
	assert_verify_clean(f->s, 2);
}

static void test_policy_refuses_bad_keys_and_oversize_values(void **state)
{
	struct fixture *f = *state;
	uint8_t key[STORAGE_POLICY_KEY_BYTES_MAX + 1];
	memset(key, 'k', sizeof(key));
	size_t big_len = (size_t)STORAGE_POLICY_VALUE_BYTES_MAX + 1;
	uint8_t *big = calloc(1, big_len);
	assert_non_null(big);
	struct storage_txn *t = begin_write(f->s);
	const uint8_t *v;
	size_t len;
	struct visited seen = {0};
	assert_int_equal(storage_policy_put(t, key, 0, big, 1), CARELOG_EINVAL);
	assert_int_equal(storage_policy_put(t, NULL, 0, big, 1), CARELOG_EINVAL);
	assert_int_equal(storage_policy_put(t, key, sizeof(key), big, 1), CARELOG_EINVAL);
	assert_int_equal(storage_policy_put(t, key, 3, big, big_len), CARELOG_EINVAL);
	assert_int_equal(storage_policy_get(t, key, 0, &v, &len), CARELOG_EINVAL);
	assert_int_equal(storage_policy_get(t, key, sizeof(key), &v, &len), CARELOG_EINVAL);
	assert_int_equal(storage_policy_delete(t, key, 0), CARELOG_EINVAL);
	assert_int_equal(storage_policy_scan(t, key, 0, false, 0, collect_row, &seen),
			 CARELOG_EINVAL);
	assert_int_equal(storage_policy_scan(t, key, sizeof(key), true, 0, collect_row, &seen),
			 CARELOG_EINVAL);
	/* The limits themselves are accepted, and the txn is still usable after refusals. */
	assert_int_equal(storage_policy_put(t, key, STORAGE_POLICY_KEY_BYTES_MAX, big, big_len - 1),
			 CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	t = begin_read(f->s);
	assert_int_equal(storage_policy_get(t, key, STORAGE_POLICY_KEY_BYTES_MAX, &v, &len),
			 CARELOG_OK);
	assert_int_equal(len, big_len - 1);
	storage_txn_abort(t);
	assert_verify_clean(f->s, 1);
	free(big);
}

/* Keys around the prefix "ab", in key order: "aa\xff" just below it, "ab" .. "ab\xff\xff" carry
 * it, "ac" is its successor, "\xff\xff" is the last key of the db. */
static const struct key_bytes boundary_keys[] = {
	{"a", 1},          {"aa\xff", 3}, {"ab", 2}, {"ab\x00", 3}, {"ab\x01x", 4},  {"ab\xff", 3},
	{"ab\xff\xff", 4}, {"ac", 2},     {"b", 1},  {"\xff", 1},   {"\xff\x01", 2}, {"\xff\xff", 2},
};

static void test_policy_scan_prefix_boundaries_forward_and_reverse(void **state)
{
	struct fixture *f = *state;
	put_rows(f->s, boundary_keys, CL_ARRAY_LEN(boundary_keys));

	const struct key_bytes ab[] = {K("ab"), K("ab\x00"), K("ab\x01x"), K("ab\xff"),
				       K("ab\xff\xff")};
	struct visited v = {0};
	assert_int_equal(scan(f->s, K("ab"), false, 0, &v), CARELOG_OK);
	assert_visited(&v, ab, 5);
	const struct key_bytes ab_reverse[] = {K("ab\xff\xff"), K("ab\xff"), K("ab\x01x"),
					       K("ab\x00"), K("ab")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("ab"), true, 0, &v), CARELOG_OK);
	assert_visited(&v, ab_reverse, 5);

	/* A prefix ending in 0xff: its successor is "ac". */
	const struct key_bytes abff_reverse[] = {K("ab\xff\xff"), K("ab\xff")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("ab\xff"), true, 0, &v), CARELOG_OK);
	assert_visited(&v, abff_reverse, 2);

	/* The whole key as prefix: itself and what extends it. */
	const struct key_bytes a_only[] = {K("a")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("a"), false, 1, &v), CARELOG_OK);
	assert_visited(&v, a_only, 1);
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("a"), true, 0, &v), CARELOG_OK);
	assert_int_equal(v.count, 8); /* "a" .. "ac" */
	assert_int_equal(v.lens[0], 2);
	assert_memory_equal(v.keys[0], "ac", 2);

	/* Nothing under a prefix between stored keys, in either direction. */
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("aa\x00"), false, 0, &v), CARELOG_OK);
	assert_int_equal(scan(f->s, K("aa\x00"), true, 0, &v), CARELOG_OK);
	assert_int_equal(scan(f->s, K("bb"), true, 0, &v), CARELOG_OK);
	assert_int_equal(v.count, 0);
}

static void test_policy_scan_all_ff_prefix_and_prefix_at_the_end(void **state)
{
	struct fixture *f = *state;
	put_rows(f->s, boundary_keys, CL_ARRAY_LEN(boundary_keys));
	/* "\xff" has no successor: the reverse scan starts from the last key of the db. */
	const struct key_bytes ff_reverse[] = {K("\xff\xff"), K("\xff\x01"), K("\xff")};
	struct visited v = {0};
	assert_int_equal(scan(f->s, K("\xff"), true, 0, &v), CARELOG_OK);
	assert_visited(&v, ff_reverse, 3);
	const struct key_bytes ffff[] = {K("\xff\xff")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("\xff\xff"), true, 0, &v), CARELOG_OK);
	assert_visited(&v, ffff, 1);
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("\xff\xff"), false, 0, &v), CARELOG_OK);
	assert_visited(&v, ffff, 1);
	/* "b": its successor "c" lies beyond every key (the reverse scan starts at the end and
	 * walks back over the 0xff keys, which do not carry the prefix). */
	const struct key_bytes b_only[] = {K("b")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("b"), true, 0, &v), CARELOG_OK);
	assert_visited(&v, b_only, 1);
	/* An empty db. */
	struct storage_txn *t = begin_write(f->s);
	for (size_t i = 0; i < CL_ARRAY_LEN(boundary_keys); i++) {
		assert_int_equal(storage_policy_delete(t, (const uint8_t *)boundary_keys[i].bytes,
						       boundary_keys[i].len),
				 CARELOG_OK);
	}
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("\xff"), true, 0, &v), CARELOG_OK);
	assert_int_equal(scan(f->s, K("a"), true, 0, &v), CARELOG_OK);
	assert_int_equal(scan(f->s, K("a"), false, 0, &v), CARELOG_OK);
	assert_int_equal(v.count, 0);
}

static void test_policy_scan_honours_limit_and_early_stop(void **state)
{
	struct fixture *f = *state;
	put_rows(f->s, boundary_keys, CL_ARRAY_LEN(boundary_keys));
	const struct key_bytes first_two[] = {K("ab"), K("ab\x00")};
	struct visited v = {0};
	assert_int_equal(scan(f->s, K("ab"), false, 2, &v), CARELOG_OK);
	assert_visited(&v, first_two, 2);
	const struct key_bytes last_two[] = {K("ab\xff\xff"), K("ab\xff")};
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("ab"), true, 2, &v), CARELOG_OK);
	assert_visited(&v, last_two, 2);
	v = (struct visited){0};
	assert_int_equal(scan(f->s, K("ab"), false, 99, &v), CARELOG_OK);
	assert_int_equal(v.count, 5);
	/* The visitor's non-zero value stops the scan and is returned. */
	v = (struct visited){.stop_after = 3};
	assert_int_equal(scan(f->s, K("ab"), true, 0, &v), 77);
	assert_int_equal(v.count, 3);
	assert_memory_equal(v.keys[2], "ab\x01x", 4);
}

static void test_policy_corrupt_value_is_reported_by_tag_never_by_key(void **state)
{
	struct fixture *f = *state;
	const struct key_bytes keys[] = {K("pPATIENT-0a"), K("pPATIENT-SECRET-42"), K("pPATIENT-zz")};
	put_rows(f->s, keys, CL_ARRAY_LEN(keys));
	close_store(f);
	raw_flip(f->dir, "policy", keys[1].bytes, keys[1].len, 6); /* inside the value */
	f->s = open_store(f->dir);

	struct capture c;
	capture_begin(&c);
	struct storage_txn *t = begin_read(f->s);
	const uint8_t *value = NULL;
	size_t len = 0;
	int get_rc = storage_policy_get(t, (const uint8_t *)keys[1].bytes, keys[1].len, &value,
					&len);
	struct visited forward = {0}, reverse = {0};
	int forward_rc = storage_policy_scan(t, (const uint8_t *)"p", 1, false, 0, collect_row,
					     &forward);
	int reverse_rc = storage_policy_scan(t, (const uint8_t *)"p", 1, true, 0, collect_row,
					     &reverse);
	storage_txn_abort(t);
	struct reports r = {0};
	uint64_t checked = 0, corrupt = 0;
	int verify_rc = storage_verify(f->s, collect_report, &r, &checked, &corrupt);
	char *log = capture_end(&c);

	assert_int_equal(get_rc, CARELOG_ECORRUPT);
	assert_null(value); /* nothing served */
	/* Scans stop at the damage: the rows before it (in scan order) were visited. */
	assert_int_equal(forward_rc, CARELOG_ECORRUPT);
	assert_visited(&forward, keys, 1);
	assert_int_equal(reverse_rc, CARELOG_ECORRUPT);
	assert_visited(&reverse, &keys[2], 1);
	assert_int_equal(verify_rc, CARELOG_OK);
	assert_int_equal(checked, 3);
	assert_int_equal(corrupt, 1);
	assert_string_equal(r.db[0], "policy");
	assert_string_equal(r.key[0], "tag-70"); /* 'p' */
	/* The log names the db and the tag; no key bytes, in text or in hex. */
	assert_non_null(strstr(log, "db=policy key=tag-70 reason=checksum"));
	assert_null(strstr(log, "SECRET"));
	char hex[2 * sizeof("PATIENT") + 1];
	cl_hex_encode(hex, (const uint8_t *)"PATIENT", 7);
	assert_null(strstr(log, hex));
	free(log);
}

/* --- audit queue --- */

static void assert_audit_stats(struct storage_audit *a, uint64_t next_seq, uint64_t shipped_seq,
			       uint64_t queued_rows, uint64_t syncs)
{
	struct storage_audit_stats st;
	memset(&st, 0xee, sizeof(st));
	assert_int_equal(storage_audit_stats_get(a, &st), CARELOG_OK);
	assert_int_equal(st.next_seq, next_seq);
	assert_int_equal(st.shipped_seq, shipped_seq);
	assert_int_equal(st.queued_rows, queued_rows);
	assert_int_equal(st.syncs, syncs);
}

enum { AUDIT_BATCH_MAX = 16, AUDIT_ROW_TEXT_BYTES = 32 };

/* The row with sequence `seq` reads "row-<seq>". */
static size_t audit_row_text(uint64_t seq, char *out, size_t size)
{
	int n = snprintf(out, size, "row-%llu", (unsigned long long)seq);
	CL_ASSERT(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* Appends `count` rows numbered from `expected_first` in one call. */
static void audit_append(struct storage_audit *a, uint64_t expected_first, size_t count)
{
	assert_true(count <= AUDIT_BATCH_MAX);
	char text[AUDIT_BATCH_MAX][AUDIT_ROW_TEXT_BYTES];
	const uint8_t *rows[AUDIT_BATCH_MAX];
	size_t lens[AUDIT_BATCH_MAX];
	for (size_t i = 0; i < count; i++) {
		lens[i] = audit_row_text(expected_first + i, text[i], sizeof(text[i]));
		rows[i] = (const uint8_t *)text[i];
	}
	uint64_t first = 0;
	assert_int_equal(storage_audit_append(a, rows, lens, count, &first), CARELOG_OK);
	assert_int_equal(first, expected_first);
}

struct audit_seen {
	uint64_t seqs[64];
	size_t count;
	size_t stop_after; /* 0: never */
	bool rows_ok;      /* every row read "row-<seq>" */
};

static int collect_audit_row(void *arg, uint64_t seq, const uint8_t *row, size_t len)
{
	struct audit_seen *s = arg;
	if (s->count >= CL_ARRAY_LEN(s->seqs)) {
		return -1000;
	}
	char want[AUDIT_ROW_TEXT_BYTES];
	size_t want_len = audit_row_text(seq, want, sizeof(want));
	if (s->count == 0) {
		s->rows_ok = true;
	}
	s->rows_ok = s->rows_ok && len == want_len && memcmp(row, want, len) == 0;
	s->seqs[s->count++] = seq;
	return s->stop_after != 0 && s->count == s->stop_after ? 55 : 0;
}

static void assert_audit_seqs(const struct audit_seen *s, uint64_t first, size_t count)
{
	assert_int_equal(s->count, count);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(s->seqs[i], first + i);
	}
	assert_true(count == 0 || s->rows_ok);
}

static void test_audit_fresh_queue_starts_at_one(void **state)
{
	struct fixture *f = *state;
	assert_audit_stats(f->a, 1, 0, 0, 0);
	struct audit_seen s = {0};
	assert_int_equal(storage_audit_scan(f->a, 0, 0, collect_audit_row, &s), CARELOG_OK);
	assert_int_equal(s.count, 0);
	struct stat st;
	assert_int_equal(stat(f->audit_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_audit_append_numbers_rows_with_one_sync_per_call(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 3);
	assert_audit_stats(f->a, 4, 0, 3, 1);
	audit_append(f->a, 4, 1);
	audit_append(f->a, 5, AUDIT_BATCH_MAX);
	assert_audit_stats(f->a, 5 + AUDIT_BATCH_MAX, 0, 4 + AUDIT_BATCH_MAX, 3);
	struct audit_seen s = {0};
	assert_int_equal(storage_audit_scan(f->a, 1, 0, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 1, 4 + AUDIT_BATCH_MAX);
}

static void test_audit_scan_honours_from_seq_rows_max_and_stop(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 10);
	struct audit_seen s = {0};
	assert_int_equal(storage_audit_scan(f->a, 3, 4, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 3, 4);
	s = (struct audit_seen){0};
	assert_int_equal(storage_audit_scan(f->a, 8, 100, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 8, 3);
	s = (struct audit_seen){0};
	assert_int_equal(storage_audit_scan(f->a, 11, 0, collect_audit_row, &s), CARELOG_OK);
	assert_int_equal(s.count, 0);
	s = (struct audit_seen){.stop_after = 2};
	assert_int_equal(storage_audit_scan(f->a, 5, 0, collect_audit_row, &s), 55);
	assert_audit_seqs(&s, 5, 2);
}

static void test_audit_refuses_bad_rows_before_writing_anything(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 1);
	uint8_t big[STORAGE_AUDIT_ROW_BYTES_MAX + 1];
	memset(big, 'x', sizeof(big));
	const uint8_t *rows[3] = {(const uint8_t *)"ok", big, (const uint8_t *)"ok"};
	size_t lens[3] = {2, sizeof(big), 2};
	uint64_t first = 99;
	assert_int_equal(storage_audit_append(f->a, rows, lens, 3, &first), CARELOG_EINVAL);
	lens[1] = 0;
	assert_int_equal(storage_audit_append(f->a, rows, lens, 3, &first), CARELOG_EINVAL);
	assert_int_equal(storage_audit_append(f->a, rows, lens, 0, &first), CARELOG_EINVAL);
	assert_int_equal(first, 99);
	assert_audit_stats(f->a, 2, 0, 1, 1);
	/* The largest row fits. */
	lens[1] = STORAGE_AUDIT_ROW_BYTES_MAX;
	assert_int_equal(storage_audit_append(f->a, rows, lens, 3, &first), CARELOG_OK);
	assert_int_equal(first, 2);
	assert_audit_stats(f->a, 5, 0, 4, 2);
}

static void test_audit_mark_shipped_drops_rows_and_records_the_sequence(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 5);
	assert_int_equal(storage_audit_mark_shipped(f->a, 3), CARELOG_OK);
	assert_audit_stats(f->a, 6, 3, 2, 2);
	struct audit_seen s = {0};
	assert_int_equal(storage_audit_scan(f->a, 1, 0, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 4, 2);
	/* Not above the recorded one: ignored, no transaction, no sync. */
	assert_int_equal(storage_audit_mark_shipped(f->a, 2), CARELOG_OK);
	assert_int_equal(storage_audit_mark_shipped(f->a, 3), CARELOG_OK);
	assert_int_equal(storage_audit_mark_shipped(f->a, 0), CARELOG_OK);
	assert_audit_stats(f->a, 6, 3, 2, 2);
	/* Rows never appended cannot have been shipped. */
	assert_int_equal(storage_audit_mark_shipped(f->a, 6), CARELOG_EINVAL);
	assert_audit_stats(f->a, 6, 3, 2, 2);
	assert_int_equal(storage_audit_mark_shipped(f->a, 5), CARELOG_OK);
	assert_audit_stats(f->a, 6, 5, 0, 3);
	audit_append(f->a, 6, 1); /* numbering goes on */
}

static void test_audit_reopen_keeps_sequences_even_when_the_queue_is_empty(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 4);
	assert_int_equal(storage_audit_mark_shipped(f->a, 2), CARELOG_OK);
	storage_audit_close(f->a);
	f->a = open_audit(f->audit_dir);
	assert_audit_stats(f->a, 5, 2, 2, 0); /* syncs count since this open */
	struct audit_seen s = {0};
	assert_int_equal(storage_audit_scan(f->a, 0, 0, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 3, 2);
	audit_append(f->a, 5, 2);
	assert_int_equal(storage_audit_mark_shipped(f->a, 6), CARELOG_OK);
	assert_audit_stats(f->a, 7, 6, 0, 2);

	storage_audit_close(f->a);
	f->a = open_audit(f->audit_dir);
	assert_audit_stats(f->a, 7, 6, 0, 0);
	audit_append(f->a, 7, 1); /* a sequence is never reused */
}

/* An empty queue behind the log (its dir lost) continues above a given sequence; a queue holding
 * rows is never renumbered. */
static void test_audit_skip_to_continues_an_empty_queue_only(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(storage_audit_skip_to(f->a, 1001), CARELOG_OK);
	assert_audit_stats(f->a, 1001, 1000, 0, 1);
	assert_int_equal(storage_audit_skip_to(f->a, 500), CARELOG_OK); /* not above: no-op */
	assert_audit_stats(f->a, 1001, 1000, 0, 1);
	audit_append(f->a, 1001, 2);
	assert_int_equal(storage_audit_skip_to(f->a, 5000), CARELOG_EINVAL); /* rows queued */
	assert_audit_stats(f->a, 1003, 1000, 2, 2);
	storage_audit_close(f->a);
	f->a = open_audit(f->audit_dir);
	assert_audit_stats(f->a, 1003, 1000, 2, 0);
}

static void test_audit_corrupt_row_is_reported_not_served(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 4);
	storage_audit_close(f->a);
	f->a = NULL;
	uint8_t key[8];
	cl_put_u64be(key, 3);
	raw_flip(f->audit_dir, "rows", key, sizeof(key), 5);
	f->a = open_audit(f->audit_dir);
	struct capture c;
	capture_begin(&c);
	struct audit_seen s = {0};
	int rc = storage_audit_scan(f->a, 1, 0, collect_audit_row, &s);
	char *log = capture_end(&c);
	assert_int_equal(rc, CARELOG_ECORRUPT);
	assert_audit_seqs(&s, 1, 2); /* the rows before the damage */
	assert_non_null(strstr(log, "db=audit_rows key=3 reason=checksum"));
	free(log);
	s = (struct audit_seen){0};
	assert_int_equal(storage_audit_scan(f->a, 4, 0, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 4, 1);
	/* Shipping past the damaged row removes it. */
	assert_int_equal(storage_audit_mark_shipped(f->a, 3), CARELOG_OK);
	s = (struct audit_seen){0};
	assert_int_equal(storage_audit_scan(f->a, 1, 0, collect_audit_row, &s), CARELOG_OK);
	assert_audit_seqs(&s, 4, 1);
}

static void test_audit_corrupt_counter_refuses_open(void **state)
{
	struct fixture *f = *state;
	audit_append(f->a, 1, 2);
	storage_audit_close(f->a);
	f->a = NULL;
	raw_flip(f->audit_dir, "meta", "next_seq", 8, 11);
	struct storage_audit_options options = {.dir = f->audit_dir};
	struct storage_audit *a = (struct storage_audit *)0x1;
	assert_int_equal(storage_audit_open(&options, &a), CARELOG_ECORRUPT);
	assert_ptr_equal(a, (struct storage_audit *)0x1);
}

static void test_audit_second_open_of_same_dir_is_refused(void **state)
{
	struct fixture *f = *state;
	struct storage_audit_options options = {.dir = f->audit_dir};
	struct storage_audit *second = (struct storage_audit *)0x1;
	assert_int_equal(storage_audit_open(&options, &second), CARELOG_EBUSY);
	assert_ptr_equal(second, (struct storage_audit *)0x1);
	audit_append(f->a, 1, 1); /* the first handle is unharmed */
}

enum { AUDIT_THREAD_BATCHES = 40, AUDIT_THREAD_BATCH_ROWS = 5 };

struct audit_reader {
	struct storage_audit *a;
	atomic_bool stop;
	atomic_uint failures;
	atomic_uint scans;
};

static int check_contiguous(void *arg, uint64_t seq, const uint8_t *row, size_t len)
{
	uint64_t *expected = arg;
	char want[AUDIT_ROW_TEXT_BYTES];
	size_t want_len = audit_row_text(seq, want, sizeof(want));
	if (seq != *expected || len != want_len || memcmp(row, want, len) != 0) {
		return 1;
	}
	(*expected)++;
	return 0;
}

/* Scans from another thread while the writer appends: every snapshot is a contiguous run
 * from 1 (no cmocka asserts off the main thread). */
static void *audit_reader_main(void *arg)
{
	struct audit_reader *r = arg;
	do {
		uint64_t expected = 1;
		if (storage_audit_scan(r->a, 1, 0, check_contiguous, &expected) != CARELOG_OK) {
			atomic_fetch_add(&r->failures, 1);
		}
		atomic_fetch_add(&r->scans, 1);
	} while (!atomic_load(&r->stop));
	return NULL;
}

static void test_audit_reader_thread_scans_while_writer_appends(void **state)
{
	struct fixture *f = *state;
	struct audit_reader r = {.a = f->a};
	atomic_init(&r.stop, false);
	atomic_init(&r.failures, 0);
	atomic_init(&r.scans, 0);
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, audit_reader_main, &r), 0);
	for (uint64_t b = 0; b < AUDIT_THREAD_BATCHES; b++) {
		audit_append(f->a, 1 + b * AUDIT_THREAD_BATCH_ROWS, AUDIT_THREAD_BATCH_ROWS);
	}
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(atomic_load(&r.failures), 0);
	assert_true(atomic_load(&r.scans) >= 1);
	assert_audit_stats(f->a, 1 + AUDIT_THREAD_BATCHES * AUDIT_THREAD_BATCH_ROWS, 0,
			   AUDIT_THREAD_BATCHES * AUDIT_THREAD_BATCH_ROWS, AUDIT_THREAD_BATCHES);
}

/* --- compaction --- */

enum { ERASED_BODY_BYTES = 64 * 1024 };

/* 16 bytes that appear nowhere but in the body to be erased. */
static const char erased_marker[] = "ERASE-ME-c0ffee!";

static void append_entry(struct storage *s, uint64_t index, const void *data, size_t len)
{
	struct storage_entry e = {.index = index,
				  .term = 1,
				  .type = 1,
				  .data_len = (uint32_t)len,
				  .data = data};
	struct storage_txn *t = begin_write(s);
	assert_int_equal(storage_log_append(t, &e, 1), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
}

static void assert_entry_data(struct storage_txn *t, uint64_t index, const void *data, size_t len)
{
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, index, &e), CARELOG_OK);
	assert_int_equal(e.data_len, len);
	assert_memory_equal(e.data, data, len);
}

/* Log 1..3 with a large body at 2 that is then erased (rewritten), and one policy row. */
static void store_with_erased_body(struct fixture *f)
{
	const size_t marker_len = sizeof(erased_marker) - 1;
	uint8_t *body = malloc(ERASED_BODY_BYTES);
	assert_non_null(body);
	for (size_t i = 0; i < ERASED_BODY_BYTES; i += marker_len) {
		memcpy(body + i, erased_marker, marker_len);
	}
	append_entry(f->s, 1, "kept-1", 6);
	append_entry(f->s, 2, body, ERASED_BODY_BYTES);
	append_entry(f->s, 3, "kept-3", 6);
	free(body);
	struct storage_txn *t = begin_write(f->s);
	put_row(t, K("x-row"), "policy value");
	struct storage_entry stripped = {
		.index = 2, .term = 1, .type = 1, .data_len = 6, .data = (const uint8_t *)"erased"};
	assert_int_equal(storage_log_rewrite(t, &stripped), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
}

static void test_compact_removes_erased_bytes_and_keeps_the_data(void **state)
{
	struct fixture *f = *state;
	store_with_erased_body(f);
	close_store(f);
	/* The precondition that makes compaction necessary: LMDB left the bytes in freed pages. */
	const size_t marker_len = sizeof(erased_marker) - 1;
	assert_true(file_count_marker(f->dir, erased_marker, marker_len) >= 1);

	uint64_t before = 0, after = 0;
	assert_int_equal(storage_compact_dir(f->dir, &before, &after), CARELOG_OK);
	assert_int_equal(file_count_marker(f->dir, erased_marker, marker_len), 0);
	assert_true(before >= ERASED_BODY_BYTES);
	assert_true(after < before);
	struct stat st;
	char path[TEST_PATH_BYTES + 64];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, after);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/data.mdb.compact", f->dir);
	assert_int_not_equal(stat(path, &st), 0);

	f->s = open_store(f->dir);
	struct storage_txn *t = begin_read(f->s);
	assert_entry_data(t, 1, "kept-1", 6);
	assert_entry_data(t, 2, "erased", 6);
	assert_entry_data(t, 3, "kept-3", 6);
	assert_row(t, K("x-row"), "policy value");
	storage_txn_abort(t);
	assert_verify_clean(f->s, 4);
	append_entry(f->s, 4, "after", 5); /* and it takes writes */

	/* Both sizes are optional. */
	close_store(f);
	assert_int_equal(storage_compact_dir(f->dir, NULL, NULL), CARELOG_OK);
	f->s = open_store(f->dir);
	t = begin_read(f->s);
	assert_entry_data(t, 4, "after", 5);
	storage_txn_abort(t);
}

static void test_compact_is_refused_while_the_store_is_open(void **state)
{
	struct fixture *f = *state;
	store_with_erased_body(f);
	uint64_t before = 7, after = 7;
	assert_int_equal(storage_compact_dir(f->dir, &before, &after), CARELOG_EBUSY);
	assert_int_equal(before, 7);
	assert_int_equal(after, 7);
	/* Untouched: the erased bytes are still in the file and the store still works. */
	assert_true(file_count_marker(f->dir, erased_marker, sizeof(erased_marker) - 1) >= 1);
	append_entry(f->s, 4, "after", 5);
	/* The audit queue, an environment of the same kind, likewise. */
	assert_int_equal(storage_compact_dir(f->audit_dir, NULL, NULL), CARELOG_EBUSY);
	audit_append(f->a, 1, 1);
}

/* A process that holds the environment open through raw LMDB (no storage.lock) until told. */
static void hold_env_in_child(const char *dir, int ready_fd, int release_fd)
{
	MDB_env *env;
	int ok = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 8) == 0 &&
		 mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0;
	char c = ok ? 'y' : 'n';
	ssize_t n = write(ready_fd, &c, 1);
	ssize_t m = read(release_fd, &c, 1); /* returns when the parent writes or exits */
	(void)m;
	if (ok) {
		mdb_env_close(env);
	}
	_exit(n == 1 ? 0 : 1);
}

static void test_compact_is_refused_while_another_process_has_the_env_open(void **state)
{
	struct fixture *f = *state;
	store_with_erased_body(f);
	close_store(f);
	int ready[2], release[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(release), 0);
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(ready[0]);
		close(release[1]);
		hold_env_in_child(f->dir, ready[1], release[0]);
	}
	close(ready[1]);
	close(release[0]);
	char c = 0;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	int rc = storage_compact_dir(f->dir, NULL, NULL); /* LMDB's lock is held elsewhere */
	assert_int_equal(write(release[1], "x", 1), 1);
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	close(ready[0]);
	close(release[1]);
	assert_int_equal(rc, CARELOG_EBUSY);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Once it is gone, compaction runs. */
	assert_int_equal(storage_compact_dir(f->dir, NULL, NULL), CARELOG_OK);
	assert_int_equal(file_count_marker(f->dir, erased_marker, sizeof(erased_marker) - 1), 0);
	f->s = open_store(f->dir);
}

static void test_compact_removes_a_stale_compact_file_from_a_crash(void **state)
{
	struct fixture *f = *state;
	store_with_erased_body(f);
	close_store(f);
	char path[TEST_PATH_BYTES + 64];
	snprintf(path, sizeof(path), "%s/data.mdb.compact", f->dir);
	FILE *stale = fopen(path, "w");
	assert_non_null(stale);
	fputs("half a copy", stale);
	fclose(stale);
	assert_int_equal(storage_compact_dir(f->dir, NULL, NULL), CARELOG_OK);
	struct stat st;
	assert_int_not_equal(stat(path, &st), 0);
	f->s = open_store(f->dir);
	struct storage_txn *t = begin_read(f->s);
	assert_entry_data(t, 3, "kept-3", 6);
	storage_txn_abort(t);
}

static void test_compact_of_a_dir_without_a_store_is_enotfound(void **state)
{
	struct fixture *f = *state;
	char missing[TEST_PATH_BYTES + 16];
	snprintf(missing, sizeof(missing), "%s/nothing", f->root);
	assert_int_equal(storage_compact_dir(missing, NULL, NULL), CARELOG_ENOTFOUND);
	assert_int_equal(mkdir(missing, 0700), 0);
	assert_int_equal(storage_compact_dir(missing, NULL, NULL), CARELOG_ENOTFOUND);
	assert_int_equal(storage_compact_dir("", NULL, NULL), CARELOG_EINVAL);
}

/* docs/operations.md "When the audit disk is full": the shipper keeps emptying a full queue.
 * Shipping deletes rows, and in LMDB a delete needs free pages too: it must still succeed. */
static void test_audit_full_queue_can_still_be_marked_shipped(void **state)
{
	struct fixture *f = *state;
	storage_audit_close(f->a);
	char dir[TEST_PATH_BYTES + 32];
	snprintf(dir, sizeof(dir), "%s/audit-small", f->root);
	struct storage_audit_options options = {.dir = dir, .map_size_bytes = 256u << 10};
	f->a = NULL;
	assert_int_equal(storage_audit_open(&options, &f->a), CARELOG_OK);
	static uint8_t big[STORAGE_AUDIT_ROW_BYTES_MAX];
	memset(big, 'r', sizeof(big));
	const uint8_t *rows[1] = {big};
	size_t lens[1] = {sizeof(big) - 100};
	uint64_t first = 0;
	uint64_t appended = 0;
	/* Big rows until one no longer fits, then 1-byte rows into what is left. Bounded by the
	 * map: 256 KiB holds fewer than 1000 rows. */
	for (uint32_t pass = 0; pass < 2; pass++) {
		lens[0] = pass == 0 ? sizeof(big) - 100 : 1;
		int rc = CARELOG_OK;
		for (uint32_t i = 0; i < 1000 && rc == CARELOG_OK; i++) {
			rc = storage_audit_append(f->a, rows, lens, 1, &first);
			appended += rc == CARELOG_OK ? 1 : 0;
		}
		assert_int_equal(rc, CARELOG_EMAPFULL);
	}
	assert_true(appended > 1);
	print_message("%llu rows fill the map\n", (unsigned long long)appended);
	assert_int_equal(storage_audit_mark_shipped(f->a, 1), CARELOG_OK);
	assert_int_equal(storage_audit_mark_shipped(f->a, appended), CARELOG_OK);
	struct storage_audit_stats st;
	assert_int_equal(storage_audit_stats_get(f->a, &st), CARELOG_OK);
	assert_int_equal(st.queued_rows, 0);
	lens[0] = sizeof(big) - 100;
	assert_int_equal(storage_audit_append(f->a, rows, lens, 1, &first), CARELOG_OK);
	assert_int_equal(first, appended + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_policy_put_get_overwrite_delete_and_reopen),
		T(test_policy_refuses_bad_keys_and_oversize_values),
		T(test_policy_scan_prefix_boundaries_forward_and_reverse),
		T(test_policy_scan_all_ff_prefix_and_prefix_at_the_end),
		T(test_policy_scan_honours_limit_and_early_stop),
		T(test_policy_corrupt_value_is_reported_by_tag_never_by_key),
		T(test_audit_fresh_queue_starts_at_one),
		T(test_audit_append_numbers_rows_with_one_sync_per_call),
		T(test_audit_scan_honours_from_seq_rows_max_and_stop),
		T(test_audit_refuses_bad_rows_before_writing_anything),
		T(test_audit_mark_shipped_drops_rows_and_records_the_sequence),
		T(test_audit_reopen_keeps_sequences_even_when_the_queue_is_empty),
		T(test_audit_skip_to_continues_an_empty_queue_only),
		T(test_audit_corrupt_row_is_reported_not_served),
		T(test_audit_corrupt_counter_refuses_open),
		T(test_audit_second_open_of_same_dir_is_refused),
		T(test_audit_reader_thread_scans_while_writer_appends),
		T(test_audit_full_queue_can_still_be_marked_shipped),
		T(test_compact_removes_erased_bytes_and_keeps_the_data),
		T(test_compact_is_refused_while_the_store_is_open),
		T(test_compact_is_refused_while_another_process_has_the_env_open),
		T(test_compact_removes_a_stale_compact_file_from_a_crash),
		T(test_compact_of_a_dir_without_a_store_is_enotfound),
#undef T
	};
	return cmocka_run_group_tests_name("storage_policy_audit", tests, NULL, NULL);
}
