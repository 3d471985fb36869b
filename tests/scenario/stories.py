#!/usr/bin/env python3
"""The clinical access stories of issue 5, one per meson test (--story NAME), each on its own
region (region.py: st-olavs hospital, trondheim-kommune municipality, legekontor-lade GP
office as voters, helsenorge citizen portal as learner, one shared movable clock).

Every story asserts the decisions (the read's basis, what is shown and withheld and why,
denials with their reason) AND the audit rows that `carelogctl access-log` gives for them
(who, organisation, action, decision, basis, counts), then stops every node cleanly and checks
that no node log holds a patient id or a body. Patient ids and bodies are synthetic, made from
the printed seed.

  gp-reads-listed-patient   a GP reads their own listed patient (basis relation); the patient
                            sees that read in her access log at the portal
  nurse-denied              a municipal nurse without a relation is denied; the denial is
                            logged, seen by the patient and by the employer's review
  break-the-glass           the nurse breaks the glass, reads (basis btg); the grant is listed
                            by btg-review until an auditor reviews it; after expiry: denied
  block                     the patient blocks psychiatric entries from the municipality: it
                            sees the rest with a withheld count and reason; the hospital's
                            authoring unit and a relation covering psychiatry see all
  parent                    a parent reads a 10-year-old's record, a reduced view at 13, none
                            at 16
  adult-proxy               an adult chosen (read level) by a patient of 16+ reads, cannot
                            append; a 15-year-old cannot choose a proxy
  ambulance                 a crew reads during its assignment, is denied after it
  correction                amend and entered-in-error keep both versions
  erasure                   an erased body is gone from every node's data files after
                            compaction; verify passes; get says erased lawfully, when, by whom
"""

import hashlib
import mmap
import os
import subprocess

import region as rg
from region import (GP, HOSPITAL, MS_PER_DAY, MS_PER_HOUR, MUNICIPALITY, NODES, PORTAL,
                    check, log, reason_texts, row_is)
import harness

# The people of the stories (ids are practitioner / person ids; roles from the sheet).
GP_DOC = "hpr-9100001"            # fastlege at legekontor-lade
LADE_ADMIN = "lade-admin-1"
LADE_AUDITOR = "lade-revisor-1"
NURSE = "hpr-9200002"             # hjemmesykepleier in trondheim-kommune
TK_ADMIN = "tk-admin-1"
TK_AUDITOR = "tk-revisor-1"
PSYCHIATRIST = "hpr-9300003"      # st-olavs, unit psykiatri
INTERNIST = "hpr-9300004"         # st-olavs, unit medisin
PEDIATRICIAN = "hpr-9300005"      # st-olavs, unit medisin
SO_ADMIN = "so-admin-1"
SO_AUDITOR = "so-revisor-1"
CREW = "amb-9400006"              # ambulance crew of st-olavs
CREW_OTHER = "amb-9400007"
PARENT = "person-parent-01"
FRIEND = "person-friend-01"

POLICY_KINDS = harness.POLICY_KINDS


def a(actor_id, role):
    return f"{actor_id}:{role}"


class Ids:
    """Synthetic patient ids and bodies from the seed; each one is a secret no log may hold."""

    def __init__(self, region, seed):
        self.region = region
        self.tag = f"{seed % 100000:05d}"
        self.n = 0

    def patient(self, name):
        p = f"pas-{self.tag}-{name}"
        self.region.secrets.add(p)
        return p

    def body(self, what):
        self.n += 1
        b = f"{what} (scenario {self.tag} #{self.n}: synthetic text)"
        self.region.secrets.add(b)
        return b


def clinical(reply):
    return [e for e in reply.get("entries", []) if e.get("kind") not in POLICY_KINDS]


def ids_of(entries):
    return {e["id"] for e in entries}


def withheld(reply):
    return reply.get("withheld", 0)


def reason_count(reply, word):
    """How many entries the reply says were withheld for a reason whose text holds `word`."""
    return sum(c for text, c in reason_texts(reply).items() if word.lower() in text.lower())


def field(obj, *names):
    """The first of `names` present in obj (flat key, or "a.b" for a nested one)."""
    for name in names:
        cur = obj
        for part in name.split("."):
            if not isinstance(cur, dict) or part not in cur:
                cur = None
                break
            cur = cur[part]
        if cur is not None:
            return cur
    return None


def append(r, node, actor, patient, body, unit=None, sensitivity=None, kind="note"):
    argv = ["append", "--patient", patient, "--kind", kind, "--body", body]
    if sensitivity:
        argv += ["--sensitivity", sensitivity]
    return r.write(node, argv, actor=actor, unit=unit)


def list_patient(r, ids, name="kari"):
    """A patient listed with the GP (a care relation of legekontor-lade) and one note by the
    GP. Returns (patient, note reply, note body)."""
    p = ids.patient(name)
    r.write(GP, ["relation", "add", "--patient", p], actor=a(LADE_ADMIN, "admin"))
    body = ids.body("Kontroll hos fastlege: blodtrykk 128/82, ingen endring i medisiner")
    note = append(r, GP, a(GP_DOC, "physician"), p, body)
    return p, note, body


def check_basis(reply, basis, what):
    check(reply.get("basis") == basis, f"{what}: basis {reply.get('basis')!r}, want {basis!r} "
          f"(reply: {dict((k, v) for k, v in reply.items() if k != 'entries')})")


# ---------------------------------------------------------------------- the stories

def gp_reads_listed_patient(r, ids):
    p, note, body = list_patient(r, ids)
    gp = a(GP_DOC, "physician")
    reply = r.read(GP, gp, p, purpose="konsultasjon")
    check_basis(reply, "relation", "the GP's read")
    entries = clinical(reply)
    check(ids_of(entries) == {note["id"]}, f"the GP sees {ids_of(entries)}, want the note")
    check(entries[0]["body"] == body, "the note's body as written")
    check(withheld(reply) == 0, f"nothing withheld from the GP: {withheld(reply)}")
    log("GP read: allowed, basis relation, the note shown")

    auditor = a(LADE_AUDITOR, "auditor")
    row = r.wait_row(GP, auditor, "the GP's read", lambda x: row_is(
        x, actor=GP_DOC, role="physician", org="legekontor-lade", patient=p, action="read",
        allowed=True, basis="relation") and x.get("count", 0) >= 1, patient=p)
    check(row.get("purpose") == "konsultasjon", f"the read's purpose is logged: {row}")
    check(row.get("outcome") == "OK", f"outcome of the read: {row}")
    check(row.get("unit") == "lade", f"the GP's unit is logged: {row}")
    r.wait_row(GP, auditor, "the GP's append", lambda x: row_is(
        x, actor=GP_DOC, org="legekontor-lade", patient=p, action="append", allowed=True,
        basis="relation", entry=note["id"]), patient=p)
    log("access log at legekontor-lade: the read (basis relation, purpose) and the append")

    # The patient sees the read in her own access log at the portal, once shipped.
    me = a(p, "patient")
    r.wait_row(PORTAL, me, "the GP's read, seen by the patient at helsenorge", lambda x: row_is(
        x, actor=GP_DOC, org="legekontor-lade", patient=p, action="read", allowed=True,
        basis="relation"), patient=p)
    # Reading the access log is itself an audited access.
    r.wait_row(PORTAL, me, "the patient's own access-log read", lambda x: row_is(
        x, actor=p, role="patient", org="helsenorge", action="access-log", allowed=True),
        patient=p)
    log("the patient at helsenorge sees the GP's read; her access-log reads are logged too")


def nurse_denied(r, ids):
    p, note, _ = list_patient(r, ids)
    nurse = a(NURSE, "nurse")
    msg = r.read_denied(MUNICIPALITY, nurse, p, want="no care relation", min_index=note["index"])
    log(f"nurse read denied: {msg.split(': ')[-1]}")
    r.denied(MUNICIPALITY, ["get", "--id", note["id"]], actor=nurse)
    r.denied(MUNICIPALITY, ["append", "--patient", p, "--kind", "note", "--body",
                            ids.body("Hjemmebesøk")], actor=nurse)
    log("nurse get and append denied as well")

    auditor = a(TK_AUDITOR, "auditor")
    row = r.wait_row(MUNICIPALITY, auditor, "the nurse's denied read", lambda x: row_is(
        x, actor=NURSE, role="nurse", org="trondheim-kommune", patient=p, action="read",
        allowed=False), patient=p)
    check(row.get("basis") in ("none", ""), f"a denied read's basis: {row}")
    check(row.get("count", 0) == 0, f"a denied read returned nothing: {row}")
    check(row.get("outcome") == "EDENIED", f"the denial's outcome: {row}")
    r.wait_row(MUNICIPALITY, auditor, "the nurse's denied append", lambda x: row_is(
        x, actor=NURSE, patient=p, action="append", allowed=False), patient=p)
    # The employer's review of one employee, and the patient's own view at the portal.
    r.wait_row(MUNICIPALITY, auditor, "the denied read in the employer's review", lambda x:
               row_is(x, actor=NURSE, patient=p, action="read", allowed=False),
               of_actor=NURSE, of_org="trondheim-kommune")
    r.wait_row(PORTAL, a(p, "patient"), "the denied read, seen by the patient", lambda x:
               row_is(x, actor=NURSE, org="trondheim-kommune", action="read", allowed=False),
               patient=p)
    log("denials logged: at trondheim-kommune (by patient and by actor) and at helsenorge")


def break_the_glass(r, ids):
    p, note, body = list_patient(r, ids)
    nurse = a(NURSE, "nurse")
    tk_aud = a(TK_AUDITOR, "auditor")
    r.read_denied(MUNICIPALITY, nurse, p, want="break-the-glass", min_index=note["index"])
    hours = 4
    reason = "Pasient funnet bevisstløs i hjemmet, trenger medisinliste"
    g = r.write(MUNICIPALITY, ["btg", "--patient", p, "--reason-code", "emergency", "--reason",
                               reason, "--hours", str(hours)], actor=nurse)
    granted_at = r.now_ms()
    reply = r.read(MUNICIPALITY, nurse, p)
    check_basis(reply, "btg", "the nurse's read after breaking the glass")
    check(note["id"] in ids_of(clinical(reply)), "the nurse sees the GP's note")
    log(f"btg grant {g['id'][:12]} (index {g['index']}): the nurse reads with basis btg")

    def open_grants(node, actor):
        out = r.ok(node, ["btg-review", "--patient", p], actor=actor)
        return {x.get("id"): x for x in out.get("grants", [])}

    grants = open_grants(MUNICIPALITY, tk_aud)
    check(g["id"] in grants, f"btg-review lists the grant: {list(grants)}")
    gr = grants[g["id"]]
    check(gr.get("actor") == NURSE and gr.get("org") == "trondheim-kommune" and
          gr.get("patient") == p and gr.get("reason_code") == "emergency" and
          field(gr, "reason_text", "reason") == reason, f"the listed grant: {gr}")
    expires = field(gr, "expires_ms")
    check(isinstance(expires, int) and
          abs(expires - (granted_at + hours * MS_PER_HOUR)) < 5 * 60 * 1000,
          f"the grant expires {hours} h after it was made: {gr}")
    # Listed on another organisation's node too (replicated policy state).
    harness.poll("the grant listed at st-olavs", lambda: g["id"] in open_grants(
        HOSPITAL, a(SO_AUDITOR, "auditor")), rg.APPLY_WAIT_S)
    log("btg-review lists the open grant at trondheim-kommune and at st-olavs")

    # Audit: the denied read, the grant, the btg read.
    r.wait_row(MUNICIPALITY, tk_aud, "the denied read before the grant", lambda x: row_is(
        x, actor=NURSE, patient=p, action="read", allowed=False), patient=p)
    r.wait_row(MUNICIPALITY, tk_aud, "the break-the-glass action", lambda x: row_is(
        x, actor=NURSE, patient=p, allowed=True) and x.get("action") in ("btg", "policy") and
        x.get("entry") == g["id"], patient=p)
    r.wait_row(MUNICIPALITY, tk_aud, "the read on basis btg", lambda x: row_is(
        x, actor=NURSE, patient=p, action="read", allowed=True, basis="btg"), patient=p)

    # The nurse may not review her own grant, even as an auditor.
    r.denied(MUNICIPALITY, ["btg-review", "--close", g["id"], "--outcome", "justified"],
             actor=a(NURSE, "auditor"))
    rev = r.write(MUNICIPALITY, ["btg-review", "--close", g["id"], "--outcome", "justified",
                                 "--text", "Akutt situasjon, tilgang var nødvendig"],
                  actor=tk_aud)
    check(g["id"] not in open_grants(MUNICIPALITY, tk_aud), "a reviewed grant is not listed")
    harness.poll("the reviewed grant gone from st-olavs' list", lambda: g["id"] not in
                 open_grants(HOSPITAL, a(SO_AUDITOR, "auditor")), rg.APPLY_WAIT_S)
    r.wait_row(MUNICIPALITY, tk_aud, "the review", lambda x: row_is(
        x, actor=TK_AUDITOR, role="auditor", patient=p, allowed=True) and
        x.get("entry") in (rev["id"], g["id"]), patient=p)
    log(f"reviewed by {TK_AUDITOR} (index {rev['index']}): no longer listed")

    # The grant runs until it expires, reviewed or not; then the nurse is denied again.
    check_basis(r.read(MUNICIPALITY, nurse, p), "btg", "the nurse's read before expiry")
    r.advance(hours * MS_PER_HOUR + 60 * 1000)
    r.read_denied(MUNICIPALITY, nurse, p, want="no care relation")
    row = r.wait_row(MUNICIPALITY, tk_aud, "the denied read after expiry", lambda x: row_is(
        x, actor=NURSE, patient=p, action="read", allowed=False) and
        x.get("time_ms", 0) >= expires, patient=p)
    log(f"after expiry the nurse is denied (logged at time {row.get('time_ms')})")


def block(r, ids):
    p = ids.patient("ola")
    so_admin, tk_admin = a(SO_ADMIN, "admin"), a(TK_ADMIN, "admin")
    psych, internist, nurse = (a(PSYCHIATRIST, "physician"), a(INTERNIST, "physician"),
                               a(NURSE, "nurse"))
    r.write(HOSPITAL, ["relation", "add", "--patient", p, "--unit", "psykiatri"], actor=so_admin)
    r.write(HOSPITAL, ["relation", "add", "--patient", p, "--unit", "medisin", "--categories",
                       "psychiatry"], actor=so_admin)
    # Municipal psychiatric home care: a relation that covers psychiatry.
    r.write(MUNICIPALITY, ["relation", "add", "--patient", p, "--categories", "psychiatry"],
            actor=tk_admin)
    ps1 = append(r, HOSPITAL, psych, p, ids.body("Poliklinisk samtale, psykiatri"),
                 unit="psykiatri", sensitivity="psychiatry")
    ps2 = append(r, HOSPITAL, psych, p, ids.body("Epikrise etter innleggelse, psykiatri"),
                 unit="psykiatri", sensitivity="psychiatry")
    med = append(r, HOSPITAL, internist, p, ids.body("Medisinsk poliklinikk: HbA1c 52"),
                 unit="medisin")
    home = append(r, MUNICIPALITY, nurse, p, ids.body("Hjemmesykepleie: sårstell"))
    everything = {ps1["id"], ps2["id"], med["id"], home["id"]}
    normal = {med["id"], home["id"]}

    before = r.read(MUNICIPALITY, nurse, p, min_index=home["index"])
    check(ids_of(clinical(before)) == everything and withheld(before) == 0,
          f"before the block the municipality (relation covering psychiatry) sees all: "
          f"{ids_of(clinical(before))}, withheld {withheld(before)}")

    blk = r.write(PORTAL, ["block", "add", "--patient", p, "--org", "trondheim-kommune",
                           "--category", "psychiatry"], actor=a(p, "patient"))
    log(f"the patient blocked psychiatry from trondheim-kommune at helsenorge "
        f"(index {blk['index']})")

    after = r.read(MUNICIPALITY, nurse, p, min_index=blk["index"])
    check_basis(after, "relation", "the municipality's read")
    check(ids_of(clinical(after)) == normal, f"the municipality sees the rest only: "
          f"{ids_of(clinical(after))}")
    check(withheld(after) == 2 and reason_count(after, "blocked") == 2,
          f"2 withheld, because the patient blocked them: withheld {withheld(after)}, "
          f"reasons {reason_texts(after)}")
    log(f"trondheim-kommune sees 2 entries, 2 withheld: {reason_texts(after)}")

    # The hospital sees all: the authoring unit, and a unit whose relation covers psychiatry.
    for actor, unit in ((psych, "psykiatri"), (internist, "medisin")):
        full = r.read(HOSPITAL, actor, p, unit=unit, min_index=blk["index"])
        check_basis(full, "relation", f"st-olavs {unit}")
        check(ids_of(clinical(full)) == everything and withheld(full) == 0,
              f"st-olavs {unit} sees all: {ids_of(clinical(full))}, withheld {withheld(full)}")
    log("st-olavs (psykiatri, the authoring unit; medisin, relation covering psychiatry) "
        "sees all 4")

    # Audit: the municipality's read with its withheld count, the hospital's without, the block.
    tk_aud = a(TK_AUDITOR, "auditor")
    r.wait_row(MUNICIPALITY, tk_aud, "the municipality's read with 2 withheld", lambda x: row_is(
        x, actor=NURSE, org="trondheim-kommune", patient=p, action="read", allowed=True,
        basis="relation", withheld=2), patient=p)
    so_aud = a(SO_AUDITOR, "auditor")
    r.wait_row(HOSPITAL, so_aud, "the psychiatrist's read, nothing withheld", lambda x: row_is(
        x, actor=PSYCHIATRIST, org="st-olavs", unit="psykiatri", patient=p, action="read",
        allowed=True, basis="relation", withheld=0) and x.get("count", 0) >= 4, patient=p)
    r.wait_row(HOSPITAL, so_aud, "the patient's block (made at helsenorge)", lambda x: row_is(
        x, actor=p, role="patient", org="helsenorge", patient=p, allowed=True) and
        x.get("action") != "access-log" and x.get("entry") == blk["id"], patient=p)
    log("access log: the municipality's read (withheld 2), st-olavs' read, the block")


def parent(r, ids):
    child = ids.patient("barn")
    born = rg.years_ago(10, 60)
    so_admin, doc = a(SO_ADMIN, "admin"), a(PEDIATRICIAN, "physician")
    r.write(HOSPITAL, ["patient", "set", "--patient", child, "--birth-date", born],
            actor=so_admin)
    r.write(HOSPITAL, ["relation", "add", "--patient", child], actor=so_admin)
    plain = append(r, HOSPITAL, doc, child, ids.body("Barnepoliklinikk: vekst og utvikling"))
    private = append(r, HOSPITAL, doc, child, ids.body("Samtale med barnet alene"))
    r.write(HOSPITAL, ["withhold", "--entry", private["id"], "--reason",
                       "Barnet ba om at foreldrene ikke skal se samtalen", "--from",
                       "guardians"], actor=doc)
    shielded = append(r, HOSPITAL, doc, child, ids.body("Veiledning om prevensjon"),
                      sensitivity="sexual-health")
    g = r.write(HOSPITAL, ["proxy", "grant", "--patient", child, "--proxy", PARENT,
                           "--relation", "parent", "--level", "full"], actor=so_admin)
    proxy = a(PARENT, "proxy")
    log(f"child born {born}; parent's proxy grant at index {g['index']}")

    at10 = r.read(PORTAL, proxy, child, min_index=g["index"])
    check_basis(at10, "proxy", "the parent's read at 10")
    check(ids_of(clinical(at10)) == {plain["id"], private["id"]},
          f"at 10 the parent sees the plain and the guardian-withheld entry: "
          f"{ids_of(clinical(at10))}")
    check(withheld(at10) == 1 and reason_count(at10, "shielded") == 1,
          f"at 10 only the shielded entry of another unit is withheld: {reason_texts(at10)}")
    log(f"age 10: parent sees 2, withheld {reason_texts(at10)}")

    r.advance(1096 * MS_PER_DAY)  # 3 years: the child is 13
    at13 = r.read(PORTAL, proxy, child)
    check_basis(at13, "proxy", "the parent's read at 13")
    check(ids_of(clinical(at13)) == {plain["id"]},
          f"at 13 the parent sees the plain entry only: {ids_of(clinical(at13))}")
    check(shielded["id"] not in ids_of(at13.get("entries", [])), "no shielded entry at 13")
    check(private["id"] not in ids_of(at13.get("entries", [])), "no guardian-withheld entry")
    # Both, and (the node's choice) the withhold entry that names the withheld one: all
    # "not shown to parents of a 12-15 year old".
    check(withheld(at13) >= 2 and reason_count(at13, "parents") == withheld(at13),
          f"at 13 the guardian-withheld and the shielded entry are withheld from parents: "
          f"{reason_texts(at13)}")
    log(f"age 13: reduced view, withheld {reason_texts(at13)}")

    r.advance(1096 * MS_PER_DAY)  # the child is 16
    msg = r.read_denied(PORTAL, proxy, child, want="16")
    log(f"age 16: parent denied: {msg.split(': ')[-1]}")

    me = a(child, "patient")
    rows = []
    for withheld_n in (withheld(at10), withheld(at13)):
        rows.append(r.wait_row(PORTAL, me, f"the parent's read with {withheld_n} withheld",
                               lambda x, w=withheld_n: row_is(
                                   x, actor=PARENT, role="proxy", org="helsenorge",
                                   patient=child, action="read", allowed=True, basis="proxy",
                                   withheld=w), patient=child))
    rows.append(r.wait_row(PORTAL, me, "the parent's denied read at 16", lambda x: row_is(
        x, actor=PARENT, role="proxy", patient=child, action="read", allowed=False),
        patient=child))
    times = [x.get("time_ms", 0) for x in rows]
    check(times == sorted(times) and times[2] - times[0] >= 2000 * MS_PER_DAY,
          f"the rows carry the region's moved clock: {times}")
    log("the child's access log shows the parent's reads (proxy) and the denial")


def adult_proxy(r, ids):
    p, note, _ = list_patient(r, ids, "voksen")
    teen = ids.patient("ungdom")
    so_admin = a(SO_ADMIN, "admin")
    r.write(HOSPITAL, ["patient", "set", "--patient", p, "--birth-date", rg.years_ago(34)],
            actor=so_admin)
    r.write(HOSPITAL, ["patient", "set", "--patient", teen, "--birth-date",
                       rg.years_ago(15, 30)], actor=so_admin)
    g_argv = ["proxy", "grant", "--proxy", FRIEND, "--relation", "chosen", "--level", "read"]
    r.denied(PORTAL, g_argv + ["--patient", teen], actor=a(teen, "patient"))
    log("a 15-year-old cannot choose a proxy")
    g = r.write(PORTAL, g_argv + ["--patient", p], actor=a(p, "patient"))
    friend = a(FRIEND, "proxy")
    reply = r.read(PORTAL, friend, p, min_index=g["index"])
    check_basis(reply, "proxy", "the chosen proxy's read")
    check(note["id"] in ids_of(clinical(reply)), "the proxy sees the GP's note")
    log(f"the patient (34) chose {FRIEND} with level read: reads with basis proxy")
    r.denied(PORTAL, ["append", "--patient", p, "--kind", "note", "--body",
                      ids.body("Melding fra fullmektig")], actor=friend)
    r.denied(GP, ["append", "--patient", p, "--kind", "note", "--body",
                  ids.body("Melding fra fullmektig via fastlegen")], actor=friend)
    log("the read-level proxy may not append (portal, GP office)")

    me = a(p, "patient")
    r.wait_row(PORTAL, me, "the proxy's read", lambda x: row_is(
        x, actor=FRIEND, role="proxy", org="helsenorge", patient=p, action="read",
        allowed=True, basis="proxy"), patient=p)
    r.wait_row(PORTAL, me, "the proxy's denied append", lambda x: row_is(
        x, actor=FRIEND, role="proxy", patient=p, action="append", allowed=False), patient=p)

    rv = r.write(PORTAL, ["proxy", "revoke", "--id", g["id"]], actor=me)
    r.read_denied(PORTAL, friend, p, min_index=rv["index"])
    log("after the patient revokes the grant the proxy is denied")


def ambulance(r, ids):
    p, note, _ = list_patient(r, ids, "akutt")
    hours = 2
    asg = r.write(HOSPITAL, ["ambulance", "assign", "--patient", p, "--crew", CREW, "--hours",
                             str(hours)], actor=a(SO_ADMIN, "admin"))
    start = r.now_ms()
    crew = a(CREW, "ambulance")
    reply = r.read(HOSPITAL, crew, p, min_index=max(asg["index"], note["index"]))
    check_basis(reply, "assignment", "the crew's read during the assignment")
    check(note["id"] in ids_of(clinical(reply)), "the crew sees the GP's note")
    log(f"assignment (index {asg['index']}, {hours} h): the crew reads with basis assignment")
    r.denied(HOSPITAL, ["append", "--patient", p, "--kind", "note", "--body",
                        ids.body("Ambulansejournal")], actor=crew)
    r.read_denied(HOSPITAL, a(CREW_OTHER, "ambulance"), p)
    log("the crew may not append; another crew member may not read")

    r.advance(hours * MS_PER_HOUR + 60 * 1000)
    r.read_denied(HOSPITAL, crew, p)
    log("after the assignment the crew is denied")

    so_aud = a(SO_AUDITOR, "auditor")
    r.wait_row(HOSPITAL, so_aud, "the crew's read during the assignment", lambda x: row_is(
        x, actor=CREW, role="ambulance", org="st-olavs", patient=p, action="read",
        allowed=True, basis="assignment"), patient=p)
    r.wait_row(HOSPITAL, so_aud, "the crew's denied append", lambda x: row_is(
        x, actor=CREW, patient=p, action="append", allowed=False), patient=p)
    r.wait_row(HOSPITAL, so_aud, "the crew's denied read after the assignment", lambda x: row_is(
        x, actor=CREW, patient=p, action="read", allowed=False) and
        x.get("time_ms", 0) >= start + hours * MS_PER_HOUR, patient=p)
    r.wait_row(HOSPITAL, so_aud, "the unassigned crew member's denied read", lambda x: row_is(
        x, actor=CREW_OTHER, patient=p, action="read", allowed=False), patient=p)


def correction(r, ids):
    p, v1, body1 = list_patient(r, ids, "rettet")
    gp = a(GP_DOC, "physician")
    body2 = ids.body("Kontroll hos fastlege: blodtrykk 138/88 (rettet avlesning)")
    v2 = r.write(GP, ["amend", "--id", v1["id"], "--body", body2], actor=gp)
    log(f"amended {v1['id'][:12]} by {v2['id'][:12]}")

    cur = {e["id"]: e for e in clinical(r.read(GP, gp, p))}
    check(v2["id"] in cur and v1["id"] not in cur, f"read shows the current version only: "
          f"{list(cur)}")
    check(cur[v2["id"]]["body"] == body2 and cur[v2["id"]].get("corrects") == v1["id"],
          f"the new version's body and what it corrects: {cur[v2['id']]}")
    hist = {e["id"]: e for e in clinical(r.read(GP, gp, p, history=True))}
    check(v1["id"] in hist and v2["id"] in hist, f"read --history shows both: {list(hist)}")
    check(hist[v1["id"]]["body"] == body1, "the old version keeps its body")
    check(hist[v1["id"]].get("superseded_by") == v2["id"],
          f"the old version says by what it was superseded: {hist[v1['id']]}")
    old = r.get(GP, gp, v1["id"])
    check(old.get("superseded_by") == v2["id"] and old.get("body") == body1,
          f"get of the old version says superseded and keeps the body: {old}")
    log("read: current version; --history: both; get of the old: superseded_by the new")

    # A superseded version cannot be corrected again.
    rr = r.ctl(GP, ["amend", "--id", v1["id"], "--body", ids.body("nok en versjon")], actor=gp)
    check(rr.rc == rg.EXIT_FAILED, f"amending a superseded version is refused: {rr}")

    wrong = append(r, GP, gp, p, ids.body("Notat skrevet i feil pasientjournal"))
    eie = r.write(GP, ["entered-in-error", "--id", wrong["id"], "--reason",
                       "Feil pasient"], actor=gp)
    cur = ids_of(clinical(r.read(GP, gp, p)))
    check(wrong["id"] not in cur, f"an entry marked in error is not current: {cur}")
    hist = {e["id"]: e for e in clinical(r.read(GP, gp, p, history=True))}
    check(wrong["id"] in hist and hist[wrong["id"]].get("superseded_by") == eie["id"],
          f"history keeps the wrong entry, superseded by the marker: {hist.get(wrong['id'])}")
    marker = r.get(GP, gp, eie["id"])
    check(marker.get("status") == "entered-in-error" and marker.get("corrects") == wrong["id"],
          f"the marker: {marker}")
    log("entered-in-error: marked, kept in history")

    aud = a(LADE_AUDITOR, "auditor")
    for what, eid in (("the amendment", v2["id"]), ("the entered-in-error mark", eie["id"])):
        r.wait_row(GP, aud, what, lambda x, eid=eid: row_is(
            x, actor=GP_DOC, patient=p, action="append", allowed=True, basis="relation",
            entry=eid), patient=p)
    r.wait_row(GP, aud, "the old version's get", lambda x: row_is(
        x, actor=GP_DOC, patient=p, action="get", allowed=True, entry=v1["id"]), patient=p)


def files_holding(root, needle):
    """Files under root whose bytes contain needle."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size == 0:
                        continue
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                        if m.find(needle) >= 0:
                            found.append(path)
            except (OSError, ValueError):
                continue
    return found


def erasure(r, ids):
    p, keep, keep_body = list_patient(r, ids, "slettes")
    # A long body no other byte sequence in the region resembles.
    pad = hashlib.sha256(f"{ids.tag}-erasure".encode()).hexdigest()
    secret = ids.body("ERASE-ME " + "".join(
        hashlib.sha256(f"{pad}{k}".encode()).hexdigest() for k in range(128)))
    gp = a(GP_DOC, "physician")
    e = append(r, GP, gp, p, secret)
    r.wait_applied(e["index"])
    needle = secret.encode()
    for i in NODES:
        check(files_holding(r.data_dir(i), needle),
              f"before the erasure node {i}'s data files hold the body (else the check "
              "below proves nothing)")
    log(f"entry {e['id'][:12]}: a {len(needle)}-byte body on every node")

    basis = "Helsepersonelloven § 43: pasientens krav om sletting innvilget av Statsforvalteren"
    x = r.write(GP, ["erase", "--id", e["id"], "--basis", basis], actor=a(LADE_ADMIN, "admin"))
    r.wait_applied(x["index"])
    log(f"erasure at index {x['index']}, applied on every node")

    def check_erased(i, ent):
        check(ent.get("erased") is True and ent.get("body") is None,
              f"node {i}: the entry is erased: {ent}")
        check(field(ent, "erased_index", "erasure.index") == x["index"] and
              field(ent, "erased_author", "erasure.author") == LADE_ADMIN and
              field(ent, "erased_org", "erasure.org") == "legekontor-lade" and
              field(ent, "erased_basis", "erasure.basis") == basis and
              (field(ent, "erased_time_ms", "erasure.time_ms") or 0) > 0,
              f"node {i}: get says erased lawfully, when and by whom: {ent}")

    me = a(p, "patient")
    for i in NODES:
        check_erased(i, r.get(i, me, e["id"]))
    entries = {en["id"]: en for en in r.read(GP, gp, p).get("entries", [])}
    check(e["id"] in entries and entries[e["id"]].get("body") is None and
          entries[keep["id"]]["body"] == keep_body, "read: the erased entry without its body, "
          "the other note intact")
    log("every node answers get: erased, index, time, author, org and basis")

    r.down()
    for i in NODES:
        res = subprocess.run([r.carelogctl, "compact", "--data-dir", r.data_dir(i)],
                             capture_output=True, text=True, timeout=120 * harness.scale(),
                             env=r.env)
        check(res.returncode == 0, f"compact node {i}: exit {res.returncode}: {res.stderr}")
    for i in NODES:
        held = files_holding(r.node_dir(i), needle)
        check(not held, f"after compaction the erased body's bytes are still in {held}")
        check(files_holding(r.data_dir(i), keep_body.encode()),
              f"node {i}: compaction kept the other note")
    log("after compaction no file of any node holds the erased body")

    for i in NODES:
        r.start(i)
    for i in NODES:
        r.wait_serving(i)
    r.wait_leader()
    for i in NODES:
        v = r.verify(i)
        check_erased(i, r.get(i, me, e["id"]))
        check(r.get(i, me, keep["id"]).get("body") == keep_body, f"node {i}: the kept note")
        log(f"node {i}: verify ok ({v.get('entries_checked')} entries), get says erased")
    aud = a(LADE_AUDITOR, "auditor")
    r.wait_row(GP, aud, "the erasure by the admin", lambda row: row_is(
        row, actor=LADE_ADMIN, role="admin", patient=p, allowed=True, basis="role") and
        row.get("entry") in (x["id"], e["id"]), patient=p)


STORIES = {
    "gp-reads-listed-patient": gp_reads_listed_patient,
    "nurse-denied": nurse_denied,
    "break-the-glass": break_the_glass,
    "block": block,
    "parent": parent,
    "adult-proxy": adult_proxy,
    "ambulance": ambulance,
    "correction": correction,
    "erasure": erasure,
}


def main():
    args = rg.parse_args()
    fn = STORIES.get(args.story)
    check(fn is not None, f"no story {args.story!r}; stories: {', '.join(STORIES)}")
    r = rg.Region(args, args.story)
    try:
        r.up()
        fn(r, Ids(r, args.seed))
        r.finish()
    finally:
        r.close()


if __name__ == "__main__":
    harness.run(main)
