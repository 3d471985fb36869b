/* Test-only: flips one byte of one stored value in a stopped node's LMDB environment. */

/*
 * Corruption tests use it to damage a log value (header or body bytes) or an index value, and
 * then expect `carelogctl verify` to name the key. With --fix-crc it also recomputes the value's
 * CRC32C (docs/on-disk-format.md), so the damage passes the checksum and must be caught by the
 * signature or the body hash instead.
 */

#include "common/crypto.h"

#include <lmdb.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	FLIP_KEY_BYTES_MAX = 511, /* LMDB's default maximum key size */
	FLIP_DBS_MAX = 32,
	FLIP_LIST_MAX = 100000, /* keys printed by --list */
	FLIP_CRC_BYTES = 4,
};

struct flip_args {
	const char *env_dir;
	const char *db;
	uint8_t key[FLIP_KEY_BYTES_MAX];
	size_t key_len;
	bool key_is_prefix;
	bool have_key;
	uint8_t find[256];
	size_t find_len;
	long long offset; /* negative: from the end */
	bool have_offset;
	bool fix_crc;
	bool list;
};

static void flip_usage(void)
{
	fprintf(stderr,
		"usage: lmdb-flip ENV_DIR DB (--index N | --key HEX | --key-prefix HEX)\n"
		"                 (--offset N | --find HEX) [--fix-crc]\n"
		"       lmdb-flip ENV_DIR DB --list\n"
		"Flips the lowest bit of one byte of the value stored under the key in the named\n"
		"database DB ('log' keys are 8-byte big-endian indexes: use --index). --offset N\n"
		"picks the byte (negative counts from the end), --find HEX the first byte of the\n"
		"first occurrence of HEX in the value. --fix-crc then recomputes the value's CRC32C.\n"
		"The node must be stopped. Prints db, key (hex), value length and the flipped offset.\n");
}

static int flip_hex(const char *text, uint8_t *out, size_t capacity, size_t *out_len)
{
	size_t n = strlen(text);
	if (n % 2 != 0 || n / 2 > capacity || cl_hex_decode(out, n / 2, text) != 0) {
		return -1;
	}
	*out_len = n / 2;
	return 0;
}

static int flip_parse(int argc, char **argv, struct flip_args *a)
{
	if (argc < 4) {
		return -1;
	}
	a->env_dir = argv[1];
	a->db = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(opt, "--list") == 0) {
			a->list = true;
			continue;
		}
		if (strcmp(opt, "--fix-crc") == 0) {
			a->fix_crc = true;
			continue;
		}
		if (val == NULL) {
			return -1;
		}
		i++;
		if (strcmp(opt, "--index") == 0) {
			uint64_t index = strtoull(val, NULL, 10);
			for (size_t b = 0; b < 8; b++) {
				a->key[b] = (uint8_t)(index >> (56 - 8 * b));
			}
			a->key_len = 8;
			a->have_key = true;
		} else if (strcmp(opt, "--key") == 0 || strcmp(opt, "--key-prefix") == 0) {
			if (flip_hex(val, a->key, sizeof a->key, &a->key_len) != 0) {
				return -1;
			}
			a->key_is_prefix = strcmp(opt, "--key-prefix") == 0;
			a->have_key = true;
		} else if (strcmp(opt, "--offset") == 0) {
			a->offset = strtoll(val, NULL, 10);
			a->have_offset = true;
		} else if (strcmp(opt, "--find") == 0) {
			if (flip_hex(val, a->find, sizeof a->find, &a->find_len) != 0 ||
			    a->find_len == 0) {
				return -1;
			}
		} else {
			return -1;
		}
	}
	if (a->list) {
		return 0;
	}
	return a->have_key && (a->have_offset != (a->find_len > 0)) ? 0 : -1;
}

static void flip_print_hex(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		printf("%02x", p[i]);
	}
}

/*
 * The stored value's checksum, as docs/on-disk-format.md specifies: the value starts with the
 * CRC32C (4 bytes, big-endian) of the key bytes followed by the rest of the value.
 */
static void flip_fix_crc(const MDB_val *key, uint8_t *value, size_t len)
{
	if (len < FLIP_CRC_BYTES) {
		return;
	}
	uint32_t crc = cl_crc32c(0, key->mv_data, key->mv_size);
	crc = cl_crc32c(crc, value + FLIP_CRC_BYTES, len - FLIP_CRC_BYTES);
	value[0] = (uint8_t)(crc >> 24);
	value[1] = (uint8_t)(crc >> 16);
	value[2] = (uint8_t)(crc >> 8);
	value[3] = (uint8_t)crc;
}

static int flip_list(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0) {
		return rc;
	}
	MDB_val k, v;
	size_t n = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < FLIP_LIST_MAX;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
		flip_print_hex(k.mv_data, k.mv_size);
		printf(" %zu\n", v.mv_size);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static long long flip_pick(const struct flip_args *a, const uint8_t *value, size_t len)
{
	if (a->have_offset) {
		long long at = a->offset < 0 ? (long long)len + a->offset : a->offset;
		return at >= 0 && at < (long long)len ? at : -1;
	}
	for (size_t i = 0; i + a->find_len <= len; i++) {
		if (memcmp(value + i, a->find, a->find_len) == 0) {
			return (long long)i;
		}
	}
	return -1;
}

static int flip_run(const struct flip_args *a, MDB_env *env)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_txn_begin(env, NULL, a->list ? MDB_RDONLY : 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, a->db, 0, &dbi);
	}
	if (rc != 0) {
		fprintf(stderr, "lmdb-flip: %s: %s\n", a->db, mdb_strerror(rc));
		return 1;
	}
	if (a->list) {
		rc = flip_list(txn, dbi);
		mdb_txn_abort(txn);
		return rc == 0 ? 0 : 1;
	}
	MDB_cursor *cur;
	MDB_val k = {.mv_size = a->key_len, .mv_data = (void *)(uintptr_t)a->key};
	MDB_val v;
	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &v, a->key_is_prefix ? MDB_SET_RANGE : MDB_SET_KEY);
	}
	if (rc == 0 && a->key_is_prefix &&
	    (k.mv_size < a->key_len || memcmp(k.mv_data, a->key, a->key_len) != 0)) {
		rc = MDB_NOTFOUND;
	}
	if (rc != 0) {
		fprintf(stderr, "lmdb-flip: key not found in %s: %s\n", a->db, mdb_strerror(rc));
		mdb_txn_abort(txn);
		return 1;
	}
	long long at = flip_pick(a, v.mv_data, v.mv_size);
	if (at < 0) {
		fprintf(stderr, "lmdb-flip: offset or pattern not in the %zu-byte value\n", v.mv_size);
		mdb_txn_abort(txn);
		return 1;
	}
	uint8_t *copy = malloc(v.mv_size);
	uint8_t key_copy[FLIP_KEY_BYTES_MAX];
	MDB_val key_val = {.mv_size = k.mv_size, .mv_data = key_copy};
	if (copy == NULL || k.mv_size > sizeof key_copy) {
		free(copy);
		mdb_txn_abort(txn);
		return 1;
	}
	memcpy(copy, v.mv_data, v.mv_size);
	memcpy(key_copy, k.mv_data, k.mv_size);
	copy[at] ^= 0x01;
	if (a->fix_crc) {
		flip_fix_crc(&key_val, copy, v.mv_size);
	}
	MDB_val nv = {.mv_size = v.mv_size, .mv_data = copy};
	rc = mdb_cursor_put(cur, &key_val, &nv, MDB_CURRENT);
	mdb_cursor_close(cur);
	rc = rc != 0 ? rc : mdb_txn_commit(txn);
	if (rc != 0) {
		fprintf(stderr, "lmdb-flip: write: %s\n", mdb_strerror(rc));
		free(copy);
		return 1;
	}
	printf("db=%s key=", a->db);
	flip_print_hex(key_copy, key_val.mv_size);
	printf(" value_bytes=%zu flipped_offset=%lld fix_crc=%d\n", nv.mv_size, at, a->fix_crc);
	free(copy);
	return 0;
}

int main(int argc, char **argv)
{
	struct flip_args a;
	memset(&a, 0, sizeof a);
	if (flip_parse(argc, argv, &a) != 0) {
		flip_usage();
		return 2;
	}
	MDB_env *env;
	int rc = mdb_env_create(&env);
	if (rc == 0) {
		rc = mdb_env_set_maxdbs(env, FLIP_DBS_MAX);
	}
	if (rc == 0) {
		rc = mdb_env_open(env, a.env_dir, a.list ? MDB_RDONLY : 0, 0600);
	}
	if (rc != 0) {
		fprintf(stderr, "lmdb-flip: %s: %s\n", a.env_dir, mdb_strerror(rc));
		mdb_env_close(env);
		return 1;
	}
	int result = flip_run(&a, env);
	mdb_env_close(env);
	return result;
}
