/* Unit tests for carelogd's INI configuration. */
#include "carelog/errors.h"
#include "node/daemon/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define GOOD_NODE                                                                                  \
	"[node]\n"                                                                                 \
	"id = 3\n"                                                                                 \
	"cluster_id = 00112233445566778899aabbccddeeff\n"                                          \
	"data_dir = /var/lib/carelog\n"                                                            \
	"key_file = /etc/carelog/node.key\n"

static int parse(const char *text, struct node_config *c, char *err, size_t err_len)
{
	return node_config_parse_string(text, "test.ini", c, err, err_len);
}

static void test_config_minimal_file_gets_documented_defaults(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE, &c, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(c.node_id, 3);
	assert_int_equal(c.cluster_id[0], 0x00);
	assert_int_equal(c.cluster_id[15], 0xff);
	assert_string_equal(c.data_dir, "/var/lib/carelog");
	assert_string_equal(c.genesis_file, "");
	assert_string_equal(c.actor_default, "operator");
	assert_string_equal(c.actor_default_role, "operator");
	assert_string_equal(c.client_endpoint, "ipc:///var/lib/carelog/client.sock");
	assert_string_equal(c.audit_dir, "/var/lib/carelog/audit");
	assert_int_equal(c.audit_map_size_bytes, 1ULL << 30);
	assert_int_equal(c.audit_ship_interval_ms, 200);
	assert_int_equal(c.audit_queue_rows_max, 4096);
	assert_int_equal(c.client_requests_max, 256);
	assert_int_equal(c.client_timeout_ms, 5000);
	assert_int_equal(c.client_stale_lag_max, 1000);
	assert_int_equal(c.storage_map_size_bytes, 16ULL << 30);
	assert_int_equal(c.batch_entries_max, 1024);
	assert_int_equal(c.batch_bytes_max, 8ULL << 20);
	assert_int_equal(c.log_level, CL_LOG_INFO);
}

static void test_config_every_key_is_read(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	const char *text = GOOD_NODE "genesis_file = /etc/carelog/genesis.ini\n"
	                             "log_level = debug\n"
	                             "actor_default = hpr-9\n"
	                             "actor_default_role = nurse\n"
	                             "unit = cardiology ward 3 ; a comment\n"
	                             "[client]\n"
	                             "endpoint = ipc:///run/carelog/n7.sock\n"
	                             "requests_max = 16\n"
	                             "request_bytes_max = 2MiB\n"
	                             "timeout_ms = 250\n"
	                             "stale_lag_max = 7\n"
	                             "[storage]\n"
	                             "map_size_bytes = 64GiB\n"
	                             "[batch]\n"
	                             "entries_max = 10\n"
	                             "bytes_max = 1MB\n"
	                             "[audit]\n"
	                             "dir = /srv/audit\n"
	                             "map_size_bytes = 2GiB\n"
	                             "ship_interval_ms = 50\n"
	                             "queue_rows_max = 100\n";
	assert_int_equal(parse(text, &c, err, sizeof(err)), CARELOG_OK);
	assert_string_equal(c.genesis_file, "/etc/carelog/genesis.ini");
	assert_int_equal(c.log_level, CL_LOG_DEBUG);
	assert_string_equal(c.actor_default, "hpr-9");
	assert_string_equal(c.unit, "cardiology ward 3");
	assert_string_equal(c.client_endpoint, "ipc:///run/carelog/n7.sock");
	assert_int_equal(c.client_requests_max, 16);
	assert_int_equal(c.client_request_bytes_max, 2u << 20);
	assert_int_equal(c.client_timeout_ms, 250);
	assert_int_equal(c.client_stale_lag_max, 7);
	assert_int_equal(c.storage_map_size_bytes, 64ULL << 30);
	assert_int_equal(c.batch_entries_max, 10);
	assert_int_equal(c.batch_bytes_max, 1000000);
	assert_string_equal(c.actor_default_role, "nurse");
	assert_string_equal(c.audit_dir, "/srv/audit");
	assert_int_equal(c.audit_map_size_bytes, 2ULL << 30);
	assert_int_equal(c.audit_ship_interval_ms, 50);
	assert_int_equal(c.audit_queue_rows_max, 100);
}

static void test_config_default_role_system_and_bad_audit_keys_are_refused(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE "actor_default_role = system\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 6: actor_default_role: 'system' is the node's own role"));
	assert_int_equal(parse(GOOD_NODE "actor_default_role =\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "actor_default_role: must not be empty"));
	assert_int_equal(parse(GOOD_NODE "[audit]\nqueue_rows_max = 0\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 7: queue_rows_max: must be in [1, 1048576]"));
	assert_int_equal(parse(GOOD_NODE "[audit]\nship_interval_ms = 0\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "ship_interval_ms: must be in [1, 60000]"));
	assert_int_equal(parse(GOOD_NODE "[audit]\nmap_size_bytes = 1KiB\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "map_size_bytes: must be at least 1048576 bytes"));
	assert_int_equal(parse(GOOD_NODE "[audit]\nrows = 1\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "unknown key in [audit]"));
}

static void test_config_unknown_key_is_refused_naming_key_and_line(void **state)
{
	(void)state;
	struct node_config c;
	memset(&c, 0x5a, sizeof(c));
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE "colour = blue\n", &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "config test.ini line 6: colour"));
	assert_non_null(strstr(err, "unknown key"));
	assert_int_equal(c.node_id, 0x5a5a5a5a5a5a5a5aULL); /* untouched on failure */
}

static void test_config_unknown_section_is_refused(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE "[gossip]\nseed = x\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 7: seed"));
	assert_non_null(strstr(err, "unknown section [gossip]"));
}

static void test_config_replication_and_peer_overrides_parse(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE "[replication]\nlisten = tcp://0.0.0.0:7401\ntick_ms = 50\n"
	                                 "election_ticks = 20\nappend_bytes_max = 1MiB\n"
	                                 "[peers]\n2 = tcp://10.0.0.2:9000\n3 = tcp://10.0.0.3:9000\n",
	                       &c, err, sizeof(err)),
	                 CARELOG_OK);
	assert_string_equal(c.replication_listen, "tcp://0.0.0.0:7401");
	assert_int_equal(c.replication_tick_ms, 50);
	assert_int_equal(c.replication_election_ticks, 20);
	assert_int_equal(c.replication_heartbeat_ticks, 1);
	assert_int_equal(c.replication_append_bytes_max, 1u << 20);
	assert_int_equal(c.peers_count, 2);
	assert_int_equal(c.peers[1].id, 3);
	assert_string_equal(c.peers[1].url, "tcp://10.0.0.3:9000");
	/* Refusals name the key. */
	assert_int_equal(parse(GOOD_NODE "[peers]\nseed = tcp://x:1\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "a [peers] key is a node id"));
	assert_int_equal(parse(GOOD_NODE "[peers]\n2 = tcp://x:1\n2 = tcp://y:1\n", &c, err,
	                       sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "node listed twice"));
	assert_int_equal(parse(GOOD_NODE "[replication]\nheartbeat_ticks = 10\n", &c, err,
	                       sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "heartbeat_ticks must be below election_ticks"));
}

static void test_config_missing_required_key_is_named(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	const char *text = "[node]\nid = 3\ncluster_id = 00112233445566778899aabbccddeeff\n"
	                   "data_dir = /d\n";
	assert_int_equal(parse(text, &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_string_equal(err, "config test.ini: [node] key_file is required");
	assert_int_equal(parse("[node]\n", &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "[node] id is required"));
}

static void test_config_bad_numbers_are_refused_with_the_value(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	/* No remote clients: the node trusts the actor a client names. */
	assert_int_equal(parse(GOOD_NODE "[client]\nendpoint = tcp://0.0.0.0:7500\n", &c, err,
	                       sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "only ipc://PATH endpoints are served"));
	assert_int_equal(parse(GOOD_NODE "[client]\nendpoint = ipc://\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_int_equal(parse(GOOD_NODE "[client]\nrequests_max = 12x\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 7: requests_max: '12x' is not a whole number"));
	assert_int_equal(parse(GOOD_NODE "[client]\nrequests_max = -1\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_int_equal(parse(GOOD_NODE "[client]\nrequests_max = 0\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "must be in [1, 65536]"));
	/* Above the protocol's ceiling nng would drop requests silently instead of refusing. */
	assert_int_equal(
	    parse(GOOD_NODE "[client]\nrequest_bytes_max = 81MiB\n", &c, err, sizeof(err)),
	    CARELOG_ECONFIG);
	assert_non_null(strstr(err, "request_bytes_max: must be at most 83886080 bytes"));
	assert_int_equal(parse(GOOD_NODE "[client]\ntimeout_ms = 99999999999999999999999\n", &c,
	                       err, sizeof(err)),
	                 CARELOG_ECONFIG);
	const char *bad_id = "[node]\nid = 0\ncluster_id = 00112233445566778899aabbccddeeff\n";
	assert_int_equal(parse(bad_id, &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 2: id"));
	const char *bad_cluster = "[node]\nid = 1\ncluster_id = 0011\n";
	assert_int_equal(parse(bad_cluster, &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 3: cluster_id: '0011' is not 32 hex digits"));
	assert_int_equal(parse(GOOD_NODE "log_level = loud\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "log_level: 'loud'"));
}

static void test_config_size_suffixes(void **state)
{
	(void)state;
	uint64_t v = 0;
	assert_int_equal(node_config_parse_size("1048576", &v), CARELOG_OK);
	assert_int_equal(v, 1048576);
	assert_int_equal(node_config_parse_size("64GiB", &v), CARELOG_OK);
	assert_int_equal(v, 64ULL << 30);
	assert_int_equal(node_config_parse_size("64G", &v), CARELOG_OK);
	assert_int_equal(v, 64ULL << 30);
	assert_int_equal(node_config_parse_size("8 MiB", &v), CARELOG_OK);
	assert_int_equal(v, 8ULL << 20);
	assert_int_equal(node_config_parse_size("2TB", &v), CARELOG_OK);
	assert_int_equal(v, 2000000000000ULL);
	assert_int_equal(node_config_parse_size("512B", &v), CARELOG_OK);
	assert_int_equal(v, 512);
	assert_int_equal(node_config_parse_size("3KiB", &v), CARELOG_OK);
	assert_int_equal(v, 3072);
	v = 7;
	assert_int_equal(node_config_parse_size("64 gigs", &v), CARELOG_EINVAL);
	assert_int_equal(node_config_parse_size("GiB", &v), CARELOG_EINVAL);
	assert_int_equal(node_config_parse_size("-1GiB", &v), CARELOG_EINVAL);
	assert_int_equal(node_config_parse_size("99999999999TiB", &v), CARELOG_EINVAL);
	assert_int_equal(v, 7);
	struct node_config c;
	char err[512] = "";
	assert_int_equal(
	    parse(GOOD_NODE "[storage]\nmap_size_bytes = lots\n", &c, err, sizeof(err)),
	    CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 7: map_size_bytes: 'lots' is not a size"));
}

static void test_config_request_bytes_derived_from_body_max(void **state)
{
	(void)state;
	struct node_config c;
	node_config_defaults(&c);
	assert_int_equal(node_config_request_bytes_max(&c, 1024), 1024 * 1024);
	assert_int_equal(node_config_request_bytes_max(&c, 4u << 20), (4u << 20) + 65536);
	c.client_request_bytes_max = 5000;
	assert_int_equal(node_config_request_bytes_max(&c, 4u << 20), 5000);
}

static void test_config_file_errors_name_the_file(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(node_config_load("/nonexistent/carelogd.ini", &c, err, sizeof(err)),
	                 CARELOG_ENOTFOUND);
	assert_non_null(strstr(err, "config /nonexistent/carelogd.ini: cannot open"));
	char path[] = "/tmp/carelogd-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(GOOD_NODE "[batch]\nentries_max = many\n", f);
	fclose(f);
	assert_int_equal(node_config_load(path, &c, err, sizeof(err)), CARELOG_ECONFIG);
	char want[128];
	snprintf(want, sizeof(want), "config %s line 7: entries_max", path);
	assert_non_null(strstr(err, want));
	remove(path);
}

static void test_config_syntax_error_and_long_line_are_refused(void **state)
{
	(void)state;
	struct node_config c;
	char err[512] = "";
	assert_int_equal(parse(GOOD_NODE "this is not ini\n", &c, err, sizeof(err)),
	                 CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 6"));
	char text[1024];
	char long_path[400];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	snprintf(text, sizeof(text), GOOD_NODE "genesis_file = /%s\n", long_path);
	assert_int_equal(parse(text, &c, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "line 6"));
	assert_non_null(strstr(err, "longer than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_minimal_file_gets_documented_defaults),
	    cmocka_unit_test(test_config_every_key_is_read),
	    cmocka_unit_test(test_config_default_role_system_and_bad_audit_keys_are_refused),
	    cmocka_unit_test(test_config_unknown_key_is_refused_naming_key_and_line),
	    cmocka_unit_test(test_config_unknown_section_is_refused),
	    cmocka_unit_test(test_config_replication_and_peer_overrides_parse),
	    cmocka_unit_test(test_config_missing_required_key_is_named),
	    cmocka_unit_test(test_config_bad_numbers_are_refused_with_the_value),
	    cmocka_unit_test(test_config_size_suffixes),
	    cmocka_unit_test(test_config_request_bytes_derived_from_body_max),
	    cmocka_unit_test(test_config_file_errors_name_the_file),
	    cmocka_unit_test(test_config_syntax_error_and_long_line_are_refused),
	};
	return cmocka_run_group_tests_name("daemon_config", tests, NULL, NULL);
}
