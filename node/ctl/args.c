/* carelogctl's command line: commands, options, defaults from the environment, usage texts. */
#include "node/ctl/ctl.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/crypto.h"

#include <stdarg.h>
#include <string.h>

/* ------------------------------------------------------------------ commands */

struct ctl_command_def {
	const char *word1;
	const char *word2; /* NULL for one-word commands */
	bool network;      /* talks to a node: needs an endpoint */
	bool help_only;    /* a command group's own --help ("member --help"); never run */
};

static const struct ctl_command_def ctl_commands[CTL_CMD_COUNT_] = {
	[CTL_CMD_NONE] = {"", NULL, false},
	[CTL_CMD_KEYGEN] = {"keygen", NULL, false},
	[CTL_CMD_CLUSTER_INIT] = {"cluster", "init", false},
	[CTL_CMD_STATUS] = {"status", NULL, true},
	[CTL_CMD_APPEND] = {"append", NULL, true},
	[CTL_CMD_READ] = {"read", NULL, true},
	[CTL_CMD_GET] = {"get", NULL, true},
	[CTL_CMD_VERIFY] = {"verify", NULL, true},
	[CTL_CMD_BENCH_APPEND] = {"bench", "append", true},
	[CTL_CMD_MEMBER] = {"member", NULL, true, true},
	[CTL_CMD_MEMBER_ADD_LEARNER] = {"member", "add-learner", true},
	[CTL_CMD_MEMBER_PROMOTE] = {"member", "promote", true},
	[CTL_CMD_MEMBER_REMOVE] = {"member", "remove", true},
	[CTL_CMD_TRANSFER_LEADER] = {"transfer-leader", NULL, true},
	[CTL_CMD_PATIENT_SET] = {"patient", "set", true},
	[CTL_CMD_RELATION] = {"relation", NULL, true, true},
	[CTL_CMD_RELATION_ADD] = {"relation", "add", true},
	[CTL_CMD_RELATION_END] = {"relation", "end", true},
	[CTL_CMD_BLOCK] = {"block", NULL, true, true},
	[CTL_CMD_BLOCK_ADD] = {"block", "add", true},
	[CTL_CMD_BLOCK_LIFT] = {"block", "lift", true},
	[CTL_CMD_WITHHOLD_LIFT] = {"withhold", "lift", true},
	[CTL_CMD_WITHHOLD] = {"withhold", NULL, true},
	[CTL_CMD_PROXY] = {"proxy", NULL, true, true},
	[CTL_CMD_PROXY_GRANT] = {"proxy", "grant", true},
	[CTL_CMD_PROXY_REVOKE] = {"proxy", "revoke", true},
	[CTL_CMD_AMBULANCE_ASSIGN] = {"ambulance", "assign", true},
	[CTL_CMD_BTG] = {"btg", NULL, true},
	[CTL_CMD_BTG_REVIEW] = {"btg-review", NULL, true},
	[CTL_CMD_PARAMS_SET] = {"params", "set", true},
	[CTL_CMD_AMEND] = {"amend", NULL, true},
	[CTL_CMD_ENTERED_IN_ERROR] = {"entered-in-error", NULL, true},
	[CTL_CMD_ERASE] = {"erase", NULL, true},
	[CTL_CMD_ACCESS_LOG] = {"access-log", NULL, true},
	[CTL_CMD_COMPACT] = {"compact", NULL, false},
};

static const char *const ctl_command_names[CTL_CMD_COUNT_] = {
	[CTL_CMD_NONE] = "",
	[CTL_CMD_KEYGEN] = "keygen",
	[CTL_CMD_CLUSTER_INIT] = "cluster init",
	[CTL_CMD_STATUS] = "status",
	[CTL_CMD_APPEND] = "append",
	[CTL_CMD_READ] = "read",
	[CTL_CMD_GET] = "get",
	[CTL_CMD_VERIFY] = "verify",
	[CTL_CMD_BENCH_APPEND] = "bench append",
	[CTL_CMD_MEMBER] = "member",
	[CTL_CMD_MEMBER_ADD_LEARNER] = "member add-learner",
	[CTL_CMD_MEMBER_PROMOTE] = "member promote",
	[CTL_CMD_MEMBER_REMOVE] = "member remove",
	[CTL_CMD_TRANSFER_LEADER] = "transfer-leader",
	[CTL_CMD_PATIENT_SET] = "patient set",
	[CTL_CMD_RELATION] = "relation",
	[CTL_CMD_RELATION_ADD] = "relation add",
	[CTL_CMD_RELATION_END] = "relation end",
	[CTL_CMD_BLOCK] = "block",
	[CTL_CMD_BLOCK_ADD] = "block add",
	[CTL_CMD_BLOCK_LIFT] = "block lift",
	[CTL_CMD_WITHHOLD_LIFT] = "withhold lift",
	[CTL_CMD_WITHHOLD] = "withhold",
	[CTL_CMD_PROXY] = "proxy",
	[CTL_CMD_PROXY_GRANT] = "proxy grant",
	[CTL_CMD_PROXY_REVOKE] = "proxy revoke",
	[CTL_CMD_AMBULANCE_ASSIGN] = "ambulance assign",
	[CTL_CMD_BTG] = "btg",
	[CTL_CMD_BTG_REVIEW] = "btg-review",
	[CTL_CMD_PARAMS_SET] = "params set",
	[CTL_CMD_AMEND] = "amend",
	[CTL_CMD_ENTERED_IN_ERROR] = "entered-in-error",
	[CTL_CMD_ERASE] = "erase",
	[CTL_CMD_ACCESS_LOG] = "access-log",
	[CTL_CMD_COMPACT] = "compact",
};

const char *ctl_command_name(enum ctl_command command)
{
	CL_ASSERT(command < CTL_CMD_COUNT_);
	return ctl_command_names[command];
}

/* ------------------------------------------------------------------ options */

enum ctl_opt {
	OPT_ENDPOINT,
	OPT_TIMEOUT,
	OPT_ACTOR,
	OPT_JSON,
	OPT_HELP,
	OPT_VERSION,
	OPT_OUT,
	OPT_MEMBER,
	OPT_LEARNER,
	OPT_BODY_MAX_BYTES,
	OPT_PATIENT,
	OPT_KIND,
	OPT_BODY,
	OPT_BODY_FILE,
	OPT_REQUEST_ID,
	OPT_STATUS,
	OPT_SENSITIVITY,
	OPT_MEDIA_TYPE,
	OPT_CLINICAL_TIME,
	OPT_CORRECTS,
	OPT_CONSISTENCY,
	OPT_MIN_INDEX,
	OPT_SINCE_INDEX,
	OPT_LIMIT,
	OPT_ID,
	OPT_CLIENTS,
	OPT_COUNT,
	OPT_BODY_BYTES,
	OPT_ORG,
	OPT_ADDRESS,
	OPT_PUBLIC_KEY,
	OPT_WAIT,
	OPT_TO,
	/* clinical access */
	OPT_UNIT,
	OPT_PURPOSE,
	OPT_REL_UNIT,
	OPT_LOG_ACTOR,
	OPT_TO_TIME,
	OPT_FROM,
	OPT_BIRTH_DATE,
	OPT_CATEGORIES,
	OPT_PERSON,
	OPT_CATEGORY,
	OPT_ENTRY,
	OPT_REASON,
	OPT_PROXY,
	OPT_RELATION,
	OPT_LEVEL,
	OPT_CREW,
	OPT_HOURS,
	OPT_REASON_CODE,
	OPT_CLOSE,
	OPT_OUTCOME,
	OPT_TEXT,
	OPT_IMPLICIT_WINDOW_DAYS,
	OPT_BTG_HOURS_MAX,
	OPT_AMBULANCE_HOURS_MAX,
	OPT_BASIS,
	OPT_HISTORY,
	OPT_DATA_DIR,
	OPT_COUNT_
};
CL_STATIC_ASSERT(OPT_COUNT_ <= 64, "options seen are a uint64_t mask");
CL_STATIC_ASSERT(CTL_CMD_COUNT_ <= 64, "commands are a uint64_t mask");

#define CMD(c)   ((uint64_t)1 << (c))
#define CMDS_ALL (~(uint64_t)0)
#define CMDS_MEMBER_ID                                                                      \
	(CMD(CTL_CMD_MEMBER_ADD_LEARNER) | CMD(CTL_CMD_MEMBER_PROMOTE) | CMD(CTL_CMD_MEMBER_REMOVE))
/* Commands that append a policy entry (or a correction): each takes --request-id. */
#define CMDS_WRITE                                                                                 \
	(CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_PATIENT_SET) | CMD(CTL_CMD_RELATION_ADD) |              \
	 CMD(CTL_CMD_RELATION_END) | CMD(CTL_CMD_BLOCK_ADD) | CMD(CTL_CMD_BLOCK_LIFT) |            \
	 CMD(CTL_CMD_WITHHOLD) | CMD(CTL_CMD_WITHHOLD_LIFT) | CMD(CTL_CMD_PROXY_GRANT) |           \
	 CMD(CTL_CMD_PROXY_REVOKE) | CMD(CTL_CMD_AMBULANCE_ASSIGN) | CMD(CTL_CMD_BTG) |            \
	 CMD(CTL_CMD_BTG_REVIEW) | CMD(CTL_CMD_PARAMS_SET) | CMD(CTL_CMD_AMEND) |                  \
	 CMD(CTL_CMD_ENTERED_IN_ERROR) | CMD(CTL_CMD_ERASE))
/* Commands whose --id is an entry id (64 hex digits). */
#define CMDS_ENTRY_ID                                                                              \
	(CMD(CTL_CMD_GET) | CMD(CTL_CMD_RELATION_END) | CMD(CTL_CMD_BLOCK_LIFT) |                  \
	 CMD(CTL_CMD_WITHHOLD_LIFT) | CMD(CTL_CMD_PROXY_REVOKE) | CMD(CTL_CMD_AMEND) |             \
	 CMD(CTL_CMD_ENTERED_IN_ERROR) | CMD(CTL_CMD_ERASE))

struct ctl_opt_def {
	const char *name;
	bool takes_value;
	bool repeatable;
	uint64_t commands; /* where the option is allowed after the command word */
};

static const struct ctl_opt_def ctl_opts[OPT_COUNT_] = {
	/* connection options are accepted everywhere so scripts may put them anywhere */
	[OPT_ENDPOINT] = {"--endpoint", true, false, CMDS_ALL},
	[OPT_TIMEOUT] = {"--timeout", true, false, CMDS_ALL},
	/* --actor and --unit after access-log / relation add are that command's own (below) */
	[OPT_ACTOR] = {"--actor", true, false, CMDS_ALL & ~CMD(CTL_CMD_ACCESS_LOG)},
	[OPT_UNIT] = {"--unit", true, false, CMDS_ALL & ~CMD(CTL_CMD_RELATION_ADD)},
	[OPT_PURPOSE] = {"--purpose", true, false, CMDS_ALL},
	[OPT_JSON] = {"--json", false, false, CMDS_ALL},
	[OPT_HELP] = {"--help", false, true, CMDS_ALL},
	[OPT_VERSION] = {"--version", false, false, CMD(CTL_CMD_NONE)},
	[OPT_OUT] = {"--out", true, false, CMD(CTL_CMD_KEYGEN) | CMD(CTL_CMD_CLUSTER_INIT)},
	[OPT_MEMBER] = {"--member", true, true, CMD(CTL_CMD_CLUSTER_INIT)},
	[OPT_LEARNER] = {"--learner", true, true, CMD(CTL_CMD_CLUSTER_INIT)},
	[OPT_BODY_MAX_BYTES] = {"--body-max-bytes", true, false, CMD(CTL_CMD_CLUSTER_INIT)},
	[OPT_PATIENT] = {"--patient", true, false,
			 CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_READ) | CMD(CTL_CMD_BENCH_APPEND) |
			     CMD(CTL_CMD_PATIENT_SET) | CMD(CTL_CMD_RELATION_ADD) |
			     CMD(CTL_CMD_BLOCK_ADD) | CMD(CTL_CMD_PROXY_GRANT) |
			     CMD(CTL_CMD_AMBULANCE_ASSIGN) | CMD(CTL_CMD_BTG) |
			     CMD(CTL_CMD_BTG_REVIEW) | CMD(CTL_CMD_ACCESS_LOG)},
	[OPT_KIND] = {"--kind", true, false,
		      CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_READ) | CMD(CTL_CMD_BENCH_APPEND)},
	[OPT_BODY] = {"--body", true, false, CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_AMEND)},
	[OPT_BODY_FILE] = {"--body-file", true, false, CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_AMEND)},
	[OPT_REQUEST_ID] = {"--request-id", true, false, CMDS_WRITE},
	[OPT_STATUS] = {"--status", true, false, CMD(CTL_CMD_APPEND)},
	[OPT_SENSITIVITY] = {"--sensitivity", true, false, CMD(CTL_CMD_APPEND)},
	[OPT_MEDIA_TYPE] = {"--media-type", true, false, CMD(CTL_CMD_APPEND) | CMD(CTL_CMD_AMEND)},
	[OPT_CLINICAL_TIME] = {"--clinical-time", true, false, CMD(CTL_CMD_APPEND)},
	[OPT_CORRECTS] = {"--corrects", true, false, CMD(CTL_CMD_APPEND)},
	[OPT_CONSISTENCY] = {"--consistency", true, false, CMD(CTL_CMD_READ)},
	[OPT_MIN_INDEX] = {"--min-index", true, false, CMD(CTL_CMD_READ)},
	[OPT_SINCE_INDEX] = {"--since-index", true, false, CMD(CTL_CMD_READ)},
	[OPT_LIMIT] = {"--limit", true, false,
		       CMD(CTL_CMD_READ) | CMD(CTL_CMD_BTG_REVIEW) | CMD(CTL_CMD_ACCESS_LOG)},
	[OPT_ID] = {"--id", true, false, CMDS_ENTRY_ID | CMDS_MEMBER_ID},
	[OPT_CLIENTS] = {"--clients", true, false, CMD(CTL_CMD_BENCH_APPEND)},
	[OPT_COUNT] = {"--count", true, false, CMD(CTL_CMD_BENCH_APPEND)},
	[OPT_BODY_BYTES] = {"--body-bytes", true, false, CMD(CTL_CMD_BENCH_APPEND)},
	[OPT_ORG] = {"--org", true, false,
		     CMD(CTL_CMD_MEMBER_ADD_LEARNER) | CMD(CTL_CMD_BLOCK_ADD) |
			 CMD(CTL_CMD_ACCESS_LOG)},
	[OPT_ADDRESS] = {"--address", true, false, CMD(CTL_CMD_MEMBER_ADD_LEARNER)},
	[OPT_PUBLIC_KEY] = {"--public-key", true, false, CMD(CTL_CMD_MEMBER_ADD_LEARNER)},
	[OPT_WAIT] = {"--wait", false, false, CMD(CTL_CMD_MEMBER_ADD_LEARNER)},
	[OPT_TO] = {"--to", true, false, CMD(CTL_CMD_TRANSFER_LEADER)},
	[OPT_REL_UNIT] = {"--unit", true, false, CMD(CTL_CMD_RELATION_ADD)},
	[OPT_LOG_ACTOR] = {"--actor", true, false, CMD(CTL_CMD_ACCESS_LOG)},
	[OPT_TO_TIME] = {"--to", true, false, CMD(CTL_CMD_RELATION_ADD) | CMD(CTL_CMD_PROXY_GRANT)},
	[OPT_FROM] = {"--from", true, false,
		      CMD(CTL_CMD_RELATION_ADD) | CMD(CTL_CMD_PROXY_GRANT) |
			  CMD(CTL_CMD_AMBULANCE_ASSIGN) | CMD(CTL_CMD_WITHHOLD)},
	[OPT_BIRTH_DATE] = {"--birth-date", true, false, CMD(CTL_CMD_PATIENT_SET)},
	[OPT_CATEGORIES] = {"--categories", true, false, CMD(CTL_CMD_RELATION_ADD)},
	[OPT_PERSON] = {"--person", true, false, CMD(CTL_CMD_BLOCK_ADD)},
	[OPT_CATEGORY] = {"--category", true, false, CMD(CTL_CMD_BLOCK_ADD)},
	[OPT_ENTRY] = {"--entry", true, false, CMD(CTL_CMD_BLOCK_ADD) | CMD(CTL_CMD_WITHHOLD)},
	[OPT_REASON] = {"--reason", true, false,
			CMD(CTL_CMD_WITHHOLD) | CMD(CTL_CMD_BTG) | CMD(CTL_CMD_ENTERED_IN_ERROR)},
	[OPT_PROXY] = {"--proxy", true, false, CMD(CTL_CMD_PROXY_GRANT)},
	[OPT_RELATION] = {"--relation", true, false, CMD(CTL_CMD_PROXY_GRANT)},
	[OPT_LEVEL] = {"--level", true, false, CMD(CTL_CMD_PROXY_GRANT)},
	[OPT_CREW] = {"--crew", true, false, CMD(CTL_CMD_AMBULANCE_ASSIGN)},
	[OPT_HOURS] = {"--hours", true, false, CMD(CTL_CMD_BTG) | CMD(CTL_CMD_AMBULANCE_ASSIGN)},
	[OPT_REASON_CODE] = {"--reason-code", true, false, CMD(CTL_CMD_BTG)},
	[OPT_CLOSE] = {"--close", true, false, CMD(CTL_CMD_BTG_REVIEW)},
	[OPT_OUTCOME] = {"--outcome", true, false, CMD(CTL_CMD_BTG_REVIEW)},
	[OPT_TEXT] = {"--text", true, false, CMD(CTL_CMD_BTG_REVIEW)},
	[OPT_IMPLICIT_WINDOW_DAYS] = {"--implicit-window-days", true, false, CMD(CTL_CMD_PARAMS_SET)},
	[OPT_BTG_HOURS_MAX] = {"--btg-hours-max", true, false, CMD(CTL_CMD_PARAMS_SET)},
	[OPT_AMBULANCE_HOURS_MAX] = {"--ambulance-hours-max", true, false, CMD(CTL_CMD_PARAMS_SET)},
	[OPT_BASIS] = {"--basis", true, false, CMD(CTL_CMD_ERASE)},
	[OPT_HISTORY] = {"--history", false, false, CMD(CTL_CMD_READ)},
	[OPT_DATA_DIR] = {"--data-dir", true, false, CMD(CTL_CMD_COMPACT)},
};

/* ------------------------------------------------------------------ parsing */

struct ctl_parser {
	struct ctl_options *o;
	char *err;
	size_t err_len;
	uint64_t seen; /* options given, for duplicate detection */
	bool actor_given;
	bool timeout_given;
	bool unit_given;
};

CL_PRINTF(2, 3)
static int ctl_usage_error(struct ctl_parser *p, const char *fmt, ...)
{
	if (p->err_len > 0) {
		size_t n = 0;
		if (p->o->command != CTL_CMD_NONE) {
			int w = snprintf(p->err, p->err_len, "%s: ", ctl_command_name(p->o->command));
			n = w > 0 && (size_t)w < p->err_len ? (size_t)w : 0;
		}
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->err_len - n, fmt, ap);
		va_end(ap);
	}
	return CTL_EXIT_USAGE;
}

static bool ctl_parse_u64(const char *s, uint64_t *out)
{
	if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20) {
		return false;
	}
	uint64_t v = 0;
	for (const char *c = s; *c != '\0'; c++) {
		uint64_t d = (uint64_t)(*c - '0');
		if (v > (UINT64_MAX - d) / 10) {
			return false;
		}
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Seconds with up to three decimals ("2", "0.5", "1.250") to milliseconds. */
static bool ctl_parse_seconds(const char *s, uint32_t *out_ms)
{
	const char *dot = strchr(s, '.');
	size_t whole_len = dot != NULL ? (size_t)(dot - s) : strlen(s);
	if (whole_len == 0 || whole_len > 6 || strspn(s, "0123456789") != whole_len) {
		return false;
	}
	uint64_t ms = 0;
	for (size_t i = 0; i < whole_len; i++) {
		ms = ms * 10 + (uint64_t)(s[i] - '0');
	}
	ms *= 1000;
	if (dot != NULL) {
		size_t frac_len = strlen(dot + 1);
		if (frac_len == 0 || frac_len > 3 || strspn(dot + 1, "0123456789") != frac_len) {
			return false;
		}
		uint64_t frac = 0;
		for (size_t i = 0; i < 3; i++) {
			frac = frac * 10 + (i < frac_len ? (uint64_t)(dot[1 + i] - '0') : 0);
		}
		ms += frac;
	}
	if (ms == 0 || ms > CTL_TIMEOUT_MS_MAX) {
		return false;
	}
	*out_ms = (uint32_t)ms;
	return true;
}

static int ctl_parse_actor(struct ctl_parser *p, const char *text, const char *source)
{
	const char *colon = strchr(text, ':');
	size_t id_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
	const char *role = colon != NULL ? colon + 1 : "";
	if (id_len == 0) {
		return ctl_usage_error(p, "%s \"%s\": expected ID[:ROLE]", source, text);
	}
	if (id_len > CTL_ACTOR_BYTES_MAX || strlen(role) > CTL_ROLE_BYTES_MAX) {
		return ctl_usage_error(p, "%s: id at most %d bytes, role at most %d", source,
				       CTL_ACTOR_BYTES_MAX, CTL_ROLE_BYTES_MAX);
	}
	memcpy(p->o->actor, text, id_len);
	p->o->actor[id_len] = '\0';
	snprintf(p->o->role, sizeof(p->o->role), "%s", role);
	return CTL_EXIT_OK;
}

/* ID,ORG,ADDRESS,PUBKEY_FILE; the file is everything after the third comma. */
static int ctl_parse_member(struct ctl_parser *p, const char *flag, const char *text, bool voter)
{
	if (p->o->members_count >= CTL_CLUSTER_MEMBERS_MAX) {
		return ctl_usage_error(p, "more than %d members", CTL_CLUSTER_MEMBERS_MAX);
	}
	const char *c1 = strchr(text, ',');
	const char *c2 = c1 != NULL ? strchr(c1 + 1, ',') : NULL;
	const char *c3 = c2 != NULL ? strchr(c2 + 1, ',') : NULL;
	if (c3 == NULL || c3[1] == '\0') {
		return ctl_usage_error(p, "%s \"%s\": expected ID,ORG,ADDRESS,PUBKEY_FILE", flag,
				       text);
	}
	struct ctl_member_arg *m = &p->o->members[p->o->members_count];
	char id_text[24];
	size_t id_len = (size_t)(c1 - text);
	size_t org_len = (size_t)(c2 - c1 - 1);
	size_t address_len = (size_t)(c3 - c2 - 1);
	if (id_len == 0 || id_len >= sizeof(id_text)) {
		return ctl_usage_error(p, "%s \"%s\": bad node id", flag, text);
	}
	memcpy(id_text, text, id_len);
	id_text[id_len] = '\0';
	if (!ctl_parse_u64(id_text, &m->id) || m->id == 0) {
		return ctl_usage_error(p, "%s \"%s\": node id must be a number above 0", flag, text);
	}
	if (org_len == 0 || org_len > CTL_ORG_BYTES_MAX) {
		return ctl_usage_error(p, "%s \"%s\": organisation must be 1-%d bytes", flag, text,
				       CTL_ORG_BYTES_MAX);
	}
	if (address_len == 0 || address_len > CTL_ADDRESS_BYTES_MAX) {
		return ctl_usage_error(p, "%s \"%s\": address must be 1-%d bytes", flag, text,
				       CTL_ADDRESS_BYTES_MAX);
	}
	for (uint32_t i = 0; i < p->o->members_count; i++) {
		if (p->o->members[i].id == m->id) {
			return ctl_usage_error(p, "node id %llu given twice", (unsigned long long)m->id);
		}
	}
	memcpy(m->org, c1 + 1, org_len);
	m->org[org_len] = '\0';
	memcpy(m->address, c2 + 1, address_len);
	m->address[address_len] = '\0';
	m->public_key_file = c3 + 1;
	m->voter = voter;
	p->o->members_count++;
	return CTL_EXIT_OK;
}

static int ctl_need_u64(struct ctl_parser *p, const char *flag, const char *v, uint64_t min,
			uint64_t max, uint64_t *out)
{
	uint64_t x;
	if (!ctl_parse_u64(v, &x) || x < min || x > max) {
		return ctl_usage_error(p, "%s \"%s\": expected a number from %llu to %llu", flag, v,
				       (unsigned long long)min, (unsigned long long)max);
	}
	*out = x;
	return CTL_EXIT_OK;
}

static int ctl_need_u32(struct ctl_parser *p, const char *flag, const char *v, uint32_t min,
			uint32_t max, uint32_t *out)
{
	uint64_t x = 0;
	int rc = ctl_need_u64(p, flag, v, min, max, &x);
	if (rc == CTL_EXIT_OK) {
		*out = (uint32_t)x;
	}
	return rc;
}

static int ctl_need_id(struct ctl_parser *p, const char *flag, const char *v, uint8_t out[])
{
	if (strlen(v) != 2 * CTL_ID_BYTES || cl_hex_decode(out, CTL_ID_BYTES, v) != CARELOG_OK) {
		return ctl_usage_error(p, "%s \"%s\": expected an entry id of 64 hex digits", flag, v);
	}
	return CTL_EXIT_OK;
}

static int ctl_need_text(struct ctl_parser *p, const char *flag, const char *v, size_t max,
			 const char **out)
{
	if (v[0] == '\0' || strlen(v) > max) {
		return ctl_usage_error(p, "%s: expected 1-%zu bytes", flag, max);
	}
	*out = v;
	return CTL_EXIT_OK;
}

/* One of `words` (a NULL-terminated list), e.g. --level read|full. */
static int ctl_need_word(struct ctl_parser *p, const char *flag, const char *v,
			 const char *const *words, const char **out)
{
	char expected[160] = "";
	size_t n = 0;
	for (size_t i = 0; words[i] != NULL; i++) {
		if (strcmp(v, words[i]) == 0) {
			*out = words[i];
			return CTL_EXIT_OK;
		}
		int w = snprintf(expected + n, sizeof(expected) - n, "%s%s",
		                 i == 0                 ? ""
		                 : words[i + 1] == NULL ? " or "
		                                        : ", ",
		                 words[i]);
		n += w > 0 && (size_t)w < sizeof(expected) - n ? (size_t)w : 0;
	}
	return ctl_usage_error(p, "%s \"%s\": expected %s", flag, v, expected);
}

/* The shielded sensitivity categories (DOMAIN.md): what blocks and relations may name. */
static const char *const ctl_categories[] = {
    "psychiatry", "substance-use", "sexual-health", "child-welfare", "genetic", NULL,
};

static int ctl_need_time(struct ctl_parser *p, const char *flag, const char *v, uint64_t *out)
{
	if (ctl_time_parse(v, out) != CARELOG_OK || *out == 0) {
		return ctl_usage_error(p,
		                       "%s \"%s\": expected UTC like 2026-11-24T10:00:00Z or ms "
		                       "since the epoch",
		                       flag, v);
	}
	return CTL_EXIT_OK;
}

/* "YYYY-MM-DD", a real calendar date (birth dates before 1970 included). */
static int ctl_need_date(struct ctl_parser *p, const char *flag, const char *v, const char **out)
{
	static const unsigned days_in_month[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool ok = strlen(v) == 10 && v[4] == '-' && v[7] == '-' && strspn(v, "0123456789") == 4 &&
	          strspn(v + 5, "0123456789") == 2 && strspn(v + 8, "0123456789") == 2;
	if (ok) {
		unsigned y = (unsigned)((v[0] - '0') * 1000 + (v[1] - '0') * 100 +
		                        (v[2] - '0') * 10 + (v[3] - '0'));
		unsigned m = (unsigned)((v[5] - '0') * 10 + (v[6] - '0'));
		unsigned d = (unsigned)((v[8] - '0') * 10 + (v[9] - '0'));
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		ok = y >= 1800 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month[m - 1] &&
		     !(m == 2 && d == 29 && !leap);
	}
	if (!ok) {
		return ctl_usage_error(p, "%s \"%s\": expected a date like 2015-03-01", flag, v);
	}
	*out = v;
	return CTL_EXIT_OK;
}

/* c1,c2,...: shielded categories, each once. */
static int ctl_parse_categories(struct ctl_parser *p, const char *flag, const char *v)
{
	struct ctl_options *o = p->o;
	o->categories_count = 0;
	const char *c = v;
	for (;;) {
		size_t n = strcspn(c, ",");
		char one[CTL_WORD_BYTES_MAX + 1];
		if (n == 0 || n > CTL_WORD_BYTES_MAX) {
			return ctl_usage_error(
			    p, "%s \"%s\": expected categories separated by commas", flag, v);
		}
		memcpy(one, c, n);
		one[n] = '\0';
		const char *word = NULL;
		int rc = ctl_need_word(p, flag, one, ctl_categories, &word);
		if (rc != CTL_EXIT_OK) {
			return rc;
		}
		for (uint32_t i = 0; i < o->categories_count; i++) {
			if (strcmp(o->categories[i], word) == 0) {
				return ctl_usage_error(p, "%s: %s given twice", flag, word);
			}
		}
		if (o->categories_count >= CTL_CATEGORIES_MAX) {
			return ctl_usage_error(p, "%s: at most %d categories", flag,
			                       CTL_CATEGORIES_MAX);
		}
		snprintf(o->categories[o->categories_count++], CTL_WORD_BYTES_MAX + 1, "%s", word);
		if (c[n] == '\0') {
			return CTL_EXIT_OK;
		}
		c += n + 1;
	}
}

static int ctl_apply_access(struct ctl_parser *p, enum ctl_opt opt, const char *v);

static int ctl_apply(struct ctl_parser *p, enum ctl_opt opt, const char *v)
{
	struct ctl_options *o = p->o;
	const char *flag = ctl_opts[opt].name;
	switch (opt) {
	case OPT_ENDPOINT:
		return ctl_need_text(p, flag, v, 511, &o->endpoint);
	case OPT_TIMEOUT:
		p->timeout_given = true;
		if (!ctl_parse_seconds(v, &o->timeout_ms)) {
			return ctl_usage_error(p, "--timeout \"%s\": expected seconds above 0 (e.g. 5 "
						  "or 0.5), at most a day",
					       v);
		}
		return CTL_EXIT_OK;
	case OPT_ACTOR:
		p->actor_given = true;
		return ctl_parse_actor(p, v, "--actor");
	case OPT_JSON:
		o->json = true;
		return CTL_EXIT_OK;
	case OPT_HELP:
		o->help = true;
		return CTL_EXIT_OK;
	case OPT_VERSION:
		o->version = true;
		return CTL_EXIT_OK;
	case OPT_OUT:
		return ctl_need_text(p, flag, v, 4000, &o->out);
	case OPT_MEMBER:
	case OPT_LEARNER:
		return ctl_parse_member(p, flag, v, opt == OPT_MEMBER);
	case OPT_BODY_MAX_BYTES:
		return ctl_need_u64(p, flag, v, 1, 64u * 1024 * 1024, &o->body_max_bytes);
	case OPT_PATIENT:
		return ctl_need_text(p, flag, v, 64, &o->patient);
	case OPT_KIND:
		return ctl_need_text(p, flag, v, 32, &o->kind);
	case OPT_BODY:
		o->body_text = v;
		return CTL_EXIT_OK;
	case OPT_BODY_FILE:
		return ctl_need_text(p, flag, v, 4000, &o->body_file);
	case OPT_REQUEST_ID:
		return ctl_need_text(p, flag, v, 64, &o->request_id);
	case OPT_STATUS:
		return ctl_need_text(p, flag, v, 24, &o->status);
	case OPT_SENSITIVITY:
		return ctl_need_text(p, flag, v, 24, &o->sensitivity);
	case OPT_MEDIA_TYPE:
		return ctl_need_text(p, flag, v, 64, &o->media_type);
	case OPT_CLINICAL_TIME:
		if (ctl_time_parse(v, &o->clinical_time_ms) != CARELOG_OK ||
		    o->clinical_time_ms == 0) {
			return ctl_usage_error(p, "--clinical-time \"%s\": expected ms since the epoch "
						  "or UTC like 2024-05-01T12:00:00Z",
					       v);
		}
		return CTL_EXIT_OK;
	case OPT_CORRECTS:
		o->has_corrects = true;
		return ctl_need_id(p, flag, v, o->corrects);
	case OPT_CONSISTENCY:
		if (strcmp(v, "local") == 0 || strcmp(v, "linearizable") == 0) {
			o->linearizable = v[1] == 'i';
			return CTL_EXIT_OK;
		}
		return ctl_usage_error(p, "--consistency \"%s\": expected local or linearizable", v);
	case OPT_MIN_INDEX:
		return ctl_need_u64(p, flag, v, 0, UINT64_MAX, &o->min_index);
	case OPT_SINCE_INDEX:
		return ctl_need_u64(p, flag, v, 0, UINT64_MAX, &o->since_index);
	case OPT_LIMIT:
		return ctl_need_u32(p, flag, v, 1, CTL_READ_LIMIT_MAX, &o->limit);
	case OPT_ID:
		if (CMDS_MEMBER_ID & CMD(o->command)) {
			return ctl_need_u64(p, flag, v, 1, UINT64_MAX, &o->node_id);
		}
		o->has_id = true;
		return ctl_need_id(p, flag, v, o->id);
	case OPT_ORG:
		return ctl_need_text(p, flag, v, CTL_ORG_BYTES_MAX, &o->org);
	case OPT_ADDRESS:
		return ctl_need_text(p, flag, v, CTL_ADDRESS_BYTES_MAX, &o->address);
	case OPT_PUBLIC_KEY:
		return ctl_need_text(p, flag, v, CTL_PATH_ARG_BYTES_MAX, &o->public_key_file);
	case OPT_WAIT:
		o->wait = true;
		return CTL_EXIT_OK;
	case OPT_TO:
		return ctl_need_u64(p, flag, v, 1, UINT64_MAX, &o->to);
	case OPT_CLIENTS:
		return ctl_need_u32(p, flag, v, 1, CTL_BENCH_CLIENTS_MAX, &o->bench_clients);
	case OPT_COUNT:
		return ctl_need_u32(p, flag, v, 1, CTL_BENCH_COUNT_MAX, &o->bench_count);
	case OPT_BODY_BYTES:
		return ctl_need_u64(p, flag, v, 0, CTL_BENCH_BODY_BYTES_MAX, &o->bench_body_bytes);
	default:
		return ctl_apply_access(p, opt, v);
	}
}

/* The clinical access commands' options. */
static int ctl_apply_access(struct ctl_parser *p, enum ctl_opt opt, const char *v)
{
	static const char *const from_words[] = {"patient", "guardians", NULL};
	static const char *const relation_words[] = {"parent", "chosen", NULL};
	static const char *const level_words[] = {"read", "full", NULL};
	static const char *const outcome_words[] = {"justified", "unjustified", NULL};
	struct ctl_options *o = p->o;
	const char *flag = ctl_opts[opt].name;
	switch (opt) {
	case OPT_UNIT:
		p->unit_given = true;
		return ctl_need_text(p, flag, v, CTL_UNIT_BYTES_MAX, &o->unit);
	case OPT_PURPOSE:
		return ctl_need_text(p, flag, v, CTL_PURPOSE_BYTES_MAX, &o->purpose);
	case OPT_REL_UNIT:
		return ctl_need_text(p, flag, v, CTL_UNIT_BYTES_MAX, &o->rel_unit);
	case OPT_LOG_ACTOR:
		return ctl_need_text(p, flag, v, CTL_ACTOR_BYTES_MAX, &o->log_actor);
	case OPT_TO_TIME:
		o->has_to = true;
		return ctl_need_time(p, flag, v, &o->to_ms);
	case OPT_FROM:
		if (o->command == CTL_CMD_WITHHOLD) {
			return ctl_need_word(p, flag, v, from_words, &o->from_word);
		}
		o->has_from = true;
		return ctl_need_time(p, flag, v, &o->from_ms);
	case OPT_BIRTH_DATE:
		return ctl_need_date(p, flag, v, &o->birth_date);
	case OPT_CATEGORIES:
		return ctl_parse_categories(p, flag, v);
	case OPT_PERSON:
		return ctl_need_text(p, flag, v, CTL_ACTOR_BYTES_MAX, &o->person);
	case OPT_CATEGORY:
		return ctl_need_word(p, flag, v, ctl_categories, &o->category);
	case OPT_ENTRY:
		o->has_entry = true;
		return ctl_need_id(p, flag, v, o->entry);
	case OPT_REASON:
		return ctl_need_text(p, flag, v,
		                     o->command == CTL_CMD_WITHHOLD ? CTL_WITHHOLD_REASON_BYTES_MAX
		                                                    : CTL_TEXT_BYTES_MAX,
		                     &o->reason);
	case OPT_PROXY:
		return ctl_need_text(p, flag, v, CTL_ACTOR_BYTES_MAX, &o->proxy);
	case OPT_RELATION:
		return ctl_need_word(p, flag, v, relation_words, &o->relation);
	case OPT_LEVEL:
		return ctl_need_word(p, flag, v, level_words, &o->level);
	case OPT_CREW:
		return ctl_need_text(p, flag, v, CTL_ACTOR_BYTES_MAX, &o->crew);
	case OPT_HOURS:
		return ctl_need_u32(p, flag, v, 1,
		                    o->command == CTL_CMD_BTG ? CTL_BTG_HOURS_MAX
		                                              : CTL_AMBULANCE_HOURS_MAX,
		                    &o->hours);
	case OPT_REASON_CODE:
		return ctl_need_text(p, flag, v, CTL_REASON_CODE_BYTES_MAX, &o->reason_code);
	case OPT_CLOSE:
		o->has_close = true;
		return ctl_need_id(p, flag, v, o->close_id);
	case OPT_OUTCOME:
		return ctl_need_word(p, flag, v, outcome_words, &o->outcome);
	case OPT_TEXT:
		return ctl_need_text(p, flag, v, CTL_TEXT_BYTES_MAX, &o->text);
	case OPT_IMPLICIT_WINDOW_DAYS:
		return ctl_need_u32(p, flag, v, 1, CTL_IMPLICIT_WINDOW_DAYS_MAX,
		                    &o->implicit_window_days);
	case OPT_BTG_HOURS_MAX:
		return ctl_need_u32(p, flag, v, 1, CTL_BTG_HOURS_MAX, &o->btg_hours_max);
	case OPT_AMBULANCE_HOURS_MAX:
		return ctl_need_u32(p, flag, v, 1, CTL_AMBULANCE_HOURS_MAX,
		                    &o->ambulance_hours_max);
	case OPT_BASIS:
		return ctl_need_text(p, flag, v, CTL_TEXT_BYTES_MAX, &o->basis);
	case OPT_HISTORY:
		o->history = true;
		return CTL_EXIT_OK;
	case OPT_DATA_DIR:
		return ctl_need_text(p, flag, v, CTL_PATH_ARG_BYTES_MAX, &o->data_dir);
	default:
		CL_UNREACHABLE();
	}
}

/* One argument at argv[*i] that starts with '-': an option, maybe with its value. */
static int ctl_option(struct ctl_parser *p, int argc, char *const argv[], int *i)
{
	const char *arg = argv[*i];
	const char *eq = strchr(arg, '=');
	size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	if (strcmp(arg, "-h") == 0) {
		arg = "--help";
		name_len = strlen(arg);
	}
	for (int opt = 0; opt < OPT_COUNT_; opt++) {
		const struct ctl_opt_def *d = &ctl_opts[opt];
		if (strlen(d->name) != name_len || strncmp(d->name, arg, name_len) != 0) {
			continue;
		}
		if (!(d->commands & CMD(p->o->command))) {
			continue; /* known elsewhere (maybe under this name with another meaning) */
		}
		if (!d->repeatable && (p->seen & ((uint64_t)1 << opt))) {
			return ctl_usage_error(p, "%s given twice", d->name);
		}
		p->seen |= (uint64_t)1 << opt;
		const char *value = NULL;
		if (d->takes_value) {
			if (eq != NULL) {
				value = eq + 1;
			} else if (*i + 1 < argc) {
				value = argv[++*i];
			} else {
				return ctl_usage_error(p, "%s needs a value", d->name);
			}
		} else if (eq != NULL) {
			return ctl_usage_error(p, "%s takes no value", d->name);
		}
		return ctl_apply(p, (enum ctl_opt)opt, value);
	}
	const char *cmd = ctl_command_name(p->o->command);
	return ctl_usage_error(p, "unknown option %.*s (see carelogctl %s%s--help)", (int)name_len,
			       arg, cmd, cmd[0] != '\0' ? " " : "");
}

/* "add-learner|promote|remove": the second words of the commands starting with `w1`. */
static void ctl_second_words(const char *w1, char *out, size_t out_len)
{
	size_t n = 0;
	out[0] = '\0';
	for (int c = 1; c < CTL_CMD_COUNT_; c++) {
		const struct ctl_command_def *d = &ctl_commands[c];
		if (d->word2 != NULL && strcmp(d->word1, w1) == 0 && n < out_len) {
			int w = snprintf(out + n, out_len - n, "%s%s", n > 0 ? "|" : "", d->word2);
			n += w > 0 ? (size_t)w : 0;
		}
	}
}

static int ctl_command_word(struct ctl_parser *p, int argc, char *const argv[], int *i)
{
	const char *w1 = argv[*i];
	const char *w2 = *i + 1 < argc ? argv[*i + 1] : NULL;
	int group = 0; /* a command with this first word: its group's help, or the only one */
	for (int c = 1; c < CTL_CMD_COUNT_; c++) {
		const struct ctl_command_def *d = &ctl_commands[c];
		if (strcmp(d->word1, w1) != 0) {
			continue;
		}
		if (d->help_only) {
			group = c; /* listed before its subcommands */
			continue;
		}
		if (group == 0) {
			group = c;
		}
		if (d->word2 == NULL) {
			p->o->command = (enum ctl_command)c;
			return CTL_EXIT_OK;
		}
		if (w2 != NULL && strcmp(w2, d->word2) == 0) {
			++*i;
			p->o->command = (enum ctl_command)c;
			return CTL_EXIT_OK;
		}
	}
	if (group == 0) {
		return ctl_usage_error(p, "unknown command \"%s\" (see carelogctl --help)", w1);
	}
	if (w2 != NULL && (strcmp(w2, "--help") == 0 || strcmp(w2, "-h") == 0)) {
		p->o->command = (enum ctl_command)group;
		return CTL_EXIT_OK;
	}
	if (w2 == NULL || w2[0] == '-') {
		char words[128];
		ctl_second_words(w1, words, sizeof(words));
		return ctl_usage_error(p, "%s: expected \"%s %s\"", w1, w1, words);
	}
	return ctl_usage_error(p, "unknown command \"%s %s\" (see carelogctl --help)", w1, w2);
}

/* What the clinical access commands require, and the combinations they refuse. */
static int ctl_check_access(struct ctl_parser *p)
{
	struct ctl_options *o = p->o;
	switch (o->command) {
	case CTL_CMD_PATIENT_SET:
		if (o->patient == NULL || o->birth_date == NULL) {
			return ctl_usage_error(
			    p, "--patient P and --birth-date YYYY-MM-DD are required");
		}
		break;
	case CTL_CMD_RELATION_ADD:
	case CTL_CMD_PROXY_GRANT:
		if (o->patient == NULL) {
			return ctl_usage_error(p, "--patient P is required");
		}
		if (o->command == CTL_CMD_PROXY_GRANT &&
		    (o->proxy == NULL || o->relation == NULL || o->level == NULL)) {
			return ctl_usage_error(
			    p, "--proxy PERSON, --relation parent|chosen and --level "
			       "read|full are required");
		}
		if (o->has_to && o->has_from && o->to_ms <= o->from_ms) {
			return ctl_usage_error(p, "--to must be later than --from");
		}
		break;
	case CTL_CMD_RELATION_END:
	case CTL_CMD_BLOCK_LIFT:
	case CTL_CMD_WITHHOLD_LIFT:
	case CTL_CMD_PROXY_REVOKE:
		if (!o->has_id) {
			return ctl_usage_error(p, "--id ID is required (the entry to end, lift or "
			                          "revoke, 64 hex digits)");
		}
		break;
	case CTL_CMD_BLOCK_ADD:
		if (o->patient == NULL) {
			return ctl_usage_error(p, "--patient P is required");
		}
		if ((o->org == NULL) == (o->person == NULL)) {
			return ctl_usage_error(
			    p, "give exactly one of --org O and --person ID (who is "
			       "blocked)");
		}
		if (o->category != NULL && o->has_entry) {
			return ctl_usage_error(p, "give at most one of --category C and --entry ID "
			                          "(default: the whole record)");
		}
		break;
	case CTL_CMD_WITHHOLD:
		if (!o->has_entry || o->reason == NULL) {
			return ctl_usage_error(p, "--entry ID and --reason TEXT are required");
		}
		break;
	case CTL_CMD_AMBULANCE_ASSIGN:
		if (o->patient == NULL || o->crew == NULL || o->hours == 0) {
			return ctl_usage_error(
			    p, "--patient P, --crew ACTOR and --hours H are required");
		}
		break;
	case CTL_CMD_BTG:
		if (o->patient == NULL || o->reason_code == NULL || o->reason == NULL) {
			return ctl_usage_error(
			    p, "--patient P, --reason-code CODE and --reason TEXT are "
			       "required");
		}
		break;
	case CTL_CMD_BTG_REVIEW:
		if (o->has_close && (o->patient != NULL || o->limit != 0)) {
			return ctl_usage_error(p,
			                       "--close reviews one grant: --patient and --limit "
			                       "only list");
		}
		if (o->has_close && o->outcome == NULL) {
			return ctl_usage_error(p,
			                       "--close ID needs --outcome justified|unjustified");
		}
		if (!o->has_close && (o->outcome != NULL || o->text != NULL)) {
			return ctl_usage_error(p, "--outcome and --text go with --close ID");
		}
		break;
	case CTL_CMD_PARAMS_SET:
		if (o->implicit_window_days == 0 || o->btg_hours_max == 0 ||
		    o->ambulance_hours_max == 0) {
			return ctl_usage_error(p, "--implicit-window-days N, --btg-hours-max N and "
			                          "--ambulance-hours-max N are required");
		}
		break;
	case CTL_CMD_AMEND:
		if (!o->has_id) {
			return ctl_usage_error(p, "--id ID (the entry to amend) is required");
		}
		if ((o->body_text == NULL) == (o->body_file == NULL)) {
			return ctl_usage_error(p,
			                       "give exactly one of --body TEXT and --body-file F");
		}
		break;
	case CTL_CMD_ENTERED_IN_ERROR:
		if (!o->has_id || o->reason == NULL) {
			return ctl_usage_error(p, "--id ID and --reason TEXT are required");
		}
		break;
	case CTL_CMD_ERASE:
		if (!o->has_id || o->basis == NULL) {
			return ctl_usage_error(p, "--id ID and --basis TEXT (the legal basis and "
			                          "decision) are required");
		}
		break;
	case CTL_CMD_ACCESS_LOG:
		if ((o->patient == NULL) == (o->log_actor == NULL)) {
			return ctl_usage_error(p, "give exactly one of --patient P and --actor ID");
		}
		if (o->org != NULL && o->log_actor == NULL) {
			return ctl_usage_error(p, "--org O goes with --actor ID");
		}
		break;
	case CTL_CMD_COMPACT:
		if (o->data_dir == NULL) {
			return ctl_usage_error(p, "--data-dir DIR is required");
		}
		break;
	default:
		break;
	}
	return CTL_EXIT_OK;
}

static int ctl_check_required(struct ctl_parser *p)
{
	struct ctl_options *o = p->o;
	switch (o->command) {
	case CTL_CMD_NONE:
		if (!o->version) {
			return ctl_usage_error(p, "no command given (see carelogctl --help)");
		}
		break;
	case CTL_CMD_KEYGEN:
		if (o->out == NULL) {
			return ctl_usage_error(p, "--out DIR is required");
		}
		break;
	case CTL_CMD_CLUSTER_INIT:
		if (o->out == NULL) {
			return ctl_usage_error(p, "--out FILE is required");
		}
		if (o->members_count == 0) {
			return ctl_usage_error(p, "at least one --member ID,ORG,ADDRESS,PUBKEY_FILE is "
						  "required");
		}
		break;
	case CTL_CMD_APPEND:
		if (o->patient == NULL || o->kind == NULL) {
			return ctl_usage_error(p, "--patient and --kind are required");
		}
		if ((o->body_text == NULL) == (o->body_file == NULL)) {
			return ctl_usage_error(p, "give exactly one of --body TEXT and --body-file F");
		}
		break;
	case CTL_CMD_READ:
		if (o->patient == NULL) {
			return ctl_usage_error(p, "--patient is required");
		}
		break;
	case CTL_CMD_GET:
		if (!(p->seen & ((uint64_t)1 << OPT_ID))) {
			return ctl_usage_error(p, "--id ID is required");
		}
		break;
	case CTL_CMD_MEMBER_ADD_LEARNER:
		if (o->node_id == 0 || o->org == NULL || o->address == NULL ||
		    o->public_key_file == NULL) {
			return ctl_usage_error(p, "--id N, --org ORG, --address URL and --public-key "
						  "FILE are required");
		}
		break;
	case CTL_CMD_MEMBER_PROMOTE:
	case CTL_CMD_MEMBER_REMOVE:
		if (o->node_id == 0) {
			return ctl_usage_error(p, "--id N is required");
		}
		break;
	case CTL_CMD_TRANSFER_LEADER:
		if (o->to == 0) {
			return ctl_usage_error(p, "--to N is required");
		}
		break;
	default: {
		int rc = ctl_check_access(p);
		if (rc != CTL_EXIT_OK) {
			return rc;
		}
		break;
	}
	}
	if (ctl_commands[o->command].network && (o->endpoint == NULL || o->endpoint[0] == '\0')) {
		return ctl_usage_error(p, "no endpoint: give --endpoint URL or set CARELOG_ENDPOINT");
	}
	return CTL_EXIT_OK;
}

int ctl_parse(int argc, char *const argv[], const struct ctl_env *env, struct ctl_options *out,
	      char *err, size_t err_len)
{
	static const struct ctl_env no_env = {NULL, NULL, NULL};
	if (env == NULL) {
		env = &no_env;
	}
	CL_ASSERT(out != NULL && argv != NULL);
	memset(out, 0, sizeof(*out));
	if (err_len > 0) {
		err[0] = '\0';
	}
	out->timeout_ms = CTL_TIMEOUT_MS_DEFAULT;
	out->bench_clients = CTL_BENCH_CLIENTS_DEFAULT;
	out->bench_count = CTL_BENCH_COUNT_DEFAULT;
	out->bench_body_bytes = CTL_BENCH_BODY_BYTES_DEFAULT;
	struct ctl_parser p = {.o = out, .err = err, .err_len = err_len};
	int i = 1;
	int rc = CTL_EXIT_OK;
	/* options before the command */
	for (; i < argc && argv[i][0] == '-' && rc == CTL_EXIT_OK; i++) {
		rc = ctl_option(&p, argc, argv, &i);
	}
	if (rc != CTL_EXIT_OK) {
		return rc;
	}
	if (i < argc && strcmp(argv[i], "help") == 0) {
		/* "carelogctl help [COMMAND]" is "carelogctl [COMMAND] --help" */
		out->help = true;
		i++;
	}
	if (i < argc) {
		rc = ctl_command_word(&p, argc, argv, &i);
		for (i++; i < argc && rc == CTL_EXIT_OK; i++) {
			if (argv[i][0] != '-' || argv[i][1] == '\0') {
				rc = ctl_usage_error(&p, "unexpected argument \"%s\"", argv[i]);
			} else {
				rc = ctl_option(&p, argc, argv, &i);
			}
		}
	}
	if (rc != CTL_EXIT_OK || out->help) {
		return rc;
	}
	if (out->endpoint == NULL && env->endpoint != NULL && env->endpoint[0] != '\0') {
		out->endpoint = env->endpoint;
	}
	if (!p.actor_given && env->actor != NULL && env->actor[0] != '\0') {
		rc = ctl_parse_actor(&p, env->actor, "CARELOG_ACTOR");
		if (rc != CTL_EXIT_OK) {
			return rc;
		}
	}
	if (!p.unit_given && env->unit != NULL && env->unit[0] != '\0') {
		if (strlen(env->unit) > CTL_UNIT_BYTES_MAX) {
			return ctl_usage_error(&p, "CARELOG_UNIT: at most %d bytes",
			                       CTL_UNIT_BYTES_MAX);
		}
		out->unit = env->unit;
	}
	return ctl_check_required(&p);
}

/* ------------------------------------------------------------------ usage */

static const char ctl_usage_tool[] =
    "usage: carelogctl [--endpoint URL] [--timeout S] [--actor ID[:ROLE]] [--unit U]\n"
    "                  [--purpose TEXT] COMMAND [OPTIONS] [--json]\n"
	"\n"
	"Operator and client tool for carelog, the replicated patient journal.\n"
	"\n"
	"commands:\n"
	"  keygen --out DIR            create a node identity key pair (DIR/node.key, DIR/node.pub)\n"
	"  cluster init --out FILE ... write the genesis configuration of a new cluster\n"
	"  status                      the node's role, term, indexes, chain head and members\n"
	"  append --patient P --kind K (--body TEXT | --body-file F)\n"
	"                              append one journal entry and wait until it is committed\n"
	"  read --patient P            a patient's entries, oldest first\n"
	"  get --id ID                 one entry by its 64-hex id\n"
	"  verify                      check signatures, chain and indexes on the node\n"
	"  bench append                load generator through libcarelog\n"
	"  member add-learner --id N --org ORG --address URL --public-key FILE [--wait]\n"
	"                              add a node as a learner (it copies the log, no vote)\n"
	"  member promote --id N       make a caught-up learner a voter\n"
	"  member remove --id N        take a member out of the cluster\n"
    "  transfer-leader --to N      hand leadership to voter N\n";

/* (split: ISO C bounds one string literal's length) */
static const char ctl_usage_tool_access[] =
    "\n"
    "clinical access (who may do what: docs/access.md):\n"
    "  patient set --patient P --birth-date YYYY-MM-DD   record a patient's birth date\n"
    "  relation add --patient P [--unit U] [--from T] [--to T] [--categories C,...]\n"
    "                              a care relation between the patient and this organisation\n"
    "  relation end --id ID        end a care relation\n"
    "  block add --patient P (--org O | --person ID) [--category C | --entry ID]\n"
    "                              the patient blocks (part of) the record from someone\n"
    "  block lift --id ID          lift a block\n"
    "  withhold --entry ID --reason TEXT [--from patient|guardians]\n"
    "                              withhold an entry from the patient's (or parents') view\n"
    "  withhold lift --id ID       lift a withholding\n"
    "  proxy grant --patient P --proxy PERSON --relation parent|chosen --level read|full\n"
    "                              let a parent or a chosen adult act for the patient\n"
    "  proxy revoke --id ID        end a proxy grant\n"
    "  ambulance assign --patient P --crew ACTOR --hours H\n"
    "                              time-limited read access for an ambulance crew member\n"
    "  btg --patient P --reason-code CODE --reason TEXT [--hours H]\n"
    "                              break the glass: read without a care relation, reviewed later\n"
    "  btg-review [--patient P]    list break-the-glass grants waiting for review\n"
    "  btg-review --close ID --outcome justified|unjustified [--text TEXT]\n"
    "                              review (close) one grant\n"
    "  params set --implicit-window-days N --btg-hours-max N --ambulance-hours-max N\n"
    "                              the region's access parameters\n"
    "  amend --id OLD (--body TEXT | --body-file F)   a new version of an entry\n"
    "  entered-in-error --id OLD --reason TEXT         mark an entry as entered in error\n"
    "  erase --id ID --basis TEXT  lawful erasure of an entry's content\n"
    "  access-log (--patient P | --actor ID [--org O]) who accessed a record / what an actor\n"
    "                              accessed, across the region\n"
    "  compact --data-dir DIR      (node stopped) remove erased bytes from the data file\n";

static const char ctl_usage_tool_options[] =
    "\n"
	"  help [COMMAND]              this text, or a command's (also: COMMAND --help)\n"
	"\n"
	"options for every command:\n"
	"  --endpoint URL    the node's client endpoint (ipc:///path: the node's socket file);\n"
	"                    default $CARELOG_ENDPOINT, required for commands that talk to a node\n"
	"  --timeout S       seconds to wait for the node, above 0, at most 86400, up to three\n"
	"                    decimals (default 10)\n"
	"  --actor ID[:ROLE] who acts: author of an append, reader of a read; default\n"
    "                    $CARELOG_ACTOR, else the node's configured default. Roles:\n"
    "                    physician, nurse, psychologist, midwife, physiotherapist,\n"
    "                    pharmacist, ambulance, patient, proxy, admin, auditor, operator\n"
    "  --unit U          the actor's unit; default $CARELOG_UNIT, else the node's unit\n"
    "  --purpose TEXT    why (up to 128 bytes), recorded in the access log\n"
	"  --json            one JSON object on standard output instead of text\n"
	"  --help, -h        usage; --version (before any command): the version\n"
	"\n"
	"exit status: 0 success, 1 the operation failed (message on stderr), 2 bad usage,\n"
	"3 outcome pending (an append not yet known to be committed: retry with the same\n"
    "--request-id; a membership change not yet known to be committed: check status).\n"
    "Times (T): UTC like 2026-11-24T10:00:00Z, or milliseconds since the epoch.\n";

/* Printed after every command's own text: the options it shares with all the others. */
static const char ctl_usage_network_options[] =
	"\n"
	"connection options (also before the command):\n"
	"  --endpoint URL     the node's client endpoint; default $CARELOG_ENDPOINT (required)\n"
	"  --timeout S        seconds to wait for the node (default 10, decimals allowed)\n"
	"  --actor ID[:ROLE]  who acts; default $CARELOG_ACTOR, else the node's default\n"
    "  --unit U           the actor's unit; default $CARELOG_UNIT, else the node's unit\n"
    "  --purpose TEXT     why, recorded in the access log\n"
	"  --json             one JSON object on standard output instead of text\n";

/* The tail of every command that appends a policy entry or a correction. */
#define CTL_USAGE_WRITE                                                                            \
	"  --request-id R   makes retries safe (generated when absent, always printed)\n"          \
	"Output: committed, the index, the id and the request id; or pending and the\n"            \
	"request id to retry with.\n"                                                              \
	"JSON: {state: \"committed\"|\"pending\", index, id, request_id, duplicate}\n"             \
	"Exit 0 committed, 1 refused (the actor may not: the reason is printed) or failed,\n"      \
	"2 bad usage, 3 pending: run the same command again with --request-id R.\n"

static const char *const ctl_usage_commands[CTL_CMD_COUNT_] = {
	[CTL_CMD_KEYGEN] =
		"usage: carelogctl keygen --out DIR [--json]\n"
		"\n"
		"Creates DIR (mode 0700) if needed and writes a fresh Ed25519 identity key pair:\n"
		"DIR/node.key (secret, mode 0600) and DIR/node.pub. Never overwrites an existing\n"
		"key. Needs no node.\n"
		"  --out DIR   where the key pair goes (required)\n"
		"  --json      one JSON object instead of text\n"
		"Output: the public key (64 hex digits) and both paths.\n"
		"JSON: {public_key, key_file, public_key_file}\n"
		"Exit 0 written, 1 failed (a key already there, DIR not writable), 2 bad usage.\n",
	[CTL_CMD_CLUSTER_INIT] =
		"usage: carelogctl cluster init --out FILE --member ID,ORG,ADDRESS,PUBKEY_FILE\n"
		"                               [--member ...] [--learner ID,ORG,ADDRESS,PUBKEY_FILE]\n"
		"                               [--body-max-bytes N] [--json]\n"
		"\n"
		"Writes the genesis configuration of a new cluster to FILE with a fresh random\n"
		"16-byte cluster id. Needs no node. Copy FILE to every node; each turns it into the\n"
		"same first log entry. A genesis holds 1-8 members, at least one a voter; give\n"
		"each with its own flag, e.g. three voters and a learner:\n"
		"  carelogctl cluster init --out genesis.mpk \\\n"
		"    --member 1,helse-vest,tcp://10.0.0.1:7401,n1/node.pub \\\n"
		"    --member 2,helse-midt,tcp://10.0.0.2:7401,n2/node.pub \\\n"
		"    --member 3,helse-nord,tcp://10.0.0.3:7401,n3/node.pub \\\n"
		"    --learner 4,helse-sor-ost,tcp://10.0.0.4:7401,n4/node.pub\n"
		"Later nodes join with member add-learner (on a running cluster), using the same\n"
		"genesis file.\n"
		"  --out FILE           where the genesis goes (required; never overwritten)\n"
		"  --member M           a first voter (at least one; repeatable)\n"
		"  --learner M          a first learner (optional; repeatable)\n"
		"                       M = ID,ORG,ADDRESS,PUBKEY_FILE: node id (a number above 0,\n"
		"                       never reused), organisation, peer address (tcp://host:port)\n"
		"                       and the node.pub made by keygen\n"
		"  --body-max-bytes N   the replicated maximum entry body, 1 to 67108864 bytes\n"
		"                       (default 1 MiB)\n"
		"  --json               one JSON object instead of text\n"
		"Output: the cluster id, FILE and one line per member.\n"
		"JSON: {cluster_id, file, body_max_bytes, members:[{id, org, address, voter,\n"
		"       public_key}]}\n"
		"Exit 0 written, 1 failed (FILE exists, unreadable key), 2 bad usage.\n",
	[CTL_CMD_STATUS] =
		"usage: carelogctl [--endpoint URL] [--timeout S] status [--json]\n"
		"\n"
		"The node's view of the cluster: its id and role (leader, follower, candidate,\n"
		"learner), term, the leader it knows (none known = 0 in JSON), commit, applied and\n"
		"last log index, the hash-chain head at the applied index, every member (id, role,\n"
		"organisation, address, match index, lag behind the leader's last index) and the\n"
		"node's counters since it started: entry signatures verified at apply, synced\n"
		"write transactions, and the peer transport (messages sent and received, sessions\n"
		"established, frames dropped for failed authentication, replay or unknown sender).\n"
		"Member progress comes from the leader: a non-leader shows how old its copy is\n"
		"(progress_age_ms). A match of \"-\" (null in JSON): no progress known yet.\n"
		"The audit line shows the node's audit queue: rows durable but not yet shipped\n"
		"through the log, the last shipped and the next sequence, synced appends, failed\n"
		"appends and failed shipments. A growing queue: no leader reachable or shipping\n"
		"fails (docs/operations.md). null in JSON from a node without an audit queue.\n"
		"JSON: {node_id, role, term, leader_id, commit_index, applied_index, last_index,\n"
		"       chain_head, members:[{id, role, org, address, match_index, lag}],\n"
		"       progress_age_ms, verified_signatures, syncs, transport:{sent, received,\n"
		"       dropped_auth, dropped_replay, dropped_unknown, handshakes},\n"
		"       audit:{queued_rows, next_seq, shipped_seq, syncs, write_failures,\n"
		"       ship_failures}}\n"
		"Exit 0 answered, 1 failed (no connection within --timeout, ...), 2 bad usage.\n",
	[CTL_CMD_APPEND] =
		"usage: carelogctl [--endpoint URL] [--timeout S] [--actor ID[:ROLE]] append\n"
		"           --patient P --kind K (--body TEXT | --body-file F) [--request-id R]\n"
		"           [--status S] [--sensitivity S] [--clinical-time T] [--corrects ID]\n"
		"           [--media-type M] [--json]\n"
		"\n"
		"Appends one entry and waits (up to --timeout) until it is committed. The author\n"
		"is --actor; organisation and unit come from the node.\n"
		"  --patient P        the patient id, 1-64 bytes (required)\n"
		"  --kind K           note | observation | vital-signs | lab-result | diagnosis |\n"
		"                     allergy | medication | procedure | vaccination | referral |\n"
		"                     document | care-plan (required)\n"
		"  --body TEXT        the body as given\n"
		"  --body-file F      the body from file F; - reads standard input. One of --body\n"
		"                     and --body-file is required. The node's body_max_bytes\n"
		"                     (default 1 MiB) applies: a longer body is refused (exit 1)\n"
		"  --request-id R     makes retries safe: the node appends at most one entry per\n"
		"                     request id (1-64 bytes). Generated when absent, always printed\n"
		"  --status S         preliminary | final (default) | amended | entered-in-error\n"
		"  --sensitivity S    normal (default) | psychiatry | substance-use | sexual-health |\n"
		"                     child-welfare | genetic\n"
		"  --clinical-time T  when it happened clinically: ms since the epoch or UTC like\n"
		"                     2024-05-01T12:00:00Z (default: the author time)\n"
		"  --corrects ID      the entry (64 hex) this one corrects (default: none)\n"
		"  --media-type M     the body's media type (default text/plain)\n"
		"Output: committed, the index, the id and the request id; or pending and the\n"
		"request id to retry with.\n"
		"JSON: {state: \"committed\"|\"pending\", index, id, request_id, duplicate}\n"
		"  (index and id are null when pending; duplicate: an earlier try with this\n"
		"  request id had committed, and index/id are that entry's)\n"
		"Exit 0 committed, 1 refused or failed (message on stderr; nothing was appended),\n"
		"2 bad usage, 3 pending: run the same command again with --request-id R (printed)\n"
		"and the entry is appended at most once.\n",
	[CTL_CMD_READ] =
		"usage: carelogctl [--endpoint URL] [--timeout S] [--actor ID[:ROLE]] read\n"
		"           --patient P [--consistency local|linearizable] [--min-index N]\n"
		"           [--kind K] [--since-index N] [--limit N] [--history] [--json]\n"
		"\n"
		"A patient's entries in log order, as far as --actor may see them (the current\n"
		"version of each: amended and entered-in-error entries replace the ones they\n"
		"correct).\n"
		"  --patient P        the patient id (required)\n"
		"  --consistency C    local (default): this node's replica, with its lag reported;\n"
		"                     linearizable: confirmed with the leader (ReadIndex)\n"
		"  --min-index N      wait (up to --timeout) until the node has applied index N\n"
		"                     (default 0: no wait); exit 1 if it does not in time\n"
		"  --kind K           only entries of this kind (default: all kinds)\n"
		"  --since-index N    only entries after index N (default 0; paging: the last\n"
		"                     index shown)\n"
		"  --limit N          at most N entries, 1-1000 (default 100)\n"
		"  --history          also the versions that were amended or entered in error\n"
		"Output: a summary line (entries, applied index, lag, STALE), why this actor may\n"
		"read (basis: relation, implicit, proxy, btg, self, assignment), the number withheld\n"
		"from this actor and why, then each entry. A stale replica (lag beyond the node's\n"
		"threshold: entries may be missing) is also warned about on stderr. Bodies print\n"
		"as text when they are printable UTF-8, otherwise as base64.\n"
		"JSON: {applied_index, lag, stale, basis, withheld, withheld_reasons:[{reason,\n"
		"       count}], more, entries:[{index, id, kind, patient, author, role, org, unit,\n"
		"       node_id, time, time_ms, author_time, author_time_ms, clinical_time,\n"
		"       clinical_time_ms, status, sensitivity, media_type, request_id, corrects,\n"
		"       superseded_by, erased, erasure, body, body_encoding}]}\n"
		"  (superseded_by: the newer version's id or null; erasure: null, or {index,\n"
		"  time, time_ms, author, org, basis} of a lawful erasure)\n"
		"  (more: further entries follow, read again with --since-index the last index;\n"
		"  body_encoding: utf-8 or base64; times are UTC text and ms since the epoch)\n"
		"Exit 0 read (also when stale: check stale/lag), 1 refused or failed, 2 bad usage.\n",
	[CTL_CMD_GET] =
		"usage: carelogctl [--endpoint URL] [--timeout S] [--actor ID[:ROLE]] get --id ID\n"
		"           [--json]\n"
		"\n"
		"One entry by its id, as far as --actor may see it.\n"
		"  --id ID   the entry id, 64 hex digits (required)\n"
		"Output: the entry as in read. JSON: the entry object as in read's entries.\n"
		"Exit 0 found, 1 not found, refused or failed, 2 bad usage.\n",
	[CTL_CMD_VERIFY] =
		"usage: carelogctl [--endpoint URL] [--timeout S] verify [--json]\n"
		"\n"
		"Asks the node to check every stored value's checksum, every entry's signature, the\n"
		"hash chain and the indexes of its replica. Large journals take a while: raise\n"
		"--timeout.\n"
		"Output: ok or FAILED, entries and values checked, the chain head and applied\n"
		"index, and up to 100 problems.\n"
		"JSON: {ok, entries_checked, values_checked, problems_count, problems:[...],\n"
		"       chain_head, applied_index}\n"
		"Exit 0 all hold, 1 problems found (listed) or the check could not run,\n"
		"2 bad usage.\n",
	[CTL_CMD_BENCH_APPEND] =
		"usage: carelogctl [--endpoint URL] [--timeout S] bench append [--clients N]\n"
		"           [--count M] [--body-bytes B] [--patient P] [--kind K] [--json]\n"
		"\n"
		"Appends M entries in total from N threads sharing one libcarelog client and\n"
		"reports throughput and latency. --timeout applies to each append.\n"
		"  --clients N      threads, 1-256 (default 4)\n"
		"  --count M        appends in total, 1-10000000 (default 1000)\n"
		"  --body-bytes B   each body, 0-67108864 bytes of text (default 512)\n"
		"  --patient P      the patient (default bench-patient)\n"
		"  --kind K         the kind (default note)\n"
		"Output: appends per second, p50 and p99 latency, errors.\n"
		"JSON: {ops_per_s, p50_ms, p99_ms, errors, ops, clients, body_bytes, seconds}\n"
		"Exit 0 all committed, 1 an append failed (3 when the first failure was a pending\n"
		"outcome), 2 bad usage. The first failure's message goes to stderr.\n",
	[CTL_CMD_MEMBER] =
		"usage: carelogctl [--endpoint URL] [--timeout S] member add-learner|promote|remove\n"
		"           ... [--json]\n"
		"\n"
		"Membership changes, one at a time, through the leader (a follower answers with\n"
		"the leader's id: exit 1, use that node's endpoint). Adding a node takes two\n"
		"steps: add it as a learner, which copies the log without voting, then promote it\n"
		"once it has caught up:\n"
		"  member add-learner --id N --org ORG --address URL --public-key FILE [--wait]\n"
		"  member promote --id N\n"
		"  member remove --id N\n"
		"See carelogctl member add-learner --help (and promote, remove) for each.\n"
		"JSON: {action, id, index} (add-learner --wait adds caught_up, match_index, lag,\n"
		"      wait_ms)\n"
		"Exit 0 done, 1 refused or failed, 2 bad usage, 3 pending: not known to be\n"
		"committed in time, check status before trying again.\n",
	[CTL_CMD_MEMBER_ADD_LEARNER] =
		"usage: carelogctl [--endpoint URL] [--timeout S] member add-learner --id N\n"
		"           --org ORG --address URL --public-key FILE [--wait] [--json]\n"
		"\n"
		"Adds node N as a learner: it receives the log but does not vote. Start the new\n"
		"node (empty data directory, the cluster's genesis file, its own key) before or\n"
		"after; it catches up once both are done. Ask the leader.\n"
		"  --id N             the new node's id, a number above 0 never used before\n"
		"  --org ORG          its organisation, 1-64 bytes\n"
		"  --address URL      its peer address, e.g. tcp://10.0.0.4:7401, 1-128 bytes\n"
		"  --public-key FILE  its node.pub, as written by carelogctl keygen\n"
		"  --wait             then poll status on the same endpoint until the learner's lag\n"
		"                     is 0, printing progress to stderr at most once a second:\n"
		"                     \"learner 4: match 120000/250000 (48%), 31000 entries/s\"\n"
		"--timeout bounds the whole command, the wait included (default 10 s; a large log\n"
		"needs more, e.g. --timeout 3600).\n"
		"Output: the configuration entry's index; with --wait, the learner's final match.\n"
		"JSON: {action: \"add-learner\", id, index}; with --wait also caught_up,\n"
		"      match_index (null if unknown), lag, wait_ms\n"
		"Exit 0 added (and with --wait caught up), 1 refused or failed (id in use, not the\n"
		"leader, bad key file; with --wait: not caught up within --timeout, the learner\n"
		"stays), 2 bad usage, 3 pending: not known to be committed in time, check status\n"
		"before trying again.\n",
	[CTL_CMD_MEMBER_PROMOTE] =
		"usage: carelogctl [--endpoint URL] [--timeout S] member promote --id N [--json]\n"
		"\n"
		"Makes learner N a voter. Promote only a learner whose lag is 0 (see status or\n"
		"member add-learner --wait): a voter far behind weakens the majority. Ask the\n"
		"leader.\n"
		"  --id N   the learner's node id\n"
		"Output: the configuration entry's index.\n"
		"JSON: {action: \"promote\", id, index}\n"
		"Exit 0 promoted, 1 refused or failed (not a learner, not the leader, another\n"
		"change in progress), 2 bad usage, 3 pending: check status before trying again.\n",
	[CTL_CMD_MEMBER_REMOVE] =
		"usage: carelogctl [--endpoint URL] [--timeout S] member remove --id N [--json]\n"
		"\n"
		"Removes member N (voter or learner) from the cluster; once the change is\n"
		"committed its key is no longer trusted. Ask the leader.\n"
		"  --id N   the member's node id\n"
		"Output: the configuration entry's index.\n"
		"JSON: {action: \"remove\", id, index}\n"
		"Exit 0 removed, 1 refused or failed (not a member, not the leader, another change\n"
		"in progress), 2 bad usage, 3 pending: check status before trying again.\n",
	[CTL_CMD_TRANSFER_LEADER] =
		"usage: carelogctl [--endpoint URL] [--timeout S] transfer-leader --to N [--json]\n"
		"\n"
		"Asks the leader to hand leadership to voter N (e.g. before maintenance on the\n"
		"leader's host) and waits until N leads or --timeout passes.\n"
		"  --to N   the voter to lead next\n"
		"Output: the new leader.\n"
		"JSON: {leader_id}\n"
		"Exit 0 N leads, 1 refused or failed (N not a voter, not the leader, not done in\n"
		"time: check status), 2 bad usage.\n",
	[CTL_CMD_PATIENT_SET] =
		"usage: carelogctl [GLOBAL OPTIONS] patient set --patient P --birth-date YYYY-MM-DD\n"
		"           [--request-id R] [--json]\n"
		"\n"
		"Records the patient's birth date (age rules use it: parents' access ends at 16, a\n"
		"patient of 16 or more may choose a proxy). Role admin.\n"
		"  --patient P           the patient id (required)\n"
		"  --birth-date D        YYYY-MM-DD (required)\n" CTL_USAGE_WRITE,
	[CTL_CMD_RELATION] =
		"usage: carelogctl [GLOBAL OPTIONS] relation add|end ... [--json]\n"
		"\n"
		"Care relations between a patient and this node's organisation (optionally one\n"
		"unit): clinicians of that organisation/unit may read and write the record while\n"
		"the relation is active. Role admin.\n"
		"  relation add --patient P [--unit U] [--from T] [--to T] [--categories C,...]\n"
		"  relation end --id ID\n"
		"See carelogctl relation add --help (and end) for each.\n"
		"JSON: {state: \"committed\"|\"pending\", index, id, request_id, duplicate}\n"
		"Exit 0 committed, 1 refused or failed, 2 bad usage, 3 pending: run the same\n"
		"command again with --request-id R (printed).\n",
	[CTL_CMD_RELATION_ADD] =
		"usage: carelogctl [GLOBAL OPTIONS] relation add --patient P [--unit U] [--from T]\n"
		"           [--to T] [--categories C,...] [--request-id R] [--json]\n"
		"\n"
		"A care relation between patient P and this node's organisation. Role admin.\n"
		"  --patient P         the patient id (required)\n"
		"  --unit U            only this unit (default: the whole organisation). The\n"
		"                      acting admin's own --unit goes before the command word\n"
		"  --from T            from when (default now)\n"
		"  --to T              until when (default open-ended)\n"
		"  --categories C,...  shielded categories the relation covers: psychiatry,\n"
		"                      substance-use, sexual-health, child-welfare, genetic\n"
		"                      (default none: other units' shielded entries stay "
		"withheld)\n" CTL_USAGE_WRITE,
	[CTL_CMD_RELATION_END] =
		"usage: carelogctl [GLOBAL OPTIONS] relation end --id ID [--request-id R] [--json]\n"
		"\n"
		"Ends a care relation now. Role admin.\n"
		"  --id ID   the relation's entry id (as printed by relation add), 64 hex "
		"digits\n" CTL_USAGE_WRITE,
	[CTL_CMD_BLOCK] =
		"usage: carelogctl [GLOBAL OPTIONS] block add|lift ... [--json]\n"
		"\n"
		"A patient's block (\"sperre\"): entries hidden from an organisation or a person until\n"
		"lifted, future entries included. Break-the-glass does not override a block. The\n"
		"patient (role patient, acting as themself) or an admin.\n"
		"  block add --patient P (--org O | --person ID) [--category C | --entry ID]\n"
		"  block lift --id ID\n"
		"See carelogctl block add --help (and lift) for each.\n"
		"JSON: {state: \"committed\"|\"pending\", index, id, request_id, duplicate}\n"
		"Exit 0 committed, 1 refused or failed, 2 bad usage, 3 pending: run the same\n"
		"command again with --request-id R (printed).\n",
	[CTL_CMD_BLOCK_ADD] =
		"usage: carelogctl [GLOBAL OPTIONS] block add --patient P (--org O | --person ID)\n"
		"           [--category C | --entry ID] [--request-id R] [--json]\n"
		"\n"
		"Blocks patient P's record, or part of it, from an organisation or one person.\n"
		"  --patient P     the patient id (required)\n"
		"  --org O         block from every clinician of organisation O, or\n"
		"  --person ID     from this practitioner (one of the two is required)\n"
		"  --category C    only entries of this sensitivity: psychiatry, substance-use,\n"
		"                  sexual-health, child-welfare, genetic\n"
		"  --entry ID      only this entry (64 hex digits)\n"
		"                  (neither: the whole record)\n" CTL_USAGE_WRITE,
	[CTL_CMD_BLOCK_LIFT] =
		"usage: carelogctl [GLOBAL OPTIONS] block lift --id ID [--request-id R] [--json]\n"
		"\n"
		"Lifts a block: the entries are visible again where the rules allow.\n"
		"  --id ID   the block's entry id, 64 hex digits\n" CTL_USAGE_WRITE,
	[CTL_CMD_WITHHOLD] =
		"usage: carelogctl [GLOBAL OPTIONS] withhold --entry ID --reason TEXT\n"
		"           [--from patient|guardians] [--request-id R] [--json]\n"
		"       carelogctl [GLOBAL OPTIONS] withhold lift --id ID [--request-id R] [--json]\n"
		"\n"
		"A clinician with a care relation (or break-the-glass) withholds an entry from the\n"
		"patient's own view when showing it would cause serious harm; logged and reviewable.\n"
		"  --entry ID          the entry, 64 hex digits (required)\n"
		"  --reason TEXT       why, 1-256 bytes (required)\n"
		"  --from W            patient (default: the patient and every proxy) or guardians\n"
		"                      (only parents' view of a 12-15 year old)\n"
		"withhold lift --id ID lifts it (the withhold entry's id).\n" CTL_USAGE_WRITE,
	[CTL_CMD_WITHHOLD_LIFT] =
		"usage: carelogctl [GLOBAL OPTIONS] withhold lift --id ID [--request-id R] [--json]\n"
		"\n"
		"Lifts a withholding: the patient (or parents) see the entry again.\n"
		"  --id ID   the withhold entry's id, 64 hex digits\n" CTL_USAGE_WRITE,
	[CTL_CMD_PROXY] =
		"usage: carelogctl [GLOBAL OPTIONS] proxy grant|revoke ... [--json]\n"
		"\n"
		"Proxies act for a patient: parents of a child under 16 (granted by an admin;\n"
		"reduced view from 12, ends at 16), or an adult a patient of 16 or more chose\n"
		"(granted by the patient). Level read or full (full may also write).\n"
		"  proxy grant --patient P --proxy PERSON --relation parent|chosen --level read|full\n"
		"  proxy revoke --id ID\n"
		"See carelogctl proxy grant --help (and revoke) for each.\n"
		"JSON: {state: \"committed\"|\"pending\", index, id, request_id, duplicate}\n"
		"Exit 0 committed, 1 refused or failed, 2 bad usage, 3 pending: run the same\n"
		"command again with --request-id R (printed).\n",
	[CTL_CMD_PROXY_GRANT] =
		"usage: carelogctl [GLOBAL OPTIONS] proxy grant --patient P --proxy PERSON\n"
		"           --relation parent|chosen --level read|full [--from T] [--to T]\n"
		"           [--request-id R] [--json]\n"
		"\n"
		"Lets PERSON act for patient P. parent: by an admin, needs the patient's birth\n"
		"date (patient set); chosen: by the patient (16 or older) acting as themself.\n"
		"  --patient P          the patient id (required)\n"
		"  --proxy PERSON       the proxy's person id (required)\n"
		"  --relation R         parent or chosen (required)\n"
		"  --level L            read or full (required)\n"
		"  --from T             from when (default now)\n"
		"  --to T               until when (default open-ended; parents' access also ends\n"
		"                       at 16)\n" CTL_USAGE_WRITE,
	[CTL_CMD_PROXY_REVOKE] =
		"usage: carelogctl [GLOBAL OPTIONS] proxy revoke --id ID [--request-id R] [--json]\n"
		"\n"
		"Ends a proxy grant now: by an admin, the patient, or the proxy.\n"
		"  --id ID   the proxy grant's entry id, 64 hex digits\n" CTL_USAGE_WRITE,
	[CTL_CMD_AMBULANCE_ASSIGN] =
		"usage: carelogctl [GLOBAL OPTIONS] ambulance assign --patient P --crew ACTOR\n"
		"           --hours H [--from T] [--request-id R] [--json]\n"
		"\n"
		"Lets ambulance crew member ACTOR (role ambulance, this organisation) read patient\n"
		"P's record for H hours; read only. Role admin.\n"
		"  --patient P     the patient id (required)\n"
		"  --crew ACTOR    the crew member's practitioner id (required)\n"
		"  --hours H       1-168, at most the region's ambulance_hours_max (required)\n"
		"  --from T        from when (default now)\n" CTL_USAGE_WRITE,
	[CTL_CMD_BTG] =
		"usage: carelogctl [GLOBAL OPTIONS] btg --patient P --reason-code CODE --reason TEXT\n"
		"           [--hours H] [--request-id R] [--json]\n"
		"\n"
		"Break the glass: a clinician without a care relation gets read and write access to\n"
		"patient P for H hours, shielded entries included (blocks still apply). The grant\n"
		"is flagged: an auditor reviews it afterwards (btg-review).\n"
		"  --patient P          the patient id (required)\n"
		"  --reason-code CODE   e.g. emergency, 1-32 bytes (required)\n"
		"  --reason TEXT        why, in words, 1-512 bytes (required)\n"
		"  --hours H            1-720, at most the region's btg_hours_max (default "
		"24)\n" CTL_USAGE_WRITE,
	[CTL_CMD_BTG_REVIEW] =
		"usage: carelogctl [GLOBAL OPTIONS] btg-review [--patient P] [--limit N] [--json]\n"
		"       carelogctl [GLOBAL OPTIONS] btg-review --close ID\n"
		"           --outcome justified|unjustified [--text TEXT] [--request-id R] [--json]\n"
		"\n"
		"Without --close: the break-the-glass grants not yet reviewed, oldest first (role\n"
		"auditor or admin).\n"
		"  --patient P   only this patient's (default: every patient)\n"
		"  --limit N     at most N grants, 1-1000 (default 100)\n"
		"Output: one line per grant: id, patient, who (role, organisation/unit), granted\n"
		"and expiry time (UTC), reason code and text.\n"
		"JSON: {grants:[{id, index, patient, actor, role, org, unit, granted, granted_ms,\n"
		"       expires, expires_ms, reason_code, reason_text}]}\n"
		"Exit 0 listed, 1 refused or failed, 2 bad usage.\n"
		"\n"
		"With --close: reviews grant ID and closes it (it still expires on time). An\n"
		"auditor or admin other than the one who broke the glass.\n"
		"  --close ID    the grant's entry id, 64 hex digits\n"
		"  --outcome O   justified or unjustified (required with --close)\n"
		"  --text TEXT   the review's notes, up to 512 bytes\n" CTL_USAGE_WRITE,
	[CTL_CMD_PARAMS_SET] =
		"usage: carelogctl [GLOBAL OPTIONS] params set --implicit-window-days N\n"
		"           --btg-hours-max N --ambulance-hours-max N [--request-id R] [--json]\n"
		"\n"
		"Sets the region's replicated access parameters (all three). Role operator.\n"
		"  --implicit-window-days N   an organisation that wrote for a patient within N\n"
		"                             days may read the record (1-3650; default 90)\n"
		"  --btg-hours-max N          longest break-the-glass grant (1-720; default 120)\n"
		"  --ambulance-hours-max N    longest ambulance assignment (1-168; default "
		"24)\n" CTL_USAGE_WRITE,
	[CTL_CMD_AMEND] =
		"usage: carelogctl [GLOBAL OPTIONS] amend --id OLD (--body TEXT | --body-file F)\n"
		"           [--media-type M] [--request-id R] [--json]\n"
		"\n"
		"A new version of entry OLD: fetches OLD (as --actor) for its patient, kind,\n"
		"sensitivity, clinical time and media type, then appends the new body with\n"
		"status amended, correcting OLD. read shows the current version; read --history\n"
		"both.\n"
		"  --id OLD         the entry to amend, 64 hex digits (required)\n"
		"  --body TEXT      the new body, or\n"
		"  --body-file F    from file F (- = standard input)\n"
		"  --media-type M   default: OLD's\n" CTL_USAGE_WRITE,
	[CTL_CMD_ENTERED_IN_ERROR] =
		"usage: carelogctl [GLOBAL OPTIONS] entered-in-error --id OLD --reason TEXT\n"
		"           [--request-id R] [--json]\n"
		"\n"
		"Marks entry OLD as entered in error (e.g. the wrong patient): fetches OLD (as\n"
		"--actor), then appends an entry of the same kind and patient with status\n"
		"entered-in-error, correcting OLD, whose body is the reason (text/plain). OLD stays\n"
		"in the history.\n"
		"  --id OLD        the entry, 64 hex digits (required)\n"
		"  --reason TEXT   why, 1-512 bytes (required)\n" CTL_USAGE_WRITE,
	[CTL_CMD_ERASE] =
		"usage: carelogctl [GLOBAL OPTIONS] erase --id ID --basis TEXT [--request-id R]\n"
		"           [--json]\n"
		"\n"
		"Lawful erasure (hpl 43): every node removes the entry's body at once; its signed\n"
		"header stays, verify still passes, and get shows when, by whom and on which basis\n"
		"it was erased. Run compact on each node (stopped) to remove the bytes from the\n"
		"data file. Role admin.\n"
		"  --id ID        the entry, 64 hex digits (required)\n"
		"  --basis TEXT   the legal basis and decision, 1-512 bytes (required)\n" CTL_USAGE_WRITE,
	[CTL_CMD_ACCESS_LOG] =
		"usage: carelogctl [GLOBAL OPTIONS] access-log (--patient P | --actor ID [--org O])\n"
		"           [--limit N] [--json]\n"
		"\n"
		"Who accessed patient P's record, or what actor ID accessed, across the region,\n"
		"newest first; accesses at other nodes appear once shipped (within about a\n"
		"second). Reading the access log is itself logged. Patients and their proxies see\n"
		"their own record's; auditors everyone's.\n"
		"  --patient P   accesses to this patient's record, or\n"
		"  --actor ID    accesses by this practitioner (the acting --actor then goes before\n"
		"                the command word, or in $CARELOG_ACTOR)\n"
		"  --org O       the practitioner's organisation (default: this node's)\n"
		"  --limit N     at most N rows, 1-1000 (default 100)\n"
		"Output: a table: time (UTC), actor, role, organisation, unit, action, decision,\n"
		"basis, count, and whether the row has been shipped to the region yet.\n"
		"JSON: {applied_index, rows:[{node_id, seq, time, time_ms, actor, role, org, unit,\n"
		"       patient, action, decision, allowed, basis, count, withheld, entry, purpose,\n"
		"       outcome, shipped}]}\n"
		"Exit 0 listed, 1 refused or failed, 2 bad usage.\n",
	[CTL_CMD_COMPACT] =
		"usage: carelogctl compact --data-dir DIR [--json]\n"
		"\n"
		"Offline, with the node stopped: copies DIR/data.mdb compacted (only pages in use,\n"
		"so the bytes of erased bodies are gone), syncs it and swaps it in. A crash leaves\n"
		"either the old or the new file, both complete. Needs no node.\n"
		"  --data-dir DIR   the node's data directory (required)\n"
		"Output: the file's size before and after.\n"
		"JSON: {data_dir, before_bytes, after_bytes}\n"
		"Exit 0 compacted, 1 failed (the node is still running: stop it first),\n"
		"2 bad usage.\n",
};

void ctl_usage(FILE *out, enum ctl_command command)
{
	CL_ASSERT(command < CTL_CMD_COUNT_);
	if (command == CTL_CMD_NONE) {
		fputs(ctl_usage_tool, out);
		fputs(ctl_usage_tool_access, out);
		fputs(ctl_usage_tool_options, out);
	} else {
		fputs(ctl_usage_commands[command], out);
	}
	if (ctl_commands[command].network) {
		fputs(ctl_usage_network_options, out);
	}
}
