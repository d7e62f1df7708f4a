#!/usr/bin/env python3
"""Writes the seed corpus of every target from the golden vectors.

decode_record inputs are `<device_session_id>\\n<payload bytes>` (see
authsession_fuzz_check::check_decode_record); every valid and invalid vector
becomes one seed, plus each valid payload under a different id (the
id_mismatch path). The other targets read their input through `arbitrary`,
so the golden payloads serve them only as varied raw bytes.

Usage: python3 fuzz/seed-corpus.py OUT_DIR   (writes OUT_DIR/<target>/...)
"""
import base64
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
out = pathlib.Path(sys.argv[1])
data = root / "core" / "tests" / "data"


def write(target, name, content):
    path = out / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


for kind in ("valid", "invalid"):
    for case in json.loads((data / f"{kind}.json").read_text())["cases"]:
        payload = base64.b64decode(case["payload_b64"])
        sid = case["device_session_id"].encode()
        write("decode_record", f"{kind}-{case['name']}", sid + b"\n" + payload)
        if kind == "valid":
            write("decode_record", f"{kind}-{case['name']}-other-id", b"other\n" + payload)
        write("encode_roundtrip", f"{kind}-{case['name']}", payload)
        write("transitions", f"{kind}-{case['name']}", payload)
