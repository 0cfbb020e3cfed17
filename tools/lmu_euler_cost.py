"""Cortex-M4 (QEMU mps2-an386) instructions per step of the shipped psmnist_lmu weights with a ZOH memory and with
Euler memories of k substeps (k LEGENDRE LMU ops, docs/graph.md "LMU, Euler substeps"), on the same real test image.
Measures the runtime's cost only (the weights were trained for ZOH); exports nothing.

usage: PYTHONPATH=. python tools/lmu_euler_cost.py STEPS K [K ...]     (e.g. 200 3 4 6 8 12)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from edgemem.checkpoint import load_checkpoint
from edgemem.graph.arena import place_by_lifetime
from edgemem.graph.blob import build_graph_blob
from edgemem.graph.intops import quantize
from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig
from edgemem.quant.lower import lower
from edgemem.verification import c_runtime
from edgemem.verification.held_out import held_out_set

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    steps = int(argv[0])
    ckpt = load_checkpoint(ROOT / "models" / "psmnist_lmu" / "model.pt")
    _, _, ts = held_out_set(ROOT / "export" / "psmnist_lmu")
    weights = {k: v for k, v in ckpt.model.state_dict().items() if not k.startswith("memory.")}
    for k in [0] + [int(a) for a in argv[1:]]:
        cfg = LMURNNConfig(**{**ckpt.model.cfg.to_dict(), "discretization": "euler" if k else "zoh",
                              "substeps": max(k, 1)})
        model = LMURNN(cfg)
        model.load_state_dict(weights, strict=False)  # the memory's A and B are the config's
        low = lower(model.eval(), ts.x[:8])
        place_by_lifetime(low.graph)
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "m.bin"
            blob.write_bytes(build_graph_blob(low.graph))
            x = quantize(ts.x[:1, :steps], low.input_scale).astype(np.int8)
            r = c_runtime.run_cortex_m4(blob, x, cfg.n_out)
            print(f"{'zoh' if not k else f'euler k={k}'}: {r.instructions_per_step:.1f} instructions/step (M4, QEMU, "
                  f"{steps} steps), blob {blob.stat().st_size} B, arena {low.graph.arena_size} B", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
