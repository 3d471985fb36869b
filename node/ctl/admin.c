/* carelogctl keygen, cluster init and compact: commands that work on local files and need no node.
 */
#include "node/ctl/commands.h"

#include "carelog/errors.h"
#include "common/crypto.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "node/journal/membership.h"
#include "storage/storage.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CTL_PATH_BYTES_MAX = 4096 };

int ctl_run_keygen(const struct ctl_options *o)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return ctl_fail(o, CARELOG_ECRYPTO, "cannot initialise libsodium");
	}
	char key_file[CTL_PATH_BYTES_MAX];
	char pub_file[CTL_PATH_BYTES_MAX];
	int n1 = snprintf(key_file, sizeof(key_file), "%s/node.key", o->out);
	int n2 = snprintf(pub_file, sizeof(pub_file), "%s/node.pub", o->out);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(key_file) || (size_t)n2 >= sizeof(pub_file)) {
		return ctl_fail(o, CARELOG_EINVAL, "directory name too long");
	}
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	int rc = cl_keyfile_generate(o->out, public_key);
	if (rc == CARELOG_EEXIST) {
		return ctl_fail(o, rc, "%s (a key is never overwritten)", key_file);
	}
	if (rc != CARELOG_OK) {
		return ctl_fail(o, rc, "cannot write %s", key_file);
	}
	char hex[2 * CL_SIGN_PUBLIC_BYTES + 1];
	cl_hex_encode(hex, public_key, sizeof(public_key));
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "public_key");
		ctl_json_string(&j, hex);
		ctl_json_key(&j, "key_file");
		ctl_json_string(&j, key_file);
		ctl_json_key(&j, "public_key_file");
		ctl_json_string(&j, pub_file);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("public key       %s\n", hex);
		printf("secret key file  %s (mode 0600: keep it on this node only)\n", key_file);
		printf("public key file  %s\n", pub_file);
	}
	return CTL_EXIT_OK;
}

static int ctl_member_compare(const void *a, const void *b)
{
	const struct membership_member *x = a;
	const struct membership_member *y = b;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

int ctl_run_cluster_init(const struct ctl_options *o)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return ctl_fail(o, CARELOG_ECRYPTO, "cannot initialise libsodium");
	}
	struct stat st;
	if (stat(o->out, &st) == 0) {
		/* membership_genesis_write refuses too; saying it first avoids reading keys */
		return ctl_fail(o, CARELOG_EEXIST, "%s (a genesis file is never overwritten)",
				o->out);
	}
	struct membership *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return ctl_fail(o, CARELOG_ENOMEM, "%s", "");
	}
	int exit_code = CTL_EXIT_OK;
	m->has_cluster_id = true;
	cl_random_bytes(m->cluster_id, sizeof(m->cluster_id));
	m->has_params = true;
	m->params.body_max_bytes =
		o->body_max_bytes != 0 ? o->body_max_bytes : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	CL_ASSERT(o->members_count <= MEMBERSHIP_MEMBERS_MAX);
	for (uint32_t i = 0; i < o->members_count; i++) {
		const struct ctl_member_arg *a = &o->members[i];
		struct membership_member *mm = &m->members[i];
		mm->id = a->id;
		snprintf(mm->org, sizeof(mm->org), "%s", a->org);
		snprintf(mm->address, sizeof(mm->address), "%s", a->address);
		mm->voter = a->voter;
		char err[256];
		int rc = cl_keyfile_load_public(a->public_key_file, mm->public_key, err, sizeof(err));
		if (rc != CARELOG_OK) {
			exit_code = ctl_fail(o, rc, "member %llu: %s", (unsigned long long)a->id, err);
			goto out;
		}
	}
	m->count = o->members_count;
	qsort(m->members, m->count, sizeof(m->members[0]), ctl_member_compare);
	const char *reason = NULL;
	if (membership_check(m, &reason) != CARELOG_OK) {
		exit_code = ctl_fail(o, CARELOG_EINVAL, "%s", reason != NULL ? reason : "invalid");
		goto out;
	}
	int rc = membership_genesis_write(o->out, m);
	if (rc == CARELOG_EINVAL) {
		exit_code = ctl_fail(o, rc,
				     "a genesis needs 1-8 members and at least one voter (--member); "
				     "add more later as learners");
		goto out;
	}
	if (rc != CARELOG_OK) {
		exit_code = ctl_fail(o, rc, "cannot write %s", o->out);
		goto out;
	}
	char cluster_hex[2 * MEMBERSHIP_CLUSTER_ID_BYTES + 1];
	cl_hex_encode(cluster_hex, m->cluster_id, sizeof(m->cluster_id));
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "cluster_id");
		ctl_json_string(&j, cluster_hex);
		ctl_json_key(&j, "file");
		ctl_json_string(&j, o->out);
		ctl_json_key(&j, "body_max_bytes");
		ctl_json_u64(&j, m->params.body_max_bytes);
		ctl_json_key(&j, "members");
		ctl_json_array_begin(&j);
		for (uint32_t i = 0; i < m->count; i++) {
			const struct membership_member *mm = &m->members[i];
			ctl_json_object_begin(&j);
			ctl_json_key(&j, "id");
			ctl_json_u64(&j, mm->id);
			ctl_json_key(&j, "org");
			ctl_json_string(&j, mm->org);
			ctl_json_key(&j, "address");
			ctl_json_string(&j, mm->address);
			ctl_json_key(&j, "voter");
			ctl_json_bool(&j, mm->voter);
			ctl_json_key(&j, "public_key");
			ctl_json_hex(&j, mm->public_key, sizeof(mm->public_key));
			ctl_json_object_end(&j);
		}
		ctl_json_array_end(&j);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("cluster_id  %s\n", cluster_hex);
		printf("genesis     %s (copy it to every node)\n", o->out);
		printf("%-6s %-8s %-24s %s\n", "ID", "ROLE", "ORG", "ADDRESS");
		for (uint32_t i = 0; i < m->count; i++) {
			const struct membership_member *mm = &m->members[i];
			printf("%-6llu %-8s %-24s %s\n", (unsigned long long)mm->id,
			       mm->voter ? "voter" : "learner", mm->org, mm->address);
		}
	}
out:
	free(m);
	return exit_code;
}

int ctl_run_compact(const struct ctl_options *o)
{
	uint64_t before = 0;
	uint64_t after = 0;
	cl_log_set_level(CL_LOG_WARN); /* the sizes are printed below; storage's problems still show */
	int rc = storage_compact_dir(o->data_dir, &before, &after);
	if (rc == CARELOG_EBUSY) {
		/* not the queue-full text of carelog_strerror: here a process holds the store */
		fprintf(stderr, "carelogctl: compact: %s is in use (is the node still running?): stop "
				"it first\n",
			o->data_dir);
		return CTL_EXIT_FAILED;
	}
	if (rc != CARELOG_OK) {
		return ctl_fail(o, rc, "cannot compact %s/data.mdb", o->data_dir);
	}
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "data_dir");
		ctl_json_string(&j, o->data_dir);
		ctl_json_key(&j, "before_bytes");
		ctl_json_u64(&j, before);
		ctl_json_key(&j, "after_bytes");
		ctl_json_u64(&j, after);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("compacted %s/data.mdb\n", o->data_dir);
		printf("before  %llu bytes\n", (unsigned long long)before);
		printf("after   %llu bytes\n", (unsigned long long)after);
	}
	return CTL_EXIT_OK;
}
