"""The quantized L2MU: every integer array and parameter the runtimes need, and the scales they came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FC_NAMES = ("enc_x", "enc_h", "enc_m", "hid_x", "hid_h", "hid_m", "out")  # blob order (em_fc_id_t)
POP_NAMES = ("encoder", "memory", "hidden")  # blob order (em_pop_id_t)


@dataclass
class QuantFC:
    w: np.ndarray  # [out][in] int8 values
    bias: np.ndarray  # [out] int32 values at scale s_in * s_w
    mult: np.ndarray  # [out] in [2^30, 2^31)
    shift: np.ndarray  # [out] in [1, 62]
    w_scale: np.ndarray  # [out] float, for reports and ONNX/QDQ


@dataclass
class QuantPop:
    beta: np.ndarray  # [n] Q15
    alpha: np.ndarray  # [n] Q15 (zeros for LIF)
    thr: np.ndarray  # [n] membrane units
    cuba: bool
    scale: float  # float value of one membrane unit


@dataclass
class QuantL2MU:
    n_in: int
    n_u: int
    order: int
    n_h: int
    n_out: int
    fc: dict[str, QuantFC]
    pops: dict[str, QuantPop]
    lmu_a: np.ndarray  # [order][order] Q(a_shift)
    a_shift: int
    lmu_b: np.ndarray  # [order] memory units
    input_scale: float
    memory_scale: float
    output_scale: float
    info: dict[str, float] = field(default_factory=dict)

    @property
    def n_m(self) -> int:
        return 2 * self.n_u * self.order
