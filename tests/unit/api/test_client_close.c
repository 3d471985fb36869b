/* Unit tests for carelog_client_close's bound, through client.c's socket-close fault seam. */
#include "carelog/carelog.h"

#include <nng/nng.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

/* client.c's seam (compiled in with -DCLIENT_FAULT_SEAMS) and its bound, 2000 ms. */
extern int (*client_socket_close_fn)(nng_socket socket);

enum {
	CLOSE_WAIT_MS_MAX = 2000,   /* = CLIENT_CLOSE_WAIT_MS_MAX */
	CLOSE_RETURN_MS_MAX = 15000, /* generous for ASan on a loaded machine; a hang is forever */
};

/* A socket close that blocks, as nng 1.5.2's does in its close race, until released. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool entered;
	bool released;
	bool closed;
} blocker = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false};

static int blocking_close(nng_socket socket)
{
	pthread_mutex_lock(&blocker.lock);
	blocker.entered = true;
	pthread_cond_broadcast(&blocker.cv);
	while (!blocker.released) {
		pthread_cond_wait(&blocker.cv, &blocker.lock);
	}
	pthread_mutex_unlock(&blocker.lock);
	int rv = nng_close(socket);
	pthread_mutex_lock(&blocker.lock);
	blocker.closed = true;
	pthread_cond_broadcast(&blocker.cv);
	pthread_mutex_unlock(&blocker.lock);
	return rv;
}

static unsigned passthrough_calls;

static int passthrough_close(nng_socket socket)
{
	passthrough_calls++;
	return nng_close(socket);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_close_returns_after_its_bound_when_the_socket_close_hangs(void **state)
{
	(void)state;
	client_socket_close_fn = blocking_close;
	struct carelog_client *c = NULL;
	assert_int_equal(carelog_client_open("tcp://127.0.0.1:1", &c), CARELOG_OK);
	uint64_t start = now_ms();
	carelog_client_close(c); /* without the bound this never returns */
	uint64_t spent = now_ms() - start;
	assert_true(spent >= CLOSE_WAIT_MS_MAX - 50); /* it did wait for a normal close first */
	assert_true(spent < CLOSE_RETURN_MS_MAX);
	pthread_mutex_lock(&blocker.lock);
	assert_true(blocker.entered);
	assert_false(blocker.closed);
	/* let the abandoned close finish, so nng_fini below has nothing left open */
	blocker.released = true;
	pthread_cond_broadcast(&blocker.cv);
	while (!blocker.closed) {
		pthread_cond_wait(&blocker.cv, &blocker.lock);
	}
	pthread_mutex_unlock(&blocker.lock);
	client_socket_close_fn = nng_close;
}

static void test_close_waits_for_a_socket_close_that_finishes(void **state)
{
	(void)state;
	client_socket_close_fn = passthrough_close;
	struct carelog_client *c = NULL;
	assert_int_equal(carelog_client_open("tcp://127.0.0.1:1", &c), CARELOG_OK);
	carelog_client_close(c);
	assert_int_equal(passthrough_calls, 1); /* returned only after the close ran */
	carelog_client_close(NULL);
	assert_int_equal(passthrough_calls, 1);
	client_socket_close_fn = nng_close;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_returns_after_its_bound_when_the_socket_close_hangs),
		cmocka_unit_test(test_close_waits_for_a_socket_close_that_finishes),
	};
	int failed = cmocka_run_group_tests_name("client_close", tests, NULL, NULL);
	nng_fini();
	return failed;
}
