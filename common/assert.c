/* The one place a failed assertion is reported. */
#include "common/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void cl_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "level=fatal event=assert.failed expr=\"%s\" at=%s:%d func=%s\n", expr, file,
		line, func);
	fflush(stderr);
	abort();
}
