/* Structured key=value logging to stderr. Never log patient content or patient ids. */
#ifndef CARELOG_COMMON_LOG_H
#define CARELOG_COMMON_LOG_H

#include "common/assert.h"

#include <stdint.h>

enum cl_log_level {
	CL_LOG_DEBUG = 0,
	CL_LOG_INFO = 1,
	CL_LOG_WARN = 2,
	CL_LOG_ERROR = 3,
	CL_LOG_FATAL = 4,
};

/* Lines below `level` are dropped. Default CL_LOG_INFO. Thread-safe. */
void cl_log_set_level(enum cl_log_level level);

/* Parses "debug|info|warn|error"; returns CARELOG_EINVAL for anything else. */
int cl_log_level_parse(const char *text, enum cl_log_level *out_level);

/* Adds node=<id> to every line from now on (0 = omit). */
void cl_log_set_node(uint64_t node_id);

/*
 * Writes one line: `ts=... level=... [node=N] event=<event> <fields>` where `fields` is a
 * printf format producing further key=value pairs (may be NULL). The line is written with one
 * write(2) call, so lines from different threads never interleave. Lines longer than 1 KiB are
 * truncated. Callers pass ids, indexes, hashes and error names only: never patient ids, names
 * or entry bodies.
 */
void cl_log(enum cl_log_level level, const char *event, const char *fields, ...) CL_PRINTF(3, 4);

#define cl_log_debug(event, ...) cl_log(CL_LOG_DEBUG, event, __VA_ARGS__)
#define cl_log_info(event, ...) cl_log(CL_LOG_INFO, event, __VA_ARGS__)
#define cl_log_warn(event, ...) cl_log(CL_LOG_WARN, event, __VA_ARGS__)
#define cl_log_error(event, ...) cl_log(CL_LOG_ERROR, event, __VA_ARGS__)

#endif
