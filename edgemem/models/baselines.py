"""Float baselines trained on the same windows and split as the L2MU: a GRU, a small 1D CNN, features + forest."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GRUClassifier(nn.Module):
    """x [b][T][n_in] -> logits [b][n_out] from the last hidden state."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(x)
        return self.out(h[:, -1])

    def macs_per_step(self) -> int:
        n_in = self.gru.input_size
        return 3 * (n_in * self.hidden + self.hidden * self.hidden) + self.out.in_features * self.out.out_features


class CNNClassifier(nn.Module):
    """Two conv blocks, global average pooling, linear. x [b][T][n_in] -> logits [b][n_out]."""

    def __init__(self, n_in: int, n_out: int, width: int = 32, kernel: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_in, width, kernel, padding=kernel // 2), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(width, 2 * width, kernel, padding=kernel // 2), nn.BatchNorm1d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2))

    def macs_per_window(self, steps: int) -> int:
        c1, c2, lin = self.net[0], self.net[4], self.net[-1]
        macs = steps * c1.in_channels * c1.out_channels * c1.kernel_size[0]
        macs += (steps // 2) * c2.in_channels * c2.out_channels * c2.kernel_size[0]
        return macs + lin.in_features * lin.out_features


def features_rf_fit_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_eval: list[np.ndarray], seed: int
) -> list[np.ndarray]:
    """seglearn's feature representation (per-channel statistics) with a random forest."""
    from seglearn.transform import FeatureRep
    from sklearn.ensemble import RandomForestClassifier

    rep = FeatureRep()
    rf = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    rf.fit(rep.fit_transform(x_train), y_train)
    return [rf.predict(rep.transform(x)) if len(x) else np.zeros(0, dtype=np.int64) for x in x_eval]
