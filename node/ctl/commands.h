/* carelogctl's commands, split by what they touch: local files (admin.c), a node (main.c, bench.c). */
#ifndef CARELOG_NODE_CTL_COMMANDS_H
#define CARELOG_NODE_CTL_COMMANDS_H

#include "carelog/carelog.h"
#include "common/assert.h"
#include "node/ctl/ctl.h"

/* Prints "carelogctl: COMMAND: <strerror(rc)>[: detail]" on stderr and returns the exit code
 * for rc (CTL_EXIT_PENDING for CARELOG_EPENDING, else CTL_EXIT_FAILED). */
int ctl_fail(const struct ctl_options *o, int rc, const char *detail_fmt, ...) CL_PRINTF(3, 4);

int ctl_run_keygen(const struct ctl_options *o);
int ctl_run_cluster_init(const struct ctl_options *o);
int ctl_run_bench_append(const struct ctl_options *o, struct carelog_client *client);

#endif
