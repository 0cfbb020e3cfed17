"""`edgemem export --to bundle`: the folder builds with plain CMake on the host and gives em_run's logits byte for
byte, cross-compiles warning-free for Cortex-M with its own toolchain file, holds only the model's kernels, and its
Zephyr / Arduino / PlatformIO metadata has what their published specifications require (those SDKs are not installed
here, so they are checked, not built)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgemem.exporters.bundle import KERNEL_SOURCES, kernel_mask, kernel_sources
from edgemem.exporters.run import export
from edgemem.graph.intops import quantize
from edgemem.tool import firmware_dir
from edgemem.verification.c_runtime import run_host
from edgemem.verification.held_out import held_out_set
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[1]
WARN = "-std=c99 -Wall -Wextra -Werror"

HOST_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "edgemem_har_elm.h"
/* main IN.bin OUT.bin N T: int8 windows [N][T][n_in] in, int16 logits [N][T][n_out] out, state reset per window */
static uint32_t arena[(EM_MODEL_ARENA_BYTES + 3) / 4];
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    int n = atoi(argv[3]), steps = atoi(argv[4]);
    em_graph_t g;
    em_graph_ctx_t ctx;
    if (!fi || !fo || em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE) != EM_OK) return 3;
    if (em_graph_init(&ctx, &g, arena, sizeof arena) != EM_OK) return 4;
    for (int w = 0; w < n; w++) {
        if (em_graph_reset(&ctx) != EM_OK) return 5;
        for (int t = 0; t < steps; t++) {
            int8_t in[EM_MODEL_N_IN];
            int16_t out[EM_MODEL_N_OUT];
            if (fread(in, 1, sizeof in, fi) != sizeof in) return 6;
            em_status_t st = em_graph_step(&ctx, in, out);
            if (st != EM_OK) { fprintf(stderr, "%s\n", em_status_str(st)); return 7; }
            if (fwrite(out, 1, sizeof out, fo) != sizeof out) return 8;
        }
    }
    fclose(fi);
    return fclose(fo) != 0;
}
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "har_elm"
    export(ROOT / "models" / "har_elm" / "model.pt", ["bundle"], out)
    return out


def _project(tmp: Path, bundle: Path, main_c: str, extra: str = "") -> Path:
    proj = tmp / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text(main_c)
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        # warnings as errors for the bundle and the app (CMAKE_C_FLAGS on the command line would replace the
        # toolchain file's -mcpu flags); the library target asks for C99 itself (-std=c99)
        "add_compile_options(-Wall -Wextra -Werror)\nset(CMAKE_C_STANDARD 99)\nset(CMAKE_C_EXTENSIONS OFF)\n"
        f"add_subdirectory({bundle.as_posix()} edgemem)\n"
        "add_executable(app src/main.c)\ntarget_link_libraries(app PRIVATE edgemem::har_elm)\n" + extra)
    return proj


def _cmake(proj: Path, build: Path, *args: str, target: str | None = None) -> None:
    cfg = subprocess.run(["cmake", "-S", str(proj), "-B", str(build), *args], capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    cmd = ["cmake", "--build", str(build), "-j2"] + (["--target", target] if target else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_host_cmake_build_equals_em_run(bundle, tmp_path):
    need("cmake", "gcc", "make")
    meta, _, held = held_out_set(bundle)
    x = quantize(held.x[:16], meta["input_scale"]).astype(np.int8)  # [N][T][n_in]
    n, steps = x.shape[0], x.shape[1]
    proj = _project(tmp_path, bundle, HOST_MAIN)
    _cmake(proj, tmp_path / "build")
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    res = subprocess.run([str(tmp_path / "build" / "app"), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"),
                          str(n), str(steps)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    n_out = len(meta["class_names"])
    ref = run_host(bundle / "model.bin", x, n_out)
    got = (tmp_path / "out.bin").read_bytes()
    assert got == ref.astype("<i2").tobytes()
    assert len(got) == n * steps * n_out * 2


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus", "cortex-m33"])
def test_cortex_m_toolchain_builds_warning_free(bundle, tmp_path, cpu):
    need("cmake", "arm-none-eabi-gcc")
    m4 = firmware_dir() / "targets" / "cortex_m4"
    # the Cortex-M4: a whole ELF, the footprint probe linked with the repo's startup and the MPS2-AN386 script
    main_c = (m4 / "footprint_graph_main.c").read_text()
    extra = (f"target_sources(app PRIVATE {(m4 / 'startup.c').as_posix()})\n"
             "target_compile_definitions(app PRIVATE EM_STARTUP_NO_EXIT)\n"
             f"target_link_options(app PRIVATE -nostartfiles -T{(m4 / 'mps2_an386.ld').as_posix()} "
             "--specs=nano.specs --specs=nosys.specs)\n")
    proj = _project(tmp_path, bundle, main_c, extra)
    build = tmp_path / "build"
    _cmake(proj, build, f"-DCMAKE_TOOLCHAIN_FILE={bundle / 'cmake' / 'arm-none-eabi-cortex-m4.cmake'}",
           f"-DEDGEMEM_ARM_CPU={cpu}", "-DCMAKE_BUILD_TYPE=MinSizeRel",
           target="app" if cpu == "cortex-m4" else "edgemem_har_elm")
    if cpu == "cortex-m4":
        head = (build / "app").read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 40  # EM_ARM
        syms = subprocess.run(["arm-none-eabi-nm", str(build / "app")], capture_output=True, text=True).stdout
        assert "em_graph_step" in syms and "em_model_blob" in syms
    else:
        lib = build / "edgemem" / "libedgemem_har_elm.a"
        attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(lib)], capture_output=True, text=True).stdout
        assert {"cortex-m0plus": "v6S-M", "cortex-m33": "v8-M.mainline"}[cpu] in attrs


@pytest.mark.parametrize("build_type", ["", "Debug"])
def test_unoptimized_cortex_m4_build_compiles(bundle, tmp_path, build_type):
    """A firmware engineer's debug build (-O0: CMake's default build type, or Debug): the kernels' multi-row inline
    asm needs more registers than an unoptimized build has free, so the plain C loops must take over there."""
    need("cmake", "arm-none-eabi-gcc")
    proj = _project(tmp_path, bundle, HOST_MAIN)
    _cmake(proj, tmp_path / "build", f"-DCMAKE_TOOLCHAIN_FILE={bundle / 'cmake' / 'arm-none-eabi-cortex-m4.cmake'}",
           f"-DCMAKE_BUILD_TYPE={build_type}", target="edgemem_har_elm")
    assert (tmp_path / "build" / "edgemem" / "libedgemem_har_elm.a").is_file()


def test_only_the_models_kernels_compile_strictly(bundle, tmp_path):
    need("gcc")
    src = bundle / "src"
    mask = kernel_mask((src / "model.h").read_text())
    wanted = set(kernel_sources(mask))
    all_kernels = set(KERNEL_SOURCES.values())
    present = {p.name for p in src.glob("*.c")} & all_kernels
    assert present == wanted and "conv1d_causal_s8.c" not in present and "lmu_s8_s16.c" not in present
    assert {p.name for p in (firmware_dir() / "src" / "kernels").glob("*.c")} == all_kernels | {"intops.c"}
    assert f"#define EM_GRAPH_KERNELS 0x{mask:04x}u" in (src / "em_graph.h").read_text()
    # no -D: the bundled em_graph.h's default is the model's mask, so everything links (the Arduino IDE's case)
    (tmp_path / "main.c").write_text(HOST_MAIN)
    res = subprocess.run(["gcc", *WARN.split(), "-O0", f"-I{src}", "-o", str(tmp_path / "app"),
                          *map(str, src.glob("*.c")), str(tmp_path / "main.c")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_metadata_follows_the_specifications(bundle):
    props = dict(line.split("=", 1) for line in (bundle / "library.properties").read_text().splitlines() if line)
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                "architectures"):
        assert props.get(key), key
    assert props["category"] in ("Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
                                 "Timing", "Data Storage", "Data Processing", "Other")
    assert (bundle / "src" / props["includes"]).is_file()
    assert (bundle / "examples" / "har_elm" / "har_elm.ino").is_file()
    lib = json.loads((bundle / "library.json").read_text())
    for key in ("name", "version", "frameworks", "platforms", "build"):
        assert lib.get(key), key
    assert (bundle / lib["build"]["srcDir"]).is_dir()
    mod = yaml.safe_load((bundle / "zephyr" / "module.yml").read_text())
    assert mod["build"]["cmake"] == "zephyr" and (bundle / mod["build"]["kconfig"]).is_file()
    assert "zephyr_library()" in (bundle / "zephyr" / "CMakeLists.txt").read_text()
    assert "config EDGEMEM_HAR_ELM" in (bundle / "zephyr" / "Kconfig").read_text()
    sample = bundle / "samples" / "har_elm"
    assert "CONFIG_EDGEMEM_HAR_ELM=y" in (sample / "prj.conf").read_text()
    assert (sample / "src" / "main.c").is_file() and "find_package(Zephyr" in (sample / "CMakeLists.txt").read_text()
    meta = json.loads((bundle / "meta.json").read_text())
    for rel in meta["bundle"]["files"]:
        assert (bundle / rel).is_file(), rel


ARDUINO_FIELDS = {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                  "architectures", "depends", "dot_a_linkage", "includes", "precompiled", "ldflags"}


def test_arduino_properties_has_only_specified_fields(bundle):
    props = dict(line.split("=", 1) for line in (bundle / "library.properties").read_text().splitlines() if line)
    assert set(props) <= ARDUINO_FIELDS, set(props) - ARDUINO_FIELDS
    assert props["url"].startswith("https://example.invalid") and "example.invalid" in props["maintainer"]


M4_MAIN = r"""
#include <stdio.h>
#include "edgemem_har_elm.h"
#include "input.h"
/* em_run's loop on the held-out windows compiled in: state reset per window, logits printed over semihosting */
static uint32_t arena[(EM_MODEL_ARENA_BYTES + 3) / 4];
extern void initialise_monitor_handles(void); /* rdimon: -nostartfiles skips the crt0 that calls it */
int main(void) {
    initialise_monitor_handles();
    em_graph_t g;
    em_graph_ctx_t ctx;
    if (em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE) != EM_OK) return 3;
    if (em_graph_init(&ctx, &g, arena, sizeof arena) != EM_OK) return 4;
    for (int w = 0; w < N_WIN; w++) {
        if (em_graph_reset(&ctx) != EM_OK) return 5;
        for (int t = 0; t < N_STEPS; t++) {
            int16_t out[EM_MODEL_N_OUT];
            if (em_graph_step(&ctx, &INPUT[(w * N_STEPS + t) * EM_MODEL_N_IN], out) != EM_OK) return 7;
            for (int k = 0; k < EM_MODEL_N_OUT; k++) printf("%d%c", out[k], k + 1 < EM_MODEL_N_OUT ? ' ' : '\n');
        }
    }
    return 0;
}
"""


def test_cortex_m4_elf_under_qemu_equals_em_run(bundle, tmp_path):
    need("cmake", "arm-none-eabi-gcc", "qemu-system-arm")
    meta, _, held = held_out_set(bundle)
    x = quantize(held.x[:2], meta["input_scale"]).astype(np.int8)  # 2 held-out windows
    n, steps = x.shape[0], x.shape[1]
    m4 = firmware_dir() / "targets" / "cortex_m4"
    proj = _project(tmp_path, bundle, M4_MAIN, (
        f"target_sources(app PRIVATE {(m4 / 'startup.c').as_posix()})\n"
        "target_include_directories(app PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src)\n"
        f"target_link_options(app PRIVATE -nostartfiles -T{(m4 / 'mps2_an386.ld').as_posix()} "
        "--specs=nano.specs --specs=rdimon.specs)\n"))
    (proj / "src" / "input.h").write_text(
        f"#define N_WIN {n}\n#define N_STEPS {steps}\nstatic const int8_t INPUT[] = {{"
        + ",".join(map(str, x.ravel().tolist())) + "};\n")
    build = tmp_path / "build"
    _cmake(proj, build, f"-DCMAKE_TOOLCHAIN_FILE={bundle / 'cmake' / 'arm-none-eabi-cortex-m4.cmake'}",
           "-DCMAKE_BUILD_TYPE=MinSizeRel", target="app")
    res = subprocess.run(["timeout", "300", "qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(build / "app")],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    got = np.array([[int(v) for v in line.split()] for line in res.stdout.splitlines() if line.strip()])
    n_out = len(meta["class_names"])
    ref = run_host(bundle / "model.bin", x, n_out).reshape(n * steps, n_out)
    assert got.shape == ref.shape and np.array_equal(got, ref)


@pytest.mark.parametrize("model", ["kws_lmuformer", "har_l2mu"])
def test_conv_and_lmu_bundle_host_build_equals_em_run(model, tmp_path):
    need("cmake", "gcc", "make")
    b = tmp_path / model
    export(ROOT / "models" / model / "model.pt", ["bundle"], b)
    mask = kernel_mask((b / "src" / "model.h").read_text())
    assert "lmu_s8_s16.c" in kernel_sources(mask)
    assert ("conv1d_causal_s8.c" in kernel_sources(mask)) == (model == "kws_lmuformer")  # the L2MU has no conv
    meta, _, held = held_out_set(b)
    x = quantize(held.x[:2], meta["input_scale"]).astype(np.int8)  # 2 held-out windows
    n, steps = x.shape[0], x.shape[1]
    main_c = HOST_MAIN.replace("edgemem_har_elm.h", f"edgemem_{model}.h")
    proj = _project(tmp_path, b, main_c)
    cml = proj / "CMakeLists.txt"
    cml.write_text(cml.read_text().replace("edgemem::har_elm", f"edgemem::{model}"))
    _cmake(proj, tmp_path / "build")
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    res = subprocess.run([str(tmp_path / "build" / "app"), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"),
                          str(n), str(steps)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ref = run_host(b / "model.bin", x, len(meta["class_names"]))
    assert (tmp_path / "out.bin").read_bytes() == ref.astype("<i2").tobytes()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    import sys
    return subprocess.run([sys.executable, "-m", "edgemem.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_refusals_are_one_line_exit_2(tmp_path):
    ckpt = str(ROOT / "models" / "har_elm" / "model.pt")
    res = _cli("export", ckpt, "--to", "bundle,c", "--out", str(tmp_path / "b"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "export it alone" in lines[0], res.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    res = _cli("export", ckpt, "--to", "bundle", "--out", str(busy))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "neither empty nor an earlier edgemem bundle" in lines[0]
    assert (busy / "notes.txt").read_text() == "mine"


RAW_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "edgemem_har_elm.h"
/* main IN.bin OUT.bin N T: float readings [N][T][DOWNSAMPLE][CHANNELS] in (the device's raw sensor values), through
 * em_sensor_counts_f32, the input stage and the model; int16 logits [N][T][n_out] out; both reset per window */
static uint32_t arena[(EM_MODEL_ARENA_BYTES + 3) / 4], stage_arena[(EM_INPUT_STAGE_ARENA_BYTES + 3) / 4];
static const float inv_lsb[] = EM_MODEL_SENSOR_INV_LSB;
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    int n = atoi(argv[3]), steps = atoi(argv[4]);
    em_graph_t g, s;
    em_graph_ctx_t ctx, sctx;
    if (!fi || !fo || em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE) != EM_OK) return 3;
    if (em_graph_bind(&s, em_input_stage_blob, EM_INPUT_STAGE_BLOB_SIZE) != EM_OK) return 3;
    if (em_graph_init(&ctx, &g, arena, sizeof arena) != EM_OK) return 4;
    if (em_graph_init(&sctx, &s, stage_arena, sizeof stage_arena) != EM_OK) return 4;
    for (int w = 0; w < n; w++) {
        if (em_graph_reset(&ctx) != EM_OK || em_graph_reset(&sctx) != EM_OK) return 5;
        for (int t = 0; t < steps; t++) {
            float values[EM_MODEL_DOWNSAMPLE * EM_MODEL_SENSOR_CHANNELS];
            int16_t counts[EM_INPUT_STAGE_N_IN];
            int8_t in[EM_MODEL_N_IN];
            int16_t out[EM_MODEL_N_OUT];
            if (fread(values, sizeof values, 1, fi) != 1) return 6;
            em_status_t st = em_sensor_counts_f32(values, EM_MODEL_DOWNSAMPLE, EM_MODEL_SENSOR_CHANNELS, inv_lsb,
                                                  counts);
            if (st == EM_ERR_VALUE) return 9;
            if (st == EM_OK) st = em_graph_stage_step(&sctx, counts, in);
            if (st == EM_OK) st = em_graph_step(&ctx, in, out);
            if (st != EM_OK) { fprintf(stderr, "%s\n", em_status_str(st)); return 7; }
            if (fwrite(out, 1, sizeof out, fo) != sizeof out) return 8;
        }
    }
    fclose(fi);
    return fclose(fo) != 0;
}
"""


def test_bundle_takes_raw_float_readings_through_its_input_stage(bundle, tmp_path, rng):
    """A firmware's whole input path from the bundle alone: float readings -> counts -> stage -> model, equal to the
    Python integer spec run through em_run; a NaN reading is refused (EM_ERR_VALUE)."""
    need("cmake", "gcc", "make")
    from edgemem.graph.blob import parse_graph_blob
    from edgemem.graph.ref import run_graph
    from edgemem.graph.sensor import counts_from_float

    meta = json.loads((bundle / "meta.json").read_text())
    st = meta["input_stage"]
    d, c, steps = st["samples_per_step"], st["channels"], meta["window"] // st["samples_per_step"]
    x = (rng.normal(size=(3, steps, d, c)) * np.array([1, 1, 1, 4, 4, 4])).astype(np.float32)
    x[0, 3] = 40.0  # beyond full scale: the counts saturate
    stage = parse_graph_blob((ROOT / "export" / "har_elm" / "input_stage.bin").read_bytes())
    inv = (np.float32(1) / np.asarray(st["lsb"], dtype=np.float32)).astype(np.float32)
    feats = run_graph(stage, counts_from_float(x, inv).reshape(3, steps, d * c)).astype(np.int8)
    ref = run_host(bundle / "model.bin", feats, len(meta["class_names"]))
    proj = _project(tmp_path, bundle, RAW_MAIN)
    _cmake(proj, tmp_path / "build")
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    app = str(tmp_path / "build" / "app")
    res = subprocess.run([app, str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), "3", str(steps)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out.bin").read_bytes() == ref.astype("<i2").tobytes()
    x[1, 7, 1, 4] = np.nan
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    res = subprocess.run([app, str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), "3", str(steps)],
                         capture_output=True, text=True)
    assert res.returncode == 9
