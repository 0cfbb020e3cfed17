"""The device image of an integer graph, estimated without a compiler: what `quantize --flash` bounds.

image = core + the code of each kernel the graph runs on (ir.kernel_mask) + the blob (header, buffer / op / tensor
tables, the aligned tensor data: weights, biases, multipliers, tables; graph/blob.py). The code sizes are
kernel_sizes.json, measured from the Cortex-M4 footprint probe's real build (edgemem/verification/kernel_sizes.py,
`make kernel-sizes`): core (startup, vector table, em_graph_bind with its CRC, init/step, libc), each kernel's own
code, and code that several kernels share, counted once when one of the graph's kernels uses it. Not included: the
input stage's blob and kernels (a separate graph), the application around the model, the arena and stack (RAM).
docs/architecture.md "Image estimate" gives the measured errors against the linked probe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

from edgemem.errors import EdgememError
from edgemem.graph.blob import build_graph_blob
from edgemem.graph.ir import KERNELS, Graph, OpType, kernel_of

TABLE_PATH = Path(__file__).with_name("kernel_sizes.json")
OPT = "O2"  # the column the estimate uses: the footprint probe's (and verify.json's) -O2
# the kernel a weight op moves to when its weights are packed (S4 / S2 share it)
PACKED = {"FC_S8": "FC_S8_PACKED", "FC_S16": "FC_S16_PACKED", "CONV1D_S8": "CONV1D_PACKED",
          "FC_S8_EVENTS": "FC_S8_PACKED_EVENTS"}


@cache
def table(opt: str = OPT) -> dict[str, Any]:
    """{"core": bytes, "kernels": {name: bytes}} of kernel_sizes.json's `opt` column."""
    try:
        data = json.loads(TABLE_PATH.read_text())
        col = data[opt]
    except (OSError, ValueError, KeyError) as e:
        raise EdgememError(f"{TABLE_PATH} has no '{opt}' code sizes ({e}): run `make kernel-sizes`") from None
    if set(col["kernels"]) != set(KERNELS):
        raise EdgememError(f"{TABLE_PATH} names other kernels than em_graph.h's: run `make kernel-sizes`")
    return {"core": int(col["core"]), "kernels": {k: int(v) for k, v in col["kernels"].items()},
            "shared": [(frozenset(s["kernels"]), int(s["bytes"])) for s in col["shared"]]}


def code_parts(kernels: Iterable[str], opt: str = OPT) -> tuple[int, dict[str, int], int]:
    """(core, {kernel: its own code}, the code shared among these kernels, each group once)."""
    t, ks = table(opt), set(kernels)
    return (t["core"], {k: t["kernels"][k] for k in sorted(ks, key=KERNELS.index)},
            sum(n for users, n in t["shared"] if users & ks))


def code_bytes(kernels: Iterable[str], opt: str = OPT) -> int:
    """The runtime's code for these kernels: core + their own code + the code they share."""
    core, own, shared = code_parts(kernels, opt)
    return core + sum(own.values()) + shared


@dataclass(frozen=True)
class Image:
    core: int
    kernels: dict[str, int]  # the graph's kernels and their own code bytes
    shared: int  # code two of its kernels or more share
    blob: int

    @property
    def total(self) -> int:
        return self.core + sum(self.kernels.values()) + self.shared + self.blob

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.total, "core": self.core, "kernels": self.kernels, "shared_code": self.shared,
                "blob": self.blob}


def graph_kernels(g: Graph) -> set[str]:
    """The kernel variants g runs on (the names of ir.kernel_mask's bits)."""
    return {kernel_of(g, op) for op in g.ops}


def image_of(g: Graph, opt: str = OPT) -> Image:
    """The estimate for g: its real blob's length and the measured code of its kernels."""
    core, own, shared = code_parts(graph_kernels(g), opt)
    return Image(core, own, shared, len(build_graph_blob(g)))


def _ceil4(n: int) -> int:
    return -(-n // 4) * 4


class ImageModel:
    """image(bits) for weight widths per torch layer, from the all-int8 graph: a layer at 4 or 2 bits moves its op to
    the packed kernel (PACKED) and shrinks its weight tensor (each tensor starts 4-byte aligned in the blob); a
    kernel no op runs on any more leaves the image. Exact up to the blob's alignment padding after its last tensor
    and identical tensors sharing data (a few bytes)."""

    def __init__(self, g8: Graph, op_of: Callable[[str], str], layers: Iterable[str], opt: str = OPT) -> None:
        self.opt = opt
        ops = {op.name: op for op in g8.ops if op.type in (OpType.FC, OpType.CONV1D)}
        self.layers = list(layers)
        missing = [n for n in self.layers if op_of(n) not in ops]
        if missing:
            raise EdgememError(f"no FC / CONV1D op in the integer graph for layer(s) {', '.join(missing)}")
        self.base = {n: kernel_of(g8, ops[op_of(n)]) for n in self.layers}
        self.count = {n: int(g8.tensors[ops[op_of(n)].t[0]].data.size) for n in self.layers}
        mine = {id(ops[op_of(n)]) for n in self.layers}
        self.fixed = {kernel_of(g8, op) for op in g8.ops if id(op) not in mine}  # kernels the widths do not touch
        self.blob8 = len(build_graph_blob(g8))

    def kernels(self, bits: dict[str, int]) -> set[str]:
        return self.fixed | {PACKED[self.base[n]] if bits.get(n, 8) < 8 else self.base[n] for n in self.layers}

    def blob(self, bits: dict[str, int]) -> int:
        return self.blob8 + sum(_ceil4(math.ceil(self.count[n] * b / 8)) - _ceil4(self.count[n])
                                for n, b in bits.items() if n in self.count)

    def __call__(self, bits: dict[str, int]) -> int:
        return code_bytes(self.kernels(bits), self.opt) + self.blob(bits)

    def smallest(self, lowest: dict[str, int]) -> dict[str, int]:
        """The widths with the smallest image, each layer at 8 or at its `lowest` width: per base kernel either every
        layer of it stays at 8 bits or every one that can goes to its lowest (mixing needs both kernels and more
        weight bytes than the latter), so 2^(base kernels) configurations decide it."""
        groups = sorted({self.base[n] for n in self.layers if lowest.get(n, 8) < 8})
        best: dict[str, int] | None = None
        for choice in product((False, True), repeat=len(groups)):
            low = {g for g, c in zip(groups, choice) if c}
            bits = {n: lowest.get(n, 8) if self.base[n] in low else 8 for n in self.layers}
            if best is None or self(bits) < self(best):
                best = bits
        assert best is not None
        return best


def main(argv: list[str] | None = None) -> int:
    """`python -m edgemem.quant.image EXPORT...`: the image estimate of each export folder's model.bin."""
    import sys

    from edgemem.graph.blob import parse_graph_blob

    for folder in (sys.argv[1:] if argv is None else argv):
        try:
            img = image_of(parse_graph_blob((Path(folder) / "model.bin").read_bytes()))
        except (OSError, EdgememError) as e:
            print(f"{folder}: {e}", file=sys.stderr)
            return 2
        print(f"{folder}: image {img.total:,} B = core {img.core:,} + kernels {sum(img.kernels.values()):,} "
              f"({', '.join(img.kernels)}) + shared code {img.shared:,} + blob {img.blob:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
