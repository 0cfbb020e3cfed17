"""Checkpoints: weights plus everything every runtime needs (config, normalization, class names, recipe)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        return Checkpoint(
            model.eval(), normalizer, list(payload["class_names"]), int(payload["window"]), payload["recipe"],
            str(payload["name"]),
        )
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
        raise EdgememError(f"checkpoint {path} is incomplete or inconsistent ({_why(e)})") from None
