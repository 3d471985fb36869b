/* Applying committed log entries: verify, index, extend the chain, record membership. */
#ifndef CARELOG_NODE_DAEMON_APPLY_H
#define CARELOG_NODE_DAEMON_APPLY_H

/*
 * Every node applies the same entries in the same order with the same outcome (DESIGN.md
 * "Journal entries"), so nothing here reads a clock, the config or anything local: only the
 * entry, the membership applied so far and the indexes.
 *
 *   NORMAL, empty          the leader's no-op
 *   NORMAL, record         accepted   (entry_index status 0, request_index, patient_index
 *                                      unless the patient is the region "-"; policy state)
 *                          duplicate  (request id already committed: status 2, a recorded
 *                                      no-op answering with the first entry's index and id, or
 *                                      with the first one's refusal)
 *                          rejected   (bad signature, unknown node, org mismatch, malformed
 *                                      header: status 1, logged by index and entry id)
 *                          refused    (authentic, but the author may not write it at the
 *                                      leader's time (access_apply_entry): status 3 and its
 *                                      request_index row, so a retry hears the same refusal;
 *                                      never in the patient index; logged by index and entry
 *                                      id with the reason)
 *   NORMAL, malformed record   rejected, no id (the chain takes an opaque leaf)
 *   CONF                   membership (and params) stored in meta "membership"
 *
 * An unknown record version, header format version or kind STOPS apply: the caller must not
 * commit and must stop the node with the message (safe rolling upgrades: never guess).
 *
 * Every entry extends the chain (the leaf covers header and signature, never the outcome or the
 * body, so a refusal or a later erasure changes no chain head); node_apply_entries records
 * (applied index, chain head) in the caller's write transaction, so indexes, policy state and
 * applied state never disagree after a crash.
 */

#include "consensus/consensus.h"
#include "node/journal/journal.h"
#include "node/journal/membership.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum node_apply_status {
	NODE_APPLY_ACCEPTED = 0,
	NODE_APPLY_REJECTED = 1,
	NODE_APPLY_DUPLICATE = 2,
	NODE_APPLY_REFUSED = 3,
};

enum node_apply_kind {
	NODE_APPLY_KIND_NOOP = 0,
	NODE_APPLY_KIND_RECORD = 1, /* a decodable record: accepted, duplicate or rejected */
	NODE_APPLY_KIND_OPAQUE = 2, /* a NORMAL entry whose record does not decode: rejected */
	NODE_APPLY_KIND_CONF = 3,
};

enum {
	NODE_REQUEST_KEY_BYTES_MAX = JOURNAL_ORG_BYTES_MAX + 1 + JOURNAL_REQUEST_ID_BYTES_MAX,
	NODE_META_MEMBERSHIP_BYTES_MAX = MEMBERSHIP_CONTEXT_BYTES_MAX,
	NODE_MEMBER_IDS_MAX = 4096,        /* node ids remembered as used (beyond: not checked) */
	NODE_APPLY_REASON_BYTES_MAX = 256, /* a refusal's words, copied into the outcome */
};

/* What apply knows between entries. Copyable: the loop applies into a scratch copy and keeps
 * it only once the transaction committed. */
struct node_apply_state {
	uint64_t applied_index;
	uint8_t chain_head[CL_SHA256_BYTES];
	bool has_membership;
	struct membership membership; /* as applied; cluster id and params carried forward */
};

/* What applying one entry decided (for the waiting client and for logs). */
struct node_apply_outcome {
	uint64_t index;
	uint8_t kind;       /* enum node_apply_kind */
	uint8_t status;     /* enum node_apply_status (records and opaque entries) */
	/* rejected: CARELOG_EBADSIG, CARELOG_EMISMATCH, CARELOG_EPROTO, ...; refused, or a
	 * duplicate of a refused request: CARELOG_EDENIED */
	int reject_err;
	const char *reason; /* rejected: static text */
	/* reject_err == CARELOG_EDENIED: why, in words for the waiting client (no patient id) */
	char refused_reason[NODE_APPLY_REASON_BYTES_MAX];
	bool has_id;
	uint8_t id[JOURNAL_ID_BYTES]; /* this entry's id */
	uint64_t answer_index;        /* accepted: index; duplicate: the first entry's */
	uint8_t answer_id[JOURNAL_ID_BYTES];
	/* Accepted or duplicate by request id: org || 0 || request id (whoever waits for it). */
	size_t request_key_len;
	uint8_t request_key[NODE_REQUEST_KEY_BYTES_MAX];
	bool signature_verified; /* this entry's signature was checked while applying it */
};

/* A classified entry (read-only: shared by apply and verify). Views into the entry data. */
struct node_apply_class {
	uint8_t kind; /* enum node_apply_kind */
	struct journal_record record;
	struct journal_header header;
	bool has_id;
	uint8_t id[JOURNAL_ID_BYTES];
	int verdict;        /* CARELOG_OK = signature, node and org hold; else the reject code */
	const char *reason; /* for a reject */
	struct membership *conf; /* CONF: the merged membership (caller's buffer) */
	bool signature_checked;  /* the signature was verified (whatever the result) */
};

/* Whether an entry's patient is indexed (every patient but the region pseudo-patient "-"). */
bool node_apply_patient_indexed(const char *patient);

/* The answer to a request whose entry (`index`, `id`) was refused when applied: what a retry
 * with the same request id hears (the reason recorded at apply, access_refusal_get; should it
 * be unreadable, the index and entry id), into `out` (NUL-terminated, cut to fit). */
void node_apply_refusal_text(struct storage_txn *t, uint64_t index,
                             const uint8_t id[JOURNAL_ID_BYTES], char *out, size_t out_len);

/* Request index key: org || 0x00 || request id. *out_len <= NODE_REQUEST_KEY_BYTES_MAX. */
int node_request_key(const char *org, size_t org_len, const char *request_id, size_t request_id_len,
                     uint8_t out[NODE_REQUEST_KEY_BYTES_MAX], size_t *out_len);

/* Loads applied index, chain head and membership from storage (fresh store: zeroes, none). */
int node_apply_load(struct storage_txn *t, struct node_apply_state *out);

/*
 * Classifies entry `e` against `st`. For CONF entries `conf_buf` receives the merged
 * membership. Returns CARELOG_OK, or CARELOG_EVERSION / CARELOG_EUNKNOWN / CARELOG_EPROTO
 * (a CONF that does not decode) meaning: stop apply; *out_reason then says why.
 *
 * A NORMAL record is judged in this order, the first failure deciding:
 *   record decode   EPROTO -> rejected (opaque); EVERSION -> stop
 *   header decode   EVERSION -> stop; EPROTO -> rejected
 *   trust           node not a member or org mismatch -> rejected (EMISMATCH); signature with
 *                   the pinned key -> rejected (EBADSIG)
 *   header rules    (only for an authentic entry) unknown kind, status or sensitivity ->
 *                   stop (EUNKNOWN); other rule broken -> rejected (EINVAL)
 *   body            size or salted hash differ -> rejected (ECORRUPT)
 * So a forged entry naming a kind this node does not know is rejected, never a reason to stop
 * apply on every node.
 */
int node_apply_classify(const struct node_apply_state *st, const struct consensus_entry *e,
                        struct membership *conf_buf, struct node_apply_class *out,
                        const char **out_reason);

/* The chain leaf of a classified entry. */
void node_apply_leaf(const struct consensus_entry *e, const struct node_apply_class *c,
                     uint8_t out[CL_SHA256_BYTES]);

/*
 * Applies `count` committed entries (contiguous, starting at st->applied_index + 1) in the
 * caller's write transaction, filling outcomes[i] for each, then stores (applied index, chain
 * head). An accepted, authentic record is judged by access_apply_entry at its leader time,
 * which also updates the policy state (and, for an erasure, rewrites the erased record). `st` is
 * updated as it goes: on any error the caller must abort the transaction and discard `st`. Errors:
 * storage errors; CARELOG_EVERSION / CARELOG_EUNKNOWN / CARELOG_EPROTO to stop apply (logged as
 * event=apply.stopped with the index and reason).
 */
int node_apply_entries(struct storage_txn *t, struct node_apply_state *st,
                       const struct consensus_entry *entries, size_t count,
                       struct node_apply_outcome *outcomes);

/* Stores a membership in meta "membership" (also used at genesis) and adds its node ids to
 * meta "member_ids", every id any applied configuration named. */
int node_apply_store_membership(struct storage_txn *t, const struct membership *m);

/* Whether an applied configuration ever named node `id` (ids are never reused). */
int node_apply_member_id_used(struct storage_txn *t, uint64_t id, bool *out_used);

/* Reads meta "membership" (CARELOG_ENOTFOUND if none yet). */
int node_apply_read_membership(struct storage_txn *t, struct membership *out);

#endif
