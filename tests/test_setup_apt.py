"""`make setup` asks apt only for what is missing (tools/apt_missing.sh): an npm that came with Node.js counts, so
Debian's conflicting npm package is never requested and the install cannot stop on "held broken packages"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "tools" / "apt_missing.sh"
ALL = ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm", "gcc", "make", "clang", "libclang-rt-14-dev",
       "espeak-ng", "valgrind", "lld-14", "chromium", "npm", "gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf",
       "qemu-system-misc"]


def missing(tmp_path: Path, tools: list[str], files: list[str] = ()) -> list[str]:
    """The packages the script would install on a machine with only these commands and files."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir(exist_ok=True)
    for t in tools:
        (bin_dir / t).write_text("#!/bin/sh\n")
        (bin_dir / t).chmod(0o755)
    for f in files:
        (root / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / f.lstrip("/")).write_bytes(b"")
    res = subprocess.run([shutil.which("bash"), str(SCRIPT), "--print"], capture_output=True, text=True, timeout=30,
                         env={"PATH": str(bin_dir), "APT_PROBE_ROOT": str(root)})
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_a_bare_machine_gets_every_package(tmp_path):
    assert missing(tmp_path, []) == ALL


def test_nodes_own_npm_means_debians_npm_is_not_asked_for(tmp_path):
    got = missing(tmp_path, ["node", "npm", "gcc", "make"])
    assert "npm" not in got and "gcc" not in got and "make" not in got
    assert "chromium" in got and "qemu-system-arm" in got


RISCV_TOOLS = ["riscv64-unknown-elf-gcc", "qemu-system-riscv32"]
RISCV_FILES = ["/usr/lib/picolibc/riscv64-unknown-elf/lib/libc.a"]


def test_a_complete_machine_installs_nothing(tmp_path):
    tools = ["arm-none-eabi-gcc", "qemu-system-arm", "gcc", "make", "clang", "espeak-ng", "valgrind", "wasm-ld-14",
             "chromium", "npm", *RISCV_TOOLS]
    files = ["/usr/lib/arm-none-eabi/newlib/libc.a",
             "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a", *RISCV_FILES]
    assert missing(tmp_path, tools, files) == []


def test_only_the_one_missing_package_is_named(tmp_path):
    tools = ["arm-none-eabi-gcc", "qemu-system-arm", "gcc", "make", "clang", "espeak-ng", "valgrind", "wasm-ld-14",
             "npm", *RISCV_TOOLS]
    files = ["/usr/lib/arm-none-eabi/newlib/libc.a",
             "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a", *RISCV_FILES]
    assert missing(tmp_path, tools, files) == ["chromium"]
