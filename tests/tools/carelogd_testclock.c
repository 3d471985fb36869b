/* carelogd_testclock: test-only carelogd; its clock is wall time + an offset read from a file. */
/*
 * The same main as node/daemon/carelogd.c plus one option, --clock-file PATH: the node clock
 * (node_set_clock: leader time stamps, and the "now" every access decision is judged at) is the
 * wall clock plus a signed offset in milliseconds, the first integer in PATH. The file is read
 * again whenever it changes (inode, size or mtime: write a new file and rename it over the old
 * one); a missing file means offset 0; a file that does not parse keeps the last offset (and is
 * logged once). Every node of a test region names the same file, so a test moves the region's
 * time with one rename (tests/scenario). This binary is built for tests only and never
 * installed: the production carelogd has no such switch.
 */
#include "carelog/errors.h"
#include "common/log.h"
#include "node/daemon/config.h"
#include "node/daemon/loop.h"
#include "node/daemon/node.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef CARELOG_VERSION
#define CARELOG_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, ERR_BYTES = 1024, CLOCK_TEXT_BYTES = 64 };

/* The clock file as last seen; guarded by mu (the loop and the server threads both ask). */
struct test_clock {
	const char *path;
	pthread_mutex_t mu;
	bool seen; /* the file existed at the last look */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int64_t offset_ms;
	bool bad_logged;
};

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: carelogd_testclock --config FILE [--clock-file PATH]\n"
	        "       carelogd_testclock --help | --version\n"
	        "A TEST build of carelogd: runs a carelog node in the foreground;\n"
	        "SIGTERM or SIGINT stops it cleanly. --clock-file PATH: the node clock\n"
	        "is the wall clock plus the offset in milliseconds written in PATH\n"
	        "(re-read when it changes; a missing file = 0).\n"
	        "Logs key=value lines to stderr.\n\n%s",
	        node_config_help);
}

static int fail(const char *event, const char *msg)
{
	fprintf(stderr, "carelogd_testclock: %s\n", msg);
	cl_log(CL_LOG_FATAL, event, "msg=\"%s\"", msg);
	return EXIT_FAILED;
}

/* Parses "[-+]digits" with optional surrounding white space into *out. */
static bool parse_offset(const char *text, int64_t *out)
{
	errno = 0;
	char *end = NULL;
	long long v = strtoll(text, &end, 10);
	if (end == text || errno != 0) {
		return false;
	}
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') {
		end++;
	}
	if (*end != '\0') {
		return false;
	}
	*out = (int64_t)v;
	return true;
}

/* Re-reads the file when it changed since the last look. Called with mu held. */
static void refresh(struct test_clock *c)
{
	struct stat st;
	if (stat(c->path, &st) != 0) {
		c->seen = false;
		c->offset_ms = 0;
		return;
	}
	if (c->seen && st.st_dev == c->dev && st.st_ino == c->ino && st.st_size == c->size &&
	    st.st_mtim.tv_sec == c->mtime.tv_sec && st.st_mtim.tv_nsec == c->mtime.tv_nsec) {
		return;
	}
	FILE *f = fopen(c->path, "r");
	if (f == NULL) {
		return; /* replaced between stat and open: the next look reads it */
	}
	char text[CLOCK_TEXT_BYTES];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	int64_t offset = 0;
	if (!parse_offset(text, &offset)) {
		if (!c->bad_logged) {
			cl_log_warn("testclock.bad_file",
			            "path=%s msg=\"not an integer offset in ms; "
			            "keeping offset_ms=%" PRId64 "\"",
			            c->path, c->offset_ms);
			c->bad_logged = true;
		}
		return; /* not remembered as seen: read again next time */
	}
	c->seen = true;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->size = st.st_size;
	c->mtime = st.st_mtim;
	c->bad_logged = false;
	if (offset != c->offset_ms) {
		cl_log_info("testclock.offset", "offset_ms=%" PRId64, offset);
	}
	c->offset_ms = offset;
}

static uint64_t test_clock_ms(void *ctx)
{
	struct test_clock *c = ctx;
	uint64_t wall = node_clock_wall_ms(NULL);
	pthread_mutex_lock(&c->mu);
	refresh(c);
	int64_t offset = c->offset_ms;
	pthread_mutex_unlock(&c->mu);
	if (offset < 0 && (uint64_t)(-offset) > wall) {
		return 0;
	}
	return offset < 0 ? wall - (uint64_t)(-offset) : wall + (uint64_t)offset;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	const char *clock_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("carelogd_testclock %s (test build)\n", CARELOG_VERSION);
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
		if (strcmp(argv[i], "--clock-file") == 0 && i + 1 < argc && clock_path == NULL) {
			clock_path = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--clock-file=", 13) == 0 && clock_path == NULL) {
			clock_path = argv[i] + 13;
			continue;
		}
		fprintf(stderr, "carelogd_testclock: unexpected argument '%s'\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (config_path == NULL) {
		fprintf(stderr, "carelogd_testclock: --config FILE is required\n");
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

	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct test_clock clock = {.path = clock_path};
	pthread_mutex_init(&clock.mu, NULL);

	struct node *n = NULL;
	if (node_open(&config, &n, err, sizeof(err)) != CARELOG_OK) {
		return fail("node.start_refused", err);
	}
	if (clock_path != NULL) {
		node_set_clock(n, test_clock_ms, &clock);
		cl_log_warn("testclock.enabled",
		            "path=%s msg=\"test build: the node clock is the "
		            "wall clock plus the offset in this file\"",
		            clock_path);
	}
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
	pthread_mutex_destroy(&clock.mu);
	cl_log_info("node.stopped", "applied_index=%llu", (unsigned long long)applied);
	return EXIT_OK;
}
