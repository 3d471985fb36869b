/* Membership metadata: the CONF entry context codec, the genesis file and the genesis entry. */
#include "node/journal/membership.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "consensus/consensus.h"
#include "node/journal/journal.h"
#include "node/journal/mp.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	MEMBERSHIP_MEMBER_KEYS = 5,
	MEMBERSHIP_GENESIS_TEXT_BYTES_MAX = 16 * 1024, /* 8 members of at most ~400 bytes each */
	MEMBERSHIP_PATH_BYTES_MAX = 4096,
};

static const char *const membership_member_keys[MEMBERSHIP_MEMBER_KEYS] = {
	"id", "org", "address", "public_key", "voter",
};

/* ---- rules ----------------------------------------------------------------------------- */

/* 1..max bytes, each printable ASCII without space (0x21..0x7e). */
static bool membership_token_valid(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e) {
			return false;
		}
	}
	return true;
}

static const char membership_reason_org[] =
	"org must be 1-64 printable ASCII characters without spaces";
static const char membership_reason_address[] =
	"address must be a URL like tcp://host:port (1-128 printable ASCII characters, no spaces)";
static const char membership_reason_body_max[] = "body_max_bytes must be between 1 and 67108864";

static bool membership_address_valid(const char *s)
{
	return membership_token_valid(s, MEMBERSHIP_ADDRESS_BYTES_MAX) && strstr(s, "://") != NULL;
}

int membership_check(const struct membership *m, const char **out_reason)
{
	CL_ASSERT(m != NULL);
	const char *reason = NULL;
	if (m->count > MEMBERSHIP_MEMBERS_MAX) {
		reason = "too many members (at most 64)";
	}
	for (uint32_t i = 0; reason == NULL && i < m->count; i++) {
		const struct membership_member *mm = &m->members[i];
		if (mm->id == 0) {
			reason = "member id must not be 0";
		} else if (i > 0 && mm->id <= m->members[i - 1].id) {
			reason = "member ids must be unique and ascending";
		} else if (!membership_token_valid(mm->org, MEMBERSHIP_ORG_BYTES_MAX)) {
			reason = membership_reason_org;
		} else if (!membership_address_valid(mm->address)) {
			reason = membership_reason_address;
		}
		/* One identity per key: a key pinned twice would let one node speak as two. */
		for (uint32_t k = 0; reason == NULL && k < i; k++) {
			if (memcmp(m->members[k].public_key, mm->public_key,
				   CL_SIGN_PUBLIC_BYTES) == 0) {
				reason = "two members have the same public key";
			}
		}
	}
	if (reason == NULL && m->has_params &&
	    (m->params.body_max_bytes == 0 ||
	     m->params.body_max_bytes > JOURNAL_BODY_BYTES_LIMIT)) {
		reason = membership_reason_body_max;
	}
	if (reason != NULL) {
		if (out_reason != NULL) {
			*out_reason = reason;
		}
		return CARELOG_EINVAL;
	}
	return CARELOG_OK;
}

const struct membership_member *membership_find(const struct membership *m, uint64_t id)
{
	CL_ASSERT(m != NULL && m->count <= MEMBERSHIP_MEMBERS_MAX);
	/* Members are ascending by id: binary search, at most log2(64) + 1 steps. */
	uint32_t lo = 0;
	uint32_t hi = m->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->members[mid].id == id) {
			return &m->members[mid];
		}
		if (m->members[mid].id < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

/* ---- context codec --------------------------------------------------------------------- */

static void membership_pack(msgpack_packer *pk, const struct membership *m)
{
	size_t keys = 2 + (m->has_cluster_id ? 1U : 0U) + (m->has_params ? 1U : 0U);
	/* The writer latches its first failure; the caller reads the outcome from it. */
	(void)msgpack_pack_map(pk, keys);
	(void)journal_mp_pack_cstr(pk, "v");
	(void)msgpack_pack_uint64(pk, MEMBERSHIP_VERSION);
	if (m->has_cluster_id) {
		(void)journal_mp_pack_cstr(pk, "cluster_id");
		(void)msgpack_pack_bin_with_body(pk, m->cluster_id, MEMBERSHIP_CLUSTER_ID_BYTES);
	}
	(void)journal_mp_pack_cstr(pk, "members");
	(void)msgpack_pack_array(pk, m->count);
	for (uint32_t i = 0; i < m->count; i++) {
		const struct membership_member *mm = &m->members[i];
		(void)msgpack_pack_map(pk, MEMBERSHIP_MEMBER_KEYS);
		(void)journal_mp_pack_cstr(pk, "id");
		(void)msgpack_pack_uint64(pk, mm->id);
		(void)journal_mp_pack_cstr(pk, "org");
		(void)journal_mp_pack_cstr(pk, mm->org);
		(void)journal_mp_pack_cstr(pk, "address");
		(void)journal_mp_pack_cstr(pk, mm->address);
		(void)journal_mp_pack_cstr(pk, "public_key");
		(void)msgpack_pack_bin_with_body(pk, mm->public_key, CL_SIGN_PUBLIC_BYTES);
		(void)journal_mp_pack_cstr(pk, "voter");
		(void)(mm->voter ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
	}
	if (m->has_params) {
		(void)journal_mp_pack_cstr(pk, "params");
		(void)msgpack_pack_map(pk, 1);
		(void)journal_mp_pack_cstr(pk, "body_max_bytes");
		(void)msgpack_pack_uint64(pk, m->params.body_max_bytes);
	}
}

int membership_encode(const struct membership *m, uint8_t *out, size_t out_capacity,
		      size_t *out_len)
{
	CL_ASSERT(m != NULL && out_len != NULL);
	int rc = membership_check(m, NULL);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init(&w, &pk, out, out_capacity);
	membership_pack(&pk, m);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_ETOOBIG;
	}
	CL_ASSERT(w.len <= MEMBERSHIP_CONTEXT_BYTES_MAX);
	*out_len = w.len;
	return CARELOG_OK;
}

static bool membership_obj_bin_exact(const msgpack_object *o, uint8_t *out, size_t n)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n) {
		return false;
	}
	memcpy(out, o->via.bin.ptr, n);
	return true;
}

static bool membership_member_from_object(const msgpack_object *o, struct membership_member *mm)
{
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != MEMBERSHIP_MEMBER_KEYS) {
		return false;
	}
	const msgpack_object_kv *kv = o->via.map.ptr;
	for (size_t i = 0; i < MEMBERSHIP_MEMBER_KEYS; i++) {
		if (!journal_mp_is_key(&kv[i].key, membership_member_keys[i])) {
			return false;
		}
	}
	if (kv[0].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    kv[4].val.type != MSGPACK_OBJECT_BOOLEAN) {
		return false;
	}
	mm->id = kv[0].val.via.u64;
	mm->voter = kv[4].val.via.boolean;
	return journal_mp_copy_str(&kv[1].val, mm->org, MEMBERSHIP_ORG_BYTES_MAX, false) &&
	       journal_mp_copy_str(&kv[2].val, mm->address, MEMBERSHIP_ADDRESS_BYTES_MAX, false) &&
	       membership_obj_bin_exact(&kv[3].val, mm->public_key, CL_SIGN_PUBLIC_BYTES);
}

static int membership_from_object(const msgpack_object *o, struct membership *m)
{
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0) {
		return CARELOG_EPROTO;
	}
	const msgpack_object_kv *kv = o->via.map.ptr;
	uint32_t size = o->via.map.size;
	if (!journal_mp_is_key(&kv[0].key, "v") ||
	    kv[0].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		return CARELOG_EPROTO;
	}
	if (kv[0].val.via.u64 != MEMBERSHIP_VERSION) {
		return CARELOG_EVERSION;
	}
	memset(m, 0, sizeof(*m));
	uint32_t i = 1;
	if (i < size && journal_mp_is_key(&kv[i].key, "cluster_id")) {
		if (!membership_obj_bin_exact(&kv[i].val, m->cluster_id,
					      MEMBERSHIP_CLUSTER_ID_BYTES)) {
			return CARELOG_EPROTO;
		}
		m->has_cluster_id = true;
		i++;
	}
	if (i >= size || !journal_mp_is_key(&kv[i].key, "members") ||
	    kv[i].val.type != MSGPACK_OBJECT_ARRAY ||
	    kv[i].val.via.array.size > MEMBERSHIP_MEMBERS_MAX) {
		return CARELOG_EPROTO;
	}
	const msgpack_object_array *members = &kv[i].val.via.array;
	m->count = members->size;
	for (uint32_t k = 0; k < members->size; k++) {
		if (!membership_member_from_object(&members->ptr[k], &m->members[k])) {
			return CARELOG_EPROTO;
		}
	}
	i++;
	if (i < size && journal_mp_is_key(&kv[i].key, "params")) {
		const msgpack_object *p = &kv[i].val;
		if (p->type != MSGPACK_OBJECT_MAP || p->via.map.size != 1 ||
		    !journal_mp_is_key(&p->via.map.ptr[0].key, "body_max_bytes") ||
		    p->via.map.ptr[0].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			return CARELOG_EPROTO;
		}
		m->has_params = true;
		m->params.body_max_bytes = p->via.map.ptr[0].val.via.u64;
		i++;
	}
	if (i != size) {
		return CARELOG_EPROTO;
	}
	return membership_check(m, NULL) == CARELOG_OK ? CARELOG_OK : CARELOG_EPROTO;
}

int membership_decode(const uint8_t *bytes, size_t len, struct membership *out)
{
	CL_ASSERT(out != NULL);
	if (bytes == NULL || len == 0 || len > MEMBERSHIP_CONTEXT_BYTES_MAX) {
		return CARELOG_EPROTO;
	}
	/* ~33 KB: kept off the stack of callers that may run on small thread stacks. */
	struct membership *m = malloc(sizeof(*m));
	if (m == NULL) {
		return CARELOG_ENOMEM;
	}
	msgpack_unpacked u;
	int rc = journal_mp_unpack(&u, bytes, len);
	if (rc == CARELOG_OK) {
		rc = membership_from_object(&u.data, m);
	}
	msgpack_unpacked_destroy(&u);
	if (rc == CARELOG_OK) {
		/* One byte form per context (see node/journal/mp.h). */
		struct journal_mp_writer w;
		msgpack_packer pk;
		journal_mp_writer_init_compare(&w, &pk, bytes, len);
		membership_pack(&pk, m);
		if (!journal_mp_writer_done(&w)) {
			rc = CARELOG_EPROTO;
		}
	}
	if (rc == CARELOG_OK) {
		*out = *m;
	}
	free(m);
	return rc;
}

/* ---- genesis rules --------------------------------------------------------------------- */

/* What a genesis configuration needs beyond membership_check. Returns a static reason or
 * NULL if `m` is a valid genesis. */
static const char *membership_genesis_reason(const struct membership *m)
{
	const char *reason = NULL;
	if (membership_check(m, &reason) != CARELOG_OK) {
		return reason;
	}
	if (!m->has_cluster_id) {
		return "no cluster id";
	}
	if (m->count == 0) {
		return "no members";
	}
	if (m->count > CONSENSUS_CONF_CHANGES_MAX) {
		return "a genesis holds at most 8 members (add more later with carelogctl member "
		       "add-learner and promote)";
	}
	for (uint32_t i = 0; i < m->count; i++) {
		if (m->members[i].voter) {
			return NULL;
		}
	}
	return "no voter (at least one member needs voter = true)";
}

/* ---- genesis file: load ---------------------------------------------------------------- */

enum {
	MEMBERSHIP_SEEN_ORG = 1U << 0,
	MEMBERSHIP_SEEN_ADDRESS = 1U << 1,
	MEMBERSHIP_SEEN_PUBLIC_KEY = 1U << 2,
	MEMBERSHIP_SEEN_VOTER = 1U << 3,
	MEMBERSHIP_SEEN_CLUSTER_ID = 1U << 4,
	MEMBERSHIP_SEEN_BODY_MAX = 1U << 5,
};

struct membership_genesis_parse {
	const char *path;
	struct membership *m;  /* members in file order until sorted */
	unsigned cluster_seen; /* MEMBERSHIP_SEEN_* of [cluster] */
	unsigned member_seen[MEMBERSHIP_MEMBERS_MAX];
	char *err;
	size_t err_len;
	bool failed;
};

static int membership_genesis_fail(struct membership_genesis_parse *p, const char *section,
				   const char *key, const char *what)
{
	if (!p->failed) {
		p->failed = true;
		if (p->err_len > 0) {
			(void)snprintf(p->err, p->err_len, "%s: [%s] %s: %s", p->path, section, key,
				       what);
		}
	}
	return 0; /* inih: stop treating this line as good */
}

/* Decimal u64 without sign, leading zeros or overflow. */
static bool membership_parse_u64(const char *s, uint64_t *out)
{
	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0')) {
		return false;
	}
	uint64_t v = 0;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c < '0' || *c > '9') {
			return false;
		}
		uint64_t digit = (uint64_t)(*c - '0');
		if (v > (UINT64_MAX - digit) / 10) {
			return false;
		}
		v = v * 10 + digit;
	}
	*out = v;
	return true;
}

/* Copies a token value into a fixed field; false if it breaks the token rule. */
static bool membership_copy_token(char *dst, size_t max, const char *value)
{
	size_t n = strnlen(value, max + 1);
	if (n > max) {
		return false;
	}
	memcpy(dst, value, n);
	dst[n] = '\0';
	return membership_token_valid(dst, max);
}

static int membership_genesis_cluster_key(struct membership_genesis_parse *p, const char *name,
					  const char *value)
{
	unsigned bit;
	if (strcmp(name, "id") == 0) {
		bit = MEMBERSHIP_SEEN_CLUSTER_ID;
	} else if (strcmp(name, "body_max_bytes") == 0) {
		bit = MEMBERSHIP_SEEN_BODY_MAX;
	} else {
		return membership_genesis_fail(p, "cluster", name, "unknown key");
	}
	if ((p->cluster_seen & bit) != 0) {
		return membership_genesis_fail(p, "cluster", name, "duplicate key");
	}
	p->cluster_seen |= bit;
	if (bit == MEMBERSHIP_SEEN_CLUSTER_ID) {
		if (strlen(value) != 2 * MEMBERSHIP_CLUSTER_ID_BYTES ||
		    cl_hex_decode(p->m->cluster_id, MEMBERSHIP_CLUSTER_ID_BYTES, value) !=
			    CARELOG_OK) {
			return membership_genesis_fail(p, "cluster", name, "not 32 hex digits");
		}
		p->m->has_cluster_id = true;
		return 1;
	}
	uint64_t v;
	if (!membership_parse_u64(value, &v) || v == 0 || v > JOURNAL_BODY_BYTES_LIMIT) {
		return membership_genesis_fail(p, "cluster", name, membership_reason_body_max);
	}
	p->m->has_params = true;
	p->m->params.body_max_bytes = v;
	return 1;
}

static int membership_genesis_member_key(struct membership_genesis_parse *p, const char *section,
					 uint64_t id, const char *name, const char *value)
{
	struct membership *m = p->m;
	uint32_t slot = 0;
	while (slot < m->count && m->members[slot].id != id) {
		slot++;
	}
	if (slot == m->count) {
		if (m->count == MEMBERSHIP_MEMBERS_MAX) {
			return membership_genesis_fail(p, section, name,
						       "too many members (at most 64)");
		}
		m->count++;
		memset(&m->members[slot], 0, sizeof(m->members[slot]));
		m->members[slot].id = id;
		m->members[slot].voter = true; /* default when the key is absent */
		p->member_seen[slot] = 0;
	}
	struct membership_member *mm = &m->members[slot];
	unsigned bit;
	if (strcmp(name, "org") == 0) {
		bit = MEMBERSHIP_SEEN_ORG;
	} else if (strcmp(name, "address") == 0) {
		bit = MEMBERSHIP_SEEN_ADDRESS;
	} else if (strcmp(name, "public_key") == 0) {
		bit = MEMBERSHIP_SEEN_PUBLIC_KEY;
	} else if (strcmp(name, "voter") == 0) {
		bit = MEMBERSHIP_SEEN_VOTER;
	} else {
		return membership_genesis_fail(p, section, name, "unknown key");
	}
	if ((p->member_seen[slot] & bit) != 0) {
		return membership_genesis_fail(p, section, name, "duplicate key");
	}
	p->member_seen[slot] |= bit;
	switch (bit) {
	case MEMBERSHIP_SEEN_ORG:
		if (!membership_copy_token(mm->org, MEMBERSHIP_ORG_BYTES_MAX, value)) {
			return membership_genesis_fail(p, section, name, membership_reason_org);
		}
		return 1;
	case MEMBERSHIP_SEEN_ADDRESS:
		if (!membership_copy_token(mm->address, MEMBERSHIP_ADDRESS_BYTES_MAX, value) ||
		    !membership_address_valid(mm->address)) {
			return membership_genesis_fail(p, section, name, membership_reason_address);
		}
		return 1;
	case MEMBERSHIP_SEEN_PUBLIC_KEY:
		if (strlen(value) != 2 * CL_SIGN_PUBLIC_BYTES ||
		    cl_hex_decode(mm->public_key, CL_SIGN_PUBLIC_BYTES, value) != CARELOG_OK) {
			return membership_genesis_fail(p, section, name, "not 64 hex digits");
		}
		return 1;
	default:
		if (strcmp(value, "true") == 0) {
			mm->voter = true;
		} else if (strcmp(value, "false") == 0) {
			mm->voter = false;
		} else {
			return membership_genesis_fail(p, section, name, "must be true or false");
		}
		return 1;
	}
}

/* inih handler: one call per key = value, strict about sections and keys. */
static int membership_genesis_handler(void *user, const char *section, const char *name,
				      const char *value)
{
	struct membership_genesis_parse *p = user;
	if (p->failed) {
		return 1; /* only the first error is reported */
	}
	if (strcmp(section, "cluster") == 0) {
		return membership_genesis_cluster_key(p, name, value);
	}
	static const char member_prefix[] = "member.";
	uint64_t id;
	if (strncmp(section, member_prefix, sizeof(member_prefix) - 1) == 0) {
		if (!membership_parse_u64(section + sizeof(member_prefix) - 1, &id) || id == 0) {
			return membership_genesis_fail(
				p, section, name,
				"member section must be [member.N] with N a node id 1..2^64-1 "
				"without leading zeros");
		}
		return membership_genesis_member_key(p, section, id, name, value);
	}
	return membership_genesis_fail(p, section, name,
				       "unknown section (expected [cluster] or [member.N])");
}

static int membership_member_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct membership_member *)a)->id;
	uint64_t y = ((const struct membership_member *)b)->id;
	return (x > y) - (x < y);
}

/* Checks after the whole file was read: required keys, then the genesis rules. */
static bool membership_genesis_complete(struct membership_genesis_parse *p)
{
	struct membership *m = p->m;
	char section[32];
	if ((p->cluster_seen & MEMBERSHIP_SEEN_CLUSTER_ID) == 0) {
		membership_genesis_fail(p, "cluster", "id", "missing");
		return false;
	}
	static const struct {
		unsigned bit;
		const char *key;
	} required[] = {
		{MEMBERSHIP_SEEN_ORG, "org"},
		{MEMBERSHIP_SEEN_ADDRESS, "address"},
		{MEMBERSHIP_SEEN_PUBLIC_KEY, "public_key"},
	};
	for (uint32_t i = 0; i < m->count; i++) {
		for (size_t k = 0; k < CL_ARRAY_LEN(required); k++) {
			if ((p->member_seen[i] & required[k].bit) == 0) {
				(void)snprintf(section, sizeof(section), "member.%llu",
					       (unsigned long long)m->members[i].id);
				membership_genesis_fail(p, section, required[k].key, "missing");
				return false;
			}
		}
	}
	if (!m->has_params) {
		m->has_params = true;
		m->params.body_max_bytes = MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	}
	qsort(m->members, m->count, sizeof(m->members[0]), membership_member_cmp);
	for (uint32_t i = 0; i < m->count; i++) {
		for (uint32_t k = 0; k < i; k++) {
			if (memcmp(m->members[k].public_key, m->members[i].public_key,
				   CL_SIGN_PUBLIC_BYTES) == 0) {
				char what[64];
				(void)snprintf(section, sizeof(section), "member.%llu",
					       (unsigned long long)m->members[i].id);
				(void)snprintf(what, sizeof(what), "same key as [member.%llu]",
					       (unsigned long long)m->members[k].id);
				membership_genesis_fail(p, section, "public_key", what);
				return false;
			}
		}
	}
	const char *reason = membership_genesis_reason(m);
	if (reason != NULL) {
		p->failed = true;
		if (p->err_len > 0) {
			(void)snprintf(p->err, p->err_len, "%s: %s", p->path, reason);
		}
		return false;
	}
	return true;
}

int membership_genesis_load(const char *path, struct membership *out, char *err, size_t err_len)
{
	CL_ASSERT(path != NULL && out != NULL && (err != NULL || err_len == 0));
	if (err_len > 0) {
		err[0] = '\0';
	}
	struct membership *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return CARELOG_ENOMEM;
	}
	struct membership_genesis_parse p = {.path = path, .m = m, .err = err, .err_len = err_len};
	int line = ini_parse(path, membership_genesis_handler, &p);
	int rc = CARELOG_ECONFIG;
	if (line == -1) {
		if (err_len > 0) {
			(void)snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		}
	} else if (line == -2) {
		rc = CARELOG_ENOMEM;
	} else if (p.failed) {
		/* the handler's message names section and key */
	} else if (line > 0) {
		if (err_len > 0) {
			(void)snprintf(err, err_len,
				       "%s:%d: syntax error (expected [section] or key = value)",
				       path, line);
		}
	} else if (membership_genesis_complete(&p)) {
		*out = *m;
		rc = CARELOG_OK;
	}
	free(m);
	return rc;
}

/* ---- genesis file: write --------------------------------------------------------------- */

/* Renders `m` as genesis text; false if it does not fit (it always does for a valid genesis). */
static bool membership_genesis_render(const struct membership *m, char *buf, size_t cap,
				      size_t *out_len)
{
	char cluster_hex[2 * MEMBERSHIP_CLUSTER_ID_BYTES + 1];
	uint64_t body_max = m->has_params ? m->params.body_max_bytes
					  : (uint64_t)MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	int n = snprintf(buf, cap,
			 "# carelog genesis configuration: log entry 1 of the cluster.\n"
			 "# Every voter must start from this same file. Do not edit after init.\n"
			 "[cluster]\nid = %s\nbody_max_bytes = %llu\n",
			 cl_hex_encode(cluster_hex, m->cluster_id, MEMBERSHIP_CLUSTER_ID_BYTES),
			 (unsigned long long)body_max);
	if (n < 0 || (size_t)n >= cap) {
		return false;
	}
	size_t len = (size_t)n;
	for (uint32_t i = 0; i < m->count; i++) {
		const struct membership_member *mm = &m->members[i];
		char key_hex[2 * CL_SIGN_PUBLIC_BYTES + 1];
		n = snprintf(
			buf + len, cap - len,
			"\n[member.%llu]\norg = %s\naddress = %s\npublic_key = %s\nvoter = %s\n",
			(unsigned long long)mm->id, mm->org, mm->address,
			cl_hex_encode(key_hex, mm->public_key, CL_SIGN_PUBLIC_BYTES),
			mm->voter ? "true" : "false");
		if (n < 0 || (size_t)n >= cap - len) {
			return false;
		}
		len += (size_t)n;
	}
	*out_len = len;
	return true;
}

static int membership_write_all(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	/* Bounded by len: every successful write advances. */
	while (done < len) {
		ssize_t w = write(fd, buf + done, len - done);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return CARELOG_EIO;
		}
		done += (size_t)w;
	}
	return CARELOG_OK;
}

/* fsync of the directory holding `path`, so the new name survives a crash. */
static int membership_sync_parent(const char *path)
{
	char dir[MEMBERSHIP_PATH_BYTES_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		(void)snprintf(dir, sizeof(dir), ".");
	} else if (slash == path) {
		(void)snprintf(dir, sizeof(dir), "/");
	} else {
		(void)snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return CARELOG_EIO;
	}
	int rc = fsync(fd) == 0 ? CARELOG_OK : CARELOG_EIO;
	(void)close(fd);
	return rc;
}

int membership_genesis_write(const char *path, const struct membership *m)
{
	CL_ASSERT(path != NULL && m != NULL);
	if (membership_genesis_reason(m) != NULL) {
		return CARELOG_EINVAL;
	}
	char tmp[MEMBERSHIP_PATH_BYTES_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		return CARELOG_EINVAL;
	}
	char *text = malloc(MEMBERSHIP_GENESIS_TEXT_BYTES_MAX);
	if (text == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t len;
	bool fits = membership_genesis_render(m, text, MEMBERSHIP_GENESIS_TEXT_BYTES_MAX, &len);
	CL_ASSERT(fits); /* at most 8 members of bounded fields */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(text);
		return errno == EEXIST ? CARELOG_EEXIST : CARELOG_EIO;
	}
	int rc = membership_write_all(fd, text, len);
	free(text);
	/* The mode is part of the contract (0644), whatever the umask. */
	if (rc == CARELOG_OK && (fchmod(fd, 0644) != 0 || fsync(fd) != 0)) {
		rc = CARELOG_EIO;
	}
	if (close(fd) != 0 && rc == CARELOG_OK) {
		rc = CARELOG_EIO;
	}
	/* link() publishes the complete file atomically and refuses to replace an existing
	 * genesis: a cluster's first entry must never change under it. */
	if (rc == CARELOG_OK && link(tmp, path) != 0) {
		rc = errno == EEXIST ? CARELOG_EEXIST : CARELOG_EIO;
	}
	(void)unlink(tmp);
	if (rc == CARELOG_OK) {
		rc = membership_sync_parent(path);
	}
	return rc;
}

/* ---- genesis entry --------------------------------------------------------------------- */

int membership_genesis_entry(const struct membership *m, uint8_t *out, size_t out_capacity,
			     size_t *out_len)
{
	CL_ASSERT(m != NULL && out_len != NULL);
	if (membership_genesis_reason(m) != NULL) {
		return CARELOG_ECONFIG;
	}
	/* A genesis holds at most CONSENSUS_CONF_CHANGES_MAX members, so its context is small. */
	uint8_t context[CONSENSUS_CONF_CHANGES_MAX * 512];
	CL_STATIC_ASSERT(sizeof(context) <= MEMBERSHIP_CONTEXT_BYTES_MAX, "context bound");
	size_t context_len;
	int rc = membership_encode(m, context, sizeof(context), &context_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct consensus_conf_change cc;
	memset(&cc, 0, sizeof(cc));
	cc.transition = CONSENSUS_CONF_TRANSITION_AUTO;
	cc.count = (uint8_t)m->count;
	for (uint32_t i = 0; i < m->count; i++) {
		cc.changes[i].op =
			m->members[i].voter ? CONSENSUS_CONF_ADD_VOTER : CONSENSUS_CONF_ADD_LEARNER;
		cc.changes[i].node_id = m->members[i].id;
	}
	return consensus_conf_encode(&cc, context, (uint32_t)context_len, out, out_capacity,
				     out_len);
}

/* ---- verification ---------------------------------------------------------------------- */

int membership_verify_record(const struct membership *m, const struct journal_record *r,
			     struct journal_header *out_header, uint8_t out_id[JOURNAL_ID_BYTES])
{
	CL_ASSERT(m != NULL && r != NULL);
	if (r->header == NULL || r->signature == NULL) {
		return CARELOG_EPROTO;
	}
	struct journal_header h;
	int rc = journal_header_decode(r->header, r->header_len, &h);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct membership_member *author_node = membership_find(m, h.node_id);
	if (author_node == NULL || strcmp(author_node->org, h.org) != 0) {
		return CARELOG_EMISMATCH;
	}
	rc = journal_verify_decoded(r, &h, author_node->public_key);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (out_header != NULL) {
		*out_header = h;
	}
	if (out_id != NULL) {
		journal_entry_id(r->header, r->header_len, out_id);
	}
	return CARELOG_OK;
}
