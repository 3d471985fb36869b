/* Trace hashing and formatting: events are stored raw and formatted only when printed. */
#include "sim_trace.h"

#include <inttypes.h>
#include <string.h>

#include "sim_prng.h"

void sim_trace_init(struct sim_trace *t, FILE *verbose)
{
	memset(t, 0, sizeof(*t));
	t->hash = sim_fnv_init();
	t->verbose = verbose;
}

void sim_trace_event(struct sim_trace *t, uint32_t kind, uint64_t node, uint64_t a, uint64_t b,
                     uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	struct sim_event *ev = &t->ring[t->count % SIM_TRACE_RING];
	ev->kind = kind;
	ev->node = (uint32_t)node;
	ev->tick = t->tick;
	ev->a = a;
	ev->b = b;
	ev->c = c;
	ev->d = d;
	ev->e = e;
	ev->f = f;
	/* Fields are hashed one by one (never the struct), so padding and layout never matter. */
	uint64_t h = t->hash;
	h = sim_fnv_u64(h, kind);
	h = sim_fnv_u64(h, node);
	h = sim_fnv_u64(h, t->tick);
	h = sim_fnv_u64(h, a);
	h = sim_fnv_u64(h, b);
	h = sim_fnv_u64(h, c);
	h = sim_fnv_u64(h, d);
	h = sim_fnv_u64(h, e);
	h = sim_fnv_u64(h, f);
	t->hash = h;
	t->count++;
	if (t->verbose != NULL) {
		char buf[256];
		sim_trace_format(ev, buf, sizeof(buf));
		fprintf(t->verbose, "%s\n", buf);
	}
}

const char *sim_msg_type_name(uint64_t type)
{
	static const char *const names[] = {
	    "?",          "APPEND",          "APPEND_RESP", "HEARTBEAT", "HEARTBEAT_RESP",
	    "PRE_VOTE",   "PRE_VOTE_RESP",   "VOTE",        "VOTE_RESP", "TIMEOUT_NOW",
	    "READ_INDEX", "READ_INDEX_RESP",
	};
	if (type >= sizeof(names) / sizeof(names[0])) {
		return "?";
	}
	return names[type];
}

static const char *const sim_drop_reasons[] = {
    "loss", "cut", "down", "full", "enomem", "unknown-node",
};

static const char *const sim_crash_points[] = {
    "before-persist", "before-sync",    "before-send", "before-apply",
    "mid-apply",      "before-advance", "idle",
};

void sim_trace_format(const struct sim_event *ev, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "t=%-6" PRIu64 " ", ev->tick);
	if (n < 0 || (size_t)n >= cap) {
		return;
	}
	char *p = buf + n;
	size_t left = cap - (size_t)n;
	unsigned node = ev->node;
	switch (ev->kind) {
	case SIM_EV_TICK:
		snprintf(p, left, "n%u tick", node);
		break;
	case SIM_EV_SEND:
	case SIM_EV_DELIVER:
		snprintf(p, left,
		         "%s n%u->n%" PRIu64 " %s term=%" PRIu64 " index=%" PRIu64
		         " entries=%" PRIu64 " commit=%" PRIu64 "%s",
		         ev->kind == SIM_EV_SEND ? "send" : "deliver", node, ev->a,
		         sim_msg_type_name(ev->b), ev->c, ev->d, ev->e,
		         (uint64_t)(ev->f & ~(1ULL << 63)), (ev->f >> 63) != 0 ? " reject" : "");
		break;
	case SIM_EV_DROP:
		snprintf(p, left, "drop n%u->n%" PRIu64 " %s (%s)", node, ev->a,
		         sim_msg_type_name(ev->b),
		         ev->c < sizeof(sim_drop_reasons) / sizeof(sim_drop_reasons[0])
		             ? sim_drop_reasons[ev->c]
		             : "?");
		break;
	case SIM_EV_READY:
		snprintf(p, left,
		         "n%u ready term=%" PRIu64 " vote=%" PRIu64 " commit=%" PRIu64
		         " entries=%" PRIu64 "@%" PRIu64 " msgs=%" PRIu64 "+%" PRIu64
		         " committed=%" PRIu64,
		         node, ev->a, ev->b, ev->c, ev->d, ev->e, ev->f >> 48,
		         (ev->f >> 32) & 0xffff, ev->f & 0xffffffff);
		break;
	case SIM_EV_CRASH:
		snprintf(p, left, "n%u CRASH (%s)", node,
		         ev->a < sizeof(sim_crash_points) / sizeof(sim_crash_points[0])
		             ? sim_crash_points[ev->a]
		             : "?");
		break;
	case SIM_EV_RESTART:
		snprintf(p, left,
		         "n%u restart applied=%" PRIu64 " term=%" PRIu64 " commit=%" PRIu64
		         " rc=%" PRIu64,
		         node, ev->a, ev->b, ev->c, ev->d);
		break;
	case SIM_EV_PROPOSE:
		snprintf(p, left, "n%u propose id=%" PRIu64 " rc=%" PRIu64 " index=%" PRIu64, node,
		         ev->a, ev->b, ev->c);
		break;
	case SIM_EV_ACK:
		snprintf(p, left, "n%u ack id=%" PRIu64 " index=%" PRIu64, node, ev->a, ev->b);
		break;
	case SIM_EV_READ:
		snprintf(p, left, "n%u read ctx=%" PRIu64 " rc=%" PRIu64 " needs>=%" PRIu64, node,
		         ev->a, ev->b, ev->c);
		break;
	case SIM_EV_READ_DONE:
		snprintf(p, left,
		         "n%u read done ctx=%" PRIu64 " index=%" PRIu64 " applied=%" PRIu64, node,
		         ev->a, ev->b, ev->c);
		break;
	case SIM_EV_CONF_PROPOSE:
		snprintf(p, left,
		         "n%u conf propose kind=%" PRIu64 " target=n%" PRIu64 " rc=%" PRIu64
		         " index=%" PRIu64,
		         node, ev->a, ev->b, ev->c, ev->d);
		break;
	case SIM_EV_CONF_APPLY:
		snprintf(p, left,
		         "n%u conf applied index=%" PRIu64 " voters=%#" PRIx64 " learners=%#" PRIx64
		         " outgoing=%#" PRIx64,
		         node, ev->a, ev->b, ev->c, ev->d);
		break;
	case SIM_EV_TRANSFER:
		snprintf(p, left, "n%u transfer to n%" PRIu64 " rc=%" PRIu64, node, ev->a, ev->b);
		break;
	case SIM_EV_PARTITION:
		snprintf(p, left, "partition kind=%" PRIu64 " side=%#" PRIx64 " one-way=%" PRIu64,
		         ev->a, ev->b, ev->c);
		break;
	case SIM_EV_HEAL:
		snprintf(p, left, "heal kind=%" PRIu64, ev->a);
		break;
	case SIM_EV_CLOG:
		snprintf(p, left, "clog n%u->n%" PRIu64, node, ev->a);
		break;
	case SIM_EV_UNCLOG:
		snprintf(p, left, "unclog n%u->n%" PRIu64, node, ev->a);
		break;
	case SIM_EV_ENOMEM:
		snprintf(p, left, "n%u ENOMEM at %" PRIu64, node, ev->a);
		break;
	case SIM_EV_LEADER:
		snprintf(p, left, "n%u LEADER term=%" PRIu64, node, ev->a);
		break;
	case SIM_EV_NODE_ADD:
		snprintf(p, left, "n%u node started (new member)", node);
		break;
	case SIM_EV_NODE_STOP:
		snprintf(p, left, "n%u node stopped (removed)", node);
		break;
	case SIM_EV_PHASE:
		snprintf(p, left, "phase %s", ev->a == 0 ? "faults" : "liveness");
		break;
	case SIM_EV_APPLY:
		snprintf(p, left, "n%u apply index=%" PRIu64 " term=%" PRIu64 " chain=%016" PRIx64,
		         node, ev->a, ev->b, ev->c);
		break;
	default:
		snprintf(p, left, "event %u", ev->kind);
		break;
	}
}

void sim_trace_dump(const struct sim_trace *t, FILE *out, unsigned n)
{
	if (n > SIM_TRACE_RING) {
		n = SIM_TRACE_RING;
	}
	uint64_t first = t->count > n ? t->count - n : 0;
	for (uint64_t i = first; i < t->count; i++) {
		char buf[256];
		sim_trace_format(&t->ring[i % SIM_TRACE_RING], buf, sizeof(buf));
		fprintf(out, "  %s\n", buf);
	}
}
