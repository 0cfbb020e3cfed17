#!/usr/bin/env python3
"""Seed corpus for fuzz_model: each real model blob wrapped in the harness's input layout (see fuzz_model.c). A blob
of the retired first format (export folders not yet re-exported) is a seed too: the runtime must refuse it.

usage: make_seeds.py OUT_DIR BLOB[:PLAN] [BLOB[:PLAN] ...]
For every blob: one seed per arena mode (0..3, CRC recompute on and off) with a few input steps (zeros, full
scale +127/-128, alternating, a ramp). With :PLAN (a graph's patch plan, export/NAME/patch.bin) also two patch-mode
seeds (flag bit 4, with and without CRC recompute). Python 3 standard library only; writes
OUT_DIR/<name>-<variant>.bin.
"""
import os
import struct
import sys


def steps_for(n_in, kind, stage=False):
    """Bytes of 8 input steps of n_in channels: int8, or for an input stage int16 little endian (the int8 pattern
    times 256, so full scale reaches +-32767)."""
    out = bytearray()
    for t in range(8):
        for i in range(n_in):
            if kind == "zero":
                v = 0
            elif kind == "max":
                v = 127 if (t // 2) % 2 == 0 else -128
            elif kind == "alt":
                v = 127 if (t + i) % 2 == 0 else -128
            else:  # ramp
                v = ((t * 37 + i * 11) % 256) - 128
            out += struct.pack("<h", v * 256 + (255 if v > 0 else 0)) if stage else struct.pack("<b", v)
    return bytes(out)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for arg in argv[2:]:
        path, _, plan_path = arg.partition(":")
        with open(path, "rb") as f:
            blob = f.read()
        if len(blob) < 64 or blob[:4] != b"EMMB":
            sys.stderr.write(f"make_seeds: {path} is not an EMMB blob\n")
            return 1
        # n_in: header offset 18 (docs/graph.md); any other format is refused before its steps are read
        n_in = max(1, min(1024, struct.unpack_from("<H", blob, 18)[0]))
        # an input stage (in_buffer s16, docs/graph.md "Input stages") takes int16 samples
        in_buf = struct.unpack_from("<H", blob, 28)[0]
        at = 64 + 12 * in_buf
        stage = len(blob) > at and blob[at] == 2
        name = (os.path.basename(os.path.dirname(os.path.abspath(path))) or "model") + ("-stage" if stage else "")
        variants = [
            (0x00, "zero"), (0x01, "ramp"), (0x02, "max"), (0x03, "ramp"),
            (0x04, "alt"), (0x0D, "zero"), (0x06, "max"), (0x07, "alt"),
        ]
        for flags, kind in variants:
            data = bytes([flags]) + struct.pack("<I", len(blob)) + blob + steps_for(n_in, kind, stage)
            with open(os.path.join(out_dir, f"{name}-f{flags:02x}-{kind}.bin"), "wb") as f:
                f.write(data)
            n += 1
        if plan_path:
            with open(plan_path, "rb") as f:
                plan = f.read()
            for flags, kind in ((0x10, "ramp"), (0x11, "alt")):
                data = (bytes([flags]) + struct.pack("<I", len(blob)) + blob + struct.pack("<H", len(plan)) + plan
                        + steps_for(n_in, kind) * 3)
                with open(os.path.join(out_dir, f"{name}-patch-f{flags:02x}-{kind}.bin"), "wb") as f:
                    f.write(data)
                n += 1
    print(f"make_seeds: {n} seeds in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
