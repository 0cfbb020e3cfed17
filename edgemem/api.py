"""The Python API: `edgemem.train`, `export`, `verify`, `quantize` and `plan`, each returning a typed result.

The command line (`edgemem.cli`) is a thin layer over these functions: it parses, calls one of them and prints the
result. Every function raises `edgemem.errors.EdgememError` (one line, the CLI's `error: ...`) on a user error:
a missing file, a bad recipe, an unknown format.

    import edgemem

    trained = edgemem.train("models/har_elm/recipe.yaml", epochs=1, out="/tmp/elm")
    exported = edgemem.export(trained.checkpoint, "/tmp/elm_export")
    report = edgemem.verify(exported.folder, m4_windows=2)
    print(report.bit_exact, report.accuracy, report.flash_bytes, report.ram_bytes)

Nothing heavy is imported here: torch and the pipeline load on the first call, so `import edgemem.api` (and the
CLI's `edgemem plan`) stay fast. Every result is a frozen dataclass; `.raw` holds the full dictionary the CLI prints
with `--json` (or writes as metrics.json / meta.json / quantize.json).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemem.errors import EdgememError

if TYPE_CHECKING:
    from edgemem.training.recipe import Recipe

__all__ = ["train", "export", "verify", "quantize", "plan",
           "TrainResult", "ExportResult", "VerifyReport", "QuantizeResult", "PlanReport", "Progress"]

PathLike = str | os.PathLike[str]
Progress = Callable[[str], None]
"""A progress callback: called with one short message per stage (the CLI prints them dimmed on stderr)."""


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced: the figures of metrics.json, and where the model went."""

    model: str
    """The model's kind (`l2mu`, `lmuformer`, `elm`, `lmu`)."""
    folder: Path
    """The output folder: model.pt, metrics.json, curves.png, confusion.png, README.md."""
    checkpoint: Path
    """`folder / "model.pt"`: what `export` and `quantize` take."""
    test_accuracy: float
    """Float model, held-out test split."""
    int8_accuracy: float
    """The integer model (at the recipe's widths) on the test split: what C computes."""
    params: int | None
    """Trainable parameters of the model."""
    cv_accuracy_mean: float | None
    """Cross-validation mean (only with `cv=True`)."""
    cv_accuracy_sd: float | None
    """Cross-validation standard deviation (only with `cv=True`)."""
    baselines: dict[str, dict[str, Any]]
    """Baseline name -> its metrics (`test_accuracy`, `params`, ...); empty for a recipe with `baselines: []`."""
    weight_bits: dict[str, int]
    """The recipe's narrower weight widths per layer (empty: int8 everywhere)."""
    raw: dict[str, Any] = field(repr=False)
    """The full metrics.json dictionary."""


@dataclass(frozen=True)
class ExportResult:
    """What `export` wrote."""

    folder: Path
    """The export folder (`edgemem verify` / `plan` take it)."""
    files: tuple[str, ...]
    """The artifacts written besides meta.json (model.bin, model.h, model.c, model.onnx, ...)."""
    arena_bytes: int | None
    """The C runtime's arena (None for `to=["nir"]` alone, which lowers nothing)."""
    raw: dict[str, Any] = field(repr=False)
    """meta.json as a dictionary (for NIR alone: the files and what NIR cannot express)."""


@dataclass(frozen=True)
class VerifyReport:
    """Every runtime on the held-out windows, compared: the table of `edgemem verify`."""

    model: str
    """The exported model's name."""
    bit_exact: bool
    """C on the host and on the emulated Cortex-M4 equal the integer reference at every step."""
    bit_exact_host: bool
    """C on the host equals the integer reference."""
    bit_exact_cortex_m4: bool
    """C on the emulated Cortex-M4 (QEMU) equals the integer reference over the windows it ran."""
    accuracy: float
    """Held-out accuracy of the integer model as C computes it on the host."""
    accuracies: dict[str, float]
    """Per runtime: `torch_float`, `onnx_float`, `int_reference`, `c_host`, `c_cortex_m4`."""
    test_windows: int
    """Held-out windows scored."""
    flash_bytes: int
    """Flash of the model and runtime as linked for the Cortex-M4."""
    ram_bytes: int
    """Static RAM (arena and state) as linked for the Cortex-M4."""
    stack_bytes: int
    """Worst-case stack of `em_graph_step`."""
    arena_bytes: int
    """The runtime's arena."""
    instructions_per_step: float
    """Cortex-M4 instructions per model step (QEMU `-icount`)."""
    steps_compared: int
    """Steps compared between the integer reference and C on the host."""
    raw: dict[str, Any] = field(repr=False)
    """The full report (`edgemem verify --json`)."""


@dataclass(frozen=True)
class QuantizeResult:
    """The mixed-precision model `quantize` made (a new folder; export it next)."""

    model: str
    """The new model's name (`NAME_mixed` by default)."""
    folder: Path
    """The new model's folder: model.pt, recipe.yaml, quantize.json, pareto.png."""
    checkpoint: Path
    """`folder / "model.pt"`: what `export` takes next."""
    bits: dict[str, int]
    """Weight bits per layer."""
    weight_bytes: int
    """Stored weights at those widths."""
    weight_bytes_int8: int
    """Stored weights at int8 everywhere."""
    accuracy: float
    """Held-out accuracy of the mixed-precision integer model."""
    accuracy_int8: float
    """Held-out accuracy of the int8 integer model."""
    arena_bytes: int
    """The runtime's arena at the chosen activation widths."""
    fits_ram: bool | None
    """Whether the arena fits `ram` (None without a RAM budget)."""
    raw: dict[str, Any] = field(repr=False)
    """The full result (quantize.json's figures, `configurations` included)."""


@dataclass(frozen=True)
class PlanReport:
    """Peak RAM of an export's memory schedules (`edgemem plan`)."""

    steps_per_window: int
    """Model steps in one window."""
    peak_ram_bytes: dict[str, int]
    """Schedule name (`streaming`, `layer_by_layer`, `patch`: its size in `raw["schedules"]["patch"]`) -> peak RAM."""
    extra_macs_ratio: dict[str, float]
    """Schedule name -> the MACs it recomputes, as a fraction of the streaming MACs."""
    unavailable: dict[str, str]
    """Schedules that do not apply -> why."""
    chosen: str
    """The schedule picked: the least RAM that fits, within 10 % extra MACs."""
    fits: bool
    """Whether the chosen schedule fits the budget."""
    ram_budget_bytes: int | None
    """The budget planned against (`ram`, else the target profile's RAM free for a model, else None)."""
    patch_out: Path | None
    """Where the patch schedule's plan blob went (with `patch_out`)."""
    raw: dict[str, Any] = field(repr=False)
    """The full report (`edgemem plan --json`), `value_driven` included when asked for."""


def _path(p: PathLike, what: str) -> Path:
    if isinstance(p, bool) or not isinstance(p, (str, os.PathLike)):
        raise EdgememError(f"{what} must be a path, got {type(p).__name__}")
    return Path(p)


def _size(value: int | str, what: str) -> int:
    from edgemem.schedule.plan import parse_size

    if isinstance(value, bool):
        raise EdgememError(f"{what} must be a number of bytes or a size like '4KiB', got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise EdgememError(f"{what} must be a positive number of bytes, got {value}")
        return value
    return parse_size(value)


def _formats(to: str | Sequence[str]) -> list[str]:
    items = to.split(",") if isinstance(to, str) else list(to)
    return [f.strip() for f in items if f.strip()]


def load_recipe_for_training(recipe: PathLike, epochs: int | None = None) -> Recipe:
    """The recipe at `recipe` with `epochs` in place of train.epochs (validated like the recipe's own value)."""
    from edgemem.commands.train import with_overrides
    from edgemem.training.recipe import load_recipe

    return with_overrides(load_recipe(_path(recipe, "recipe")), epochs)


def train(recipe: PathLike, *, epochs: int | None = None, out: PathLike | None = None, cv: bool = False,
          jobs: int = 2, resume: bool = False, quiet: bool = False) -> TrainResult:
    """Train a recipe's model and its baselines; write model.pt, metrics.json, curves.png, confusion.png and the
    model card README.md, all together at the end (`edgemem train`).

    Args:
        recipe: a recipe.yaml (docs/recipe.schema.json). A relative `data.path` in it resolves against its folder.
        epochs: train this many epochs instead of the recipe's `train.epochs` (quick runs).
        out: the output folder (default: the recipe's folder).
        cv: also run the leave-subjects-out cross-validation.
        jobs: processes for the cross-validation.
        resume: continue an interrupted training from its last finished epoch.
        quiet: print no per-epoch progress.

    Returns:
        A `TrainResult`: `checkpoint` (the model.pt to export), `test_accuracy`, `int8_accuracy`, `baselines`, ...

    Raises:
        EdgememError: a bad recipe, missing data, an unwritable output folder.
        edgemem.training.loop.Interrupted: Ctrl-C after the first epoch (continue with `resume=True`).

    Example:
        >>> r = edgemem.train("models/har_elm/recipe.yaml", epochs=1, out="/tmp/elm")  # doctest: +SKIP
        >>> r.int8_accuracy, r.checkpoint  # doctest: +SKIP
        (0.78, PosixPath('/tmp/elm/model.pt'))
    """
    from edgemem.commands.train import train_recipe

    r = load_recipe_for_training(recipe, epochs)
    folder = r.folder if out is None else _path(out, "out")
    m = train_recipe(r, folder, cv=cv, jobs=jobs, resume=resume, quiet=quiet)
    return TrainResult(model=r.model.kind, folder=folder, checkpoint=folder / "model.pt",
                       test_accuracy=m["test_accuracy"], int8_accuracy=m["int8"]["test_accuracy"],
                       params=m.get("params"), cv_accuracy_mean=m.get("cv_accuracy_mean"),
                       cv_accuracy_sd=m.get("cv_accuracy_sd"), baselines=dict(m.get("baselines", {})),
                       weight_bits=dict(r.quant.weight_bits), raw=m)


def export(checkpoint: PathLike, out: PathLike, *, to: str | Sequence[str] = ("onnx", "c"),
           name: str | None = None) -> ExportResult:
    """Write a trained checkpoint's release files into `out`; trains and searches nothing (`edgemem export`).

    The integer model is post-training quantized at the widths of the checkpoint's recipe, calibrated on its
    training windows. Always (unless `to` is nir alone): model.bin (the op graph blob), model.h / model.c and
    meta.json; per format: `onnx` model.onnx, `qcdq` model_qcdq.onnx, `nir` model.nir, `tflite` model.tflite,
    model_vars.tflite, model_float.tflite, model_int8.tflite. The folder is written whole and swapped in; an
    existing `out` holding anything an export does not write is refused.

    Args:
        checkpoint: a model.pt (of `train` or `quantize`).
        out: the export folder.
        to: formats, a list or a comma-separated string: onnx, c, qcdq, nir, tflite. `verify` needs onnx and c.
        name: the model's name in C symbols (default: the checkpoint's).

    Returns:
        An `ExportResult`: `folder`, `files`, `arena_bytes`, and meta.json as `raw`.

    Example:
        >>> e = edgemem.export("models/har_l2mu/model.pt", "/tmp/har", to=["onnx", "c"])  # doctest: +SKIP
        >>> e.files, e.arena_bytes  # doctest: +SKIP
        (('model.onnx', 'model.bin', 'model.h', 'model.c'), 368)
    """
    from edgemem.exporters.run import export as do_export

    folder = _path(out, "out")
    meta = do_export(_path(checkpoint, "checkpoint"), _formats(to), folder, name)
    return ExportResult(folder=folder, files=tuple(meta["files"]), arena_bytes=meta.get("arena_bytes"), raw=meta)


def verify(export_dir: PathLike, *, m4_windows: int | None = None, checkpoint: PathLike | None = None,
           plot_confusion: PathLike | None = None, progress: Progress | None = None,
           cores: str | list[str] | None = None, cores_windows: int | None = None, port: str | None = None,
           target: str | None = None) -> VerifyReport:
    """Run the held-out windows through torch, onnxruntime, the integer reference, C on the host and C on an
    emulated Cortex-M4 (QEMU), and compare them (`edgemem verify`). A model that is not bit-exact is reported
    (`bit_exact=False`), not raised.

    Args:
        export_dir: an export folder with model.onnx, model.bin, model.h, model.c (`export(..., to=["onnx", "c"])`).
        m4_windows: run only the first N windows on the emulated M4 (it is slow; needs gcc-arm-none-eabi and
            qemu-system-arm).
        checkpoint: the model.pt the export was made from (default: meta.json's, relative to the folder); its
            sha256 must be meta.json's.
        plot_confusion: also draw the integer model's confusion matrix (normalized per true class) into this PNG.
        progress: called with each stage's name.
        cores: also run em_run on these emulated cores ("all", "m0,m3,...", or a list of m0 m3 m4 m7 m33 m55 rv32;
            the same windows as the M4): `raw["cores"][core]` = bit_exact, instructions_per_step, flash_bytes,
            ram_bytes, board, windows. Default none (the report is as before).
        cores_windows: run the cores on only the first N windows (default: the M4's windows).
        port: also validate on a target running firmware/apps/uart_validate (`make -C firmware uart-validate
            MODEL_DIR=...`) over this serial line: a device (/dev/ttyACM0) or a pyserial URL (socket://HOST:PORT);
            the same windows as the M4. `raw["serial"]` = accuracy, bit_exact, instructions_per_step, ...; its
            bit_exact joins `bit_exact`. Needs pyserial (the `serial` extra).
        target: a target profile (pinetime, bangle2, nrf52840dk, mps2-an386 or a board.yaml path): adds
            `raw["target"]`, the profile and the M4 footprint's flash / RAM margins against what the board's
            firmware leaves free for a model (docs/targets.md).

    Returns:
        A `VerifyReport`: `bit_exact`, `accuracy`, `flash_bytes`, `ram_bytes`, `instructions_per_step`, ...

    Example:
        >>> v = edgemem.verify("export/har_l2mu", m4_windows=2)  # doctest: +SKIP
        >>> v.bit_exact, round(v.accuracy, 4), v.flash_bytes, v.ram_bytes  # doctest: +SKIP
        (True, 0.8353, 12656, 836)
    """
    from edgemem.verification.c_runtime import parse_cores
    from edgemem.verification.run import verify as do_verify

    core_list = parse_cores(cores) if isinstance(cores, str) or cores is None else parse_cores(",".join(cores))
    profile = None
    if target is not None:  # a typo fails before the runtimes run
        from edgemem.schedule.profiles import load_target

        profile = load_target(target)
    r = do_verify(_path(export_dir, "export_dir"), m4_windows, progress,
                  None if checkpoint is None else _path(checkpoint, "checkpoint"),
                  None if plot_confusion is None else _path(plot_confusion, "plot_confusion"),
                  **({"cores": core_list} if core_list else {}),
                  **({"cores_windows": cores_windows} if cores_windows is not None else {}),
                  **({"port": port} if port else {}))
    if profile is not None:
        r["target"] = profile.margins(ram_bytes=r["ram_bytes"], flash_bytes=r["flash_bytes"])
    return VerifyReport(model=r["model"], bit_exact=r["bit_exact"], bit_exact_host=r["bit_exact_host"],
                        bit_exact_cortex_m4=r["bit_exact_cortex_m4"], accuracy=r["accuracy"]["c_host"],
                        accuracies=dict(r["accuracy"]), test_windows=r["test_windows"], flash_bytes=r["flash_bytes"],
                        ram_bytes=r["ram_bytes"], stack_bytes=r["stack_bytes"], arena_bytes=r["arena_bytes"],
                        instructions_per_step=r["instructions_per_step"], steps_compared=r["steps_compared"], raw=r)


def default_quantize_folder(checkpoint: PathLike) -> Path:
    """Where `quantize` writes without `out`: NAME_mixed beside the checkpoint's folder."""
    from edgemem.checkpoint import load_checkpoint

    ckpt = _path(checkpoint, "checkpoint")
    return ckpt.resolve().parent.parent / f"{load_checkpoint(ckpt).name}_mixed"


def quantize(checkpoint: PathLike, flash: int | str, *, ram: int | str | None = None, epochs: int = 5,
             out: PathLike | None = None, distill: bool = False, progress: Progress | None = None) -> QuantizeResult:
    """Make a new, mixed-precision model from a trained checkpoint; exports nothing (`edgemem quantize`).

    Picks 8, 4 or 2 bits per weight layer (greedily, by validation loss) until the estimated device image (runtime
    core + the graph's kernels + its blob, edgemem.quant.image) fits `flash`,
    (LMUFormer) keeps activations at 16 bits while the arena fits `ram`, fine-tunes at those widths with
    quantization-aware training (brevitas) and writes the model as a new folder: model.pt, recipe.yaml,
    quantize.json, pareto.png. Export it next.

    Args:
        checkpoint: model.pt of a trained model.
        flash: budget for the device image (Cortex-M4 estimate): bytes, or a size like "28KiB"; a budget no
            configuration fits is an EdgememError.
        ram: arena budget (bytes or "4KiB"): checked and reported; the ANN LMUFormer raises activations to 16 bits
            only while the arena fits it.
        epochs: quantization-aware fine-tuning epochs (0: none, the quick way).
        out: the new model's folder (default: NAME_mixed beside the checkpoint's folder).
        distill: fine-tune against the float model's logits as well (knowledge distillation).
        progress: called with each stage's name.

    Returns:
        A `QuantizeResult`: `checkpoint` (the new model.pt), `bits` per layer, `weight_bytes`, `accuracy`, ...

    Example:
        >>> q = edgemem.quantize("models/kws_lmuformer/model.pt", "28KiB", epochs=0, out="/tmp/kws_mixed")  # doctest: +SKIP
        >>> q.bits, q.weight_bytes, q.accuracy  # doctest: +SKIP
    """
    from edgemem.quant.mixed_run import quantize_mixed

    budget = _size(flash, "--flash")
    ram_budget = None if ram is None else _size(ram, "--ram")
    if isinstance(epochs, bool) or epochs < 0:
        raise EdgememError(f"--epochs must be >= 0, got {epochs}")
    folder = default_quantize_folder(checkpoint) if out is None else _path(out, "out")
    r = quantize_mixed(_path(checkpoint, "checkpoint"), budget, ram_budget, epochs, folder, progress, distill)
    return QuantizeResult(model=r["model"], folder=folder, checkpoint=folder / "model.pt",
                          bits={k: v["weight"] for k, v in r["bits"].items()}, weight_bytes=r["weight_bytes"],
                          weight_bytes_int8=r["weight_bytes_int8"], accuracy=r["accuracy"],
                          accuracy_int8=r["accuracy_int8"], arena_bytes=r["arena_bytes"], fits_ram=r["fits_ram"],
                          raw=r)


def plan(export_dir: PathLike, *, ram: int | str | None = None, target: str | None = None,
         patch_frames: int | None = None, patch_out: PathLike | None = None, plot: PathLike | None = None,
         value_driven: bool = False, low_bits: int | None = None, progress: Progress | None = None) -> PlanReport:
    """Peak RAM of the streaming, layer-by-layer and patch schedules of an exported graph; picks one that fits
    (`edgemem plan`). Loads no torch unless `value_driven`.

    Args:
        export_dir: an export folder (model.bin and meta.json).
        ram: RAM budget, bytes or "4KiB" (default: the target's RAM, else none).
        target: a target profile: pinetime, bangle2, nrf52840dk, mps2-an386, or a board.yaml path (docs/targets.md);
            the budget is the RAM its firmware leaves free for a model.
        patch_frames: the patch size to plan (default: the least RAM within 10 % extra MACs).
        patch_out: also write the patch schedule's plan blob here (for em_graph_patch_parse / em_run).
        plot: also draw the memory timeline into this PNG (or another matplotlib format).
        value_driven: also evaluate QuantMCU's value-driven precision per patch (loads the data set).
        low_bits: with `value_driven`: activation bits of the patches without outliers, 4 or 2 (default 4).
        progress: called with each stage's name (value-driven only).

    Returns:
        A `PlanReport`: `peak_ram_bytes` per schedule, `chosen`, `fits`, `raw` (the `--json` report).

    Example:
        >>> p = edgemem.plan("export/kws_lmuformer", patch_frames=4)  # doctest: +SKIP
        >>> p.peak_ram_bytes  # doctest: +SKIP
        {'streaming': 952, 'layer_by_layer': ..., 'patch': 1952}
    """
    from edgemem.atomic import check_out_file
    from edgemem.schedule.plan import input_stage_ram, load_export_graph, plan_graph, plot_format
    from edgemem.schedule.plan import plot as draw

    folder = _path(export_dir, "export_dir")
    budget = None if ram is None else _size(ram, "--ram")
    patch_path = None if patch_out is None else _path(patch_out, "patch_out")
    plot_path = None if plot is None else _path(plot, "plot")
    if patch_path is not None:  # output paths first: a typo there must not cost a plan or a data set load
        check_out_file(patch_path, "--patch-out")
    if plot_path is not None:
        plot_format(plot_path)
        check_out_file(plot_path, "--plot")
    profile = None
    if target is not None:  # before the export is read: a typo is the likelier error
        from edgemem.schedule.profiles import load_target

        profile = load_target(target)
    if low_bits is not None and not value_driven:
        raise EdgememError("--low-bits applies to --value-driven only")
    vd_args = (8 if patch_frames is None else patch_frames, 4 if low_bits is None else low_bits)
    if value_driven:  # imported only here: it needs torch and the data set, a plain plan neither
        from edgemem.schedule.value_driven import check_args, stage_end

        check_args(*vd_args)
    g, steps = load_export_graph(folder)
    if value_driven:
        stage_end(g)  # no conv front: say so before planning and loading the data
    report = plan_graph(g, steps, budget, profile, patch_frames, input_stage_ram(folder))
    if patch_path is not None:
        from edgemem.atomic import write_bytes_atomic
        from edgemem.schedule.patch import build_patch_blob, patch_layout

        if "patch" not in report.schedules:
            raise EdgememError(f"no patch schedule to write: {report.unavailable.get('patch', 'none planned')}")
        frames = report.schedules["patch"].detail["patch_frames"]
        write_bytes_atomic(patch_path, build_patch_blob(patch_layout(g, frames), (folder / "model.bin").read_bytes()))
    if plot_path is not None:
        draw(report, plot_path, g)
    r = report.to_json()
    if value_driven:
        from edgemem.schedule.value_driven import evaluate_export

        r["value_driven"] = evaluate_export(folder, *vd_args, progress=progress)
    return PlanReport(steps_per_window=r["steps_per_window"],
                      peak_ram_bytes={k: s["peak_ram_bytes"] for k, s in r["schedules"].items()},
                      extra_macs_ratio={k: s["extra_macs_ratio"] for k, s in r["schedules"].items()},
                      unavailable=dict(r["unavailable"]), chosen=r["chosen"], fits=r["fits"],
                      ram_budget_bytes=r["ram_budget_bytes"], patch_out=patch_path, raw=r)
