#!/usr/bin/env python3
"""Acceptance 5: a flipped byte in a stored body, header or index value is found and named.

A node stores a few synthetic timelines and stops; a pristine copy of its data dir is kept.
Each case restores the copy, flips one byte with tests/tools/lmdb-flip, starts the node and
requires `carelogctl verify` to exit 1 naming the corrupt key, and the affected read (or get)
to fail instead of serving the damaged entry. The --fix-crc cases recompute the value's CRC32C
so the checksum passes and the damage must be caught by the signature, the body hash or the
cross-check between index and log.
"""

import os
import re
import shutil
import subprocess

import harness
from harness import check, log

PATIENT = "itest-corrupt-000001"
OTHER_PATIENTS = ["itest-corrupt-000002", "itest-corrupt-000003"]
ENTRIES_PER_PATIENT = 4
TARGET = 2  # which of PATIENT's entries is damaged


def body_of(patient, n):
    return f"BODYMARK {patient} entry {n}: synthetic lab result, Hb 13.{n} g/dL"


def flip(args, node, db, *selector):
    r = subprocess.run([args.lmdb_flip, node.data_dir, db, *selector],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"lmdb-flip {db} {' '.join(selector)} failed: {r.stderr}")
    log(f"  {r.stdout.strip()}")
    return r.stdout


def list_keys(args, node, db):
    r = subprocess.run([args.lmdb_flip, node.data_dir, db, "--list"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"lmdb-flip {db} --list failed: {r.stderr}")
    return [line.split()[0] for line in r.stdout.splitlines()]


def names(out, db, key):
    """verify's output names the database and the key: log/<index>, <db>/<hex key>, and
    patient_index/<index> (its key is a patient hash and a log index; the hash stays out of
    output, being derived from a patient id)."""
    text = out.lower()
    if db == "log":
        return re.search(rf"\blog/{key}\b", text) is not None
    if db == "patient_index" and re.search(rf"\bpatient_index/{int(key[-16:], 16)}\b", text):
        return True
    return f"{db}/{key[:16].lower()}" in text


def main():
    args = harness.parse_args()
    work = harness.Workdir("corrupt", args.keep)
    node = harness.Node(args, work.path)
    ok = False
    try:
        node.start()
        node.care([PATIENT] + OTHER_PATIENTS)  # the reads below must fail for the damage alone
        target = None
        secrets = set()
        for patient in [PATIENT] + OTHER_PATIENTS:
            secrets.add(patient)
            for n in range(ENTRIES_PER_PATIENT):
                body = body_of(patient, n)
                secrets.add(body)
                rid = f"corrupt-{patient[-6:]}-{n}"
                rc, reply, err = node.append(patient, "lab-result", body, request_id=rid)
                check(rc == 0, f"append failed: {err}")
                if patient == PATIENT and n == TARGET:
                    target = dict(reply, body=body)
        rc, out = node.verify()
        check(rc == 0, f"verify of the intact store exited {rc}: {out}")
        r = node.ctl(["--actor", harness.CLINICIAN, "read", "--patient", PATIENT, "--json"])
        check(target["body"] in r.stdout, "the intact store does not serve the target entry")
        node.stop()
        pristine = os.path.join(work.path, "pristine")
        shutil.copytree(node.data_dir, pristine)
        index, entry_id, rid = target["index"], target["id"], target["request_id"]
        log(f"target entry: index {index} id {entry_id}")

        # The key is the patient hash and the log index; the patient's care relation may be
        # indexed there too, so the target's key is picked by its index.
        patient_keys = [k for k in list_keys(args, node, "patient_index")
                        if k.startswith(harness.patient_key_hex(PATIENT)) and
                        int(k[-16:], 16) == index]
        check(patient_keys, "no patient_index key for the target entry "
              "(docs/on-disk-format.md changed?)")
        request_keys = [k for k in list_keys(args, node, "request_index")
                        if rid.encode().hex() in k]
        check(request_keys, "no request_index key holding the target request id")

        body_hex = "BODYMARK".encode().hex()
        patient_hex = PATIENT.encode().hex()
        cases = [
            # name, db, flip selector, key named, what must fail besides verify
            ("body byte", "log", ["--index", str(index), "--find", body_hex],
             str(index), "read"),
            ("header byte", "log", ["--index", str(index), "--find", patient_hex],
             str(index), "read"),
            ("body byte, CRC fixed", "log",
             ["--index", str(index), "--find", body_hex, "--fix-crc"], str(index), "read"),
            ("header byte, CRC fixed", "log",
             ["--index", str(index), "--find", patient_hex, "--fix-crc"], str(index), "read"),
            ("entry_index value", "entry_index", ["--key", entry_id, "--offset", "-2"],
             entry_id, "get"),
            ("entry_index value, CRC fixed", "entry_index",
             ["--key", entry_id, "--offset", "-2", "--fix-crc"], entry_id, "get"),
            ("patient_index value", "patient_index",
             ["--key", patient_keys[0], "--offset", "0"], patient_keys[0], "read"),
            ("request_index value", "request_index",
             ["--key", request_keys[0], "--offset", "-1"], request_keys[0], None),
        ]
        failures = []
        for name, db, selector, key, also in cases:
            log(f"case: {name}")
            shutil.rmtree(node.data_dir)
            shutil.copytree(pristine, node.data_dir)
            flip(args, node, db, *selector)
            node.start()
            rc, out = node.verify()
            if rc != 1:
                failures.append(f"{name}: verify exited {rc}, want 1: {out.strip()[:300]}")
            elif not names(out, db, key):
                failures.append(f"{name}: verify does not name {db} key {key}: {out.strip()[:300]}")
            if also == "read":
                r = node.ctl(["--actor", harness.CLINICIAN, "read", "--patient", PATIENT,
                              "--json"], check_rc=False)
                if r.returncode == 0 and target["body"] in r.stdout:
                    # Serving the entry is only wrong if its damaged bytes are served as valid.
                    failures.append(f"{name}: read served the damaged entry")
                elif r.returncode == 0:
                    failures.append(f"{name}: read exited 0 instead of reporting the damage")
                elif harness.denied(r.stderr):
                    failures.append(f"{name}: read denied, not failed on the damage: "
                                    f"{r.stderr.strip()[:200]}")
            elif also == "get":
                r = node.ctl(["--actor", harness.CLINICIAN, "get", "--id", entry_id, "--json"],
                             check_rc=False)
                if r.returncode == 0:
                    failures.append(f"{name}: get served the entry through a corrupt index")
                elif harness.denied(r.stderr):
                    failures.append(f"{name}: get denied, not failed on the damage: "
                                    f"{r.stderr.strip()[:200]}")
            node.stop()
            harness.assert_logs_clean(node, secrets)
        check(not failures, "\n  ".join([""] + failures))
        log(f"all {len(cases)} corruption cases found and named")
        ok = True
    finally:
        node.ensure_stopped()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
