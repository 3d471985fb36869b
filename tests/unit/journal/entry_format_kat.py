#!/usr/bin/env python3
"""An independent implementation of docs/entry-format.md, for the known-answer vectors.

It shares no code with node/journal: msgpack is written by hand from the spec, SHA-256 comes
from hashlib and Ed25519 from the `cryptography` package. It computes the vectors that
tests/unit/journal/test_journal.c and docs/entry-format.md pin, and checks them.

    entry_format_kat.py           check (exit 0), or exit 77 (skipped) without `cryptography`
    entry_format_kat.py --print   print the vectors as C #defines
"""
import hashlib
import struct
import sys

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # the test is skipped, not failed, where the package is missing
    print("cryptography not installed: skipped")
    sys.exit(77)


def mp_uint(v):
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + struct.pack(">B", v)
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_str(s):
    b = s.encode("utf-8")
    n = len(b)
    if n < 32:
        return bytes([0xA0 | n]) + b
    if n < 0x100:
        return b"\xd9" + bytes([n]) + b
    return b"\xda" + struct.pack(">H", n) + b


def mp_bin(b):
    n = len(b)
    if n < 0x100:
        return b"\xc4" + bytes([n]) + b
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n) + b
    return b"\xc6" + struct.pack(">I", n) + b


def mp_map_header(n):
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def mp_array_header(n):
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)


NIL = b"\xc0"
SHA = lambda b: hashlib.sha256(b).digest()  # noqa: E731

seed = bytes(range(32))
salt = bytes(range(0xA0, 0xB0))
author_time = 1767225600000
leader_time = author_time + 5
index = 7
body = b"Patient seen. BP 120/80."

fields = [
    ("v", mp_uint(1)),
    ("kind", mp_str("note")),
    ("patient", mp_str("01017012345")),
    ("author", mp_str("hpr-9144900")),
    ("role", mp_str("nurse")),
    ("org", mp_str("st-olavs")),
    ("unit", mp_str("cardiology")),
    ("node", mp_uint(1)),
    ("author_time", mp_uint(author_time)),
    ("clinical_time", mp_uint(author_time)),
    ("status", mp_str("final")),
    ("corrects", NIL),
    ("sensitivity", mp_str("normal")),
    ("request_id", mp_str("req-0001")),
    ("media_type", mp_str("text/plain")),
    ("body_size", mp_uint(len(body))),
    ("body_hash", mp_bin(SHA(salt + body))),
]
header = mp_map_header(len(fields)) + b"".join(mp_str(k) + v for k, v in fields)
entry_id = SHA(header)
signature = Ed25519PrivateKey.from_private_bytes(seed).sign(b"carelog entry v1\x00" + header)
record = (mp_array_header(6) + mp_uint(1) + mp_uint(leader_time) + mp_bin(header)
          + mp_bin(signature) + mp_bin(salt) + mp_bin(body))
record_leaf = SHA(b"\x01" + struct.pack(">QQ", index, leader_time) + entry_id + signature)
chain_1 = SHA(bytes(32) + record_leaf)
noop_leaf = SHA(b"\x00" + struct.pack(">Q", index))
opaque_leaf = SHA(b"\x02" + bytes([1]) + struct.pack(">Q", index) + SHA(b"conf"))
patient_key = SHA(b"carelog patient v1\x00" + b"01017012345")

# The genesis CONF entry of a one-voter cluster (docs/entry-format.md, "Membership").
public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
context = (mp_map_header(4) + mp_str("v") + mp_uint(1)
           + mp_str("cluster_id") + mp_bin(bytes(range(16)))
           + mp_str("members") + mp_array_header(1)
           + mp_map_header(5) + mp_str("id") + mp_uint(1) + mp_str("org") + mp_str("st-olavs")
           + mp_str("address") + mp_str("tcp://127.0.0.1:7401")
           + mp_str("public_key") + mp_bin(public_key) + mp_str("voter") + b"\xc3"
           + mp_str("params") + mp_map_header(1) + mp_str("body_max_bytes") + mp_uint(1048576))
genesis_entry = (bytes([1, 0, 1]) + bytes([1]) + struct.pack(">Q", 1)
                 + struct.pack(">I", len(context)) + context)

vectors = {
    "KAT_HEADER_HEX": header.hex(),
    "KAT_ENTRY_ID_HEX": entry_id.hex(),
    "KAT_SIGNATURE_HEX": signature.hex(),
    "KAT_RECORD_HEX": record.hex(),
    "KAT_RECORD_LEAF_HEX": record_leaf.hex(),
    "KAT_CHAIN_1_HEX": chain_1.hex(),
    "KAT_NOOP_LEAF_HEX": noop_leaf.hex(),
    "KAT_OPAQUE_LEAF_HEX": opaque_leaf.hex(),
    "KAT_PATIENT_KEY_HEX": patient_key.hex(),
    "KAT_GENESIS_ENTRY_HEX": genesis_entry.hex(),
}

EXPECTED = {
    "KAT_HEADER_HEX": (
        "de0011a17601a46b696e64a46e6f7465a770617469656e74ab3031303137303132333435a6617574"
        "686f72ab6870722d39313434393030a4726f6c65a56e75727365a36f7267a873742d6f6c617673a4"
        "756e6974aa63617264696f6c6f6779a46e6f646501ab617574686f725f74696d65cf0000019b76da"
        "a800ad636c696e6963616c5f74696d65cf0000019b76daa800a6737461747573a566696e616ca863"
        "6f727265637473c0ab73656e7369746976697479a66e6f726d616caa726571756573745f6964a872"
        "65712d30303031aa6d656469615f74797065aa746578742f706c61696ea9626f64795f73697a6518"
        "a9626f64795f68617368c4204a825b5bb495512eeef049cffc944e9a52500211525db31d1c1fc246"
        "8139782b"),
    "KAT_ENTRY_ID_HEX": (
        "e8d7688b4b02380845d43e1307e4719e106008c559f82f67400ef794c9f5c95c"),
    "KAT_SIGNATURE_HEX": (
        "06df70ec744a273f673b95428e94e655ec8c9ceff5ae705124b8312eba8fba1b418e11b947a201cc"
        "9d9c23a11d910986d9a8113338967788759754dace81910d"),
    "KAT_RECORD_HEX": (
        "9601cf0000019b76daa805c5011cde0011a17601a46b696e64a46e6f7465a770617469656e74ab30"
        "31303137303132333435a6617574686f72ab6870722d39313434393030a4726f6c65a56e75727365"
        "a36f7267a873742d6f6c617673a4756e6974aa63617264696f6c6f6779a46e6f646501ab61757468"
        "6f725f74696d65cf0000019b76daa800ad636c696e6963616c5f74696d65cf0000019b76daa800a6"
        "737461747573a566696e616ca8636f727265637473c0ab73656e7369746976697479a66e6f726d61"
        "6caa726571756573745f6964a87265712d30303031aa6d656469615f74797065aa746578742f706c"
        "61696ea9626f64795f73697a6518a9626f64795f68617368c4204a825b5bb495512eeef049cffc94"
        "4e9a52500211525db31d1c1fc2468139782bc44006df70ec744a273f673b95428e94e655ec8c9cef"
        "f5ae705124b8312eba8fba1b418e11b947a201cc9d9c23a11d910986d9a8113338967788759754da"
        "ce81910dc410a0a1a2a3a4a5a6a7a8a9aaabacadaeafc41850617469656e74207365656e2e204250"
        "203132302f38302e"),
    "KAT_RECORD_LEAF_HEX": (
        "fea1d93591ba3e63b203f1dc7ffbfddf1f7cd5fa80eb52b23bc033250e8b0ab9"),
    "KAT_CHAIN_1_HEX": (
        "2b0719c08490443b4b07c08bec920af681e7dd27716b3513b3628f92186ed10d"),
    "KAT_NOOP_LEAF_HEX": (
        "4de24ac026fb8f8d4cc96b4f972245eab7b1c255c89477b088312ea70487ba12"),
    "KAT_OPAQUE_LEAF_HEX": (
        "347520d805b04e32cd3be68ed93d00d39f3c1c089d6703e3e8f672cd2e208fd7"),
    "KAT_PATIENT_KEY_HEX": (
        "8903aaa19d1bb5ccdd76ff6320ca7a91b4b6ebb12adab0d2246f534cb4df057f"),
    "KAT_GENESIS_ENTRY_HEX": (
        "010001010000000000000001000000a984a17601aa636c75737465725f6964c41000010203040506"
        "0708090a0b0c0d0e0fa76d656d626572739185a2696401a36f7267a873742d6f6c617673a7616464"
        "72657373b47463703a2f2f3132372e302e302e313a37343031aa7075626c69635f6b6579c42003a1"
        "07bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a5766f746572c3a67061"
        "72616d7381ae626f64795f6d61785f6279746573ce00100000"),
}

if "--print" in sys.argv:
    for name, value in vectors.items():
        print('#define %s "%s"' % (name, value))
    sys.exit(0)

failed = [name for name in EXPECTED if EXPECTED[name] != vectors[name]]
for name in failed:
    print("%s: expected %s, computed %s" % (name, EXPECTED[name], vectors[name]))
if failed or len(EXPECTED) != len(vectors):
    sys.exit(1)
print("all %d vectors match" % len(vectors))
