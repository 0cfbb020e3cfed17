"""Checkpoints: weights plus everything every runtime needs (config, normalization, class names, recipe)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgemem.atomic import write_bytes_atomic
from edgemem.data.windows import Normalizer
from edgemem.errors import EdgememError, check_name
from edgemem.models import registry

FORMAT = "edgemem-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: nn.Module  # a model of the zoo (edgemem.models.registry)
    normalizer: Normalizer
    class_names: list[str]
    window: int
    recipe: dict[str, Any]
    name: str


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": ckpt.name,
        "kind": registry.kind_of(ckpt.model),
        "config": registry.config_dict(ckpt.model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in ckpt.model.state_dict().items()},
        "normalizer": ckpt.normalizer.to_dict(),
        "class_names": list(ckpt.class_names),
        "window": ckpt.window,
        "recipe": ckpt.recipe,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(path, buf.getvalue())


def _why(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for a one-line error."""
    lines = str(e).strip().splitlines()
    return lines[0][:120] if lines else type(e).__name__


def _check_archive(path: Path) -> None:
    """torch.save writes a zip archive (edgemem never writes the pre-1.6 legacy format); torch.load never checks its
    members' CRC-32, so a flipped byte in the weights would load silently. Check every member (checkpoints are small)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # zipfile reports damage as BadZipFile, but also as struct.error, ValueError, ...
        raise EdgememError(f"checkpoint {path} is corrupt or not a torch file ({_why(e)})") from None
    if bad is not None:
        raise EdgememError(f"checkpoint {path} is corrupt (CRC-32 mismatch in {bad})")


def load_checkpoint(path: Path) -> Checkpoint:
    if not path.is_file():
        raise EdgememError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise EdgememError(f"checkpoint {path} is corrupt or not a torch file (empty file)")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged archive fails in many ways inside torch (KeyError, IndexError, ...)
        raise EdgememError(f"checkpoint {path} is corrupt or not a torch file ({_why(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EdgememError(f"checkpoint {path} is not an edgemem checkpoint")
    if payload.get("version") != VERSION:
        raise EdgememError(f"checkpoint {path} has format version {payload.get('version')}, expected {VERSION}")
    if payload.get("kind") not in registry.KINDS:
        raise EdgememError(f"checkpoint {path} holds an unsupported model kind {payload.get('kind')!r}")
    # the name becomes a folder (`quantize`: models/NAME_mixed) and C identifiers (`export`): checked here, once
    check_name(payload.get("name"), f"checkpoint {path}: model name")
    try:
        model = registry.from_config(payload["kind"], payload["config"])
        model.load_state_dict(payload["state_dict"])
        normalizer = Normalizer.from_dict(payload["normalizer"])
        ckpt = Checkpoint(
            model.eval(), normalizer, list(payload["class_names"]), int(payload["window"]), payload["recipe"],
            str(payload["name"]),
        )
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
        raise EdgememError(f"checkpoint {path} is incomplete or inconsistent ({_why(e)})") from None
    check_consistent(ckpt, f"checkpoint {path}")
    return ckpt


def check_consistent(ckpt: Checkpoint, where: str) -> None:
    """What every consumer indexes without looking: one class name per output (model.h's EM_MODEL_CLASS_NAMES), one
    finite mean and one finite positive std per input channel (EM_MODEL_INPUT_MEAN / _STD, the normalization of every
    runtime's input)."""
    cfg = ckpt.model.cfg
    n_in, n_out = int(cfg.n_in), int(cfg.n_out)
    names = ckpt.class_names
    if len(names) != n_out or not all(isinstance(c, str) and c for c in names):
        raise EdgememError(f"{where} has {len(names)} class names for a model of {n_out} outputs (one non-empty name "
                           "per output)")
    for what, v in (("mean", ckpt.normalizer.mean), ("std", ckpt.normalizer.std)):
        if v.shape != (n_in,):
            raise EdgememError(f"{where}: the normalizer's {what} has {v.size} values for a model of {n_in} inputs")
        if not np.isfinite(v).all():
            raise EdgememError(f"{where}: the normalizer's {what} is not finite ({v.tolist()})")
    if (ckpt.normalizer.std <= 0).any():
        raise EdgememError(f"{where}: the normalizer's std must be positive, got {ckpt.normalizer.std.tolist()}")
    if ckpt.window < 1:
        raise EdgememError(f"{where}: window must be at least 1, got {ckpt.window}")
