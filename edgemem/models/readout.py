"""How a model's per-step logits become one class per sequence (the recipe's `readout`), for every runtime."""

from __future__ import annotations

import numpy as np

READOUTS = ("sum", "last")  # argmax of the logits summed over the sequence, or of the last step's


def predictions(logits: np.ndarray, readout: str) -> np.ndarray:
    """Class per sequence from per-step logits [n][T][n_out]: argmax of their sum, or of the last step's."""
    if readout == "last":
        return logits[:, -1].argmax(axis=1)
    return logits.astype(np.float64).sum(axis=1).argmax(axis=1)
