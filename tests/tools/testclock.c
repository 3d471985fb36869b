/* Test-only clock seam for carelogd (see testclock.h). */
#include "tests/tools/testclock.h"

#include "common/log.h"
#include "node/daemon/loop.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CLOCK_TEXT_BYTES = 64 };

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

void testclock_install(struct node *n, const char *path)
{
	static struct test_clock clock = {.mu = PTHREAD_MUTEX_INITIALIZER};
	clock.path = path;
	node_set_clock(n, test_clock_ms, &clock);
}
