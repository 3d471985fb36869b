/* carelogctl's commands by what they touch: files (admin.c), a node (main.c, bench.c, member.c). */
#ifndef CARELOG_NODE_CTL_COMMANDS_H
#define CARELOG_NODE_CTL_COMMANDS_H

#include "carelog/carelog.h"
#include "common/assert.h"
#include "node/ctl/ctl.h"

/* Prints "carelogctl: COMMAND: <strerror(rc)>[: detail]" on stderr and returns the exit code
 * for rc (CTL_EXIT_PENDING for CARELOG_EPENDING, else CTL_EXIT_FAILED). */
int ctl_fail(const struct ctl_options *o, int rc, const char *detail_fmt, ...) CL_PRINTF(3, 4);

/* ctl_fail with carelog_last_message() as the detail. */
int ctl_fail_call(const struct ctl_options *o, int rc);

int ctl_run_keygen(const struct ctl_options *o);
int ctl_run_cluster_init(const struct ctl_options *o);
int ctl_run_bench_append(const struct ctl_options *o, struct carelog_client *client);
/* member add-learner (with --wait), promote, remove; transfer-leader. */
int ctl_run_member(const struct ctl_options *o, struct carelog_client *client);
int ctl_run_transfer_leader(const struct ctl_options *o, struct carelog_client *client);

#endif
