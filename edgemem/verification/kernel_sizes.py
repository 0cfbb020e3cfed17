"""The code-size table of the Cortex-M4 runtime (edgemem/quant/kernel_sizes.json), measured from the real build.

Each figure comes from linking the footprint probe (firmware/Makefile `footprint.elf`, the build `edgemem verify`
measures: -mcpu=cortex-m4 -mthumb -mfloat-abi=hard, -ffunction-sections/-fdata-sections, --gc-sections, newlib-nano,
bind + init/step, no parser) against a synthetic model folder whose model.h names a kernel mask and whose blob is
BLOB_PAD bytes, so that flash (text + data) minus BLOB_PAD is code and constants only:

- core: the probe with no kernel (startup, vector table, em_graph_bind with its CRC, init/step, libc it needs),
  plus what every kernel adds to the core's own functions (em_graph_step's loop, dropped when no kernel is in):
  with g_k a core function's growth with kernel k alone and G its growth with all K kernels, (sum g_k - G) / (K - 1).
- shared: each symbol (arm-none-eabi-nm -S) that the probe with one kernel k links and the core does not, and that
  two kernels' probes or more link (intops.c's requant, memcpy, ...), summed per set of kernels using it.
- kernel k: what the probe with k alone adds to core, less the shared code it pulls: its own functions, their
  alignment, the dispatcher's case for k.

image code of a mask = core + its kernels + each shared group one of them uses once (edgemem/quant/image.py adds
the blob). Both -O2 (the footprint probe and verify.json's flash) and -Os (EM_DEFS=-Os, appended after -O2) are
measured; the estimate uses -O2. `all_kernels`: the probe with every kernel, for reference.

`make kernel-sizes` (or `python -m edgemem.verification.kernel_sizes`) rewrites the JSON;
tests/test_image.py checks that the shipped table equals a fresh build's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgemem.errors import EdgememError
from edgemem.graph.ir import KERNELS
from edgemem.quant.image import TABLE_PATH
from edgemem.verification.c_runtime import _check, _make, require

BLOB_PAD = 64  # bytes of the synthetic blob (never bound: the probe is linked, not run)
OPT_FLAGS = {"O2": "", "Os": "-Os"}  # EM_DEFS per column ("" = the Makefile's own -O2)
RULE = ("image code = core + sum(kernels of the mask) + each shared group that one of the mask's kernels "
        "uses; blob bytes come on top")
PROBE = ("footprint probe (firmware/Makefile footprint.elf): Cortex-M4F, -mthumb -mfloat-abi=hard, "
         "-ffunction-sections -fdata-sections, --gc-sections, newlib-nano, em_graph_bind + init/step, no parser")

_MODEL_H = """#ifndef EM_MODEL_SIZE_PROBE_H
#define EM_MODEL_SIZE_PROBE_H
#include "edgemem.h"
#define EM_MODEL_FORMAT 2
#define EM_MODEL_BLOB_SIZE {pad}u
#define EM_MODEL_ARENA_BYTES 4u
#define EM_MODEL_GRAPH_KERNELS {mask:#x}u
#define EM_MODEL_N_IN 1
#define EM_MODEL_N_OUT 1
extern const uint8_t em_model_blob[EM_MODEL_BLOB_SIZE];
#endif
"""
_MODEL_C = '#include "model.h"\nconst uint8_t em_model_blob[EM_MODEL_BLOB_SIZE] __attribute__((aligned(4))) = {1};\n'


def probe(mask: int, defs: str, work: Path) -> tuple[int, dict[str, int]]:
    """(flash = text + data minus the synthetic blob, {symbol: bytes} of its code and constants) of the footprint
    probe linked with kernel mask `mask`."""
    model = work / f"model_{mask:x}"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.h").write_text(_MODEL_H.format(pad=BLOB_PAD, mask=mask))
    (model / "model.c").write_text(_MODEL_C)
    build = work / f"build_{mask:x}{defs.strip('-')}"
    elf = build / "m4" / "footprint.elf"
    _make(str(elf), MODEL_DIR=str(model), BUILD=str(build), EM_DEFS=defs)
    res = subprocess.run([require("arm-none-eabi-size"), str(elf)], capture_output=True, text=True)
    text, data = (int(v) for v in _check(res, "arm-none-eabi-size").strip().splitlines()[-1].split()[:2])
    res = subprocess.run([require("arm-none-eabi-nm"), "-S", "--defined-only", str(elf)], capture_output=True, text=True)
    syms = {}
    for line in _check(res, "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTrRdD" and parts[3] != "em_model_blob":
            syms[parts[3]] = int(parts[1], 16)
    return text + data - BLOB_PAD, syms


def column(defs: str, work: Path) -> dict[str, Any]:
    """One column of the table: core, each kernel's own bytes, the code kernels share, the all-kernel probe."""
    core, base = probe(0, defs, work)
    alone = {k: probe(1 << i, defs, work) for i, k in enumerate(KERNELS)}
    users: dict[str, set[str]] = {}  # symbol -> the kernels whose build links it (core's symbols left out)
    size: dict[str, int] = {}
    for k, (_, syms) in alone.items():
        for name, n in syms.items():
            if name not in base:
                users.setdefault(name, set()).add(k)
                size[name] = n
    shared: dict[tuple[str, ...], int] = {}
    for name, ks in users.items():
        if len(ks) > 1:
            key = tuple(sorted(ks, key=KERNELS.index))
            shared[key] = shared.get(key, 0) + size[name]
    full, full_syms = probe((1 << len(KERNELS)) - 1, defs, work)
    # A core function that grows once any kernel is in (em_graph_step: its loop and one case per kernel; with no
    # kernel the compiler drops the loop) grows by loop + case_k alone and by loop + every case with all kernels:
    # the loop, (sum of the single-kernel growths - the full growth) / (K - 1), is core's.
    loop = sum(round((sum(syms[n] - n0 for _, syms in alone.values()) - (full_syms[n] - n0)) / (len(KERNELS) - 1))
               for n, n0 in base.items() if n in full_syms and full_syms[n] > n0)
    core += loop
    # own: what k alone adds to core, less the shared code it pulls (alignment and the dispatcher's case included)
    own = {k: flash - core - sum(n for ks, n in shared.items() if k in ks) for k, (flash, _) in alone.items()}
    return {"core": core, "kernels": own,
            "shared": [{"kernels": list(ks), "bytes": n} for ks, n in sorted(shared.items())],
            "all_kernels": full}


def measure() -> dict[str, Any]:
    """The table (see the module docstring), built fresh in a temp folder."""
    require("arm-none-eabi-gcc")
    table: dict[str, Any] = {"generated_by": "make kernel-sizes", "probe": PROBE, "rule": RULE}
    with tempfile.TemporaryDirectory(prefix="edgemem-ksize-") as tmp:
        for col, defs in OPT_FLAGS.items():
            table[col] = column(defs, Path(tmp))
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Measure the Cortex-M4 code size of the runtime core and each kernel.")
    ap.add_argument("--out", type=Path, default=TABLE_PATH, help=f"where to write it (default {TABLE_PATH})")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing; exit 1 if stale")
    args = ap.parse_args(argv)
    try:
        table = measure()
    except EdgememError as e:
        print(f"kernel-sizes: {e}")
        return 2
    text = json.dumps(table, indent=2) + "\n"
    if args.check:
        same = args.out.is_file() and json.loads(args.out.read_text()) == table
        print(f"kernel-sizes: {args.out} {'matches' if same else 'differs from'} a fresh build")
        return 0 if same else 1
    args.out.write_text(text)
    o2 = table["O2"]
    print(f"kernel-sizes: wrote {args.out} (-O2: core {o2['core']:,} B, all kernels {o2['all_kernels']:,} B)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
