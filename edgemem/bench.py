"""`make bench`: measured ratios, side by side in one run, written as JSON. Never asserted in tests.

LMU memory: parallel (FFT) vs recurrent forward + backward at T = 100 and T = 784.
LMU block training at T = 784 (psMNIST's length): one training step (forward, loss, backward) of the parallelizable
LMU classifier by its closed-form last-step memory and of the LMUFormer by FFT, against the same models stepped
through time (backpropagation through time).
Value-driven precision per patch (QuantMCU) on the KWS models' conv front stage: BitOPs saved and accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from edgemem.atomic import write_text_atomic
from edgemem.models.lmu import LMUMemory


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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
        if json.loads(meta.read_text()).get("kind") == "l2mu":
            continue  # version-1 blob: no graph to plan
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
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
    root = Path(__file__).resolve().parents[1]
    results.update(memory_and_bits(root))
    results["value_driven_patch_precision"] = value_driven_patch_precision(root)
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
