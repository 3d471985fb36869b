/* The journal domain: entry envelope (signed header + body), log records, chain, kinds. */
#ifndef CARELOG_NODE_JOURNAL_H
#define CARELOG_NODE_JOURNAL_H

/*
 * Byte-exact format in docs/entry-format.md. Summary:
 *
 *   header   msgpack map, encoded once by the author's node and stored exactly as signed
 *   entry id SHA-256(header bytes)
 *   signature Ed25519 by the author node's identity key over "carelog entry v1\0" || header
 *   body_hash SHA-256(salt || body), salt 16 random bytes kept beside the body (not in the header)
 *   record   the data of a NORMAL log entry: msgpack array
 *            [1, leader_time_ms, header (bin), signature (bin 64), salt (bin 16|nil),
 *             body (bin|nil)]
 *   chain    chain_0 = 32 zero bytes; chain_i = SHA-256(chain_{i-1} || leaf_i), leaf per entry
 *            type (journal_chain_leaf_*); covers header and signature, never body or salt, so
 *            lawful erasure keeps proofs valid.
 *
 * Strings in decoded headers are copied into fixed arrays (NUL-terminated); limits below.
 */

#include "common/crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	JOURNAL_FORMAT_VERSION = 1,      /* header "v" */
	JOURNAL_RECORD_VERSION = 1,      /* record array element 0 */
	JOURNAL_ID_BYTES = CL_SHA256_BYTES,
	JOURNAL_SALT_BYTES = 16,
	JOURNAL_KIND_BYTES_MAX = 32,
	JOURNAL_PATIENT_BYTES_MAX = 64,
	JOURNAL_ACTOR_BYTES_MAX = 64,    /* practitioner id */
	JOURNAL_ROLE_BYTES_MAX = 32,
	JOURNAL_ORG_BYTES_MAX = 64,
	JOURNAL_UNIT_BYTES_MAX = 64,
	JOURNAL_STATUS_BYTES_MAX = 24,
	JOURNAL_SENSITIVITY_BYTES_MAX = 24,
	JOURNAL_REQUEST_ID_BYTES_MAX = 64,
	JOURNAL_MEDIA_TYPE_BYTES_MAX = 64,
	JOURNAL_HEADER_BYTES_MAX = 2048, /* an encoded header never exceeds this */
	JOURNAL_BODY_BYTES_LIMIT = 64 * 1024 * 1024, /* hard ceiling of the replicated parameter */
};

/* A decoded header; every string NUL-terminated. */
struct journal_header {
	uint32_t version;
	char kind[JOURNAL_KIND_BYTES_MAX + 1];
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char author[JOURNAL_ACTOR_BYTES_MAX + 1];
	char role[JOURNAL_ROLE_BYTES_MAX + 1];
	char org[JOURNAL_ORG_BYTES_MAX + 1];
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
	uint64_t node_id; /* authoring node: its key made the signature */
	uint64_t author_time_ms;
	uint64_t clinical_time_ms;
	char status[JOURNAL_STATUS_BYTES_MAX + 1];
	bool has_corrects;
	uint8_t corrects[JOURNAL_ID_BYTES];
	char sensitivity[JOURNAL_SENSITIVITY_BYTES_MAX + 1];
	char request_id[JOURNAL_REQUEST_ID_BYTES_MAX + 1];
	char media_type[JOURNAL_MEDIA_TYPE_BYTES_MAX + 1];
	uint64_t body_size;
	uint8_t body_hash[CL_SHA256_BYTES];
};

/* Checks a header's fields against the format's rules (known kind, status, sensitivity,
 * non-empty patient/author/org/request id, lengths). Returns CARELOG_EINVAL or
 * CARELOG_EUNKNOWN (unknown kind, status or sensitivity: values a newer format version might
 * know, so apply stops instead of rejecting) and, if `out_reason` is non-NULL, a static reason
 * text. The rules are listed in docs/entry-format.md. */
int journal_header_check(const struct journal_header *h, const char **out_reason);

/* Encodes `h` canonically. Returns journal_header_check's error if `h` does not pass it, and
 * CARELOG_ETOOBIG if out_capacity is too small (JOURNAL_HEADER_BYTES_MAX always suffices). */
int journal_header_encode(const struct journal_header *h, uint8_t *out, size_t out_capacity,
			  size_t *out_len);

/* Strict decode: exact key set and order, right types, lengths within limits, no trailing
 * bytes. CARELOG_EVERSION for an unknown "v", CARELOG_EPROTO for anything malformed. */
int journal_header_decode(const uint8_t *bytes, size_t len, struct journal_header *out);

/* A NORMAL log entry's data, decoded as views into the record bytes. */
struct journal_record {
	uint64_t leader_time_ms;
	const uint8_t *header;
	size_t header_len;
	const uint8_t *signature; /* CL_SIGNATURE_BYTES */
	const uint8_t *salt;      /* JOURNAL_SALT_BYTES, or NULL once erased */
	const uint8_t *body;      /* NULL once erased */
	size_t body_len;
	uint64_t erased_by_index; /* erased: the log index of its tombstone (> 0); else 0 */
};

/* Upper bound of the encoded size of a record with these parts (for buffer sizing). An erased
 * record (salt and body NULL) is smaller. */
size_t journal_record_size(size_t header_len, size_t body_len);
/* Erased records have salt == NULL, body == NULL and erased_by_index > 0; otherwise salt is
 * set, erased_by_index is 0 and body may be NULL only when body_len is 0. CARELOG_EINVAL for inconsistent parts, CARELOG_ETOOBIG if
 * out_capacity is too small. Header bytes are copied as they are (not checked). */
int journal_record_encode(const struct journal_record *r, uint8_t *out, size_t out_capacity,
			  size_t *out_len);
/* CARELOG_EVERSION for an unknown record version, CARELOG_EPROTO for malformed bytes (also
 * for any non-canonical msgpack). The views in `out` point into `data` (borrowed). */
int journal_record_decode(const uint8_t *data, size_t len, struct journal_record *out);

/* The identity a node signs with. The secret is borrowed. */
struct journal_signer {
	uint64_t node_id;
	const char *org; /* from the applied configuration, never from the caller */
	const uint8_t *secret_key; /* CL_SIGN_SECRET_BYTES */
};

/* What a client asks to append (strings borrowed; NULL or "" for optional ones). */
struct journal_append {
	const char *kind;
	const char *patient;
	const char *author;
	const char *role;
	const char *unit;
	const char *status;      /* default "final" */
	const char *sensitivity; /* default "normal" */
	const char *request_id;
	const char *media_type;  /* default "text/plain" */
	uint64_t clinical_time_ms; /* 0 = author time */
	bool has_corrects;
	uint8_t corrects[JOURNAL_ID_BYTES];
	const uint8_t *body;
	size_t body_len;
};

/* A freshly signed envelope. header bytes live in `header_buf`. */
struct journal_signed {
	uint8_t header_buf[JOURNAL_HEADER_BYTES_MAX];
	size_t header_len;
	uint8_t signature[CL_SIGNATURE_BYTES];
	uint8_t salt[JOURNAL_SALT_BYTES];
	uint8_t id[JOURNAL_ID_BYTES];
};

/* Builds the header (org and node id from `signer`, author time given), salts and hashes the
 * body, encodes once and signs. CARELOG_EINVAL / CARELOG_EUNKNOWN with a reason on bad input;
 * CARELOG_ETOOBIG if body_len > body_max_bytes. */
int journal_sign(const struct journal_append *in, const struct journal_signer *signer,
		 uint64_t author_time_ms, uint64_t body_max_bytes, struct journal_signed *out,
		 const char **out_reason);

/* journal_sign with a given salt instead of a random one: for known-answer tests and for
 * replaying a signing deterministically. Never use a fixed or reused salt in production: the
 * salt is what stops guessing a short body from its hash. */
int journal_sign_with_salt(const struct journal_append *in, const struct journal_signer *signer,
			   uint64_t author_time_ms, uint64_t body_max_bytes,
			   const uint8_t salt[JOURNAL_SALT_BYTES], struct journal_signed *out,
			   const char **out_reason);

/* Verifies a stored record: signature over the stored header bytes with `public_key`, header
 * decodes and passes journal_header_check, body size and salted hash match (when the body is
 * present). Fills `out_header`, `out_id` (either may be NULL) on success only.
 * Checks run in this order, the first failure decides (docs/entry-format.md, "Verification"):
 *   decode  CARELOG_EPROTO (malformed header) or CARELOG_EVERSION (unknown "v")
 *   sign    CARELOG_EBADSIG
 *   rules   CARELOG_EUNKNOWN (unknown kind/status/sensitivity) or CARELOG_EPROTO (other rule)
 *   body    CARELOG_ECORRUPT (size or salted hash differ); an erased record (no salt, no body)
 *           passes. */
int journal_verify(const struct journal_record *r, const uint8_t public_key[CL_SIGN_PUBLIC_BYTES],
		   struct journal_header *out_header, uint8_t out_id[JOURNAL_ID_BYTES]);

/* The steps of journal_verify after decoding (signature, rules, body) for a header already
 * decoded from r->header: for callers that needed the header to find the key. */
int journal_verify_decoded(const struct journal_record *r, const struct journal_header *h,
			   const uint8_t public_key[CL_SIGN_PUBLIC_BYTES]);

/* body_hash = SHA-256(salt || body) (docs/entry-format.md). */
void journal_body_hash(const uint8_t salt[JOURNAL_SALT_BYTES], const uint8_t *body,
		       size_t body_len, uint8_t out[CL_SHA256_BYTES]);

/* Entry id of header bytes. */
void journal_entry_id(const uint8_t *header, size_t header_len, uint8_t out[JOURNAL_ID_BYTES]);

/* Patient index key: SHA-256("carelog patient v1\0" || patient id). */
void journal_patient_key(const char *patient, uint8_t out[CL_SHA256_BYTES]);

/* Chain leaves (see docs/entry-format.md) and one chain step. */
void journal_chain_leaf_record(uint64_t index, const struct journal_record *r,
			       uint8_t out[CL_SHA256_BYTES]);
void journal_chain_leaf_noop(uint64_t index, uint8_t out[CL_SHA256_BYTES]);
void journal_chain_leaf_opaque(uint64_t index, uint8_t type, const uint8_t *data, size_t len,
			       uint8_t out[CL_SHA256_BYTES]); /* CONF entries, malformed records */
void journal_chain_extend(uint8_t chain[CL_SHA256_BYTES], const uint8_t leaf[CL_SHA256_BYTES]);

/* The clinical kinds format version 1 knows (NULL-terminated list, for --help and checks). */
extern const char *const journal_kinds[];

/* True if `kind` is a kind of format v1: a clinical kind (journal_kinds) or a policy kind
 * (node/journal/policy.h). */
bool journal_kind_known(const char *kind);

/* The format's text rules (docs/entry-format.md section 2), shared with the policy codec:
 * identifier = 1..max_bytes bytes 0x21-0x7e; line = 0..max_bytes bytes of UTF-8 without
 * control characters (the header's `unit` rule); a sensitivity of format v1. */
bool journal_text_is_identifier(const char *s, size_t max_bytes);
bool journal_text_is_line(const char *s, size_t max_bytes);
bool journal_sensitivity_known(const char *s);

#endif
