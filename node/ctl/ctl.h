/* carelogctl internals: parsed command line, JSON writer and text helpers (testable without a node). */
#ifndef CARELOG_NODE_CTL_H
#define CARELOG_NODE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: DESIGN.md "Command-line contract". */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILED = 1,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_PENDING = 3,
};

enum {
	CTL_ID_BYTES = 32,
	CTL_ACTOR_BYTES_MAX = 64,
	CTL_ROLE_BYTES_MAX = 32,
	CTL_CLUSTER_MEMBERS_MAX = 64,    /* --member/--learner flags accepted (genesis: at most 8) */
	CTL_ORG_BYTES_MAX = 64,
	CTL_ADDRESS_BYTES_MAX = 128,
	CTL_TIMEOUT_MS_DEFAULT = 10000,
	CTL_TIMEOUT_MS_MAX = 24 * 3600 * 1000,
	CTL_BENCH_CLIENTS_DEFAULT = 4,
	CTL_BENCH_CLIENTS_MAX = 256,
	CTL_BENCH_COUNT_DEFAULT = 1000,
	CTL_BENCH_COUNT_MAX = 10 * 1000 * 1000,
	CTL_BENCH_BODY_BYTES_DEFAULT = 512,
	CTL_BENCH_BODY_BYTES_MAX = 64 * 1024 * 1024,
	CTL_READ_LIMIT_MAX = 1000,
	CTL_PUBLIC_KEY_BYTES = 32,
	CTL_PATH_ARG_BYTES_MAX = 4000,   /* a file or directory name on the command line */
	CTL_PROGRESS_LINE_BYTES = 160,   /* one member add-learner --wait progress line */
	CTL_UNIT_BYTES_MAX = 64,
	CTL_PURPOSE_BYTES_MAX = 128,
	CTL_PATIENT_BYTES_MAX = 64,
	CTL_TEXT_BYTES_MAX = 512, /* btg reason, review text, erasure basis */
	CTL_WITHHOLD_REASON_BYTES_MAX = 256,
	CTL_REASON_CODE_BYTES_MAX = 32,
	CTL_WORD_BYTES_MAX = 24, /* a category, an outcome, ... */
	CTL_CATEGORIES_MAX = 6,  /* relation add --categories */
	CTL_BTG_HOURS_DEFAULT = 24,
	CTL_BTG_HOURS_MAX = 720,       /* the replicated btg_hours_max may be lower */
	CTL_AMBULANCE_HOURS_MAX = 168, /* the replicated ambulance_hours_max may be lower */
	CTL_IMPLICIT_WINDOW_DAYS_MAX = 3650,
	CTL_LIST_LIMIT_MAX = 1000, /* access-log, btg-review rows */
};

enum ctl_command {
	CTL_CMD_NONE = 0, /* only the tool's --help or --version */
	CTL_CMD_KEYGEN,
	CTL_CMD_CLUSTER_INIT,
	CTL_CMD_STATUS,
	CTL_CMD_APPEND,
	CTL_CMD_READ,
	CTL_CMD_GET,
	CTL_CMD_VERIFY,
	CTL_CMD_BENCH_APPEND,
	CTL_CMD_MEMBER, /* only for "member --help": the subcommands below do the work */
	CTL_CMD_MEMBER_ADD_LEARNER,
	CTL_CMD_MEMBER_PROMOTE,
	CTL_CMD_MEMBER_REMOVE,
	CTL_CMD_TRANSFER_LEADER,
	/* clinical access (docs/access.md) */
	CTL_CMD_PATIENT_SET,
	CTL_CMD_RELATION, /* only for "relation --help" */
	CTL_CMD_RELATION_ADD,
	CTL_CMD_RELATION_END,
	CTL_CMD_BLOCK, /* only for "block --help" */
	CTL_CMD_BLOCK_ADD,
	CTL_CMD_BLOCK_LIFT,
	CTL_CMD_WITHHOLD_LIFT, /* before "withhold": the longer match wins */
	CTL_CMD_WITHHOLD,
	CTL_CMD_PROXY, /* only for "proxy --help" */
	CTL_CMD_PROXY_GRANT,
	CTL_CMD_PROXY_REVOKE,
	CTL_CMD_AMBULANCE_ASSIGN,
	CTL_CMD_BTG,
	CTL_CMD_BTG_REVIEW, /* lists open grants; with --close reviews one */
	CTL_CMD_PARAMS_SET,
	CTL_CMD_AMEND,
	CTL_CMD_ENTERED_IN_ERROR,
	CTL_CMD_ERASE,
	CTL_CMD_ACCESS_LOG,
	CTL_CMD_COMPACT,
	CTL_CMD_COUNT_
};

struct ctl_member_arg {
	uint64_t id;
	char org[CTL_ORG_BYTES_MAX + 1];
	char address[CTL_ADDRESS_BYTES_MAX + 1];
	const char *public_key_file; /* borrowed from argv */
	bool voter;
};

/* Everything on the command line; strings are borrowed from argv or the environment. */
struct ctl_options {
	enum ctl_command command;
	bool help;    /* --help: print the usage of `command` (or the tool) and exit 0 */
	bool version; /* --version */
	bool json;

	/* connection (status, append, read, get, verify, bench append) */
	const char *endpoint; /* --endpoint, else $CARELOG_ENDPOINT */
	uint32_t timeout_ms;  /* --timeout S, default CTL_TIMEOUT_MS_DEFAULT */
	char actor[CTL_ACTOR_BYTES_MAX + 1]; /* --actor ID[:ROLE], else $CARELOG_ACTOR; "" = node default */
	char role[CTL_ROLE_BYTES_MAX + 1];
	const char *unit;    /* --unit U (the actor's), else $CARELOG_UNIT; NULL = node's unit */
	const char *purpose; /* --purpose TEXT, for the access log */

	/* keygen */
	const char *out; /* keygen: directory; cluster init: genesis file */

	/* cluster init */
	uint32_t members_count;
	struct ctl_member_arg members[CTL_CLUSTER_MEMBERS_MAX];
	uint64_t body_max_bytes; /* 0 = default */

	/* append, read, bench append */
	const char *patient;
	const char *kind;
	const char *body_text;
	const char *body_file; /* "-" = standard input */
	const char *request_id;
	const char *status;
	const char *sensitivity;
	const char *media_type;
	uint64_t clinical_time_ms;
	bool has_corrects;
	uint8_t corrects[CTL_ID_BYTES];

	/* read */
	bool linearizable;
	uint64_t min_index;
	uint64_t since_index;
	uint32_t limit;

	/* get */
	uint8_t id[CTL_ID_BYTES];

	/* member add-learner, promote, remove (--id N); transfer-leader (--to N) */
	uint64_t node_id;
	const char *org;
	const char *address;
	const char *public_key_file;
	bool wait; /* add-learner --wait: poll status until the learner's lag is 0 */
	uint64_t to;

	/* bench append */
	uint32_t bench_clients;
	uint32_t bench_count; /* appends in total, spread over the clients */
	uint64_t bench_body_bytes;

	/* clinical access. --id ID (an entry id, hex) goes to `id` above; --patient, --org,
	 * --limit, --request-id, --body, --body-file as above. */
	bool has_id;            /* --id given (an entry id) */
	bool history;           /* read --history */
	const char *birth_date; /* patient set */
	const char *rel_unit;   /* relation add --unit (the relation's unit, after the command) */
	bool has_from, has_to;
	uint64_t from_ms, to_ms; /* relation add, proxy grant, ambulance assign (--from / --to T) */
	uint32_t categories_count;
	char categories[CTL_CATEGORIES_MAX][CTL_WORD_BYTES_MAX + 1]; /* relation add */
	const char *person;                                          /* block add --person */
	const char *category;                                        /* block add --category */
	bool has_entry;
	uint8_t entry[CTL_ID_BYTES]; /* block add, withhold --entry */
	const char *reason;          /* withhold, btg, entered-in-error */
	const char *from_word;       /* withhold --from patient|guardians */
	const char *proxy;           /* proxy grant --proxy */
	const char *relation;        /* proxy grant --relation parent|chosen */
	const char *level;           /* proxy grant --level read|full */
	const char *crew;            /* ambulance assign --crew */
	uint32_t hours;              /* btg, ambulance assign */
	const char *reason_code;     /* btg */
	bool has_close;
	uint8_t close_id[CTL_ID_BYTES]; /* btg-review --close */
	const char *outcome;            /* btg-review --outcome */
	const char *text;               /* btg-review --text */
	uint32_t implicit_window_days, btg_hours_max, ambulance_hours_max; /* params set */
	const char *basis;                                                 /* erase --basis */
	const char *log_actor; /* access-log --actor (whose accesses; after the command) */
	const char *data_dir;  /* compact --data-dir */
};

/* The environment's defaults (NULL when unset). */
struct ctl_env {
	const char *endpoint; /* $CARELOG_ENDPOINT */
	const char *actor;    /* $CARELOG_ACTOR */
	const char *unit;     /* $CARELOG_UNIT */
};

/*
 * Parses argv (argv[0] is the program) with defaults from `env` (may be NULL). Returns
 * CTL_EXIT_OK, or CTL_EXIT_USAGE with a one-line message in `err` ("append: unknown option
 * --bdy").
 */
int ctl_parse(int argc, char *const argv[], const struct ctl_env *env, struct ctl_options *out,
	      char *err, size_t err_len);

/* The command's name as typed ("cluster init", "bench append"); "" for CTL_CMD_NONE. */
const char *ctl_command_name(enum ctl_command command);

/* Writes the usage text of `command` (CTL_CMD_NONE: the whole tool). */
void ctl_usage(FILE *out, enum ctl_command command);

/* ------------------------------------------------------------------ text */

/* Strict UTF-8 (no overlong forms, surrogates or code points beyond U+10FFFF). */
bool ctl_utf8_valid(const uint8_t *s, size_t len);

/* Valid UTF-8 without control characters other than tab, newline, carriage return. */
bool ctl_text_printable(const uint8_t *s, size_t len);

/* Standard base64 with padding; `out` holds ctl_base64_size(len) bytes (NUL included). */
size_t ctl_base64_size(size_t len);
void ctl_base64_encode(char *out, const uint8_t *in, size_t len);

/* "2026-11-24T06:42:27.123Z"; `out` holds CTL_TIME_TEXT_BYTES. */
enum { CTL_TIME_TEXT_BYTES = 32 };
void ctl_time_format(char out[CTL_TIME_TEXT_BYTES], uint64_t ms);

/* Parses milliseconds since the epoch ("1700000000123") or ISO-8601 UTC
 * ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250Z", "2024-05-01"). */
int ctl_time_parse(const char *text, uint64_t *out_ms);

/*
 * One progress line of "member add-learner --wait", without a newline:
 * "learner 4: match 120000/250000 (48%), 31000 entries/s". The total is match + lag (the
 * leader's last index); the percentage is floored and reaches 100 only at lag 0. Without
 * progress (has_match false): "learner 4: no progress reported yet". `rate_known` false
 * leaves the rate out (the first line). Returns `out`.
 */
const char *ctl_progress_line(char *out, size_t out_len, uint64_t id, bool has_match,
			      uint64_t match, uint64_t lag, bool rate_known,
			      uint64_t entries_per_s);

/* ------------------------------------------------------------------ JSON */

enum { CTL_JSON_DEPTH_MAX = 16 };

/*
 * A streaming JSON writer: commas and nesting are tracked, strings escaped ('"', '\\',
 * control characters as \u00XX, invalid UTF-8 bytes as \ufffd), output compact on one line.
 * Misuse (a value where a key is due, unbalanced ends, nesting beyond the bound) is a
 * programming error and asserts.
 */
struct ctl_json {
	FILE *out;
	int depth;
	bool need_comma[CTL_JSON_DEPTH_MAX + 1];
	bool in_object[CTL_JSON_DEPTH_MAX + 1];
	bool key_written;
};

void ctl_json_init(struct ctl_json *j, FILE *out);
void ctl_json_object_begin(struct ctl_json *j);
void ctl_json_object_end(struct ctl_json *j);
void ctl_json_array_begin(struct ctl_json *j);
void ctl_json_array_end(struct ctl_json *j);
void ctl_json_key(struct ctl_json *j, const char *key);
void ctl_json_string(struct ctl_json *j, const char *s);
void ctl_json_string_n(struct ctl_json *j, const uint8_t *s, size_t len);
void ctl_json_u64(struct ctl_json *j, uint64_t v);
void ctl_json_double(struct ctl_json *j, double v);
void ctl_json_bool(struct ctl_json *j, bool v);
void ctl_json_null(struct ctl_json *j);
void ctl_json_hex(struct ctl_json *j, const uint8_t *bytes, size_t len); /* lower-case hex string */
/* Ends the document with a newline; asserts everything was closed. */
void ctl_json_finish(struct ctl_json *j);

#endif
