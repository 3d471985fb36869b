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
};

/*
 * Parses argv (argv[0] is the program). `env_endpoint` and `env_actor` are the values of
 * $CARELOG_ENDPOINT and $CARELOG_ACTOR (NULL when unset). Returns CTL_EXIT_OK, or
 * CTL_EXIT_USAGE with a one-line message in `err` ("append: unknown option --bdy").
 */
int ctl_parse(int argc, char *const argv[], const char *env_endpoint, const char *env_actor,
	      struct ctl_options *out, char *err, size_t err_len);

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
