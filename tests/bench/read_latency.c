/* Benchmark tool: appends a patient's entries and measures timeline read latency via libcarelog. */

/*
 *   read_latency ENDPOINT append PATIENT COUNT BODY_BYTES
 *       appends COUNT entries for PATIENT (one client, one at a time)
 *   read_latency ENDPOINT read PATIENT EXPECTED ITERATIONS
 *       reads PATIENT's whole timeline ITERATIONS times (limit = EXPECTED, local consistency),
 *       checks every read returns EXPECTED entries, and prints
 *       {"reads":N,"entries":E,"p50_ms":..,"p99_ms":..,"max_ms":..,"reads_per_s":..}
 */

#include "carelog/carelog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	BENCH_ITERATIONS_MAX = 1000000,
	BENCH_BODY_BYTES_MAX = 1024 * 1024,
	BENCH_TIMEOUT_MS = 30000,
};

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

static int bench_append(struct carelog_client *client, const char *patient, unsigned long count,
			unsigned long body_bytes)
{
	char *body = malloc(body_bytes + 1);
	if (body == NULL) {
		return bench_fail("body", CARELOG_ENOMEM);
	}
	for (unsigned long i = 0; i < body_bytes; i++) {
		body[i] = (char)('a' + (char)(i % 26));
	}
	for (unsigned long i = 0; i < count; i++) {
		struct carelog_append_args a = {
			.patient = patient, .kind = "vital-signs", .body = body,
			.body_len = body_bytes, .actor = "bench-clinician"};
		struct carelog_append_result r;
		int rc = carelog_append(client, &a, BENCH_TIMEOUT_MS, &r);
		if (rc != CARELOG_OK) {
			free(body);
			return bench_fail("append", rc);
		}
	}
	free(body);
	return 0;
}

static int bench_read(struct carelog_client *client, const char *patient, unsigned long expected,
		      unsigned long iterations)
{
	double *lat = calloc(iterations, sizeof *lat);
	if (lat == NULL) {
		return bench_fail("latencies", CARELOG_ENOMEM);
	}
	struct carelog_read_args a = {.patient = patient,
				      .actor = "bench-clinician",
				      .consistency = CARELOG_CONSISTENCY_LOCAL,
				      .limit = (uint32_t)expected};
	double start = bench_now_ms();
	for (unsigned long i = 0; i < iterations; i++) {
		struct carelog_read_result *res = NULL;
		double t0 = bench_now_ms();
		int rc = carelog_read(client, &a, BENCH_TIMEOUT_MS, &res);
		lat[i] = bench_now_ms() - t0;
		if (rc != CARELOG_OK) {
			free(lat);
			return bench_fail("read", rc);
		}
		size_t got = res->entries_count;
		carelog_read_result_free(res);
		if (got != expected) {
			fprintf(stderr, "read_latency: read returned %zu entries, expected %lu\n", got,
				expected);
			free(lat);
			return 1;
		}
	}
	double total = bench_now_ms() - start;
	qsort(lat, iterations, sizeof *lat, bench_cmp);
	printf("{\"reads\":%lu,\"entries\":%lu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"reads_per_s\":%.0f}\n",
	       iterations, expected, lat[iterations / 2], lat[(iterations * 99) / 100],
	       lat[iterations - 1], (double)iterations / (total / 1e3));
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6 || (strcmp(argv[2], "append") != 0 && strcmp(argv[2], "read") != 0)) {
		fprintf(stderr, "usage: read_latency ENDPOINT append PATIENT COUNT BODY_BYTES\n"
				"       read_latency ENDPOINT read PATIENT EXPECTED ITERATIONS\n");
		return 2;
	}
	unsigned long n1 = strtoul(argv[4], NULL, 10);
	unsigned long n2 = strtoul(argv[5], NULL, 10);
	bool reading = strcmp(argv[2], "read") == 0;
	if (reading ? (n1 == 0 || n1 > CARELOG_READ_LIMIT_MAX || n2 == 0 ||
		       n2 > BENCH_ITERATIONS_MAX)
		    : n2 > BENCH_BODY_BYTES_MAX) {
		fprintf(stderr, "read_latency: counts out of range\n");
		return 2;
	}
	struct carelog_client *client = NULL;
	int rc = carelog_client_open(argv[1], &client);
	if (rc != CARELOG_OK) {
		return bench_fail("open", rc);
	}
	int result = reading ? bench_read(client, argv[3], n1, n2)
			     : bench_append(client, argv[3], n1, n2);
	carelog_client_close(client);
	return result;
}
