"""`edgemem demo har`: the held-out watch recordings streamed through the C runtime (ctypes, edgemem.demo.runtime)
in a rich live view: the recording, the current activity, class probabilities as bars, accuracy so far.

Windows are classified as `edgemem verify` does (reset, one step per frame, logits summed, argmax), so the
accuracy after every recording has played is verify's C host accuracy.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from edgemem.demo.runtime import AppRuntime


def _probabilities(total: np.ndarray, output_scale: float, steps: int) -> np.ndarray:
    z = total.astype(np.float64) * output_scale / steps
    e = np.exp(z - z.max())
    return e / e.sum()


def _view(name: str, window: int, windows: int, probs: np.ndarray, pred: int, label: int, classes: list[str],
          correct: int, total: int) -> Panel:
    bars = Table.grid(padding=(0, 1))
    for k, p in enumerate(probs):
        style = "bold green" if k == pred else "white"
        bars.add_row(Text(f"{classes[k]:>5}", style=style), ProgressBar(total=1.0, completed=float(p), width=40),
                     Text(f"{100 * p:5.1f} %"))
    verdict = Text("right" if pred == label else f"wrong (true: {classes[label]})",
                   style="green" if pred == label else "red")
    head = Text.assemble(("now: ", "dim"), (classes[pred], "bold"), "  ", verdict)
    acc = Text.assemble(("accuracy so far: ", "dim"), (f"{100 * correct / max(total, 1):.1f} %", "bold"),
                        (f"  ({correct} of {total} windows)", "dim"))
    return Panel(Group(head, bars, acc), title=f"{name} · window {window + 1}/{windows}", border_style="cyan")


def run(export_dir: Path, speed: float = 16.0, recordings: int | None = None) -> tuple[int, int]:
    """Play the held-out recordings (all, or the first `recordings`) at `speed` x real time (0: no waiting);
    returns (correct, total) windows."""
    from edgemem.demo.har_site import site_data

    data = site_data(export_dir)  # the held-out windows verify uses, and the scales
    rt = AppRuntime((export_dir / "model.bin").read_bytes())
    classes, steps, n_in = data["class_names"], data["steps_per_window"], data["n_in"]
    hop_s = data["hop_samples"] / data["rate_hz"]
    correct = total = 0
    with Live(refresh_per_second=10) as live:
        for rec in data["recordings"][:recordings]:
            x = np.frombuffer(base64.b64decode(rec["x"]), dtype=np.int8).reshape(-1, steps, n_in)
            name = f"subject {rec['subject']} · {classes[rec['label']]}"
            for i, w in enumerate(x):
                logits = rt.run(w, steps)
                total_logits = logits.astype(np.int64).sum(axis=0)
                pred = int(total_logits.argmax())
                label = rec["labels"][i]
                correct += pred == label
                total += 1
                live.update(_view(name, i, len(x), _probabilities(total_logits, float(data["output_scale"]), steps),
                                  pred, label, classes, correct, total))
                if speed > 0:
                    time.sleep(hop_s / speed)
    return correct, total
