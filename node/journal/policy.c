/* Policy entries and audit rows: canonical msgpack codecs for their bodies, and the age rule. */
#include "node/journal/policy.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "node/journal/mp.h"

#include <stddef.h>
#include <string.h>

enum {
	POLICY_BODY_VERSION = 1,
	POLICY_DATE_BYTES = 10, /* "YYYY-MM-DD" */
	POLICY_WITHHOLD_REASON_BYTES_MAX = 256,
	POLICY_HOURS_MAX = 720,             /* btg-grant hours, btg_hours_max: 30 days */
	POLICY_AMBULANCE_HOURS_LIMIT = 168, /* ambulance_hours_max: one week */
	POLICY_IMPLICIT_WINDOW_DAYS_LIMIT = 3650,
	POLICY_AUDIT_ROW_FIELDS = 16,
};

/* ---- field tables ------------------------------------------------------------------------
 *
 * Every body and the audit row are maps of fixed keys in a fixed order, so one table per shape
 * drives packing, unpacking and the per-field rules; the few rules that relate two fields are
 * in policy_body_rules. */

enum policy_field_type {
	POLICY_FIELD_TEXT,       /* char[size] holding a C string; str */
	POLICY_FIELD_U64,        /* uint64_t; uint within [min, max] */
	POLICY_FIELD_U32,        /* uint32_t; uint within [min, max] */
	POLICY_FIELD_ID,         /* uint8_t[32] and its bool flag (set); bin 32 */
	POLICY_FIELD_ID_OR_NIL,  /* uint8_t[32] and its bool flag; bin 32 or nil */
	POLICY_FIELD_DECISION,   /* bool at flag_offset; str "allowed" (true) | "denied" */
	POLICY_FIELD_CATEGORIES, /* categories_count + categories; array of str */
	POLICY_FIELD_ROWS,       /* rows_count + rows + rows_len; array of bin (audit rows) */
};

enum policy_text_rule {
	POLICY_TEXT_ANY,        /* any bytes but NUL (audit rows record what was asked, verbatim) */
	POLICY_TEXT_IDENTIFIER, /* bytes 0x21-0x7e (the header's identifier rule) */
	POLICY_TEXT_LINE,       /* UTF-8 without control characters (the header's unit rule) */
	POLICY_TEXT_WORD,       /* one of `words` */
	POLICY_TEXT_DATE,       /* "YYYY-MM-DD", a real date */
	POLICY_TEXT_SENSITIVITY, /* a sensitivity of format v1 */
};

struct policy_field {
	const char *key;
	enum policy_field_type type;
	enum policy_text_rule rule; /* POLICY_FIELD_TEXT */
	size_t offset;              /* of the value in the struct */
	size_t size;                /* TEXT: bytes of the array (max + 1 at least) */
	size_t flag_offset;         /* ID, ID_OR_NIL, DECISION: the bool */
	uint64_t min, max;          /* TEXT: length in bytes; integers: value; arrays: items */
	const char *const *words;   /* POLICY_TEXT_WORD */
};

/* S is the struct the table describes. */
#define POLICY_MEMBER_SIZE(S, member) sizeof(((S *)0)->member)
#define POLICY_TEXT(S, k, member, rule_, min_, max_, words_)                                       \
	{                                                                                          \
		.key = (k), .type = POLICY_FIELD_TEXT, .rule = (rule_),                            \
		.offset = offsetof(S, member), .size = POLICY_MEMBER_SIZE(S, member),              \
		.min = (min_), .max = (max_), .words = (words_)                                    \
	}
#define POLICY_UINT(field_type, S, k, member, min_, max_)                                          \
	{                                                                                          \
		.key = (k), .type = (field_type), .offset = offsetof(S, member), .min = (min_),    \
		.max = (max_)                                                                      \
	}
#define POLICY_ID(field_type, S, k, member, flag)                                                  \
	{                                                                                          \
		.key = (k), .type = (field_type), .offset = offsetof(S, member),                   \
		.flag_offset = offsetof(S, flag)                                                   \
	}

#define B struct policy_body
#define R struct policy_audit_row

static const char *const policy_scopes[] = {"all", "category", "entry", NULL};
static const char *const policy_withhold_froms[] = {"patient", "guardians", NULL};
static const char *const policy_relations[] = {"parent", "chosen", NULL};
static const char *const policy_levels[] = {"read", "full", NULL};
static const char *const policy_outcomes[] = {"justified", "unjustified", NULL};

static const struct policy_field policy_fields_patient[] = {
    POLICY_TEXT(B, "birth_date", birth_date, POLICY_TEXT_DATE, POLICY_DATE_BYTES, POLICY_DATE_BYTES,
                NULL),
};
static const struct policy_field policy_fields_care_relation[] = {
    POLICY_TEXT(B, "org", org, POLICY_TEXT_IDENTIFIER, 1, JOURNAL_ORG_BYTES_MAX, NULL),
    POLICY_TEXT(B, "unit", unit, POLICY_TEXT_LINE, 0, JOURNAL_UNIT_BYTES_MAX, NULL),
    POLICY_UINT(POLICY_FIELD_U64, B, "from_ms", from_ms, 0, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, B, "to_ms", to_ms, 0, UINT64_MAX),
    {.key = "categories", .type = POLICY_FIELD_CATEGORIES, .max = POLICY_CATEGORIES_MAX},
};
static const struct policy_field policy_fields_ref[] = {
    POLICY_ID(POLICY_FIELD_ID, B, "ref", ref, has_ref),
};
static const struct policy_field policy_fields_block[] = {
    POLICY_TEXT(B, "target_org", target_org, POLICY_TEXT_IDENTIFIER, 0, JOURNAL_ORG_BYTES_MAX,
                NULL),
    POLICY_TEXT(B, "target_actor", actor, POLICY_TEXT_IDENTIFIER, 0, JOURNAL_ACTOR_BYTES_MAX, NULL),
    POLICY_TEXT(B, "scope", word, POLICY_TEXT_WORD, 1, POLICY_WORD_BYTES_MAX, policy_scopes),
    POLICY_TEXT(B, "category", category, POLICY_TEXT_SENSITIVITY, 0, JOURNAL_SENSITIVITY_BYTES_MAX,
                NULL),
    POLICY_ID(POLICY_FIELD_ID_OR_NIL, B, "entry", ref, has_ref),
};
static const struct policy_field policy_fields_withhold[] = {
    POLICY_ID(POLICY_FIELD_ID, B, "entry", ref, has_ref),
    POLICY_TEXT(B, "from", word, POLICY_TEXT_WORD, 1, POLICY_WORD_BYTES_MAX, policy_withhold_froms),
    POLICY_TEXT(B, "reason", text, POLICY_TEXT_LINE, 1, POLICY_WITHHOLD_REASON_BYTES_MAX, NULL),
};
static const struct policy_field policy_fields_proxy_grant[] = {
    POLICY_TEXT(B, "proxy", actor, POLICY_TEXT_IDENTIFIER, 1, JOURNAL_ACTOR_BYTES_MAX, NULL),
    POLICY_TEXT(B, "relation", word, POLICY_TEXT_WORD, 1, POLICY_WORD_BYTES_MAX, policy_relations),
    POLICY_TEXT(B, "level", level, POLICY_TEXT_WORD, 1, POLICY_WORD_BYTES_MAX, policy_levels),
    POLICY_UINT(POLICY_FIELD_U64, B, "from_ms", from_ms, 0, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, B, "to_ms", to_ms, 0, UINT64_MAX),
};
static const struct policy_field policy_fields_ambulance[] = {
    POLICY_TEXT(B, "actor", actor, POLICY_TEXT_IDENTIFIER, 1, JOURNAL_ACTOR_BYTES_MAX, NULL),
    POLICY_UINT(POLICY_FIELD_U64, B, "from_ms", from_ms, 0, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, B, "to_ms", to_ms, 0, UINT64_MAX),
};
static const struct policy_field policy_fields_btg_grant[] = {
    POLICY_TEXT(B, "reason_code", reason_code, POLICY_TEXT_IDENTIFIER, 1,
                POLICY_REASON_CODE_BYTES_MAX, NULL),
    POLICY_TEXT(B, "reason_text", text, POLICY_TEXT_LINE, 1, POLICY_TEXT_BYTES_MAX, NULL),
    POLICY_UINT(POLICY_FIELD_U32, B, "hours", hours, 1, POLICY_HOURS_MAX),
};
static const struct policy_field policy_fields_btg_review[] = {
    POLICY_ID(POLICY_FIELD_ID, B, "ref", ref, has_ref),
    POLICY_TEXT(B, "outcome", word, POLICY_TEXT_WORD, 1, POLICY_WORD_BYTES_MAX, policy_outcomes),
    POLICY_TEXT(B, "text", text, POLICY_TEXT_LINE, 0, POLICY_TEXT_BYTES_MAX, NULL),
};
static const struct policy_field policy_fields_erasure[] = {
    POLICY_ID(POLICY_FIELD_ID, B, "entry", ref, has_ref),
    POLICY_TEXT(B, "basis", text, POLICY_TEXT_LINE, 1, POLICY_TEXT_BYTES_MAX, NULL),
};
static const struct policy_field policy_fields_params[] = {
    POLICY_UINT(POLICY_FIELD_U32, B, "implicit_window_days", implicit_window_days, 1,
                POLICY_IMPLICIT_WINDOW_DAYS_LIMIT),
    POLICY_UINT(POLICY_FIELD_U32, B, "btg_hours_max", btg_hours_max, 1, POLICY_HOURS_MAX),
    POLICY_UINT(POLICY_FIELD_U32, B, "ambulance_hours_max", ambulance_hours_max, 1,
                POLICY_AMBULANCE_HOURS_LIMIT),
};
static const struct policy_field policy_fields_audit_batch[] = {
    POLICY_UINT(POLICY_FIELD_U64, B, "node", node_id, 1, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, B, "first_seq", first_seq, 1, UINT64_MAX),
    {.key = "rows", .type = POLICY_FIELD_ROWS, .min = 1, .max = POLICY_AUDIT_BATCH_ROWS_MAX},
};

static const char *const policy_decisions[] = {"denied", "allowed", NULL};

static const struct policy_field policy_fields_audit_row[POLICY_AUDIT_ROW_FIELDS] = {
    POLICY_UINT(POLICY_FIELD_U64, R, "node", node_id, 1, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, R, "seq", seq, 1, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, R, "time_ms", time_ms, 0, UINT64_MAX),
    POLICY_TEXT(R, "actor", actor, POLICY_TEXT_ANY, 0, JOURNAL_ACTOR_BYTES_MAX, NULL),
    POLICY_TEXT(R, "role", role, POLICY_TEXT_ANY, 0, JOURNAL_ROLE_BYTES_MAX, NULL),
    POLICY_TEXT(R, "org", org, POLICY_TEXT_ANY, 0, JOURNAL_ORG_BYTES_MAX, NULL),
    POLICY_TEXT(R, "unit", unit, POLICY_TEXT_ANY, 0, JOURNAL_UNIT_BYTES_MAX, NULL),
    POLICY_TEXT(R, "patient", patient, POLICY_TEXT_ANY, 0, JOURNAL_PATIENT_BYTES_MAX, NULL),
    POLICY_TEXT(R, "action", action, POLICY_TEXT_IDENTIFIER, 1, POLICY_ACTION_BYTES_MAX, NULL),
    {.key = "decision",
     .type = POLICY_FIELD_DECISION,
     .flag_offset = offsetof(R, allowed),
     .words = policy_decisions},
    POLICY_TEXT(R, "basis", basis, POLICY_TEXT_IDENTIFIER, 1, POLICY_BASIS_BYTES_MAX, NULL),
    POLICY_UINT(POLICY_FIELD_U64, R, "count", count, 0, UINT64_MAX),
    POLICY_UINT(POLICY_FIELD_U64, R, "withheld", withheld, 0, UINT64_MAX),
    POLICY_ID(POLICY_FIELD_ID_OR_NIL, R, "entry", entry, has_entry),
    POLICY_TEXT(R, "purpose", purpose, POLICY_TEXT_ANY, 0, POLICY_PURPOSE_BYTES_MAX, NULL),
    POLICY_TEXT(R, "outcome", outcome, POLICY_TEXT_IDENTIFIER, 1, POLICY_OUTCOME_BYTES_MAX, NULL),
};

#undef B
#undef R

struct policy_kind_def {
	const char *name;
	const struct policy_field *fields;
	size_t fields_count;
};

#define POLICY_KIND_DEF(name_, fields_)                                                            \
	{                                                                                          \
		(name_), (fields_), CL_ARRAY_LEN(fields_)                                          \
	}

/* Indexed by enum policy_kind. */
static const struct policy_kind_def policy_kinds[POLICY_KIND_COUNT_] = {
    [POLICY_KIND_NONE] = {NULL, NULL, 0},
    [POLICY_KIND_PATIENT] = POLICY_KIND_DEF("patient", policy_fields_patient),
    [POLICY_KIND_CARE_RELATION] = POLICY_KIND_DEF("care-relation", policy_fields_care_relation),
    [POLICY_KIND_CARE_RELATION_END] = POLICY_KIND_DEF("care-relation-end", policy_fields_ref),
    [POLICY_KIND_BLOCK] = POLICY_KIND_DEF("block", policy_fields_block),
    [POLICY_KIND_BLOCK_LIFT] = POLICY_KIND_DEF("block-lift", policy_fields_ref),
    [POLICY_KIND_WITHHOLD] = POLICY_KIND_DEF("withhold", policy_fields_withhold),
    [POLICY_KIND_WITHHOLD_LIFT] = POLICY_KIND_DEF("withhold-lift", policy_fields_ref),
    [POLICY_KIND_PROXY_GRANT] = POLICY_KIND_DEF("proxy-grant", policy_fields_proxy_grant),
    [POLICY_KIND_PROXY_REVOKE] = POLICY_KIND_DEF("proxy-revoke", policy_fields_ref),
    [POLICY_KIND_AMBULANCE] = POLICY_KIND_DEF("ambulance-assignment", policy_fields_ambulance),
    [POLICY_KIND_BTG_GRANT] = POLICY_KIND_DEF("btg-grant", policy_fields_btg_grant),
    [POLICY_KIND_BTG_REVIEW] = POLICY_KIND_DEF("btg-review", policy_fields_btg_review),
    [POLICY_KIND_ERASURE] = POLICY_KIND_DEF("erasure", policy_fields_erasure),
    [POLICY_KIND_PARAMS] = POLICY_KIND_DEF("policy-params", policy_fields_params),
    [POLICY_KIND_AUDIT_BATCH] = POLICY_KIND_DEF("audit-batch", policy_fields_audit_batch),
};

const char *policy_kind_name(enum policy_kind k)
{
	if (k <= POLICY_KIND_NONE || k >= POLICY_KIND_COUNT_) {
		return NULL;
	}
	return policy_kinds[k].name;
}

enum policy_kind policy_kind_of(const char *kind)
{
	if (kind == NULL) {
		return POLICY_KIND_NONE;
	}
	for (int k = POLICY_KIND_NONE + 1; k < POLICY_KIND_COUNT_; k++) {
		if (strcmp(policy_kinds[k].name, kind) == 0) {
			return (enum policy_kind)k;
		}
	}
	return POLICY_KIND_NONE;
}

/* ---- dates ----------------------------------------------------------------------------- */

struct policy_date {
	int64_t year;
	unsigned month, day;
};

static bool policy_leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned policy_month_days(int64_t y, unsigned m)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	CL_ASSERT(m >= 1 && m <= 12);
	return m == 2 && policy_leap_year(y) ? 29 : days[m - 1];
}

/* Reads `n` decimal digits; false on anything else. */
static bool policy_digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DD" (exactly; year 0001-9999) naming a day of the proleptic Gregorian calendar. */
static bool policy_date_parse(const char *s, struct policy_date *out)
{
	unsigned y, m, d;
	if (strnlen(s, POLICY_DATE_BYTES + 1) != POLICY_DATE_BYTES || s[4] != '-' || s[7] != '-' ||
	    !policy_digits(s, 4, &y) || !policy_digits(s + 5, 2, &m) ||
	    !policy_digits(s + 8, 2, &d)) {
		return false;
	}
	if (y == 0 || m < 1 || m > 12 || d < 1 || d > policy_month_days(y, m)) {
		return false;
	}
	*out = (struct policy_date){.year = y, .month = m, .day = d};
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t policy_days_from_date(const struct policy_date *d)
{
	int64_t y = d->year - (d->month <= 2 ? 1 : 0);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                             /* [0, 399] */
	int64_t mp = d->month > 2 ? d->month - 3 : d->month + 9; /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + (int64_t)d->day - 1;  /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;     /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

/* The date of day `z` since 1970-01-01 (z >= 0; H. Hinnant's civil_from_days). */
static struct policy_date policy_date_from_days(int64_t z)
{
	CL_ASSERT(z >= 0);
	z += 719468;
	int64_t era = z / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t day = doy - (153 * mp + 2) / 5 + 1;
	int64_t month = mp < 10 ? mp + 3 : mp - 9;
	return (struct policy_date){
	    .year = yoe + era * 400 + (month <= 2 ? 1 : 0),
	    .month = (unsigned)month,
	    .day = (unsigned)day,
	};
}

int policy_age_years(const char *birth_date, uint64_t at_ms, uint32_t *out_years)
{
	CL_ASSERT(out_years != NULL);
	struct policy_date birth;
	if (birth_date == NULL || !policy_date_parse(birth_date, &birth)) {
		return CARELOG_EINVAL;
	}
	/* at_ms / 86400000 < 2^38: the date arithmetic below stays far inside int64. */
	int64_t at_days = (int64_t)(at_ms / 86400000U);
	if (at_days < policy_days_from_date(&birth)) {
		return CARELOG_EINVAL;
	}
	struct policy_date at = policy_date_from_days(at_days);
	int64_t years = at.year - birth.year;
	unsigned month = birth.month, day = birth.day;
	if (month == 2 && day == 29 && !policy_leap_year(at.year)) {
		month = 3; /* born on a leap day: the birthday counts on 1 March in other years */
		day = 1;
	}
	if (at.month < month || (at.month == month && at.day < day)) {
		years--;
	}
	CL_ASSERT(years >= 0 && years <= (int64_t)UINT32_MAX);
	*out_years = (uint32_t)years;
	return CARELOG_OK;
}

/* ---- field access ---------------------------------------------------------------------- */

static const char *policy_text(const void *base, const struct policy_field *f)
{
	return (const char *)base + f->offset;
}

static bool policy_flag(const void *base, size_t offset)
{
	bool v;
	memcpy(&v, (const char *)base + offset, sizeof(v));
	return v;
}

static uint64_t policy_uint(const void *base, const struct policy_field *f)
{
	if (f->type == POLICY_FIELD_U32) {
		uint32_t v;
		memcpy(&v, (const char *)base + f->offset, sizeof(v));
		return v;
	}
	uint64_t v;
	memcpy(&v, (const char *)base + f->offset, sizeof(v));
	return v;
}

static bool policy_in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++) {
		if (strcmp(list[i], s) == 0) {
			return true;
		}
	}
	return false;
}

/* The rule of one text field: terminated within its array, length and content. */
static bool policy_text_valid(const void *base, const struct policy_field *f)
{
	CL_ASSERT(f->max < f->size);
	const char *s = policy_text(base, f);
	size_t n = strnlen(s, f->size);
	if (n < f->min || n > f->max) {
		return false;
	}
	if (n == 0) {
		return true; /* allowed by min: "none" */
	}
	switch (f->rule) {
	case POLICY_TEXT_ANY:
		return true;
	case POLICY_TEXT_IDENTIFIER:
		return journal_text_is_identifier(s, f->max);
	case POLICY_TEXT_LINE:
		return journal_text_is_line(s, f->max);
	case POLICY_TEXT_WORD:
		return policy_in_list(f->words, s);
	case POLICY_TEXT_DATE: {
		struct policy_date d;
		return policy_date_parse(s, &d);
	}
	case POLICY_TEXT_SENSITIVITY:
		return journal_sensitivity_known(s);
	}
	CL_UNREACHABLE();
}

/* Care-relation categories: shielded sensitivities (known, not "normal"), no repeats. */
static bool policy_categories_valid(const struct policy_body *b)
{
	if (b->categories_count > POLICY_CATEGORIES_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < b->categories_count; i++) {
		const char *c = b->categories[i];
		if (strnlen(c, sizeof(b->categories[i])) >= sizeof(b->categories[i]) ||
		    !journal_sensitivity_known(c) || strcmp(c, "normal") == 0) {
			return false;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (strcmp(b->categories[j], c) == 0) {
				return false;
			}
		}
	}
	return true;
}

static int policy_audit_row_decode_into(const uint8_t *bytes, size_t len,
                                        struct policy_audit_row *out);

/* Audit-batch rows: 1..max, each an audit row of this batch's node numbered first_seq + i. */
static bool policy_rows_valid(const struct policy_body *b)
{
	if (b->rows_count < 1 || b->rows_count > POLICY_AUDIT_BATCH_ROWS_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < b->rows_count; i++) {
		struct policy_audit_row row;
		if (b->rows[i] == NULL ||
		    policy_audit_row_decode_into(b->rows[i], b->rows_len[i], &row) != CARELOG_OK) {
			return false;
		}
		if (row.node_id != b->node_id || row.seq < b->first_seq ||
		    row.seq - b->first_seq != i) {
			return false;
		}
	}
	return true;
}

/* Every field of a table against its own rule. */
static bool policy_fields_valid(const void *base, const struct policy_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct policy_field *f = &fields[i];
		switch (f->type) {
		case POLICY_FIELD_TEXT:
			if (!policy_text_valid(base, f)) {
				return false;
			}
			break;
		case POLICY_FIELD_U64:
		case POLICY_FIELD_U32: {
			uint64_t v = policy_uint(base, f);
			if (v < f->min || v > f->max) {
				return false;
			}
			break;
		}
		case POLICY_FIELD_ID:
			if (!policy_flag(base, f->flag_offset)) {
				return false;
			}
			break;
		case POLICY_FIELD_ID_OR_NIL:
		case POLICY_FIELD_DECISION:
			break;
		case POLICY_FIELD_CATEGORIES:
			if (!policy_categories_valid(base)) {
				return false;
			}
			break;
		case POLICY_FIELD_ROWS:
			if (!policy_rows_valid(base)) {
				return false;
			}
			break;
		}
	}
	return true;
}

/* The rules that relate two fields of one kind (docs/entry-format.md section 10). */
static bool policy_body_rules(const struct policy_body *b)
{
	switch (b->kind) {
	case POLICY_KIND_CARE_RELATION:
	case POLICY_KIND_PROXY_GRANT:
		return b->to_ms == 0 || b->to_ms > b->from_ms;
	case POLICY_KIND_AMBULANCE:
		return b->to_ms > b->from_ms;
	case POLICY_KIND_BLOCK: {
		bool by_org = b->target_org[0] != '\0';
		bool by_actor = b->actor[0] != '\0';
		bool scope_category = strcmp(b->word, "category") == 0;
		bool scope_entry = strcmp(b->word, "entry") == 0;
		return by_org != by_actor && scope_category == (b->category[0] != '\0') &&
		       scope_entry == b->has_ref;
	}
	default:
		return true;
	}
}

static bool policy_body_valid(const struct policy_body *b)
{
	const struct policy_kind_def *def = &policy_kinds[b->kind];
	return policy_fields_valid(b, def->fields, def->fields_count) && policy_body_rules(b);
}

/* ---- packing --------------------------------------------------------------------------- */

/* Packs the fields of a table as a map, "v" first when `versioned`. The writer latches its first
 * failure, so results are read once, from the writer, by the caller. */
static void policy_pack(msgpack_packer *pk, const void *base, const struct policy_field *fields,
                        size_t n, bool versioned)
{
	(void)msgpack_pack_map(pk, n + (versioned ? 1 : 0));
	if (versioned) {
		(void)journal_mp_pack_cstr(pk, "v");
		(void)msgpack_pack_uint64(pk, POLICY_BODY_VERSION);
	}
	for (size_t i = 0; i < n; i++) {
		const struct policy_field *f = &fields[i];
		(void)journal_mp_pack_cstr(pk, f->key);
		switch (f->type) {
		case POLICY_FIELD_TEXT:
			(void)journal_mp_pack_cstr(pk, policy_text(base, f));
			break;
		case POLICY_FIELD_U64:
		case POLICY_FIELD_U32:
			(void)msgpack_pack_uint64(pk, policy_uint(base, f));
			break;
		case POLICY_FIELD_ID:
		case POLICY_FIELD_ID_OR_NIL:
			if (policy_flag(base, f->flag_offset)) {
				(void)msgpack_pack_bin_with_body(pk, (const char *)base + f->offset,
				                                 JOURNAL_ID_BYTES);
			} else {
				(void)msgpack_pack_nil(pk);
			}
			break;
		case POLICY_FIELD_DECISION:
			(void)journal_mp_pack_cstr(pk, f->words[policy_flag(base, f->flag_offset)]);
			break;
		case POLICY_FIELD_CATEGORIES: {
			const struct policy_body *b = base;
			(void)msgpack_pack_array(pk, b->categories_count);
			for (uint32_t k = 0; k < b->categories_count; k++) {
				(void)journal_mp_pack_cstr(pk, b->categories[k]);
			}
			break;
		}
		case POLICY_FIELD_ROWS: {
			const struct policy_body *b = base;
			(void)msgpack_pack_array(pk, b->rows_count);
			for (uint32_t k = 0; k < b->rows_count; k++) {
				(void)msgpack_pack_bin_with_body(pk, b->rows[k], b->rows_len[k]);
			}
			break;
		}
		}
	}
}

/* Packs into `out` (at most `limit` bytes): CARELOG_ETOOBIG if it does not fit. */
static int policy_pack_into(const void *base, const struct policy_field *fields, size_t n,
                            bool versioned, uint8_t *out, size_t limit, size_t *out_len)
{
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init(&w, &pk, out, limit);
	policy_pack(&pk, base, fields, n, versioned);
	if (!journal_mp_writer_done(&w)) {
		return CARELOG_ETOOBIG;
	}
	*out_len = w.len;
	return CARELOG_OK;
}

/* True if packing reproduces `bytes` exactly: one byte form per value. */
static bool policy_pack_matches(const void *base, const struct policy_field *fields, size_t n,
                                bool versioned, const uint8_t *bytes, size_t len)
{
	struct journal_mp_writer w;
	msgpack_packer pk;
	journal_mp_writer_init_compare(&w, &pk, bytes, len);
	policy_pack(&pk, base, fields, n, versioned);
	return journal_mp_writer_done(&w);
}

/* ---- unpacking ------------------------------------------------------------------------- */

static void policy_set_flag(void *base, size_t offset, bool v)
{
	memcpy((char *)base + offset, &v, sizeof(v));
}

static bool policy_unpack_id(const msgpack_object *o, void *base, const struct policy_field *f)
{
	if (o->type == MSGPACK_OBJECT_NIL && f->type == POLICY_FIELD_ID_OR_NIL) {
		policy_set_flag(base, f->flag_offset, false);
		return true;
	}
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != JOURNAL_ID_BYTES) {
		return false;
	}
	memcpy((char *)base + f->offset, o->via.bin.ptr, JOURNAL_ID_BYTES);
	policy_set_flag(base, f->flag_offset, true);
	return true;
}

static bool policy_unpack_categories(const msgpack_object *o, struct policy_body *b)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > POLICY_CATEGORIES_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		if (!journal_mp_copy_str(&o->via.array.ptr[i], b->categories[i],
		                         JOURNAL_SENSITIVITY_BYTES_MAX, false)) {
			return false;
		}
	}
	b->categories_count = o->via.array.size;
	return true;
}

static bool policy_unpack_rows(const msgpack_object *o, struct policy_body *b)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > POLICY_AUDIT_BATCH_ROWS_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *row = &o->via.array.ptr[i];
		if (row->type != MSGPACK_OBJECT_BIN) {
			return false;
		}
		/* Views into the decoded bytes: msgpack-c references bin bodies in place. */
		b->rows[i] = (const uint8_t *)row->via.bin.ptr;
		b->rows_len[i] = row->via.bin.size;
	}
	b->rows_count = o->via.array.size;
	return true;
}

/* One value of the type its field wants (rules come later, in policy_fields_valid). */
static bool policy_unpack_field(const msgpack_object *o, void *base, const struct policy_field *f)
{
	switch (f->type) {
	case POLICY_FIELD_TEXT:
		CL_ASSERT(f->max < f->size);
		return journal_mp_copy_str(o, (char *)base + f->offset, f->max, true);
	case POLICY_FIELD_U64:
	case POLICY_FIELD_U32:
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			return false;
		}
		if (f->type == POLICY_FIELD_U64) {
			memcpy((char *)base + f->offset, &o->via.u64, sizeof(uint64_t));
			return true;
		} else if (o->via.u64 <= UINT32_MAX) {
			uint32_t v = (uint32_t)o->via.u64;
			memcpy((char *)base + f->offset, &v, sizeof(v));
			return true;
		}
		return false;
	case POLICY_FIELD_ID:
	case POLICY_FIELD_ID_OR_NIL:
		return policy_unpack_id(o, base, f);
	case POLICY_FIELD_DECISION:
		for (size_t k = 0; k < 2; k++) {
			if (journal_mp_is_key(o, f->words[k])) {
				policy_set_flag(base, f->flag_offset, k == 1);
				return true;
			}
		}
		return false;
	case POLICY_FIELD_CATEGORIES:
		return policy_unpack_categories(o, base);
	case POLICY_FIELD_ROWS:
		return policy_unpack_rows(o, base);
	}
	CL_UNREACHABLE();
}

/* Fills `base` from a map with exactly the table's keys in order (after "v" when versioned):
 * CARELOG_EVERSION for a "v" other than 1 (judged before the rest), CARELOG_EPROTO otherwise. */
static int policy_unpack(const msgpack_object *o, void *base, const struct policy_field *fields,
                         size_t n, bool versioned)
{
	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0) {
		return CARELOG_EPROTO;
	}
	const msgpack_object_kv *kv = o->via.map.ptr;
	size_t first = 0;
	if (versioned) {
		if (!journal_mp_is_key(&kv[0].key, "v") ||
		    kv[0].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			return CARELOG_EPROTO;
		}
		if (kv[0].val.via.u64 != POLICY_BODY_VERSION) {
			return CARELOG_EVERSION;
		}
		first = 1;
	}
	if (o->via.map.size != n + first) {
		return CARELOG_EPROTO;
	}
	for (size_t i = 0; i < n; i++) {
		if (!journal_mp_is_key(&kv[first + i].key, fields[i].key) ||
		    !policy_unpack_field(&kv[first + i].val, base, &fields[i])) {
			return CARELOG_EPROTO;
		}
	}
	return CARELOG_OK;
}

/* ---- policy bodies --------------------------------------------------------------------- */

/* Bodies of every kind but audit-batch are small; an audit batch holds up to 2000 rows. */
static size_t policy_body_bytes_max(enum policy_kind kind)
{
	return kind == POLICY_KIND_AUDIT_BATCH ? POLICY_AUDIT_BATCH_BYTES_MAX
	                                       : POLICY_BODY_BYTES_MAX;
}

int policy_body_encode(const struct policy_body *b, uint8_t *out, size_t out_capacity,
                       size_t *out_len)
{
	CL_ASSERT(b != NULL && out_len != NULL && (out != NULL || out_capacity == 0));
	if (policy_kind_name(b->kind) == NULL || !policy_body_valid(b)) {
		return CARELOG_EINVAL;
	}
	const struct policy_kind_def *def = &policy_kinds[b->kind];
	size_t limit = policy_body_bytes_max(b->kind);
	return policy_pack_into(b, def->fields, def->fields_count, true, out,
	                        out_capacity < limit ? out_capacity : limit, out_len);
}

/* policy_body_decode without clearing `out` on failure. */
static int policy_body_decode_into(enum policy_kind kind, const uint8_t *bytes, size_t len,
                                   struct policy_body *out)
{
	if (policy_kind_name(kind) == NULL) {
		return CARELOG_EINVAL;
	}
	if (bytes == NULL || len == 0 || len > policy_body_bytes_max(kind)) {
		return CARELOG_EPROTO;
	}
	const struct policy_kind_def *def = &policy_kinds[kind];
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	msgpack_unpacked u;
	int rc = journal_mp_unpack(&u, bytes, len);
	if (rc == CARELOG_OK) {
		rc = policy_unpack(&u.data, out, def->fields, def->fields_count, true);
	}
	msgpack_unpacked_destroy(&u);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!policy_body_valid(out) ||
	    !policy_pack_matches(out, def->fields, def->fields_count, true, bytes, len)) {
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

int policy_body_decode(enum policy_kind kind, const uint8_t *bytes, size_t len,
                       struct policy_body *out)
{
	CL_ASSERT(out != NULL);
	/* Decoded in place (a policy_body is ~36 KiB: no second copy on the stack); a failure
	 * leaves it cleared, kind POLICY_KIND_NONE, never half filled. */
	int rc = policy_body_decode_into(kind, bytes, len, out);
	if (rc != CARELOG_OK) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

/* ---- audit rows ------------------------------------------------------------------------ */

CL_STATIC_ASSERT(POLICY_AUDIT_ROW_BYTES_MAX == 4096, "equal to STORAGE_AUDIT_ROW_BYTES_MAX");

int policy_audit_row_encode(const struct policy_audit_row *r, uint8_t *out, size_t out_capacity,
                            size_t *out_len)
{
	CL_ASSERT(r != NULL && out_len != NULL && (out != NULL || out_capacity == 0));
	if (!policy_fields_valid(r, policy_fields_audit_row, POLICY_AUDIT_ROW_FIELDS)) {
		return CARELOG_EINVAL;
	}
	size_t limit = POLICY_AUDIT_ROW_BYTES_MAX;
	return policy_pack_into(r, policy_fields_audit_row, POLICY_AUDIT_ROW_FIELDS, false, out,
	                        out_capacity < limit ? out_capacity : limit, out_len);
}

static int policy_audit_row_decode_into(const uint8_t *bytes, size_t len,
                                        struct policy_audit_row *out)
{
	if (bytes == NULL || len == 0 || len > POLICY_AUDIT_ROW_BYTES_MAX) {
		return CARELOG_EPROTO;
	}
	memset(out, 0, sizeof(*out));
	msgpack_unpacked u;
	int rc = journal_mp_unpack(&u, bytes, len);
	if (rc == CARELOG_OK) {
		rc = policy_unpack(&u.data, out, policy_fields_audit_row, POLICY_AUDIT_ROW_FIELDS,
		                   false);
	}
	msgpack_unpacked_destroy(&u);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!policy_fields_valid(out, policy_fields_audit_row, POLICY_AUDIT_ROW_FIELDS) ||
	    !policy_pack_matches(out, policy_fields_audit_row, POLICY_AUDIT_ROW_FIELDS, false,
	                         bytes, len)) {
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

int policy_audit_row_decode(const uint8_t *bytes, size_t len, struct policy_audit_row *out)
{
	CL_ASSERT(out != NULL);
	struct policy_audit_row r;
	int rc = policy_audit_row_decode_into(bytes, len, &r);
	if (rc == CARELOG_OK) {
		*out = r;
	}
	return rc;
}
