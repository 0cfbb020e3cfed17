"""`edgemem export CKPT --to bundle --out BUNDLE`: one self-contained folder per model that a firmware project drops
in as it is (docs/bundle.md): the C runtime sources the model needs (the bind path, only the kernels of its kernel
mask), model.h / model.c, and the build glue of four ecosystems around the same `src/` folder:

- CMake: CMakeLists.txt (`add_subdirectory(BUNDLE)`, `target_link_libraries(app PRIVATE edgemem::NAME)`) and
  cmake/arm-none-eabi-cortex-m4.cmake, a toolchain file;
- Zephyr: zephyr/module.yml, zephyr/CMakeLists.txt (zephyr_library), zephyr/Kconfig (CONFIG_EDGEMEM_NAME) and a
  sample application samples/NAME/;
- Arduino: library.properties (library specification 1.5), src/, examples/NAME/NAME.ino;
- PlatformIO: library.json.

The sources are flat in src/ (the Arduino IDE puts only src/ on the include path), read from edgemem.tool's
firmware location (the checkout's firmware/ or a wheel's packaged copy). The bundled em_graph.h defaults
EM_GRAPH_KERNELS to the model's mask, so that a build system that cannot pass a -D (the Arduino IDE) still links only
the bundled kernels; CMake, Zephyr and PlatformIO pass it as a definition as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgemem.atomic import check_out_dir, write_dir_atomic
from edgemem.errors import EdgememError
from edgemem.exporters.folder import BLOB_FILE, HEADER_FILE, META, SOURCE_FILE, sha256
from edgemem.tool import require_firmware

BUNDLE_FORMAT = "edgemem-bundle"
# the runtime a firmware with a compiled-in model links (firmware/Makefile BIND_SRC, plus status names)
RUNTIME_SOURCES = ("src/graph.c", "src/graph_bind.c", "src/crc32.c", "src/em_status.c", "src/kernels/intops.c")
RUNTIME_HEADERS = ("include/edgemem.h", "include/em_graph.h", "include/em_kernels.h", "include/em_status.h",
                   "src/em_crc32.h", "src/em_graph_internal.h", "src/kernels/em_dot_inline.h",
                   "src/kernels/em_intops_inline.h", "src/kernels/em_k.h", "src/kernels/em_packed_inline.h")
# kernel bit (em_graph.h em_graph_kernel_t) -> the source that defines its em_k_* function
KERNEL_SOURCES = {
    0: "fc_s8_mode.c", 1: "fc_s16.c", 2: "fc_packed.c", 3: "fc_packed.c", 4: "conv1d_causal_s8.c",
    5: "conv1d_causal_s8.c", 6: "act_s32.c", 7: "act_s32.c", 8: "lif_s16.c", 9: "leaky_s16.c", 10: "lmu_s8_s16.c",
    11: "add_requant.c", 12: "add_requant.c", 13: "onoff_s16.c", 14: "spike_s16.c", 15: "fc_events.c",
    16: "fc_events.c", 17: "sensor_s16.c", 18: "logmel_s16.c", 19: "lmu_s8_s16.c",
}
_DEFAULT_MASK = "#ifndef EM_GRAPH_KERNELS\n#define EM_GRAPH_KERNELS ((1u << EM_K_COUNT) - 1u)\n"


def kernel_mask(model_h: str) -> int:
    m = re.search(r"^#define EM_MODEL_GRAPH_KERNELS (0x[0-9a-fA-F]+)u", model_h, re.M)
    if not m:
        raise EdgememError("model.h has no EM_MODEL_GRAPH_KERNELS (a graph model.h of `edgemem export --to c`)")
    stage = re.search(r"^#define EM_INPUT_STAGE_GRAPH_KERNELS (0x[0-9a-fA-F]+)u", model_h, re.M)  # its input stage's
    return int(m.group(1), 16) | (int(stage.group(1), 16) if stage else 0)


def kernel_sources(mask: int) -> list[str]:
    """The kernel sources (src/kernels/*.c names) of a kernel mask; an unknown bit is an error."""
    unknown = [b for b in range(32) if mask >> b & 1 and b not in KERNEL_SOURCES]
    if unknown:
        raise EdgememError(f"kernel mask 0x{mask:x} has bit {unknown[0]}, which no bundled kernel source implements")
    return sorted({KERNEL_SOURCES[b] for b in KERNEL_SOURCES if mask >> b & 1})


def check_bundle_out(out: Path) -> None:
    """--out: a new or empty folder, or an earlier bundle (its meta.json says so), which is replaced whole."""
    check_out_dir(out, "--out", whole=True)
    if out.is_dir() and any(out.iterdir()):
        try:
            earlier = json.loads((out / META).read_text()).get("bundle", {}).get("format") == BUNDLE_FORMAT
        except (OSError, ValueError, AttributeError):
            earlier = False
        if not earlier:
            raise EdgememError(f"--out {out} is neither empty nor an earlier edgemem bundle; a bundle replaces its "
                               "folder as a whole, so pick a new or empty folder (or an earlier bundle)")


def _semver(version: str) -> str:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return ".".join(m.groups()) if m else "0.0.0"


def bundle_files(name: str, model_h: str, model_c: str, blob: bytes, meta: dict[str, Any]) -> dict[str, bytes]:
    """Every file of the bundle, by its path relative to the bundle's root."""
    fw = require_firmware()
    mask = kernel_mask(model_h)
    kernels = kernel_sources(mask)
    mask_def = f"0x{mask:04x}u"
    upper = name.upper()
    files: dict[str, bytes] = {}
    for rel in RUNTIME_HEADERS + RUNTIME_SOURCES + tuple(f"src/kernels/{k}" for k in kernels):
        text = (fw / rel).read_text()
        if rel == "include/em_graph.h":
            if _DEFAULT_MASK not in text:
                raise EdgememError(f"{fw / rel} has no default EM_GRAPH_KERNELS to set to the model's mask")
            text = text.replace(_DEFAULT_MASK, (
                "#ifndef EM_GRAPH_KERNELS\n/* edgemem bundle: the kernels bundled for this model (EM_MODEL_GRAPH_KERNELS"
                f" of model.h) */\n#define EM_GRAPH_KERNELS {mask_def}\n"))
        files[f"src/{Path(rel).name}"] = text.encode()
    files[f"src/{HEADER_FILE}"] = model_h.encode()
    files[f"src/{SOURCE_FILE}"] = model_c.encode()
    files[f"src/edgemem_{name}.h"] = _umbrella(name).encode()
    version = _semver(str(meta.get("tool", {}).get("version", "0.0.0")))
    sources = sorted(p for p in files if p.endswith(".c"))
    ctx = {"name": name, "upper": upper, "mask": mask_def, "version": version, "kernels": kernels,
           "sources": sources, "meta": meta}
    files["CMakeLists.txt"] = _cmake(ctx).encode()
    files["cmake/arm-none-eabi-cortex-m4.cmake"] = _TOOLCHAIN.encode()
    files["zephyr/module.yml"] = (f"name: edgemem_{name}\nbuild:\n  cmake: zephyr\n  kconfig: zephyr/Kconfig\n"
                                  "samples:\n  - samples\n").encode()
    files["zephyr/CMakeLists.txt"] = _zephyr_cmake(ctx).encode()
    files["zephyr/Kconfig"] = _zephyr_kconfig(ctx).encode()
    files[f"samples/{name}/CMakeLists.txt"] = (
        "# A Zephyr sample: west build -b <board> samples/" + name + " -- -DZEPHYR_EXTRA_MODULES=<this bundle>\n"
        "cmake_minimum_required(VERSION 3.20.0)\nfind_package(Zephyr REQUIRED HINTS $ENV{ZEPHYR_BASE})\n"
        f"project(edgemem_{name}_sample C)\ntarget_sources(app PRIVATE src/main.c)\n").encode()
    files[f"samples/{name}/prj.conf"] = f"CONFIG_EDGEMEM_{upper}=y\nCONFIG_PRINTK=y\n".encode()
    files[f"samples/{name}/sample.yaml"] = (
        f"sample:\n  name: edgemem {name}\ntests:\n  edgemem.{name}:\n    tags: edgemem\n"
        "    harness: console\n    harness_config:\n      type: one_line\n      regex:\n        - \"edgemem .* ok\"\n"
    ).encode()
    files[f"samples/{name}/src/main.c"] = _main_c(ctx, "zephyr").encode()
    files["library.properties"] = _arduino_properties(ctx).encode()
    files[f"examples/{name}/{name}.ino"] = _main_c(ctx, "arduino").encode()
    files["library.json"] = (json.dumps(_platformio(ctx), indent=2) + "\n").encode()
    files["README.md"] = _readme(ctx).encode()
    files[BLOB_FILE] = blob
    bundle_meta = {**meta, "files": {BLOB_FILE: sha256(blob)},
                   "bundle": {"format": BUNDLE_FORMAT, "version": 1, "kernel_mask": mask_def, "kernels": kernels,
                              "files": {k: sha256(v) for k, v in sorted(files.items()) if k != BLOB_FILE}}}
    files[META] = (json.dumps(bundle_meta, indent=2) + "\n").encode()
    return files


def write_bundle(out: Path, files: dict[str, bytes]) -> None:
    """The bundle as one folder that replaces `out` whole (filled beside it, then swapped in)."""
    def fill(tmp: Path) -> None:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    write_dir_atomic(out, fill)


def _umbrella(name: str) -> str:
    return (f"/* edgemem bundle {name}: the runtime API (edgemem.h) and the model (model.h). C and C++. */\n"
            f"#ifndef EDGEMEM_{name.upper()}_H\n#define EDGEMEM_{name.upper()}_H\n#include \"edgemem.h\"\n"
            "#ifdef __cplusplus\nextern \"C\" {\n#endif\n#include \"model.h\"\n#ifdef __cplusplus\n}\n#endif\n"
            "#endif\n")


def _cmake(c: dict[str, Any]) -> str:
    srcs = "\n".join(f"    ${{CMAKE_CURRENT_LIST_DIR}}/{s}" for s in c["sources"])
    return f"""# edgemem bundle {c['name']}: the model and the C runtime it needs, as one static library.
#   add_subdirectory(path/to/this/bundle)
#   target_link_libraries(app PRIVATE edgemem::{c['name']})
# Cross builds: -DCMAKE_TOOLCHAIN_FILE=path/to/this/bundle/cmake/arm-none-eabi-cortex-m4.cmake
cmake_minimum_required(VERSION 3.13)
project(edgemem_{c['name']} VERSION {c['version']} LANGUAGES C)

add_library(edgemem_{c['name']} STATIC
{srcs}
)
add_library(edgemem::{c['name']} ALIAS edgemem_{c['name']})
target_include_directories(edgemem_{c['name']} PUBLIC ${{CMAKE_CURRENT_LIST_DIR}}/src)
# only the kernels of this model are bundled (model.h EM_MODEL_GRAPH_KERNELS)
target_compile_definitions(edgemem_{c['name']} PUBLIC EM_GRAPH_KERNELS={c['mask']})
set_target_properties(edgemem_{c['name']} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  # each kernel in its own section: a firmware linked with --gc-sections keeps only what it calls
  target_compile_options(edgemem_{c['name']} PRIVATE -ffunction-sections -fdata-sections)
endif()
"""


_TOOLCHAIN = """# Toolchain file for arm-none-eabi-gcc (GNU Arm Embedded), bare metal:
#   cmake -DCMAKE_TOOLCHAIN_FILE=<bundle>/cmake/arm-none-eabi-cortex-m4.cmake [-DEDGEMEM_ARM_CPU=cortex-m33] ..
# EDGEMEM_ARM_CPU: cortex-m4 (default, FPv4-SP hard float), cortex-m7, cortex-m33 / cortex-m55 (FPv5 hard float),
# anything else (cortex-m0plus, cortex-m3) soft float. The runtime itself uses no floating point.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)  # no startup code or linker script needed to test the compiler

set(EDGEMEM_ARM_CPU "cortex-m4" CACHE STRING "the -mcpu of the target")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EDGEMEM_ARM_CPU)
set(ARM_TOOLCHAIN_PREFIX "arm-none-eabi-" CACHE STRING "prefix of the cross tools")
set(CMAKE_C_COMPILER ${ARM_TOOLCHAIN_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${ARM_TOOLCHAIN_PREFIX}g++)
set(CMAKE_ASM_COMPILER ${ARM_TOOLCHAIN_PREFIX}gcc)
set(CMAKE_AR ${ARM_TOOLCHAIN_PREFIX}ar)
set(CMAKE_OBJCOPY ${ARM_TOOLCHAIN_PREFIX}objcopy)
set(CMAKE_SIZE ${ARM_TOOLCHAIN_PREFIX}size)

if(EDGEMEM_ARM_CPU STREQUAL "cortex-m4")
  set(_em_fpu "-mfloat-abi=hard -mfpu=fpv4-sp-d16")
elseif(EDGEMEM_ARM_CPU STREQUAL "cortex-m7")
  set(_em_fpu "-mfloat-abi=hard -mfpu=fpv5-d16")
elseif(EDGEMEM_ARM_CPU MATCHES "cortex-m33|cortex-m55")
  set(_em_fpu "-mfloat-abi=hard -mfpu=fpv5-sp-d16")
else()
  set(_em_fpu "-mfloat-abi=soft")
endif()
set(CMAKE_C_FLAGS_INIT "-mcpu=${EDGEMEM_ARM_CPU} -mthumb ${_em_fpu} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_ASM_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
"""


def _zephyr_cmake(c: dict[str, Any]) -> str:
    srcs = "\n".join(f"    ${{EM_BUNDLE}}/{s}" for s in c["sources"])
    return f"""# Zephyr module build of the edgemem bundle {c['name']} (enabled by CONFIG_EDGEMEM_{c['upper']}).
if(CONFIG_EDGEMEM_{c['upper']})
  set(EM_BUNDLE ${{CMAKE_CURRENT_LIST_DIR}}/..)
  zephyr_library()
  zephyr_library_sources(
{srcs}
  )
  zephyr_include_directories(${{EM_BUNDLE}}/src)
  zephyr_compile_definitions(EM_GRAPH_KERNELS={c['mask']})
endif()
"""


def _zephyr_kconfig(c: dict[str, Any]) -> str:
    help_lines = [f"Builds the edgemem model {c['name']} (model.c) and the C runtime with",
                  f"only the kernels it needs (EM_GRAPH_KERNELS={c['mask']}). Include",
                  f"\"edgemem_{c['name']}.h\"; bind, init and step as the bundle's README.md says."]
    return (f"config EDGEMEM_{c['upper']}\n\tbool \"edgemem model {c['name']} (int8 spiking model and its C runtime)\"\n"
            "\thelp\n" + "".join(f"\t  {line}\n" for line in help_lines))


def _main_c(c: dict[str, Any], flavor: str) -> str:
    name = c["name"]
    body = f"""/* edgemem bundle {name}: bind the compiled-in model, init, step once per time step. */
#include "edgemem_{name}.h"
"""
    body += "#include <zephyr/kernel.h>\n#include <zephyr/sys/printk.h>\n" if flavor == "zephyr" else ""
    body += """
static uint32_t arena[(EM_MODEL_ARENA_BYTES + 3) / 4]; /* state + scratch, 4-byte aligned */
static em_graph_t graph;
static em_graph_ctx_t ctx;

/* one time step of input, already quantized: q = clamp(round(x / EM_MODEL_INPUT_SCALE), -128, 127)
 * (after the normalization model.h gives, where it has EM_MODEL_INPUT_MEAN / EM_MODEL_INPUT_STD) */
static int8_t in[EM_MODEL_N_IN];
static int16_t out[EM_MODEL_N_OUT]; /* int16 logits; float logit = out * EM_MODEL_OUTPUT_SCALE */

static int edgemem_demo(void) {
    em_status_t st = em_graph_bind(&graph, em_model_blob, EM_MODEL_BLOB_SIZE);
    if (st == EM_OK) st = em_graph_init(&ctx, &graph, arena, sizeof arena);
    for (int t = 0; st == EM_OK && t < 8; t++) st = em_graph_step(&ctx, in, out);
    return st == EM_OK ? 0 : (int)st;
}
"""
    if flavor == "zephyr":
        body += f"""
int main(void) {{
    int rc = edgemem_demo();
    if (rc == 0) printk("edgemem {name} ok: logit[0]=%d\\n", out[0]);
    else printk("edgemem {name} failed: %d\\n", rc);
    return 0;
}}
"""
    else:
        body += f"""
void setup() {{
    Serial.begin(115200);
    int rc = edgemem_demo();
    Serial.print(rc == 0 ? "edgemem {name} ok: logit[0]=" : "edgemem {name} failed: ");
    Serial.println(rc == 0 ? (int)out[0] : rc);
}}

void loop() {{
    /* stream: fill in[] with the next quantized sample, em_graph_step(&ctx, in, out), read out[] */
}}
"""
    return body


# pyproject.toml names no project URL or maintainer, so the bundle carries these placeholders (docs/bundle.md):
# the Arduino library specification 1.5 requires `url` and `maintainer`; replace them before publishing a bundle
PLACEHOLDER_URL = "https://example.invalid/edgemem"  # RFC 2606 .invalid: unmistakably not a real address
PLACEHOLDER_MAINTAINER = "edgemem maintainers <maintainer@example.invalid>"


def _arduino_properties(c: dict[str, Any]) -> str:
    return "\n".join([
        f"name=edgemem_{c['name']}",
        f"version={c['version']}",
        "author=edgemem",
        f"maintainer={PLACEHOLDER_MAINTAINER}",
        f"sentence=The edgemem model {c['name']}: a bit-exact int8 spiking model and its C runtime.",
        "paragraph=Exported by edgemem: bind the compiled-in model, init its arena, step it once per time step. Only "
        f"the kernels this model needs are included (EM_GRAPH_KERNELS={c['mask']}).",
        "category=Data Processing",
        f"url={PLACEHOLDER_URL}",
        "architectures=*",
        f"includes=edgemem_{c['name']}.h",
        "",
    ])


def _platformio(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"edgemem_{c['name']}",
        "version": c["version"],
        "description": f"The edgemem model {c['name']}: a bit-exact int8 spiking model and its C runtime",
        "keywords": ["edgemem", "spiking", "int8", "tinyml"],
        "license": "Apache-2.0",
        "homepage": PLACEHOLDER_URL,
        "authors": [{"name": "edgemem maintainers", "email": "maintainer@example.invalid", "maintainer": True}],
        "frameworks": "*",
        "platforms": "*",
        "build": {"srcDir": "src", "includeDir": "src", "flags": [f"-DEM_GRAPH_KERNELS={c['mask']}"]},
        "export": {"exclude": ["zephyr", "samples", "cmake"]},
    }


def _stage_readme(meta: dict[str, Any]) -> str:
    """The input stage paragraph (docs/frontend.md), where the model has one."""
    st = meta.get("input_stage")
    if not st:
        return ""
    raw = ("one 20 ms hop of 16-bit mono PCM at EM_MODEL_SAMPLE_RATE" if st["kind"] == "logmel" else
           "EM_MODEL_DOWNSAMPLE readings of every sensor channel, sample-major, as int16 counts (full scale "
           "EM_MODEL_SENSOR_FULL_SCALE; em_sensor_counts_f32 converts float readings)")
    return f"""
**Raw samples in** (the input stage, `em_input_stage_blob` in model.c): instead of quantizing by hand, feed the
device's raw samples, {raw}, and let the stage compute the int8 input exactly as `edgemem verify` scored it:

```c
static uint32_t stage_arena[(EM_INPUT_STAGE_ARENA_BYTES + 3) / 4];
em_graph_t s; em_graph_ctx_t sctx;
em_graph_bind(&s, em_input_stage_blob, EM_INPUT_STAGE_BLOB_SIZE);
em_graph_init(&sctx, &s, stage_arena, sizeof stage_arena);
em_graph_stage_step(&sctx, samples /* int16 [EM_INPUT_STAGE_N_IN] */, in_s8);  /* then em_graph_step as above */
```
"""


def _readme(c: dict[str, Any]) -> str:
    name, meta = c["name"], c["meta"]
    kernels = ", ".join(c["kernels"])
    return f"""# edgemem bundle: {name}

The model `{name}` ({meta.get('kind', '?')}) as int8 C, with the edgemem C runtime it needs: `src/` holds
`model.h` / `model.c` (the graph blob as a C array), the runtime's bind / init / step (`graph.c`, `graph_bind.c`,
`crc32.c`, `em_status.c`, `intops.c`) and only this model's kernels ({kernels}). Made by `edgemem export --to bundle`
(edgemem {meta.get('tool', {}).get('version', '?')}); `meta.json` describes the export.

## Call it

```c
#include "edgemem_{name}.h"   /* edgemem.h + model.h, C and C++ */

static uint32_t arena[(EM_MODEL_ARENA_BYTES + 3) / 4];
em_graph_t g; em_graph_ctx_t ctx;
em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE);   /* header, sizes, CRC-32 */
em_graph_init(&ctx, &g, arena, sizeof arena);           /* zeroes the state */
for (;;) em_graph_step(&ctx, in_s8 /* [EM_MODEL_N_IN] */, out_s16 /* [EM_MODEL_N_OUT] */);
```

Each call returns an `em_status_t` (`EM_OK` is 0; `em_status_str` names the others). `em_graph_reset(&ctx)`
starts a new stream.

**Input**: int8, `q = clamp(round_half_away(x / EM_MODEL_INPUT_SCALE) + EM_MODEL_INPUT_ZERO_POINT, -128, 127)`, where
`x` is the sample after the normalization `(x - EM_MODEL_INPUT_MEAN[i]) / EM_MODEL_INPUT_STD[i]` where model.h
defines them (input scale {meta.get('input_scale')!r}). **Output**: int16 logits, `float = q * EM_MODEL_OUTPUT_SCALE`.
{_stage_readme(meta)}
**Kernel mask**: `EM_GRAPH_KERNELS={c['mask']}` (model.h `EM_MODEL_GRAPH_KERNELS`). The CMake, Zephyr and PlatformIO
glue define it; the bundled `em_graph.h` defaults to it as well, so a build that passes no definition (the Arduino
IDE) links the same kernels. Do not set it to anything else: the other kernels are not in this folder.

## Build systems

- **CMake**: `add_subdirectory(path/to/bundle)` then `target_link_libraries(app PRIVATE edgemem::{name})`
  (a C99 static library with its include directory and the kernel definition). Cross-compiling:
  `-DCMAKE_TOOLCHAIN_FILE=path/to/bundle/cmake/arm-none-eabi-cortex-m4.cmake` (`-DEDGEMEM_ARM_CPU=cortex-m33`, ...).
- **Zephyr**: a module (`zephyr/module.yml`): `west build -b <board> samples/{name} --
  -DZEPHYR_EXTRA_MODULES=$PWD`, or list the bundle in your west.yml / ZEPHYR_EXTRA_MODULES and set
  `CONFIG_EDGEMEM_{c['upper']}=y`.
- **Arduino**: copy the folder into `libraries/` (or add it as a .zip library); `examples/{name}/{name}.ino`.
- **PlatformIO**: `lib_deps = file://path/to/bundle` (library.json).
"""
