/* carelogctl bench append: N threads appending through one shared libcarelog client. */
#include "node/ctl/commands.h"

#include "carelog/carelog.h"
#include "carelog/errors.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ctl_bench_shared {
	struct carelog_client *client;
	const struct ctl_options *o;
	const char *body;
	size_t body_len;
	pthread_mutex_t lock;
	pthread_cond_t go_changed;
	bool go;                         /* under lock: every worker started, measure from now */
	bool abort;                      /* under lock: a worker could not start, do nothing */
	int first_error;                 /* under lock */
	char first_message[512];         /* under lock */
};

struct ctl_bench_worker {
	struct ctl_bench_shared *shared;
	pthread_t thread;
	uint32_t count;
	double *latencies_ms; /* this worker's slice: one per successful append */
	uint32_t ok;
	uint32_t errors;
};

static double ctl_bench_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void *ctl_bench_run(void *arg)
{
	struct ctl_bench_worker *w = arg;
	struct ctl_bench_shared *s = w->shared;
	const struct ctl_options *o = s->o;
	struct carelog_append_args a = {
		.patient = o->patient != NULL ? o->patient : "bench-patient",
		.kind = o->kind != NULL ? o->kind : "note",
		.body = s->body,
		.body_len = s->body_len,
		.actor = o->actor,
		.role = o->role,
	};
	pthread_mutex_lock(&s->lock);
	while (!s->go) {
		pthread_cond_wait(&s->go_changed, &s->lock);
	}
	bool abort = s->abort;
	pthread_mutex_unlock(&s->lock);
	for (uint32_t i = 0; i < w->count && !abort; i++) {
		struct carelog_append_result r;
		double t0 = ctl_bench_now_ms();
		int rc = carelog_append(s->client, &a, o->timeout_ms, &r);
		double t1 = ctl_bench_now_ms();
		if (rc == CARELOG_OK) {
			w->latencies_ms[w->ok++] = t1 - t0;
			continue;
		}
		w->errors++;
		pthread_mutex_lock(&s->lock);
		if (s->first_error == CARELOG_OK) {
			s->first_error = rc;
			snprintf(s->first_message, sizeof(s->first_message), "%s",
				 carelog_last_message());
		}
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

static int ctl_bench_compare(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest-rank percentile of sorted values. */
static double ctl_bench_percentile(const double *sorted, size_t n, double p)
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

int ctl_run_bench_append(const struct ctl_options *o, struct carelog_client *client)
{
	uint32_t clients = o->bench_clients;
	if (clients > o->bench_count) {
		clients = o->bench_count;
	}
	struct ctl_bench_shared s = {.client = client, .o = o, .body_len = o->bench_body_bytes};
	char *body = malloc(s.body_len + 1);
	double *latencies = calloc(o->bench_count, sizeof(double));
	struct ctl_bench_worker *workers = calloc(clients, sizeof(*workers));
	if (body == NULL || latencies == NULL || workers == NULL) {
		free(body);
		free(latencies);
		free(workers);
		return ctl_fail(o, CARELOG_ENOMEM, "%s", "");
	}
	static const char filler[] = "synthetic benchmark text, no patient data. ";
	for (size_t i = 0; i < s.body_len; i++) {
		body[i] = filler[i % (sizeof(filler) - 1)];
	}
	body[s.body_len] = '\0';
	s.body = body;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.go_changed, NULL);
	uint32_t offset = 0;
	uint32_t started = 0;
	int exit_code = CTL_EXIT_OK;
	for (uint32_t i = 0; i < clients; i++) {
		struct ctl_bench_worker *w = &workers[i];
		w->shared = &s;
		w->count = o->bench_count / clients + (i < o->bench_count % clients ? 1 : 0);
		w->latencies_ms = latencies + offset;
		offset += w->count;
		if (pthread_create(&w->thread, NULL, ctl_bench_run, w) != 0) {
			exit_code = ctl_fail(o, CARELOG_ENOMEM, "cannot start thread %u", i);
			break;
		}
		started++;
	}
	double t0 = ctl_bench_now_ms();
	pthread_mutex_lock(&s.lock);
	s.go = true;
	s.abort = started < clients; /* a half-started benchmark measures nothing useful */
	pthread_cond_broadcast(&s.go_changed);
	pthread_mutex_unlock(&s.lock);
	uint64_t ok = 0;
	uint64_t errors = 0;
	for (uint32_t i = 0; i < started; i++) {
		pthread_join(workers[i].thread, NULL);
	}
	double seconds = (ctl_bench_now_ms() - t0) / 1000.0;
	/* gather the successful latencies to the front for sorting */
	size_t n = 0;
	for (uint32_t i = 0; i < started; i++) {
		memmove(latencies + n, workers[i].latencies_ms, workers[i].ok * sizeof(double));
		n += workers[i].ok;
		ok += workers[i].ok;
		errors += workers[i].errors;
	}
	if (started < clients) {
		goto out;
	}
	qsort(latencies, n, sizeof(double), ctl_bench_compare);
	double ops_per_s = seconds > 0 ? (double)ok / seconds : 0.0;
	double p50 = ctl_bench_percentile(latencies, n, 50.0);
	double p99 = ctl_bench_percentile(latencies, n, 99.0);
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "ops_per_s");
		ctl_json_double(&j, ops_per_s);
		ctl_json_key(&j, "p50_ms");
		ctl_json_double(&j, p50);
		ctl_json_key(&j, "p99_ms");
		ctl_json_double(&j, p99);
		ctl_json_key(&j, "errors");
		ctl_json_u64(&j, errors);
		ctl_json_key(&j, "ops");
		ctl_json_u64(&j, ok);
		ctl_json_key(&j, "clients");
		ctl_json_u64(&j, clients);
		ctl_json_key(&j, "body_bytes");
		ctl_json_u64(&j, o->bench_body_bytes);
		ctl_json_key(&j, "seconds");
		ctl_json_double(&j, seconds);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("%llu appends of %llu bytes from %u clients in %.3f s\n",
		       (unsigned long long)ok, (unsigned long long)o->bench_body_bytes, clients,
		       seconds);
		printf("throughput  %.1f ops/s\n", ops_per_s);
		printf("latency     p50 %.3f ms, p99 %.3f ms\n", p50, p99);
		printf("errors      %llu\n", (unsigned long long)errors);
	}
	if (errors > 0) {
		exit_code = ctl_fail(o, s.first_error, "%llu of %u appends failed; first: %s",
				     (unsigned long long)errors, o->bench_count, s.first_message);
	}
out:
	pthread_cond_destroy(&s.go_changed);
	pthread_mutex_destroy(&s.lock);
	free(workers);
	free(latencies);
	free(body);
	return exit_code;
}
