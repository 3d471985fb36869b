/* Test-only clock seam for carelogd: wall time + an offset in ms read from a file. */
#ifndef CARELOG_TESTS_TOOLS_TESTCLOCK_H
#define CARELOG_TESTS_TOOLS_TESTCLOCK_H

/*
 * Compiled into the test build of carelogd only (tests/tools/meson.build builds
 * node/daemon/carelogd.c with -DCARELOG_TEST_CLOCK as carelogd_testclock): its option
 * --clock-file PATH makes the node clock (node_set_clock: leader time stamps, and the "now"
 * every access decision is judged at) the wall clock plus a signed offset in milliseconds, the
 * first integer in PATH. The file is read again whenever it changes (inode, size or mtime:
 * write a new file and rename it over the old one); a missing file means offset 0; a file that
 * does not parse keeps the last offset (logged once). Every node of a test region names the
 * same file, so a test moves the region's time with one rename (tests/scenario). The production
 * carelogd has no such option.
 */

#include "node/daemon/node.h"

/* Installs the clock on `n` (before node_start). The path is borrowed for the process's life. */
void testclock_install(struct node *n, const char *path);

#endif
