"""python-hl7 (PyPI `hl7`) measured the way crates/renkei-hl7v2/benches/parse.rs measures Renkei.

Every message of the corpus is parsed on its own with hl7.parse (from bytes, so its UTF-8
decoding is included, as Renkei's Message::parse_bytes decodes too); then PID-3.1 and PID-5.1
(first repetition, unescaped), and for every OBX segment OBX-3.1 (raw) and OBX-5 (whole field,
unescaped) are read. The checksum is the sum of the UTF-8 byte lengths of those values (absent
values count 0). Best of three passes; only the parse+extract loop is timed.

Usage: python peer.py CORPUS   ->  prints `python-hl7 MBps MSGps CHECKSUM`
"""

import sys
import time

import hl7


def component1(field):
    """Component 1 of the first repetition, as python-hl7 writes it back (subcomponents joined).

    python-hl7 keeps a field without delimiters as a plain string inside the Field, and a field
    with components as Field > Repetition > Component.
    """
    if not field:
        return ""
    rep = field[0]
    if isinstance(rep, str):
        return rep
    if not rep:
        return ""
    return str(rep[0])


def field_value(segment, n):
    return segment[n] if len(segment) > n else None


def utf8_len(s):
    return len(s.encode("utf-8")) if s else 0


def extract(raw):
    m = hl7.parse(raw)  # bytes in: python-hl7 decodes them (encoding="utf-8")
    n = 0
    pid = None
    obx = []
    for seg in m:
        name = seg[0][0]
        if name == "PID" and pid is None:
            pid = seg
        elif name == "OBX":
            obx.append(seg)
    if pid is not None:
        for f in (3, 5):
            field = field_value(pid, f)
            if field is not None:
                n += utf8_len(m.unescape(component1(field)))
    for seg in obx:
        f3 = field_value(seg, 3)
        if f3 is not None:
            n += utf8_len(component1(f3))
        f5 = field_value(seg, 5)
        if f5 is not None:
            n += utf8_len(m.unescape(str(f5)))
    return n


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: peer.py CORPUS")
    with open(sys.argv[1], "rb") as f:
        corpus = [line for line in f.read().split(b"\n") if line]
    total = sum(len(line) for line in corpus)
    best = float("inf")
    check = 0
    for _ in range(3):
        started = time.perf_counter()
        check = 0
        for raw in corpus:
            check += extract(raw)
        best = min(best, time.perf_counter() - started)
    print(f"python-hl7 {total / best / 1e6:.1f} {len(corpus) / best:.0f} {check}")


if __name__ == "__main__":
    main()
