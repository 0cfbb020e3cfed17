"""The Legendre Memory Unit's linear memory: the delay system, ZOH or Euler discretization, recurrent and parallel
modes.

Euler with k substeps (u held across them): S = I + A/k per substep, so one step is A_eff = S^k and
B_eff = sum_{s<k} S^s B / k. One Euler step (k = 1) is unstable for psMNIST's order 128 / theta 784 (spectral radius
of I + A is 1.030) and the KWS LMUFormer's 16 / 50 (1.025); k = 3 gives 0.9992 and 16 / 50 with k = 2 0.9735. S has
the continuous A's structure (a diagonal plus a per-row scale times a fixed sign pattern), so the C runtime applies
each substep in O(order) instead of order^2 (docs/graph.md "LMU, Euler-structured").
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import cont2discrete
from torch import nn


def legendre_delay(order: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (A, B) of the Pade-Legendre approximation of a delay of `theta` (Voelker et al., 2019)."""
    q = np.arange(order, dtype=np.float64)
    r = (2 * q + 1)[:, None] / theta
    i, j = np.meshgrid(q, q, indexing="ij")
    a = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * r
    b = ((-1.0) ** q)[:, None] * r
    return a, b


def discretize_zoh(a: np.ndarray, b: np.ndarray, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order-hold discretization with scipy: m[t] = Abar m[t-1] + Bbar u[t]."""
    n = a.shape[0]
    abar, bbar, *_ = cont2discrete((a, b, np.eye(n), np.zeros((n, 1))), dt=dt, method="zoh")
    return abar, bbar[:, 0]


def euler_substep(a: np.ndarray, b: np.ndarray, substeps: int) -> tuple[np.ndarray, np.ndarray]:
    """One forward-Euler substep of k = `substeps` per step (dt = 1/k): m <- S m + B_s u, S = I + A/k, B_s = B/k."""
    return np.eye(a.shape[0]) + a / substeps, b[:, 0] / substeps


def discretize_euler(a: np.ndarray, b: np.ndarray, substeps: int) -> tuple[np.ndarray, np.ndarray]:
    """k Euler substeps with u held, as one step: A_eff = S^k, B_eff = sum_{s<k} S^s B_s (float64)."""
    s, bs = euler_substep(a, b, substeps)
    a_eff, b_eff = np.eye(a.shape[0]), np.zeros_like(bs)
    for _ in range(substeps):
        a_eff, b_eff = s @ a_eff, s @ b_eff + bs
    return a_eff, b_eff


DISCRETIZATIONS = ("zoh", "euler")


class LMUMemory(nn.Module):
    """Linear memory over `channels` independent inputs, each with a Legendre memory of `order` dims.

    state m: [batch][channels][order]; u: [batch][channels]. A and B are one step's (ZOH, or `substeps` Euler
    substeps composed); with Euler, `substep()` gives the (S, B_s) the integer graph applies `substeps` times.
    """

    def __init__(self, channels: int, order: int, theta: float, discretization: str = "zoh",
                 substeps: int = 1) -> None:
        super().__init__()
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization '{discretization}' (choose from {', '.join(DISCRETIZATIONS)})")
        if substeps < 1 or (discretization == "zoh" and substeps != 1):
            raise ValueError(f"substeps = {substeps}: Euler takes >= 1, ZOH exactly 1")
        self.channels, self.order, self.theta = channels, order, theta
        self.discretization, self.substeps = discretization, substeps
        if discretization == "euler":
            abar, bbar = discretize_euler(*legendre_delay(order, theta), substeps)
            if np.abs(np.linalg.eigvals(abar)).max() >= 1.0:
                raise ValueError(f"Euler with {substeps} substeps is unstable for order {order}, theta {theta}: "
                                 "use more substeps")
        else:
            abar, bbar = discretize_zoh(*legendre_delay(order, theta))
        self.register_buffer("A", torch.tensor(abar, dtype=torch.float32))  # [order][order]
        self.register_buffer("B", torch.tensor(bbar, dtype=torch.float32))  # [order]

    def substep(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, B_s) of one Euler substep (float64); ZOH has none."""
        if self.discretization != "euler":
            raise ValueError("a ZOH memory has no substeps")
        return euler_substep(*legendre_delay(self.order, self.theta), self.substeps)

    def step(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One recurrent step: m [b][c][d], u [b][c] -> m [b][c][d]."""
        return m @ self.A.T + u.unsqueeze(-1) * self.B

    def recurrent(self, u: torch.Tensor) -> torch.Tensor:
        """u [b][T][c] -> m [b][T][c][d] by stepping."""
        m = u.new_zeros(u.shape[0], self.channels, self.order)
        out = []
        for t in range(u.shape[1]):
            m = self.step(m, u[:, t])
            out.append(m)
        return torch.stack(out, dim=1)

    def impulse_response(self, steps: int) -> torch.Tensor:
        """H[k] = Abar^k Bbar for k < steps: [steps][order] (float64 powers, then float32)."""
        a = self.A.double()
        h = [self.B.double()]
        for _ in range(steps - 1):
            h.append(a @ h[-1])
        return torch.stack(h).to(self.A.dtype)  # float32 for a float32 module, as before; float64 when converted

    def peak_magnitude(self, lo: float, hi: float, steps: int | None = None) -> torch.Tensor:
        """Largest |m[i]| that any input with lo <= u <= hi can drive, for every dimension i: [order].

        m[i](t) = sum_k H[k][i] u(t-k) is extreme when each u(t-k) sits at lo or hi by the sign of H[k][i]. The
        system is stable, so the sum over `steps` (default 20 theta + 100, where the response has died out) is the
        bound over an unbounded stream too. For spikes (lo, hi) = (0, 1).
        """
        n = steps if steps is not None else int(20 * self.theta) + 100
        h = self.impulse_response(n).double()
        pos, neg = h.clamp(min=0), h.clamp(max=0)
        top = (pos * hi + neg * lo).sum(0)
        bottom = (pos * lo + neg * hi).sum(0)
        return torch.maximum(top.abs(), bottom.abs())

    def parallel(self, u: torch.Tensor) -> torch.Tensor:
        """u [b][T][c] -> m [b][T][c][d] at once: causal convolution with H, computed with an FFT."""
        steps = u.shape[1]
        h = self.impulse_response(steps)  # [T][d]
        n = 2 * steps
        uf = torch.fft.rfft(u, n=n, dim=1)  # [b][F][c]
        hf = torch.fft.rfft(h, n=n, dim=0)  # [F][d]
        m = torch.fft.irfft(uf.unsqueeze(-1) * hf[None, :, None, :], n=n, dim=1)
        return m[:, :steps]
