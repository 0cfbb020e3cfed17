#!/usr/bin/env python3
"""Deterministic int8 input for em_run: make_input.py OUT N_IN STEPS [SEED] writes STEPS x N_IN bytes (a 32-bit LCG,
the whole int8 range; stdlib only), e.g. the har_elm windows `make cores-test` runs on every core."""
import sys


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, n_in, steps = argv[1], int(argv[2]), int(argv[3])
    s = int(argv[4]) if len(argv) == 5 else 1
    buf = bytearray()
    for _ in range(n_in * steps):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        buf.append(s >> 24)
    with open(out, "wb") as f:
        f.write(buf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
