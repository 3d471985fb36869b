/* Unit tests for carelogd's startup checks: each refusal names what is wrong. */
#include "carelog/errors.h"
#include "common/keyfile.h"
#include "fixture.h"
#include "node/daemon/node.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

struct test_ctx {
	struct fixture f;
	char key_dir[300];
	char genesis[300];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	struct node_config config;
};

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));
	fixture_init(&t->f);
	snprintf(t->key_dir, sizeof(t->key_dir), "%s/keys", t->f.dir);
	assert_int_equal(cl_keyfile_generate(t->key_dir, t->public_key), CARELOG_OK);
	memcpy(t->f.membership.members[0].public_key, t->public_key, CL_SIGN_PUBLIC_BYTES);
	snprintf(t->genesis, sizeof(t->genesis), "%s/genesis.ini", t->f.dir);
	assert_int_equal(membership_genesis_write(t->genesis, &t->f.membership), CARELOG_OK);
	struct node_config *c = &t->config;
	node_config_defaults(c);
	c->node_id = FIXTURE_NODE_ID;
	memcpy(c->cluster_id, t->f.membership.cluster_id, sizeof(c->cluster_id));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s/data", t->f.dir);
	snprintf(c->key_file, sizeof(c->key_file), "%s/node.key", t->key_dir);
	snprintf(c->genesis_file, sizeof(c->genesis_file), "%s", t->genesis);
	int n = snprintf(c->client_endpoint, sizeof(c->client_endpoint), "ipc://%s/client.sock",
	                 c->data_dir);
	assert_true(n > 0 && (size_t)n < sizeof(c->client_endpoint));
	c->storage_map_size_bytes = 64ULL << 20;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;
	fixture_cleanup(&t->f);
	free(t);
	return 0;
}

static void test_node_fresh_start_writes_genesis_and_restart_keeps_it(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(node_applied_index(n), 1);
	node_close(n);
	t->config.genesis_file[0] = '\0'; /* only needed on first start */
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(node_applied_index(n), 1);
	node_close(n);
}

static void test_node_missing_key_file_is_refused_naming_it(void **state)
{
	struct test_ctx *t = *state;
	snprintf(t->config.key_file, sizeof(t->config.key_file), "%s/absent.key", t->f.dir);
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_ENOTFOUND);
	assert_non_null(strstr(err, t->config.key_file));
	assert_null(n);
}

static void test_node_key_file_of_wrong_size_is_refused_naming_it(void **state)
{
	struct test_ctx *t = *state;
	snprintf(t->config.key_file, sizeof(t->config.key_file), "%s/short.key", t->f.dir);
	int fd = open(t->config.key_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abcd\n", 5), 5);
	close(fd);
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EINVAL);
	assert_non_null(strstr(err, t->config.key_file));
}

static void test_node_key_not_pinned_in_genesis_is_refused(void **state)
{
	struct test_ctx *t = *state;
	char other_dir[320];
	uint8_t other_pub[CL_SIGN_PUBLIC_BYTES];
	snprintf(other_dir, sizeof(other_dir), "%s/other", t->f.dir);
	assert_int_equal(cl_keyfile_generate(other_dir, other_pub), CARELOG_OK);
	snprintf(t->config.key_file, sizeof(t->config.key_file), "%s/node.key", other_dir);
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EMISMATCH);
	char want[1200];
	snprintf(want, sizeof(want), "key in %s is not the key pinned for node 1",
	         t->config.key_file);
	assert_non_null(strstr(err, want));
}

static void test_node_key_not_pinned_in_applied_configuration_is_refused(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	node_close(n);
	char other_dir[320];
	uint8_t other_pub[CL_SIGN_PUBLIC_BYTES];
	snprintf(other_dir, sizeof(other_dir), "%s/other", t->f.dir);
	assert_int_equal(cl_keyfile_generate(other_dir, other_pub), CARELOG_OK);
	snprintf(t->config.key_file, sizeof(t->config.key_file), "%s/node.key", other_dir);
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EMISMATCH);
	char want[1200];
	snprintf(want, sizeof(want),
	         "key in %s is not the key pinned for node 1 in the cluster configuration",
	         t->config.key_file);
	assert_string_equal(err, want);
}

static void test_node_data_dir_of_another_cluster_or_node_is_refused(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	node_close(n);
	t->config.cluster_id[0] ^= 0xff;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EMISMATCH);
	char want[1400];
	snprintf(want, sizeof(want),
	         "data dir %s belongs to cluster a0a1a2a3a4a5a6a7a8a9aaabacadaeaf node 1, config "
	         "says cluster 5fa1a2a3a4a5a6a7a8a9aaabacadaeaf node 1",
	         t->config.data_dir);
	assert_string_equal(err, want);
	t->config.cluster_id[0] ^= 0xff;
	t->config.node_id = 2;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EMISMATCH);
	assert_non_null(strstr(err, "config says cluster a0a1a2a3a4a5a6a7a8a9aaabacadaeaf node 2"));
}

static void test_node_fresh_dir_needs_a_matching_genesis(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	t->config.genesis_file[0] = '\0';
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "genesis_file is not set"));
	snprintf(t->config.genesis_file, sizeof(t->config.genesis_file), "%s", t->genesis);
	t->config.cluster_id[15] ^= 0x01;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_EMISMATCH);
	assert_non_null(strstr(err, "is for cluster a0a1a2a3a4a5a6a7a8a9aaabacadaeaf, config says "
	                            "cluster a0a1a2a3a4a5a6a7a8a9aaabacadaeae"));
	t->config.cluster_id[15] ^= 0x01;
}

/* A node the genesis does not list joins empty (caught up from the leader later); it must say
 * where it listens, since the address it will be added with is not in its log yet. */
static void test_node_not_in_genesis_starts_empty_as_a_joining_node(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	t->config.node_id = 9;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "node 9 is not in the cluster configuration yet: set "
	                            "[replication] listen"));
	assert_null(n);
	snprintf(t->config.replication_listen, sizeof(t->config.replication_listen),
	         "tcp://127.0.0.1:1");
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(node_applied_index(n), 0);
	node_close(n);
	/* Without the genesis it has nobody to trust yet: refused with the remedy. */
	t->config.genesis_file[0] = '\0';
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_ECONFIG);
	assert_non_null(strstr(err, "genesis_file is not set"));
}

/* The audit queue opens with the node (default <data_dir>/audit); a queue that cannot open
 * refuses the start naming its dir: no request is ever served unaudited. */
static void test_node_start_opens_the_audit_queue_or_refuses_naming_it(void **state)
{
	struct test_ctx *t = *state;
	char err[512] = "";
	struct node *n = NULL;
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(node_start(n, err, sizeof(err)), CARELOG_OK);
	char audit_dir[1100];
	snprintf(audit_dir, sizeof(audit_dir), "%s/audit", t->config.data_dir);
	struct stat st;
	assert_int_equal(stat(audit_dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	node_close(n);

	char blocker[400];
	snprintf(blocker, sizeof(blocker), "%s/not-a-dir", t->f.dir);
	int fd = open(blocker, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(t->config.audit_dir, sizeof(t->config.audit_dir), "%s/audit", blocker);
	t->config.genesis_file[0] = '\0';
	assert_int_equal(node_open(&t->config, &n, err, sizeof(err)), CARELOG_OK);
	assert_int_not_equal(node_start(n, err, sizeof(err)), CARELOG_OK);
	char want[1200];
	snprintf(want, sizeof(want), "audit dir %s", t->config.audit_dir);
	assert_non_null(strstr(err, want));
	node_close(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_node_fresh_start_writes_genesis_and_restart_keeps_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_not_in_genesis_starts_empty_as_a_joining_node,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_missing_key_file_is_refused_naming_it, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_node_key_file_of_wrong_size_is_refused_naming_it,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_key_not_pinned_in_genesis_is_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_node_key_not_pinned_in_applied_configuration_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_node_data_dir_of_another_cluster_or_node_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_fresh_dir_needs_a_matching_genesis, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_node_start_opens_the_audit_queue_or_refuses_naming_it, setup, teardown),
	};
	return cmocka_run_group_tests_name("daemon_node", tests, NULL, NULL);
}
