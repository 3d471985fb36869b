/* Benchmark tool: fills timelines and measures timeline reads (one or many readers) via libcarelog.
 */

/*
 *   read_latency [--actor ID] [--role ROLE] ENDPOINT MODE ARGS...
 *
 *   append PATIENT COUNT BODY_BYTES
 *       appends COUNT entries for PATIENT (one client, one at a time)
 *   read PATIENT EXPECTED ITERATIONS
 *       reads PATIENT's whole timeline ITERATIONS times (local consistency), checks every read
 *       returns EXPECTED clinical entries, and prints
 *       {"reads":N,"entries":E,"p50_ms":..,"p99_ms":..,"max_ms":..,"reads_per_s":..}
 *   fill PREFIX PATIENTS ENTRIES BODY_BYTES THREADS
 *       appends ENTRIES entries for each of the PATIENTS patients PREFIX-000001.. from THREADS
 *       threads sharing one client (thread t appends for patients t, t+THREADS, ...)
 *   readers PREFIX PATIENTS EXPECTED READERS READS
 *       READERS threads sharing one client read whole timelines READS times in all (reader r
 *       reads patients r, r+READERS, ... round robin), each checked to hold EXPECTED clinical
 *       entries; prints {"readers":R,"reads":N,"entries":E,"errors":0,"seconds":..,
 *       "reads_per_s":..,"p50_ms":..,"p99_ms":..,"max_ms":..}
 *
 * The actor (default bench-clinician, role physician) needs a care relation for every patient
 * read or written (docs/access.md); bench.py adds them first. Entries are counted by kind
 * (BENCH_KIND): a timeline may also show the patient's policy entries (the care relation).
 */

#include "carelog/carelog.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	BENCH_ITERATIONS_MAX = 10000000,
	BENCH_BODY_BYTES_MAX = 1024 * 1024,
	BENCH_THREADS_MAX = 1024,
	BENCH_PATIENTS_MAX = 1000000,
	BENCH_TIMEOUT_MS = 30000,
	BENCH_LIMIT_SLACK = 16, /* timeline entries beyond EXPECTED a read may see (policy kinds) */
	BENCH_PATIENT_BYTES = 64,
};

#define BENCH_KIND "vital-signs"

static const char *bench_actor = "bench-clinician";
static const char *bench_role = "physician";

static int bench_fail(const char *what, int rc)
{
	fprintf(stderr, "read_latency: %s: %s (%s)\n", what, carelog_strerror(rc),
	        carelog_last_message());
	return 1;
}

static double bench_now_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values (as carelogctl bench). */
static double bench_percentile(const double *sorted, size_t n, double p)
{
	if (n == 0) {
		return 0.0;
	}
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1) {
		rank = 1;
	}
	return sorted[(rank > n ? n : rank) - 1];
}

static void bench_patient(char out[BENCH_PATIENT_BYTES], const char *prefix, unsigned long n)
{
	snprintf(out, BENCH_PATIENT_BYTES, "%s-%06lu", prefix, n + 1);
}

static char *bench_body(unsigned long body_bytes)
{
	char *body = malloc(body_bytes + 1);
	if (body != NULL) {
		for (unsigned long i = 0; i < body_bytes; i++) {
			body[i] = (char)('a' + (char)(i % 26));
		}
		body[body_bytes] = '\0';
	}
	return body;
}

static int bench_append_one(struct carelog_client *client, const char *patient, const char *body,
                            unsigned long body_bytes)
{
	struct carelog_append_args a = {.patient = patient,
	                                .kind = BENCH_KIND,
	                                .body = body,
	                                .body_len = body_bytes,
	                                .actor = bench_actor,
	                                .role = bench_role};
	struct carelog_append_result r;
	return carelog_append(client, &a, BENCH_TIMEOUT_MS, &r);
}

static int bench_append(struct carelog_client *client, const char *patient, unsigned long count,
                        unsigned long body_bytes)
{
	char *body = bench_body(body_bytes);
	if (body == NULL) {
		return bench_fail("body", CARELOG_ENOMEM);
	}
	for (unsigned long i = 0; i < count; i++) {
		int rc = bench_append_one(client, patient, body, body_bytes);
		if (rc != CARELOG_OK) {
			free(body);
			return bench_fail("append", rc);
		}
	}
	free(body);
	return 0;
}

/* One timeline read; CARELOG_OK only with exactly `expected` entries of BENCH_KIND. */
static int bench_read_one(struct carelog_client *client, const char *patient,
                          unsigned long expected, char *why, size_t why_len)
{
	unsigned long limit = expected + BENCH_LIMIT_SLACK;
	struct carelog_read_args a = {
	    .patient = patient,
	    .actor = bench_actor,
	    .role = bench_role,
	    .consistency = CARELOG_CONSISTENCY_LOCAL,
	    .limit = (uint32_t)(limit > CARELOG_READ_LIMIT_MAX ? CARELOG_READ_LIMIT_MAX : limit)};
	struct carelog_read_result *res = NULL;
	int rc = carelog_read(client, &a, BENCH_TIMEOUT_MS, &res);
	if (rc != CARELOG_OK) {
		snprintf(why, why_len, "read: %s (%s)", carelog_strerror(rc),
		         carelog_last_message());
		return rc;
	}
	unsigned long got = 0;
	for (size_t i = 0; i < res->entries_count; i++) {
		got += strcmp(res->entries[i].kind, BENCH_KIND) == 0 ? 1 : 0;
	}
	carelog_read_result_free(res);
	if (got != expected) {
		snprintf(why, why_len, "read returned %lu %s entries, expected %lu", got,
		         BENCH_KIND, expected);
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

static int bench_read(struct carelog_client *client, const char *patient, unsigned long expected,
                      unsigned long iterations)
{
	double *lat = calloc(iterations, sizeof *lat);
	if (lat == NULL) {
		return bench_fail("latencies", CARELOG_ENOMEM);
	}
	char why[512];
	double start = bench_now_ms();
	for (unsigned long i = 0; i < iterations; i++) {
		double t0 = bench_now_ms();
		int rc = bench_read_one(client, patient, expected, why, sizeof why);
		lat[i] = bench_now_ms() - t0;
		if (rc != CARELOG_OK) {
			fprintf(stderr, "read_latency: %s\n", why);
			free(lat);
			return 1;
		}
	}
	double total = bench_now_ms() - start;
	qsort(lat, iterations, sizeof *lat, bench_cmp);
	printf("{\"reads\":%lu,\"entries\":%lu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"reads_per_s\":%.0f}\n",
	       iterations, expected, bench_percentile(lat, iterations, 50.0),
	       bench_percentile(lat, iterations, 99.0), lat[iterations - 1],
	       (double)iterations / (total / 1e3));
	free(lat);
	return 0;
}

/* ------------------------------------------------------------------ many threads */

struct bench_shared {
	struct carelog_client *client;
	const char *prefix;
	unsigned long patients;
	unsigned long per_patient; /* fill: entries per patient; readers: expected entries */
	unsigned long threads;
	const char *body;
	unsigned long body_bytes;
	pthread_mutex_t lock;
	pthread_cond_t go_changed;
	bool go;               /* under lock */
	unsigned long errors;  /* under lock */
	char first_error[512]; /* under lock */
};

struct bench_worker {
	struct bench_shared *s;
	pthread_t thread;
	unsigned long index;
	unsigned long count;  /* readers: reads to make */
	double *latencies_ms; /* readers: one per successful read */
	unsigned long ok;
};

static void bench_wait_go(struct bench_shared *s)
{
	pthread_mutex_lock(&s->lock);
	while (!s->go) {
		pthread_cond_wait(&s->go_changed, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
}

static void bench_error(struct bench_shared *s, const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (s->errors++ == 0) {
		snprintf(s->first_error, sizeof s->first_error, "%s", why);
	}
	pthread_mutex_unlock(&s->lock);
}

static void *bench_fill_run(void *arg)
{
	struct bench_worker *w = arg;
	struct bench_shared *s = w->s;
	bench_wait_go(s);
	char patient[BENCH_PATIENT_BYTES];
	for (unsigned long p = w->index; p < s->patients; p += s->threads) {
		bench_patient(patient, s->prefix, p);
		for (unsigned long i = 0; i < s->per_patient; i++) {
			int rc = bench_append_one(s->client, patient, s->body, s->body_bytes);
			if (rc != CARELOG_OK) {
				char why[512];
				snprintf(why, sizeof why, "append: %s (%s)", carelog_strerror(rc),
				         carelog_last_message());
				bench_error(s, why);
				return NULL;
			}
			w->ok++;
		}
	}
	return NULL;
}

static void *bench_reader_run(void *arg)
{
	struct bench_worker *w = arg;
	struct bench_shared *s = w->s;
	bench_wait_go(s);
	char patient[BENCH_PATIENT_BYTES];
	char why[512];
	for (unsigned long i = 0; i < w->count; i++) {
		bench_patient(patient, s->prefix, (w->index + i * s->threads) % s->patients);
		double t0 = bench_now_ms();
		int rc = bench_read_one(s->client, patient, s->per_patient, why, sizeof why);
		double t1 = bench_now_ms();
		if (rc != CARELOG_OK) {
			bench_error(s, why);
			continue;
		}
		w->latencies_ms[w->ok++] = t1 - t0;
	}
	return NULL;
}

/* Runs `threads` workers of `fn`; `total` reads are split among them (readers). Prints the
 * readers' JSON line, or for fill a one-line summary on stderr. */
static int bench_threads(struct bench_shared *s, void *(*fn)(void *), unsigned long total,
                         bool readers)
{
	struct bench_worker *workers = calloc(s->threads, sizeof *workers);
	double *latencies = readers ? calloc(total, sizeof *latencies) : NULL;
	if (workers == NULL || (readers && latencies == NULL)) {
		free(workers);
		free(latencies);
		return bench_fail("workers", CARELOG_ENOMEM);
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->go_changed, NULL);
	unsigned long started = 0;
	unsigned long offset = 0;
	for (unsigned long i = 0; i < s->threads; i++) {
		struct bench_worker *w = &workers[i];
		w->s = s;
		w->index = i;
		if (readers) {
			w->count = total / s->threads + (i < total % s->threads ? 1 : 0);
			w->latencies_ms = latencies + offset;
			offset += w->count;
		}
		if (pthread_create(&w->thread, NULL, fn, w) != 0) {
			bench_error(s, "cannot start a thread");
			break;
		}
		started++;
	}
	double t0 = bench_now_ms();
	pthread_mutex_lock(&s->lock);
	s->go = true;
	pthread_cond_broadcast(&s->go_changed);
	pthread_mutex_unlock(&s->lock);
	for (unsigned long i = 0; i < started; i++) {
		pthread_join(workers[i].thread, NULL);
	}
	double seconds = (bench_now_ms() - t0) / 1e3;
	size_t n = 0;
	for (unsigned long i = 0; i < started; i++) {
		if (readers) {
			memmove(latencies + n, workers[i].latencies_ms,
			        workers[i].ok * sizeof *latencies);
		}
		n += workers[i].ok;
	}
	int result = 0;
	if (readers) {
		qsort(latencies, n, sizeof *latencies, bench_cmp);
		printf("{\"readers\":%lu,\"reads\":%zu,\"entries\":%lu,\"errors\":%lu,"
		       "\"seconds\":%.3f,\"reads_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		       "\"max_ms\":%.3f}\n",
		       s->threads, n, s->per_patient, s->errors, seconds,
		       seconds > 0 ? (double)n / seconds : 0.0,
		       bench_percentile(latencies, n, 50.0), bench_percentile(latencies, n, 99.0),
		       n > 0 ? latencies[n - 1] : 0.0);
	} else {
		fprintf(stderr, "read_latency: %zu appends from %lu threads in %.3f s\n", n,
		        s->threads, seconds);
	}
	if (s->errors > 0) {
		fprintf(stderr, "read_latency: %lu errors; first: %s\n", s->errors, s->first_error);
		result = 1;
	}
	pthread_cond_destroy(&s->go_changed);
	pthread_mutex_destroy(&s->lock);
	free(workers);
	free(latencies);
	return result;
}

static int bench_usage(void)
{
	fprintf(stderr, "usage: read_latency [--actor ID] [--role ROLE] ENDPOINT MODE ARGS...\n"
	                "  append PATIENT COUNT BODY_BYTES\n"
	                "  read PATIENT EXPECTED ITERATIONS\n"
	                "  fill PREFIX PATIENTS ENTRIES BODY_BYTES THREADS\n"
	                "  readers PREFIX PATIENTS EXPECTED READERS READS\n");
	return 2;
}

static bool bench_number(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v = strtoul(text, &end, 10);
	if (text[0] == '\0' || text[0] == '-' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "read_latency: %s: out of range (%lu..%lu)\n", text, min, max);
		return false;
	}
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	int at = 1;
	while (at + 1 < argc && argv[at][0] == '-') {
		if (strcmp(argv[at], "--actor") == 0) {
			bench_actor = argv[at + 1];
		} else if (strcmp(argv[at], "--role") == 0) {
			bench_role = argv[at + 1];
		} else {
			return bench_usage();
		}
		at += 2;
	}
	if (argc - at < 2) {
		return bench_usage();
	}
	const char *endpoint = argv[at];
	const char *mode = argv[at + 1];
	char **a = argv + at + 2;
	int na = argc - at - 2;
	unsigned long n[5] = {0};
	bool ok;
	if (strcmp(mode, "append") == 0 && na == 3) {
		ok = bench_number(a[1], 0, BENCH_ITERATIONS_MAX, &n[0]) &&
		     bench_number(a[2], 0, BENCH_BODY_BYTES_MAX, &n[1]);
	} else if (strcmp(mode, "read") == 0 && na == 3) {
		ok = bench_number(a[1], 1, CARELOG_READ_LIMIT_MAX - BENCH_LIMIT_SLACK, &n[0]) &&
		     bench_number(a[2], 1, BENCH_ITERATIONS_MAX, &n[1]);
	} else if (strcmp(mode, "fill") == 0 && na == 5) {
		ok = bench_number(a[1], 1, BENCH_PATIENTS_MAX, &n[0]) &&
		     bench_number(a[2], 1, BENCH_ITERATIONS_MAX, &n[1]) &&
		     bench_number(a[3], 0, BENCH_BODY_BYTES_MAX, &n[2]) &&
		     bench_number(a[4], 1, BENCH_THREADS_MAX, &n[3]);
	} else if (strcmp(mode, "readers") == 0 && na == 5) {
		ok = bench_number(a[1], 1, BENCH_PATIENTS_MAX, &n[0]) &&
		     bench_number(a[2], 1, CARELOG_READ_LIMIT_MAX - BENCH_LIMIT_SLACK, &n[1]) &&
		     bench_number(a[3], 1, BENCH_THREADS_MAX, &n[2]) &&
		     bench_number(a[4], 1, BENCH_ITERATIONS_MAX, &n[3]);
	} else {
		return bench_usage();
	}
	if (!ok) {
		return 2;
	}
	struct carelog_client *client = NULL;
	int rc = carelog_client_open(endpoint, &client);
	if (rc != CARELOG_OK) {
		return bench_fail("open", rc);
	}
	int result;
	if (strcmp(mode, "append") == 0) {
		result = bench_append(client, a[0], n[0], n[1]);
	} else if (strcmp(mode, "read") == 0) {
		result = bench_read(client, a[0], n[0], n[1]);
	} else if (strcmp(mode, "fill") == 0) {
		struct bench_shared s = {.client = client,
		                         .prefix = a[0],
		                         .patients = n[0],
		                         .per_patient = n[1],
		                         .body_bytes = n[2],
		                         .threads = n[3]};
		char *body = bench_body(n[2]);
		if (body == NULL) {
			result = bench_fail("body", CARELOG_ENOMEM);
		} else {
			s.body = body;
			result = bench_threads(&s, bench_fill_run, 0, false);
			free(body);
		}
	} else {
		struct bench_shared s = {.client = client,
		                         .prefix = a[0],
		                         .patients = n[0],
		                         .per_patient = n[1],
		                         .threads = n[2]};
		result = bench_threads(&s, bench_reader_run, n[3], true);
	}
	carelog_client_close(client);
	return result;
}
