"""Checkpoints: weights plus everything every runtime needs (config, normalization, class names, recipe)."""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgemem.atomic import write_bytes_atomic
from edgemem.data.windows import Normalizer
from edgemem.errors import EdgememError
from edgemem.models.l2mu import L2MU, L2MUConfig

FORMAT = "edgemem-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: L2MU
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
        "kind": "l2mu",
        "config": ckpt.model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in ckpt.model.state_dict().items()},
        "normalizer": ckpt.normalizer.to_dict(),
        "class_names": list(ckpt.class_names),
        "window": ckpt.window,
        "recipe": ckpt.recipe,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: Path) -> Checkpoint:
    if not path.is_file():
        raise EdgememError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise EdgememError(f"checkpoint {path} is corrupt or not a torch file ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EdgememError(f"checkpoint {path} is not an edgemem checkpoint")
    if payload.get("version") != VERSION:
        raise EdgememError(f"checkpoint {path} has format version {payload.get('version')}, expected {VERSION}")
    if payload.get("kind") != "l2mu":
        raise EdgememError(f"checkpoint {path} holds an unsupported model kind {payload.get('kind')!r}")
    try:
        model = L2MU(L2MUConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
        normalizer = Normalizer.from_dict(payload["normalizer"])
        return Checkpoint(
            model.eval(), normalizer, list(payload["class_names"]), int(payload["window"]), payload["recipe"],
            str(payload["name"]),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise EdgememError(f"checkpoint {path} is incomplete or inconsistent ({str(e).splitlines()[0][:120]})") from None
