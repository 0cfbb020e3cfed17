"""`make bench`: measured ratios, side by side in one run, written as JSON. Never asserted in tests.

LMU memory: parallel (FFT) vs recurrent forward + backward at T = 100 and T = 784.
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
    for r in results["lmu_parallel_vs_recurrent"]:
        print(f"LMU memory fwd+bwd, {r['channels']} x order {r['order']:3d}, T={r['steps']:4d}: "
              f"recurrent {r['recurrent_s'] * 1e3:8.1f} ms, parallel {r['parallel_s'] * 1e3:7.1f} ms, "
              f"speed-up {r['speedup']:6.1f}x")
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
