/* carelogctl: the operator and client command line (DESIGN.md "Command-line contract"). */
#include "node/ctl/commands.h"

#include "carelog/carelog.h"
#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/journal/policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CTL_VERSION
#define CTL_VERSION "unknown"
#endif

enum {
	CTL_BODY_BYTES_MAX = 64 * 1024 * 1024, /* the protocol's ceiling; the node applies its own */
	CTL_BASE64_LINE_CHARS = 76,
};

int ctl_fail(const struct ctl_options *o, int rc, const char *detail_fmt, ...)
{
	char detail[1400] = "";
	if (detail_fmt != NULL) {
		va_list ap;
		va_start(ap, detail_fmt);
		vsnprintf(detail, sizeof(detail), detail_fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "carelogctl: %s: %s%s%s\n", ctl_command_name(o->command),
		carelog_strerror(rc), detail[0] != '\0' ? ": " : "", detail);
	return rc == CARELOG_EPENDING ? CTL_EXIT_PENDING : CTL_EXIT_FAILED;
}

/* A failed libcarelog call: its own message is the detail. */
int ctl_fail_call(const struct ctl_options *o, int rc)
{
	return ctl_fail(o, rc, "%s", carelog_last_message());
}

void ctl_hex(char *out, const uint8_t *bytes, size_t len)
{
	cl_hex_encode(out, bytes, len);
}

/* ------------------------------------------------------------------ status */

static void ctl_json_status(const struct carelog_status *s, const char *head)
{
	struct ctl_json j;
	ctl_json_init(&j, stdout);
	ctl_json_object_begin(&j);
	ctl_json_key(&j, "node_id");
	ctl_json_u64(&j, s->node_id);
	ctl_json_key(&j, "role");
	ctl_json_string(&j, s->role);
	const struct {
		const char *key;
		uint64_t value;
	} top[] = {
		{"term", s->term},
		{"leader_id", s->leader_id},
		{"commit_index", s->commit_index},
		{"applied_index", s->applied_index},
		{"last_index", s->last_index},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(top); i++) {
		ctl_json_key(&j, top[i].key);
		ctl_json_u64(&j, top[i].value);
	}
	ctl_json_key(&j, "chain_head");
	ctl_json_string(&j, head);
	ctl_json_key(&j, "members");
	ctl_json_array_begin(&j);
	for (size_t i = 0; i < s->members_count; i++) {
		const struct carelog_member *m = &s->members[i];
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "id");
		ctl_json_u64(&j, m->id);
		ctl_json_key(&j, "role");
		ctl_json_string(&j, m->role);
		ctl_json_key(&j, "org");
		ctl_json_string(&j, m->org);
		ctl_json_key(&j, "address");
		ctl_json_string(&j, m->address);
		ctl_json_key(&j, "match_index");
		if (m->has_match) {
			ctl_json_u64(&j, m->match_index);
		} else {
			ctl_json_null(&j);
		}
		ctl_json_key(&j, "lag");
		ctl_json_u64(&j, m->lag);
		ctl_json_object_end(&j);
	}
	ctl_json_array_end(&j);
	ctl_json_key(&j, "progress_age_ms");
	ctl_json_u64(&j, s->progress_age_ms);
	ctl_json_key(&j, "verified_signatures");
	ctl_json_u64(&j, s->verified_signatures);
	ctl_json_key(&j, "syncs");
	ctl_json_u64(&j, s->syncs);
	const struct carelog_transport_stats *t = &s->transport;
	const struct {
		const char *key;
		uint64_t value;
	} tr[] = {
		{"sent", t->sent},
		{"received", t->received},
		{"dropped_auth", t->dropped_auth},
		{"dropped_replay", t->dropped_replay},
		{"dropped_unknown", t->dropped_unknown},
		{"handshakes", t->handshakes},
	};
	ctl_json_key(&j, "transport");
	ctl_json_object_begin(&j);
	for (size_t i = 0; i < CL_ARRAY_LEN(tr); i++) {
		ctl_json_key(&j, tr[i].key);
		ctl_json_u64(&j, tr[i].value);
	}
	ctl_json_object_end(&j);
	const struct carelog_audit_stats *a = &s->audit;
	const struct {
		const char *key;
		uint64_t value;
	} au[] = {
		{"queued_rows", a->queued_rows},
		{"next_seq", a->next_seq},
		{"shipped_seq", a->shipped_seq},
		{"syncs", a->syncs},
		{"write_failures", a->write_failures},
		{"ship_failures", a->ship_failures},
	};
	ctl_json_key(&j, "audit");
	if (s->has_audit) {
		ctl_json_object_begin(&j);
		for (size_t i = 0; i < CL_ARRAY_LEN(au); i++) {
			ctl_json_key(&j, au[i].key);
			ctl_json_u64(&j, au[i].value);
		}
		ctl_json_object_end(&j);
	} else {
		ctl_json_null(&j); /* a node older than the audit queue: unknown, not 0 */
	}
	ctl_json_object_end(&j);
	ctl_json_finish(&j);
}

static void ctl_print_status(const struct carelog_status *s, const char *head)
{
	printf("node          %llu (%s)\n", (unsigned long long)s->node_id, s->role);
	printf("term          %llu\n", (unsigned long long)s->term);
	if (s->leader_id != 0) {
		printf("leader        %llu\n", (unsigned long long)s->leader_id);
	} else {
		printf("leader        none known\n");
	}
	printf("commit index  %llu\n", (unsigned long long)s->commit_index);
	printf("applied index %llu\n", (unsigned long long)s->applied_index);
	printf("last index    %llu\n", (unsigned long long)s->last_index);
	printf("chain head    %s\n", head);
	if (s->members_count > 0) {
		printf("\n%-6s %-8s %-20s %-28s %12s %12s\n", "MEMBER", "ROLE", "ORG", "ADDRESS",
		       "MATCH", "LAG");
		for (size_t i = 0; i < s->members_count; i++) {
			const struct carelog_member *m = &s->members[i];
			char match[24];
			if (m->has_match) {
				snprintf(match, sizeof(match), "%llu", (unsigned long long)m->match_index);
			} else {
				snprintf(match, sizeof(match), "-");
			}
			printf("%-6llu %-8s %-20s %-28s %12s %12llu\n", (unsigned long long)m->id,
			       m->role, m->org[0] != '\0' ? m->org : "-",
			       m->address[0] != '\0' ? m->address : "-", match,
			       (unsigned long long)m->lag);
		}
		if (s->progress_age_ms > 0) {
			printf("(match and lag as the leader reported them %llu ms ago)\n",
			       (unsigned long long)s->progress_age_ms);
		}
	}
	const struct carelog_transport_stats *t = &s->transport;
	printf("\nverified signatures %llu\n", (unsigned long long)s->verified_signatures);
	printf("synced writes       %llu\n", (unsigned long long)s->syncs);
	printf("transport           sent %llu, received %llu, handshakes %llu\n",
	       (unsigned long long)t->sent, (unsigned long long)t->received,
	       (unsigned long long)t->handshakes);
	printf("dropped             auth %llu, replay %llu, unknown sender %llu\n",
	       (unsigned long long)t->dropped_auth, (unsigned long long)t->dropped_replay,
	       (unsigned long long)t->dropped_unknown);
	const struct carelog_audit_stats *a = &s->audit;
	if (s->has_audit) {
		printf("audit queue         %llu rows queued, shipped through seq %llu (next %llu), "
		       "syncs %llu, failures write %llu / ship %llu\n",
		       (unsigned long long)a->queued_rows, (unsigned long long)a->shipped_seq,
		       (unsigned long long)a->next_seq, (unsigned long long)a->syncs,
		       (unsigned long long)a->write_failures, (unsigned long long)a->ship_failures);
	} else {
		printf("audit queue         not reported (the node predates the audit queue)\n");
	}
}

static int ctl_status(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_status *s;
	int rc = carelog_status(c, o->timeout_ms, &s);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	char head[2 * CARELOG_ID_BYTES + 1];
	ctl_hex(head, s->chain_head, sizeof(s->chain_head));
	if (o->json) {
		ctl_json_status(s, head);
	} else {
		ctl_print_status(s, head);
	}
	carelog_status_free(s);
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ append */

/* Reads a body file ("-" = stdin) whole, refusing more than CTL_BODY_BYTES_MAX. */
int ctl_read_body(const struct ctl_options *o, uint8_t **out, size_t *out_len)
{
	bool is_stdin = strcmp(o->body_file, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(o->body_file, "rb");
	if (f == NULL) {
		return ctl_fail(o, errno == ENOENT ? CARELOG_ENOTFOUND : CARELOG_EIO, "%s: %s",
				o->body_file, strerror(errno));
	}
	size_t cap = 64 * 1024;
	size_t len = 0;
	uint8_t *buf = malloc(cap);
	int exit_code = CTL_EXIT_OK;
	while (buf != NULL) {
		if (len == cap) {
			if (cap > CTL_BODY_BYTES_MAX) {
				exit_code = ctl_fail(o, CARELOG_ETOOBIG, "%s: more than %d bytes",
						     o->body_file, CTL_BODY_BYTES_MAX);
				break;
			}
			uint8_t *grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				break;
			}
			buf = grown;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				exit_code = ctl_fail(o, CARELOG_EIO, "%s: read error", o->body_file);
			}
			break;
		}
	}
	if (buf == NULL || (exit_code == CTL_EXIT_OK && len > CTL_BODY_BYTES_MAX)) {
		exit_code = buf == NULL ? ctl_fail(o, CARELOG_ENOMEM, "%s", "")
					: ctl_fail(o, CARELOG_ETOOBIG, "%s: more than %d bytes",
						   o->body_file, CTL_BODY_BYTES_MAX);
	}
	if (!is_stdin) {
		fclose(f);
	}
	if (exit_code != CTL_EXIT_OK) {
		free(buf);
		return exit_code;
	}
	*out = buf;
	*out_len = len;
	return CTL_EXIT_OK;
}

void ctl_append_print(const struct ctl_options *o, int rc, const struct carelog_append_result *r)
{
	char id[2 * CARELOG_ID_BYTES + 1];
	ctl_hex(id, r->id, sizeof(r->id));
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "state");
		ctl_json_string(&j, rc == CARELOG_OK ? "committed" : "pending");
		ctl_json_key(&j, "index");
		if (rc == CARELOG_OK) {
			ctl_json_u64(&j, r->index);
		} else {
			ctl_json_null(&j);
		}
		ctl_json_key(&j, "id");
		if (rc == CARELOG_OK) {
			ctl_json_string(&j, id);
		} else {
			ctl_json_null(&j);
		}
		ctl_json_key(&j, "request_id");
		ctl_json_string(&j, r->request_id);
		ctl_json_key(&j, "duplicate");
		ctl_json_bool(&j, r->duplicate);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else if (rc == CARELOG_OK) {
		printf("committed  index %llu%s\n", (unsigned long long)r->index,
		       r->duplicate ? " (already appended by an earlier try)" : "");
		printf("id         %s\n", id);
		printf("request id %s\n", r->request_id);
	} else {
		printf("pending    retry with --request-id %s\n", r->request_id);
	}
}

static int ctl_append(const struct ctl_options *o, struct carelog_client *c)
{
	uint8_t *file_body = NULL;
	struct carelog_append_args a = {
		.patient = o->patient,
		.kind = o->kind,
		.request_id = o->request_id,
		.media_type = o->media_type,
		.status = o->status,
		.sensitivity = o->sensitivity,
		.clinical_time_ms = o->clinical_time_ms,
		.corrects = o->has_corrects ? o->corrects : NULL,
	};
	if (o->body_file != NULL) {
		int exit_code = ctl_read_body(o, &file_body, &a.body_len);
		if (exit_code != CTL_EXIT_OK) {
			return exit_code;
		}
		a.body = file_body;
	} else {
		a.body = o->body_text;
		a.body_len = strlen(o->body_text);
	}
	struct carelog_append_result r;
	int rc = carelog_append(c, &a, o->timeout_ms, &r);
	free(file_body);
	return ctl_append_finish(o, rc, &r);
}

int ctl_append_finish(const struct ctl_options *o, int rc, const struct carelog_append_result *r)
{
	if (rc != CARELOG_OK && rc != CARELOG_EPENDING) {
		return ctl_fail_call(o, rc);
	}
	ctl_append_print(o, rc, r);
	if (rc == CARELOG_EPENDING) {
		return ctl_fail_call(o, rc);
	}
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ entries */

void ctl_json_time(struct ctl_json *j, const char *key, uint64_t ms)
{
	char text[CTL_TIME_TEXT_BYTES];
	char key_ms[40];
	snprintf(key_ms, sizeof(key_ms), "%s_ms", key);
	ctl_json_key(j, key);
	if (ms == 0) {
		ctl_json_null(j);
	} else {
		ctl_time_format(text, ms);
		ctl_json_string(j, text);
	}
	ctl_json_key(j, key_ms);
	ctl_json_u64(j, ms);
}

static void ctl_json_entry(struct ctl_json *j, const struct carelog_entry *e)
{
	ctl_json_object_begin(j);
	ctl_json_key(j, "index");
	ctl_json_u64(j, e->index);
	ctl_json_key(j, "id");
	ctl_json_hex(j, e->id, sizeof(e->id));
	ctl_json_key(j, "kind");
	ctl_json_string(j, e->kind);
	ctl_json_key(j, "patient");
	ctl_json_string(j, e->patient);
	ctl_json_key(j, "author");
	ctl_json_string(j, e->author);
	ctl_json_key(j, "role");
	ctl_json_string(j, e->role);
	ctl_json_key(j, "org");
	ctl_json_string(j, e->org);
	ctl_json_key(j, "unit");
	ctl_json_string(j, e->unit);
	ctl_json_key(j, "node_id");
	ctl_json_u64(j, e->node_id);
	ctl_json_time(j, "time", e->time_ms);
	ctl_json_time(j, "author_time", e->author_time_ms);
	ctl_json_time(j, "clinical_time", e->clinical_time_ms);
	ctl_json_key(j, "status");
	ctl_json_string(j, e->status);
	ctl_json_key(j, "sensitivity");
	ctl_json_string(j, e->sensitivity);
	ctl_json_key(j, "media_type");
	ctl_json_string(j, e->media_type);
	ctl_json_key(j, "request_id");
	ctl_json_string(j, e->request_id);
	ctl_json_key(j, "corrects");
	if (e->has_corrects) {
		ctl_json_hex(j, e->corrects, sizeof(e->corrects));
	} else {
		ctl_json_null(j);
	}
	ctl_json_key(j, "superseded_by");
	if (e->has_superseded_by) {
		ctl_json_hex(j, e->superseded_by, sizeof(e->superseded_by));
	} else {
		ctl_json_null(j);
	}
	ctl_json_key(j, "erased");
	ctl_json_bool(j, e->body_erased);
	ctl_json_key(j, "erasure");
	if (e->body_erased) {
		ctl_json_object_begin(j);
		ctl_json_key(j, "index");
		ctl_json_u64(j, e->erased_index);
		ctl_json_time(j, "time", e->erased_time_ms);
		ctl_json_key(j, "author");
		ctl_json_string(j, e->erased_author);
		ctl_json_key(j, "org");
		ctl_json_string(j, e->erased_org);
		ctl_json_key(j, "basis");
		ctl_json_string(j, e->erased_basis);
		ctl_json_object_end(j);
	} else {
		ctl_json_null(j);
	}
	/* JSON strings carry any valid UTF-8 (escaped as needed); other bytes go as base64. */
	bool text = ctl_utf8_valid(e->body, e->body_len);
	ctl_json_key(j, "body");
	if (e->body_erased) {
		ctl_json_null(j);
	} else if (text) {
		ctl_json_string_n(j, e->body, e->body_len);
	} else {
		char *b64 = malloc(ctl_base64_size(e->body_len));
		if (b64 == NULL) {
			ctl_json_null(j);
			text = true;
		} else {
			ctl_base64_encode(b64, e->body, e->body_len);
			ctl_json_string(j, b64);
			free(b64);
		}
	}
	ctl_json_key(j, "body_encoding");
	if (e->body_erased) {
		ctl_json_null(j);
	} else {
		ctl_json_string(j, text ? "utf-8" : "base64");
	}
	ctl_json_object_end(j);
}

static void ctl_time_or(char out[CTL_TIME_TEXT_BYTES], uint64_t ms, const char *none)
{
	if (ms == 0) {
		snprintf(out, CTL_TIME_TEXT_BYTES, "%s", none);
	} else {
		ctl_time_format(out, ms);
	}
}

/* A policy entry in words ("care relation with st-olavs/cardio from ... until open-ended").
 * False when the body does not decode (it is then shown as base64 like any other). */
static bool ctl_print_policy(const struct carelog_entry *e)
{
	enum policy_kind kind = policy_kind_of(e->kind);
	if (kind == POLICY_KIND_NONE || strcmp(e->media_type, POLICY_MEDIA_TYPE) != 0) {
		return false;
	}
	struct policy_body *b = malloc(sizeof(*b)); /* large: audit batches list 2000 rows */
	if (b == NULL || policy_body_decode(kind, e->body, e->body_len, b) != CARELOG_OK) {
		free(b);
		return false;
	}
	char ref[2 * CARELOG_ID_BYTES + 1];
	char from[CTL_TIME_TEXT_BYTES];
	char to[CTL_TIME_TEXT_BYTES];
	ctl_hex(ref, b->ref, sizeof(b->ref));
	ctl_time_or(from, b->from_ms, "the start");
	ctl_time_or(to, b->to_ms, "open-ended");
	printf("    policy       ");
	switch (kind) {
	case POLICY_KIND_PATIENT:
		printf("birth date %s\n", b->birth_date);
		break;
	case POLICY_KIND_CARE_RELATION:
		printf("care relation with %s%s%s, from %s until %s\n", b->org,
		       b->unit[0] != '\0' ? "/" : " (the whole organisation)", b->unit, from, to);
		printf("    covers       ");
		for (uint32_t i = 0; i < b->categories_count; i++) {
			printf("%s%s", i == 0 ? "" : ", ", b->categories[i]);
		}
		printf("%s\n", b->categories_count == 0 ? "no shielded categories" : "");
		break;
	case POLICY_KIND_CARE_RELATION_END:
		printf("ends care relation %s\n", ref);
		break;
	case POLICY_KIND_BLOCK:
		printf("blocks %s%s%s from %s%s\n",
		       strcmp(b->word, "category") == 0 ? "the category " :
		       strcmp(b->word, "entry") == 0    ? "entry "
							: "the whole record",
		       strcmp(b->word, "category") == 0 ? b->category : "",
		       strcmp(b->word, "entry") == 0 ? ref : "",
		       b->target_org[0] != '\0' ? "organisation " : "",
		       b->target_org[0] != '\0' ? b->target_org : b->actor);
		break;
	case POLICY_KIND_BLOCK_LIFT:
		printf("lifts block %s\n", ref);
		break;
	case POLICY_KIND_WITHHOLD:
		printf("withholds entry %s from %s: %s\n", ref,
		       strcmp(b->word, "guardians") == 0 ? "parents" : "the patient", b->text);
		break;
	case POLICY_KIND_WITHHOLD_LIFT:
		printf("lifts withholding %s\n", ref);
		break;
	case POLICY_KIND_PROXY_GRANT:
		printf("%s may act for the patient (%s, level %s) from %s until %s\n", b->actor,
		       b->word, b->level, from, to);
		break;
	case POLICY_KIND_PROXY_REVOKE:
		printf("revokes proxy grant %s\n", ref);
		break;
	case POLICY_KIND_AMBULANCE:
		printf("ambulance crew %s may read from %s until %s\n", b->actor, from, to);
		break;
	case POLICY_KIND_BTG_GRANT:
		printf("break-the-glass for %u h: %s: %s\n", b->hours, b->reason_code, b->text);
		break;
	case POLICY_KIND_BTG_REVIEW:
		printf("review of break-the-glass %s: %s%s%s\n", ref, b->word,
		       b->text[0] != '\0' ? ": " : "", b->text);
		break;
	case POLICY_KIND_ERASURE:
		printf("erases entry %s: %s\n", ref, b->text);
		break;
	case POLICY_KIND_PARAMS:
		printf("implicit access %u days, break-the-glass at most %u h, ambulance at most "
		       "%u h\n",
		       b->implicit_window_days, b->btg_hours_max, b->ambulance_hours_max);
		break;
	default:
		printf("%s\n", e->kind);
		break;
	}
	free(b);
	return true;
}

static void ctl_print_body(const struct carelog_entry *e)
{
	if (e->body_erased) {
		char when[CTL_TIME_TEXT_BYTES] = "an unknown time";
		if (e->erased_time_ms != 0) {
			ctl_time_format(when, e->erased_time_ms);
		}
		printf(
		    "    body         (erased lawfully at %s by %s%s%s%s, erasure entry #%llu)\n",
		    when, e->erased_author[0] != '\0' ? e->erased_author : "?",
		    e->erased_org[0] != '\0' ? " (" : "", e->erased_org,
		    e->erased_org[0] != '\0' ? ")" : "", (unsigned long long)e->erased_index);
		if (e->erased_basis[0] != '\0') {
			printf("    basis        %s\n", e->erased_basis);
		}
		return;
	}
	if (ctl_print_policy(e)) {
		return;
	}
	if (ctl_text_printable(e->body, e->body_len)) {
		printf("    body         %s, %zu bytes\n", e->media_type, e->body_len);
		const char *p = (const char *)e->body;
		const char *end = p + e->body_len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
			printf("      %.*s\n", (int)n, p);
			p += n + (nl != NULL ? 1 : 0);
		}
		return;
	}
	printf("    body         %s, %zu bytes, base64:\n", e->media_type, e->body_len);
	char *b64 = malloc(ctl_base64_size(e->body_len));
	if (b64 == NULL) {
		printf("      (out of memory)\n");
		return;
	}
	ctl_base64_encode(b64, e->body, e->body_len);
	size_t len = strlen(b64);
	for (size_t i = 0; i < len; i += CTL_BASE64_LINE_CHARS) {
		printf("      %.*s\n", CTL_BASE64_LINE_CHARS, b64 + i);
	}
	free(b64);
}

static void ctl_print_entry(const struct carelog_entry *e)
{
	char when[CTL_TIME_TEXT_BYTES];
	char id[2 * CARELOG_ID_BYTES + 1];
	ctl_time_format(when, e->time_ms);
	ctl_hex(id, e->id, sizeof(e->id));
	printf("#%-6llu %s  %s  %s\n", (unsigned long long)e->index, when, e->kind, e->status);
	printf("    id           %s\n", id);
	printf("    patient      %s\n", e->patient);
	printf("    author       %s%s%s%s  %s%s%s  (node %llu)\n", e->author,
	       e->role[0] != '\0' ? " (" : "", e->role, e->role[0] != '\0' ? ")" : "", e->org,
	       e->unit[0] != '\0' ? "/" : "", e->unit, (unsigned long long)e->node_id);
	if (e->clinical_time_ms != 0 && e->clinical_time_ms != e->author_time_ms) {
		ctl_time_format(when, e->clinical_time_ms);
		printf("    clinical     %s\n", when);
	}
	if (strcmp(e->sensitivity, "normal") != 0 && e->sensitivity[0] != '\0') {
		printf("    sensitivity  %s\n", e->sensitivity);
	}
	if (e->has_corrects) {
		ctl_hex(id, e->corrects, sizeof(e->corrects));
		printf("    corrects     %s\n", id);
	}
	if (e->has_superseded_by) {
		ctl_hex(id, e->superseded_by, sizeof(e->superseded_by));
		printf("    superseded   by %s\n", id);
	}
	printf("    request id   %s\n", e->request_id);
	ctl_print_body(e);
}

/* ------------------------------------------------------------------ read, get */

const char *ctl_basis_words(const char *basis)
{
	static const struct {
		const char *basis;
		const char *words;
	} table[] = {
	    {"relation", "relation (a care relation with this patient)"},
	    {"implicit", "implicit (this organisation treated the patient recently)"},
	    {"proxy", "proxy (acting for the patient)"},
	    {"btg", "btg (break-the-glass grant, to be reviewed)"},
	    {"self", "self (the patient's own record)"},
	    {"assignment", "assignment (ambulance assignment)"},
	    {"role", "role"},
	    {"none", "none (denied)"},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(table); i++) {
		if (strcmp(basis, table[i].basis) == 0) {
			return table[i].words;
		}
	}
	return basis;
}

void ctl_withheld_line(char *out, size_t out_len, const struct carelog_read_result *r)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->withheld_reasons_count && n < out_len; i++) {
		int w = snprintf(out + n, out_len - n, "%s%s: %u", i == 0 ? " (" : ", ",
		                 r->withheld_reasons[i].reason, r->withheld_reasons[i].count);
		n += w > 0 ? (size_t)w : 0;
	}
	if (n > 0 && n + 1 < out_len) {
		out[n] = ')';
		out[n + 1] = '\0';
	}
}

static int ctl_read(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_read_args a = {
	    .patient = o->patient,
	    .consistency =
	        o->linearizable ? CARELOG_CONSISTENCY_LINEARIZABLE : CARELOG_CONSISTENCY_LOCAL,
	    .min_index = o->min_index,
	    .kind = o->kind,
	    .since_index = o->since_index,
	    .limit = o->limit,
	    .history = o->history,
	};
	struct carelog_read_result *r;
	int rc = carelog_read(c, &a, o->timeout_ms, &r);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "applied_index");
		ctl_json_u64(&j, r->applied_index);
		ctl_json_key(&j, "lag");
		ctl_json_u64(&j, r->lag);
		ctl_json_key(&j, "stale");
		ctl_json_bool(&j, r->stale);
		ctl_json_key(&j, "basis");
		ctl_json_string(&j, r->basis);
		ctl_json_key(&j, "withheld");
		ctl_json_u64(&j, r->withheld);
		ctl_json_key(&j, "withheld_reasons");
		ctl_json_array_begin(&j);
		for (size_t i = 0; i < r->withheld_reasons_count; i++) {
			ctl_json_object_begin(&j);
			ctl_json_key(&j, "reason");
			ctl_json_string(&j, r->withheld_reasons[i].reason);
			ctl_json_key(&j, "count");
			ctl_json_u64(&j, r->withheld_reasons[i].count);
			ctl_json_object_end(&j);
		}
		ctl_json_array_end(&j);
		ctl_json_key(&j, "more");
		ctl_json_bool(&j, r->more);
		ctl_json_key(&j, "entries");
		ctl_json_array_begin(&j);
		for (size_t i = 0; i < r->entries_count; i++) {
			ctl_json_entry(&j, &r->entries[i]);
		}
		ctl_json_array_end(&j);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		if (r->stale) {
			fprintf(stderr,
				"carelogctl: read: warning: this replica is stale (lag %llu): entries "
				"may be missing; use --consistency linearizable or another node\n",
				(unsigned long long)r->lag);
		}
		printf("%zu entr%s  (applied index %llu, lag %llu%s)\n", r->entries_count,
		       r->entries_count == 1 ? "y" : "ies", (unsigned long long)r->applied_index,
		       (unsigned long long)r->lag, r->stale ? ", STALE" : "");
		if (r->basis[0] != '\0') {
			printf("access: %s\n", ctl_basis_words(r->basis));
		}
		if (r->withheld > 0) {
			char why[1024];
			ctl_withheld_line(why, sizeof(why), r);
			printf("withheld: %u%s\n", r->withheld, why);
		}
		for (size_t i = 0; i < r->entries_count; i++) {
			printf("\n");
			ctl_print_entry(&r->entries[i]);
		}
		if (r->more && r->entries_count > 0) {
			printf("\nmore entries: read again with --since-index %llu\n",
			       (unsigned long long)r->entries[r->entries_count - 1].index);
		}
	}
	carelog_read_result_free(r);
	return CTL_EXIT_OK;
}

static int ctl_get(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_get_args a = {0};
	memcpy(a.id, o->id, sizeof(a.id));
	struct carelog_entry *e;
	int rc = carelog_get(c, &a, o->timeout_ms, &e);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_entry(&j, e);
		ctl_json_finish(&j);
	} else {
		ctl_print_entry(e);
	}
	carelog_entry_free(e);
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ verify */

static int ctl_verify(const struct ctl_options *o, struct carelog_client *c)
{
	struct carelog_verify_result *v;
	int rc = carelog_verify(c, o->timeout_ms, &v);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	char head[2 * CARELOG_ID_BYTES + 1];
	ctl_hex(head, v->chain_head, sizeof(v->chain_head));
	if (o->json) {
		struct ctl_json j;
		ctl_json_init(&j, stdout);
		ctl_json_object_begin(&j);
		ctl_json_key(&j, "ok");
		ctl_json_bool(&j, v->ok);
		ctl_json_key(&j, "entries_checked");
		ctl_json_u64(&j, v->entries_checked);
		ctl_json_key(&j, "values_checked");
		ctl_json_u64(&j, v->values_checked);
		ctl_json_key(&j, "problems_count");
		ctl_json_u64(&j, v->problems_count);
		ctl_json_key(&j, "problems");
		ctl_json_array_begin(&j);
		for (size_t i = 0; i < v->problems_listed; i++) {
			ctl_json_string(&j, v->problems[i]);
		}
		ctl_json_array_end(&j);
		ctl_json_key(&j, "chain_head");
		ctl_json_string(&j, head);
		ctl_json_key(&j, "applied_index");
		ctl_json_u64(&j, v->applied_index);
		ctl_json_object_end(&j);
		ctl_json_finish(&j);
	} else {
		printf("%s  %llu entries, %llu values checked\n", v->ok ? "ok" : "FAILED",
		       (unsigned long long)v->entries_checked, (unsigned long long)v->values_checked);
		printf("chain head %s at index %llu\n", head, (unsigned long long)v->applied_index);
		for (size_t i = 0; i < v->problems_listed; i++) {
			printf("  problem: %s\n", v->problems[i]);
		}
		if (v->problems_count > v->problems_listed) {
			printf("  ... and %llu more\n",
			       (unsigned long long)(v->problems_count - v->problems_listed));
		}
	}
	int exit_code = CTL_EXIT_OK;
	if (!v->ok) {
		exit_code = ctl_fail(o, CARELOG_ECORRUPT, "%llu problem%s found",
				     (unsigned long long)v->problems_count,
				     v->problems_count == 1 ? "" : "s");
	}
	carelog_verify_result_free(v);
	return exit_code;
}

/* ------------------------------------------------------------------ main */

static int ctl_run_network(const struct ctl_options *o)
{
	struct carelog_client *c;
	int rc = carelog_client_open(o->endpoint, &c);
	if (rc != CARELOG_OK) {
		return ctl_fail_call(o, rc);
	}
	/* who acts, in every request of this command (the parser bounded every field) */
	rc = carelog_client_set_actor(c, o->actor, o->role, o->unit, o->purpose);
	if (rc != CARELOG_OK) {
		carelog_client_close(c);
		return ctl_fail_call(o, rc);
	}
	int exit_code;
	switch (o->command) {
	case CTL_CMD_STATUS:
		exit_code = ctl_status(o, c);
		break;
	case CTL_CMD_APPEND:
		exit_code = ctl_append(o, c);
		break;
	case CTL_CMD_READ:
		exit_code = ctl_read(o, c);
		break;
	case CTL_CMD_GET:
		exit_code = ctl_get(o, c);
		break;
	case CTL_CMD_VERIFY:
		exit_code = ctl_verify(o, c);
		break;
	case CTL_CMD_BENCH_APPEND:
		exit_code = ctl_run_bench_append(o, c);
		break;
	case CTL_CMD_MEMBER_ADD_LEARNER:
	case CTL_CMD_MEMBER_PROMOTE:
	case CTL_CMD_MEMBER_REMOVE:
		exit_code = ctl_run_member(o, c);
		break;
	case CTL_CMD_TRANSFER_LEADER:
		exit_code = ctl_run_transfer_leader(o, c);
		break;
	default:
		exit_code = ctl_run_access(o, c);
		break;
	}
	carelog_client_close(c);
	return exit_code;
}

int main(int argc, char *argv[])
{
	static struct ctl_options o; /* large (cluster members): not on the stack */
	char err[512];
	const struct ctl_env env = {
	    .endpoint = getenv("CARELOG_ENDPOINT"),
	    .actor = getenv("CARELOG_ACTOR"),
	    .unit = getenv("CARELOG_UNIT"),
	};
	int exit_code = ctl_parse(argc, argv, &env, &o, err, sizeof(err));
	if (exit_code != CTL_EXIT_OK) {
		fprintf(stderr, "carelogctl: %s\n", err);
		return exit_code;
	}
	if (o.help) {
		ctl_usage(stdout, o.command);
		return CTL_EXIT_OK;
	}
	switch (o.command) {
	case CTL_CMD_NONE:
		printf("carelogctl %s\n", CTL_VERSION);
		exit_code = CTL_EXIT_OK;
		break;
	case CTL_CMD_KEYGEN:
		exit_code = ctl_run_keygen(&o);
		break;
	case CTL_CMD_CLUSTER_INIT:
		exit_code = ctl_run_cluster_init(&o);
		break;
	case CTL_CMD_COMPACT:
		exit_code = ctl_run_compact(&o);
		break;
	default:
		exit_code = ctl_run_network(&o);
		break;
	}
	if (fflush(stdout) != 0 && exit_code == CTL_EXIT_OK) {
		fprintf(stderr, "carelogctl: cannot write output: %s\n", strerror(errno));
		exit_code = CTL_EXIT_FAILED;
	}
	return exit_code;
}
