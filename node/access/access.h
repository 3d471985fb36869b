/* Clinical access: policy state applied from the log, read/write decisions, the access log. */
#ifndef CARELOG_NODE_ACCESS_H
#define CARELOG_NODE_ACCESS_H

/*
 * The rules are DOMAIN.md's; the exact decision table is in docs/access.md. Two kinds of caller:
 *
 *  - apply (node/daemon/apply.c), on every node alike: access_apply_entry judges an accepted,
 *    authentic record at its log position with the LEADER'S time stamp and the replicated
 *    parameters, and updates the policy state (storage_policy_*) in the apply transaction. A
 *    write the author was not allowed to make is REFUSED: recorded identically everywhere,
 *    never indexed by patient, and its waiting client gets CARELOG_EDENIED with the reason.
 *  - serving (node/daemon/serve.c, server.c, loop.c), node-local: access_decide_read /
 *    access_entry_visible / access_decide_write / access_op_class judge a request with the
 *    serving node's clock (through the caller's seam) over the policy state it has applied.
 *
 * Policy state lives in the storage "policy" database under one-byte table tags (listed in
 * docs/on-disk-format.md); only this module reads or writes it.
 *
 * Roles (the actor's and the header's `role`): clinical roles physician, nurse, psychologist,
 * midwife, physiotherapist, pharmacist; ambulance; patient (the actor id is the person's own
 * patient id); proxy (the actor id is the proxy's person id); admin (the organisation's
 * administration: demographics, care relations, parents' proxy grants, ambulance assignments,
 * erasure); auditor (access logs, break-the-glass review); operator (node operations: status,
 * verify, membership, leadership); system (the node itself: audit batches; never accepted from a
 * client). Any other role may do nothing.
 */

#include "node/journal/journal.h"
#include "node/journal/policy.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who acts: the request's actor with the organisation of the serving node. NUL-terminated. */
struct access_actor {
	char id[JOURNAL_ACTOR_BYTES_MAX + 1];
	char role[JOURNAL_ROLE_BYTES_MAX + 1];
	char org[JOURNAL_ORG_BYTES_MAX + 1];
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
};

enum access_basis {
	ACCESS_BASIS_NONE = 0,     /* denied */
	ACCESS_BASIS_RELATION = 1,
	ACCESS_BASIS_IMPLICIT = 2, /* the organisation wrote for the patient within the window */
	ACCESS_BASIS_PROXY = 3,
	ACCESS_BASIS_BTG = 4,
	ACCESS_BASIS_SELF = 5,
	ACCESS_BASIS_ASSIGNMENT = 6, /* ambulance assignment */
	ACCESS_BASIS_ROLE = 7,       /* an administrative action the role allows */
};
/* "none", "relation", "implicit", "proxy", "btg", "self", "assignment", "role". */
const char *access_basis_name(enum access_basis b);

/* Replicated parameters in force (defaults until a policy-params entry is applied). */
struct access_params {
	uint32_t implicit_window_days;
	uint32_t btg_hours_max;
	uint32_t ambulance_hours_max;
};
int access_params_get(struct storage_txn *t, struct access_params *out);

/* --- apply (deterministic) --- */

enum access_apply_verdict {
	ACCESS_APPLIED = 0, /* accepted: policy state updated, or a clinical entry allowed */
	ACCESS_REFUSED = 1, /* the author may not write this: *out_reason says why */
};

/*
 * Judges and applies one accepted, authentic record (its header `h`, entry id `id`, body
 * `body`/`body_len` (NULL when erased), log `index`, the leader's `leader_time_ms`):
 *  - clinical kinds: the author (h->author, h->role, h->org, h->unit) needs, at leader time, a
 *    care relation, an active break-the-glass grant, self (role patient, author == patient) or
 *    a "full" proxy grant; then records the organisation's last write for the patient
 *    (implicit access) and, for status amended / entered-in-error, that h->corrects is
 *    superseded (the corrected entry must exist, be for the same patient and not itself be
 *    superseded, else refused);
 *  - policy kinds: the body must decode (else refused, not stopped: the header was authentic)
 *    and the author's role must allow it (docs/access.md); then the state changes;
 *  - erasure: also rewrites the erased entry's log record without salt and body
 *    (storage_log_rewrite) and records who, when and on which basis;
 *  - audit-batch: indexes every row for access_log_query (by patient and by actor).
 * Storage errors are returned as errors (the caller aborts the transaction).
 */
int access_apply_entry(struct storage_txn *t, uint64_t index, uint64_t leader_time_ms,
		       const struct journal_header *h, const uint8_t id[JOURNAL_ID_BYTES],
		       const uint8_t *body, size_t body_len, enum access_apply_verdict *out_verdict,
		       const char **out_reason);

/*
 * Records that arrive stripped (DESIGN.md "Journal entries"): a node catching up may receive an
 * entry whose body and salt were lawfully erased elsewhere; the record names the index of the
 * tombstone that erased it (journal_record.erased_by_index). access_stripped_expect remembers
 * that entry `id` at `index` must be erased by the entry at `tombstone_index`
 * (CARELOG_ECORRUPT when tombstone_index <= index: a tombstone always comes later). The erasure
 * applied at that index resolves it (access_apply_entry). access_stripped_check, called after
 * each applied index, returns CARELOG_ECORRUPT with the entry if something stripped still
 * waits for a tombstone at `index`: the entry there did not erase it, so this node was sent
 * altered data and must stop applying rather than keep a record with a body removed unlawfully.
 */
int access_stripped_expect(struct storage_txn *t, uint64_t index, const uint8_t id[JOURNAL_ID_BYTES],
			   uint64_t tombstone_index);
int access_stripped_check(struct storage_txn *t, uint64_t index, uint8_t out_id[JOURNAL_ID_BYTES],
			  uint64_t *out_entry_index);

/* Records that entry index `index` holds another copy of the record whose first copy has id
 * `first_id` (the same signed record replayed, or the same request signed again after a
 * restart): an erasure of the first strips every copy (up to ACCESS_COPIES_MAX = 256). */
int access_copy_add(struct storage_txn *t, const uint8_t first_id[JOURNAL_ID_BYTES],
		    uint64_t index);

/* The reason a refused entry (apply status refused) was refused, as recorded when it was
 * applied; CARELOG_ENOTFOUND if `id` was not refused. Copies at most reason_len - 1 bytes. */
int access_refusal_get(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], char *reason,
		       size_t reason_len);

/* --- serving (node-local, clock from the caller) --- */

/* The decision for reading patient `patient` now. */
struct access_read_decision {
	bool allowed;
	enum access_basis basis;
	char reason[160]; /* denied: in words a clinician understands */
	/* internal to access_entry_visible: */
	bool reduced;      /* parents' view of a 12-15 year old */
	bool patient_view; /* self or proxy: withheld-from-patient entries hidden */
	bool covers_shielded; /* btg, or self */
	uint32_t relation_categories; /* bit per shielded category covered by relations */
	uint8_t patient_key[CL_SHA256_BYTES];
	struct access_actor actor;
};
int access_decide_read(struct storage_txn *t, const struct access_actor *actor, const char *patient,
		       uint64_t now_ms, struct access_read_decision *out);

/* Why an entry is not shown (0 = shown). Order of the reasons is the order checked. */
enum access_withheld {
	ACCESS_SHOWN = 0,
	ACCESS_WITHHELD_BLOCKED = 1,   /* "blocked by the patient" */
	ACCESS_WITHHELD_SHIELDED = 2,  /* "shielded <category> entry of another unit" */
	ACCESS_WITHHELD_FROM_PATIENT = 3, /* "withheld from the patient's view by a clinician" */
	ACCESS_WITHHELD_FROM_GUARDIANS = 4, /* "not shown to parents of a 12-15 year old" */
	ACCESS_WITHHELD_COUNT_ = 5,
};
/* Text for a reason ("blocked by the patient", ...). */
const char *access_withheld_text(enum access_withheld w);

/* Whether entry `id` with header `h` is shown under decision `d` (d->allowed). Entries that are
 * no patient's record (patient "-", audit-batch, policy-params) are CARELOG_ENOTFOUND: never
 * shown, never counted as withheld. CARELOG_EINVAL when `d` is not allowed or is for another
 * patient than h->patient. */
int access_entry_visible(struct storage_txn *t, const struct access_read_decision *d,
			 const struct journal_header *h, const uint8_t id[JOURNAL_ID_BYTES],
			 enum access_withheld *out);

/* Superseded by a later version (amend / entered-in-error)? *out_by = the newer entry's id
 * (out_by may be NULL). */
int access_superseded(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], bool *out,
		      uint8_t out_by[JOURNAL_ID_BYTES]);

/* Erased lawfully? */
struct access_erasure {
	uint64_t tombstone_index;
	uint64_t time_ms; /* leader time of the tombstone */
	char author[JOURNAL_ACTOR_BYTES_MAX + 1];
	char org[JOURNAL_ORG_BYTES_MAX + 1];
	char basis[POLICY_TEXT_BYTES_MAX + 1];
};
/* out_erasure may be NULL. */
int access_erased(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], bool *out,
		  struct access_erasure *out_erasure);

/* Whether `actor` may append an entry of `kind` (clinical or policy) for `patient` now: the
 * same rules as access_apply_entry, judged early so the client hears at once. CARELOG_OK with
 * *out_allowed; reason in out_reason (static or into `reason`). */
int access_decide_write(struct storage_txn *t, const struct access_actor *actor, const char *patient,
			const char *kind, uint64_t now_ms, bool *out_allowed, enum access_basis *out_basis,
			char *reason, size_t reason_len);

/* The protocol's operations and who may run them (docs/access.md). Every op in the client
 * protocol has an entry; an op without one is refused. */
enum access_op_class {
	ACCESS_OP_UNKNOWN = 0,  /* not in the table: always denied */
	ACCESS_OP_OPERATOR = 1, /* status, verify, member, transfer: role operator */
	ACCESS_OP_PATIENT_READ = 2, /* read, get: access_decide_read */
	ACCESS_OP_PATIENT_WRITE = 3,/* append, policy: access_decide_write */
	ACCESS_OP_ACCESS_LOG = 4,   /* by patient: self, proxy, auditor; by actor: auditor */
	ACCESS_OP_BTG_LIST = 5,     /* auditor, admin */
};
enum access_op_class access_op_class(uint8_t op);

/* --- access log (rows shipped through the log, plus this node's rows not yet shipped) --- */

enum { ACCESS_LOG_ROWS_MAX = 1000 };
/* Rows about `patient` (or, when patient is NULL, by actor `actor_id` of org `actor_org`),
 * newest first, at most `limit` (0 = ACCESS_LOG_ROWS_MAX), calling visit(arg, row bytes, len). */
int access_log_query(struct storage_txn *t, const char *patient, const char *actor_org,
		     const char *actor_id, size_t limit,
		     int (*visit)(void *arg, const uint8_t *row, size_t len), void *arg);

/* The highest audit row sequence applied from node `node_id` (0 if none): a node whose audit
 * queue is behind it (lost, replaced by an older copy) must number new rows above it, or their
 * batches would reuse request ids already committed and be dropped as duplicates. */
int access_audit_seq_max(struct storage_txn *t, uint64_t node_id, uint64_t *out_seq);

/* Open break-the-glass grants (not reviewed), oldest first; patient NULL = all; limit 0 = 1000. */
struct access_btg {
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t index;
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char actor[JOURNAL_ACTOR_BYTES_MAX + 1];
	char role[JOURNAL_ROLE_BYTES_MAX + 1];
	char org[JOURNAL_ORG_BYTES_MAX + 1];
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
	uint64_t granted_ms, expires_ms;
	char reason_code[POLICY_REASON_CODE_BYTES_MAX + 1];
	char reason_text[POLICY_TEXT_BYTES_MAX + 1];
};
int access_btg_open(struct storage_txn *t, const char *patient, size_t limit,
		    int (*visit)(void *arg, const struct access_btg *g), void *arg);

#endif
