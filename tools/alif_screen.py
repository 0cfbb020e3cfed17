"""A float prototype of the L2MU with an adaptive-threshold (ALIF) hidden population, screened like
tools/lever_screen.py (same arguments; it patches the pipeline's L2MU builder in this process and its workers).

    python tools/alif_screen.py alif_tm --epochs 30 --recipe bench/levers/screen_recipe.yaml --set '{...}'

The hidden neurons follow Bellec et al. 2020 / Yin et al. 2021: a = rho a + s_prev, threshold = thr + b a, the
membrane as the LIF's (subtract reset by the threshold in force). rho = sigmoid(raw) and b = softplus(raw) are learnt
per neuron. It exists to measure whether ALIF pays before it is built into the graph format, the integer reference,
C and TFLite; on the watch data it did not (docs/training.md), so it is not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import edgemem.training.pipeline as pipeline  # noqa: E402
from edgemem.models.l2mu import L2MU, L2MUConfig, State  # noqa: E402


class ALIFL2MU(L2MU):
    def __init__(self, cfg: L2MUConfig) -> None:
        super().__init__(cfg)
        self.adapt_rho_raw = nn.Parameter(torch.full((cfg.n_h,), 2.2))  # sigmoid: 0.9
        self.adapt_b_raw = nn.Parameter(torch.full((cfg.n_h,), -1.0))  # softplus: 0.31
        self._adp_prev: torch.Tensor | None = None

    def state_names(self) -> list[str]:
        return [*super().state_names(), "adp_hidden"]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {k: v for k, v in super().state_shapes().items() if k != "adp_hidden"}
        shapes["adp_hidden"] = (self.cfg.n_h,)
        return shapes

    def _thr(self, adp: torch.Tensor) -> torch.Tensor:
        return self.pops["hidden"].threshold + nn.functional.softplus(self.adapt_b_raw) * adp

    def _spike(self, pop: str, mem: torch.Tensor) -> torch.Tensor:
        if pop != "hidden" or self._adp_prev is None:
            return super()._spike(pop, mem)
        s = self.pops[pop].spike_grad(mem - self._thr(self._adp_prev))
        return s if s.dtype == mem.dtype else s.to(mem.dtype)

    def _fire(self, pop: str, cur: torch.Tensor, state: State, new: State) -> torch.Tensor:
        if pop != "hidden":
            return super()._fire(pop, cur, state, new)
        neuron, c = self.pops[pop], self.clip(pop)
        cur = cur.clamp(-c, c)
        mem_prev, adp_prev = state["mem_hidden"], state["adp_hidden"]
        thr_prev = self._thr(adp_prev)
        reset = (mem_prev > thr_prev).to(cur.dtype).detach()
        adp = torch.sigmoid(self.adapt_rho_raw) * adp_prev + reset
        mem = neuron.beta.clamp(0, 1) * mem_prev + cur - reset * thr_prev
        spk = neuron.spike_grad(mem - self._thr(adp))
        new["mem_hidden"], new["adp_hidden"] = mem.clamp(-c, c), adp
        return spk if spk.dtype == cur.dtype else spk.to(cur.dtype)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        self._adp_prev = state["adp_hidden"]
        return super().step(x, state)


_build_l2mu = pipeline.build_l2mu


def _build_alif(recipe, n_in: int, n_out: int) -> L2MU:  # noqa: ANN001 (pipeline.build_l2mu's signature)
    return ALIFL2MU(_build_l2mu(recipe, n_in, n_out).cfg)


if __name__ == "__main__":
    pipeline.build_l2mu = _build_alif  # type: ignore[assignment]
    import lever_screen

    raise SystemExit(lever_screen.main())
