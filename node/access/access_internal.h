/* node/access internals: policy db tables (keys, row layouts) and judging shared by apply/serve. */
#ifndef CARELOG_NODE_ACCESS_INTERNAL_H
#define CARELOG_NODE_ACCESS_INTERNAL_H

/*
 * Every table lives in the storage "policy" db under a one-byte ASCII tag (docs/access.md,
 * "Policy state"). Key strings are length-prefixed (u8) so a prefix never matches a longer name;
 * integers are big-endian (common/bytes.h) so keys sort by them. Values are small fixed layouts
 * read with bounds checks: a value that does not parse is CARELOG_ECORRUPT, never guessed at.
 */

#include "node/access/access.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum access_tag {
	ACCESS_TAG_AMBULANCE = 'A',   /* A | pkey | org | actor | index -> id, from, to */
	ACCESS_TAG_BLOCK = 'B',       /* B | pkey | index -> block */
	ACCESS_TAG_PATIENT = 'D',     /* D | pkey -> index, birth date */
	ACCESS_TAG_ERASURE = 'E',     /* E | entry id -> erasure */
	ACCESS_TAG_REFUSED = 'F',     /* F | entry id -> reason */
	ACCESS_TAG_ENTRY = 'G',       /* G | policy entry id -> kind, index, flag, state row key */
	ACCESS_TAG_WITHHOLD = 'H',    /* H | entry id | index -> withhold id, from */
	ACCESS_TAG_IMPLICIT = 'I',    /* I | pkey | org -> last time, index */
	ACCESS_TAG_PARAMS = 'K',      /* K -> params, index */
	ACCESS_TAG_LOG_PATIENT = 'L', /* L | pkey | time | node | seq -> audit row */
	ACCESS_TAG_LOG_ACTOR = 'M',   /* M | org | actor | time | node | seq -> audit row */
	ACCESS_TAG_BTG_OPEN = 'O',    /* O | index -> grant row key */
	ACCESS_TAG_BTG_OPEN_PATIENT = 'Q', /* Q | pkey | index -> grant row key */
	ACCESS_TAG_RELATION = 'R',         /* R | pkey | org | index -> relation */
	ACCESS_TAG_SUPERSEDED = 'S',       /* S | old id -> new id, index */
	ACCESS_TAG_BTG = 'T',              /* T | pkey | org | actor | index -> grant */
	ACCESS_TAG_PROXY = 'X',            /* X | pkey | proxy | index -> grant */
	ACCESS_TAG_STRIPPED = 'U', /* U | tombstone index | entry id -> index (arrived stripped) */
	ACCESS_TAG_AUDIT_SEQ = 'N', /* N | node id -> highest audit seq applied from that node */
	ACCESS_TAG_COPY = 'C', /* C | first copy's id | index -> 1 (later copies of a record) */
	ACCESS_COPIES_MAX = 256, /* later copies of one record an erasure strips */
};

enum {
	/* Rows under one prefix (a patient's blocks; a patient's relations with one organisation;
	 * grants to one proxy; assignments and btg grants of one actor; withholds of one entry).
	 * Apply prunes expired rows, then refuses an entry that would exceed it, so every scan a
	 * decision makes is bounded by it. */
	ACCESS_ROWS_PER_PREFIX_MAX = 256,
	ACCESS_BTG_LIST_DEFAULT = 1000,   /* access_btg_open with limit 0 */
	ACCESS_ENTRY_STATUS_ACCEPTED = 0, /* storage entry index status of an accepted entry
	                                     (node/daemon/apply.h NODE_APPLY_ACCEPTED) */
	ACCESS_MS_PER_HOUR = 3600000,
	ACCESS_MS_PER_DAY = 86400000,
	ACCESS_CATEGORIES_COUNT = 5, /* shielded sensitivity categories (all but "normal") */
	/* A scan visitor's "stop" (never an error code, which are >= 0): the visitor keeps its
	 * own result, including any error, in its argument. */
	ACCESS_SCAN_STOP = -1,
	ACCESS_REFUSAL_BYTES_MAX = 256, /* the longest refusal reason (static texts) */
};

/* A policy db key under construction. */
struct access_key {
	uint8_t b[STORAGE_POLICY_KEY_BYTES_MAX];
	size_t len;
};
void access_key_begin(struct access_key *k, enum access_tag tag);
void access_key_bytes(struct access_key *k, const uint8_t *p, size_t n);
void access_key_str(struct access_key *k, const char *s); /* u8 length + bytes (<= 255) */
void access_key_u64(struct access_key *k, uint64_t v);
/* tag | SHA-256 patient key */
void access_key_patient(struct access_key *k, enum access_tag tag, const uint8_t pkey[32]);

/* A value under construction (heap-free, bounded) and a value being read. */
enum { ACCESS_VALUE_BYTES_MAX = 2048 };
struct access_wbuf {
	uint8_t b[ACCESS_VALUE_BYTES_MAX];
	size_t len;
};
void access_w_u8(struct access_wbuf *w, uint8_t v);
void access_w_u32(struct access_wbuf *w, uint32_t v);
void access_w_u64(struct access_wbuf *w, uint64_t v);
void access_w_bytes(struct access_wbuf *w, const uint8_t *p, size_t n);
void access_w_str(struct access_wbuf *w, const char *s); /* u16 length + bytes */

struct access_rbuf {
	const uint8_t *p;
	size_t len;
	size_t at;
	bool bad; /* read past the end or a string too long: the value is corrupt */
};
uint8_t access_r_u8(struct access_rbuf *r);
uint32_t access_r_u32(struct access_rbuf *r);
uint64_t access_r_u64(struct access_rbuf *r);
void access_r_bytes(struct access_rbuf *r, uint8_t *out, size_t n);
void access_r_str(struct access_rbuf *r, char *out, size_t capacity); /* NUL-terminated */
/* CARELOG_OK if the whole value was read and nothing was bad, else CARELOG_ECORRUPT. */
int access_r_end(const struct access_rbuf *r);

/* --- roles and categories --- */

bool access_role_clinical(const char *role);
/* Bit of a shielded sensitivity category (0 for "normal" and unknown names). */
uint32_t access_category_bit(const char *sensitivity);

/* --- rows --- */

struct access_relation_row {
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t from_ms, to_ms;
	uint32_t categories;
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
};
void access_relation_encode(const struct access_relation_row *row, struct access_wbuf *w);
int access_relation_decode(const uint8_t *v, size_t len, struct access_relation_row *out);

enum access_block_scope {
	ACCESS_BLOCK_ALL = 1,
	ACCESS_BLOCK_CATEGORY = 2,
	ACCESS_BLOCK_ENTRY = 3,
};
struct access_block_row {
	uint8_t id[JOURNAL_ID_BYTES];
	char target_org[JOURNAL_ORG_BYTES_MAX + 1];
	char target_actor[JOURNAL_ACTOR_BYTES_MAX + 1];
	uint8_t scope; /* enum access_block_scope */
	char category[JOURNAL_SENSITIVITY_BYTES_MAX + 1];
	uint8_t entry[JOURNAL_ID_BYTES]; /* scope entry */
};
void access_block_encode(const struct access_block_row *row, struct access_wbuf *w);
int access_block_decode(const uint8_t *v, size_t len, struct access_block_row *out);

enum access_withhold_from {
	ACCESS_FROM_PATIENT = 1,
	ACCESS_FROM_GUARDIANS = 2,
};

enum access_proxy_relation {
	ACCESS_PROXY_PARENT = 1,
	ACCESS_PROXY_CHOSEN = 2,
};
enum access_proxy_level {
	ACCESS_PROXY_READ = 1,
	ACCESS_PROXY_FULL = 2,
};
struct access_proxy_row {
	uint8_t id[JOURNAL_ID_BYTES];
	uint8_t relation; /* enum access_proxy_relation */
	uint8_t level;    /* enum access_proxy_level */
	uint64_t from_ms, to_ms;
};
void access_proxy_encode(const struct access_proxy_row *row, struct access_wbuf *w);
int access_proxy_decode(const uint8_t *v, size_t len, struct access_proxy_row *out);

struct access_span_row { /* ambulance assignment */
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t from_ms, to_ms;
};
void access_span_encode(const struct access_span_row *row, struct access_wbuf *w);
int access_span_decode(const uint8_t *v, size_t len, struct access_span_row *out);

struct access_btg_row {
	struct access_btg g;
	bool reviewed;
};
void access_btg_encode(const struct access_btg_row *row, struct access_wbuf *w);
int access_btg_decode(const uint8_t *v, size_t len, struct access_btg_row *out);

/* The registry row of an applied policy entry: what a later lift/end/revoke/review refers to. */
struct access_entry_row {
	uint8_t kind; /* enum policy_kind */
	uint64_t index;
	uint8_t flag;            /* withhold: enum access_withhold_from; else 0 */
	struct access_key state; /* the state row it created (len 0: none) */
};
int access_entry_row_get(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                         struct access_entry_row *out); /* CARELOG_ENOTFOUND if none */
int access_entry_row_put(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                         const struct access_entry_row *row);

/* --- judging shared by apply (leader time) and serving (clock) --- */

/* Who wrote or asks: a header's author or a request's actor. Borrowed strings. */
struct access_who {
	const char *id;
	const char *role;
	const char *org;
	const char *unit;
};

/* Birth date of the patient (patient entry), *out_found false if none recorded. */
int access_birth_date(struct storage_txn *t, const uint8_t pkey[32], bool *out_found,
                      char out_date[11]);

/* Clinical basis of `who` for the patient at `now_ms`: RELATION (with *out_categories),
 * IMPLICIT (only when `allow_implicit`), BTG, or NONE. */
int access_clinical_basis(struct storage_txn *t, const struct access_who *who,
                          const uint8_t pkey[32], uint64_t now_ms, bool allow_implicit,
                          enum access_basis *out_basis, uint32_t *out_categories);

/* Proxy `proxy_id` for the patient at `now_ms`: *out_ok with the view (*out_reduced) and
 * whether a qualifying grant has level full (*out_full); else *out_reason (static). */
struct access_proxy_eval {
	bool ok;
	bool reduced;
	bool full;
	const char *reason;
};
int access_proxy_evaluate(struct storage_txn *t, const uint8_t pkey[32], const char *proxy_id,
                          uint64_t now_ms, struct access_proxy_eval *out);

/* Whether `who` may write a clinical entry for `patient` at `now_ms` (RELATION, BTG, SELF or
 * full PROXY). *out_reason static when refused. */
int access_judge_clinical_write(struct storage_txn *t, const struct access_who *who,
                                const char *patient, const uint8_t pkey[32], uint64_t now_ms,
                                bool *out_ok, enum access_basis *out_basis,
                                const char **out_reason);

/* The role part of a policy kind's write rule (what can be judged without the body; apply
 * checks the rest). *out_reason static when refused. */
int access_judge_policy_role(struct storage_txn *t, enum policy_kind kind,
                             const struct access_who *who, const char *patient,
                             const uint8_t pkey[32], uint64_t now_ms, bool *out_ok,
                             enum access_basis *out_basis, const char **out_reason);

/* Params in force. */
int access_params_load(struct storage_txn *t, struct access_params *out);

/* Indexes the rows of an audit batch (apply). *out_reason static when refused. */
int access_log_index_batch(struct storage_txn *t, const struct journal_header *h,
                           const struct policy_body *b, bool *out_ok, const char **out_reason);

#endif
