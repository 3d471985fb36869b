/* Unit tests for node/journal/membership.c: context codec, genesis file, genesis entry. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "consensus/consensus.h"
#include "node/journal/journal.h"
#include "node/journal/membership.h"

#include "mp_build.h"

#include <inttypes.h>
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
	TEST_FUZZ_ITERATIONS = 10000,
	TEST_ENTRY_BYTES_MAX = CONSENSUS_CONF_HEADER_BYTES_MAX + MEMBERSHIP_CONTEXT_BYTES_MAX,
	TEST_ERR_BYTES = 512,
};

/* A per-test scratch directory, removed with its files afterwards. */
struct test_dir {
	char path[256];
};

static int test_dir_setup(void **state)
{
	struct test_dir *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return -1;
	}
	const char *base = getenv("TMPDIR");
	(void)snprintf(d->path, sizeof(d->path), "%s/carelog-membership-XXXXXX",
		       base != NULL ? base : "/tmp");
	if (mkdtemp(d->path) == NULL) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int test_dir_teardown(void **state)
{
	struct test_dir *d = *state;
	char cmd[300];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	int rc = system(cmd);
	free(d);
	return rc == 0 ? 0 : -1;
}

static void test_path(const struct test_dir *d, const char *name, char *out, size_t out_len)
{
	(void)snprintf(out, out_len, "%s/%s", d->path, name);
}

static void test_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Three members: voters 1 and 2, learner 5; key of member i is bytes i, i+1, ... */
static void test_membership(struct membership *m)
{
	memset(m, 0, sizeof(*m));
	m->has_cluster_id = true;
	for (size_t i = 0; i < MEMBERSHIP_CLUSTER_ID_BYTES; i++) {
		m->cluster_id[i] = (uint8_t)(0xc0 + i);
	}
	static const struct {
		uint64_t id;
		const char *org;
		const char *address;
		bool voter;
	} members[] = {
		{1, "st-olavs", "tcp://10.0.0.1:7401", true},
		{2, "helse-more", "tcp://10.0.0.2:7401", true},
		{5, "trondheim-kommune", "tcp://10.0.1.9:7401", false},
	};
	m->count = CL_ARRAY_LEN(members);
	for (uint32_t i = 0; i < m->count; i++) {
		m->members[i].id = members[i].id;
		strcpy(m->members[i].org, members[i].org);
		strcpy(m->members[i].address, members[i].address);
		for (size_t b = 0; b < CL_SIGN_PUBLIC_BYTES; b++) {
			m->members[i].public_key[b] = (uint8_t)(members[i].id * 16 + b);
		}
		m->members[i].voter = members[i].voter;
	}
	m->has_params = true;
	m->params.body_max_bytes = 2 * 1024 * 1024;
}

static void test_assert_same_membership(const struct membership *a, const struct membership *b)
{
	assert_int_equal(a->has_cluster_id, b->has_cluster_id);
	if (a->has_cluster_id) {
		assert_memory_equal(a->cluster_id, b->cluster_id, MEMBERSHIP_CLUSTER_ID_BYTES);
	}
	assert_int_equal(a->count, b->count);
	for (uint32_t i = 0; i < a->count; i++) {
		assert_true(a->members[i].id == b->members[i].id);
		assert_string_equal(a->members[i].org, b->members[i].org);
		assert_string_equal(a->members[i].address, b->members[i].address);
		assert_memory_equal(a->members[i].public_key, b->members[i].public_key,
				    CL_SIGN_PUBLIC_BYTES);
		assert_int_equal(a->members[i].voter, b->members[i].voter);
	}
	assert_int_equal(a->has_params, b->has_params);
	if (a->has_params) {
		assert_true(a->params.body_max_bytes == b->params.body_max_bytes);
	}
}

/* ---- context codec --------------------------------------------------------------------- */

static void test_context_round_trip_with_and_without_optional_keys(void **state)
{
	(void)state;
	struct membership m;
	test_membership(&m);
	uint8_t buf[MEMBERSHIP_CONTEXT_BYTES_MAX];
	size_t len = 0;
	struct membership *d = malloc(sizeof(*d));
	assert_non_null(d);
	for (int variant = 0; variant < 4; variant++) {
		m.has_cluster_id = (variant & 1) != 0;
		m.has_params = (variant & 2) != 0;
		assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_OK);
		assert_int_equal(buf[0], 0x80 | (2 + (variant & 1) + ((variant & 2) >> 1)));
		memset(d, 0xee, sizeof(*d));
		assert_int_equal(membership_decode(buf, len, d), CARELOG_OK);
		test_assert_same_membership(&m, d);
	}
	/* no members at all (a context may carry none) */
	m.count = 0;
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_OK);
	assert_int_equal(membership_decode(buf, len, d), CARELOG_OK);
	assert_int_equal(d->count, 0);
	free(d);
}

static void test_context_holds_the_maximum_membership(void **state)
{
	(void)state;
	struct membership *m = calloc(1, sizeof(*m));
	struct membership *d = calloc(1, sizeof(*d));
	assert_non_null(m);
	assert_non_null(d);
	m->has_cluster_id = true;
	m->has_params = true;
	m->params.body_max_bytes = JOURNAL_BODY_BYTES_LIMIT;
	m->count = MEMBERSHIP_MEMBERS_MAX;
	for (uint32_t i = 0; i < m->count; i++) {
		struct membership_member *mm = &m->members[i];
		mm->id = UINT64_MAX - MEMBERSHIP_MEMBERS_MAX + i;
		memset(mm->org, 'o', MEMBERSHIP_ORG_BYTES_MAX);
		memcpy(mm->address, "tcp://", 6);
		memset(mm->address + 6, 'a', MEMBERSHIP_ADDRESS_BYTES_MAX - 6);
		memset(mm->public_key, (int)i, CL_SIGN_PUBLIC_BYTES);
		mm->voter = (i % 2) == 0;
	}
	uint8_t *buf = malloc(MEMBERSHIP_CONTEXT_BYTES_MAX);
	assert_non_null(buf);
	size_t len = 0;
	assert_int_equal(membership_encode(m, buf, MEMBERSHIP_CONTEXT_BYTES_MAX, &len), CARELOG_OK);
	assert_int_equal(membership_decode(buf, len, d), CARELOG_OK);
	test_assert_same_membership(m, d);
	assert_int_equal(membership_encode(m, buf, 100, &len), CARELOG_ETOOBIG);
	m->count = MEMBERSHIP_MEMBERS_MAX + 1;
	assert_int_equal(membership_encode(m, buf, MEMBERSHIP_CONTEXT_BYTES_MAX, &len),
			 CARELOG_EINVAL);
	free(buf);
	free(m);
	free(d);
}

static void test_context_encode_refuses_broken_memberships(void **state)
{
	(void)state;
	struct membership m;
	uint8_t buf[MEMBERSHIP_CONTEXT_BYTES_MAX];
	size_t len = 0;
	const char *reason = NULL;

	test_membership(&m);
	m.members[1].id = 1; /* duplicate */
	assert_int_equal(membership_check(&m, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "ascending"));
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	test_membership(&m);
	m.members[1].id = 9; /* out of order */
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	test_membership(&m);
	m.members[0].id = 0;
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	test_membership(&m);
	memcpy(m.members[2].public_key, m.members[0].public_key, CL_SIGN_PUBLIC_BYTES);
	assert_int_equal(membership_check(&m, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "same public key"));
	test_membership(&m);
	strcpy(m.members[0].org, "st olavs");
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	test_membership(&m);
	strcpy(m.members[0].address, "10.0.0.1:7401");
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	test_membership(&m);
	m.params.body_max_bytes = 0;
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
	m.params.body_max_bytes = (uint64_t)JOURNAL_BODY_BYTES_LIMIT + 1;
	assert_int_equal(membership_encode(&m, buf, sizeof(buf), &len), CARELOG_EINVAL);
}

/* Emits a context by hand: `variant` breaks it in one way. */
static void test_emit_context(struct mp_build *b, int variant)
{
	uint8_t key[CL_SIGN_PUBLIC_BYTES];
	memset(key, 7, sizeof(key));
	uint8_t cluster[MEMBERSHIP_CLUSTER_ID_BYTES] = {0};
	b->len = 0;
	mpb_map(b, variant == 1 ? 2 : 3);
	mpb_str(b, "v");
	mpb_uint(b, variant == 2 ? 2 : 1);
	if (variant != 1) {
		mpb_str(b, "cluster_id");
		mpb_bin(b, cluster, variant == 3 ? 15 : 16);
	}
	mpb_str(b, variant == 4 ? "member" : "members");
	mpb_array(b, variant == 5 ? 2 : 1);
	for (int i = 0; i < (variant == 5 ? 2 : 1); i++) {
		mpb_map(b, variant == 6 ? 4 : 5);
		mpb_str(b, "id");
		mpb_uint(b, 3);
		mpb_str(b, "org");
		mpb_str(b, "st-olavs");
		mpb_str(b, "address");
		mpb_str(b, "tcp://a:1");
		mpb_str(b, "public_key");
		mpb_bin(b, key, variant == 7 ? 31 : 32);
		if (variant != 6) {
			mpb_str(b, "voter");
			if (variant == 8) {
				mpb_uint(b, 1);
			} else {
				mpb_bool(b, 1);
			}
		}
		key[0]++; /* variant 5: same id twice, keys differ */
	}
	if (variant == 9) {
		mpb_byte(b, 0xc0); /* trailing byte */
	}
}

static void test_context_decode_is_strict(void **state)
{
	(void)state;
	struct membership *m = malloc(sizeof(*m));
	assert_non_null(m);
	struct mp_build b;
	test_emit_context(&b, 0);
	assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_OK);
	assert_int_equal(m->count, 1);
	assert_true(m->has_cluster_id);
	assert_false(m->has_params);
	test_emit_context(&b, 1);
	assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_OK);
	assert_false(m->has_cluster_id);
	test_emit_context(&b, 2);
	assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_EVERSION);
	for (int variant = 3; variant <= 9; variant++) {
		test_emit_context(&b, variant);
		assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_EPROTO);
	}
	/* keys out of order: members before cluster_id */
	b.len = 0;
	mpb_map(&b, 3);
	mpb_str(&b, "v");
	mpb_uint(&b, 1);
	mpb_str(&b, "members");
	mpb_array(&b, 0);
	mpb_str(&b, "cluster_id");
	mpb_bin(&b, "0123456789abcdef", 16);
	assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_EPROTO);
	/* params with an unknown key */
	b.len = 0;
	mpb_map(&b, 3);
	mpb_str(&b, "v");
	mpb_uint(&b, 1);
	mpb_str(&b, "members");
	mpb_array(&b, 0);
	mpb_str(&b, "params");
	mpb_map(&b, 1);
	mpb_str(&b, "grant_days");
	mpb_uint(&b, 7);
	assert_int_equal(membership_decode(b.buf, b.len, m), CARELOG_EPROTO);
	/* members descending */
	struct membership good;
	test_membership(&good);
	uint8_t buf[MEMBERSHIP_CONTEXT_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(membership_encode(&good, buf, sizeof(buf), &len), CARELOG_OK);
	/* the encoded ids are fixints 01, 02, 05 after a4 "id": swap 1 and 5 */
	uint8_t *first = memmem(buf, len, "\xa2id\x01", 4);
	uint8_t *last = memmem(buf, len, "\xa2id\x05", 4);
	assert_non_null(first);
	assert_non_null(last);
	first[3] = 5;
	last[3] = 1;
	assert_int_equal(membership_decode(buf, len, m), CARELOG_EPROTO);
	free(m);
}

static void test_context_random_bytes_decode_to_error_or_valid_value(void **state)
{
	(void)state;
	const char *env = getenv("CARELOG_TEST_SEED");
	uint64_t rng = env != NULL ? strtoull(env, NULL, 0) : cl_random_u64();
	rng = rng == 0 ? 1 : rng;
	printf("# seed=%" PRIu64 "\n", rng);
	struct membership good;
	test_membership(&good);
	uint8_t valid[MEMBERSHIP_CONTEXT_BYTES_MAX];
	size_t valid_len = 0;
	assert_int_equal(membership_encode(&good, valid, sizeof(valid), &valid_len), CARELOG_OK);
	struct membership *m = malloc(sizeof(*m));
	assert_non_null(m);
	uint8_t buf[2048];
	for (int i = 0; i < TEST_FUZZ_ITERATIONS; i++) {
		size_t len;
		if (i & 1) {
			len = (size_t)(mpb_rand(&rng) % 300);
			for (size_t j = 0; j < len; j++) {
				buf[j] = (uint8_t)mpb_rand(&rng);
			}
		} else {
			memcpy(buf, valid, valid_len);
			len = valid_len;
			size_t at = (size_t)(mpb_rand(&rng) % len);
			switch (mpb_rand(&rng) % 3) {
			case 0:
				buf[at] ^= (uint8_t)(1U << (mpb_rand(&rng) % 8));
				break;
			case 1:
				buf[at] = (uint8_t)mpb_rand(&rng);
				break;
			default:
				len = at;
				break;
			}
		}
		int rc = membership_decode(buf, len, m);
		assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION);
		if (rc == CARELOG_OK) {
			uint8_t again[MEMBERSHIP_CONTEXT_BYTES_MAX];
			size_t again_len = 0;
			assert_int_equal(membership_encode(m, again, sizeof(again), &again_len),
					 CARELOG_OK);
			assert_int_equal(again_len, len);
			assert_memory_equal(again, buf, len);
		}
	}
	free(m);
}

static void test_find_returns_member_or_null(void **state)
{
	(void)state;
	struct membership m;
	test_membership(&m);
	assert_ptr_equal(membership_find(&m, 1), &m.members[0]);
	assert_ptr_equal(membership_find(&m, 5), &m.members[2]);
	assert_null(membership_find(&m, 3));
	assert_null(membership_find(&m, 0));
	assert_null(membership_find(&m, 6));
	m.count = 0;
	assert_null(membership_find(&m, 1));
}

/* ---- genesis file ---------------------------------------------------------------------- */

static void test_genesis_write_then_load_gives_the_same_membership(void **state)
{
	struct test_dir *d = *state;
	char path[300];
	test_path(d, "genesis.ini", path, sizeof(path));
	struct membership m;
	test_membership(&m);
	assert_int_equal(membership_genesis_write(path, &m), CARELOG_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	struct membership loaded;
	char err[TEST_ERR_BYTES];
	assert_int_equal(membership_genesis_load(path, &loaded, err, sizeof(err)), CARELOG_OK);
	test_assert_same_membership(&m, &loaded);

	/* Writing again refuses to replace; writing the load elsewhere gives the same bytes. */
	assert_int_equal(membership_genesis_write(path, &m), CARELOG_EEXIST);
	char path2[300];
	test_path(d, "genesis2.ini", path2, sizeof(path2));
	assert_int_equal(membership_genesis_write(path2, &loaded), CARELOG_OK);
	char a[4096], b[4096];
	FILE *fa = fopen(path, "r");
	FILE *fb = fopen(path2, "r");
	assert_non_null(fa);
	assert_non_null(fb);
	size_t na = fread(a, 1, sizeof(a), fa);
	size_t nb = fread(b, 1, sizeof(b), fb);
	fclose(fa);
	fclose(fb);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	assert_non_null(strstr(a, "[member.5]\norg = trondheim-kommune\n"));

	/* an invalid genesis is not written */
	m.count = 0;
	char path3[300];
	test_path(d, "genesis3.ini", path3, sizeof(path3));
	assert_int_equal(membership_genesis_write(path3, &m), CARELOG_EINVAL);
	assert_int_equal(access(path3, F_OK), -1);
}

static const char test_key_1[] = "0101010101010101010101010101010101010101010101010101010101010101";
static const char test_key_2[] = "0202020202020202020202020202020202020202020202020202020202020202";

/* Writes a genesis with `extra` spliced in after member 2's keys and loads it. */
static int test_load_text(const struct test_dir *d, const char *text, struct membership *out,
			  char *err)
{
	char path[300];
	test_path(d, "genesis.ini", path, sizeof(path));
	(void)unlink(path);
	test_write_file(path, text);
	return membership_genesis_load(path, out, err, TEST_ERR_BYTES);
}

static void test_genesis_load_defaults_and_sorts_members(void **state)
{
	struct test_dir *d = *state;
	char text[2048];
	(void)snprintf(text, sizeof(text),
		       "; members in any order, voter defaults to true\n"
		       "[member.2]\norg = helse-more\naddress = tcp://b:2\npublic_key = %s\n"
		       "[cluster]\nid = 00112233445566778899AABBCCDDEEFF\n"
		       "[member.1]\norg = st-olavs\naddress = tcp://a:1\npublic_key = %s\n"
		       "voter = false\n",
		       test_key_2, test_key_1);
	struct membership m;
	char err[TEST_ERR_BYTES];
	assert_int_equal(test_load_text(d, text, &m, err), CARELOG_OK);
	assert_int_equal(m.count, 2);
	assert_true(m.members[0].id == 1);
	assert_false(m.members[0].voter);
	assert_true(m.members[1].id == 2);
	assert_true(m.members[1].voter);
	assert_true(m.has_params);
	assert_true(m.params.body_max_bytes == MEMBERSHIP_BODY_MAX_BYTES_DEFAULT);
	assert_int_equal(m.cluster_id[15], 0xff);
}

/* Copies `body` replacing "@1" and "@2" by the hex of test keys 1 and 2. */
static void test_expand_keys(char *out, size_t cap, const char *body)
{
	size_t n = 0;
	for (const char *p = body; *p != '\0'; p++) {
		const char *insert = NULL;
		if (p[0] == '@' && (p[1] == '1' || p[1] == '2')) {
			insert = p[1] == '1' ? test_key_1 : test_key_2;
			p++;
		}
		size_t len = insert != NULL ? strlen(insert) : 1;
		assert_true(n + len < cap);
		memcpy(out + n, insert != NULL ? insert : p, len);
		n += len;
	}
	out[n] = '\0';
}

static void test_genesis_errors_name_file_section_and_key(void **state)
{
	struct test_dir *d = *state;
	char path[300];
	test_path(d, "genesis.ini", path, sizeof(path));
	static const struct {
		const char *body;  /* after a valid [cluster] and [member.1] */
		const char *error; /* expected after "<path>: " */
	} cases[] = {
		{"[member.2]\norg = x\naddress = tcp://b:2\npublic_key = 0202\n",
		 "[member.2] public_key: not 64 hex digits"},
		{"[member.2]\norg = x\naddress = tcp://b:2\npublic_key = "
		 "zz02020202020202020202020202020202020202020202020202020202020202\n",
		 "[member.2] public_key: not 64 hex digits"},
		{"[member.2]\norg = x\naddress = tcp://b:2\npublic_key = @2\ncolour = red\n",
		 "[member.2] colour: unknown key"},
		{"[member.2]\norg = x\norg = y\n", "[member.2] org: duplicate key"},
		{"[member.2]\naddress = tcp://b:2\npublic_key = @2\n", "[member.2] org: missing"},
		{"[member.2]\norg = a b\n", "[member.2] org: org must be"},
		{"[member.2]\norg = x\naddress = b:2\n", "[member.2] address: address must be"},
		{"[member.2]\norg = x\nvoter = yes\n", "[member.2] voter: must be true or false"},
		{"[member.02]\norg = x\n", "[member.02] org: member section must be"},
		{"[member.0]\norg = x\n", "[member.0] org: member section must be"},
		{"[members]\norg = x\n", "[members] org: unknown section"},
		{"[cluster]\nid = 00\n", "[cluster] id: duplicate key"},
		{"[member.2]\norg = x\naddress = tcp://b:2\npublic_key = @1\n",
		 "[member.2] public_key: same key as [member.1]"},
	};
	char text[2048];
	char tail[1024];
	char err[TEST_ERR_BYTES];
	char expect[TEST_ERR_BYTES];
	struct membership m;
	for (size_t i = 0; i < CL_ARRAY_LEN(cases); i++) {
		test_expand_keys(tail, sizeof(tail), cases[i].body);
		(void)snprintf(
			text, sizeof(text),
			"[cluster]\nid = 00112233445566778899aabbccddeeff\n"
			"[member.1]\norg = st-olavs\naddress = tcp://a:1\npublic_key = %s\n%s",
			test_key_1, tail);
		assert_int_equal(test_load_text(d, text, &m, err), CARELOG_ECONFIG);
		(void)snprintf(expect, sizeof(expect), "%s: %s", path, cases[i].error);
		if (strncmp(err, expect, strlen(expect)) != 0) {
			fail_msg("case %zu: got \"%s\", expected \"%s...\"", i, err, expect);
		}
	}
}

static void test_genesis_refuses_incomplete_or_oversized_genesis(void **state)
{
	struct test_dir *d = *state;
	char path[300];
	test_path(d, "genesis.ini", path, sizeof(path));
	struct membership m;
	char err[TEST_ERR_BYTES];
	char text[4096];

	/* no cluster id */
	(void)snprintf(text, sizeof(text),
		       "[member.1]\norg = a\naddress = tcp://a:1\npublic_key = %s\n", test_key_1);
	assert_int_equal(test_load_text(d, text, &m, err), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "[cluster] id: missing"));
	/* no members */
	assert_int_equal(
		test_load_text(d, "[cluster]\nid = 00112233445566778899aabbccddeeff\n", &m, err),
		CARELOG_ECONFIG);
	assert_non_null(strstr(err, "no members"));
	/* no voter */
	(void)snprintf(text, sizeof(text),
		       "[cluster]\nid = 00112233445566778899aabbccddeeff\n"
		       "[member.1]\norg = a\naddress = tcp://a:1\npublic_key = %s\nvoter = false\n",
		       test_key_1);
	assert_int_equal(test_load_text(d, text, &m, err), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "no voter"));
	/* nine members: more than one conf change holds */
	size_t len = (size_t)snprintf(text, sizeof(text),
				      "[cluster]\nid = 00112233445566778899aabbccddeeff\n");
	for (int i = 1; i <= 9; i++) {
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"[member.%d]\norg = a\naddress = tcp://a:%d\n"
					"public_key = %02d%s\n",
					i, i, i, test_key_1 + 2);
	}
	assert_int_equal(test_load_text(d, text, &m, err), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "at most 8 members"));
	/* body_max_bytes out of range */
	(void)snprintf(text, sizeof(text),
		       "[cluster]\nid = 00112233445566778899aabbccddeeff\nbody_max_bytes = 0\n");
	assert_int_equal(test_load_text(d, text, &m, err), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "[cluster] body_max_bytes:"));
	/* a syntax error names the line */
	assert_int_equal(
		test_load_text(d, "[cluster]\nid = 00112233445566778899aabbccddeeff\nnot a key\n",
			       &m, err),
		CARELOG_ECONFIG);
	char expect[400];
	(void)snprintf(expect, sizeof(expect), "%s:3: syntax error", path);
	assert_non_null(strstr(err, expect));
	/* a missing file */
	char missing[300];
	test_path(d, "nope.ini", missing, sizeof(missing));
	assert_int_equal(membership_genesis_load(missing, &m, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, missing));
}

/* ---- genesis entry --------------------------------------------------------------------- */

static void test_genesis_entry_is_byte_identical_across_loads(void **state)
{
	struct test_dir *d = *state;
	char path[300];
	test_path(d, "genesis.ini", path, sizeof(path));
	struct membership m;
	test_membership(&m);
	assert_int_equal(membership_genesis_write(path, &m), CARELOG_OK);

	static uint8_t a[TEST_ENTRY_BYTES_MAX], b[TEST_ENTRY_BYTES_MAX];
	size_t a_len = 0, b_len = 0;
	struct membership l1, l2;
	char err[TEST_ERR_BYTES];
	assert_int_equal(membership_genesis_load(path, &l1, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(membership_genesis_load(path, &l2, err, sizeof(err)), CARELOG_OK);
	/* the loads' unused bytes differ: the entry must not depend on them */
	memset(l2.members[0].org + strlen(l2.members[0].org) + 1, 'x', 3);
	assert_int_equal(membership_genesis_entry(&l1, a, sizeof(a), &a_len), CARELOG_OK);
	assert_int_equal(membership_genesis_entry(&l2, b, sizeof(b), &b_len), CARELOG_OK);
	assert_int_equal(a_len, b_len);
	assert_memory_equal(a, b, a_len);

	/* It is a conf change adding every member, carrying the whole membership. */
	struct consensus_conf_change cc;
	const uint8_t *context = NULL;
	uint32_t context_len = 0;
	assert_int_equal(consensus_conf_decode(a, a_len, &cc, &context, &context_len), CARELOG_OK);
	assert_int_equal(cc.transition, CONSENSUS_CONF_TRANSITION_AUTO);
	assert_int_equal(cc.count, 3);
	assert_int_equal(cc.changes[0].op, CONSENSUS_CONF_ADD_VOTER);
	assert_true(cc.changes[0].node_id == 1);
	assert_int_equal(cc.changes[1].op, CONSENSUS_CONF_ADD_VOTER);
	assert_true(cc.changes[1].node_id == 2);
	assert_int_equal(cc.changes[2].op, CONSENSUS_CONF_ADD_LEARNER);
	assert_true(cc.changes[2].node_id == 5);
	struct membership ctx;
	assert_int_equal(membership_decode(context, context_len, &ctx), CARELOG_OK);
	test_assert_same_membership(&m, &ctx);

	assert_int_equal(membership_genesis_entry(&l1, a, 20, &a_len), CARELOG_ETOOBIG);
	l1.has_cluster_id = false;
	assert_int_equal(membership_genesis_entry(&l1, a, sizeof(a), &a_len), CARELOG_ECONFIG);
}

/* Computed independently by tests/unit/journal/entry_format_kat.py (docs/entry-format.md). */
#define KAT_GENESIS_ENTRY_HEX                                                      \
	"010001010000000000000001000000a984a17601aa636c75737465725f6964c410000102" \
	"030405060708090a0b0c0d0e0fa76d656d626572739185a2696401a36f7267a873742d6f" \
	"6c617673a761646472657373b47463703a2f2f3132372e302e302e313a37343031aa7075" \
	"626c69635f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc" \
	"8664125531b8a5766f746572c3a6706172616d7381ae626f64795f6d61785f6279746573" \
	"ce00100000"

static void test_genesis_entry_known_answer(void **state)
{
	(void)state;
	struct membership m;
	memset(&m, 0, sizeof(m));
	m.has_cluster_id = true;
	for (size_t i = 0; i < MEMBERSHIP_CLUSTER_ID_BYTES; i++) {
		m.cluster_id[i] = (uint8_t)i;
	}
	m.count = 1;
	m.members[0].id = 1;
	strcpy(m.members[0].org, "st-olavs");
	strcpy(m.members[0].address, "tcp://127.0.0.1:7401");
	uint8_t seed[CL_SIGN_SEED_BYTES], sk[CL_SIGN_SECRET_BYTES];
	for (size_t i = 0; i < sizeof(seed); i++) {
		seed[i] = (uint8_t)i;
	}
	assert_int_equal(cl_sign_keypair_from_seed(m.members[0].public_key, sk, seed), CARELOG_OK);
	m.members[0].voter = true;
	m.has_params = true;
	m.params.body_max_bytes = 1048576;
	uint8_t entry[TEST_ENTRY_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(membership_genesis_entry(&m, entry, sizeof(entry), &len), CARELOG_OK);
	char hex[2 * TEST_ENTRY_BYTES_MAX + 1];
	cl_hex_encode(hex, entry, len);
	assert_string_equal(hex, KAT_GENESIS_ENTRY_HEX);
}

/* ---- verification against a membership ------------------------------------------------- */

static void test_verify_record_uses_the_members_key_and_org(void **state)
{
	(void)state;
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], sk[CL_SIGN_SECRET_BYTES];
	assert_int_equal(cl_sign_keypair(pk, sk), CARELOG_OK);
	struct membership m;
	test_membership(&m);
	memcpy(m.members[1].public_key, pk, sizeof(pk));
	struct journal_append in = {
		.kind = "allergy",
		.patient = "01017012345",
		.author = "hpr-1",
		.role = "physician",
		.request_id = "r1",
		.body = (const uint8_t *)"penicillin",
		.body_len = 10,
	};
	struct journal_signer signer = {.node_id = 2, .org = "helse-more", .secret_key = sk};
	struct journal_signed s;
	assert_int_equal(journal_sign(&in, &signer, 1, 1024, &s, NULL), CARELOG_OK);
	struct journal_record r = {
		.leader_time_ms = 2,
		.header = s.header_buf,
		.header_len = s.header_len,
		.signature = s.signature,
		.salt = s.salt,
		.body = in.body,
		.body_len = in.body_len,
	};
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(membership_verify_record(&m, &r, &h, id), CARELOG_OK);
	assert_memory_equal(id, s.id, JOURNAL_ID_BYTES);
	assert_string_equal(h.org, "helse-more");

	/* signed by node 2 with org of another member */
	signer.org = "st-olavs";
	assert_int_equal(journal_sign(&in, &signer, 1, 1024, &s, NULL), CARELOG_OK);
	r.header_len = s.header_len;
	assert_int_equal(membership_verify_record(&m, &r, NULL, NULL), CARELOG_EMISMATCH);
	/* signed by a node that is not a member */
	signer.org = "helse-more";
	signer.node_id = 3;
	assert_int_equal(journal_sign(&in, &signer, 1, 1024, &s, NULL), CARELOG_OK);
	r.header_len = s.header_len;
	assert_int_equal(membership_verify_record(&m, &r, NULL, NULL), CARELOG_EMISMATCH);
	/* claiming to be node 1 with node 2's key */
	signer.org = "st-olavs";
	signer.node_id = 1;
	assert_int_equal(journal_sign(&in, &signer, 1, 1024, &s, NULL), CARELOG_OK);
	r.header_len = s.header_len;
	assert_int_equal(membership_verify_record(&m, &r, NULL, NULL), CARELOG_EBADSIG);
}

int main(void)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_context_round_trip_with_and_without_optional_keys),
		cmocka_unit_test(test_context_holds_the_maximum_membership),
		cmocka_unit_test(test_context_encode_refuses_broken_memberships),
		cmocka_unit_test(test_context_decode_is_strict),
		cmocka_unit_test(test_context_random_bytes_decode_to_error_or_valid_value),
		cmocka_unit_test(test_find_returns_member_or_null),
		cmocka_unit_test_setup_teardown(
			test_genesis_write_then_load_gives_the_same_membership, test_dir_setup,
			test_dir_teardown),
		cmocka_unit_test_setup_teardown(test_genesis_load_defaults_and_sorts_members,
						test_dir_setup, test_dir_teardown),
		cmocka_unit_test_setup_teardown(test_genesis_errors_name_file_section_and_key,
						test_dir_setup, test_dir_teardown),
		cmocka_unit_test_setup_teardown(
			test_genesis_refuses_incomplete_or_oversized_genesis, test_dir_setup,
			test_dir_teardown),
		cmocka_unit_test_setup_teardown(test_genesis_entry_is_byte_identical_across_loads,
						test_dir_setup, test_dir_teardown),
		cmocka_unit_test(test_genesis_entry_known_answer),
		cmocka_unit_test(test_verify_record_uses_the_members_key_and_org),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
