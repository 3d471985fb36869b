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
	return ctl_parse(argc, argv, env_endpoint, env_actor, &opts, err, sizeof(err));
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
		if (c != CTL_CMD_KEYGEN && c != CTL_CMD_CLUSTER_INIT) {
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

struct fake_node {
	nng_socket socket;
	char url[64];
	pthread_t thread;
	atomic_bool stop;
	atomic_uint member_requests;
	atomic_uint status_polls; /* since the last add-learner */
	atomic_ullong added;      /* the last learner added, 0 = none */
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
		.members_count = n, .members = members};
	memset(rep->u.status.chain_head, 0xcd, PROTO_ID_BYTES);
}

/* Returns false when the request gets no answer. */
static bool fake_answer(const struct proto_request *req, struct proto_buf *out)
{
	struct proto_reply rep = {.op = req->op};
	struct proto_member members[3];
	uint64_t id = 0;
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
		FAKE_CHECK(proto_reply_encode_error(req->op, CARELOG_EINVAL, "not in this fake",
						    out) == CARELOG_OK);
		return true;
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
					"\"dropped_unknown\":1,\"handshakes\":4}}\n"));
	run_ctl("status", NULL);
	assert_int_equal(run.exit_code, 0);
	assert_non_null(strstr(run.out, "last index    250000"));
	assert_non_null(strstr(run.out, "MEMBER"));
	assert_non_null(strstr(run.out, "helse-nord"));
	assert_non_null(strstr(run.out, "tcp://10.0.0.9:7401"));
	assert_non_null(strstr(run.out, "verified signatures 77"));
	assert_non_null(strstr(run.out, "auth 3, replay 2, unknown sender 1"));
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
	};
	return failed + cmocka_run_group_tests_name("ctl against a fake node", tool_tests,
						    fake_start, fake_stop);
}
