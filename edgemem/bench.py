"""`make bench`: measured ratios, side by side in one run, written as JSON. Never asserted in tests.

LMU memory: parallel (FFT) vs recurrent forward + backward at T = 100 and T = 784.
LMU block training at T = 784 (psMNIST's length): one training step (forward, loss, backward) of the parallelizable
LMU classifier by its closed-form last-step memory and of the LMUFormer by FFT, against the same models stepped
through time (backpropagation through time).
Value-driven precision per patch (QuantMCU) on the KWS models' conv front stage: BitOPs saved and accuracy.
Event-driven kernels: per spiking model, Cortex-M4 instructions per step (QEMU -icount) with the dense and with the
event-driven FC kernels on the same held-out steps, and the input spike rate of the FCs that read spikes.
Kernel microbenchmark: Cortex-M4 instructions per MAC of each kernel form at the shipped models' shapes
(firmware/targets/cortex_m4/kernel_bench.c under QEMU -icount), beside the floor and CMSIS-NN's outside figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
from pathlib import Path

import torch

from edgemem.atomic import write_text_atomic
from edgemem.bench_runtimes import best_time
from edgemem.models.lmu import LMUMemory
from edgemem.tool import checkout_root


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    return best_time(fn, repeats)  # warm-up, then the fastest of `repeats`


def lmu_parallel_vs_recurrent(steps: int, batch: int = 32, channels: int = 4, order: int = 8,
                              repeats: int = 5) -> dict[str, float]:
    torch.manual_seed(0)
    mem = LMUMemory(channels, order, float(steps))
    u = torch.randn(batch, steps, channels, requires_grad=True)

    def run(mode: str):  # noqa: ANN202
        def go() -> None:
            out = mem.parallel(u) if mode == "parallel" else mem.recurrent(u)
            out.square().mean().backward()
            u.grad = None

        return go

    rec = _time(run("recurrent"), repeats)
    par = _time(run("parallel"), repeats)
    return {"steps": steps, "batch": batch, "channels": channels, "order": order, "recurrent_s": rec,
            "parallel_s": par, "speedup": rec / par}


def _train_step(model: torch.nn.Module, fn, x: torch.Tensor, y: torch.Tensor):  # noqa: ANN001, ANN202
    def go() -> None:
        loss = torch.nn.functional.cross_entropy(fn(model, x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return go


def _stepped(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    state = model.init_state(x.shape[0])  # type: ignore[operator]
    out = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)[:2]  # type: ignore[operator]
        out.append(y)
    return torch.stack(out, dim=1)


def lmu_block_training(steps: int = 784, batch: int = 32, repeats: int = 3) -> list[dict[str, float | str]]:
    from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig
    from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig

    torch.manual_seed(0)
    y = torch.randint(0, 10, (batch,))
    out: list[dict[str, float | str]] = []
    lmu = LMURNN(LMURNNConfig(n_in=1, n_out=10, order=128, theta=float(steps), n_h=128))
    x1 = torch.rand(batch, steps, 1)
    former = LMUFormer(LMUFormerConfig(n_in=32, n_out=10, channels=48, n_u=8, order=16, theta=float(steps),
                                       dropout=0.0))
    x32 = torch.randn(batch, steps, 32)
    cases = (
        ("lmu_classifier (order 128, n_h 128): closed-form last step vs stepped", lmu, x1,
         lambda m, x: m.forward_last(x), lambda m, x: _stepped(m, x)[:, -1]),
        ("lmuformer (C 48, n_u 8, order 16): FFT vs stepped", former.eval(), x32,
         lambda m, x: m(x).mean(1), lambda m, x: _stepped(m, x).mean(1)),
    )
    for name, model, x, par, rec in cases:
        t_par = _time(_train_step(model, par, x, y), repeats)
        t_rec = _time(_train_step(model, rec, x, y), repeats)
        out.append({"model": name, "steps": steps, "batch": batch, "recurrent_s": t_rec, "parallel_s": t_par,
                    "speedup": t_rec / t_par})
    return out


def memory_and_bits(root: Path) -> dict[str, object]:
    """Issue 4's two ratios from the shipped artifacts: peak RAM of layer-by-layer over the streaming schedule the
    runtime runs (planned now from each export's blob), and int8 over mixed-precision weight bytes (as
    `edgemem quantize` measured them, from quantize.json)."""
    from edgemem.schedule.plan import load_export_graph, plan_graph

    schedules = {}
    for meta in sorted((root / "export").glob("*/meta.json")):
        g, steps = load_export_graph(meta.parent)
        rep = plan_graph(g, steps).to_json()["schedules"]
        entry: dict[str, object] = {k: v["peak_ram_bytes"] for k, v in rep.items()}
        if "layer_by_layer" in rep:
            entry["layer_by_layer_over_streaming"] = rep["layer_by_layer"]["peak_ram_bytes"] / rep["streaming"][
                "peak_ram_bytes"]
        if "patch" in rep:
            entry["patch_extra_macs_ratio"] = rep["patch"]["extra_macs_ratio"]
            entry["patch_frames"] = rep["patch"]["patch_frames"]
            if "layer_by_layer" in rep:  # MCUNetV2's comparison: the patch schedule against layer by layer
                entry["layer_by_layer_over_patch"] = rep["layer_by_layer"]["peak_ram_bytes"] / rep["patch"][
                    "peak_ram_bytes"]
        schedules[meta.parent.name] = entry
    mixed = {}
    for q in sorted((root / "models").glob("*/quantize.json")):
        r = json.loads(q.read_text())
        mixed[q.parent.name] = {"weight_bytes": r["weight_bytes"], "weight_bytes_int8": r["weight_bytes_int8"],
                                "int8_over_mixed": r["weight_bytes_int8"] / r["weight_bytes"],
                                "accuracy": r["accuracy"], "accuracy_int8": r["accuracy_int8"]}
    return {"peak_ram_bytes_by_schedule": schedules, "mixed_precision_weights": mixed}


def value_driven_patch_precision(root: Path, patch: int = 8, low_bits: int = 4) -> dict[str, object]:
    """QuantMCU's value-driven precision per patch on the KWS models' conv front stage (`edgemem plan
    --value-driven`): BitOPs saved and held-out accuracy against int8 and against every patch at low_bits."""
    from edgemem.schedule.value_driven import evaluate_export

    return {name: evaluate_export(root / "export" / name, patch, low_bits)
            for name in ("kws_lmuformer", "kws_lmuformer_mixed")}


SPIKING = ("har_l2mu", "har_l2mu_mixed", "kws_slmuformer", "hapt_l2mu")
SHIPPED = ("har_l2mu", "kws_lmuformer", "kws_slmuformer", "psmnist_lmu", "har_elm", "kws_lmuformer_mixed", "har_l2mu_mixed",
           "hapt_l2mu")


def event_driven_kernels(root: Path, windows: int = 20) -> dict[str, object]:
    """Dense vs event-driven FC kernels on each spiking model's integer graph, the first `windows` held-out
    windows streamed on the emulated M4. Both must give the integer reference's logits (else this raises).
    input_spike_rate: the fraction of the FC inputs that were nonzero, weighted by each FC's outputs (= the share
    of the dense MACs the events do)."""
    import tempfile

    import numpy as np

    from edgemem.exporters.folder import checkpoint_of
    from edgemem.graph.arena import place_by_lifetime
    from edgemem.graph.blob import build_graph_blob
    from edgemem.graph.intops import quantize
    from edgemem.graph.ir import FLAG_EVENTS, OpType
    from edgemem.graph.ref import run_graph
    from edgemem.quant.lower import lower
    from edgemem.training.sets import data_sets
    from edgemem.verification.c_runtime import run_cortex_m4
    from edgemem.verification.held_out import held_out_set

    out: dict[str, object] = {}
    for name in SPIKING:
        meta, ckpt, held = held_out_set(root / "export" / name)
        sets = data_sets(ckpt, checkpoint_of(root / "export" / name, meta))
        recipe, calib = sets.recipe, sets.calibration
        q = recipe.quant
        lows = {ev: lower(ckpt.model, calib, q.margin, q.weight_bits or None, q.act_bits or None, events=ev)
                for ev in (False, True)}
        g = lows[True].graph
        x = quantize(held.x[:windows], lows[True].input_scale)
        ev_ops = [op for op in g.ops if op.type == OpType.FC and op.flags & FLAG_EVENTS]
        nnz_macs = dense_macs = spikes = 0.0

        ins = [(g.buffers[op.in0].name, op.d[1]) for op in ev_ops]
        lif_outs = [g.buffers[op.out].name for op in g.ops if op.type == OpType.LIF]

        def count(_t: int, values: dict[str, np.ndarray], ins: list = ins, lif_outs: list = lif_outs) -> None:  # type: ignore[type-arg]
            nonlocal nnz_macs, dense_macs, spikes
            for buf, d_out in ins:
                v = values[buf]
                nnz_macs += float((v != 0).sum()) * d_out
                dense_macs += v.size * d_out
            spikes += sum(float(values[b].sum()) for b in lif_outs)

        ref = run_graph(g, x, count)
        entry: dict[str, object] = {"steps": int(x.shape[0] * x.shape[1]), "event_fc_ops": len(ev_ops),
                                    "input_spike_rate": nnz_macs / dense_macs if dense_macs else None,
                                    "spikes_per_step": spikes / (x.shape[0] * x.shape[1]),
                                    "neurons": sum(op.d[0] for op in g.ops if op.type == OpType.LIF)}
        for ev, low in lows.items():
            place_by_lifetime(low.graph)
            with tempfile.TemporaryDirectory(prefix="edgemem-bench-") as tmp:
                path = Path(tmp) / "model.bin"
                path.write_bytes(build_graph_blob(low.graph))
                run = run_cortex_m4(path, x.astype(np.int8), g.n_out)
            if not np.array_equal(run.logits, ref):
                raise RuntimeError(f"{name}: the {'event-driven' if ev else 'dense'} C graph differs from the reference")
            entry["instructions_per_step_" + ("events" if ev else "dense")] = run.instructions_per_step
        entry["dense_over_events"] = entry["instructions_per_step_dense"] / entry["instructions_per_step_events"]  # type: ignore[operator]
        out[name] = entry
    return out


# The kernel microbenchmark's figures at commit 3f4bcf7, before the four-row SMLAD kernels (same program, same
# data, events at the kws_slmuformer spike rate 11.5 %): kept beside today's run, which is what `make bench` measures.
KERNELS_BEFORE = {
    ("fc_s8", "32x32"): 4801.9, ("fc_s8", "48x48"): 9433.6, ("fc_s8", "64x48"): 12536.6,
    ("fc_s8", "96x48"): 18731.9, ("fc_s8", "48x96"): 16354.8, ("fc_s8", "48x144"): 23271.7,
    ("fc_s8", "128x128"): 55640.6, ("fc_s16", "32x32"): 6287.8, ("fc_s16", "48x128"): 24888.9,
    ("fc_s16", "128x128"): 66005.6, ("fc_s8_p4", "32x32"): 7153.9, ("fc_s8_p4", "96x48"): 26154.7,
    ("fc_s8_p4", "128x128"): 72156.9, ("fc_s8_p2", "32x32"): 6835.9, ("fc_s8_p2", "96x48"): 25239.7,
    ("fc_s8_p2", "128x128"): 70929.8, ("fc_s16_p4", "48x128"): 60024.7, ("fc_s16_p4", "128x128"): 158239.8,
    ("fc_s16_p2", "48x128"): 69013.6, ("conv1d_s8", "48x32x3"): 18136.9, ("conv1d_s8", "48x48x3"): 23694.8,
    ("lmu_s8_s16", "8x16"): 15062.7, ("lmu_s8_s16", "1x128"): 39828.1, ("fc_events", "48x48"): 4369.8,
    ("fc_events", "96x48"): 7946.9,
}
# Outside measurement (../shared/NOTES.md, TFLM + CMSIS-NN 4ab83cc3 on the same emulated M4, per FC layer including
# its call): CMSIS-NN's int8 per-channel FC, instructions per layer by shape [out, in].
CMSIS_NN_FC_S8 = {"48x144": 16173, "96x48": 14613, "128x128": 38533}
KERNEL_FORMS = {
    "fc_s8": "int8 FC (em_fc_s8_mode)", "fc_s16": "int16-input FC (em_fc_s16)",
    "fc_s8_p4": "packed 4-bit FC (em_fc_s8_packed)", "fc_s8_p2": "packed 2-bit FC (em_fc_s8_packed)",
    "fc_s16_p4": "packed 4-bit FC, int16 input", "fc_s16_p2": "packed 2-bit FC, int16 input",
    "conv1d_s8": "causal conv1d (em_conv1d_causal_s8)", "lmu_s8_s16": "LMU A·m (em_lmu_s8_s16)",
    "fc_events": "event-driven FC (em_fc_s8_events)", "conv1d_p4": "packed 4-bit causal conv1d",
    "fc_events_p4": "event-driven packed 4-bit FC", "fc_events_p2": "event-driven packed 2-bit FC",
}
# M4 instructions per step (edgemem verify export/NAME --m4-windows 3, bit_exact true in both) at commit 3f4bcf7 and
# with the four-row / packed-SIMD FC and CONV1D kernels, the inline requant and the three-row LMU A·m, measured once
# when they were written; `make verify` re-measures the models' own figures.
STEPS_BEFORE_AFTER: dict[str, tuple[float, float]] = {
    "har_l2mu": (27591.2, 25755.2), "kws_lmuformer": (138297.6, 87234.6), "kws_slmuformer": (113466.2, 82736.1),
    "psmnist_lmu": (118901.0, 72879.0), "har_elm": (15429.3, 9178.3), "kws_lmuformer_mixed": (209593.4, 121210.4),
    "har_l2mu_mixed": (39141.3, 37309.3),
}


def kernel_microbench(spike_rate: float) -> list[dict[str, object]]:
    """Each kernel form once at each shipped shape on the emulated Cortex-M4 (kernel_bench.c): instructions per
    call of the public kernel (argument checks, requantization and stores included) over MACs. The event-driven
    FC's input holds round(in_dim * spike_rate) spikes; its MACs are the dense layer's, so its instructions per MAC
    compare with the dense kernel's. Deterministic: fixed data, QEMU -icount."""
    from edgemem.verification.c_runtime import FIRMWARE, _make, build_dir, require

    require("arm-none-eabi-gcc")
    require("qemu-system-arm")
    elf = build_dir() / "m4" / "kernel_bench.elf"
    _make(str(elf))
    res = subprocess.run(["sh", str(FIRMWARE / "targets" / "cortex_m4" / "run_qemu.sh"), str(elf),
                          str(round(spike_rate * 1000))], capture_output=True, text=True, cwd=elf.parent)
    if res.returncode != 0:
        raise RuntimeError(f"kernel_bench failed (exit {res.returncode}): {(res.stdout + res.stderr).strip()[-300:]}")
    rows: list[dict[str, object]] = []
    pat = re.compile(r"kernel=(\S+) shape=(\S+) macs=(\d+) instructions=([0-9.]+) spikes=(\d+)")
    for m in pat.finditer(res.stdout):
        kernel, shape, macs, instr, spikes = m.group(1), m.group(2), int(m.group(3)), float(m.group(4)), int(m.group(5))
        row: dict[str, object] = {"kernel": kernel, "shape": shape, "instructions_per_mac": instr / macs,
                                  "instructions": instr, "macs": macs}
        before = KERNELS_BEFORE.get((kernel, shape))
        if before is not None:
            row["instructions_per_mac_before"] = before / macs
        if kernel.startswith("fc_events"):
            row["spikes"] = spikes
        rows.append(row)
    if not rows:
        raise RuntimeError(f"kernel_bench printed no results: {res.stdout.strip()[-300:]}")
    return rows


def kernels_markdown(rows: list[dict[str, object]], spike_rate: float) -> str:
    lines = ["", "## Kernels on the Cortex-M4: instructions per MAC", "",
             "Written by `make bench` (edgemem/bench.py kernel_microbench: firmware/targets/cortex_m4/kernel_bench.c, "
             "`make -C firmware kernel-bench`, QEMU mps2-an386 -icount). One call of each public kernel (em_kernels.h) "
             "on fixed random weights at the shipped models' shapes, [out, in] (conv1d [c_out, c_in, k], LMU "
             "[n_u, order]: A·m is n_u x order^2 MACs); argument checks, requantization and stores included. "
             "Floor: 0.5 (SMLAD does two MACs an instruction); the int8 forms' loads and sign extension put the "
             "practical floor of the inner loop at 1.25 (per four weights one LDR, two SXTB16, two SMLAD). "
             "CMSIS-NN: its int8 per-channel FC in TFLM on the same emulated M4, an outside measurement "
             "(../shared/NOTES.md), call included. Before: the same program at commit 3f4bcf7. "
             f"Event-driven FC at {spike_rate:.1%} input spikes (kws_slmuformer's measured rate), per dense MAC. "
             "The four-row int8 and int16-input inner loops take 95 instructions per 64 MACs (1.48); the packed ones "
             "58 per 32 (S4, two rows); the LMU's three-row A·m 17 per 12 (SMLALD, int64). What a row adds "
             "above that (bias, requantization, store: about 15-35 "
             "instructions an output) and the call (argument checks) weigh most on short rows: 32x32 layers stay "
             "near 3 a MAC.",
             "",
             "| kernel | shape | MACs | instructions | instr/MAC | before | floor | CMSIS-NN (outside) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        macs = int(r["macs"])  # type: ignore[call-overload]
        before = r.get("instructions_per_mac_before")
        cm = CMSIS_NN_FC_S8.get(str(r["shape"])) if r["kernel"] == "fc_s8" else None
        lines.append(f"| {KERNEL_FORMS.get(str(r['kernel']), r['kernel'])} | {r['shape']} | {macs:,} | "
                     f"{float(r['instructions']):,.0f} | {float(r['instructions_per_mac']):.2f} | "  # type: ignore[arg-type]
                     f"{f'{before:.2f}' if isinstance(before, float) else ''} | 0.5 | "
                     f"{f'{cm / macs:.2f} ({cm:,})' if cm else ''} |")
    if STEPS_BEFORE_AFTER:
        lines += ["", "M4 instructions per step (`edgemem verify export/NAME --m4-windows 3`, bit-exact before and "
                  "after), measured once when the four-row kernels went in:", "",
                  "| model | before | after | after / before |", "|---|---|---|---|"]
        for name, (b, a) in STEPS_BEFORE_AFTER.items():
            lines.append(f"| {name} | {b:,.0f} | {a:,.0f} | {a / b:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    root = checkout_root()
    if root is None:  # it reads the shipped export/ and models/ folders
        raise SystemExit("edgemem.bench runs from a source checkout (`make bench`)")
    torch.set_num_threads(args.threads)
    results = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "cpu": platform.processor() or platform.machine()},
        # (channels, order): the L2MU's memory size, and a larger single-channel memory
        "lmu_parallel_vs_recurrent": [
            lmu_parallel_vs_recurrent(t, channels=c, order=d) for c, d in ((4, 8), (1, 64)) for t in (100, 784)
        ],
    }
    results["lmu_block_training_T784"] = lmu_block_training()
    results.update(memory_and_bits(root))
    results["value_driven_patch_precision"] = value_driven_patch_precision(root)
    results["event_driven_kernels"] = event_driven_kernels(root)
    from edgemem import bench_runtimes

    results["machine"]["pinned_core"] = bench_runtimes.pin_one_core()  # the peers' timings: one core
    results["runtimes"] = {m: bench_runtimes.bench_model(root, m) for m in SHIPPED}
    results["cores_instructions_per_step"] = bench_runtimes.cores_from_verify(root, SHIPPED)
    spike_rate = float(results["event_driven_kernels"]["kws_slmuformer"]["input_spike_rate"])
    results["kernels"] = kernel_microbench(spike_rate)
    from edgemem import bench_outside

    outside = bench_outside.compare(root, results["cores_instructions_per_step"])
    if outside is not None:  # TFLM + CMSIS-NN on the M4: an outside measurement, kept apart and marked as such
        results["tflm_cmsis_m4_outside"] = outside
    write_text_atomic(args.out.parent / "RESULTS.md",
                      bench_runtimes.markdown(results["runtimes"], results["cores_instructions_per_step"])
                      + bench_outside.markdown(outside)
                      + kernels_markdown(results["kernels"], spike_rate))
    for name, r in results["runtimes"].items():
        t, lt, ox = r["tflm"]["ratios"], r["litert"]["ratios"], r["onnxruntime"]["ratios"]
        print(f"{name}: TFLM / edgemem: instructions {t['instructions_per_step']:.2f}x, RAM {t['ram_bytes']:.2f}x, "
              f"flash >= {t['flash_bytes']:.2f}x; time per step LiteRT {lt['us_per_step']:.2f}x, onnxruntime "
              f"{ox['us_per_step']:.2f}x")
    for name, r in results["peak_ram_bytes_by_schedule"].items():
        ratio = r.get("layer_by_layer_over_streaming")
        print(f"peak RAM {name}: streaming {r['streaming']:,} B" + (
            f", layer by layer {r['layer_by_layer']:,} B ({ratio:.1f}x)" if ratio else "") + (
            f", patch ({r['patch_frames']} frames) {r['patch']:,} B at {r['patch_extra_macs_ratio']:.1%} extra MACs"
            f" ({r['layer_by_layer_over_patch']:.1f}x below layer by layer)" if "layer_by_layer_over_patch" in r else ""))
    for name, r in results["mixed_precision_weights"].items():
        print(f"weights {name}: {r['weight_bytes']:,} B vs int8 {r['weight_bytes_int8']:,} B "
              f"({r['int8_over_mixed']:.2f}x), accuracy {r['accuracy']:.4f} vs {r['accuracy_int8']:.4f}")
    for name, v in results["value_driven_patch_precision"].items():
        a, s = v["accuracy"], v["bitops_saved"]
        print(f"value-driven patches ({v['patch_frames']} frames, {v['low_bits']} bits) {name}: BitOPs saved "
              f"{s['whole_model']:.1%} whole model, {s['front_stage']:.1%} front stage; accuracy int8 {a['int8']:.4f}, "
              f"value-driven {a['value_driven']:.4f}, every patch {v['low_bits']}-bit {a['uniform_low']:.4f}")
    for name, e in results["event_driven_kernels"].items():
        print(f"event-driven FCs {name}: {e['instructions_per_step_dense']:,.0f} -> {e['instructions_per_step_events']:,.0f}"
              f" M4 instructions/step ({e['dense_over_events']:.2f}x) at input spike rate {e['input_spike_rate']:.1%}, "
              f"{e['spikes_per_step']:.1f} spikes/step of {e['neurons']} neurons")
    for r in results["kernels"]:
        print(f"kernel {r['kernel']} {r['shape']}: {r['instructions']:,.0f} M4 instructions, "
              f"{r['instructions_per_mac']:.2f} per MAC")
    for r in results["lmu_block_training_T784"]:
        print(f"training step, T=784, {r['model']}: recurrent {float(r['recurrent_s']) * 1e3:8.1f} ms, "
              f"parallel {float(r['parallel_s']) * 1e3:7.1f} ms, speed-up {float(r['speedup']):6.1f}x")
    for r in results["lmu_parallel_vs_recurrent"]:
        print(f"LMU memory fwd+bwd, {r['channels']} x order {r['order']:3d}, T={r['steps']:4d}: "
              f"recurrent {r['recurrent_s'] * 1e3:8.1f} ms, parallel {r['parallel_s'] * 1e3:7.1f} ms, "
              f"speed-up {r['speedup']:6.1f}x")
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
