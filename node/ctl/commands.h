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
/* compact --data-dir (offline, admin.c). */
int ctl_run_compact(const struct ctl_options *o);
/* The clinical access commands (access.c): policy writes, btg-review, access-log, amend,
 * entered-in-error, erase. */
int ctl_run_access(const struct ctl_options *o, struct carelog_client *client);

/* Shared by the commands (main.c). */
void ctl_hex(char *out, const uint8_t *bytes, size_t len);
/* The body of --body-file ("-" = stdin), at most 64 MiB; on failure prints and returns the
 * exit code. */
int ctl_read_body(const struct ctl_options *o, uint8_t **out, size_t *out_len);
/* Prints an append's (or policy entry's) outcome as text or JSON. */
void ctl_append_print(const struct ctl_options *o, int rc, const struct carelog_append_result *r);
/* The exit code of an append-like call: prints the outcome (committed or pending) or the
 * failure. */
int ctl_append_finish(const struct ctl_options *o, int rc, const struct carelog_append_result *r);
/* "time": UTC text or null, and "time_ms". */
void ctl_json_time(struct ctl_json *j, const char *key, uint64_t ms);
/* "relation (a care relation with this patient)", ...; unknown bases as given. */
const char *ctl_basis_words(const char *basis);
/* " (blocked by the patient: 2, ...)" for a read's withheld reasons; "" without reasons. */
void ctl_withheld_line(char *out, size_t out_len, const struct carelog_read_result *r);

#endif
