"""The training loop shared by the L2MU and the float baselines."""

from __future__ import annotations

import copy
import io
import math
import pickle
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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


ChannelStats = tuple[np.ndarray, np.ndarray]  # the normalizer's mean and std per channel [c]: x = (raw - mean) / std
_NEEDS_STATS = "train.augment.physical needs the normalizer's statistics (fit(channel_stats=...))"


def augment(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator, stats: ChannelStats | None = None
            ) -> torch.Tensor:
    """Random time shift and tempo (a movement started earlier or done faster), rotation of each 3-axis triad (a
    watch worn a little differently), gain and noise. x [b][T][c], normalized. With `spec.physical` the rotation and
    gain act on the sensor values `stats` give back (raw = x * std + mean), so gravity tilts and scales with them;
    otherwise they act on the normalized values, about each channel's mean. Noise is in normalized units."""
    if spec.time_shift > 0 or spec.time_warp > 0:
        x = _shift_and_warp(x, spec.time_shift, spec.time_warp, gen)
    if spec.physical:
        if stats is None:
            raise EdgememError(_NEEDS_STATS)
        mean, std = (torch.as_tensor(v, dtype=x.dtype) for v in stats)
        x = _rotate_and_scale(x * std + mean, spec, gen)
        return _noise((x - mean) / std, spec, gen)
    return _noise(_rotate_and_scale(x, spec, gen), spec, gen)


def _rotate_and_scale(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    b, _, c = x.shape
    if spec.rotate_deg > 0 and c % 3 == 0:
        angles = (torch.rand(b, 3, generator=gen) * 2 - 1) * math.radians(spec.rotate_deg)
        rot = _rotation(angles)  # [b][3][3]
        x = torch.cat([x[..., k : k + 3] @ rot.transpose(1, 2) for k in range(0, c, 3)], dim=-1)
    if spec.scale > 0:
        x = x * (1 + (torch.rand(b, 1, 1, generator=gen) * 2 - 1) * spec.scale)
    return x


def _noise(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    return x + torch.randn(x.shape, generator=gen) * spec.noise if spec.noise > 0 else x


def _shift_and_warp(x: torch.Tensor, shift: int, warp: float, gen: torch.Generator) -> torch.Tensor:
    """Each window read at t' = c + (t - c) * tempo + offset (c: the centre), tempo uniform in 1 +- warp, offset
    uniform in +- shift steps, by linear interpolation; reads past either end repeat the edge value."""
    b, steps, _ = x.shape
    tempo = 1 + (torch.rand(b, 1, generator=gen) * 2 - 1) * warp
    offset = (torch.rand(b, 1, generator=gen) * 2 - 1) * shift
    centre = (steps - 1) / 2
    t = torch.arange(steps, dtype=torch.float32).unsqueeze(0)
    pos = (centre + (t - centre) * tempo + offset).clamp(0, steps - 1)  # [b][T]
    lo = pos.floor().long().clamp(max=steps - 2) if steps > 1 else pos.floor().long()
    frac = (pos - lo).unsqueeze(-1).to(x.dtype)
    hi = (lo + 1).clamp(max=steps - 1)
    take = lambda idx: x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # noqa: E731
    return take(lo) * (1 - frac) + take(hi) * frac


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


class WeightAverage:
    """Exponential moving average of a model's parameters (its buffers, e.g. snntorch's per-batch neuron state,
    are not averaged). torch's AveragedModel copies buffers too, and fails on snntorch's, whose shapes change."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for n, p in model.named_parameters():
            self.shadow[n].lerp_(p.detach(), 1 - self.decay)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """`model` holds the averaged parameters inside the block, its own again after it. (Swapped in place: a
        deepcopy fails on snntorch's neurons, whose state buffers keep the last batch's graph.)"""
        own = {n: p.detach().clone() for n, p in model.named_parameters()}
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(self.shadow[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(own[n])


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
    teacher_fn: LogitsFn | None = None,
    channel_stats: ChannelStats | None = None,
) -> History:
    """AdamW + one-cycle schedule. Keeps the weights of the best validation epoch (the last one without validation).

    With `state_path`, everything needed to continue (weights, optimizer, schedule, RNG streams, history) is saved
    atomically after every epoch; `resume` continues from that file, giving the same weights as an uninterrupted
    run. Ctrl-C raises Interrupted after the last finished epoch was saved. With a `teacher` (quantization-aware
    fine-tuning), the loss is knowledge distillation (Hinton et al. 2015): half cross-entropy, half the KL divergence
    to the teacher's logits at temperature KD_T (times KD_T^2), on the same augmented batch; `teacher_fn` computes
    the teacher's window logits where it is another kind of model (default: `logits_fn`). `channel_stats` (the
    normalizer's mean and std) is what `spec.augment.physical` needs to augment in sensor units. `on_epoch(epoch,
    history)` is called after every finished epoch (epoch counts from 0): `edgemem sweep` reports the validation
    accuracy so far to its early-stopping scheduler. `device` (default: where the model is, the CPU) moves the
    model and each batch there; the random streams stay on the CPU, so a seed draws the same batches and
    augmentations on any device. `spec.mixup`, `spec.label_smoothing` change the loss; with `spec.ema` an
    exponential moving average of the weights is updated after every optimizer step, and it is the average that
    is validated, selected and returned (Polyak averaging: steadier than the last step's weights)."""
    seed_everything(spec.seed)
    torch.set_num_threads(spec.threads)
    gen = torch.Generator().manual_seed(spec.seed)
    if device is not None:
        model.to(device)
        if teacher is not None:
            teacher.to(device)
    if spec.augment.physical and channel_stats is None:
        raise EdgememError(_NEEDS_STATS)
    x_train, y_train = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    steps = spec.epochs * math.ceil(len(y_train) / spec.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=max(steps, 1), pct_start=0.15)
    ema = WeightAverage(model, spec.ema) if spec.ema > 0 else None
    hist, best, best_acc = History(), copy.deepcopy(model.state_dict()), -1.0
    start = 0
    if resume and state_path is not None and state_path.is_file():
        try:
            st = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            sched.load_state_dict(st["sched"])
            _set_rng_state(st["rng"], gen)
            if ema is not None:
                ema.shadow = dict(st["ema"])
            hist, best, best_acc, start = History(**st["hist"]), st["best"], st["best_acc"], st["epoch"]
        except (RuntimeError, KeyError, TypeError, ValueError, EOFError, OSError, pickle.UnpicklingError) as e:
            raise EdgememError(f"cannot resume from {state_path} ({str(e).splitlines()[0][:100]})") from None
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, disable=quiet, transient=False) as progress:
        task = progress.add_task(label, total=spec.epochs, info="", completed=start)
        for epoch in range(start, spec.epochs):
            try:
                score_info = _epoch(model, logits_fn, x_train, y_train, val, spec, opt, sched, gen, hist, epoch,
                                    teacher, ema, teacher_fn, channel_stats)
            except KeyboardInterrupt:
                if state_path is None:
                    raise
                raise Interrupted(state_path, epoch) from None
            score, info = score_info
            if score >= best_acc:  # the validated weights: the average's, with ema
                with ema.applied(model) if ema is not None else nullcontext():
                    best_acc, best, hist.best_epoch = score, copy.deepcopy(model.state_dict()), epoch
            if state_path is not None:
                extra = {"ema": ema.shadow} if ema is not None else {}
                _save_state(state_path, model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                            rng=_rng_state(gen), hist=asdict(hist), best=best, best_acc=best_acc, epoch=epoch + 1,
                            **extra)
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
    teacher: nn.Module | None = None, ema: WeightAverage | None = None, teacher_fn: LogitsFn | None = None,
    stats: ChannelStats | None = None,
) -> tuple[float, str]:
    """One pass over the training set, then validation (of the average, with `ema`); returns (selection score,
    progress text)."""
    model.train()
    perm = torch.randperm(len(y_train), generator=gen)
    total, correct, n = 0.0, 0, 0
    for i in range(0, len(perm), spec.batch_size):
        idx = perm[i : i + spec.batch_size]
        first = next(model.parameters())
        xb, yb = augment(x_train[idx], spec.augment, gen, stats).to(first.device), y_train[idx].to(first.device)
        mix = None
        if spec.mixup > 0:  # one mixing weight per batch, each window mixed with another of the batch
            lam = float(np.random.beta(spec.mixup, spec.mixup))
            partner = torch.randperm(len(idx), generator=gen).to(first.device)
            xb, mix = lam * xb + (1 - lam) * xb[partner], (lam, yb[partner])
        logits = logits_fn(model, xb)
        loss = nn.functional.cross_entropy(logits, yb, label_smoothing=spec.label_smoothing)
        if mix is not None:
            lam, y_other = mix
            loss = lam * loss + (1 - lam) * nn.functional.cross_entropy(logits, y_other,
                                                                         label_smoothing=spec.label_smoothing)
        if teacher is not None:
            with torch.no_grad():
                soft = nn.functional.log_softmax((teacher_fn or logits_fn)(teacher, xb) / KD_T, dim=1)
            kd = nn.functional.kl_div(nn.functional.log_softmax(logits / KD_T, dim=1), soft, log_target=True,
                                      reduction="batchmean")
            loss = 0.5 * loss + 0.5 * KD_T**2 * kd
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        total += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
        n += len(idx)
    hist.train_loss.append(total / n)
    hist.train_acc.append(correct / n)
    with ema.applied(model) if ema is not None else nullcontext():
        val_acc = accuracy(model, logits_fn, *val) if val is not None else None
    hist.val_acc.append(val_acc)
    score = val_acc if val_acc is not None else float(epoch)
    info = f"loss {total / n:.3f} train {correct / n:.3f}" + (f" val {val_acc:.3f}" if val_acc is not None else "")
    return score, info
