"""The training loop shared by the L2MU and the float baselines."""

from __future__ import annotations

import copy
import io
import math
import pickle
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from edgemem.atomic import write_bytes_atomic
from edgemem.errors import EdgememError
from edgemem.training.recipe import AugmentSpec, TrainSpec

LogitsFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # x [b][T][c] -> logits [b][n_out]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Random rotation of each 3-axis triad (a watch worn a little differently), gain and noise."""
    b, _, c = x.shape
    if spec.rotate_deg > 0 and c % 3 == 0:
        angles = (torch.rand(b, 3, generator=gen) * 2 - 1) * math.radians(spec.rotate_deg)
        rot = _rotation(angles)  # [b][3][3]
        x = torch.cat([x[..., k : k + 3] @ rot.transpose(1, 2) for k in range(0, c, 3)], dim=-1)
    if spec.scale > 0:
        x = x * (1 + (torch.rand(b, 1, 1, generator=gen) * 2 - 1) * spec.scale)
    if spec.noise > 0:
        x = x + torch.randn(x.shape, generator=gen) * spec.noise
    return x


def _rotation(a: torch.Tensor) -> torch.Tensor:
    cx, cy, cz = torch.cos(a).unbind(1)
    sx, sy, sz = torch.sin(a).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


@torch.no_grad()
def predict(model: nn.Module, logits_fn: LogitsFn, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    first = next(model.parameters(), None)
    dev = first.device if first is not None else torch.device("cpu")  # where fit(device=...) left the model
    out = [logits_fn(model, torch.from_numpy(x[i : i + batch]).to(dev)).argmax(1).cpu()
           for i in range(0, len(x), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, logits_fn: LogitsFn, x: np.ndarray, y: np.ndarray) -> float | None:
    return float((predict(model, logits_fn, x) == y).mean()) if len(y) else None


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    best_epoch: int = -1


class Interrupted(Exception):
    """Training stopped by Ctrl-C; the state of the last finished epoch is saved at `path`."""

    def __init__(self, path: Path, epochs_done: int) -> None:
        super().__init__(f"training interrupted after {epochs_done} finished epochs; state saved to {path}")
        self.path, self.epochs_done = path, epochs_done


def _save_state(path: Path, **state: object) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())  # a Ctrl-C mid-write leaves the previous epoch's file intact


def _rng_state(gen: torch.Generator) -> dict[str, object]:
    """Every RNG stream as tensors and plain numbers, so the file loads with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": [version, torch.tensor(internal, dtype=torch.int64), gauss]}


def _set_rng_state(s: dict, gen: torch.Generator) -> None:  # type: ignore[type-arg]
    torch.set_rng_state(s["torch"])
    gen.set_state(s["gen"])
    kind, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))


KD_T = 2.0  # distillation temperature

def fit(
    model: nn.Module,
    logits_fn: LogitsFn,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    spec: TrainSpec,
    label: str = "train",
    quiet: bool = False,
    state_path: Path | None = None,
    resume: bool = False,
    teacher: nn.Module | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
    device: torch.device | None = None,
) -> History:
    """AdamW + one-cycle schedule. Keeps the weights of the best validation epoch (the last one without validation).

    With `state_path`, everything needed to continue (weights, optimizer, schedule, RNG streams, history) is saved
    atomically after every epoch; `resume` continues from that file, giving the same weights as an uninterrupted
    run. Ctrl-C raises Interrupted after the last finished epoch was saved. With a `teacher` (quantization-aware
    fine-tuning), the loss is knowledge distillation (Hinton et al. 2015): half cross-entropy, half the KL divergence
    to the teacher's logits at temperature KD_T (times KD_T^2), on the same augmented batch. `on_epoch(epoch,
    history)` is called after every finished epoch (epoch counts from 0): `edgemem sweep` reports the validation
    accuracy so far to its early-stopping scheduler. `device` (default: where the model is, the CPU) moves the
    model and each batch there; the random streams stay on the CPU, so a seed draws the same batches and
    augmentations on any device."""
    seed_everything(spec.seed)
    torch.set_num_threads(spec.threads)
    gen = torch.Generator().manual_seed(spec.seed)
    if device is not None:
        model.to(device)
        if teacher is not None:
            teacher.to(device)
    x_train, y_train = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    steps = spec.epochs * math.ceil(len(y_train) / spec.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=max(steps, 1), pct_start=0.15)
    hist, best, best_acc = History(), copy.deepcopy(model.state_dict()), -1.0
    start = 0
    if resume and state_path is not None and state_path.is_file():
        try:
            st = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            sched.load_state_dict(st["sched"])
            _set_rng_state(st["rng"], gen)
            hist, best, best_acc, start = History(**st["hist"]), st["best"], st["best_acc"], st["epoch"]
        except (RuntimeError, KeyError, TypeError, ValueError, EOFError, OSError, pickle.UnpicklingError) as e:
            raise EdgememError(f"cannot resume from {state_path} ({str(e).splitlines()[0][:100]})") from None
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, disable=quiet, transient=False) as progress:
        task = progress.add_task(label, total=spec.epochs, info="", completed=start)
        for epoch in range(start, spec.epochs):
            try:
                score_info = _epoch(model, logits_fn, x_train, y_train, val, spec, opt, sched, gen, hist, epoch,
                                    teacher)
            except KeyboardInterrupt:
                if state_path is None:
                    raise
                raise Interrupted(state_path, epoch) from None
            score, info = score_info
            if score >= best_acc:
                best_acc, best, hist.best_epoch = score, copy.deepcopy(model.state_dict()), epoch
            if state_path is not None:
                _save_state(state_path, model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                            rng=_rng_state(gen), hist=asdict(hist), best=best, best_acc=best_acc, epoch=epoch + 1)
            progress.update(task, advance=1, info=info)
            if on_epoch is not None:
                on_epoch(epoch, hist)
            if not quiet and not progress.console.is_terminal:  # logs and CI: one line per epoch
                progress.console.print(f"{label} epoch {epoch + 1}/{spec.epochs}: {info}")
    model.load_state_dict(best)
    model.eval()
    return hist


def _epoch(
    model: nn.Module, logits_fn: LogitsFn, x_train: torch.Tensor, y_train: torch.Tensor,
    val: tuple[np.ndarray, np.ndarray] | None, spec: TrainSpec, opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, hist: History, epoch: int,
    teacher: nn.Module | None = None,
) -> tuple[float, str]:
    """One pass over the training set, then validation; returns (selection score, progress text)."""
    model.train()
    perm = torch.randperm(len(y_train), generator=gen)
    total, correct, n = 0.0, 0, 0
    for i in range(0, len(perm), spec.batch_size):
        idx = perm[i : i + spec.batch_size]
        first = next(model.parameters())
        xb, yb = augment(x_train[idx], spec.augment, gen).to(first.device), y_train[idx].to(first.device)
        logits = logits_fn(model, xb)
        loss = nn.functional.cross_entropy(logits, yb)
        if teacher is not None:
            with torch.no_grad():
                soft = nn.functional.log_softmax(logits_fn(teacher, xb) / KD_T, dim=1)
            kd = nn.functional.kl_div(nn.functional.log_softmax(logits / KD_T, dim=1), soft, log_target=True,
                                      reduction="batchmean")
            loss = 0.5 * loss + 0.5 * KD_T**2 * kd
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
        n += len(idx)
    hist.train_loss.append(total / n)
    hist.train_acc.append(correct / n)
    val_acc = accuracy(model, logits_fn, *val) if val is not None else None
    hist.val_acc.append(val_acc)
    score = val_acc if val_acc is not None else float(epoch)
    info = f"loss {total / n:.3f} train {correct / n:.3f}" + (f" val {val_acc:.3f}" if val_acc is not None else "")
    return score, info
