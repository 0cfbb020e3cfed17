"""Target profiles: the flash and RAM a board's own firmware leaves for a model (docs/targets.md).

A profile is a YAML file: name, chip, flash_total, ram_total, flash_free_for_model, ram_free_for_model (bytes, or a
size such as "64KiB"), source. The shipped ones live in edgemem/schedule/targets/*.yaml (package data); `--target`
takes one of their names or the path of a user's own YAML file (anything ending in .yaml / .yml, or an existing file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemem.errors import EdgememError

__all__ = ["FIELDS", "Target", "load_target", "parse_size", "shipped_targets"]

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
FIELDS = ("name", "chip", "flash_total", "ram_total", "flash_free_for_model", "ram_free_for_model", "source")
_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2, "k": 1024, "m": 1024**2}
_SIZES = ("flash_total", "ram_total", "flash_free_for_model", "ram_free_for_model")


@dataclass(frozen=True)
class Target:
    name: str
    chip: str
    flash_total: int
    ram_total: int
    flash_free_for_model: int
    ram_free_for_model: int
    source: str
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "chip": self.chip, "flash_total": self.flash_total, "ram_total": self.ram_total,
                "flash_free_for_model": self.flash_free_for_model, "ram_free_for_model": self.ram_free_for_model,
                "source": self.source}

    def margins(self, ram_bytes: int | None = None, flash_bytes: int | None = None) -> dict[str, Any]:
        """The report's "target" entry: the profile and the margin of a footprint against its free budget."""
        out: dict[str, Any] = {**self.to_json(), "ram_bytes": self.ram_free_for_model,
                               "flash_bytes": self.flash_free_for_model}
        if ram_bytes is not None:
            out["ram_margin_bytes"] = self.ram_free_for_model - ram_bytes
            out["margin_bytes"] = out["ram_margin_bytes"]
        if flash_bytes is not None:
            out["flash_margin_bytes"] = self.flash_free_for_model - flash_bytes
        return out


def parse_size(text: str) -> int:
    """'4KiB', '4 KiB', '64kb', '4096' -> bytes (KiB/MiB and bare K/M binary, kB/MB decimal)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise EdgememError(f"bad size {text!r}: expected a number of bytes with an optional unit B, KiB, MiB, kB, "
                           "MB (e.g. 4KiB)")
    return int(float(m.group(1)) * _UNITS[unit])


def shipped_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def _size(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool):
        raise EdgememError(f"{where}: {key} must be a size in bytes, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        if value.strip().startswith("-"):
            raise EdgememError(f"{where}: {key} must not be negative, got {value!r}")
        n = parse_size(value)
    else:
        raise EdgememError(f"{where}: {key} must be a size in bytes, got {value!r}")
    if n < 0:
        raise EdgememError(f"{where}: {key} must not be negative, got {n}")
    return n


def _parse(path: Path) -> Target:
    import yaml

    where = f"target profile {path}"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise EdgememError(f"{where}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise EdgememError(f"{where}: not valid YAML{at}") from None
    if not isinstance(doc, dict):
        raise EdgememError(f"{where}: expected a mapping with {', '.join(FIELDS)}")
    missing = [k for k in FIELDS if doc.get(k) is None]
    if missing:
        raise EdgememError(f"{where}: missing field {missing[0]} (a profile needs {', '.join(FIELDS)})")
    unknown = sorted(set(map(str, doc)) - set(FIELDS))
    if unknown:
        raise EdgememError(f"{where}: unknown field {unknown[0]} (a profile has {', '.join(FIELDS)})")
    sizes = {k: _size(doc[k], k, where) for k in _SIZES}
    for kind in ("flash", "ram"):
        if sizes[f"{kind}_free_for_model"] > sizes[f"{kind}_total"]:
            raise EdgememError(f"{where}: {kind}_free_for_model ({sizes[f'{kind}_free_for_model']}) exceeds "
                               f"{kind}_total ({sizes[f'{kind}_total']})")
    for k in ("name", "chip", "source"):
        if not isinstance(doc[k], str) or not doc[k].strip():
            raise EdgememError(f"{where}: {k} must be a non-empty string")
    return Target(doc["name"], doc["chip"], sizes["flash_total"], sizes["ram_total"],
                  sizes["flash_free_for_model"], sizes["ram_free_for_model"], " ".join(doc["source"].split()), path)


def load_target(spec: str | Path) -> Target:
    """A shipped profile by name (pinetime, bangle2, nrf52840dk, mps2-an386) or a user's YAML file by path."""
    text = str(spec)
    p = Path(text)
    if text.endswith((".yaml", ".yml")) or p.is_file():
        if not p.is_file():
            raise EdgememError(f"target profile {p} does not exist")
        return _parse(p)
    shipped = TARGETS_DIR / f"{text}.yaml"
    if not shipped.is_file():
        raise EdgememError(f"unknown target {text!r}; known: {', '.join(shipped_targets())}, or the path of a "
                           "board.yaml (docs/targets.md)")
    return _parse(shipped)
