"""Post-training quantization of any zoo model into its integer graph (docs/graph.md)."""

from __future__ import annotations

import numpy as np
from torch import nn

from edgemem.errors import EdgememError
from edgemem.models import registry
from edgemem.quant.lowering import Lowered, float64_copy

__all__ = ["Lowered", "lower"]


def lower(model: nn.Module, calib_x: np.ndarray, margin: float = 1.25,
          weight_bits: dict[str, int] | None = None, act_bits: dict[str, int] | None = None,
          events: bool = True) -> Lowered:
    """calib_x [n][T][n_in]: normalized training sequences; the float model runs on them once to set every scale.
    weight_bits: graph op name (FC or CONV1D) -> 8, 4 or 2 bits per weight (8 where not named; lowering.Builder).
    act_bits: activation name -> 8 or 16 bits, for the kinds that name activations (lower_lmuformer.ACT16).
    events: FCs reading spikes use the event-driven kernel (Builder); False gives the dense graph, for comparison.

    The lowering works on a float64 copy of the model (lowering.float64_copy) and snaps every calibrated peak
    (lowering.snap_peak), so that the graph is the same on every CPU; `model` itself is only put in eval mode."""
    kind = registry.kind_of(model)
    model.eval()
    model = float64_copy(model)
    calib_x = np.asarray(calib_x, dtype=np.float64)
    if kind != "lmuformer" and any(v != 8 for v in (act_bits or {}).values()):
        raise EdgememError(f"model kind '{kind}' keeps its activations at 8 bits (16-bit activations: lmuformer)")
    if kind == "l2mu":
        from edgemem.quant.lower_l2mu import lower_l2mu

        return lower_l2mu(model, calib_x, margin, weight_bits, events)  # type: ignore[arg-type]
    if kind == "lmuformer":
        from edgemem.quant.lower_lmuformer import lower_lmuformer

        return lower_lmuformer(model, calib_x, margin, weight_bits, act_bits, events)  # type: ignore[arg-type]
    if kind == "elm":
        from edgemem.quant.lower_elm import lower_elm

        return lower_elm(model, calib_x, margin, weight_bits)  # type: ignore[arg-type]
    if kind == "lmu":
        from edgemem.quant.lower_lmu import lower_lmu

        return lower_lmu(model, calib_x, margin, weight_bits)  # type: ignore[arg-type]
    raise EdgememError(f"model kind '{kind}' has no graph lowering")
