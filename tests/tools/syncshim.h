/* The undo-log record format shared by the sync shim (syncshim.c) and its power-loss tool. */
#ifndef CARELOG_TESTS_SYNCSHIM_H
#define CARELOG_TESTS_SYNCSHIM_H

/*
 * Test-only. The shim lets every write reach the page cache at once (so the running process
 * sees exactly what a real kernel would show it) but first appends the bytes it is about to
 * overwrite to an undo log. A sync of a file appends a SYNC record for it; after that its earlier
 * undo records are void. syncshim-powerloss replays, newest first, every undo record not covered
 * by a later SYNC of its file: the files end up holding exactly what a power loss at the moment
 * of the SIGKILL would have left (every byte written but not synced is gone), then re-applies
 * the DURABLE records (O_DSYNC writes, durable on their own) made after the file's last SYNC.
 *
 * Record: struct syncshim_record, then path_len bytes of path, then pre_len bytes of pre-image.
 * Native byte order: the log never leaves the machine that wrote it.
 */

#include <stdint.h>

enum {
	SYNCSHIM_MAGIC = 0x53594e43, /* "SYNC" */
	SYNCSHIM_WRITE = 1,          /* bytes [off, off + write_len) are about to be written */
	SYNCSHIM_SYNC = 2,           /* every earlier write of path is durable */
	SYNCSHIM_DURABLE = 3,        /* an O_DSYNC write: its bytes (in place of a pre-image) are durable */
	SYNCSHIM_PATH_BYTES_MAX = 4096,
};

struct syncshim_record {
	uint32_t magic;
	uint32_t type;
	uint64_t off;
	uint64_t write_len;
	uint64_t old_size; /* file size before the write */
	uint64_t pre_len;  /* bytes after the path: the overwritten part (DURABLE: the written bytes) */
	uint32_t path_len;
	uint32_t reserved;
};

#endif
