/* Assertions that stay on in release builds: crash rather than corrupt a journal. */
#ifndef CARELOG_COMMON_ASSERT_H
#define CARELOG_COMMON_ASSERT_H

/* Reports the failed expression and aborts. Never returns. */
_Noreturn void cl_assert_fail(const char *expr, const char *file, int line, const char *func);

/*
 * CL_ASSERT is for invariants only: never for input, I/O results or memory exhaustion (those
 * return errors). It is evaluated in every build type.
 */
#define CL_ASSERT(expr)                                                                \
	do {                                                                               \
		if (__builtin_expect(!(expr), 0)) {                                            \
			cl_assert_fail(#expr, __FILE__, __LINE__, __func__);                       \
		}                                                                              \
	} while (0)

#define CL_UNREACHABLE() cl_assert_fail("unreachable", __FILE__, __LINE__, __func__)

#define CL_STATIC_ASSERT(expr, msg) _Static_assert(expr, msg)

#define CL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define CL_MUST_CHECK __attribute__((warn_unused_result))
#define CL_PRINTF(fmt_index, args_index) __attribute__((format(printf, fmt_index, args_index)))
#else
#define CL_MUST_CHECK
#define CL_PRINTF(fmt_index, args_index)
#endif

#endif
