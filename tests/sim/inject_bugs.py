#!/usr/bin/env python3
"""Injects known consensus bugs into a scratch copy of the tree and shows the simulator catching them.

Each bug is a textual edit of consensus/ in a copy (never in the repository). For each bug:
copy the tree, apply the edit, build carelog-sim there, run the seeds until the first violation,
print one Markdown table row, delete the copy. The edits match the consensus code as of
2026-11-24; if the code moved on, the script says which edit no longer applies.

    tests/sim/inject_bugs.py [--tree /work/main] [--work /tmp/carelog-inject]
                             [--seeds 1..1000] [--bug NAME]... [--ignore-seed S]...
                             [--checks all|outcome|both] [--keep]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

BUGS = [
    {
        "name": "vote-counted-twice",
        "what": "a vote counted twice (a duplicated grant is counted for another voter)",
        "file": "consensus/election.c",
        "old": """	if (pr != NULL && pr->vote == CS_VOTE_NONE) {
		pr->vote = granted ? CS_VOTE_GRANTED : CS_VOTE_REJECTED;
	}""",
        "new": """	if (pr != NULL && pr->vote == CS_VOTE_NONE) {
		pr->vote = granted ? CS_VOTE_GRANTED : CS_VOTE_REJECTED;
	} else if (pr != NULL && granted && pr->vote == CS_VOTE_GRANTED) {
		/* INJECTED: a duplicate grant counts again (a tally, not a set). */
		for (uint32_t i = 0; i < c->progress_count; i++) {
			if (c->progress[i].vote == CS_VOTE_NONE &&
			    cs_conf_is_voter(&c->conf, c->progress[i].id)) {
				c->progress[i].vote = CS_VOTE_GRANTED;
				break;
			}
		}
	}""",
    },
    {
        "name": "figure-8",
        "what": "an earlier term's entry committed by counting replicas (Figure 8)",
        "file": "consensus/replication.c",
        "old": """	if (t != c->term) {
		return CARELOG_OK;
	}
	c->commit = mci;""",
        "new": """	(void)t; /* INJECTED: commit whatever a quorum holds, whatever its term */
	c->commit = mci;""",
    },
    {
        "name": "vote-before-persist",
        "what": "a vote granted before it is persisted (VOTE_RESP in messages_early)",
        "file": "consensus/send.c",
        "old": """bool cs_message_is_early(const struct consensus *c, const struct consensus_message *m)
{
""",
        "new": """bool cs_message_is_early(const struct consensus *c, const struct consensus_message *m)
{
	if (m->type == CONSENSUS_MSG_VOTE_RESP) {
		return true; /* INJECTED: vote responses leave before the vote is durable */
	}
""",
    },
    {
        "name": "conf-on-append",
        "what": "a configuration taking effect when appended instead of applied (leader)",
        "file": "consensus/confchange.c",
        "old": """	c->pending_conf_index = index;
	(void)cs_bcast_append(c);""",
        "new": """	c->pending_conf_index = index;
	{
		/* INJECTED: the new configuration takes effect as soon as it is appended. */
		struct cs_conf tmp = c->conf;
		c->conf = c->conf_scratch;
		c->conf_scratch = tmp;
		progress_sync(c);
		after_switch(c);
	}
	(void)cs_bcast_append(c);""",
        "prelude": """static void progress_sync(struct consensus *c);
static void after_switch(struct consensus *c);
""",
        "prelude_before": "int consensus_propose_conf_change(",
    },
    {
        "name": "no-prev-term-check",
        "what": "the previous-entry term check skipped on append",
        "file": "consensus/recv_append.c",
        "old": """	bool match;
	int rc = cs_log_match_term(c, m->index, m->log_term, &match);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (match) {
		rc = append_new(c, m);""",
        "new": """	bool match;
	int rc = cs_log_match_term(c, m->index, m->log_term, &match);
	if (rc != CARELOG_OK) {
		return rc;
	}
	match = m->index <= cs_log_last_index(c); /* INJECTED: only the index is checked */
	if (match) {
		rc = append_new(c, m);""",
    },
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", default=os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                  "..", "..")))
    p.add_argument("--work", default="/tmp/carelog-inject")
    p.add_argument("--seeds", default="1..1000")
    p.add_argument("--bug", action="append", help="only these bugs (by name)")
    p.add_argument("--ignore-seed", action="append", type=int, default=[],
                   help="seeds that fail without any injected bug (not counted)")
    p.add_argument("--keep", action="store_true", help="keep the scratch copies")
    p.add_argument("--checks", choices=["all", "outcome", "both"], default="both",
                   help="run with all checks, with --outcome-only, or both")
    return p.parse_args()


def copy_tree(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    ignore = shutil.ignore_patterns("build*", ".git")
    shutil.copytree(src, dst, ignore=ignore)


def apply_bug(root, bug):
    path = os.path.join(root, bug["file"])
    with open(path) as f:
        text = f.read()
    if text.count(bug["old"]) != 1:
        return "edit does not apply (the code changed): %s" % bug["file"]
    text = text.replace(bug["old"], bug["new"])
    if "prelude" in bug:
        anchor = bug["prelude_before"]
        if text.count(anchor) != 1:
            return "prelude anchor not found in %s" % bug["file"]
        text = text.replace(anchor, bug["prelude"] + anchor)
    with open(path, "w") as f:
        f.write(text)
    return None


def run(cmd, cwd, log):
    with open(log, "a") as f:
        return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode


def first_violation(root, build, seeds, ignore, extra):
    sim = os.path.join(build, "tests", "sim", "carelog-sim")
    stop = len(ignore) + 1
    t0 = time.time()
    out = subprocess.run([sim, "--seeds", seeds, "--stop-after", str(stop)] + extra, cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = out.stderr
    out = out.stdout
    secs = time.time() - t0
    seeds_run = len(re.findall(r"^seed=", out, re.M))
    for m in re.finditer(r'^VIOLATION seed=(\d+) invariant="([^"]*)"\n  (.*)$', out, re.M):
        seed = int(m.group(1))
        if seed not in ignore:
            return seed, m.group(2), m.group(3).strip(), seeds_run, secs
    m = re.search(r'^ABORT seed=(\d+)', out, re.M)
    if m:
        a = re.search(r'assert.failed (expr="[^"]*") at=(\S+)', err)
        assertion = "aborted: %s %s" % (a.group(1), a.group(2)) if a else "the process aborted"
        return int(m.group(1)), "abort", assertion, seeds_run, secs
    return None, None, None, seeds_run, secs


def main():
    args = parse_args()
    bugs = [b for b in BUGS if not args.bug or b["name"] in args.bug]
    print("| bug | checks | first failing seed | invariant | detail | seeds run | time |")
    print("|---|---|---|---|---|---|---|")
    failed = False
    for bug in bugs:
        root = os.path.join(args.work, bug["name"])
        copy_tree(args.tree, root)
        log = os.path.join(args.work, bug["name"] + ".log")
        err = apply_bug(root, bug)
        build = os.path.join(root, "build")
        if err is None and run(["meson", "setup", build, root], root, log) != 0:
            err = "meson setup failed (see %s)" % log
        if err is None and run(["ninja", "-C", build, "tests/sim/carelog-sim"], root, log) != 0:
            err = "build failed (see %s)" % log
        if err is not None:
            print("| %s | | - | %s | | | |" % (bug["what"], err))
            failed = True
        else:
            modes = [("all", []), ("outcome only", ["--outcome-only"])]
            if args.checks == "all":
                modes = modes[:1]
            elif args.checks == "outcome":
                modes = modes[1:]
            for label, extra in modes:
                seed, inv, detail, n, secs = first_violation(root, build, args.seeds,
                                                             set(args.ignore_seed), extra)
                if seed is None:
                    print("| %s | %s | NOT CAUGHT | | | %d | %.0f s |" % (bug["what"], label,
                                                                          n, secs))
                    failed = failed or label == "all"
                else:
                    print("| %s | %s | %d | %s | %s | %d | %.0f s |" % (
                        bug["what"], label, seed, inv, detail.replace("|", "/"), n, secs))
                sys.stdout.flush()
        sys.stdout.flush()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
