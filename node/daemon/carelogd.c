/* carelogd: run one carelog node in the foreground until SIGTERM or SIGINT. */
#include "carelog/errors.h"
#include "common/log.h"
#include "node/daemon/config.h"
#include "node/daemon/node.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#ifdef CARELOG_TEST_CLOCK
/* The test build (tests/tools/meson.build: carelogd_testclock) adds --clock-file PATH. */
#include "tests/tools/testclock.h"
#define CARELOGD_NAME "carelogd_testclock"
#define CARELOGD_TEST_USAGE "       [--clock-file PATH]  TEST BUILD: clock = wall + offset ms in PATH\n"
#else
#define CARELOGD_NAME "carelogd"
#define CARELOGD_TEST_USAGE ""
#endif

#ifndef CARELOG_VERSION
#define CARELOG_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, ERR_BYTES = 1024 };

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: " CARELOGD_NAME " --config FILE\n" CARELOGD_TEST_USAGE
	        "       " CARELOGD_NAME " --help | --version\n"
	        "Runs a carelog node in the foreground; SIGTERM or SIGINT stops it cleanly.\n"
	        "Logs key=value lines to stderr.\n\n%s",
	        node_config_help);
}

/* Refuses to start: the message goes to stderr both plainly and as a log line. */
static int fail(const char *event, const char *msg)
{
	fprintf(stderr, CARELOGD_NAME ": %s\n", msg);
	cl_log(CL_LOG_FATAL, event, "msg=\"%s\"", msg);
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
#ifdef CARELOG_TEST_CLOCK
	const char *clock_path = NULL;
#endif
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf(CARELOGD_NAME " %s\n", CARELOG_VERSION);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && config_path == NULL) {
			config_path = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0 && config_path == NULL) {
			config_path = argv[i] + 9;
			continue;
		}
#ifdef CARELOG_TEST_CLOCK
		if (strcmp(argv[i], "--clock-file") == 0 && i + 1 < argc && clock_path == NULL) {
			clock_path = argv[++i];
			continue;
		}
#endif
		fprintf(stderr, CARELOGD_NAME ": unexpected argument '%s'\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (config_path == NULL) {
		fprintf(stderr, CARELOGD_NAME ": --config FILE is required\n");
		usage(stderr);
		return EXIT_USAGE;
	}

	char err[ERR_BYTES] = "";
	struct node_config config;
	if (node_config_load(config_path, &config, err, sizeof(err)) != CARELOG_OK) {
		return fail("node.config_refused", err);
	}
	cl_log_set_level(config.log_level);
	cl_log_set_node(config.node_id);

	/* Signals are taken by sigwait on this thread only: every thread started from here on
	 * (loop, nng) inherits the block, and no work happens in a handler. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct node *n = NULL;
	if (node_open(&config, &n, err, sizeof(err)) != CARELOG_OK) {
		return fail("node.start_refused", err);
	}
#ifdef CARELOG_TEST_CLOCK
	if (clock_path != NULL) {
		testclock_install(n, clock_path);
	}
#endif
	if (node_start(n, err, sizeof(err)) != CARELOG_OK) {
		node_close(n);
		return fail("node.start_failed", err);
	}
	cl_log_info("node.ready", "endpoint=%s applied_index=%llu", node_endpoint(n),
	            (unsigned long long)node_applied_index(n));

	int sig = 0;
	while (sigwait(&stop_signals, &sig) != 0) {
		/* interrupted: wait again */
	}
	cl_log_info("node.stopping", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
	node_stop(n);
	uint64_t applied = node_applied_index(n);
	node_close(n);
	cl_log_info("node.stopped", "applied_index=%llu", (unsigned long long)applied);
	return EXIT_OK;
}
