#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the conformance kit's cases.

    python3 fuzz/seed.py [--cases DIR] [--out fuzz/corpus]

Each case's `raw` (strings are latin-1 bytes; segments may be {"repeat": s, "count": n} or
{"base64": ...}; {"pause": ...} and {"await_response": ...} are skipped) becomes:

- corpus/head/seed-<case>: the raw bytes, as the worker's buffer would hold them;
- corpus/chunked/seed-<case>: for cases whose head (before the first CRLFCRLF) contains
  "chunked" (any case), two control bytes (see fuzz_targets/chunked.rs: piece sizes and
  limits, out-buffer sizes) followed by the bytes after the first CRLFCRLF.

Existing seed-* files are replaced; other files in the corpora (added by libFuzzer) are kept.
Standard library only.
"""

import argparse
import base64
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_CASES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "conformance" / "cases"

# Control bytes for the chunked seeds, cycled over the cases so the seeds start from a few
# different cuttings: (pieces, out). See the layout in fuzz_targets/chunked.rs.
CONTROLS = [
    (0x00, 0x00),  # 1-byte pieces, 1-byte out, small limits
    (0x07, 0x23),  # 8-byte pieces, 4-byte out, small limits
    (0x6F, 0x4F),  # 1..16-byte pieces, 16-byte out, default limits
    (0x9F, 0xFF),  # 32-byte pieces, 32-byte out, no body limit
    (0xE3, 0x01),  # 1..4-byte pieces, 2-byte out, tiny limits
]


def latin1(s):
    return s.encode("latin-1")


def raw_bytes(raw):
    """The bytes a case sends, pauses and waits left out."""
    if isinstance(raw, str):
        return latin1(raw)
    out = bytearray()
    for seg in raw:
        if isinstance(seg, str):
            out += latin1(seg)
        elif "repeat" in seg:
            out += latin1(seg["repeat"]) * int(seg["count"])
        elif "base64" in seg:
            out += base64.b64decode(seg["base64"])
        elif "pause" in seg or "await_response" in seg:
            continue
        else:
            raise ValueError(f"unknown raw segment {seg!r}")
    return bytes(out)


def cases(root):
    """(name, raw bytes) of every case under root: *.json and *.jsonl files."""
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            objs = [json.loads(path.read_text(encoding="utf-8"))]
        elif path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            objs = [json.loads(l) for l in lines if l.strip()]
        else:
            continue
        for i, obj in enumerate(objs):
            name = obj.get("name") or f"{path.relative_to(root).with_suffix('')}-{i}"
            yield name, raw_bytes(obj["raw"])


def file_name(case):
    return "seed-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", case)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=pathlib.Path, default=DEFAULT_CASES)
    ap.add_argument("--out", type=pathlib.Path, default=HERE / "corpus")
    args = ap.parse_args()
    if not args.cases.is_dir():
        sys.exit(f"no cases at {args.cases}")

    head_dir, chunked_dir = args.out / "head", args.out / "chunked"
    for d in (head_dir, chunked_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()

    n_head = n_chunked = 0
    for name, data in cases(args.cases):
        (head_dir / file_name(name)).write_bytes(data)
        n_head += 1
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep and b"chunked" in head.lower():
            pieces, out = CONTROLS[n_chunked % len(CONTROLS)]
            (chunked_dir / file_name(name)).write_bytes(bytes([pieces, out]) + rest)
            n_chunked += 1
    print(f"{n_head} seeds in {head_dir}, {n_chunked} in {chunked_dir}")


if __name__ == "__main__":
    main()
