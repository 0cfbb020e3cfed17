"""Input stages as graphs (docs/graph.md "Input stages"): the first stage of the device pipeline, raw samples in,
the model's int8 input out, run by the same runtime as the model (em_graph_stage_step) from its own small blob."""

from __future__ import annotations

from edgemem.graph.ir import DType as DT
from edgemem.graph.ir import Graph, Op, OpType
from edgemem.graph.logmel import LogMelTables
from edgemem.graph.sensor import SensorTables


def sensor_stage_graph(t: SensorTables) -> Graph:
    """One SENSOR op: int16 counts [D][C] (sample-major) -> int8 [C]."""
    g = Graph(n_in=t.channels * t.decim, n_out=t.channels)
    g.in_buffer = g.buffer("counts", DT.S16, t.channels * t.decim)
    g.out_buffer = g.buffer("input", DT.S8, t.channels)
    tensors = (g.tensor("sensor.offset", t.offset, DT.S32), g.tensor("sensor.mult", t.mult, DT.S32),
               g.tensor("sensor.shift", t.shift, DT.S8), 0xFFFF)
    g.op(Op(OpType.SENSOR, "sensor", in0=g.in_buffer, out=g.out_buffer, d=(t.channels, t.decim, 0, 0), t=tensors))
    g.place()
    return g


def logmel_stage_graph(t: LogMelTables) -> Graph:
    """One LOGMEL op: int16 PCM [hop] -> int8 [n_mels], the last win - hop samples kept as state."""
    g = Graph(n_in=t.hop, n_out=t.n_mels)
    g.in_buffer = g.buffer("pcm", DT.S16, t.hop)
    g.out_buffer = g.buffer("features", DT.S8, t.n_mels)
    history = g.buffer("history", DT.S16, t.win - t.hop, state=True) if t.win > t.hop else 0xFFFF
    scratch = g.buffer("fft", DT.S32, t.n_fft + 2)
    tensors = (g.tensor("logmel.window", t.window, DT.S16), g.tensor("logmel.twiddles_log2", t.t1, DT.S32),
               g.tensor("logmel.filterbank", t.filterbank, DT.S16), g.tensor("logmel.band_quant", t.band_quant, DT.S32))
    g.op(Op(OpType.LOGMEL, "logmel", in0=g.in_buffer, out=g.out_buffer, state0=history, scratch=scratch,
            d=(t.win, t.hop, t.n_fft, t.n_mels), t=tensors))
    g.place()
    return g
