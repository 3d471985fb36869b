/* Test-only: after a SIGKILL under syncshim, undoes every write no sync covered (a power loss). */

#include "tests/tools/syncshim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	POWERLOSS_RECORDS_MAX = 4 * 1024 * 1024, /* undo records replayed from one log */
	POWERLOSS_WRITE_BYTES_MAX = 1u << 30,    /* one write's pre-image */
	POWERLOSS_FILES_MAX = 64,                /* distinct files in one log */
};

struct powerloss_record {
	struct syncshim_record head;
	char *path;
	uint8_t *pre;
	bool after_sync; /* no later SYNC of its path: a WRITE is undone, a DURABLE re-applied */
};

static int powerloss_fail(const char *what, const char *detail)
{
	fprintf(stderr, "syncshim-powerloss: %s: %s\n", what, detail);
	return 1;
}

/* Reads one record; false at a clean or torn end (a torn tail was never followed by its write). */
static bool powerloss_read(FILE *f, struct powerloss_record *out)
{
	if (fread(&out->head, sizeof out->head, 1, f) != 1 || out->head.magic != SYNCSHIM_MAGIC ||
	    out->head.path_len == 0 || out->head.path_len >= SYNCSHIM_PATH_BYTES_MAX ||
	    out->head.pre_len > POWERLOSS_WRITE_BYTES_MAX) {
		return false;
	}
	out->path = calloc(1, (size_t)out->head.path_len + 1);
	out->pre = out->head.pre_len > 0 ? malloc((size_t)out->head.pre_len) : NULL;
	if (out->path == NULL || (out->head.pre_len > 0 && out->pre == NULL)) {
		fprintf(stderr, "syncshim-powerloss: out of memory\n");
		exit(1);
	}
	if (fread(out->path, out->head.path_len, 1, f) != 1 ||
	    (out->head.pre_len > 0 && fread(out->pre, (size_t)out->head.pre_len, 1, f) != 1)) {
		free(out->path);
		free(out->pre);
		return false;
	}
	return true;
}

static int powerloss_undo(const struct powerloss_record *r)
{
	int fd = open(r->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		return powerloss_fail(r->path, strerror(errno));
	}
	int rc = 0;
	if (r->head.pre_len > 0 &&
	    pwrite(fd, r->pre, (size_t)r->head.pre_len, (off_t)r->head.off) !=
		    (ssize_t)r->head.pre_len) {
		rc = powerloss_fail(r->path, "restoring pre-image failed");
	}
	struct stat st;
	/* A write that extended the file: the extension never became durable either. */
	if (rc == 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > r->head.old_size &&
	    ftruncate(fd, (off_t)r->head.old_size) != 0) {
		rc = powerloss_fail(r->path, "truncate failed");
	}
	(void)close(fd);
	return rc;
}

/* Re-applies an O_DSYNC write that an undone earlier write may have overlapped. */
static int powerloss_redo(const struct powerloss_record *r)
{
	int fd = open(r->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		return powerloss_fail(r->path, strerror(errno));
	}
	int rc = 0;
	if (pwrite(fd, r->pre, (size_t)r->head.pre_len, (off_t)r->head.off) !=
	    (ssize_t)r->head.pre_len) {
		rc = powerloss_fail(r->path, "re-applying a durable write failed");
	}
	(void)close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: syncshim-powerloss UNDO_LOG\n"
				"Undoes, newest first, every logged write that no later sync of its\n"
				"file covered, re-applies the O_DSYNC writes made since, then empties\n"
				"the log. Run only after the process died.\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (f == NULL) {
		return powerloss_fail(argv[1], strerror(errno));
	}
	struct powerloss_record *records = calloc(POWERLOSS_RECORDS_MAX, sizeof *records);
	if (records == NULL) {
		return powerloss_fail("records", "out of memory");
	}
	size_t count = 0;
	while (count < POWERLOSS_RECORDS_MAX && powerloss_read(f, &records[count])) {
		count++;
	}
	(void)fclose(f);
	/* Walking backwards, a SYNC covers every earlier write of its path. */
	const char *synced[POWERLOSS_FILES_MAX];
	size_t synced_count = 0;
	size_t lost = 0;
	for (size_t i = count; i-- > 0;) {
		bool covered = false;
		for (size_t k = 0; k < synced_count && !covered; k++) {
			covered = strcmp(synced[k], records[i].path) == 0;
		}
		if (records[i].head.type != SYNCSHIM_SYNC) {
			records[i].after_sync = !covered;
		} else if (!covered) {
			if (synced_count == POWERLOSS_FILES_MAX) {
				return powerloss_fail("undo log", "too many files (POWERLOSS_FILES_MAX)");
			}
			synced[synced_count++] = records[i].path;
		}
	}
	int rc = 0;
	for (size_t i = count; i-- > 0;) {
		if (records[i].head.type == SYNCSHIM_WRITE && records[i].after_sync) {
			lost++;
			rc |= powerloss_undo(&records[i]);
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (records[i].head.type == SYNCSHIM_DURABLE && records[i].after_sync) {
			rc |= powerloss_redo(&records[i]);
		}
	}
	for (size_t i = 0; i < count; i++) {
		free(records[i].path);
		free(records[i].pre);
	}
	free(records);
	if (rc == 0 && truncate(argv[1], 0) != 0) {
		rc = powerloss_fail(argv[1], strerror(errno));
	}
	printf("records=%zu writes_undone=%zu\n", count, lost);
	return rc;
}
