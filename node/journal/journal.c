/* The journal entry format: header and record codecs, signing, verification, ids, chain. */
#include "node/journal/journal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "node/journal/mp.h"
#include "node/journal/policy.h"

#include <string.h>

const char *const journal_kinds[] = {
	"note",	    "observation", "vital-signs", "lab-result",	 "diagnosis",
	"allergy",  "medication",  "procedure",	  "vaccination", "referral",
	"document", "care-plan",   NULL,
};

static const char *const journal_statuses[] = {
	"preliminary", "final", "amended", "entered-in-error", NULL,
};

static const char *const journal_sensitivities[] = {
	"normal", "psychiatry", "substance-use", "sexual-health", "child-welfare", "genetic", NULL,
};

/* The header's keys, in their one allowed order (docs/entry-format.md). */
enum journal_header_key {
	JOURNAL_KEY_V,
	JOURNAL_KEY_KIND,
	JOURNAL_KEY_PATIENT,
	JOURNAL_KEY_AUTHOR,
	JOURNAL_KEY_ROLE,
	JOURNAL_KEY_ORG,
	JOURNAL_KEY_UNIT,
	JOURNAL_KEY_NODE,
	JOURNAL_KEY_AUTHOR_TIME,
	JOURNAL_KEY_CLINICAL_TIME,
	JOURNAL_KEY_STATUS,
	JOURNAL_KEY_CORRECTS,
	JOURNAL_KEY_SENSITIVITY,
	JOURNAL_KEY_REQUEST_ID,
	JOURNAL_KEY_MEDIA_TYPE,
	JOURNAL_KEY_BODY_SIZE,
	JOURNAL_KEY_BODY_HASH,
	JOURNAL_HEADER_KEYS_COUNT,
};

static const char *const journal_header_keys[JOURNAL_HEADER_KEYS_COUNT] = {
	"v",	       "kind",	     "patient",	    "author",	     "role",	  "org",
	"unit",	       "node",	     "author_time", "clinical_time", "status",	  "corrects",
	"sensitivity", "request_id", "media_type",  "body_size",     "body_hash",
};

enum {
	JOURNAL_RECORD_FIELDS = 6,
	JOURNAL_PATIENT_KEY_DOMAIN_BYTES = sizeof("carelog patient v1"), /* includes the NUL */
};

static const char journal_patient_key_domain[JOURNAL_PATIENT_KEY_DOMAIN_BYTES] =
	"carelog patient v1";

/* ---- text rules ---------------------------------------------------------------------- */

static bool journal_in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++) {
		if (strcmp(list[i], s) == 0) {
			return true;
		}
	}
	return false;
}

/* Length of `s` if it is a C string of at most `max` bytes within an array of max + 1. */
static bool journal_text_len(const char *s, size_t max, size_t *out_len)
{
	size_t n = strnlen(s, max + 1);
	if (n > max) {
		return false;
	}
	*out_len = n;
	return true;
}

/* 1..max bytes, each in [lo, 0x7e]: lo = 0x21 for identifiers (no spaces), 0x20 for text. */
static bool journal_text_is_ascii(const char *s, size_t max, unsigned char lo)
{
	size_t n;
	if (!journal_text_len(s, max, &n) || n == 0) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < lo || c > 0x7e) {
			return false;
		}
	}
	return true;
}

/* 0..max bytes of well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points above
 * U+10FFFF) without C0 controls, DEL or C1 controls. */
static bool journal_text_is_utf8_line(const char *s, size_t max)
{
	size_t n;
	if (!journal_text_len(s, max, &n)) {
		return false;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f) {
				return false;
			}
			i++;
			continue;
		}
		size_t extra;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1;
			cp = c & 0x1fU;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2;
			cp = c & 0x0fU;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3;
			cp = c & 0x07U;
		} else {
			return false;
		}
		if (extra > n - i - 1) {
			return false;
		}
		for (size_t k = 1; k <= extra; k++) {
			if ((p[i + k] & 0xc0U) != 0x80) {
				return false;
			}
			cp = cp << 6 | (p[i + k] & 0x3fU);
		}
		static const uint32_t min_for_extra[4] = {0, 0x80, 0x800, 0x10000};
		if (cp < min_for_extra[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f)) {
			return false;
		}
		i += 1 + extra;
	}
	return true;
}

/* RFC 6838 restricted-name characters. */
static bool journal_media_char(unsigned char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
		return true;
	}
	return !first && c != '\0' && strchr("!#$&-^_.+", c) != NULL;
}

/* type "/" subtype, each an RFC 6838 restricted-name, no parameters, at most 64 bytes. */
static bool journal_media_type_valid(const char *s)
{
	size_t n;
	if (!journal_text_len(s, JOURNAL_MEDIA_TYPE_BYTES_MAX, &n) || n == 0) {
		return false;
	}
	const char *slash = memchr(s, '/', n);
	if (slash == NULL) {
		return false;
	}
	size_t type_len = (size_t)(slash - s);
	size_t sub_len = n - type_len - 1;
	if (type_len == 0 || sub_len == 0) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (i == type_len) {
			continue;
		}
		bool first = i == 0 || i == type_len + 1;
		if (!journal_media_char((unsigned char)s[i], first)) {
			return false;
		}
	}
	return true;
}

bool journal_text_is_identifier(const char *s, size_t max_bytes)
{
	return s != NULL && journal_text_is_ascii(s, max_bytes, 0x21);
}

bool journal_text_is_line(const char *s, size_t max_bytes)
{
	return s != NULL && journal_text_is_utf8_line(s, max_bytes);
}

bool journal_sensitivity_known(const char *s)
{
	size_t n;
	return s != NULL && journal_text_len(s, JOURNAL_SENSITIVITY_BYTES_MAX, &n) &&
	       journal_in_list(journal_sensitivities, s);
}

/* ---- header ---------------------------------------------------------------------------- */

/* Reasons shared by the field check and the copy of over-long input (static strings). */
static const char journal_reason_patient[] =
	"patient id must be 1-64 printable ASCII characters without spaces";
static const char journal_reason_author[] =
	"author must be 1-64 printable ASCII characters without spaces";
static const char journal_reason_role[] =
	"role must be 1-32 printable ASCII characters without spaces";
static const char journal_reason_org[] =
	"organisation must be 1-64 printable ASCII characters without spaces";
static const char journal_reason_unit[] =
	"unit must be at most 64 bytes of UTF-8 text without control characters";
static const char journal_reason_request_id[] =
	"request id must be 1-64 printable ASCII characters";
static const char journal_reason_media_type[] =
	"media type must be type/subtype like text/plain (at most 64 characters)";

static int journal_reason(const char **out_reason, const char *reason, int error)
{
	if (out_reason != NULL) {
		*out_reason = reason;
	}
	return error;
}

/* The header rules of policy kinds (docs/entry-format.md section 10), after the general ones so
 * that an unknown status or sensitivity still decides first. */
static int journal_policy_header_check(const struct journal_header *h, const char **out_reason)
{
	enum policy_kind k = policy_kind_of(h->kind);
	bool region = strcmp(h->patient, POLICY_REGION_PATIENT) == 0;
	if (k == POLICY_KIND_NONE) {
		return CARELOG_OK;
	}
	if (strcmp(h->media_type, POLICY_MEDIA_TYPE) != 0) {
		return journal_reason(out_reason,
				      "policy entries have media type " POLICY_MEDIA_TYPE,
				      CARELOG_EINVAL);
	}
	if (strcmp(h->sensitivity, "normal") != 0) {
		return journal_reason(out_reason, "policy entries have sensitivity normal",
				      CARELOG_EINVAL);
	}
	if ((k == POLICY_KIND_PARAMS || k == POLICY_KIND_AUDIT_BATCH) != region) {
		return journal_reason(out_reason,
				      region ? "patient \"-\" is only for policy-params and audit-batch"
					     : "policy-params and audit-batch name patient \"-\"",
				      CARELOG_EINVAL);
	}
	return CARELOG_OK;
}

int journal_header_check(const struct journal_header *h, const char **out_reason)
{
	CL_ASSERT(h != NULL);
	if (h->version != JOURNAL_FORMAT_VERSION) {
		return journal_reason(out_reason, "unsupported format version", CARELOG_EINVAL);
	}
	size_t n;
	if (!journal_text_len(h->kind, JOURNAL_KIND_BYTES_MAX, &n) ||
	    !journal_kind_known(h->kind)) {
		return journal_reason(out_reason, "unknown kind", CARELOG_EUNKNOWN);
	}
	if (!journal_text_is_ascii(h->patient, JOURNAL_PATIENT_BYTES_MAX, 0x21)) {
		return journal_reason(out_reason, journal_reason_patient, CARELOG_EINVAL);
	}
	if (!journal_text_is_ascii(h->author, JOURNAL_ACTOR_BYTES_MAX, 0x21)) {
		return journal_reason(out_reason, journal_reason_author, CARELOG_EINVAL);
	}
	if (!journal_text_is_ascii(h->role, JOURNAL_ROLE_BYTES_MAX, 0x21)) {
		return journal_reason(out_reason, journal_reason_role, CARELOG_EINVAL);
	}
	if (!journal_text_is_ascii(h->org, JOURNAL_ORG_BYTES_MAX, 0x21)) {
		return journal_reason(out_reason, journal_reason_org, CARELOG_EINVAL);
	}
	if (!journal_text_is_utf8_line(h->unit, JOURNAL_UNIT_BYTES_MAX)) {
		return journal_reason(out_reason, journal_reason_unit, CARELOG_EINVAL);
	}
	if (h->node_id == 0) {
		return journal_reason(out_reason, "node id must not be 0", CARELOG_EINVAL);
	}
	if (h->author_time_ms == 0) {
		return journal_reason(out_reason, "author time must not be 0", CARELOG_EINVAL);
	}
	if (!journal_text_len(h->status, JOURNAL_STATUS_BYTES_MAX, &n) ||
	    !journal_in_list(journal_statuses, h->status)) {
		return journal_reason(out_reason, "unknown status", CARELOG_EUNKNOWN);
	}
	if (!h->has_corrects &&
	    (strcmp(h->status, "amended") == 0 || strcmp(h->status, "entered-in-error") == 0)) {
		return journal_reason(
			out_reason,
			"status amended or entered-in-error needs the corrected entry's id",
			CARELOG_EINVAL);
	}
	if (!journal_text_len(h->sensitivity, JOURNAL_SENSITIVITY_BYTES_MAX, &n) ||
	    !journal_in_list(journal_sensitivities, h->sensitivity)) {
		return journal_reason(out_reason, "unknown sensitivity", CARELOG_EUNKNOWN);
	}
	if (!journal_text_is_ascii(h->request_id, JOURNAL_REQUEST_ID_BYTES_MAX, 0x20)) {
		return journal_reason(out_reason, journal_reason_request_id, CARELOG_EINVAL);
	}
	if (!journal_media_type_valid(h->media_type)) {
		return journal_reason(out_reason, journal_reason_media_type, CARELOG_EINVAL);
	}
	if (h->body_size > JOURNAL_BODY_BYTES_LIMIT) {
		return journal_reason(out_reason, "body exceeds the format's 64 MiB limit",
				      CARELOG_EINVAL);
	}
	return journal_policy_header_check(h, out_reason);
}

/* Packs `h` field by field without checking it (decoders re-pack what they decoded). */
static void journal_header_pack(msgpack_packer *pk, const struct journal_header *h)
{
	const char *const *k = journal_header_keys;
	/* The writer latches its first failure, so later calls are no-ops: results are read
	 * once, from the writer, by the caller. */
	(void)msgpack_pack_map(pk, JOURNAL_HEADER_KEYS_COUNT);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_V]);
	(void)msgpack_pack_uint64(pk, h->version);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_KIND]);
	(void)journal_mp_pack_cstr(pk, h->kind);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_PATIENT]);
	(void)journal_mp_pack_cstr(pk, h->patient);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_AUTHOR]);
	(void)journal_mp_pack_cstr(pk, h->author);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_ROLE]);
	(void)journal_mp_pack_cstr(pk, h->role);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_ORG]);
	(void)journal_mp_pack_cstr(pk, h->org);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_UNIT]);
	(void)journal_mp_pack_cstr(pk, h->unit);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_NODE]);
	(void)msgpack_pack_uint64(pk, h->node_id);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_AUTHOR_TIME]);
	(void)msgpack_pack_uint64(pk, h->author_time_ms);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_CLINICAL_TIME]);
	(void)msgpack_pack_uint64(pk, h->clinical_time_ms);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_STATUS]);
	(void)journal_mp_pack_cstr(pk, h->status);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_CORRECTS]);
	if (h->has_corrects) {
		(void)msgpack_pack_bin_with_body(pk, h->corrects, JOURNAL_ID_BYTES);
	} else {
		(void)msgpack_pack_nil(pk);
	}
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_SENSITIVITY]);
	(void)journal_mp_pack_cstr(pk, h->sensitivity);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_REQUEST_ID]);
	(void)journal_mp_pack_cstr(pk, h->request_id);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_MEDIA_TYPE]);
	(void)journal_mp_pack_cstr(pk, h->media_type);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_BODY_SIZE]);
	(void)msgpack_pack_uint64(pk, h->body_size);
	(void)journal_mp_pack_cstr(pk, k[JOURNAL_KEY_BODY_HASH]);
	(void)msgpack_pack_bin_with_body(pk, h->body_hash, CL_SHA256_BYTES);
}

int journal_header_encode(const struct journal_header *h, uint8_t *out, size_t out_capacity,
			  size_t *out_len)
{
	CL_ASSERT(h != NULL && out_len != NULL);
	int rc = journal_header_check(h, NULL);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init(&w, &pk, out, out_capacity);
	journal_header_pack(&pk, h);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_ETOOBIG;
	}
	/* Every field is bounded, so a checked header always fits the advertised maximum. */
	CL_ASSERT(w.len <= JOURNAL_HEADER_BYTES_MAX);
	*out_len = w.len;
	return CARELOG_OK;
}

static bool journal_obj_u64(const msgpack_object *o, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		return false;
	}
	*out = o->via.u64;
	return true;
}

static bool journal_obj_bin_exact(const msgpack_object *o, uint8_t *out, size_t n)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n) {
		return false;
	}
	memcpy(out, o->via.bin.ptr, n);
	return true;
}

/* Fills `h` from a decoded msgpack object: exact keys in order, right types and lengths. */
static int journal_header_from_object(const msgpack_object *o, struct journal_header *h)
{
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0) {
		return CARELOG_EPROTO;
	}
	const msgpack_object_kv *kv = o->via.map.ptr;
	uint64_t version;
	if (!journal_mp_is_key(&kv[0].key, "v") || !journal_obj_u64(&kv[0].val, &version)) {
		return CARELOG_EPROTO;
	}
	/* The version decides how to read the rest: judge it before the rest's shape. */
	if (version != JOURNAL_FORMAT_VERSION) {
		return CARELOG_EVERSION;
	}
	if (o->via.map.size != JOURNAL_HEADER_KEYS_COUNT) {
		return CARELOG_EPROTO;
	}
	for (size_t i = 0; i < JOURNAL_HEADER_KEYS_COUNT; i++) {
		if (!journal_mp_is_key(&kv[i].key, journal_header_keys[i])) {
			return CARELOG_EPROTO;
		}
	}
	memset(h, 0, sizeof(*h));
	h->version = JOURNAL_FORMAT_VERSION;
	const msgpack_object *v[JOURNAL_HEADER_KEYS_COUNT];
	for (size_t i = 0; i < JOURNAL_HEADER_KEYS_COUNT; i++) {
		v[i] = &kv[i].val;
	}
	bool ok =
		journal_mp_copy_str(v[JOURNAL_KEY_KIND], h->kind, JOURNAL_KIND_BYTES_MAX, false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_PATIENT], h->patient, JOURNAL_PATIENT_BYTES_MAX,
				    false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_AUTHOR], h->author, JOURNAL_ACTOR_BYTES_MAX,
				    false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_ROLE], h->role, JOURNAL_ROLE_BYTES_MAX, false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_ORG], h->org, JOURNAL_ORG_BYTES_MAX, false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_UNIT], h->unit, JOURNAL_UNIT_BYTES_MAX, true) &&
		journal_obj_u64(v[JOURNAL_KEY_NODE], &h->node_id) &&
		journal_obj_u64(v[JOURNAL_KEY_AUTHOR_TIME], &h->author_time_ms) &&
		journal_obj_u64(v[JOURNAL_KEY_CLINICAL_TIME], &h->clinical_time_ms) &&
		journal_mp_copy_str(v[JOURNAL_KEY_STATUS], h->status, JOURNAL_STATUS_BYTES_MAX,
				    false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_SENSITIVITY], h->sensitivity,
				    JOURNAL_SENSITIVITY_BYTES_MAX, false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_REQUEST_ID], h->request_id,
				    JOURNAL_REQUEST_ID_BYTES_MAX, false) &&
		journal_mp_copy_str(v[JOURNAL_KEY_MEDIA_TYPE], h->media_type,
				    JOURNAL_MEDIA_TYPE_BYTES_MAX, false) &&
		journal_obj_u64(v[JOURNAL_KEY_BODY_SIZE], &h->body_size) &&
		journal_obj_bin_exact(v[JOURNAL_KEY_BODY_HASH], h->body_hash, CL_SHA256_BYTES);
	if (!ok) {
		return CARELOG_EPROTO;
	}
	const msgpack_object *corrects = v[JOURNAL_KEY_CORRECTS];
	if (corrects->type == MSGPACK_OBJECT_NIL) {
		h->has_corrects = false;
	} else if (journal_obj_bin_exact(corrects, h->corrects, JOURNAL_ID_BYTES)) {
		h->has_corrects = true;
	} else {
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

int journal_header_decode(const uint8_t *bytes, size_t len, struct journal_header *out)
{
	CL_ASSERT(out != NULL);
	if (bytes == NULL || len == 0 || len > JOURNAL_HEADER_BYTES_MAX) {
		return CARELOG_EPROTO;
	}
	struct journal_header h;
	msgpack_unpacked u;
	int rc = journal_mp_unpack(&u, bytes, len);
	if (rc == CARELOG_OK) {
		rc = journal_header_from_object(&u.data, &h);
	}
	msgpack_unpacked_destroy(&u);
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* One byte form per header: re-packing what was read must give the input back, which
	 * refuses non-shortest integers and lengths that msgpack-c would accept. */
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init_compare(&w, &pk, bytes, len);
	journal_header_pack(&pk, &h);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_EPROTO;
	}
	*out = h;
	return CARELOG_OK;
}

/* ---- record ---------------------------------------------------------------------------- */

/* Bytes of a msgpack bin length prefix for `n` bytes (msgpack-c picks the shortest). */
static size_t journal_bin_prefix_bytes(size_t n)
{
	if (n < 256) {
		return 2;
	}
	return n < 65536 ? 3 : 5;
}

size_t journal_record_size(size_t header_len, size_t body_len)
{
	return 1 /* fixarray */ + 1 /* version */ + 9 /* leader time, at most uint64 */ +
	       journal_bin_prefix_bytes(header_len) + header_len + 2 + CL_SIGNATURE_BYTES + 2 +
	       JOURNAL_SALT_BYTES + journal_bin_prefix_bytes(body_len) + body_len;
}

static void journal_record_pack(msgpack_packer *pk, const struct journal_record *r)
{
	(void)msgpack_pack_array(pk, JOURNAL_RECORD_FIELDS);
	(void)msgpack_pack_uint64(pk, JOURNAL_RECORD_VERSION);
	(void)msgpack_pack_uint64(pk, r->leader_time_ms);
	(void)msgpack_pack_bin_with_body(pk, r->header, r->header_len);
	(void)msgpack_pack_bin_with_body(pk, r->signature, CL_SIGNATURE_BYTES);
	if (r->salt == NULL) {
		/* Erased: no salt, and in the body's place the index of the tombstone that erased
		 * it, which a node receiving the stripped record checks when it applies that index. */
		(void)msgpack_pack_nil(pk);
		(void)msgpack_pack_uint64(pk, r->erased_by_index);
		return;
	}
	(void)msgpack_pack_bin_with_body(pk, r->salt, JOURNAL_SALT_BYTES);
	/* An empty body may come as NULL: it packs as an empty bin, never as nil. */
	(void)msgpack_pack_bin(pk, r->body_len);
	if (r->body_len > 0) {
		(void)msgpack_pack_bin_body(pk, r->body, r->body_len);
	}
}

int journal_record_encode(const struct journal_record *r, uint8_t *out, size_t out_capacity,
			  size_t *out_len)
{
	CL_ASSERT(r != NULL && out_len != NULL);
	if (r->header == NULL || r->header_len == 0 || r->header_len > JOURNAL_HEADER_BYTES_MAX ||
	    r->signature == NULL || r->body_len > JOURNAL_BODY_BYTES_LIMIT) {
		return CARELOG_EINVAL;
	}
	/* Erased means salt and body both gone and the tombstone named; a body without its salt
	 * could never verify. */
	if ((r->salt == NULL && (r->body != NULL || r->body_len != 0 || r->erased_by_index == 0)) ||
	    (r->salt != NULL && r->erased_by_index != 0) || (r->body == NULL && r->body_len != 0)) {
		return CARELOG_EINVAL;
	}
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init(&w, &pk, out, out_capacity);
	journal_record_pack(&pk, r);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_ETOOBIG;
	}
	*out_len = w.len;
	return CARELOG_OK;
}

static int journal_record_from_object(const msgpack_object *o, struct journal_record *r)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0) {
		return CARELOG_EPROTO;
	}
	const msgpack_object *e = o->via.array.ptr;
	uint64_t version;
	if (!journal_obj_u64(&e[0], &version)) {
		return CARELOG_EPROTO;
	}
	if (version != JOURNAL_RECORD_VERSION) {
		return CARELOG_EVERSION;
	}
	if (o->via.array.size != JOURNAL_RECORD_FIELDS) {
		return CARELOG_EPROTO;
	}
	memset(r, 0, sizeof(*r));
	if (!journal_obj_u64(&e[1], &r->leader_time_ms)) {
		return CARELOG_EPROTO;
	}
	if (e[2].type != MSGPACK_OBJECT_BIN || e[2].via.bin.size == 0 ||
	    e[2].via.bin.size > JOURNAL_HEADER_BYTES_MAX) {
		return CARELOG_EPROTO;
	}
	r->header = (const uint8_t *)e[2].via.bin.ptr;
	r->header_len = e[2].via.bin.size;
	if (e[3].type != MSGPACK_OBJECT_BIN || e[3].via.bin.size != CL_SIGNATURE_BYTES) {
		return CARELOG_EPROTO;
	}
	r->signature = (const uint8_t *)e[3].via.bin.ptr;
	if (e[4].type == MSGPACK_OBJECT_NIL) {
		/* erased: the tombstone's index (> 0) where the body was */
		return journal_obj_u64(&e[5], &r->erased_by_index) && r->erased_by_index > 0
		           ? CARELOG_OK
		           : CARELOG_EPROTO;
	}
	if (e[4].type != MSGPACK_OBJECT_BIN || e[4].via.bin.size != JOURNAL_SALT_BYTES ||
	    e[5].type != MSGPACK_OBJECT_BIN || e[5].via.bin.size > JOURNAL_BODY_BYTES_LIMIT) {
		return CARELOG_EPROTO;
	}
	r->salt = (const uint8_t *)e[4].via.bin.ptr;
	r->body = (const uint8_t *)e[5].via.bin.ptr;
	r->body_len = e[5].via.bin.size;
	return CARELOG_OK;
}

int journal_record_decode(const uint8_t *data, size_t len, struct journal_record *out)
{
	CL_ASSERT(out != NULL);
	if (data == NULL || len == 0) {
		return CARELOG_EPROTO;
	}
	struct journal_record r;
	msgpack_unpacked u;
	int rc = journal_mp_unpack(&u, data, len);
	if (rc == CARELOG_OK) {
		rc = journal_record_from_object(&u.data, &r);
	}
	msgpack_unpacked_destroy(&u);
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* The views point into `data`, so this compares the framing only (the pointer test in
	 * the writer skips comparing the body with itself). */
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init_compare(&w, &pk, data, len);
	journal_record_pack(&pk, &r);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_EPROTO;
	}
	*out = r;
	return CARELOG_OK;
}

/* ---- sign and verify ------------------------------------------------------------------- */

void journal_entry_id(const uint8_t *header, size_t header_len, uint8_t out[JOURNAL_ID_BYTES])
{
	cl_sha256(out, header, header_len);
}

void journal_body_hash(const uint8_t salt[JOURNAL_SALT_BYTES], const uint8_t *body,
		       size_t body_len, uint8_t out[CL_SHA256_BYTES])
{
	struct cl_sha256_ctx ctx;
	cl_sha256_init(&ctx);
	cl_sha256_update(&ctx, salt, JOURNAL_SALT_BYTES);
	if (body_len > 0) {
		cl_sha256_update(&ctx, body, body_len);
	}
	cl_sha256_final(&ctx, out);
}

/* Copies an optional input string, `fallback` when NULL or empty; false if it does not fit. */
static bool journal_copy_in(char *dst, size_t dst_size, const char *src, const char *fallback)
{
	const char *s = (src == NULL || src[0] == '\0') ? fallback : src;
	size_t n = strnlen(s, dst_size);
	if (n >= dst_size) {
		return false;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* Builds the header for `in` as signed by `signer`; the reason names the first bad field. */
static int journal_header_build(const struct journal_append *in,
				const struct journal_signer *signer, uint64_t author_time_ms,
				const uint8_t salt[JOURNAL_SALT_BYTES], struct journal_header *h,
				const char **out_reason)
{
	memset(h, 0, sizeof(*h));
	h->version = JOURNAL_FORMAT_VERSION;
	const struct {
		char *dst;
		size_t size;
		const char *src;
		const char *fallback;
		const char *reason; /* when the input does not fit the field */
		int error;
	} fields[] = {
		{h->kind, sizeof(h->kind), in->kind, "", "unknown kind", CARELOG_EUNKNOWN},
		{h->patient, sizeof(h->patient), in->patient, "", journal_reason_patient,
		 CARELOG_EINVAL},
		{h->author, sizeof(h->author), in->author, "", journal_reason_author,
		 CARELOG_EINVAL},
		{h->role, sizeof(h->role), in->role, "", journal_reason_role, CARELOG_EINVAL},
		{h->org, sizeof(h->org), signer->org, "", journal_reason_org, CARELOG_EINVAL},
		{h->unit, sizeof(h->unit), in->unit, "", journal_reason_unit, CARELOG_EINVAL},
		{h->status, sizeof(h->status), in->status, "final", "unknown status",
		 CARELOG_EUNKNOWN},
		{h->sensitivity, sizeof(h->sensitivity), in->sensitivity, "normal",
		 "unknown sensitivity", CARELOG_EUNKNOWN},
		{h->request_id, sizeof(h->request_id), in->request_id, "",
		 journal_reason_request_id, CARELOG_EINVAL},
		{h->media_type, sizeof(h->media_type), in->media_type, "text/plain",
		 journal_reason_media_type, CARELOG_EINVAL},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(fields); i++) {
		if (!journal_copy_in(fields[i].dst, fields[i].size, fields[i].src,
				     fields[i].fallback)) {
			return journal_reason(out_reason, fields[i].reason, fields[i].error);
		}
	}
	h->node_id = signer->node_id;
	h->author_time_ms = author_time_ms;
	h->clinical_time_ms = in->clinical_time_ms != 0 ? in->clinical_time_ms : author_time_ms;
	h->has_corrects = in->has_corrects;
	if (in->has_corrects) {
		memcpy(h->corrects, in->corrects, JOURNAL_ID_BYTES);
	}
	h->body_size = in->body_len;
	journal_body_hash(salt, in->body, in->body_len, h->body_hash);
	return journal_header_check(h, out_reason);
}

int journal_sign_with_salt(const struct journal_append *in, const struct journal_signer *signer,
			   uint64_t author_time_ms, uint64_t body_max_bytes,
			   const uint8_t salt[JOURNAL_SALT_BYTES], struct journal_signed *out,
			   const char **out_reason)
{
	CL_ASSERT(in != NULL && signer != NULL && salt != NULL && out != NULL);
	if (signer->org == NULL || signer->secret_key == NULL) {
		return journal_reason(out_reason, "signer has no organisation or key",
				      CARELOG_EINVAL);
	}
	if (in->body == NULL && in->body_len != 0) {
		return journal_reason(out_reason, "body missing", CARELOG_EINVAL);
	}
	uint64_t limit = body_max_bytes < JOURNAL_BODY_BYTES_LIMIT ? body_max_bytes
								   : JOURNAL_BODY_BYTES_LIMIT;
	if ((uint64_t)in->body_len > limit) {
		return journal_reason(out_reason, "body exceeds body_max_bytes", CARELOG_ETOOBIG);
	}
	struct journal_header h;
	int rc = journal_header_build(in, signer, author_time_ms, salt, &h, out_reason);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct journal_signed s;
	rc = journal_header_encode(&h, s.header_buf, sizeof(s.header_buf), &s.header_len);
	CL_ASSERT(rc == CARELOG_OK); /* checked above, and a checked header always fits */
	rc = cl_sign(s.signature, CL_SIGN_DOMAIN_ENTRY, s.header_buf, s.header_len,
		     signer->secret_key);
	if (rc != CARELOG_OK) {
		return journal_reason(out_reason, "signing failed", rc);
	}
	memcpy(s.salt, salt, JOURNAL_SALT_BYTES);
	journal_entry_id(s.header_buf, s.header_len, s.id);
	*out = s;
	return CARELOG_OK;
}

int journal_sign(const struct journal_append *in, const struct journal_signer *signer,
		 uint64_t author_time_ms, uint64_t body_max_bytes, struct journal_signed *out,
		 const char **out_reason)
{
	uint8_t salt[JOURNAL_SALT_BYTES];
	cl_random_bytes(salt, sizeof(salt));
	return journal_sign_with_salt(in, signer, author_time_ms, body_max_bytes, salt, out,
				      out_reason);
}

/* Signature and content checks after the header decoded (shared with the membership-aware
 * verification). */
int journal_verify_decoded(const struct journal_record *r, const struct journal_header *h,
			   const uint8_t public_key[CL_SIGN_PUBLIC_BYTES])
{
	if (cl_verify(r->signature, CL_SIGN_DOMAIN_ENTRY, r->header, r->header_len, public_key) !=
	    CARELOG_OK) {
		return CARELOG_EBADSIG;
	}
	int rc = journal_header_check(h, NULL);
	if (rc != CARELOG_OK) {
		/* Authentic but breaking the format's rules: malformed, unless it names a value a
		 * newer format might know (EUNKNOWN stops apply instead of rejecting). */
		return rc == CARELOG_EUNKNOWN ? CARELOG_EUNKNOWN : CARELOG_EPROTO;
	}
	if (r->salt == NULL) {
		return r->body == NULL ? CARELOG_OK : CARELOG_EPROTO; /* erased lawfully */
	}
	if (r->body == NULL && r->body_len != 0) {
		return CARELOG_EPROTO;
	}
	if ((uint64_t)r->body_len != h->body_size) {
		return CARELOG_ECORRUPT;
	}
	uint8_t hash[CL_SHA256_BYTES];
	journal_body_hash(r->salt, r->body, r->body_len, hash);
	if (cl_memcmp_ct(hash, h->body_hash, CL_SHA256_BYTES) != 0) {
		return CARELOG_ECORRUPT;
	}
	return CARELOG_OK;
}

int journal_verify(const struct journal_record *r, const uint8_t public_key[CL_SIGN_PUBLIC_BYTES],
		   struct journal_header *out_header, uint8_t out_id[JOURNAL_ID_BYTES])
{
	CL_ASSERT(r != NULL && public_key != NULL);
	if (r->header == NULL || r->signature == NULL) {
		return CARELOG_EPROTO;
	}
	struct journal_header h;
	int rc = journal_header_decode(r->header, r->header_len, &h);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = journal_verify_decoded(r, &h, public_key);
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

/* ---- keys and chain -------------------------------------------------------------------- */

void journal_patient_key(const char *patient, uint8_t out[CL_SHA256_BYTES])
{
	CL_ASSERT(patient != NULL);
	struct cl_sha256_ctx ctx;
	cl_sha256_init(&ctx);
	cl_sha256_update(&ctx, (const uint8_t *)journal_patient_key_domain,
			 JOURNAL_PATIENT_KEY_DOMAIN_BYTES);
	cl_sha256_update(&ctx, (const uint8_t *)patient, strlen(patient));
	cl_sha256_final(&ctx, out);
}

enum {
	JOURNAL_LEAF_NOOP = 0x00,
	JOURNAL_LEAF_RECORD = 0x01,
	JOURNAL_LEAF_OPAQUE = 0x02,
};

void journal_chain_leaf_record(uint64_t index, const struct journal_record *r,
			       uint8_t out[CL_SHA256_BYTES])
{
	CL_ASSERT(r != NULL && r->header != NULL && r->signature != NULL);
	uint8_t buf[1 + 8 + 8 + JOURNAL_ID_BYTES + CL_SIGNATURE_BYTES];
	buf[0] = JOURNAL_LEAF_RECORD;
	cl_put_u64be(buf + 1, index);
	cl_put_u64be(buf + 9, r->leader_time_ms);
	journal_entry_id(r->header, r->header_len, buf + 17);
	memcpy(buf + 17 + JOURNAL_ID_BYTES, r->signature, CL_SIGNATURE_BYTES);
	cl_sha256(out, buf, sizeof(buf));
}

void journal_chain_leaf_noop(uint64_t index, uint8_t out[CL_SHA256_BYTES])
{
	uint8_t buf[1 + 8];
	buf[0] = JOURNAL_LEAF_NOOP;
	cl_put_u64be(buf + 1, index);
	cl_sha256(out, buf, sizeof(buf));
}

void journal_chain_leaf_opaque(uint64_t index, uint8_t type, const uint8_t *data, size_t len,
			       uint8_t out[CL_SHA256_BYTES])
{
	CL_ASSERT(data != NULL || len == 0);
	uint8_t buf[1 + 1 + 8 + CL_SHA256_BYTES];
	buf[0] = JOURNAL_LEAF_OPAQUE;
	buf[1] = type;
	cl_put_u64be(buf + 2, index);
	cl_sha256(buf + 10, data, len);
	cl_sha256(out, buf, sizeof(buf));
}

void journal_chain_extend(uint8_t chain[CL_SHA256_BYTES], const uint8_t leaf[CL_SHA256_BYTES])
{
	uint8_t buf[2 * CL_SHA256_BYTES];
	memcpy(buf, chain, CL_SHA256_BYTES);
	memcpy(buf + CL_SHA256_BYTES, leaf, CL_SHA256_BYTES);
	cl_sha256(chain, buf, sizeof(buf));
}

/* A kind of format v1: clinical (journal_kinds) or a policy kind (policy.h). */
bool journal_kind_known(const char *kind)
{
	return kind != NULL &&
	       (journal_in_list(journal_kinds, kind) || policy_kind_of(kind) != POLICY_KIND_NONE);
}
