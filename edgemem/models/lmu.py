"""The Legendre Memory Unit's linear memory: the delay system, ZOH discretization, recurrent and parallel modes."""

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


class LMUMemory(nn.Module):
    """Linear memory over `channels` independent inputs, each with a Legendre memory of `order` dims.

    state m: [batch][channels][order]; u: [batch][channels].
    """

    def __init__(self, channels: int, order: int, theta: float) -> None:
        super().__init__()
        self.channels, self.order, self.theta = channels, order, theta
        abar, bbar = discretize_zoh(*legendre_delay(order, theta))
        self.register_buffer("A", torch.tensor(abar, dtype=torch.float32))  # [order][order]
        self.register_buffer("B", torch.tensor(bbar, dtype=torch.float32))  # [order]

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
