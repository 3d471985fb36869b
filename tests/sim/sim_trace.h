/* The simulator's trace: every event feeds one hash; the last events are kept for a post-mortem. */
#ifndef CARELOG_SIM_TRACE_H
#define CARELOG_SIM_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum sim_event_kind {
	SIM_EV_TICK = 1,  /* node */
	SIM_EV_SEND,      /* node=from a=to b=type c=term d=index e=entries f=commit|reject<<63 */
	SIM_EV_DELIVER,   /* same fields as SEND */
	SIM_EV_DROP,      /* node=from a=to b=type c=reason */
	SIM_EV_READY,     /* node a=term b=vote c=commit d=entries e=first index f=msgs/committed */
	SIM_EV_CRASH,     /* node a=crash point */
	SIM_EV_RESTART,   /* node a=applied b=term c=commit d=rc */
	SIM_EV_PROPOSE,   /* node a=proposal id b=rc c=index */
	SIM_EV_ACK,       /* node a=proposal id b=index */
	SIM_EV_READ,      /* node a=ctx b=rc c=acked index required */
	SIM_EV_READ_DONE, /* node a=ctx b=read index c=applied */
	SIM_EV_CONF_PROPOSE, /* node a=kind b=target c=rc d=index */
	SIM_EV_CONF_APPLY,   /* node a=index b=voters c=learners d=outgoing */
	SIM_EV_TRANSFER,     /* node a=target b=rc */
	SIM_EV_PARTITION,    /* a=kind b=side mask c=one-way */
	SIM_EV_HEAL,         /* a=kind */
	SIM_EV_CLOG,         /* node=from a=to */
	SIM_EV_UNCLOG,       /* node=from a=to */
	SIM_EV_ENOMEM,       /* node a=where */
	SIM_EV_LEADER,       /* node a=term */
	SIM_EV_NODE_ADD,     /* node */
	SIM_EV_NODE_STOP,    /* node */
	SIM_EV_PHASE,        /* a=phase */
	SIM_EV_APPLY,        /* node a=index b=term c=chain */
	SIM_EV_KIND_COUNT_
};

struct sim_event {
	uint32_t kind;
	uint32_t node;
	uint64_t tick;
	uint64_t a, b, c, d, e, f;
};

enum { SIM_TRACE_RING = 64 };

struct sim_trace {
	uint64_t hash;
	uint64_t count;
	uint64_t tick; /* stamped on each event */
	struct sim_event ring[SIM_TRACE_RING];
	FILE *verbose; /* NULL = quiet */
};

void sim_trace_init(struct sim_trace *t, FILE *verbose);
void sim_trace_event(struct sim_trace *t, uint32_t kind, uint64_t node, uint64_t a, uint64_t b,
                     uint64_t c, uint64_t d, uint64_t e, uint64_t f);
/* Prints the last `n` (at most SIM_TRACE_RING) events, oldest first. */
void sim_trace_dump(const struct sim_trace *t, FILE *out, unsigned n);
void sim_trace_format(const struct sim_event *ev, char *buf, size_t cap);
const char *sim_msg_type_name(uint64_t type);

#endif
