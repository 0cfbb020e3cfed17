"""The float32 twin of the int8 .tflite (tflite_export): the same step and state in float, for float TFLite tools.

Weights are the int8 model's, dequantized (codes x their true per-channel scales; the LMU's A and B in real units).
No rounding, and no saturation but the states' clamps (the float model's state_clip / memory_clip, which int16 full
scale represents); ACT tables become the functions they tabulate (TANH; GELU in its tanh form); spikes are
GREATER + SELECT_V2. It approximates the int8 model (verify reports how closely); it is not bit-exact.
"""

from __future__ import annotations

import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.tflite_export import StateTensor, TfliteModel, _Lowering
from edgemem.exporters.tflite_writer import Op, options
from edgemem.graph.ir import FLAG_CUBA, Act
from edgemem.quant.lower import Lowered

Q15 = 2.0**-15
FUNCTIONS = ("tanh", "gelu")


class _FloatLowering(_Lowering):
    # ---- tensors: float32 everywhere but int32 shapes / indices and bool conditions ----
    def tensor(self, base: str, n: int | tuple[int, ...], dtype: str, scale: float | None) -> int:
        shape = (1, n) if isinstance(n, int) else n
        return self.sg.tensor(self._name(base), shape, dtype if dtype in ("int32", "bool") else "float32")

    def const(self, base: str, values: np.ndarray, dtype: str, scale: float | list[float] | None,
              axis: int = 0) -> int:
        v = np.asarray(values, dtype=np.float64)
        if dtype in ("int32", "bool"):
            return self.sg.const(self._name(base), np.asarray(values), dtype)
        if scale is not None:
            s = np.asarray(scale, dtype=np.float64)
            if s.ndim:  # per channel along `axis`
                shape = [1] * v.ndim
                shape[axis] = -1
                s = s.reshape(shape)
            v = v * s
        return self.sg.const(self._name(base), v.astype(np.float32), "float32")

    def dtype_of(self, tid: int) -> str:
        return "float32"

    def as16(self, buf: int) -> int:
        return self.value(buf)

    def as8(self, buf: int) -> int:
        return self.value(buf)

    def add_state(self, buf: int, dtype: str, count: int, scale: float) -> None:
        super().add_state(buf, "float32", count, scale)
        self.states[-1] = StateTensor(self.states[-1].name, "float32", count, scale)

    def input_tensor(self) -> int:
        return self.sg.tensor("input", (1, self.g.n_in), "float32")

    # ---- ops in real units ----
    def fc(self, op, src: int, d_in: int, weights: np.ndarray) -> None:
        d_out = op.d[1]
        ws = np.asarray(self.low.w_scales[op.name], dtype=np.float64)
        s_in = self.scale(op.in0)
        w = self.const(op.name + ".w", weights.reshape(d_out, d_in), "int8", list(ws), axis=0)
        b = self.const(op.name + ".bias", self.g.tensors[op.t[1]].data, "int64", list(s_in * ws))
        y = self.tensor(op.name, d_out, "float32", None)
        self.op(Op.FULLY_CONNECTED, [src, w, b], [y], options("FullyConnected"))
        self.store(op.out, y, op.acc)

    def act(self, op) -> None:
        n = op.d[0]
        x = self.value(op.in0)
        if op.act == Act.LUT:
            fn = self.low.act_fns.get(op.name, "")
            if fn not in FUNCTIONS:
                raise EdgememError(f"{op.name}: no float TFLite op for the table of '{fn}'")
            self.cur[op.out] = self.tanh(op.name, x, n) if fn == "tanh" else self.gelu(op.name, x, n)
        elif op.act == Act.RELU:
            y = self.tensor(op.name, n, "float32", None)
            self.op(Op.RELU, [x], [y])
            self.cur[op.out] = y
        else:  # a saturation: nothing in float
            self.cur[op.out] = x

    def tanh(self, name: str, x: int, n: int) -> int:
        y = self.tensor(name, n, "float32", None)
        self.op(Op.TANH, [x], [y])
        return y

    def mul(self, name: str, a: int, b: int, n: int) -> int:
        y = self.tensor(name, n, "float32", None)
        self.op(Op.MUL, [a, b], [y], options("Mul"))
        return y

    def gelu(self, name: str, x: int, n: int) -> int:
        """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) from MUL, ADD and TANH: TFLM has no GELU kernel (the
        tanh form is within 1e-3 of the exact GELU the int8 table holds)."""
        def k(v: float) -> int:
            return self.const(f"{name}.k", np.array([[v]]), "float32", None)

        x3 = self.mul(name + ".x3", self.mul(name + ".x2", x, x, n), x, n)
        inner = self.tensor(name + ".inner", n, "float32", None)
        self.op(Op.ADD, [x, self.mul(name + ".cx3", x3, k(0.044715), n)], [inner], options("Add"))
        t = self.tanh(name + ".tanh", self.mul(name + ".scaled", inner, k(float(np.sqrt(2 / np.pi))), n), n)
        one_plus = self.tensor(name + ".one_plus", n, "float32", None)
        self.op(Op.ADD, [t, k(1.0)], [one_plus], options("Add"))
        return self.mul(name, self.mul(name + ".half_x", x, k(0.5), n), one_plus, n)

    def above(self, name: str, mem: int, thr: int, n: int, s: float) -> int:
        cond = self.tensor(name + ".gt", n, "bool", None)
        self.op(Op.GREATER, [mem, thr], [cond])
        one = self.const(name + ".one", np.ones((1, n)), "float32", None)
        zero = self.const(name + ".zero", np.zeros((1, n)), "float32", None)
        y = self.tensor(name + ".above", n, "float32", None)
        self.op(Op.SELECT_V2, [cond, one, zero], [y])
        return y

    def spikes8(self, name: str, above: int, n: int) -> int:
        return above

    def decay(self, name: str, x: int, q15: np.ndarray, n: int, s: float) -> int:
        c = self.const(name + ".factor", np.asarray(q15).reshape(1, n) * Q15, "float32", None)
        y = self.tensor(name, n, "float32", None)
        self.op(Op.MUL, [x, c], [y], options("Mul"))
        return y

    def clamp(self, name: str, x: int, n: int | tuple[int, ...], s: float) -> int:
        """x clamped to the int16 state's range [-32768 s, 32767 s]: the float model's own clip (state_clip,
        memory_clip), which int16 full scale represents."""
        lo = self.tensor(name + ".lo", n, "float32", None)
        self.op(Op.MAXIMUM, [x, self.const(name + ".min", np.array([[-32768 * s]]), "float32", None)], [lo])
        y = self.tensor(name, n, "float32", None)
        self.op(Op.MINIMUM, [lo, self.const(name + ".max", np.array([[32767 * s]]), "float32", None)], [y])
        return y

    def leaky(self, op) -> None:
        n = op.d[0]
        s = self.scale(op.out)
        decayed = self.decay(op.name + ".decay", self.value(op.out), self.g.tensors[op.t[0]].data, n, s)
        self.cur[op.out] = self.clamp(op.name, self.add16(op.name + ".sum", decayed, self.value(op.in0), n, s), n, s)

    def lif(self, op) -> None:
        g = self.g
        n = op.d[0]
        s = self.scale(op.state0)
        cur, mem = self.value(op.in0), self.value(op.state0)
        thr = self.const(op.name + ".thr", g.tensors[op.t[2]].data.reshape(1, n), "int16", s)
        reset = self.tensor(op.name + ".reset", n, "float32", None)
        self.op(Op.MUL, [self.above(op.name + ".old", mem, thr, n, s), thr], [reset], options("Mul"))
        decayed = self.decay(op.name + ".decay", mem, g.tensors[op.t[0]].data, n, s)
        if op.flags & FLAG_CUBA:
            syn_decay = self.decay(op.name + ".syn_decay", self.value(op.state1), g.tensors[op.t[1]].data, n, s)
            cur = self.clamp(op.name + ".syn", self.add16(op.name + ".syn_sum", syn_decay, cur, n, s), n, s)
            self.cur[op.state1] = cur
        mem_next = self.clamp(op.name + ".mem", self.add16(
            op.name + ".mem_sum", self.add16(op.name + ".kept", decayed, reset, n, s, sub=True), cur, n, s), n, s)
        self.cur[op.state0] = mem_next
        self.cur[op.out] = self.above(op.name, mem_next, thr, n, s)

    def lmu(self, op) -> None:
        g = self.g
        n_u, order, a_shift, b_shift = op.d
        s_m, s_u = self.scale(op.state0), self.scale(op.in0)
        a = g.tensors[op.t[0]].data.reshape(order, order) * 2.0**-a_shift
        b = g.tensors[op.t[1]].data * 2.0**-b_shift * s_m / s_u  # u (real) -> m (real)
        m = self.reshape(op.name + ".m2", self.value(op.state0), (n_u, order), "float32", 1.0)
        am = self.tensor(op.name + ".Am", (n_u, order), "float32", None)
        self.op(Op.BATCH_MATMUL, [m, self.const(op.name + ".A", a, "float32", None)], [am],
                options("BatchMatMul", adjY=True))  # rhs stored pre-transposed, as in model.tflite
        u = self.reshape(op.name + ".u2", self.value(op.in0), (n_u, 1), "float32", 1.0)
        drive = self.tensor(op.name + ".Bu", (n_u, order), "float32", None)
        self.op(Op.BATCH_MATMUL, [u, self.const(op.name + ".B", b.reshape(order, 1), "float32", None)], [drive],
                options("BatchMatMul", adjY=True))
        total = self.tensor(op.name + ".m_sum", (n_u, order), "float32", None)
        self.op(Op.ADD, [am, drive], [total], options("Add"))
        nxt = self.clamp(op.name + ".m_next", total, (n_u, order), s_m)
        self.cur[op.state0] = self.reshape(op.name + ".m", nxt, (1, n_u * order), "float32", 1.0)

    def residual(self, op) -> None:  # real values: the rescale is the identity
        self.store(op.out, self.value(op.in0), op.acc)


def to_tflite_float(low: Lowered, name: str = "model") -> TfliteModel:
    """The float32 step of the int8 model (state as inputs and outputs, as model.tflite)."""
    lowering = _FloatLowering(low, False, name)
    lowering.model.description = f"edgemem {name}: one streaming step, float32 (the int8 model dequantized)"
    return lowering.build()
