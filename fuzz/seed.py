#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the conformance kit's cases.

    python3 fuzz/seed.py [--cases DIR] [--out fuzz/corpus]

Each case's `raw` (strings are latin-1 bytes; segments may be {"repeat": s, "count": n} or
{"base64": ...}; {"pause": ...} and {"await_response": ...} are skipped) becomes:

- corpus/head/seed-<case>: the raw bytes, as the worker's buffer would hold them;
- corpus/chunked/seed-<case>: for cases whose head (before the first CRLFCRLF) contains
  "chunked" (any case), two control bytes (see fuzz_targets/chunked.rs: piece sizes and
  limits, out-buffer sizes) followed by the bytes after the first CRLFCRLF.
- corpus/body/seed-<case>: for the same chunked cases, and for cases whose head has one
  `Content-Length` below 1024, four control bytes (see fuzz_targets/body.rs: framing,
  limits, pieces, socket; the Content-Length) followed by the bytes after the first CRLFCRLF;
  and corpus/body/seed-large-*, a few bodies past the in-memory 64 KiB (large mode).

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

# Control bytes for the body seeds, cycled likewise: (mode, cut) without the framing bit (bit
# 0, set by the case) and the Content-Length (bytes 2-3). See fuzz_targets/body.rs.
BODY_CONTROLS = [
    (0x00, 0x00),  # small limits, 1-byte pieces, 1-byte scratch, nothing with the head
    (0x52, 0x27),  # default limits, 8-byte pieces, 7-byte scratch, 5 bytes with the head
    (0xB4, 0x4F),  # no body limit, 1..16-byte pieces, EINTR, 64-byte scratch, 10 with the head
    (0xC0, 0xFF),  # small limits, 32-byte pieces, 16 KiB scratch, 35 with the head
    (0x16, 0x03),  # tiny limits, 1..4-byte pieces, 1-byte scratch
]

# Bodies past MEMORY_BODY (64 KiB), made by the harness from small inputs (large mode,
# mode bit 3): (name, mode, cut, Content-Length field, data).
LARGE_BODIES = [
    # Content-Length 64 KiB + 1: the file starts with the last byte.
    ("length-64k-plus-1", 0x08, 0x0B, 32769, b"0123456789abcdef"),
    # Content-Length past the 80 KiB the harness sends: incomplete, in the file.
    ("length-incomplete", 0x58, 0x5F, 60000, b"xyz"),
    # Chunks of it (repeated to 1 KiB) to past 64 KiB, then the last chunk and a pipelined request.
    ("chunked-then-next", 0x19, 0x2A, 32768, b"0\r\n\r\nGET / HTTP/1.1\r\n"),
    # Tiny limits in large mode: the body limit (64 KiB + 1 KiB) is met in the file.
    ("chunked-over-limit", 0xCF, 0x63, 40000, b"0123456789"),
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
    body_dir = args.out / "body"
    for d in (head_dir, chunked_dir, body_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()

    n_head = n_chunked = n_body = 0
    for name, data in cases(args.cases):
        (head_dir / file_name(name)).write_bytes(data)
        n_head += 1
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        length = content_length(head)
        if b"chunked" in head.lower():
            pieces, out = CONTROLS[n_chunked % len(CONTROLS)]
            (chunked_dir / file_name(name)).write_bytes(bytes([pieces, out]) + rest)
            n_chunked += 1
            framing, length = 1, 0
        elif length is not None and length < 1024:
            framing = 0
        else:
            continue
        mode, cut = BODY_CONTROLS[n_body % len(BODY_CONTROLS)]
        ctl = bytes([mode | framing, cut]) + length.to_bytes(2, "little")
        (body_dir / file_name(name)).write_bytes(ctl + rest)
        n_body += 1
    for name, mode, cut, length, data in LARGE_BODIES:
        ctl = bytes([mode, cut]) + length.to_bytes(2, "little")
        (body_dir / f"seed-large-{name}").write_bytes(ctl + data)
        n_body += 1
    print(f"{n_head} seeds in {head_dir}, {n_chunked} in {chunked_dir}, {n_body} in {body_dir}")


def content_length(head):
    """The value of the head's one Content-Length field, if it has exactly one and it is a
    decimal number; else None."""
    values = [
        line.split(b":", 1)[1].strip(b" \t")
        for line in head.split(b"\r\n")[1:]
        if b":" in line and line.split(b":", 1)[0].lower() == b"content-length"
    ]
    if len(values) != 1 or not values[0].isdigit():
        return None
    return int(values[0])


if __name__ == "__main__":
    main()
