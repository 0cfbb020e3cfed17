"""The build hook: a wheel carries the firmware sources (the C runtime `edgemem verify` builds and runs) as package
data in edgemem/_firmware, and the commit it was built from in edgemem/_build_info.json. Everything else about the
package is in pyproject.toml. The checkout keeps firmware/ where it is; nothing is written into the source tree.

What ships is what firmware/Makefile needs for host, m4, footprint, stack, shared, wasm and the HAR demo
(include, src, apps, targets, the Makefile, its README); firmware/tests (unit tests, fixtures, fuzzing) does not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
FIRMWARE = HERE / "firmware"
FIRMWARE_DIRS = ("include", "src", "apps", "targets")
FIRMWARE_FILES = ("Makefile", "README.md")


def firmware_files() -> list[Path]:
    """The firmware files a wheel carries, relative to firmware/ (sorted: the wheel's listing is deterministic)."""
    files = [Path(f) for f in FIRMWARE_FILES]
    for d in FIRMWARE_DIRS:
        files += [p.relative_to(FIRMWARE) for p in (FIRMWARE / d).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(files)


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def build_commit() -> str:
    """HEAD of the tree the wheel is built from, "-dirty" when tracked files differ from it; "unknown" without git
    (an sdist)."""
    head = _git("rev-parse", "HEAD") if (HERE / ".git").exists() else None
    if not head:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return head + ("-dirty" if dirty else "")


class BuildPyWithFirmware(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install runs from the checkout: firmware/ is there
            return
        if not (FIRMWARE / "Makefile").is_file():
            raise SystemExit(f"edgemem build: {FIRMWARE} has no Makefile; the wheel needs the firmware sources")
        target = Path(self.build_lib) / "edgemem" / "_firmware"
        shutil.rmtree(target, ignore_errors=True)  # a stale copy from an earlier build never leaks in
        for rel in firmware_files():
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(FIRMWARE / rel, dst)
        info = Path(self.build_lib) / "edgemem" / "_build_info.json"
        info.write_text(json.dumps({"commit": build_commit()}) + "\n")


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__; tests import firmware_files
    setup(cmdclass={"build_py": BuildPyWithFirmware})
