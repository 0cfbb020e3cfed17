"""A recipe's quant.weight_bits and quant.act_bits against the model they will quantize, checked before training
(a misspelt layer name or a width its rows cannot be packed at used to surface only at export, after the training)."""

from __future__ import annotations

import numpy as np
from torch import nn

from edgemem.errors import EdgememError
from edgemem.graph.ir import OpType
from edgemem.models import registry
from edgemem.quant.lower import lower
from edgemem.quant.lowering import packable


def weight_rows(model: nn.Module, calib: np.ndarray, act_bits: dict[str, int] | None = None) -> dict[str, int]:
    """Every FC / CONV1D op of the model's integer graph (the names quant.weight_bits takes) with its row length
    (weights per output channel). Lowers the model at 8 bits on a few windows: untrained weights do as well."""
    try:
        low = lower(model, calib, 1.25, None, act_bits or None)
    except EdgememError as e:
        if act_bits:
            raise EdgememError(f"recipe field 'quant.act_bits': {e}") from None
        raise
    g = low.graph
    rows = {}
    for op in g.ops:
        if op.type in (OpType.FC, OpType.CONV1D):
            w, mult = g.tensors[op.t[0]], g.tensors[op.t[2]]  # mult: one multiplier per output channel
            rows[op.name] = w.data.size // mult.data.size
    return rows


def check_widths(model: nn.Module, calib: np.ndarray, weight_bits: dict[str, int], act_bits: dict[str, int]) -> None:
    """One EdgememError naming the recipe field when a weight_bits name is no weight layer of this model, a width
    cannot be packed (rows must fill whole bytes, docs/graph.md), or act_bits does not apply to this model."""
    if not weight_bits and not act_bits:
        return
    rows = weight_rows(model, calib, act_bits)
    kind = registry.kind_of(model)
    for name, bits in weight_bits.items():
        if name not in rows:
            raise EdgememError(f"recipe field 'quant.weight_bits' names '{name}', which is no weight layer of this "
                               f"{kind} (its FC / CONV1D ops: {', '.join(rows)})")
        if not packable(rows[name], bits):
            fits = [b for b in (4, 2) if packable(rows[name], b)]
            raise EdgememError(f"recipe field 'quant.weight_bits.{name}': rows of {rows[name]} weights cannot be packed "
                               f"at {bits} bits (a row must fill whole bytes; {name} can take "
                               f"{', '.join(str(b) for b in (8, *fits))})")
