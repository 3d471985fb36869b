/* Structured key=value logging to stderr, one write(2) per line. */
#include "common/log.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { LOG_LINE_BYTES_MAX = 1024 };

static atomic_int log_level = CL_LOG_INFO;
static _Atomic uint64_t log_node_id = 0;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void cl_log_set_level(enum cl_log_level level)
{
	atomic_store(&log_level, (int)level);
}

int cl_log_level_parse(const char *text, enum cl_log_level *out_level)
{
	for (size_t i = 0; i < CL_ARRAY_LEN(level_names) - 1; i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out_level = (enum cl_log_level)i;
			return CARELOG_OK;
		}
	}
	return CARELOG_EINVAL;
}

void cl_log_set_node(uint64_t node_id)
{
	atomic_store(&log_node_id, node_id);
}

void cl_log(enum cl_log_level level, const char *event, const char *fields, ...)
{
	if ((int)level < atomic_load(&log_level)) {
		return;
	}
	char line[LOG_LINE_BYTES_MAX];
	struct timespec now;
	struct tm tm_utc;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm_utc);

	size_t used = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm_utc);
	int n = snprintf(line + used, sizeof(line) - used, ".%03ldZ level=%s", now.tv_nsec / 1000000,
			 level_names[level]);
	used += n > 0 ? (size_t)n : 0;
	uint64_t node = atomic_load(&log_node_id);
	if (node != 0 && used < sizeof(line)) {
		n = snprintf(line + used, sizeof(line) - used, " node=%llu", (unsigned long long)node);
		used += n > 0 ? (size_t)n : 0;
	}
	if (used < sizeof(line)) {
		n = snprintf(line + used, sizeof(line) - used, " event=%s", event);
		used += n > 0 ? (size_t)n : 0;
	}
	if (fields != NULL && used + 1 < sizeof(line)) {
		line[used++] = ' ';
		va_list ap;
		va_start(ap, fields);
		n = vsnprintf(line + used, sizeof(line) - used, fields, ap);
		va_end(ap);
		used += n > 0 ? (size_t)n : 0;
	}
	if (used >= sizeof(line)) {
		used = sizeof(line) - 1;
	}
	line[used++] = '\n';
	ssize_t written = write(STDERR_FILENO, line, used);
	(void)written; /* nowhere left to report a failed log write */
}
