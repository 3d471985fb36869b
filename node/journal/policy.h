/* Policy entries and audit rows: the bodies of the journal's non-clinical kinds (codec only). */
#ifndef CARELOG_NODE_JOURNAL_POLICY_H
#define CARELOG_NODE_JOURNAL_POLICY_H

/*
 * Format in docs/entry-format.md section 10 ("Policy entries") and 11 ("Audit rows"). Every
 * policy body is a canonical msgpack map (section 1 of that document) whose first key is "v"
 * (1), then the kind's keys in the order listed below, every key always present (empty string,
 * 0 or nil where "none"). The header of a policy entry is an ordinary header (section 2) with
 * media type POLICY_MEDIA_TYPE and sensitivity "normal"; its `patient` is the patient concerned,
 * or POLICY_REGION_PATIENT ("-") for region-wide kinds (policy-params, audit-batch), which are
 * never indexed by patient and never served as a patient's record.
 *
 * Decoding is strict like the header's: EPROTO for anything malformed, non-canonical, missing,
 * extra or out of range; EVERSION for a "v" other than 1 (checked first). The rules that need
 * other state (author role, who may grant what, times) are node/access's, at apply.
 *
 *   kind                  body keys (after "v")
 *   patient               birth_date str "YYYY-MM-DD" (a real calendar date)
 *   care-relation         org str 1-64, unit str 0-64 ("" = the whole organisation),
 *                         from_ms uint, to_ms uint (0 = open-ended; else > from_ms),
 *                         categories array 0-6 of str (shielded sensitivity categories the
 *                         relation covers, each a known non-"normal" sensitivity, no repeats)
 *   care-relation-end     ref bin 32 (the care-relation entry's id)
 *   block                 target_org str 0-64, target_actor str 0-64 (exactly one non-empty),
 *                         scope str "all"|"category"|"entry", category str (the sensitivity
 *                         when scope is "category", else ""), entry bin 32 | nil (scope "entry")
 *   block-lift            ref bin 32 (the block's entry id)
 *   withhold              entry bin 32, from str "patient"|"guardians", reason str 1-256
 *                         ("patient" withholds from the patient and every proxy; "guardians"
 *                         from parents' proxy view only)
 *   withhold-lift         ref bin 32 (the withhold entry's id)
 *   proxy-grant           proxy str 1-64 (the proxy's person id), relation str
 *                         "parent"|"chosen", level str "read"|"full", from_ms uint, to_ms uint
 *                         (0 = open-ended)
 *   proxy-revoke          ref bin 32 (the proxy-grant's entry id)
 *   ambulance-assignment  actor str 1-64 (crew member's practitioner id), from_ms uint,
 *                         to_ms uint (> from_ms)
 *   btg-grant             reason_code str 1-32, reason_text str 1-512, hours uint 1-720
 *   btg-review            ref bin 32 (the btg-grant's id), outcome str
 *                         "justified"|"unjustified", text str 0-512
 *   erasure               entry bin 32 (the entry whose body and salt are erased), basis str
 *                         1-512 (the legal basis and decision)
 *   policy-params         implicit_window_days uint 1-3650, btg_hours_max uint 1-720,
 *                         ambulance_hours_max uint 1-168
 *   audit-batch           node uint (>0), first_seq uint (>0), rows array 1-POLICY_AUDIT_
 *                         BATCH_ROWS_MAX of bin (each an encoded audit row, section 11)
 */

#include "node/journal/journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_MEDIA_TYPE "application/vnd.carelog.policy+msgpack"
#define POLICY_REGION_PATIENT "-"

enum policy_kind {
	POLICY_KIND_NONE = 0, /* a clinical kind (note, observation, ...) */
	POLICY_KIND_PATIENT = 1,
	POLICY_KIND_CARE_RELATION = 2,
	POLICY_KIND_CARE_RELATION_END = 3,
	POLICY_KIND_BLOCK = 4,
	POLICY_KIND_BLOCK_LIFT = 5,
	POLICY_KIND_WITHHOLD = 6,
	POLICY_KIND_WITHHOLD_LIFT = 7,
	POLICY_KIND_PROXY_GRANT = 8,
	POLICY_KIND_PROXY_REVOKE = 9,
	POLICY_KIND_AMBULANCE = 10,
	POLICY_KIND_BTG_GRANT = 11,
	POLICY_KIND_BTG_REVIEW = 12,
	POLICY_KIND_ERASURE = 13,
	POLICY_KIND_PARAMS = 14,
	POLICY_KIND_AUDIT_BATCH = 15,
	POLICY_KIND_COUNT_ = 16,
};

enum {
	POLICY_CATEGORIES_MAX = 6,
	POLICY_TEXT_BYTES_MAX = 512,
	POLICY_REASON_CODE_BYTES_MAX = 32,
	POLICY_WORD_BYTES_MAX = 24,     /* scope, from, relation, level, outcome, category */
	POLICY_BODY_BYTES_MAX = 1 << 20, /* any policy body but audit-batch */
	POLICY_AUDIT_BATCH_ROWS_MAX = 2000,
	POLICY_AUDIT_BATCH_BYTES_MAX = 1 << 20,
	/* Defaults of the replicated parameters until a policy-params entry sets them. */
	POLICY_IMPLICIT_WINDOW_DAYS_DEFAULT = 90,
	POLICY_BTG_HOURS_MAX_DEFAULT = 120, /* 5 days (DOMAIN.md: grants of 4-7 days) */
	POLICY_AMBULANCE_HOURS_MAX_DEFAULT = 24,
};

/* "patient", "care-relation", ...; NULL for POLICY_KIND_NONE or out of range. */
const char *policy_kind_name(enum policy_kind k);
/* The policy kind of a header kind string; POLICY_KIND_NONE for clinical kinds and unknowns. */
enum policy_kind policy_kind_of(const char *kind);

/* A decoded policy body. Strings NUL-terminated copies; `kind` says which part is meaningful. */
struct policy_body {
	enum policy_kind kind;
	char birth_date[11];                        /* patient: "YYYY-MM-DD" */
	char org[JOURNAL_ORG_BYTES_MAX + 1];        /* care-relation */
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];      /* care-relation */
	char actor[JOURNAL_ACTOR_BYTES_MAX + 1];    /* ambulance: crew; block: target_actor;
	                                               proxy-grant: proxy */
	char target_org[JOURNAL_ORG_BYTES_MAX + 1]; /* block */
	char word[POLICY_WORD_BYTES_MAX + 1];       /* block scope, withhold from, proxy relation,
	                                               btg-review outcome */
	char level[POLICY_WORD_BYTES_MAX + 1];      /* proxy-grant */
	char category[JOURNAL_SENSITIVITY_BYTES_MAX + 1]; /* block with scope "category" */
	uint32_t categories_count;                  /* care-relation */
	char categories[POLICY_CATEGORIES_MAX][JOURNAL_SENSITIVITY_BYTES_MAX + 1];
	bool has_ref;                               /* *-end, *-lift, *-revoke, btg-review, and the
	                                               entry of block/withhold/erasure */
	uint8_t ref[JOURNAL_ID_BYTES];
	uint64_t from_ms, to_ms;                    /* care-relation, proxy-grant, ambulance */
	char reason_code[POLICY_REASON_CODE_BYTES_MAX + 1]; /* btg-grant */
	char text[POLICY_TEXT_BYTES_MAX + 1];       /* btg reason_text, review text, withhold
	                                               reason, erasure basis */
	uint32_t hours;                             /* btg-grant */
	uint32_t implicit_window_days, btg_hours_max, ambulance_hours_max; /* policy-params */
	/* audit-batch: views into the decoded bytes (valid as long as they are) */
	uint64_t node_id, first_seq;
	uint32_t rows_count;
	const uint8_t *rows[POLICY_AUDIT_BATCH_ROWS_MAX];
	size_t rows_len[POLICY_AUDIT_BATCH_ROWS_MAX];
};

/* Canonical encoding of `b` (b->kind != NONE). CARELOG_EINVAL when a field breaks the rules
 * above (so whatever encodes, decodes), CARELOG_ETOOBIG when out_capacity is too small. */
int policy_body_encode(const struct policy_body *b, uint8_t *out, size_t out_capacity,
		       size_t *out_len);
/* Decodes the body of an entry of kind `kind` (not NONE). See the rules above. */
int policy_body_decode(enum policy_kind kind, const uint8_t *bytes, size_t len,
		       struct policy_body *out);

/* --- audit rows (docs/entry-format.md section 11) --- */

enum {
	POLICY_PURPOSE_BYTES_MAX = 128,
	POLICY_ACTION_BYTES_MAX = 24,
	POLICY_BASIS_BYTES_MAX = 24,
	POLICY_OUTCOME_BYTES_MAX = 24,
};

/*
 * One access: a canonical msgpack map with keys in this order:
 *   node uint, seq uint (the queue sequence at that node), time_ms uint (the serving node's
 *   clock), actor str, role str, org str, unit str, patient str (0-64; "" for actions on no
 *   patient), action str, decision str "allowed"|"denied", basis str, count uint (entries
 *   returned or written), withheld uint, entry bin 32 | nil (the entry read, written or acted
 *   on), purpose str 0-128, outcome str (carelog_errname of the answer, "OK" on success)
 *
 * action: read | get | append | policy | btg | btg-review | access-log | btg-list | status |
 *         verify | member | transfer
 * basis:  relation | implicit | proxy | btg | self | assignment | role (administrative
 *         actions allowed by the actor's role) | none (denied)
 */
struct policy_audit_row {
	uint64_t node_id;
	uint64_t seq;
	uint64_t time_ms;
	char actor[JOURNAL_ACTOR_BYTES_MAX + 1];
	char role[JOURNAL_ROLE_BYTES_MAX + 1];
	char org[JOURNAL_ORG_BYTES_MAX + 1];
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char action[POLICY_ACTION_BYTES_MAX + 1];
	bool allowed;
	char basis[POLICY_BASIS_BYTES_MAX + 1];
	uint64_t count;
	uint64_t withheld;
	bool has_entry;
	uint8_t entry[JOURNAL_ID_BYTES];
	char purpose[POLICY_PURPOSE_BYTES_MAX + 1];
	char outcome[POLICY_OUTCOME_BYTES_MAX + 1];
};

/* Encoded rows are at most POLICY_AUDIT_ROW_BYTES_MAX (= STORAGE_AUDIT_ROW_BYTES_MAX). */
enum { POLICY_AUDIT_ROW_BYTES_MAX = 4096 };
int policy_audit_row_encode(const struct policy_audit_row *r, uint8_t *out, size_t out_capacity,
			    size_t *out_len);
int policy_audit_row_decode(const uint8_t *bytes, size_t len, struct policy_audit_row *out);

/* --- age rules (DOMAIN.md "Patients, sensitivity, proxies") --- */

/* Whole years of age at `at_ms` (UTC) of someone born on `birth_date` ("YYYY-MM-DD");
 * CARELOG_EINVAL for a malformed date or a time before the birth date. */
int policy_age_years(const char *birth_date, uint64_t at_ms, uint32_t *out_years);

#endif
