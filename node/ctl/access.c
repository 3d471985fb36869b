/* carelogctl's clinical access commands: policy entries, corrections, erasure, btg-review,
 * access-log. */
#include "node/ctl/commands.h"

#include "carelog/carelog.h"
#include "carelog/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

CL_STATIC_ASSERT((int)CTL_CATEGORIES_MAX == (int)CARELOG_CATEGORIES_MAX, "one categories limit");
CL_STATIC_ASSERT((int)CTL_LIST_LIMIT_MAX == (int)CARELOG_ACCESS_LOG_ROWS_MAX, "one rows limit");
CL_STATIC_ASSERT((int)CTL_LIST_LIMIT_MAX == (int)CARELOG_BTG_GRANTS_MAX, "one grants limit");

enum { CTL_MS_PER_HOUR = 3600 * 1000 };

/* Wall-clock now (UTC ms): the default of --from. The node judges validity with its leader's
 * time stamp, so a clock a little ahead only delays the start by that much. */
static uint64_t ctl_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ policy entries */

/* The policy entry a command appends, from its options. */
static void ctl_policy_args(const struct ctl_options *o, struct carelog_policy_args *a,
                            const char **categories)
{
	memset(a, 0, sizeof(*a));
	a->request_id = o->request_id;
	uint64_t from_ms = o->has_from ? o->from_ms : ctl_wall_ms();
	switch (o->command) {
	case CTL_CMD_PATIENT_SET:
		a->kind = "patient";
		a->patient = o->patient;
		a->birth_date = o->birth_date;
		break;
	case CTL_CMD_RELATION_ADD:
		a->kind = "care-relation";
		a->patient = o->patient;
		a->unit = o->rel_unit;
		a->from_ms = from_ms;
		a->to_ms = o->has_to ? o->to_ms : 0;
		for (uint32_t i = 0; i < o->categories_count; i++) {
			categories[i] = o->categories[i];
		}
		a->categories_count = o->categories_count;
		a->categories = categories;
		break;
	case CTL_CMD_RELATION_END:
		a->kind = "care-relation-end";
		a->ref = o->id;
		break;
	case CTL_CMD_BLOCK_ADD:
		a->kind = "block";
		a->patient = o->patient;
		a->target_org = o->org;
		a->actor = o->person;
		a->word = o->category != NULL ? "category" : o->has_entry ? "entry" : "all";
		a->category = o->category;
		a->ref = o->has_entry ? o->entry : NULL;
		break;
	case CTL_CMD_BLOCK_LIFT:
		a->kind = "block-lift";
		a->ref = o->id;
		break;
	case CTL_CMD_WITHHOLD:
		a->kind = "withhold";
		a->ref = o->entry;
		a->word = o->from_word != NULL ? o->from_word : "patient";
		a->text = o->reason;
		break;
	case CTL_CMD_WITHHOLD_LIFT:
		a->kind = "withhold-lift";
		a->ref = o->id;
		break;
	case CTL_CMD_PROXY_GRANT:
		a->kind = "proxy-grant";
		a->patient = o->patient;
		a->actor = o->proxy;
		a->word = o->relation;
		a->level = o->level;
		a->from_ms = from_ms;
		a->to_ms = o->has_to ? o->to_ms : 0;
		break;
	case CTL_CMD_PROXY_REVOKE:
		a->kind = "proxy-revoke";
		a->ref = o->id;
		break;
	case CTL_CMD_AMBULANCE_ASSIGN:
		a->kind = "ambulance-assignment";
		a->patient = o->patient;
		a->actor = o->crew;
		a->from_ms = from_ms;
		a->to_ms = from_ms + (uint64_t)o->hours * CTL_MS_PER_HOUR;
		break;
	case CTL_CMD_BTG:
		a->kind = "btg-grant";
		a->patient = o->patient;
		a->reason_code = o->reason_code;
		a->text = o->reason;
		a->hours = o->hours != 0 ? o->hours : CTL_BTG_HOURS_DEFAULT;
		break;
	case CTL_CMD_BTG_REVIEW:
		a->kind = "btg-review";
		a->ref = o->close_id;
		a->word = o->outcome;
		a->text = o->text;
		break;
	case CTL_CMD_PARAMS_SET:
		a->kind = "policy-params";
		a->implicit_window_days = o->implicit_window_days;
		a->btg_hours_max = o->btg_hours_max;
		a->ambulance_hours_max = o->ambulance_hours_max;
		break;
	case CTL_CMD_ERASE:
		a->kind = "erasure";
		a->ref = o->id;
		a->text = o->basis;
		break;
	default:
		CL_UNREACHABLE();
	}
}

static int ctl_policy(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_policy_args a;
	const char *categories[CTL_CATEGORIES_MAX];
	ctl_policy_args(o, &a, categories);
	struct carelog_append_result r;
	int rc = carelog_policy(c, &a, o->timeout_ms, &r);
	return ctl_append_finish(o, rc, &r);
}

/* ------------------------------------------------------------------ corrections */

/* amend and entered-in-error: fetch the old entry as the actor, then append the correction
 * with its patient, kind and sensitivity (a shielded entry's correction stays shielded). */
static int ctl_correct(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_get_args g = {0};
	memcpy(g.id, o->id, sizeof(g.id));
	struct carelog_entry *old = NULL;
	int rc = carelog_get(c, &g, o->timeout_ms, &old);
	if (rc != CARELOG_OK) {
		char id[2 * CARELOG_ID_BYTES + 1];
		ctl_hex(id, o->id, sizeof(o->id));
		return ctl_fail(o, rc, "cannot fetch entry %s to correct: %s", id,
		                carelog_last_message());
	}
	bool amend = o->command == CTL_CMD_AMEND;
	uint8_t *file_body = NULL;
	struct carelog_append_args a = {
	    .patient = old->patient,
	    .kind = old->kind,
	    .request_id = o->request_id,
	    .status = amend ? "amended" : "entered-in-error",
	    .sensitivity = old->sensitivity,
	    .clinical_time_ms = old->clinical_time_ms,
	    .corrects = old->id,
	};
	if (!amend) {
		a.media_type = "text/plain";
		a.body = o->reason;
		a.body_len = strlen(o->reason);
	} else {
		a.media_type = o->media_type != NULL ? o->media_type : old->media_type;
		if (o->body_file != NULL) {
			int exit_code = ctl_read_body(o, &file_body, &a.body_len);
			if (exit_code != CTL_EXIT_OK) {
				carelog_entry_free(old);
				return exit_code;
			}
			a.body = file_body;
		} else {
			a.body = o->body_text;
			a.body_len = strlen(o->body_text);
		}
	}
	struct carelog_append_result r;
	rc = carelog_append(c, &a, o->timeout_ms, &r);
	free(file_body);
	carelog_entry_free(old);
	return ctl_append_finish(o, rc, &r);
}

/* ------------------------------------------------------------------ btg-review (list) */

static void ctl_json_btg(const struct carelog_btg_list *l)
{
	struct ctl_json j;
	ctl_json_init(&j, stdout);
	ctl_json_object_begin(&j);
	ctl_json_key(&j, "grants");
	ctl_json_array_begin(&j);
	for (size_t i = 0; i < l->grants_count; i++) {
		const struct carelog_btg_grant *g = &l->grants[i];
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "id");
		ctl_json_hex(&j, g->id, sizeof(g->id));
		ctl_json_key(&j, "index");
		ctl_json_u64(&j, g->index);
		const struct {
			const char *key;
			const char *value;
		} strs[] = {
		    {"patient", g->patient}, {"actor", g->actor}, {"role", g->role},
		    {"org", g->org},         {"unit", g->unit},
		};
		for (size_t k = 0; k < CL_ARRAY_LEN(strs); k++) {
			ctl_json_key(&j, strs[k].key);
			ctl_json_string(&j, strs[k].value);
		}
		ctl_json_time(&j, "granted", g->granted_ms);
		ctl_json_time(&j, "expires", g->expires_ms);
		ctl_json_key(&j, "reason_code");
		ctl_json_string(&j, g->reason_code);
		ctl_json_key(&j, "reason_text");
		ctl_json_string(&j, g->reason_text);
		ctl_json_object_end(&j);
	}
	ctl_json_array_end(&j);
	ctl_json_object_end(&j);
	ctl_json_finish(&j);
}

static void ctl_print_btg(const struct carelog_btg_list *l)
{
	printf("%zu break-the-glass grant%s waiting for review\n", l->grants_count,
	       l->grants_count == 1 ? "" : "s");
	for (size_t i = 0; i < l->grants_count; i++) {
		const struct carelog_btg_grant *g = &l->grants[i];
		char id[2 * CARELOG_ID_BYTES + 1];
		char granted[CTL_TIME_TEXT_BYTES];
		char expires[CTL_TIME_TEXT_BYTES];
		ctl_hex(id, g->id, sizeof(g->id));
		ctl_time_format(granted, g->granted_ms);
		ctl_time_format(expires, g->expires_ms);
		printf("\n%s  (#%llu)\n", id, (unsigned long long)g->index);
		printf("    patient   %s\n", g->patient);
		printf("    by        %s (%s)  %s%s%s\n", g->actor, g->role, g->org,
		       g->unit[0] != '\0' ? "/" : "", g->unit);
		printf("    granted   %s\n", granted);
		printf("    expires   %s\n", expires);
		printf("    reason    %s: %s\n", g->reason_code, g->reason_text);
	}
	if (l->grants_count > 0) {
		printf("\nclose one with: carelogctl btg-review --close ID --outcome "
		       "justified|unjustified\n");
	}
}

static int ctl_btg_list(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_btg_list_args a = {.patient = o->patient, .limit = o->limit};
	struct carelog_btg_list *l;
	int rc = carelog_btg_list(c, &a, o->timeout_ms, &l);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (o->json) {
		ctl_json_btg(l);
	} else {
		ctl_print_btg(l);
	}
	carelog_btg_list_free(l);
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ access-log */

static void ctl_json_access_log(const struct carelog_access_log *l)
{
	struct ctl_json j;
	ctl_json_init(&j, stdout);
	ctl_json_object_begin(&j);
	ctl_json_key(&j, "applied_index");
	ctl_json_u64(&j, l->applied_index);
	ctl_json_key(&j, "rows");
	ctl_json_array_begin(&j);
	for (size_t i = 0; i < l->rows_count; i++) {
		const struct carelog_access_row *w = &l->rows[i];
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "node_id");
		ctl_json_u64(&j, w->node_id);
		ctl_json_key(&j, "seq");
		ctl_json_u64(&j, w->seq);
		ctl_json_time(&j, "time", w->time_ms);
		const struct {
			const char *key;
			const char *value;
		} who[] = {
		    {"actor", w->actor}, {"role", w->role},       {"org", w->org},
		    {"unit", w->unit},   {"patient", w->patient}, {"action", w->action},
		};
		for (size_t k = 0; k < CL_ARRAY_LEN(who); k++) {
			ctl_json_key(&j, who[k].key);
			ctl_json_string(&j, who[k].value);
		}
		ctl_json_key(&j, "decision");
		ctl_json_string(&j, w->allowed ? "allowed" : "denied");
		ctl_json_key(&j, "allowed");
		ctl_json_bool(&j, w->allowed);
		ctl_json_key(&j, "basis");
		ctl_json_string(&j, w->basis);
		ctl_json_key(&j, "count");
		ctl_json_u64(&j, w->count);
		ctl_json_key(&j, "withheld");
		ctl_json_u64(&j, w->withheld);
		ctl_json_key(&j, "entry");
		if (w->has_entry) {
			ctl_json_hex(&j, w->entry, sizeof(w->entry));
		} else {
			ctl_json_null(&j);
		}
		ctl_json_key(&j, "purpose");
		ctl_json_string(&j, w->purpose);
		ctl_json_key(&j, "outcome");
		ctl_json_string(&j, w->outcome);
		ctl_json_key(&j, "shipped");
		ctl_json_bool(&j, w->shipped);
		ctl_json_object_end(&j);
	}
	ctl_json_array_end(&j);
	ctl_json_object_end(&j);
	ctl_json_finish(&j);
}

static const char *ctl_or_dash(const char *s)
{
	return s[0] != '\0' ? s : "-";
}

/* A table a clinician or an auditor reads: one access per line, newest first. By actor the
 * patient column says whose record it was. */
static void ctl_print_access_log(const struct ctl_options *o, const struct carelog_access_log *l)
{
	bool by_actor = o->log_actor != NULL;
	printf("%zu access%s%s%s  (newest first; applied index %llu)\n", l->rows_count,
	       l->rows_count == 1 ? "" : "es", by_actor ? " by " : " to the record of ",
	       by_actor ? o->log_actor : o->patient, (unsigned long long)l->applied_index);
	if (l->rows_count == 0) {
		return;
	}
	printf("\n%-20s  %-16s %-14s %-16s %-14s %s%-10s %-8s %-10s %5s  %s\n", "TIME (UTC)",
	       "ACTOR", "ROLE", "ORG", "UNIT", by_actor ? "PATIENT          " : "", "ACTION",
	       "DECISION", "BASIS", "COUNT", "SHIPPED");
	for (size_t i = 0; i < l->rows_count; i++) {
		const struct carelog_access_row *w = &l->rows[i];
		char when[CTL_TIME_TEXT_BYTES];
		ctl_time_format(when, w->time_ms);
		when[19] = '\0'; /* seconds are enough in a table: 2026-11-24T10:00:00 */
		char patient[24] = "";
		if (by_actor) {
			snprintf(patient, sizeof(patient), "%-16s ", ctl_or_dash(w->patient));
		}
		printf("%-20s  %-16s %-14s %-16s %-14s %s%-10s %-8s %-10s %5llu  %s\n", when,
		       ctl_or_dash(w->actor), ctl_or_dash(w->role), ctl_or_dash(w->org),
		       ctl_or_dash(w->unit), patient, w->action, w->allowed ? "allowed" : "denied",
		       ctl_or_dash(w->basis), (unsigned long long)w->count,
		       w->shipped ? "yes" : "not yet");
		if (w->purpose[0] != '\0') {
			printf("%-22s purpose: %s\n", "", w->purpose);
		}
	}
}

static int ctl_access_log(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_access_log_args a = {
	    .patient = o->patient,
	    .actor_id = o->log_actor,
	    .actor_org = o->org,
	    .limit = o->limit,
	};
	struct carelog_access_log *l;
	int rc = carelog_access_log(c, &a, o->timeout_ms, &l);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (o->json) {
		ctl_json_access_log(l);
	} else {
		ctl_print_access_log(o, l);
	}
	carelog_access_log_free(l);
	return CTL_EXIT_OK;
}

int ctl_run_access(const struct ctl_options *o, struct carelog_client *c)
{
	switch (o->command) {
	case CTL_CMD_AMEND:
	case CTL_CMD_ENTERED_IN_ERROR:
		return ctl_correct(o, c);
	case CTL_CMD_BTG_REVIEW:
		return o->has_close ? ctl_policy(o, c) : ctl_btg_list(o, c);
	case CTL_CMD_ACCESS_LOG:
		return ctl_access_log(o, c);
	default:
		return ctl_policy(o, c);
	}
}
