"""The C runtime on the host through ctypes: the same one-model glue (firmware/targets/app/em_app.c) the browser
runs as WebAssembly, built as a shared library (`make -C firmware shared`). Same integers as `em_run`.

The glue holds one model, and beside it optionally one input stage (int16 samples in, the model's int8 input out), in
static buffers, so a process runs one model at a time (opening another replaces it).
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import numpy as np

from edgemem.errors import EdgememError


def wasm_site(web: Path, out: Path) -> None:
    """A demo site's start: the C runtime built as WebAssembly, `out` made fresh from the page folder `web`, and
    edgemem.wasm beside the page."""
    from edgemem.verification.c_runtime import _make, build_dir, require

    require("clang-14")
    _make("wasm")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(web, out)
    shutil.copy2(build_dir() / "wasm" / "edgemem.wasm", out / "edgemem.wasm")


def build_shared() -> Path:
    from edgemem.verification.c_runtime import _make, build_dir, require

    require("gcc")
    _make("shared")
    return build_dir() / "host" / "libedgemem_app.so"


class AppRuntime:
    """The model blob, and (`stage`) an input stage blob beside it: what the browser pages hold."""

    def __init__(self, blob: bytes, lib: Path | None = None, stage: bytes | None = None) -> None:
        self.lib = ctypes.CDLL(str(lib or build_shared()))
        for name in ("em_app_blob", "em_app_in", "em_app_out", "em_app_stage_blob", "em_app_stage_in",
                     "em_app_stage_out"):
            getattr(self.lib, name).restype = ctypes.c_void_p
        for name in ("em_app_blob_cap", "em_app_arena_bytes", "em_app_stage_blob_cap", "em_app_stage_arena_bytes"):
            getattr(self.lib, name).restype = ctypes.c_uint32
        if len(blob) > self.lib.em_app_blob_cap():
            raise EdgememError(f"model blob of {len(blob)} bytes exceeds the glue's {self.lib.em_app_blob_cap()}")
        ctypes.memmove(self.lib.em_app_blob(), blob, len(blob))
        st = self.lib.em_app_open(ctypes.c_uint32(len(blob)))
        if st != 0:
            raise EdgememError(f"the C runtime refused the model blob (status {st})")
        self.n_in, self.n_out = self.lib.em_app_n_in(), self.lib.em_app_n_out()
        self.arena_bytes = int(self.lib.em_app_arena_bytes())
        self._in = (ctypes.c_int8 * self.n_in).from_address(self.lib.em_app_in())
        self._out = (ctypes.c_int16 * self.n_out).from_address(self.lib.em_app_out())
        self.stage_n_in = self.stage_n_out = self.stage_arena_bytes = 0
        if stage is not None:
            self._open_stage(stage)

    def _open_stage(self, blob: bytes) -> None:
        cap = self.lib.em_app_stage_blob_cap()
        if len(blob) > cap:
            raise EdgememError(f"input stage blob of {len(blob)} bytes exceeds the glue's {cap}")
        ctypes.memmove(self.lib.em_app_stage_blob(), blob, len(blob))
        st = self.lib.em_app_stage_open(ctypes.c_uint32(len(blob)))
        if st != 0:
            raise EdgememError(f"the C runtime refused the input stage blob (status {st})")
        self.stage_n_in, self.stage_n_out = self.lib.em_app_stage_n_in(), self.lib.em_app_stage_n_out()
        self.stage_arena_bytes = int(self.lib.em_app_stage_arena_bytes())
        self._stage_in = (ctypes.c_int16 * self.stage_n_in).from_address(self.lib.em_app_stage_in())
        self._stage_out = (ctypes.c_int8 * self.stage_n_out).from_address(self.lib.em_app_stage_out())

    def stage_reset(self) -> None:
        if self.lib.em_app_stage_reset() != 0:
            raise EdgememError("em_app_stage_reset failed (no input stage open)")

    def stage_step(self, samples: np.ndarray) -> np.ndarray:
        """samples [stage_n_in] int16 -> the model's input [stage_n_out] int8."""
        if not self.stage_n_in:
            raise EdgememError("no input stage open")
        ctypes.memmove(self._stage_in, np.ascontiguousarray(samples, dtype=np.int16).ctypes.data, 2 * self.stage_n_in)
        st = self.lib.em_app_stage_step()
        if st != 0:
            raise EdgememError(f"em_app_stage_step failed (status {st})")
        return np.frombuffer(bytes(self._stage_out), dtype=np.int8).copy()

    def reset(self) -> None:
        if self.lib.em_app_reset() != 0:
            raise EdgememError("em_app_reset failed")

    def step(self, x: np.ndarray) -> np.ndarray:
        """x [n_in] int8 -> logits [n_out] int16."""
        ctypes.memmove(self._in, np.ascontiguousarray(x, dtype=np.int8).ctypes.data, self.n_in)
        st = self.lib.em_app_step()
        if st != 0:
            raise EdgememError(f"em_app_step failed (status {st})")
        return np.frombuffer(bytes(self._out), dtype=np.int16).copy()

    def run(self, x: np.ndarray, steps_per_reset: int = 0) -> np.ndarray:
        """x [T][n_in] int8 -> logits [T][n_out], from reset, reset again every steps_per_reset steps (0: never)."""
        self.reset()
        out = np.zeros((x.shape[0], self.n_out), dtype=np.int16)
        for t in range(x.shape[0]):
            if steps_per_reset and t and t % steps_per_reset == 0:
                self.reset()
            out[t] = self.step(x[t])
        return out
