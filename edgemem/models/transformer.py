"""A small float keyword-spotting transformer, the non-streaming baseline for the LMUFormer.

Shaped after KWT (Berg et al., 2021, "Keyword Transformer"): every time frame (all mel bins) is one token, projected
linearly to d_model, plus a learned (or sinusoidal) position; a stack of standard encoder layers (multi-head
self-attention over all T frames, GELU MLP, post-norm as KWT found best); mean pooling over time; a linear
classifier. The defaults are KWT-1's dimensions (d_model 64, 12 layers, 1 head, MLP 256, ~0.6M parameters); we pool
the mean instead of a class token, so the whole sequence is needed before the answer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    n_in: int = 32  # mel bins per frame
    n_out: int = 12
    max_len: int = 50  # frames; positions exist for at most this many
    d_model: int = 64
    n_heads: int = 1
    n_layers: int = 12
    d_ff: int = 256
    dropout: float = 0.1
    norm_first: bool = False  # post-norm (KWT); pre-norm adds a final LayerNorm
    positions: str = "learned"  # learned or sinusoidal

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"unknown positions '{self.positions}' (learned or sinusoidal)")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> TransformerConfig:
        return TransformerConfig(**d)


def sinusoidal_positions(length: int, d: int) -> torch.Tensor:
    """Vaswani et al.'s fixed positions: [length][d], sin on even and cos on odd dimensions."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe


class KWSTransformer(nn.Module):
    """x [b][T][n_in] -> logits [b][n_out] (one per sequence: not streaming)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Linear(cfg.n_in, d)
        if cfg.positions == "learned":
            # unit-variance start, as KWT (vit-pytorch): at ViT's 0.02 the order of the frames is invisible next to
            # the frame projection and short trainings stay order-blind
            self.pos = nn.Parameter(torch.randn(cfg.max_len, d))
        else:
            self.register_buffer("pos", sinusoidal_positions(cfg.max_len, d))
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=cfg.norm_first)
        # nested tensors only help with padding masks, which fixed-length windows never have
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(d, cfg.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        if steps > self.cfg.max_len:
            raise ValueError(f"{steps} frames > max_len {self.cfg.max_len}")
        h = self.encoder(self.embed(x) + self.pos[:steps])
        return self.head(self.norm(h).mean(dim=1))

    def macs(self, steps: int) -> int:
        """Multiply-accumulates of one inference over `steps` frames.

        Frame projection T n_in d; per layer: Q, K, V and output projections 4 T d^2, attention scores Q K^T and
        their weighted sum of V T^2 d each (over all heads together: h heads of d/h dims), MLP 2 T d d_ff;
        classifier d n_out. Not counted (as for the LMUFormer): biases, position adds, softmax, LayerNorm, GELU,
        residual adds and the mean pool, all O(T d) or O(h T^2) elementwise work.
        """
        c = self.cfg
        d, t = c.d_model, steps
        layer = 4 * t * d * d + 2 * t * t * d + 2 * t * d * c.d_ff
        return t * c.n_in * d + c.n_layers * layer + d * c.n_out

    def flops_per_inference(self, steps: int) -> int:
        return 2 * self.macs(steps)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
