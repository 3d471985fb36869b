/* Unit tests for carelogctl's core: argument parsing, the JSON writer, text and time helpers. */
#include "carelog/errors.h"
#include "node/ctl/ctl.h"

#include <setjmp.h>
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
	assert_non_null(strstr(tool, "not available yet"));
	assert_non_null(strstr(tool, "member add-learner|promote|remove"));
	assert_non_null(strstr(tool, "transfer-leader --to ID"));
	free(tool);
}

static void test_membership_commands_say_when_they_arrive(void **state)
{
	(void)state;
	const char *const planned[] = {"member", "transfer-leader"};
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(parse("--endpoint", "x://y", planned[i]), CTL_EXIT_USAGE);
		assert_non_null(strstr(err, planned[i]));
		assert_non_null(strstr(err, "membership changes arrive with multi-node regions "
					    "(replication)"));
	}
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
		cmocka_unit_test(test_membership_commands_say_when_they_arrive),
		cmocka_unit_test(test_cluster_init_collects_members_and_learners),
		cmocka_unit_test(test_bench_defaults_and_bounds),
		cmocka_unit_test(test_json_escapes_quotes_backslashes_and_control_characters),
		cmocka_unit_test(test_json_keeps_valid_utf8_and_replaces_invalid_bytes),
		cmocka_unit_test(test_json_writer_places_commas_and_nests),
		cmocka_unit_test(test_utf8_and_printable_checks),
		cmocka_unit_test(test_base64_matches_rfc4648_vectors),
		cmocka_unit_test(test_times_format_and_parse_as_utc),
	};
	return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
