/* Unit tests for carelogctl: parsing, JSON writer, text helpers, and the tool against a fake node. */
#include "carelog/errors.h"
#include "node/api/proto.h"
#include "node/ctl/ctl.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { ARGS_MAX = 32 };

static struct ctl_options opts;
static char err[512];
static char words[ARGS_MAX][256]; /* argv copies: the parser keeps pointers into argv */

/* Parses a NULL-terminated list of words after "carelogctl". */
static int parse_env(const char *env_endpoint, const char *env_actor, ...)
{
	char *argv[ARGS_MAX];
	int argc = 0;
	snprintf(words[0], sizeof(words[0]), "carelogctl");
	argv[argc] = words[argc];
	argc++;
	va_list ap;
	va_start(ap, env_actor);
	for (const char *w = va_arg(ap, const char *); w != NULL; w = va_arg(ap, const char *)) {
		assert_true(argc < ARGS_MAX);
		snprintf(words[argc], sizeof(words[argc]), "%s", w);
		argv[argc] = words[argc];
		argc++;
	}
	va_end(ap);
	const struct ctl_env env = {.endpoint = env_endpoint, .actor = env_actor};
	return ctl_parse(argc, argv, &env, &opts, err, sizeof(err));
}

#define parse(...) parse_env(NULL, NULL, __VA_ARGS__, NULL)

static void test_append_parses_every_flag(void **state)
{
	(void)state;
	char id[65];
	memset(id, 'a', 64);
	id[64] = '\0';
	assert_int_equal(parse("--endpoint", "ipc:///tmp/x.sock", "--timeout", "2.5", "--actor",
			       "hpr-1:nurse", "append", "--patient", "p1", "--kind=note", "--body",
			       "hello", "--request-id", "r1", "--status", "final", "--sensitivity",
			       "psychiatry", "--clinical-time", "2024-05-01T12:00:00.250Z",
			       "--corrects", id, "--media-type", "text/markdown", "--json"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_APPEND);
	assert_string_equal(opts.endpoint, "ipc:///tmp/x.sock");
	assert_int_equal(opts.timeout_ms, 2500);
	assert_string_equal(opts.actor, "hpr-1");
	assert_string_equal(opts.role, "nurse");
	assert_string_equal(opts.patient, "p1");
	assert_string_equal(opts.kind, "note");
	assert_string_equal(opts.body_text, "hello");
	assert_string_equal(opts.request_id, "r1");
	assert_string_equal(opts.sensitivity, "psychiatry");
	assert_int_equal(opts.clinical_time_ms, 1714564800250ull);
	assert_true(opts.has_corrects);
	assert_int_equal(opts.corrects[31], 0xaa);
	assert_string_equal(opts.media_type, "text/markdown");
	assert_true(opts.json);
}

static void test_global_options_may_follow_the_command(void **state)
{
	(void)state;
	assert_int_equal(parse("status", "--json", "--endpoint", "tcp://h:1", "--timeout", "3"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_STATUS);
	assert_int_equal(opts.timeout_ms, 3000);
	assert_true(opts.json);
}

static void test_environment_supplies_endpoint_and_actor(void **state)
{
	(void)state;
	assert_int_equal(parse_env("ipc:///env.sock", "doc-7:doctor", "read", "--patient", "p",
				   NULL),
			 CTL_EXIT_OK);
	assert_string_equal(opts.endpoint, "ipc:///env.sock");
	assert_string_equal(opts.actor, "doc-7");
	assert_string_equal(opts.role, "doctor");
	/* flags beat the environment */
	assert_int_equal(parse_env("ipc:///env.sock", "doc-7", "--endpoint", "tcp://a:1", "--actor",
				   "x", "read", "--patient", "p", NULL),
			 CTL_EXIT_OK);
	assert_string_equal(opts.endpoint, "tcp://a:1");
	assert_string_equal(opts.actor, "x");
	assert_string_equal(opts.role, "");
	/* no actor anywhere: empty, the node applies its default */
	assert_int_equal(parse_env("ipc:///e", NULL, "status", NULL), CTL_EXIT_OK);
	assert_string_equal(opts.actor, "");
}

static void test_network_command_without_endpoint_is_usage_error(void **state)
{
	(void)state;
	assert_int_equal(parse("status"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "CARELOG_ENDPOINT"));
	/* local commands need none */
	assert_int_equal(parse("keygen", "--out", "/tmp/k"), CTL_EXIT_OK);
}

static void test_unknown_command_and_option_are_usage_errors_naming_them(void **state)
{
	(void)state;
	assert_int_equal(parse("--endpoint", "x://y", "apend"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "apend"));
	assert_int_equal(parse("--endpoint", "x://y", "append", "--bdy", "x"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "--bdy"));
	assert_non_null(strstr(err, "append"));
	/* an option of another command is unknown here */
	assert_int_equal(parse("--endpoint", "x://y", "status", "--patient", "p"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "status", "extra"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--frobnicate"), CTL_EXIT_USAGE);
	assert_int_equal(parse("cluster", "start"), CTL_EXIT_USAGE);
	assert_int_equal(parse("bench"), CTL_EXIT_USAGE);
	assert_int_equal(parse_env(NULL, NULL, NULL), CTL_EXIT_USAGE);
}

static void test_missing_values_duplicates_and_bad_numbers_are_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--patient", "b"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--limit", "0"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--limit", "1001"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--min-index",
			       "-1"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--min-index",
			       "18446744073709551616"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "read", "--patient", "a", "--consistency",
			       "eventual"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--timeout", "0", "--endpoint", "x://y", "status"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--timeout", "1.2345", "--endpoint", "x://y", "status"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--timeout", "abc", "--endpoint", "x://y", "status"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "get", "--id", "abc"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "get"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--json=yes", "--endpoint", "x://y", "status"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--actor", ":nurse", "--endpoint", "x://y", "status"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse_env("x://y", ":bad", "status", NULL), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "CARELOG_ACTOR"));
}

static void test_append_needs_exactly_one_body_source(void **state)
{
	(void)state;
	assert_int_equal(parse("--endpoint", "x://y", "append", "--patient", "p", "--kind", "note"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "append", "--patient", "p", "--kind", "note",
			       "--body", "a", "--body-file", "f"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "append", "--patient", "p", "--kind", "note",
			       "--body-file", "-"),
			 CTL_EXIT_OK);
	assert_string_equal(opts.body_file, "-");
	/* an empty body is a body */
	assert_int_equal(parse("--endpoint", "x://y", "append", "--patient", "p", "--kind", "note",
			       "--body", ""),
			 CTL_EXIT_OK);
	assert_int_equal(parse("--endpoint", "x://y", "append", "--patient", "p", "--kind", "note",
			       "--body", "x", "--clinical-time", "2024-02-31T00:00:00Z"),
			 CTL_EXIT_USAGE);
}

static void test_help_wins_over_missing_arguments(void **state)
{
	(void)state;
	assert_int_equal(parse("append", "--help"), CTL_EXIT_OK);
	assert_true(opts.help);
	assert_int_equal(opts.command, CTL_CMD_APPEND);
	assert_int_equal(parse("help", "read"), CTL_EXIT_OK);
	assert_true(opts.help);
	assert_int_equal(opts.command, CTL_CMD_READ);
	assert_int_equal(parse("-h"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_NONE);
	assert_int_equal(parse("cluster", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_CLUSTER_INIT);
	assert_int_equal(parse("bench", "append", "-h"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BENCH_APPEND);
	for (int c = 0; c < CTL_CMD_COUNT_; c++) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		ctl_usage(f, (enum ctl_command)c);
		fclose(f);
		assert_non_null(strstr(text, "usage: carelogctl"));
		free(text);
	}
}

static char *usage_text(enum ctl_command command)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	ctl_usage(f, command);
	fclose(f);
	return text;
}

static void test_every_command_help_shows_flags_output_and_exit_codes(void **state)
{
	(void)state;
	for (int c = 1; c < CTL_CMD_COUNT_; c++) {
		char *text = usage_text((enum ctl_command)c);
		assert_non_null(strstr(text, "Exit 0"));
		assert_non_null(strstr(text, "2 bad usage"));
		assert_non_null(strstr(text, "JSON: "));
		assert_non_null(strstr(text, "--json"));
		if (c != CTL_CMD_KEYGEN && c != CTL_CMD_CLUSTER_INIT && c != CTL_CMD_COMPACT) {
			/* commands that talk to a node show the connection options and defaults */
			assert_non_null(strstr(text, "--endpoint URL"));
			assert_non_null(strstr(text, "$CARELOG_ENDPOINT"));
			assert_non_null(strstr(text, "--timeout S"));
			assert_non_null(strstr(text, "default 10"));
		}
		free(text);
	}
	char *append = usage_text(CTL_CMD_APPEND);
	assert_non_null(strstr(append, "3 pending"));
	assert_non_null(strstr(append, "vital-signs")); /* the kinds are listed */
	free(append);
	char *tool = usage_text(CTL_CMD_NONE);
	assert_null(strstr(tool, "not available yet"));
	assert_non_null(strstr(tool, "member add-learner --id N --org ORG --address URL"));
	assert_non_null(strstr(tool, "member promote --id N"));
	assert_non_null(strstr(tool, "member remove --id N"));
	assert_non_null(strstr(tool, "transfer-leader --to N"));
	free(tool);
	char *add = usage_text(CTL_CMD_MEMBER_ADD_LEARNER);
	assert_non_null(strstr(add, "--wait"));
	assert_non_null(strstr(add, "entries/s"));
	assert_non_null(strstr(add, "3 pending"));
	free(add);
	char *status = usage_text(CTL_CMD_STATUS);
	assert_non_null(strstr(status, "progress_age_ms, verified_signatures, syncs, transport"));
	assert_non_null(strstr(status, "audit:{queued_rows, next_seq, shipped_seq, syncs,"));
	assert_non_null(strstr(status, "members:[{id, role, org, address, match_index, lag}]"));
	free(status);
	char *init = usage_text(CTL_CMD_CLUSTER_INIT);
	assert_non_null(strstr(init, "three voters and a learner"));
	free(init);
}

static void test_member_commands_parse_their_flags(void **state)
{
	(void)state;
	assert_int_equal(parse("--endpoint", "x://y", "member", "add-learner", "--id", "4", "--org",
			       "helse-nord", "--address", "tcp://10.0.0.4:7401", "--public-key",
			       "n4/node.pub", "--wait", "--json", "--timeout", "600"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_MEMBER_ADD_LEARNER);
	assert_int_equal(opts.node_id, 4);
	assert_string_equal(opts.org, "helse-nord");
	assert_string_equal(opts.address, "tcp://10.0.0.4:7401");
	assert_string_equal(opts.public_key_file, "n4/node.pub");
	assert_true(opts.wait);
	assert_true(opts.json);
	assert_int_equal(opts.timeout_ms, 600000);
	assert_int_equal(parse("--endpoint", "x://y", "member", "promote", "--id",
			       "18446744073709551615"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_MEMBER_PROMOTE);
	assert_int_equal(opts.node_id, UINT64_MAX);
	assert_false(opts.wait);
	assert_int_equal(parse("--endpoint", "x://y", "member", "remove", "--id=9"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_MEMBER_REMOVE);
	assert_int_equal(opts.node_id, 9);
	assert_int_equal(parse("--endpoint", "x://y", "transfer-leader", "--to", "3", "--json"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_TRANSFER_LEADER);
	assert_int_equal(opts.to, 3);
	/* get still takes a hex entry id */
	char id[65];
	memset(id, 'b', 64);
	id[64] = '\0';
	assert_int_equal(parse("--endpoint", "x://y", "get", "--id", id), CTL_EXIT_OK);
	assert_int_equal(opts.id[0], 0xbb);
}

static void test_member_commands_refuse_bad_usage(void **state)
{
	(void)state;
	/* a group word alone, or with an unknown second word */
	assert_int_equal(parse("--endpoint", "x://y", "member"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "add-learner|promote|remove"));
	assert_int_equal(parse("--endpoint", "x://y", "member", "--id", "3"), CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "member", "demote", "--id", "3"),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "member demote"));
	/* required flags */
	assert_int_equal(parse("--endpoint", "x://y", "member", "promote"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "--id N is required"));
	assert_int_equal(parse("--endpoint", "x://y", "transfer-leader"), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "--to N is required"));
	assert_int_equal(parse("--endpoint", "x://y", "member", "add-learner", "--id", "4",
			       "--org", "o", "--address", "tcp://h:1"),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "--public-key"));
	/* bad values */
	assert_int_equal(parse("--endpoint", "x://y", "member", "remove", "--id", "0"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "member", "remove", "--id", "x1"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "transfer-leader", "--to", "-2"),
			 CTL_EXIT_USAGE);
	char long_org[CTL_ORG_BYTES_MAX + 2];
	memset(long_org, 'o', sizeof(long_org) - 1);
	long_org[sizeof(long_org) - 1] = '\0';
	assert_int_equal(parse("--endpoint", "x://y", "member", "add-learner", "--id", "4",
			       "--org", long_org, "--address", "tcp://h:1", "--public-key", "k"),
			 CTL_EXIT_USAGE);
	/* options belong to their command */
	assert_int_equal(parse("--endpoint", "x://y", "member", "promote", "--id", "4", "--wait"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "member", "remove", "--to", "4"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("--endpoint", "x://y", "transfer-leader", "--id", "4"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("member", "promote", "--id", "4"), CTL_EXIT_USAGE); /* endpoint */
	/* help for the group and for each */
	assert_int_equal(parse("member", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_MEMBER);
	assert_int_equal(parse("help", "member", "add-learner"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_MEMBER_ADD_LEARNER);
	assert_int_equal(parse("transfer-leader", "-h"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_TRANSFER_LEADER);
}

/* ---------------------------------------------------------------- clinical access: parsing */

#define EP    "--endpoint", "x://y"
#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_unit_and_purpose_come_from_flags_or_the_environment(void **state)
{
	(void)state;
	const struct ctl_env env = {
	    .endpoint = "x://y", .actor = "hpr-1:nurse", .unit = "hjemmesykepleie"};
	char *argv[] = {"carelogctl", "read", "--patient", "p", NULL};
	assert_int_equal(ctl_parse(4, argv, &env, &opts, err, sizeof(err)), CTL_EXIT_OK);
	assert_string_equal(opts.unit, "hjemmesykepleie");
	assert_string_equal(opts.actor, "hpr-1");
	assert_null(opts.purpose);
	char *argv2[] = {"carelogctl", "--unit",    "legevakt",    "read", "--patient",
	                 "p",          "--purpose", "acute visit", NULL};
	assert_int_equal(ctl_parse(8, argv2, &env, &opts, err, sizeof(err)), CTL_EXIT_OK);
	assert_string_equal(opts.unit, "legevakt");
	assert_string_equal(opts.purpose, "acute visit");
	/* no unit anywhere: the node's */
	assert_int_equal(parse(EP, "status"), CTL_EXIT_OK);
	assert_null(opts.unit);
	char long_unit[CTL_UNIT_BYTES_MAX + 2];
	memset(long_unit, 'u', sizeof(long_unit) - 1);
	long_unit[sizeof(long_unit) - 1] = '\0';
	const struct ctl_env bad = {.endpoint = "x://y", .unit = long_unit};
	assert_int_equal(ctl_parse(4, argv, &bad, &opts, err, sizeof(err)), CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "CARELOG_UNIT"));
	char long_purpose[CTL_PURPOSE_BYTES_MAX + 2];
	memset(long_purpose, 'w', sizeof(long_purpose) - 1);
	long_purpose[sizeof(long_purpose) - 1] = '\0';
	assert_int_equal(parse(EP, "--purpose", long_purpose, "status"), CTL_EXIT_USAGE);
	assert_int_equal(parse(EP, "--unit", "", "status"), CTL_EXIT_USAGE);
}

static void test_policy_commands_parse_every_flag(void **state)
{
	(void)state;
	assert_int_equal(parse(EP, "patient", "set", "--patient", "p1", "--birth-date",
	                       "1948-02-29", "--request-id", "r1", "--json"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PATIENT_SET);
	assert_string_equal(opts.birth_date, "1948-02-29");
	assert_string_equal(opts.request_id, "r1");

	/* relation add: --unit after the command is the relation's, before it the actor's */
	assert_int_equal(parse(EP, "--unit", "admin-office", "relation", "add", "--patient", "p1",
	                       "--unit", "cardio", "--from", "2026-11-24T10:00:00Z", "--to",
	                       "1800000000000", "--categories", "psychiatry,genetic"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_RELATION_ADD);
	assert_string_equal(opts.unit, "admin-office");
	assert_string_equal(opts.rel_unit, "cardio");
	assert_true(opts.has_from && opts.has_to);
	assert_int_equal(opts.from_ms, 1795514400000ull);
	assert_int_equal(opts.to_ms, 1800000000000ull);
	assert_int_equal(opts.categories_count, 2);
	assert_string_equal(opts.categories[1], "genetic");
	assert_int_equal(parse(EP, "relation", "end", "--id", HEX_A), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_RELATION_END);
	assert_true(opts.has_id);
	assert_int_equal(opts.id[31], 0xaa);

	assert_int_equal(parse(EP, "block", "add", "--patient", "p1", "--org", "kommune-x",
	                       "--category", "psychiatry"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BLOCK_ADD);
	assert_string_equal(opts.org, "kommune-x");
	assert_string_equal(opts.category, "psychiatry");
	assert_int_equal(
	    parse(EP, "block", "add", "--patient", "p1", "--person", "hpr-9", "--entry", HEX_B),
	    CTL_EXIT_OK);
	assert_string_equal(opts.person, "hpr-9");
	assert_true(opts.has_entry);
	assert_int_equal(opts.entry[0], 0xbb);
	assert_int_equal(parse(EP, "block", "lift", "--id", HEX_A), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BLOCK_LIFT);

	assert_int_equal(parse(EP, "withhold", "--entry", HEX_A, "--reason", "would harm", "--from",
	                       "guardians"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_WITHHOLD);
	assert_string_equal(opts.reason, "would harm");
	assert_string_equal(opts.from_word, "guardians");
	assert_false(opts.has_from);
	assert_int_equal(parse(EP, "withhold", "lift", "--id", HEX_B), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_WITHHOLD_LIFT);
	assert_int_equal(opts.id[0], 0xbb);

	assert_int_equal(parse(EP, "proxy", "grant", "--patient", "p1", "--proxy", "mother-1",
	                       "--relation", "parent", "--level", "full", "--from", "2026-01-01",
	                       "--to", "2030-01-01"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PROXY_GRANT);
	assert_string_equal(opts.proxy, "mother-1");
	assert_string_equal(opts.relation, "parent");
	assert_string_equal(opts.level, "full");
	assert_int_equal(parse(EP, "proxy", "revoke", "--id", HEX_A), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PROXY_REVOKE);

	assert_int_equal(parse(EP, "ambulance", "assign", "--patient", "p1", "--crew", "amb-3",
	                       "--hours", "168"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_AMBULANCE_ASSIGN);
	assert_string_equal(opts.crew, "amb-3");
	assert_int_equal(opts.hours, 168);
	assert_false(opts.has_from);

	assert_int_equal(parse(EP, "btg", "--patient", "p1", "--reason-code", "emergency",
	                       "--reason", "unconscious", "--hours", "720"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BTG);
	assert_string_equal(opts.reason_code, "emergency");
	assert_int_equal(opts.hours, 720);
	assert_int_equal(parse(EP, "btg", "--patient", "p1", "--reason-code", "e", "--reason", "r"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.hours, 0); /* the default is applied when sending */

	assert_int_equal(parse(EP, "btg-review", "--patient", "p1", "--limit", "20"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BTG_REVIEW);
	assert_false(opts.has_close);
	assert_int_equal(opts.limit, 20);
	assert_int_equal(parse(EP, "btg-review", "--close", HEX_A, "--outcome", "unjustified",
	                       "--text", "no emergency documented"),
	                 CTL_EXIT_OK);
	assert_true(opts.has_close);
	assert_int_equal(opts.close_id[0], 0xaa);
	assert_string_equal(opts.outcome, "unjustified");
	assert_string_equal(opts.text, "no emergency documented");

	assert_int_equal(parse(EP, "params", "set", "--implicit-window-days", "30",
	                       "--btg-hours-max", "96", "--ambulance-hours-max", "12"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PARAMS_SET);
	assert_int_equal(opts.implicit_window_days, 30);
	assert_int_equal(opts.btg_hours_max, 96);
	assert_int_equal(opts.ambulance_hours_max, 12);
}

static void test_correction_log_and_compact_commands_parse_every_flag(void **state)
{
	(void)state;
	assert_int_equal(parse(EP, "amend", "--id", HEX_A, "--body", "BT 130/85", "--request-id",
	                       "r9", "--media-type", "text/markdown"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_AMEND);
	assert_true(opts.has_id);
	assert_string_equal(opts.body_text, "BT 130/85");
	assert_string_equal(opts.media_type, "text/markdown");
	assert_int_equal(parse(EP, "amend", "--id", HEX_A, "--body-file", "-"), CTL_EXIT_OK);
	assert_string_equal(opts.body_file, "-");
	assert_int_equal(parse(EP, "entered-in-error", "--id", HEX_B, "--reason", "wrong patient"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_ENTERED_IN_ERROR);
	assert_string_equal(opts.reason, "wrong patient");
	assert_int_equal(parse(EP, "erase", "--id", HEX_B, "--basis", "hpl 43, decision 17"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_ERASE);
	assert_string_equal(opts.basis, "hpl 43, decision 17");

	/* access-log: --actor after the command is whose accesses; before it, who asks */
	assert_int_equal(parse(EP, "--actor", "aud-1:auditor", "access-log", "--actor", "hpr-9",
	                       "--org", "kommune-x", "--limit", "1000", "--json"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_ACCESS_LOG);
	assert_string_equal(opts.actor, "aud-1");
	assert_string_equal(opts.role, "auditor");
	assert_string_equal(opts.log_actor, "hpr-9");
	assert_string_equal(opts.org, "kommune-x");
	assert_int_equal(opts.limit, 1000);
	assert_int_equal(parse_env("x://y", "p1:patient", "access-log", "--patient", "p1", NULL),
	                 CTL_EXIT_OK);
	assert_string_equal(opts.patient, "p1");
	assert_null(opts.log_actor);
	assert_string_equal(opts.actor, "p1");

	assert_int_equal(parse(EP, "read", "--patient", "p", "--history"), CTL_EXIT_OK);
	assert_true(opts.history);

	/* compact needs no node */
	assert_int_equal(parse("compact", "--data-dir", "/var/lib/carelog/n1", "--json"),
	                 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_COMPACT);
	assert_string_equal(opts.data_dir, "/var/lib/carelog/n1");
}

/* Each line: the words after "carelogctl --endpoint x://y", and a piece of the message. */
static void test_clinical_commands_refuse_bad_usage_naming_the_problem(void **state)
{
	(void)state;
	static const struct {
		const char *words[12];
		const char *message;
	} cases[] = {
	    {{"patient", "set", "--patient", "p"}, "--birth-date"},
	    {{"patient", "set", "--patient", "p", "--birth-date", "2023-02-29"}, "date like"},
	    {{"patient", "set", "--patient", "p", "--birth-date", "01.02.2003"}, "date like"},
	    {{"patient"}, "patient set"},
	    {{"relation", "add"}, "--patient P is required"},
	    {{"relation", "add", "--patient", "p", "--categories", "psychiatry,normal"},
	     "expected psychiatry, substance-use"},
	    {{"relation", "add", "--patient", "p", "--categories", "genetic,genetic"},
	     "given twice"},
	    {{"relation", "add", "--patient", "p", "--categories", "genetic,"}, "commas"},
	    {{"relation", "add", "--patient", "p", "--from", "2026-11-24T10:00:00+01:00"},
	     "UTC like"},
	    {{"relation", "add", "--patient", "p", "--from", "2026-02-01", "--to", "2026-01-01"},
	     "--to must be later"},
	    {{"relation", "end"}, "--id ID is required"},
	    {{"relation", "end", "--id", "42"}, "64 hex digits"},
	    {{"relation", "remove"}, "unknown command \"relation remove\""},
	    {{"relation"}, "add|end"},
	    {{"block", "add", "--patient", "p"}, "exactly one of --org O and --person ID"},
	    {{"block", "add", "--patient", "p", "--org", "o", "--person", "x"}, "exactly one"},
	    {{"block", "add", "--patient", "p", "--org", "o", "--category", "psychiatry", "--entry",
	      HEX_A},
	     "at most one of --category"},
	    {{"block", "add", "--patient", "p", "--org", "o", "--category", "normal"},
	     "expected psychiatry"},
	    {{"block", "lift", "--entry", HEX_A}, "unknown option --entry"},
	    {{"withhold", "--entry", HEX_A}, "--reason TEXT are required"},
	    {{"withhold", "--entry", HEX_A, "--reason", "r", "--from", "parents"},
	     "expected patient or guardians"},
	    {{"withhold", "lift"}, "--id ID is required"},
	    {{"proxy", "grant", "--patient", "p", "--proxy", "m", "--relation", "parent"},
	     "--level read|full"},
	    {{"proxy", "grant", "--patient", "p", "--proxy", "m", "--relation", "uncle", "--level",
	      "read"},
	     "expected parent or chosen"},
	    {{"proxy", "grant", "--patient", "p", "--proxy", "m", "--relation", "chosen", "--level",
	      "write"},
	     "expected read or full"},
	    {{"ambulance", "assign", "--patient", "p", "--crew", "a"}, "--hours H"},
	    {{"ambulance", "assign", "--patient", "p", "--crew", "a", "--hours", "169"},
	     "from 1 to 168"},
	    {{"btg", "--patient", "p", "--reason", "r"}, "--reason-code CODE"},
	    {{"btg", "--patient", "p", "--reason-code", "e", "--reason", "r", "--hours", "0"},
	     "from 1 to 720"},
	    {{"btg-review", "--close", HEX_A}, "--outcome justified|unjustified"},
	    {{"btg-review", "--close", HEX_A, "--outcome", "fine"},
	     "expected justified or unjustified"},
	    {{"btg-review", "--close", HEX_A, "--outcome", "justified", "--patient", "p"},
	     "only list"},
	    {{"btg-review", "--outcome", "justified"}, "go with --close"},
	    {{"btg-review", "--limit", "1001"}, "from 1 to 1000"},
	    {{"params", "set", "--btg-hours-max", "96"}, "are required"},
	    {{"params", "set", "--implicit-window-days", "3651", "--btg-hours-max", "1",
	      "--ambulance-hours-max", "1"},
	     "from 1 to 3650"},
	    {{"amend", "--id", HEX_A}, "exactly one of --body"},
	    {{"amend", "--body", "x"}, "--id ID (the entry to amend)"},
	    {{"entered-in-error", "--id", HEX_A}, "--reason TEXT are required"},
	    {{"erase", "--id", HEX_A}, "--basis TEXT"},
	    {{"erase", "--id", HEX_A, "--basis", "b", "--request-id", ""}, "1-64 bytes"},
	    {{"access-log"}, "exactly one of --patient P and --actor ID"},
	    {{"access-log", "--patient", "p", "--actor", "a"}, "exactly one"},
	    {{"access-log", "--patient", "p", "--org", "o"}, "--org O goes with --actor"},
	    {{"access-log", "--patient", "p", "--limit", "0"}, "from 1 to 1000"},
	    {{"read", "--patient", "p", "--history=yes"}, "takes no value"},
	    {{"get", "--id", HEX_A, "--history"}, "unknown option --history"},
	    {{"status", "--unit", "u", "--unit", "v"}, "given twice"},
	    {{"compact"}, "--data-dir DIR is required"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[16];
		int argc = 0;
		const char *fixed[] = {"carelogctl", "--endpoint", "x://y"};
		for (size_t w = 0; w < 3 + 12; w++) {
			const char *word = w < 3 ? fixed[w] : cases[i].words[w - 3];
			if (word == NULL) {
				break;
			}
			snprintf(words[argc], sizeof(words[argc]), "%s", word);
			argv[argc] = words[argc];
			argc++;
		}
		argv[argc] = NULL;
		int rc = ctl_parse(argc, argv, NULL, &opts, err, sizeof(err));
		if (rc != CTL_EXIT_USAGE || strstr(err, cases[i].message) == NULL) {
			printf("case %zu (%s %s): rc %d, \"%s\"\n", i, cases[i].words[0],
			       cases[i].words[1] != NULL ? cases[i].words[1] : "", rc, err);
		}
		assert_int_equal(rc, CTL_EXIT_USAGE);
		assert_non_null(strstr(err, cases[i].message));
	}
}

static void test_clinical_help_names_flags_roles_and_outputs(void **state)
{
	(void)state;
	static const struct {
		enum ctl_command command;
		const char *needles[4];
	} cases[] = {
	    {CTL_CMD_PATIENT_SET, {"--birth-date D", "Role admin", "--request-id R", "3 pending"}},
	    {CTL_CMD_RELATION_ADD,
	     {"--categories C,...", "default now", "before the command", "3 pending"}},
	    {CTL_CMD_BLOCK_ADD, {"--person ID", "--category C", "whole record", "3 pending"}},
	    {CTL_CMD_WITHHOLD, {"--from W", "withhold lift --id ID", "1-256", "3 pending"}},
	    {CTL_CMD_PROXY_GRANT, {"--relation R", "--level L", "16 or older", "3 pending"}},
	    {CTL_CMD_AMBULANCE_ASSIGN, {"--crew ACTOR", "--hours H", "read only", "3 pending"}},
	    {CTL_CMD_BTG, {"--reason-code CODE", "default 24", "btg-review", "3 pending"}},
	    {CTL_CMD_BTG_REVIEW,
	     {"--close ID", "JSON: {grants:[{id, index, patient", "justified or unjustified",
	      "3 pending"}},
	    {CTL_CMD_PARAMS_SET,
	     {"--implicit-window-days N", "default 90", "Role operator", "3 pending"}},
	    {CTL_CMD_AMEND, {"status amended", "read --history", "--body-file F", "3 pending"}},
	    {CTL_CMD_ENTERED_IN_ERROR,
	     {"entered-in-error", "text/plain", "--reason TEXT", "3 pending"}},
	    {CTL_CMD_ERASE, {"--basis TEXT", "compact", "verify still passes", "3 pending"}},
	    {CTL_CMD_ACCESS_LOG,
	     {"time (UTC), actor, role, organisation, unit, action, decision", "shipped",
	      "rows:[{node_id, seq, time, time_ms", "--org O"}},
	    {CTL_CMD_COMPACT,
	     {"node stopped", "before_bytes, after_bytes", "stop it first", "--data-dir DIR"}},
	    {CTL_CMD_READ,
	     {"--history", "basis, withheld, withheld_reasons", "superseded_by", "erasure"}},
	    {CTL_CMD_NONE,
	     {"--unit U", "--purpose TEXT", "access-log (--patient P", "compact --data-dir DIR"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = usage_text(cases[i].command);
		for (size_t n = 0; n < 4; n++) {
			if (strstr(text, cases[i].needles[n]) == NULL) {
				printf("%s: no \"%s\"\n", ctl_command_name(cases[i].command),
				       cases[i].needles[n]);
			}
			assert_non_null(strstr(text, cases[i].needles[n]));
		}
		free(text);
	}
	/* the groups' own help */
	assert_int_equal(parse("relation", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_RELATION);
	assert_int_equal(parse("block", "-h"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_BLOCK);
	assert_int_equal(parse("proxy", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PROXY);
	assert_int_equal(parse("withhold", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_WITHHOLD);
	assert_int_equal(parse("help", "withhold", "lift"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_WITHHOLD_LIFT);
	assert_int_equal(parse("patient", "--help"), CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_PATIENT_SET);
}

static void test_progress_lines(void **state)
{
	(void)state;
	char line[CTL_PROGRESS_LINE_BYTES];
	assert_string_equal(ctl_progress_line(line, sizeof(line), 4, true, 120000, 130000, true,
					      31000),
			    "learner 4: match 120000/250000 (48%), 31000 entries/s");
	assert_string_equal(ctl_progress_line(line, sizeof(line), 4, true, 0, 250000, false, 0),
			    "learner 4: match 0/250000 (0%)");
	/* 100% only when caught up */
	assert_string_equal(ctl_progress_line(line, sizeof(line), 4, true, 249999, 1, false, 0),
			    "learner 4: match 249999/250000 (99%)");
	assert_string_equal(ctl_progress_line(line, sizeof(line), 4, true, 250000, 0, true, 0),
			    "learner 4: match 250000/250000 (100%), 0 entries/s");
	assert_string_equal(ctl_progress_line(line, sizeof(line), 4, true, 0, 0, false, 0),
			    "learner 4: match 0/0 (100%)");
	assert_string_equal(ctl_progress_line(line, sizeof(line), 7, false, 0, 99, true, 5),
			    "learner 7: no progress reported yet");
	/* a corrupt reply saturates instead of wrapping */
	assert_non_null(strstr(ctl_progress_line(line, sizeof(line), 1, true, UINT64_MAX, 5, false,
						 0),
			       "/18446744073709551615 (99%)"));
	/* a short buffer truncates, never overruns */
	char tiny[12];
	ctl_progress_line(tiny, sizeof(tiny), 4, true, 120000, 130000, true, 31000);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

static void test_cluster_init_collects_members_and_learners(void **state)
{
	(void)state;
	assert_int_equal(parse("cluster", "init", "--out", "g.ini", "--member",
			       "1,st-olavs,tcp://10.0.0.1:7400,keys/1/node.pub", "--member",
			       "2,molde,tcp://10.0.0.2:7400,/k,with,commas.pub", "--learner",
			       "9,gp-office,tcp://10.0.0.9:7400,k9.pub", "--body-max-bytes",
			       "2097152"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.command, CTL_CMD_CLUSTER_INIT);
	assert_int_equal(opts.members_count, 3);
	assert_int_equal(opts.members[0].id, 1);
	assert_string_equal(opts.members[0].org, "st-olavs");
	assert_string_equal(opts.members[0].address, "tcp://10.0.0.1:7400");
	assert_string_equal(opts.members[1].public_key_file, "/k,with,commas.pub");
	assert_true(opts.members[1].voter);
	assert_false(opts.members[2].voter);
	assert_int_equal(opts.body_max_bytes, 2097152);
	assert_int_equal(parse("cluster", "init", "--out", "g"), CTL_EXIT_USAGE);
	assert_int_equal(parse("cluster", "init", "--out", "g", "--member", "1,org,addr"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("cluster", "init", "--out", "g", "--member", "0,o,tcp://a:1,k"),
			 CTL_EXIT_USAGE);
	assert_int_equal(parse("cluster", "init", "--out", "g", "--member", "1,o,tcp://a:1,k",
			       "--learner", "1,o,tcp://b:1,k"),
			 CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "twice"));
}

static void test_bench_defaults_and_bounds(void **state)
{
	(void)state;
	assert_int_equal(parse("--endpoint", "x://y", "bench", "append"), CTL_EXIT_OK);
	assert_int_equal(opts.bench_clients, CTL_BENCH_CLIENTS_DEFAULT);
	assert_int_equal(opts.bench_count, CTL_BENCH_COUNT_DEFAULT);
	assert_int_equal(opts.bench_body_bytes, CTL_BENCH_BODY_BYTES_DEFAULT);
	assert_int_equal(parse("--endpoint", "x://y", "bench", "append", "--clients", "8",
			       "--count", "100", "--body-bytes", "0"),
			 CTL_EXIT_OK);
	assert_int_equal(opts.bench_clients, 8);
	assert_int_equal(opts.bench_count, 100);
	assert_int_equal(opts.bench_body_bytes, 0);
	assert_int_equal(parse("--endpoint", "x://y", "bench", "append", "--clients", "257"),
			 CTL_EXIT_USAGE);
}

/* ---------------------------------------------------------------- JSON and text */

static char *json_of_string(const uint8_t *s, size_t len)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	struct ctl_json j;
	ctl_json_init(&j, f);
	ctl_json_string_n(&j, s, len);
	fclose(f);
	return text;
}

static void test_json_escapes_quotes_backslashes_and_control_characters(void **state)
{
	(void)state;
	const uint8_t in[] = "a\"b\\c\nd\te\x01\x1f\x7f/";
	char *out = json_of_string(in, sizeof(in) - 1);
	assert_string_equal(out, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f\\u007f/\"");
	free(out);
	const uint8_t nul[] = {'x', 0, 'y'};
	out = json_of_string(nul, sizeof(nul));
	assert_string_equal(out, "\"x\\u0000y\"");
	free(out);
}

static void test_json_keeps_valid_utf8_and_replaces_invalid_bytes(void **state)
{
	(void)state;
	const uint8_t ok[] = "bl\xc3\xa5" "b\xc3\xa6r \xe2\x82\xac \xf0\x9f\x98\x80";
	char *out = json_of_string(ok, sizeof(ok) - 1);
	assert_string_equal(out, "\"bl\xc3\xa5" "b\xc3\xa6r \xe2\x82\xac \xf0\x9f\x98\x80\"");
	free(out);
	/* lone continuation, overlong '/', surrogate, truncated sequence */
	const uint8_t bad[] = {0x80, 'a', 0xc0, 0xaf, 'b', 0xed, 0xa0, 0x80, 'c', 0xe2, 0x82};
	out = json_of_string(bad, sizeof(bad));
	assert_string_equal(out, "\"\\ufffda\\ufffd\\ufffdb\\ufffd\\ufffd\\ufffdc\\ufffd\\ufffd\"");
	free(out);
}

static void test_json_writer_places_commas_and_nests(void **state)
{
	(void)state;
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	struct ctl_json j;
	ctl_json_init(&j, f);
	ctl_json_object_begin(&j);
	ctl_json_key(&j, "a");
	ctl_json_u64(&j, 18446744073709551615ull);
	ctl_json_key(&j, "list");
	ctl_json_array_begin(&j);
	ctl_json_bool(&j, true);
	ctl_json_null(&j);
	ctl_json_object_begin(&j);
	ctl_json_key(&j, "k\"ey");
	ctl_json_hex(&j, (const uint8_t *)"\x01\xff", 2);
	ctl_json_object_end(&j);
	ctl_json_array_begin(&j);
	ctl_json_array_end(&j);
	ctl_json_array_end(&j);
	ctl_json_key(&j, "d");
	ctl_json_double(&j, 1.5);
	ctl_json_object_end(&j);
	ctl_json_finish(&j);
	fclose(f);
	assert_string_equal(text, "{\"a\":18446744073709551615,\"list\":[true,null,{\"k\\\"ey\":"
				  "\"01ff\"},[]],\"d\":1.500}\n");
	free(text);
}

static void test_utf8_and_printable_checks(void **state)
{
	(void)state;
	assert_true(ctl_utf8_valid((const uint8_t *)"", 0));
	assert_true(ctl_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
	assert_false(ctl_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* beyond */
	assert_false(ctl_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
	assert_true(ctl_text_printable((const uint8_t *)"line 1\nline\t2\r\n", 15));
	assert_false(ctl_text_printable((const uint8_t *)"bell\a", 5));
	assert_false(ctl_text_printable((const uint8_t *)"x\0y", 3));
}

static void test_base64_matches_rfc4648_vectors(void **state)
{
	(void)state;
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char out[16];
		assert_true(ctl_base64_size(strlen(in[i])) <= sizeof(out));
		ctl_base64_encode(out, (const uint8_t *)in[i], strlen(in[i]));
		assert_string_equal(out, want[i]);
	}
}

static void test_times_format_and_parse_as_utc(void **state)
{
	(void)state;
	char text[CTL_TIME_TEXT_BYTES];
	ctl_time_format(text, 1714564800250ull);
	assert_string_equal(text, "2024-05-01T12:00:00.250Z");
	ctl_time_format(text, 0);
	assert_string_equal(text, "1970-01-01T00:00:00.000Z");
	uint64_t ms = 0;
	assert_int_equal(ctl_time_parse("2024-05-01T12:00:00Z", &ms), CARELOG_OK);
	assert_int_equal(ms, 1714564800000ull);
	assert_int_equal(ctl_time_parse("2024-05-01", &ms), CARELOG_OK);
	assert_int_equal(ms, 1714521600000ull);
	assert_int_equal(ctl_time_parse("2024-05-01T12:00:00.5Z", &ms), CARELOG_OK);
	assert_int_equal(ms, 1714564800500ull);
	assert_int_equal(ctl_time_parse("1700000000123", &ms), CARELOG_OK);
	assert_int_equal(ms, 1700000000123ull);
	assert_int_equal(ctl_time_parse("2024-05-01T12:00:00+02:00", &ms), CARELOG_EINVAL);
	assert_int_equal(ctl_time_parse("2024-13-01", &ms), CARELOG_EINVAL);
	assert_int_equal(ctl_time_parse("yesterday", &ms), CARELOG_EINVAL);
	assert_int_equal(ctl_time_parse("", &ms), CARELOG_EINVAL);
}

/* ---------------------------------------------------------------- the tool against a fake node */

/*
 * The fake node answers status, member and transfer requests like carelogd would:
 *   member/transfer id FAKE_NOT_LEADER: err ENOTLEADER; FAKE_SILENT: no answer
 *   add-learner id FAKE_CATCHING_UP: the following status polls show it absent once, then
 *     without progress once, then matching FAKE_STEP more entries per poll until lag 0
 *   add-learner id FAKE_STUCK: status shows it 100 entries behind for ever
 *   other member requests: index FAKE_INDEX_BASE + action; transfer: leader_id = to
 * Member 9 (a learner) never has progress: its match_index is nil.
 * Clinical access (what the tool sends is recorded in fake.seen):
 *   get of an id starting with FAKE_OLD_ID_BYTE: an entry (patient p1, kind vital-signs,
 *     sensitivity psychiatry, text/markdown); any other id: ENOTFOUND
 *   append: committed at FAKE_APPEND_INDEX; policy: committed at FAKE_POLICY_INDEX, pending for
 *     request id "pending-rid", EDENIED for patient "denied"
 *   read: basis relation, 3 withheld for two reasons, an entry superseded and one erased
 *   access-log: two rows; btg-list: one grant
 */
enum {
	FAKE_NOT_LEADER = 4242,
	FAKE_SILENT = 4343,
	FAKE_CATCHING_UP = 4,
	FAKE_STUCK = 5,
	FAKE_INDEX_BASE = 1000,
	FAKE_LAST_INDEX = 250000,
	FAKE_STEP = 12500,
	FAKE_RECV_POLL_MS = 50, /* how soon the fake notices it should stop */
	CTL_OUTPUT_BYTES_MAX = 64 * 1024,
	RUN_ARGS_MAX = 24,
};

enum {
	FAKE_OLD_ID_BYTE = 0xaa,
	FAKE_APPEND_INDEX = 77,
	FAKE_POLICY_INDEX = 88,
};

/* The last request of each kind, as text (copied on the fake's thread under `lock`). */
struct fake_seen {
	uint8_t op;
	unsigned requests;
	char actor[80], role[40], unit[80], purpose[140];
	/* append */
	char kind[40], patient[80], status[40], sensitivity[40], media_type[80], body[600];
	bool has_corrects;
	uint8_t corrects[PROTO_ID_BYTES];
	uint64_t clinical_time_ms;
	/* policy */
	char policy_kind[40], policy_patient[80], policy_unit[80], policy_actor[80];
	char target_org[80], word[40], category[40], reason_code[40], text[600];
	char birth_date[16], categories[200], request_id[80];
	bool has_ref;
	uint8_t ref[PROTO_ID_BYTES];
	uint64_t from_ms, to_ms;
	uint32_t hours, implicit_window_days, btg_hours_max, ambulance_hours_max;
	/* read, access-log, btg-list */
	bool history;
	char log_patient[80], log_actor[80], log_org[80];
	uint32_t limit;
};

struct fake_node {
	nng_socket socket;
	char url[64];
	pthread_t thread;
	atomic_bool stop;
	atomic_uint member_requests;
	atomic_uint status_polls; /* since the last add-learner */
	atomic_ullong added;      /* the last learner added, 0 = none */
	atomic_bool status_without_audit; /* answer status like a node without an audit queue */
	pthread_mutex_t lock;
	struct fake_seen seen;
};

static struct fake_node fake;

#define FAKE_CHECK(expr)                                                                   \
	do {                                                                               \
		if (!(expr)) {                                                             \
			fprintf(stderr, "fake node: %s failed\n", #expr);                   \
			abort();                                                           \
		}                                                                          \
	} while (0)

static void fake_status(struct proto_reply *rep, struct proto_member members[3])
{
	unsigned k = atomic_fetch_add(&fake.status_polls, 1) + 1;
	uint64_t added = atomic_load(&fake.added);
	uint32_t n = 0;
	members[n++] = (struct proto_member){.id = 1, .role = {"voter", 5},
					     .org = {"helse-vest", 10},
					     .address = {"tcp://10.0.0.1:7401", 19},
					     .has_match = true, .match_index = FAKE_LAST_INDEX};
	members[n++] = (struct proto_member){.id = 9, .role = {"learner", 7},
					     .org = {"helse-nord", 10},
					     .address = {"tcp://10.0.0.9:7401", 19},
					     .lag = FAKE_LAST_INDEX};
	if (added == FAKE_STUCK) {
		members[n++] = (struct proto_member){.id = added, .role = {"learner", 7},
						     .has_match = true,
						     .match_index = FAKE_LAST_INDEX - 100,
						     .lag = 100};
	} else if (added == FAKE_CATCHING_UP && k >= 2) {
		uint64_t match = k == 2 ? 0 : (uint64_t)(k - 2) * FAKE_STEP;
		match = match > FAKE_LAST_INDEX ? FAKE_LAST_INDEX : match;
		members[n++] = (struct proto_member){.id = added, .role = {"learner", 7},
						     .has_match = k > 2, .match_index = match,
						     .lag = FAKE_LAST_INDEX - match};
	}
	rep->u.status = (struct proto_status_reply){
		.node_id = 1, .role = {"leader", 6}, .term = 3, .leader_id = 1,
		.commit_index = FAKE_LAST_INDEX, .applied_index = FAKE_LAST_INDEX,
		.last_index = FAKE_LAST_INDEX, .verified_signatures = 77, .syncs = 12,
		.transport = {.sent = 100, .received = 90, .dropped_auth = 3, .dropped_replay = 2,
			      .dropped_unknown = 1, .handshakes = 4},
		.has_audit = !atomic_load(&fake.status_without_audit),
		.audit = {.queued_rows = 17, .next_seq = 1042, .shipped_seq = 1024, .syncs = 300,
			  .write_failures = 1, .ship_failures = 5},
		.members_count = n, .members = members};
	memset(rep->u.status.chain_head, 0xcd, PROTO_ID_BYTES);
}

static bool str_is(struct proto_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void fake_copy(char *dst, size_t cap, struct proto_str s)
{
	snprintf(dst, cap, "%.*s", (int)s.len, s.ptr != NULL ? s.ptr : "");
}

static void fake_record(const struct proto_request *req)
{
	struct fake_seen *w = &fake.seen;
	pthread_mutex_lock(&fake.lock);
	w->op = req->op;
	w->requests++;
	fake_copy(w->actor, sizeof(w->actor), req->actor.id);
	fake_copy(w->role, sizeof(w->role), req->actor.role);
	fake_copy(w->unit, sizeof(w->unit), req->actor.unit);
	fake_copy(w->purpose, sizeof(w->purpose), req->actor.purpose);
	if (req->op == PROTO_OP_APPEND) {
		const struct proto_append_req *a = &req->u.append;
		fake_copy(w->kind, sizeof(w->kind), a->kind);
		fake_copy(w->patient, sizeof(w->patient), a->patient);
		fake_copy(w->status, sizeof(w->status), a->status);
		fake_copy(w->sensitivity, sizeof(w->sensitivity), a->sensitivity);
		fake_copy(w->media_type, sizeof(w->media_type), a->media_type);
		fake_copy(w->body, sizeof(w->body), a->body);
		w->has_corrects = a->has_corrects;
		memcpy(w->corrects, a->corrects, PROTO_ID_BYTES);
		w->clinical_time_ms = a->clinical_time_ms;
	}
	if (req->op == PROTO_OP_POLICY) {
		const struct proto_policy_req *p = &req->u.policy;
		fake_copy(w->policy_kind, sizeof(w->policy_kind), p->kind);
		fake_copy(w->policy_patient, sizeof(w->policy_patient), p->patient);
		fake_copy(w->policy_unit, sizeof(w->policy_unit), p->unit);
		fake_copy(w->policy_actor, sizeof(w->policy_actor), p->actor);
		fake_copy(w->target_org, sizeof(w->target_org), p->target_org);
		fake_copy(w->word, sizeof(w->word), p->word);
		fake_copy(w->category, sizeof(w->category), p->category);
		fake_copy(w->reason_code, sizeof(w->reason_code), p->reason_code);
		fake_copy(w->text, sizeof(w->text), p->text);
		fake_copy(w->birth_date, sizeof(w->birth_date), p->birth_date);
		fake_copy(w->request_id, sizeof(w->request_id), p->request_id);
		w->categories[0] = '\0';
		for (uint32_t i = 0; i < p->categories_count; i++) {
			size_t n = strlen(w->categories);
			snprintf(w->categories + n, sizeof(w->categories) - n, "%s%.*s",
			         i == 0 ? "" : ",", (int)p->categories[i].len,
			         p->categories[i].ptr);
		}
		w->has_ref = p->has_ref;
		memcpy(w->ref, p->ref, PROTO_ID_BYTES);
		w->from_ms = p->from_ms;
		w->to_ms = p->to_ms;
		w->hours = p->hours;
		w->implicit_window_days = p->implicit_window_days;
		w->btg_hours_max = p->btg_hours_max;
		w->ambulance_hours_max = p->ambulance_hours_max;
	}
	if (req->op == PROTO_OP_READ) {
		w->history = req->u.read.history;
	}
	if (req->op == PROTO_OP_ACCESS_LOG) {
		fake_copy(w->log_patient, sizeof(w->log_patient), req->u.access_log.patient);
		fake_copy(w->log_actor, sizeof(w->log_actor), req->u.access_log.actor_id);
		fake_copy(w->log_org, sizeof(w->log_org), req->u.access_log.actor_org);
		w->limit = req->u.access_log.limit;
	}
	if (req->op == PROTO_OP_BTG_LIST) {
		fake_copy(w->log_patient, sizeof(w->log_patient), req->u.btg_list.patient);
		w->limit = req->u.btg_list.limit;
	}
	pthread_mutex_unlock(&fake.lock);
}

/* A copy of what the fake saw last (the tool has exited: its requests are all answered). */
static struct fake_seen fake_seen(void)
{
	pthread_mutex_lock(&fake.lock);
	struct fake_seen w = fake.seen;
	pthread_mutex_unlock(&fake.lock);
	return w;
}

static struct proto_entry fake_entry(uint64_t index, uint8_t id_byte)
{
	struct proto_entry e = {0};
	e.index = index;
	memset(e.id, id_byte, PROTO_ID_BYTES);
	e.kind = (struct proto_str){"vital-signs", 11};
	e.patient = (struct proto_str){"p1", 2};
	e.author = (struct proto_str){"hpr-1", 5};
	e.role = (struct proto_str){"physician", 9};
	e.org = (struct proto_str){"st-olavs", 8};
	e.unit = (struct proto_str){"psych", 5};
	e.node_id = 1;
	e.time_ms = 1764000000000ull + index;
	e.author_time_ms = 1764000000000ull;
	e.clinical_time_ms = 1700000000000ull;
	e.status = (struct proto_str){"final", 5};
	e.sensitivity = (struct proto_str){"psychiatry", 10};
	e.media_type = (struct proto_str){"text/markdown", 13};
	e.request_id = (struct proto_str){"r", 1};
	e.body = (struct proto_str){"BT 120/80", 9};
	return e;
}

/* The clinical access ops; false when the request gets no answer. */
static bool fake_answer_access(const struct proto_request *req, struct proto_buf *out)
{
	struct proto_reply rep = {.op = req->op};
	struct proto_entry entries[3];
	/* a care-relation policy body as a node signs it: st-olavs, the whole organisation,
	 * from 2026-11-24T13:47:36.141Z, open-ended, no categories */
	static const uint8_t relation_body[] = {
		0x86, 0xa1, 0x76, 0x01, 0xa3, 0x6f, 0x72, 0x67, 0xa8, 0x73, 0x74, 0x2d, 0x6f, 0x6c,
		0x61, 0x76, 0x73, 0xa4, 0x75, 0x6e, 0x69, 0x74, 0xa0, 0xa7, 0x66, 0x72, 0x6f, 0x6d,
		0x5f, 0x6d, 0x73, 0xcf, 0x00, 0x00, 0x01, 0xa2, 0x0d, 0xcf, 0xdd, 0x4d, 0xa5, 0x74,
		0x6f, 0x5f, 0x6d, 0x73, 0x00, 0xaa, 0x63, 0x61, 0x74, 0x65, 0x67, 0x6f, 0x72, 0x69,
		0x65, 0x73, 0x90};
	struct proto_withheld_reason reasons[2] = {
	    {{"blocked by the patient", 22}, 2},
	    {{"shielded psychiatry entry of another unit", 41}, 1}};
	struct proto_access_row rows[2] = {{.node_id = 2,
	                                    .seq = 9,
	                                    .time_ms = 1764000000000ull,
	                                    .actor = {"hpr-9", 5},
	                                    .role = {"nurse", 5},
	                                    .org = {"kommune-x", 9},
	                                    .unit = {"", 0},
	                                    .patient = {"p1", 2},
	                                    .action = {"read", 4},
	                                    .allowed = false,
	                                    .basis = {"none", 4},
	                                    .outcome = {"EDENIED", 7},
	                                    .purpose = {"", 0}},
	                                   {.node_id = 1,
	                                    .seq = 3,
	                                    .time_ms = 1763990000000ull,
	                                    .actor = {"hpr-1", 5},
	                                    .role = {"physician", 9},
	                                    .org = {"st-olavs", 8},
	                                    .unit = {"cardio", 6},
	                                    .patient = {"p1", 2},
	                                    .action = {"get", 3},
	                                    .allowed = true,
	                                    .basis = {"relation", 8},
	                                    .count = 1,
	                                    .has_entry = true,
	                                    .outcome = {"OK", 2},
	                                    .purpose = {"ward round", 10},
	                                    .shipped = true}};
	memset(rows[1].entry, 0x77, PROTO_ID_BYTES);
	struct proto_btg_grant grant = {.index = 12,
	                                .patient = {"p1", 2},
	                                .actor = {"hpr-9", 5},
	                                .role = {"nurse", 5},
	                                .org = {"kommune-x", 9},
	                                .unit = {"legevakt", 8},
	                                .granted_ms = 1764000000000ull,
	                                .expires_ms = 1764086400000ull,
	                                .reason_code = {"emergency", 9},
	                                .reason_text = {"unconscious at home", 19}};
	memset(grant.id, 0x66, PROTO_ID_BYTES);
	switch (req->op) {
	case PROTO_OP_GET:
		if (req->u.get.id[0] != FAKE_OLD_ID_BYTE) {
			FAKE_CHECK(proto_reply_encode_error(req->op, CARELOG_ENOTFOUND,
			                                    "no such entry", out) == CARELOG_OK);
			return true;
		}
		rep.u.get = fake_entry(5, FAKE_OLD_ID_BYTE);
		break;
	case PROTO_OP_APPEND:
		rep.u.append.committed = true;
		rep.u.append.index = FAKE_APPEND_INDEX;
		memset(rep.u.append.id, FAKE_APPEND_INDEX, PROTO_ID_BYTES);
		rep.u.append.request_id = req->u.append.request_id;
		break;
	case PROTO_OP_POLICY:
		if (str_is(req->u.policy.patient, "denied")) {
			FAKE_CHECK(
			    proto_reply_encode_error(req->op, CARELOG_EDENIED,
			                             "role nurse may not write care-relation",
			                             out) == CARELOG_OK);
			return true;
		}
		rep.u.append.request_id = req->u.policy.request_id;
		if (str_is(req->u.policy.request_id, "pending-rid")) {
			break; /* committed = false */
		}
		rep.u.append.committed = true;
		rep.u.append.index = FAKE_POLICY_INDEX;
		memset(rep.u.append.id, FAKE_POLICY_INDEX, PROTO_ID_BYTES);
		break;
	case PROTO_OP_READ:
		entries[0] = fake_entry(4, 0x04);
		entries[0].has_superseded_by = true;
		memset(entries[0].superseded_by, 0x44, PROTO_ID_BYTES);
		entries[1] = fake_entry(6, 0x06);
		entries[1].body = (struct proto_str){"", 0};
		entries[1].body_erased = true;
		entries[1].erased_index = 60;
		entries[1].erased_time_ms = 1764000000500ull;
		entries[1].erased_author = (struct proto_str){"adm-1", 5};
		entries[1].erased_org = (struct proto_str){"st-olavs", 8};
		entries[1].erased_basis = (struct proto_str){"hpl 43: decision 17", 19};
		entries[2] = fake_entry(7, 0x07);
		entries[2].kind = (struct proto_str){"care-relation", 13};
		entries[2].sensitivity = (struct proto_str){"normal", 6};
		entries[2].media_type =
			(struct proto_str){"application/vnd.carelog.policy+msgpack", 38};
		entries[2].body =
			(struct proto_str){(const char *)relation_body, sizeof(relation_body)};
		rep.u.read = (struct proto_read_reply){.applied_index = 9,
		                                       .withheld = 3,
		                                       .entries_count = 3,
		                                       .entries = entries,
		                                       .basis = {"relation", 8},
		                                       .withheld_reasons_count = 2,
		                                       .withheld_reasons = reasons};
		break;
	case PROTO_OP_ACCESS_LOG:
		rep.u.access_log = (struct proto_access_log_reply){
		    .applied_index = 40, .rows_count = 2, .rows = rows};
		break;
	case PROTO_OP_BTG_LIST:
		rep.u.btg_list = (struct proto_btg_list_reply){.grants_count = 1, .grants = &grant};
		break;
	default:
		FAKE_CHECK(proto_reply_encode_error(req->op, CARELOG_EINVAL, "not in this fake",
		                                    out) == CARELOG_OK);
		return true;
	}
	FAKE_CHECK(proto_reply_encode(&rep, out) == CARELOG_OK);
	return true;
}

/* Returns false when the request gets no answer. */
static bool fake_answer(const struct proto_request *req, struct proto_buf *out)
{
	struct proto_reply rep = {.op = req->op};
	struct proto_member members[3];
	uint64_t id = 0;
	fake_record(req);
	switch (req->op) {
	case PROTO_OP_STATUS:
		fake_status(&rep, members);
		break;
	case PROTO_OP_MEMBER:
	case PROTO_OP_TRANSFER:
		atomic_fetch_add(&fake.member_requests, 1);
		id = req->op == PROTO_OP_MEMBER ? req->u.member.id : req->u.transfer.to;
		if (id == FAKE_SILENT) {
			return false;
		}
		if (id == FAKE_NOT_LEADER) {
			FAKE_CHECK(proto_reply_encode_error(req->op, CARELOG_ENOTLEADER,
							    "not the leader; the leader is node 2",
							    out) == CARELOG_OK);
			return true;
		}
		if (req->op == PROTO_OP_TRANSFER) {
			rep.u.transfer.leader_id = id;
			break;
		}
		if (req->u.member.action == PROTO_MEMBER_ADD_LEARNER) {
			atomic_store(&fake.status_polls, 0);
			atomic_store(&fake.added, id);
		}
		rep.u.member.index = FAKE_INDEX_BASE + req->u.member.action;
		break;
	default:
		return fake_answer_access(req, out);
	}
	FAKE_CHECK(proto_reply_encode(&rep, out) == CARELOG_OK);
	return true;
}

static void *fake_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&fake.stop)) {
		nng_msg *msg = NULL;
		int rv = nng_recvmsg(fake.socket, &msg, 0);
		if (rv == NNG_ETIMEDOUT) {
			continue;
		}
		FAKE_CHECK(rv == 0);
		struct proto_request req;
		struct proto_buf out = {0};
		if (proto_request_decode(nng_msg_body(msg), nng_msg_len(msg), &req) != CARELOG_OK) {
			FAKE_CHECK(proto_reply_encode_error(0, CARELOG_EPROTO, "bad request", &out) ==
				   CARELOG_OK);
		} else if (!fake_answer(&req, &out)) {
			nng_msg_free(msg);
			continue;
		}
		nng_msg_clear(msg);
		FAKE_CHECK(nng_msg_append(msg, out.data, out.len) == 0);
		proto_buf_free(&out);
		if (nng_sendmsg(fake.socket, msg, 0) != 0) {
			nng_msg_free(msg);
		}
	}
	return NULL;
}

/* tcp, not ipc: see tests/unit/api/test_client.c (nng 1.5.2's ipc listener, #1518). */
static int fake_start(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.lock, NULL);
	nng_listener listener;
	int port = 0;
	if (nng_rep0_open(&fake.socket) != 0 ||
	    nng_socket_set_ms(fake.socket, NNG_OPT_RECVTIMEO, FAKE_RECV_POLL_MS) != 0 ||
	    nng_listen(fake.socket, "tcp://127.0.0.1:0", &listener, 0) != 0 ||
	    nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) != 0) {
		return -1;
	}
	snprintf(fake.url, sizeof(fake.url), "tcp://127.0.0.1:%d", port);
	return pthread_create(&fake.thread, NULL, fake_run, NULL) == 0 ? 0 : -1;
}

static int fake_stop(void **state)
{
	(void)state;
	atomic_store(&fake.stop, true);
	pthread_join(fake.thread, NULL); /* it sees the flag within FAKE_RECV_POLL_MS */
	nng_close(fake.socket);
	pthread_mutex_destroy(&fake.lock);
	return 0;
}

struct ctl_run {
	int exit_code;
	char out[CTL_OUTPUT_BYTES_MAX];
	char err[CTL_OUTPUT_BYTES_MAX];
};

static struct ctl_run run;

static void read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
}

/* Runs the built carelogctl with --endpoint of the fake and the NULL-terminated words; its
 * exit code and output land in `run`. */
static void run_ctl(const char *first, ...)
{
	const char *tool = getenv("CARELOGCTL");
	assert_non_null(tool); /* set by meson */
	static char run_words[RUN_ARGS_MAX][256]; /* posix_spawn wants char *, not const */
	char *argv[RUN_ARGS_MAX + 1];
	int argc = 0;
	const char *fixed[] = {tool, "--endpoint", fake.url};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		snprintf(run_words[argc], sizeof(run_words[argc]), "%s", fixed[i]);
		argv[argc] = run_words[argc];
		argc++;
	}
	va_list ap;
	va_start(ap, first);
	for (const char *w = first; w != NULL; w = va_arg(ap, const char *)) {
		assert_true(argc < RUN_ARGS_MAX);
		snprintf(run_words[argc], sizeof(run_words[argc]), "%s", w);
		argv[argc] = run_words[argc];
		argc++;
	}
	va_end(ap);
	argv[argc] = NULL;
	char out_path[] = "/tmp/carelogctl-out-XXXXXX";
	char err_path[] = "/tmp/carelogctl-err-XXXXXX";
	int out_fd = mkstemp(out_path);
	int err_fd = mkstemp(err_path);
	assert_true(out_fd >= 0 && err_fd >= 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	extern char **environ;
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out_fd);
	close(err_fd);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	run.exit_code = WEXITSTATUS(status);
	read_file(out_path, run.out, sizeof(run.out));
	read_file(err_path, run.err, sizeof(run.err));
}

static char key_path[64];

/* A node.pub as carelogctl keygen writes it: 64 lower-case hex digits and a newline. */
static void write_public_key(void)
{
	snprintf(key_path, sizeof(key_path), "/tmp/carelogctl-key-%d.pub", (int)getpid());
	FILE *f = fopen(key_path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
	fclose(f);
}

/* The unsigned value after "key": in a one-line JSON object; UINT64_MAX if absent. */
static uint64_t json_u64(const char *json, const char *key)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\":", key);
	const char *p = strstr(json, pattern);
	return p == NULL ? UINT64_MAX : strtoull(p + strlen(pattern), NULL, 10);
}

static void test_add_learner_wait_reports_progress_until_lag_zero(void **state)
{
	(void)state;
	write_public_key();
	run_ctl("member", "add-learner", "--id", "4", "--org", "helse-nord", "--address",
		"tcp://10.0.0.4:7401", "--public-key", key_path, "--wait", "--json", "--timeout",
		"60", NULL);
	unlink(key_path);
	printf("stderr:\n%sstdout:\n%s", run.err, run.out);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"action\":\"add-learner\",\"id\":4,\"index\":1001,"
					"\"caught_up\":true,\"match_index\":250000,\"lag\":0,"
					"\"wait_ms\":"));
	uint64_t wait_ms = json_u64(run.out, "wait_ms");
	/* 22 polls 200 ms apart: over 4 s, so at least three progress lines, the first without
	 * progress, the second without a rate (nothing to compare with), then with rates */
	assert_true(wait_ms >= 4000 && wait_ms < 60000);
	unsigned lines = 0;
	bool rate = false;
	for (const char *l = run.err; *l != '\0';) {
		const char *nl = strchr(l, '\n');
		assert_non_null(nl);
		assert_memory_equal(l, "learner 4: ", 11);
		const char *r = strstr(l, "entries/s");
		rate = rate || (r != NULL && r < nl);
		lines++;
		l = nl + 1;
	}
	assert_non_null(strstr(run.err, "learner 4: no progress reported yet\n"));
	assert_true(rate);
	assert_true(lines >= 3);
	assert_true(lines <= wait_ms / 1000 + 1); /* at most one a second */
}

static void test_add_learner_wait_gives_up_at_the_timeout(void **state)
{
	(void)state;
	write_public_key();
	run_ctl("member", "add-learner", "--id", "5", "--org", "o", "--address", "tcp://h:1",
		"--public-key", key_path, "--wait", "--json", "--timeout", "1", NULL);
	unlink(key_path);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.out, "\"caught_up\":false,\"match_index\":249900,\"lag\":100"));
	assert_non_null(strstr(run.err, "learner 5 is 100 entries behind"));
	/* without --json: the text, and the same exit code */
	write_public_key();
	run_ctl("member", "add-learner", "--id", "5", "--org", "o", "--address", "tcp://h:1",
		"--public-key", key_path, "--wait", "--timeout", "0.5", NULL);
	unlink(key_path);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.out, "learner 5 added (configuration entry at index 1001)"));
}

static void test_member_and_transfer_commands_print_and_exit(void **state)
{
	(void)state;
	run_ctl("member", "promote", "--id", "4", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_string_equal(run.out, "{\"action\":\"promote\",\"id\":4,\"index\":1002}\n");
	run_ctl("member", "remove", "--id", "4", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_string_equal(run.out, "member 4 removed (configuration entry at index 1003)\n");
	run_ctl("transfer-leader", "--to", "3", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_string_equal(run.out, "{\"leader_id\":3}\n");
	/* refused: exit 1 with the node's words */
	run_ctl("member", "promote", "--id", "4242", NULL);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.err, "not the leader; the leader is node 2"));
	assert_string_equal(run.out, "");
	/* no answer after sending a change: pending, exit 3 */
	run_ctl("--timeout", "0.5", "member", "remove", "--id", "4343", NULL);
	assert_int_equal(run.exit_code, 3);
	assert_non_null(strstr(run.err, "check status"));
	assert_null(strstr(run.err, "request id"));
	/* usage errors exit 2 and a missing key file 1, nothing sent for either */
	unsigned before = atomic_load(&fake.member_requests);
	run_ctl("transfer-leader", NULL);
	assert_int_equal(run.exit_code, 2);
	run_ctl("member", "add-learner", "--id", "6", "--org", "o", "--address", "tcp://h:1",
		"--public-key", "/nonexistent/node.pub", NULL);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.err, "/nonexistent/node.pub"));
	assert_int_equal(atomic_load(&fake.member_requests), before);
	/* help exits 0 */
	run_ctl("member", "--help", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "member add-learner --id N"));
}

static void test_status_lists_members_and_counters(void **state)
{
	(void)state;
	atomic_store(&fake.added, 0);
	run_ctl("status", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"node_id\":1,\"role\":\"leader\",\"term\":3,"
					"\"leader_id\":1,\"commit_index\":250000,"
					"\"applied_index\":250000,\"last_index\":250000,"
					"\"chain_head\":\"cdcd"));
	assert_non_null(strstr(run.out, "\"members\":[{\"id\":1,\"role\":\"voter\","
					"\"org\":\"helse-vest\",\"address\":\"tcp://10.0.0.1:7401\","
					"\"match_index\":250000,\"lag\":0},{\"id\":9,"
					"\"role\":\"learner\",\"org\":\"helse-nord\","
					"\"address\":\"tcp://10.0.0.9:7401\",\"match_index\":null,"
					"\"lag\":250000}],"));
	assert_non_null(strstr(run.out, "\"progress_age_ms\":0,\"verified_signatures\":77,"
					"\"syncs\":12,\"transport\":{\"sent\":100,"
					"\"received\":90,\"dropped_auth\":3,\"dropped_replay\":2,"
					"\"dropped_unknown\":1,\"handshakes\":4},"
					"\"audit\":{\"queued_rows\":17,\"next_seq\":1042,"
					"\"shipped_seq\":1024,\"syncs\":300,"
					"\"write_failures\":1,\"ship_failures\":5}}\n"));
	run_ctl("status", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "last index    250000"));
	assert_non_null(strstr(run.out, "MEMBER"));
	assert_non_null(strstr(run.out, "helse-nord"));
	assert_non_null(strstr(run.out, "tcp://10.0.0.9:7401"));
	assert_non_null(strstr(run.out, "verified signatures 77"));
	assert_non_null(strstr(run.out, "auth 3, replay 2, unknown sender 1"));
	assert_non_null(strstr(run.out, "\naudit queue         17 rows queued, shipped through seq 1024 (next "
					"1042), syncs 300, failures write 1 / ship 5\n"));
	/* A node without an audit queue: unknown, not zero. */
	atomic_store(&fake.status_without_audit, true);
	run_ctl("status", "--json", NULL);
	atomic_store(&fake.status_without_audit, false);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "\"handshakes\":4},\"audit\":null}\n"));
	atomic_store(&fake.status_without_audit, true);
	run_ctl("status", NULL);
	atomic_store(&fake.status_without_audit, false);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "audit queue         not reported"));
}

/* ---------------------------------------------------------------- clinical access: the tool */

static void test_amend_and_entered_in_error_fetch_the_old_entry_then_correct_it(void **state)
{
	(void)state;
	run_ctl("--actor", "hpr-1:physician", "--unit", "psych", "amend", "--id", HEX_A, "--body",
	        "BT 130/85", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"state\":\"committed\",\"index\":77,\"id\":\"4d4d"));
	struct fake_seen w = fake_seen();
	assert_int_equal(w.op, PROTO_OP_APPEND);
	assert_string_equal(w.actor, "hpr-1");
	assert_string_equal(w.role, "physician");
	assert_string_equal(w.unit, "psych");
	assert_string_equal(w.patient, "p1");
	assert_string_equal(w.kind, "vital-signs");
	assert_string_equal(w.status, "amended");
	assert_string_equal(w.sensitivity, "psychiatry"); /* a shielded entry stays shielded */
	assert_string_equal(w.media_type, "text/markdown");
	assert_string_equal(w.body, "BT 130/85");
	assert_int_equal(w.clinical_time_ms, 1700000000000ull);
	assert_true(w.has_corrects);
	assert_int_equal(w.corrects[0], FAKE_OLD_ID_BYTE);
	assert_int_equal(w.corrects[31], FAKE_OLD_ID_BYTE);

	run_ctl("entered-in-error", "--id", HEX_A, "--reason", "wrong patient", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "committed  index 77"));
	w = fake_seen();
	assert_string_equal(w.status, "entered-in-error");
	assert_string_equal(w.body, "wrong patient");
	assert_string_equal(w.media_type, "text/plain");
	assert_string_equal(w.kind, "vital-signs");
	assert_true(w.has_corrects);

	/* an entry the actor cannot fetch: nothing appended, exit 1 naming the entry */
	unsigned before = fake_seen().requests;
	run_ctl("amend", "--id", HEX_B, "--body", "x", NULL);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.err, "cannot fetch entry " HEX_B));
	assert_non_null(strstr(run.err, "no such entry"));
	w = fake_seen();
	assert_int_equal(w.requests, before + 1); /* the get only */
	assert_int_equal(w.op, PROTO_OP_GET);
}

static void test_policy_commands_send_their_entry_and_print_like_append(void **state)
{
	(void)state;
	run_ctl("--actor", "hpr-9:nurse", "--purpose", "acute visit", "btg", "--patient", "p1",
	        "--reason-code", "emergency", "--reason", "unconscious", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"state\":\"committed\",\"index\":88,"));
	struct fake_seen w = fake_seen();
	assert_int_equal(w.op, PROTO_OP_POLICY);
	assert_string_equal(w.actor, "hpr-9");
	assert_string_equal(w.purpose, "acute visit");
	assert_string_equal(w.policy_kind, "btg-grant");
	assert_string_equal(w.policy_patient, "p1");
	assert_string_equal(w.reason_code, "emergency");
	assert_string_equal(w.text, "unconscious");
	assert_int_equal(w.hours, CTL_BTG_HOURS_DEFAULT);
	assert_int_equal(strlen(w.request_id), 32);

	run_ctl("--unit", "admin-office", "relation", "add", "--patient", "p1", "--unit", "cardio",
	        "--from", "2026-01-01T00:00:00Z", "--categories", "psychiatry,genetic", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "committed  index 88"));
	w = fake_seen();
	assert_string_equal(w.policy_kind, "care-relation");
	assert_string_equal(w.unit, "admin-office");
	assert_string_equal(w.policy_unit, "cardio");
	assert_string_equal(w.categories, "psychiatry,genetic");
	assert_int_equal(w.from_ms, 1767225600000ull);
	assert_int_equal(w.to_ms, 0);

	run_ctl("ambulance", "assign", "--patient", "p1", "--crew", "amb-3", "--from",
	        "2026-01-01T00:00:00Z", "--hours", "2", NULL);
	assert_int_equal(run.exit_code, 0);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "ambulance-assignment");
	assert_string_equal(w.policy_actor, "amb-3");
	assert_int_equal(w.to_ms - w.from_ms, 2 * 3600 * 1000);

	run_ctl("block", "add", "--patient", "p1", "--org", "kommune-x", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "block");
	assert_string_equal(w.target_org, "kommune-x");
	assert_string_equal(w.word, "all");
	assert_false(w.has_ref);
	run_ctl("block", "add", "--patient", "p1", "--person", "hpr-9", "--entry", HEX_B, NULL);
	w = fake_seen();
	assert_string_equal(w.policy_actor, "hpr-9");
	assert_string_equal(w.word, "entry");
	assert_true(w.has_ref);
	assert_int_equal(w.ref[0], 0xbb);

	run_ctl("withhold", "--entry", HEX_A, "--reason", "would cause harm", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "withhold");
	assert_string_equal(w.word, "patient");
	assert_string_equal(w.text, "would cause harm");
	assert_string_equal(w.policy_patient, ""); /* the node takes it from the entry */

	run_ctl("proxy", "grant", "--patient", "p1", "--proxy", "mother-1", "--relation", "parent",
	        "--level", "read", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "proxy-grant");
	assert_string_equal(w.policy_actor, "mother-1");
	assert_string_equal(w.word, "parent");
	assert_true(w.from_ms > 1764000000000ull); /* now */

	run_ctl("patient", "set", "--patient", "p1", "--birth-date", "2013-05-01", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "patient");
	assert_string_equal(w.birth_date, "2013-05-01");

	run_ctl("params", "set", "--implicit-window-days", "30", "--btg-hours-max", "96",
	        "--ambulance-hours-max", "12", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "policy-params");
	assert_int_equal(w.implicit_window_days, 30);
	assert_int_equal(w.btg_hours_max, 96);
	assert_int_equal(w.ambulance_hours_max, 12);

	const struct {
		const char *command[2];
		const char *kind;
	} refs[] = {
	    {{"relation", "end"}, "care-relation-end"},
	    {{"block", "lift"}, "block-lift"},
	    {{"withhold", "lift"}, "withhold-lift"},
	    {{"proxy", "revoke"}, "proxy-revoke"},
	};
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		run_ctl(refs[i].command[0], refs[i].command[1], "--id", HEX_A, NULL);
		assert_int_equal(run.exit_code, 0);
		w = fake_seen();
		assert_string_equal(w.policy_kind, refs[i].kind);
		assert_true(w.has_ref);
		assert_int_equal(w.ref[5], 0xaa);
	}

	run_ctl("--actor", "aud-1:auditor", "btg-review", "--close", HEX_B, "--outcome",
	        "justified", "--text", "documented emergency", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "btg-review");
	assert_string_equal(w.word, "justified");
	assert_string_equal(w.text, "documented emergency");
	assert_int_equal(w.ref[0], 0xbb);

	run_ctl("erase", "--id", HEX_A, "--basis", "hpl 43, decision 17", NULL);
	w = fake_seen();
	assert_string_equal(w.policy_kind, "erasure");
	assert_string_equal(w.text, "hpl 43, decision 17");
	assert_int_equal(w.ref[0], 0xaa);

	/* refused: exit 1 with the node's reason; pending: exit 3 with the request id */
	run_ctl("btg", "--patient", "denied", "--reason-code", "e", "--reason", "r", NULL);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.err, "carelogctl: btg: "));
	assert_non_null(strstr(run.err, "role nurse may not write care-relation"));
	run_ctl("btg", "--patient", "p1", "--reason-code", "e", "--reason", "r", "--request-id",
	        "pending-rid", "--json", NULL);
	assert_int_equal(run.exit_code, 3);
	assert_string_equal(run.out, "{\"state\":\"pending\",\"index\":null,\"id\":null,"
	                             "\"request_id\":\"pending-rid\",\"duplicate\":false}\n");
	run_ctl("btg", "--patient", "p1", "--reason-code", "e", "--reason", "r", "--request-id",
	        "pending-rid", NULL);
	assert_int_equal(run.exit_code, 3);
	assert_non_null(strstr(run.out, "pending    retry with --request-id pending-rid"));
}

static void test_read_shows_basis_withheld_reasons_supersession_and_erasure(void **state)
{
	(void)state;
	run_ctl("read", "--patient", "p1", "--history", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_true(fake_seen().history);
	assert_non_null(strstr(run.out, "access: relation (a care relation with this patient)\n"));
	assert_non_null(strstr(run.out, "withheld: 3 (blocked by the patient: 2, shielded "
	                                "psychiatry entry of another unit: 1)\n"));
	assert_non_null(strstr(run.out, "    superseded   by 4444"));
	assert_non_null(strstr(run.out, "    body         (erased lawfully at "
	                                "2025-11-24T16:00:00.500Z by adm-1 (st-olavs), erasure "
	                                "entry #60)\n    basis        hpl 43: decision 17\n"));
	/* policy entries in words, not base64 */
	assert_non_null(strstr(run.out, "#7      2025-11-24T16:00:00.007Z  care-relation  final\n"));
	assert_non_null(strstr(run.out, "    policy       care relation with st-olavs (the whole "
					"organisation), from 2026-11-24T13:47:36.141Z until "
					"open-ended\n    covers       no shielded categories\n"));
	run_ctl("read", "--patient", "p1", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_false(fake_seen().history);
	assert_non_null(strstr(run.out, "\"stale\":false,\"basis\":\"relation\",\"withheld\":3,"
	                                "\"withheld_reasons\":[{\"reason\":\"blocked by the "
	                                "patient\",\"count\":2},{\"reason\":\"shielded psychiatry "
	                                "entry of another unit\",\"count\":1}],\"more\":false,"));
	assert_non_null(strstr(run.out, "\"superseded_by\":\"4444"));
	assert_non_null(strstr(run.out, "\"corrects\":null,\"superseded_by\":null,\"erased\":true,"
	                                "\"erasure\":{\"index\":60,\"time\":"
	                                "\"2025-11-24T16:00:00.500Z\",\"time_ms\":1764000000500,"
	                                "\"author\":\"adm-1\",\"org\":\"st-olavs\",\"basis\":\"hpl "
	                                "43: decision 17\"},\"body\":null"));
	assert_non_null(
	    strstr(run.out, "\"erased\":false,\"erasure\":null,\"body\":\"BT 120/80\""));
}

static void test_access_log_prints_a_table_and_json(void **state)
{
	(void)state;
	run_ctl("--actor", "p1:patient", "access-log", "--patient", "p1", NULL);
	assert_int_equal(run.exit_code, 0);
	struct fake_seen w = fake_seen();
	assert_string_equal(w.actor, "p1");
	assert_string_equal(w.log_patient, "p1");
	assert_string_equal(w.log_actor, "");
	assert_int_equal(w.limit, 0);
	assert_non_null(strstr(run.out, "2 accesses to the record of p1"));
	assert_non_null(strstr(run.out, "TIME (UTC)            ACTOR            ROLE           "
	                                "ORG              UNIT           ACTION     DECISION "
	                                "BASIS      COUNT  SHIPPED\n"));
	assert_non_null(strstr(run.out, "2025-11-24T16:00:00   hpr-9            nurse          "
	                                "kommune-x        -              read       denied   "
	                                "none           0  not yet\n"));
	assert_non_null(strstr(run.out, "physician"));
	assert_non_null(strstr(run.out, "purpose: ward round"));
	assert_null(strstr(run.out, "PATIENT"));

	run_ctl("--actor", "aud-1:auditor", "access-log", "--actor", "hpr-9", "--org", "kommune-x",
	        "--limit", "10", NULL);
	assert_int_equal(run.exit_code, 0);
	w = fake_seen();
	assert_string_equal(w.actor, "aud-1");
	assert_string_equal(w.log_actor, "hpr-9");
	assert_string_equal(w.log_org, "kommune-x");
	assert_int_equal(w.limit, 10);
	assert_non_null(strstr(run.out, "2 accesses by hpr-9"));
	assert_non_null(strstr(run.out, "PATIENT"));

	run_ctl("access-log", "--patient", "p1", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"applied_index\":40,\"rows\":[{\"node_id\":2,\"seq\":9,"
	                                "\"time\":\"2025-11-24T16:00:00.000Z\","
	                                "\"time_ms\":1764000000000,\"actor\":\"hpr-9\","
	                                "\"role\":\"nurse\",\"org\":\"kommune-x\",\"unit\":\"\","
	                                "\"patient\":\"p1\",\"action\":\"read\","
	                                "\"decision\":\"denied\",\"allowed\":false,"
	                                "\"basis\":\"none\",\"count\":0,\"withheld\":0,"
	                                "\"entry\":null,\"purpose\":\"\",\"outcome\":\"EDENIED\","
	                                "\"shipped\":false}"));
	assert_non_null(strstr(run.out, "\"entry\":\"7777"));
}

static void test_btg_review_lists_open_grants(void **state)
{
	(void)state;
	run_ctl("--actor", "aud-1:auditor", "btg-review", "--patient", "p1", NULL);
	assert_int_equal(run.exit_code, 0);
	struct fake_seen w = fake_seen();
	assert_int_equal(w.op, PROTO_OP_BTG_LIST);
	assert_string_equal(w.log_patient, "p1");
	assert_non_null(strstr(run.out, "1 break-the-glass grant waiting for review\n"));
	assert_non_null(strstr(run.out, "    by        hpr-9 (nurse)  kommune-x/legevakt\n"));
	assert_non_null(strstr(run.out, "    expires   2025-11-25T16:00:00.000Z\n"));
	assert_non_null(strstr(run.out, "    reason    emergency: unconscious at home\n"));
	run_ctl("btg-review", "--json", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "{\"grants\":[{\"id\":\"6666"));
	assert_non_null(strstr(run.out,
	                       "\"index\":12,\"patient\":\"p1\",\"actor\":\"hpr-9\","
	                       "\"role\":\"nurse\",\"org\":\"kommune-x\","
	                       "\"unit\":\"legevakt\",\"granted\":"
	                       "\"2025-11-24T16:00:00.000Z\",\"granted_ms\":1764000000000,"
	                       "\"expires\":\"2025-11-25T16:00:00.000Z\","
	                       "\"expires_ms\":1764086400000,\"reason_code\":\"emergency\","
	                       "\"reason_text\":\"unconscious at home\"}]}\n"));
}

static void test_compact_of_a_missing_directory_fails_without_a_node(void **state)
{
	(void)state;
	unsigned before = fake_seen().requests;
	run_ctl("compact", "--data-dir", "/nonexistent/carelog-node", NULL);
	assert_int_equal(run.exit_code, 1);
	assert_non_null(strstr(run.err, "carelogctl: compact: "));
	assert_non_null(strstr(run.err, "/nonexistent/carelog-node"));
	assert_int_equal(fake_seen().requests, before);
	run_ctl("compact", NULL);
	assert_int_equal(run.exit_code, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_parses_every_flag),
		cmocka_unit_test(test_global_options_may_follow_the_command),
		cmocka_unit_test(test_environment_supplies_endpoint_and_actor),
		cmocka_unit_test(test_network_command_without_endpoint_is_usage_error),
		cmocka_unit_test(test_unknown_command_and_option_are_usage_errors_naming_them),
		cmocka_unit_test(test_missing_values_duplicates_and_bad_numbers_are_usage_errors),
		cmocka_unit_test(test_append_needs_exactly_one_body_source),
		cmocka_unit_test(test_help_wins_over_missing_arguments),
		cmocka_unit_test(test_every_command_help_shows_flags_output_and_exit_codes),
		cmocka_unit_test(test_member_commands_parse_their_flags),
		cmocka_unit_test(test_member_commands_refuse_bad_usage),
	    cmocka_unit_test(test_unit_and_purpose_come_from_flags_or_the_environment),
	    cmocka_unit_test(test_policy_commands_parse_every_flag),
	    cmocka_unit_test(test_correction_log_and_compact_commands_parse_every_flag),
	    cmocka_unit_test(test_clinical_commands_refuse_bad_usage_naming_the_problem),
	    cmocka_unit_test(test_clinical_help_names_flags_roles_and_outputs),
		cmocka_unit_test(test_progress_lines),
		cmocka_unit_test(test_cluster_init_collects_members_and_learners),
		cmocka_unit_test(test_bench_defaults_and_bounds),
		cmocka_unit_test(test_json_escapes_quotes_backslashes_and_control_characters),
		cmocka_unit_test(test_json_keeps_valid_utf8_and_replaces_invalid_bytes),
		cmocka_unit_test(test_json_writer_places_commas_and_nests),
		cmocka_unit_test(test_utf8_and_printable_checks),
		cmocka_unit_test(test_base64_matches_rfc4648_vectors),
		cmocka_unit_test(test_times_format_and_parse_as_utc),
	};
	int failed = cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
	const struct CMUnitTest tool_tests[] = {
		cmocka_unit_test(test_add_learner_wait_reports_progress_until_lag_zero),
		cmocka_unit_test(test_add_learner_wait_gives_up_at_the_timeout),
		cmocka_unit_test(test_member_and_transfer_commands_print_and_exit),
		cmocka_unit_test(test_status_lists_members_and_counters),
	    cmocka_unit_test(test_amend_and_entered_in_error_fetch_the_old_entry_then_correct_it),
	    cmocka_unit_test(test_policy_commands_send_their_entry_and_print_like_append),
	    cmocka_unit_test(test_read_shows_basis_withheld_reasons_supersession_and_erasure),
	    cmocka_unit_test(test_access_log_prints_a_table_and_json),
	    cmocka_unit_test(test_btg_review_lists_open_grants),
	    cmocka_unit_test(test_compact_of_a_missing_directory_fails_without_a_node),
	};
	return failed + cmocka_run_group_tests_name("ctl against a fake node", tool_tests,
						    fake_start, fake_stop);
}
