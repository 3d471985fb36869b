/* carelog-sim: runs the deterministic cluster simulator over one seed or a range of seeds. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

/* Failing seeds listed in the summary (all are printed as they fail). */
enum { SIM_FAILED_LIST_MAX = 20 };
/* Trace lines printed after a violation. */
enum { SIM_DUMP_EVENTS = 50 };
/* Bounds on the command line (ids beyond SIM_NODES_MAX cannot exist). */
enum { SIM_CLI_NODES_MAX = 7 };

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: carelog-sim (--seed S | --seeds A..B) [--ticks T] [--nodes N] [--verbose]\n"
	    "                   [--check-determinism] [--stop-after N] [--outcome-only]\n"
	    "  --seed S             run one seed\n"
	    "  --seeds A..B         run seeds A to B inclusive\n"
	    "  --ticks T            length of the fault phase in ticks (default 8000)\n"
	    "  --nodes N            initial voters, 1..%d (default: 3..5 chosen by the seed)\n"
	    "  --verbose            print every event of the trace\n"
	    "  --check-determinism  run every seed twice and compare the trace hashes\n"
	    "  --stop-after N       stop after N seeds with a violation\n"
	    "  --outcome-only       check outcomes only (safety, linearizability, no lost\n"
	    "                       writes), not the protocol rules (persist before send,\n"
	    "                       Figure 8 commit rule, configuration in force, vote quorum)\n"
	    "exit status: 0 no violation, 1 a violation (seed, invariant and trace printed),\n"
	    "             2 bad usage\n",
	    SIM_CLI_NODES_MAX);
}

static int parse_u64(const char *s, uint64_t *out)
{
	if (s == NULL || *s == '\0' || *s == '-') {
		return -1;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
	const char *dots = s == NULL ? NULL : strstr(s, "..");
	if (dots == NULL || dots - s > 30) {
		return -1;
	}
	char first[32];
	memcpy(first, s, (size_t)(dots - s));
	first[dots - s] = '\0';
	if (parse_u64(first, lo) != 0 || parse_u64(dots + 2, hi) != 0 || *lo > *hi) {
		return -1;
	}
	return 0;
}

struct sim_totals {
	uint64_t seeds;
	uint64_t failed;
	uint64_t failed_seeds[SIM_FAILED_LIST_MAX];
	uint64_t commits, commits_min, acked, proposals;
	uint64_t leader_changes, conf_changes, crashes, partitions, reads, transfers, enomem;
	uint64_t with_leader_change, with_conf, with_crash, with_partition, with_read,
	    with_transfer, with_enomem, with_commit;
};

static void totals_add(struct sim_totals *t, const struct sim_stats *s)
{
	if (t->seeds == 0 || s->commits < t->commits_min) {
		t->commits_min = s->commits;
	}
	t->seeds++;
	t->commits += s->commits;
	t->acked += s->acked;
	t->proposals += s->proposals;
	t->leader_changes += s->leader_changes;
	t->conf_changes += s->conf_changes;
	t->crashes += s->crashes;
	t->partitions += s->partitions;
	t->reads += s->reads;
	t->transfers += s->transfers;
	t->enomem += s->enomem;
	t->with_commit += s->commits > 0;
	/* The first election is not a change of leader. */
	t->with_leader_change += s->leader_changes > 1;
	t->with_conf += s->conf_changes > 0;
	t->with_crash += s->crashes > 0;
	t->with_partition += s->partitions > 0;
	t->with_read += s->reads > 0;
	t->with_transfer += s->transfers > 0;
	t->with_enomem += s->enomem > 0;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

static void print_violation(const struct sim *sim, const struct sim_options *opt)
{
	printf("VIOLATION seed=%" PRIu64 " invariant=\"%s\"\n", sim->seed, sim->viol.invariant);
	printf("  %s\n", sim->viol.detail);
	printf("  at tick %" PRIu64 ", after %" PRIu64 " trace events\n", sim->tick,
	       sim->trace.count);
	printf("  reproduce: carelog-sim --seed %" PRIu64, sim->seed);
	if (opt->ticks != 0) {
		printf(" --ticks %" PRIu64, opt->ticks);
	}
	if (opt->nodes != 0) {
		printf(" --nodes %u", opt->nodes);
	}
	if (opt->outcome_only) {
		printf(" --outcome-only");
	}
	printf(" --verbose\n  nodes (durable state):\n");
	sim_dump_nodes(sim, stdout);
	printf("  last %d events:\n", SIM_DUMP_EVENTS);
	sim_trace_dump(&sim->trace, stdout, SIM_DUMP_EVENTS);
}

/* The run in progress, for the abort handler (a core assertion ends the process). */
static const struct sim *sim_current;
static struct sim_options sim_current_opt;

static void on_abort(int sig)
{
	/* Not async-signal-safe, but the process is dying anyway: tell which seed killed it. */
	if (sim_current != NULL) {
		printf("ABORT seed=%" PRIu64 " (signal %d: a core assertion or a sanitizer)\n",
		       sim_current->seed, sig);
		printf("  reproduce: carelog-sim --seed %" PRIu64 "%s --verbose\n",
		       sim_current->seed, sim_current_opt.outcome_only ? " --outcome-only" : "");
		printf("  last %d events:\n", SIM_DUMP_EVENTS);
		sim_trace_dump(&sim_current->trace, stdout, SIM_DUMP_EVENTS);
		fflush(stdout);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	uint64_t lo = 0, hi = 0;
	bool have_seeds = false;
	bool check_determinism = false;
	uint64_t stop_after = 0;
	struct sim_options opt;
	memset(&opt, 0, sizeof(opt));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t x = 0;
		if (strcmp(a, "--seed") == 0 && parse_u64(v, &lo) == 0) {
			hi = lo;
			have_seeds = true;
			i++;
		} else if (strcmp(a, "--seeds") == 0 && parse_range(v, &lo, &hi) == 0) {
			have_seeds = true;
			i++;
		} else if (strcmp(a, "--ticks") == 0 && parse_u64(v, &x) == 0 && x > 0) {
			opt.ticks = x;
			i++;
		} else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) == 0 && x >= 1 &&
		           x <= SIM_CLI_NODES_MAX) {
			opt.nodes = (uint32_t)x;
			i++;
		} else if (strcmp(a, "--stop-after") == 0 && parse_u64(v, &x) == 0 && x > 0) {
			stop_after = x;
			i++;
		} else if (strcmp(a, "--outcome-only") == 0) {
			opt.outcome_only = true;
		} else if (strcmp(a, "--verbose") == 0) {
			opt.verbose = stdout;
		} else if (strcmp(a, "--check-determinism") == 0) {
			check_determinism = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "carelog-sim: bad argument '%s'%s\n", a,
			        v == NULL ? "" : " (or its value)");
			usage(stderr);
			return 2;
		}
	}
	if (!have_seeds) {
		fprintf(stderr, "carelog-sim: --seed or --seeds is required\n");
		usage(stderr);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0); /* for the summary only, never for decisions */
	struct sim_totals tot;
	memset(&tot, 0, sizeof(tot));
	uint64_t nondeterministic = 0;
	struct sim *sim = calloc(1, sizeof(*sim));
	if (sim == NULL) {
		fprintf(stderr, "carelog-sim: out of memory\n");
		return 1;
	}
	sim_current = sim;
	sim_current_opt = opt;
	signal(SIGABRT, on_abort);
	signal(SIGSEGV, on_abort);
	for (uint64_t seed = lo;; seed++) {
		bool ok = sim_run(sim, seed, &opt);
		struct sim_stats st = sim->stats;
		uint64_t hash = sim->trace.hash;
		printf("seed=%" PRIu64 " trace=%016" PRIx64 " commits=%" PRIu64
		       " leader_changes=%" PRIu64 " conf_changes=%" PRIu64 " crashes=%" PRIu64
		       " partitions=%" PRIu64 " reads=%" PRIu64 " transfers=%" PRIu64
		       " enomem=%" PRIu64 " acked=%" PRIu64 " ticks=%" PRIu64 "\n",
		       seed, hash, st.commits, st.leader_changes, st.conf_changes, st.crashes,
		       st.partitions, st.reads, st.transfers, st.enomem, st.acked, st.ticks);
		if (!ok) {
			print_violation(sim, &opt);
			if (tot.failed < SIM_FAILED_LIST_MAX) {
				tot.failed_seeds[tot.failed] = seed;
			}
			tot.failed++;
		}
		sim_free(sim);
		totals_add(&tot, &st);
		if (check_determinism) {
			struct sim_options quiet = opt;
			quiet.verbose = NULL;
			(void)sim_run(sim, seed, &quiet);
			if (sim->trace.hash != hash) {
				printf("NONDETERMINISM seed=%" PRIu64 " first=%016" PRIx64
				       " second=%016" PRIx64 "\n",
				       seed, hash, sim->trace.hash);
				nondeterministic++;
			}
			sim_free(sim);
		}
		fflush(stdout);
		if (seed == hi || (stop_after != 0 && tot.failed >= stop_after)) {
			break;
		}
	}
	sim_current = NULL;
	free(sim);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("summary seeds=%" PRIu64 " violations=%" PRIu64 " nondeterministic=%" PRIu64
	       " time_s=%.1f\n",
	       tot.seeds, tot.failed, nondeterministic, secs);
	printf("summary totals commits=%" PRIu64 " (min per seed %" PRIu64 ") acked=%" PRIu64
	       "/%" PRIu64 " leader_changes=%" PRIu64 " conf_changes=%" PRIu64 " crashes=%" PRIu64
	       " partitions=%" PRIu64 " reads=%" PRIu64 " transfers=%" PRIu64 " enomem=%" PRIu64
	       "\n",
	       tot.commits, tot.commits_min, tot.acked, tot.proposals, tot.leader_changes,
	       tot.conf_changes, tot.crashes, tot.partitions, tot.reads, tot.transfers, tot.enomem);
	printf("summary seeds_with commits=%.1f%% leader_changes=%.1f%% conf_changes=%.1f%% "
	       "crashes=%.1f%% partitions=%.1f%% reads=%.1f%% transfers=%.1f%% enomem=%.1f%%\n",
	       pct(tot.with_commit, tot.seeds), pct(tot.with_leader_change, tot.seeds),
	       pct(tot.with_conf, tot.seeds), pct(tot.with_crash, tot.seeds),
	       pct(tot.with_partition, tot.seeds), pct(tot.with_read, tot.seeds),
	       pct(tot.with_transfer, tot.seeds), pct(tot.with_enomem, tot.seeds));
	if (tot.failed != 0) {
		printf("summary failing seeds:");
		for (uint64_t i = 0; i < tot.failed && i < SIM_FAILED_LIST_MAX; i++) {
			printf(" %" PRIu64, tot.failed_seeds[i]);
		}
		printf("%s\n", tot.failed > SIM_FAILED_LIST_MAX ? " ..." : "");
	}
	return tot.failed != 0 || nondeterministic != 0 ? 1 : 0;
}
