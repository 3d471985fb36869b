/* carelogctl member add-learner|promote|remove and transfer-leader, with add-learner --wait. */
#include "node/ctl/commands.h"

#include "carelog/carelog.h"
#include "carelog/errors.h"
#include "common/keyfile.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
	CTL_WAIT_POLL_MS = 200,          /* between status polls while a learner catches up */
	CTL_WAIT_PRINT_MS = 1000,        /* progress lines at most this often */
	CTL_WAIT_STATUS_TIMEOUT_MS = 5000, /* one status poll; the wait's deadline bounds the rest */
};

CL_STATIC_ASSERT((int)CTL_PUBLIC_KEY_BYTES == (int)CARELOG_PUBLIC_KEY_BYTES, "Ed25519 keys");
CL_STATIC_ASSERT((int)CTL_PUBLIC_KEY_BYTES == (int)CL_SIGN_PUBLIC_BYTES, "Ed25519 keys");

static uint64_t ctl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void ctl_sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0) {
		/* interrupted: sleep the rest */
	}
}

/* What the wait saw last of the learner. */
struct ctl_catchup {
	bool caught_up;
	bool seen;      /* the member appeared in a status reply */
	bool has_match;
	uint64_t match_index;
	uint64_t lag;
	uint64_t waited_ms;
	int last_rc;    /* the last failed status poll, CARELOG_OK if none */
};

/* Polls status on the same endpoint until member `id` has a match and lag 0, or `deadline_ms`
 * (monotonic) passes. Progress goes to stderr at most once per CTL_WAIT_PRINT_MS. Failed polls
 * (a node restarting, a slow answer) are retried until the deadline. */
static void ctl_wait_caught_up(struct carelog_client *c, uint64_t id, uint64_t deadline_ms,
			       struct ctl_catchup *out)
{
	uint64_t start_ms = ctl_now_ms();
	uint64_t printed_ms = 0;
	uint64_t printed_match = 0;
	bool printed = false;
	bool printed_had_match = false; /* a rate needs two lines with a match */
	memset(out, 0, sizeof(*out));
	for (;;) {
		uint64_t now = ctl_now_ms();
		if (now >= deadline_ms) {
			break;
		}
		uint64_t left = deadline_ms - now;
		uint32_t call_ms = (uint32_t)(left < CTL_WAIT_STATUS_TIMEOUT_MS
						      ? left
						      : CTL_WAIT_STATUS_TIMEOUT_MS);
		struct carelog_status *s = NULL;
		int rc = carelog_status(c, call_ms, &s);
		out->last_rc = rc;
		if (rc == CARELOG_OK) {
			for (size_t i = 0; i < s->members_count; i++) {
				const struct carelog_member *m = &s->members[i];
				if (m->id == id) {
					out->seen = true;
					out->has_match = m->has_match;
					out->match_index = m->match_index;
					out->lag = m->lag;
				}
			}
			carelog_status_free(s);
			out->caught_up = out->seen && out->has_match && out->lag == 0;
		}
		now = ctl_now_ms();
		out->waited_ms = now - start_ms;
		if (out->caught_up) {
			break;
		}
		bool print_due = !printed || now - printed_ms >= CTL_WAIT_PRINT_MS;
		if (rc == CARELOG_OK && out->seen && print_due) {
			char line[CTL_PROGRESS_LINE_BYTES];
			uint64_t rate = 0;
			bool rate_known = printed_had_match && out->has_match && now > printed_ms;
			if (rate_known) {
				uint64_t done = out->match_index > printed_match
							? out->match_index - printed_match
							: 0;
				rate = done * 1000u / (now - printed_ms);
			}
			fprintf(stderr, "%s\n",
				ctl_progress_line(line, sizeof(line), id, out->has_match,
						  out->match_index, out->lag, rate_known, rate));
			printed = true;
			printed_ms = now;
			printed_match = out->match_index;
			printed_had_match = out->has_match;
		}
		if (now >= deadline_ms) {
			break;
		}
		uint64_t pause = deadline_ms - now;
		ctl_sleep_ms(pause < CTL_WAIT_POLL_MS ? pause : CTL_WAIT_POLL_MS);
	}
}

static const char *ctl_member_action(enum ctl_command command)
{
	switch (command) {
	case CTL_CMD_MEMBER_ADD_LEARNER:
		return "add-learner";
	case CTL_CMD_MEMBER_PROMOTE:
		return "promote";
	case CTL_CMD_MEMBER_REMOVE:
		return "remove";
	default:
		CL_UNREACHABLE();
	}
}

static void ctl_member_print(const struct ctl_options *o, uint64_t index,
			     const struct ctl_catchup *w)
{
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "action");
		ctl_json_string(&j, ctl_member_action(o->command));
		ctl_json_key(&j, "id");
		ctl_json_u64(&j, o->node_id);
		ctl_json_key(&j, "index");
		ctl_json_u64(&j, index);
		if (w != NULL) {
			ctl_json_key(&j, "caught_up");
			ctl_json_bool(&j, w->caught_up);
			ctl_json_key(&j, "match_index");
			if (w->has_match) {
				ctl_json_u64(&j, w->match_index);
			} else {
				ctl_json_null(&j);
			}
			ctl_json_key(&j, "lag");
			ctl_json_u64(&j, w->lag);
			ctl_json_key(&j, "wait_ms");
			ctl_json_u64(&j, w->waited_ms);
		}
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
		return;
	}
	unsigned long long id = (unsigned long long)o->node_id;
	switch (o->command) {
	case CTL_CMD_MEMBER_ADD_LEARNER:
		printf("learner %llu added (configuration entry at index %llu)\n", id,
		       (unsigned long long)index);
		break;
	case CTL_CMD_MEMBER_PROMOTE:
		printf("member %llu promoted to voter (configuration entry at index %llu)\n", id,
		       (unsigned long long)index);
		break;
	default:
		printf("member %llu removed (configuration entry at index %llu)\n", id,
		       (unsigned long long)index);
		break;
	}
}

int ctl_run_member(const struct ctl_options *o, struct carelog_client *c)
{
	uint64_t start_ms = ctl_now_ms();
	uint64_t index = 0;
	int rc;
	if (o->command == CTL_CMD_MEMBER_ADD_LEARNER) {
		uint8_t key[CTL_PUBLIC_KEY_BYTES];
		char err[256];
		rc = cl_keyfile_load_public(o->public_key_file, key, err, sizeof(err));
		if (rc != CARELOG_OK) {
			return ctl_fail(o, rc, "%s", err);
		}
		struct carelog_learner_args a = {.id = o->node_id, .org = o->org,
						 .address = o->address, .public_key = key};
		rc = carelog_member_add_learner(c, &a, o->timeout_ms, &index);
	} else if (o->command == CTL_CMD_MEMBER_PROMOTE) {
		rc = carelog_member_promote(c, o->node_id, o->timeout_ms, &index);
	} else {
		rc = carelog_member_remove(c, o->node_id, o->timeout_ms, &index);
	}
	if (rc == CARELOG_EPENDING) {
		/* not carelog_strerror's "retry with the same request id": a membership change has
		 * none, and retrying blindly may fail or repeat it */
		fprintf(stderr, "carelogctl: %s: outcome pending: %s\n", ctl_command_name(o->command),
			carelog_last_message());
		return CTL_EXIT_PENDING;
	}
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (!(o->command == CTL_CMD_MEMBER_ADD_LEARNER && o->wait)) {
		ctl_member_print(o, index, NULL);
		return CTL_EXIT_OK;
	}
	if (!o->json) {
		ctl_member_print(o, index, NULL); /* say it is added before the (long) wait */
		fflush(stdout);
	}
	struct ctl_catchup w;
	ctl_wait_caught_up(c, o->node_id, start_ms + o->timeout_ms, &w);
	if (o->json) {
		ctl_member_print(o, index, &w);
	} else if (w.caught_up) {
		printf("learner %llu caught up: match index %llu, lag 0, after %.1f s\n",
		       (unsigned long long)o->node_id, (unsigned long long)w.match_index,
		       (double)w.waited_ms / 1000.0);
	}
	if (w.caught_up) {
		return CTL_EXIT_OK;
	}
	if (!w.seen) {
		return ctl_fail(o, w.last_rc != CARELOG_OK ? w.last_rc : CARELOG_ETIMEDOUT,
				"learner %llu was added but %s within --timeout",
				(unsigned long long)o->node_id,
				w.last_rc != CARELOG_OK ? "status did not answer"
							: "this node does not list it yet");
	}
	if (!w.has_match) {
		return ctl_fail(o, CARELOG_ETIMEDOUT,
				"learner %llu reported no progress within --timeout: is it running "
				"and reachable at its address? It stays a learner",
				(unsigned long long)o->node_id);
	}
	return ctl_fail(o, CARELOG_ETIMEDOUT,
			"learner %llu is %llu entries behind (match %llu) after --timeout; it stays "
			"a learner and keeps catching up: check with carelogctl status",
			(unsigned long long)o->node_id, (unsigned long long)w.lag,
			(unsigned long long)w.match_index);
}

int ctl_run_transfer_leader(const struct ctl_options *o, struct carelog_client *c)
{
	uint64_t leader = 0;
	int rc = carelog_transfer_leader(c, o->to, o->timeout_ms, &leader);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "leader_id");
		ctl_json_u64(&j, leader);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("leader is now node %llu\n", (unsigned long long)leader);
	}
	return CTL_EXIT_OK;
}
