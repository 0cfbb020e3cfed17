"""The `edgemem` command line: train, export, verify, plan."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgemem import api
from edgemem.errors import EdgememError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Memory-based spiking models from training to a microcontroller.")
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        from edgemem.tool import describe

        print(describe())
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version, the commit and the installed extras")] = False,
) -> None:
    """Memory-based spiking models from training to a microcontroller."""


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="recipe.yaml")],
    cv: Annotated[bool, typer.Option("--cv", help="also run the leave-subjects-out cross-validation")] = False,
    jobs: Annotated[int, typer.Option(help="processes for the cross-validation")] = 2,
    epochs: Annotated[int | None, typer.Option(help="override the recipe's epochs (quick runs)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default: the recipe's)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted training")] = False,
) -> None:
    """Train a recipe's model and its baselines; write model.pt, metrics.json, curves.png, confusion.png, README.md."""
    from edgemem.training.loop import Interrupted

    try:
        res = api.train(recipe, epochs=epochs, out=out_dir, cv=cv, jobs=jobs, resume=resume)
    except Interrupted as e:
        err.print(f"interrupted: {e.epochs_done} epochs kept in {e.path}; continue with "
                  f"`edgemem train {recipe} --resume`", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    table = Table("model", "test acc", "CV mean ± sd", "params")
    metrics = res.raw
    for name, m in [(res.model, metrics), *res.baselines.items()]:
        cvs = "–" if m["cv_accuracy_mean"] is None else f"{m['cv_accuracy_mean']:.3f} ± {m['cv_accuracy_sd']:.3f}"
        table.add_row(name, f"{m['test_accuracy']:.3f}", cvs, str(m["params"] or "–"))
    out.print(table)
    paired = metrics.get("cv_paired_vs_best_baseline")
    if paired:  # the claim a CV mean difference supports (docs/data.md "Cross-validation statistics")
        low, high = paired["ci95"]
        out.print(f"paired with {paired['baseline']} (same folds, seeds {metrics['cv_seeds']}): "
                  f"{100 * paired['mean_diff']:+.1f} points, 95 % CI {100 * low:+.1f} to {100 * high:+.1f}",
                  soft_wrap=True)
    narrow = ", ".join(f"{k} {b} bits" for k, b in res.weight_bits.items())
    out.print(f"integer model ({'int8' + (', ' + narrow if narrow else '')}) test accuracy: "
              f"{res.int8_accuracy:.3f}; wrote {res.folder}/model.pt")


@app.command()
def sweep(
    recipe: Annotated[Path, typer.Argument(help="recipe.yaml: the starting point; the space's keys replace its values")],
    space: Annotated[Path, typer.Option("--space", help="SPACE.yaml: dotted recipe keys -> distributions, and the "
                                        "search settings (docs/sweep.md)")],
    out_dir: Annotated[Path, typer.Option("--out", help="the sweep's folder; the same command again continues it")],
    address: Annotated[str | None, typer.Option("--address", help="join a running Ray cluster (e.g. "
                                                "ray://HOST:10001 or HOST:6379) instead of a local Ray")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="CPUs of the local Ray (default: all)")] = None,
    device: Annotated[str, typer.Option("--device", help="auto (a CUDA GPU where torch sees one), cpu or cuda")] =
        "cpu",
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-run", help="share of a GPU one (fold, seed) run "
                                                "asks Ray for, with --device cuda")] = 0.25,
) -> None:
    """Search a recipe's hyperparameters: every trial is the CV over folds x seeds, on Ray Tune with Optuna and ASHA.

    Writes into --out: results.csv, results.json, sweep.png (score per trial, best so far), best_recipe.yaml (the
    winning recipe, for `edgemem train`). Needs the sweep extra: pip install 'edgemem[sweep]'."""
    from edgemem.commands.sweep import run_sweep

    res = run_sweep(recipe, space, out_dir, address=address, cpus=cpus, device=device, gpus_per_run=gpus_per_run,
                    say=lambda m: err.print(m, highlight=False, soft_wrap=True, markup=False))
    table = Table("trial", "status", "epochs", "score", "CV test", "params")
    for r in res.rows:
        score = "–" if r["score"] is None else f"{r['score']:.4f}"
        test = "–" if r["cv_test_mean"] is None else f"{r['cv_test_mean']:.3f} ± {r['cv_test_sd']:.3f}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        table.add_row(r["trial"], r["status"], str(r["epochs"]), score, test, params)
    out.print(table)
    if res.interrupted:
        kept = sum(not r["status"].startswith("interrupted") for r in res.rows)
        err.print(f"interrupted: {kept} of {res.trials} trials finished, kept in {out_dir}; continue with the same "
                  "command", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(130)
    if res.best is None:
        out.print(f"no trial completed; see {out_dir}/results.json")
        return
    b = res.best
    out.print(f"best: {b['trial']} score {b['score']:.4f} (mean inner-validation accuracy); its CV test "
              f"{b['cv_test_mean']:.4f} ± {b['cv_test_sd']:.4f} (optimistic: selected over every subject as validation)",
              highlight=False)
    if res.nested is not None:
        out.print(f"nested CV test (per-fold choice on that fold's validation only): {res.nested['mean']:.4f} ± "
                  f"{res.nested['sd']:.4f}", highlight=False)
    out.print(f"{res.seconds:.0f} s; wrote results.csv, results.json, sweep.png, best_recipe.yaml to {out_dir}",
              highlight=False)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt")],
    to: Annotated[str, typer.Option("--to", help="comma-separated formats: onnx,c,qcdq,nir,tflite; or bundle "
                                    "alone")] = "onnx,c",
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("export/model"),
    name: Annotated[str | None, typer.Option(help="model name in C symbols (default: the checkpoint's)")] = None,
) -> None:
    """Write a trained checkpoint's release files; trains and searches nothing.

    The integer model is post-training quantized at the widths the checkpoint's recipe gives (quant.weight_bits /
    act_bits: int8 everywhere unless `edgemem quantize` wrote narrower ones), calibrated on its training windows.
    Always (unless --to is nir alone): model.bin (the op graph blob), model.h / model.c and meta.json. Per --to:
    onnx model.onnx (the float step); qcdq model_qcdq.onnx (the integer step as QCDQ ONNX); nir model.nir (the
    float spiking model: l2mu, spiking lmuformer); tflite model.tflite, model_vars.tflite, model_float.tflite,
    model_int8.tflite (converter-style int8, not bit-exact: docs/tflite.md).
    bundle (alone): a folder to drop into a firmware project: the runtime sources the model needs, model.h /
    model.c, CMake, Zephyr, Arduino and PlatformIO glue (docs/bundle.md)."""
    meta = api.export(checkpoint, out_dir, to=to, name=name).raw
    if "arena_bytes" not in meta:  # --to nir alone
        out.print(f"wrote {', '.join(meta['files'])} to {out_dir}; NIR cannot express {len(meta['unsupported'])} "
                  "details (listed in the graph's metadata 'unsupported'; docs/nir.md)")
        return
    if to.strip() == "bundle":
        out.print(f"wrote the bundle {meta['name']} to {out_dir} (arena {meta['arena_bytes']} B): add_subdirectory "
                  f"it and link edgemem::{meta['name']}; README.md there says how to call it")
        return
    out.print(f"wrote {', '.join(meta['files'])} and meta.json to {out_dir} (arena {meta['arena_bytes']} B)")


@app.command()
def quantize(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt of a trained model")],
    flash: Annotated[str, typer.Option("--flash", help="budget for the device image (runtime code + "
                                         "kernels + model blob, Cortex-M4 estimate), e.g. 16KiB")],
    ram: Annotated[str | None, typer.Option("--ram", help="arena budget, e.g. 4KiB: the ANN LMUFormer keeps "
                                            "activations at 16 bits only while the arena fits it; other models: "
                                            "checked and reported")] = None,
    epochs: Annotated[int, typer.Option(help="quantization-aware fine-tuning epochs (0: none)")] = 5,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default: NAME_mixed beside the "
                                                 "checkpoint's folder)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    distill: Annotated[bool, typer.Option("--distill", help="fine-tune against the float model's logits too "
                                          "(knowledge distillation)")] = False,
) -> None:
    """Make a new, mixed-precision model from a trained checkpoint; exports nothing.

    Picks 8, 4 or 2 bits per weight layer (greedily, by validation loss) until the estimated device image (runtime
    core + the kernels the graph needs + its blob) fits --flash,
    fine-tunes at those widths with quantization-aware training (brevitas), and writes the model as a new folder
    NAME_mixed: model.pt, recipe.yaml (its quant.weight_bits / act_bits), quantize.json and pareto.png.
    Run `edgemem export NAME_mixed/model.pt` next for its C files, the weights packed at those widths."""
    progress = None if as_json else (lambda msg: err.print(f"[dim]· {msg}[/]"))
    r = api.quantize(checkpoint, flash, ram=ram, epochs=epochs, out=out_dir, distill=distill, progress=progress).raw
    if as_json:
        print(json.dumps({k: v for k, v in r.items() if k != "configurations"}, indent=2))
        return
    out.print(f"{r['model']}: weights {r['weight_bytes']:,} B (int8 {r['weight_bytes_int8']:,} B, "
              f"{r['weight_bytes_ratio']:.2f}x fewer), test accuracy {r['accuracy']:.4f} (int8 {r['accuracy_int8']:.4f})"
              f"; arena {r['arena_bytes']:,} B" + ("" if r["fits_ram"] is None else
                                                 f" ({'fits' if r['fits_ram'] else 'does NOT fit'} --ram)"))
    if "image_bytes" in r:
        out.print(f"image {r['image_bytes']:,} B estimated (int8 {r['image_bytes_int8']:,} B), --flash "
                  f"{r['flash_budget_bytes']:,} B" + ("" if r["fits_flash"] else " NOT met"))
    out.print("bits: " + ", ".join(f"{k} {v['weight']}" for k, v in r["bits"].items()))


@app.command()
def card(
    recipe: Annotated[Path, typer.Argument(help="recipe.yaml of a trained model")],
    verify_json: Annotated[Path | None, typer.Option("--verify", help="a saved `edgemem verify --json` report")] = None,
) -> None:
    """Regenerate the model card (README.md) from metrics.json and, if given, a verify report."""
    from edgemem.commands.train import write_card
    from edgemem.training.recipe import load_recipe

    r = load_recipe(recipe)
    deployment = None
    if verify_json is not None:
        if not verify_json.is_file():
            raise EdgememError(f"verify report {verify_json} does not exist")
        try:
            deployment = json.loads(verify_json.read_text())
        except json.JSONDecodeError as e:
            raise EdgememError(f"verify report {verify_json} is not valid JSON ({e})") from None
    if not (r.folder / "metrics.json").is_file() and not (r.folder / "quantize.json").is_file():
        raise EdgememError(f"{r.folder} has no metrics.json; run `edgemem train {recipe}` first")
    write_card(r.folder, r, deployment)
    out.print(f"wrote {r.folder / 'README.md'}")


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="PATH[:MODEL]: a cv.json or a folder `train --cv` wrote, and a model of it "
                                          "(default: its first, the recipe's own)")],
    b: Annotated[str, typer.Argument(help="the other side, the same way; the difference reported is B - A")],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
) -> None:
    """Two cross-validation results paired fold by fold: B minus A, with a 95 % interval (docs/data.md)."""
    from edgemem.training.cv_compare import compare as do_compare

    r = do_compare(a, b)
    if as_json:
        print(json.dumps(r, indent=2))
        return
    pts = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    out.print(f"A {r['a']}: {100 * r['a_mean']:.1f} %\nB {r['b']}: {100 * r['b_mean']:.1f} %", highlight=False)
    out.print(f"B - A: {pts(r['mean_diff'])} points, 95 % CI {pts(r['ci95'][0])} to {pts(r['ci95'][1])} "
              f"({len(r['folds'])} folds, seeds {r['seeds']}, {r['runs']} paired runs); per fold "
              + ", ".join(pts(d) for d in r["per_fold_diff"]), highlight=False, soft_wrap=True)


@app.command()
def schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="write it here instead of printing it")] = None,
) -> None:
    """Print the JSON Schema of a recipe file (for editors; docs/recipe.schema.json is this output)."""
    from edgemem.training.recipe import recipe_schema

    text = json.dumps(recipe_schema(), indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    from edgemem.atomic import write_text_atomic

    write_text_atomic(out_file, text)
    out.print(f"wrote {out_file}")


def _table(r: dict) -> Table:
    t = Table(title=f"edgemem verify: {r['model']} on {r['test_windows']} held-out windows")
    t.add_column("runtime")
    t.add_column("accuracy", justify="right")
    t.add_column("note")
    a = r["accuracy"]
    t.add_row("torch float", f"{a['torch_float']:.4f}", "snntorch step module")
    t.add_row("onnxruntime float", f"{a['onnx_float']:.4f}", f"max |Δlogit| vs torch {r['onnx_max_abs_diff_vs_torch']:.1e}")
    t.add_row("integer reference", f"{a['int_reference']:.4f}", "NumPy, int8 weights / int16 state")
    t.add_row("C host", f"{a['c_host']:.4f}", "bit-exact" if r["bit_exact_host"] else "DIFFERS from reference")
    m4 = f"{r['c_cortex_m4_windows']} windows, " + ("bit-exact" if r["bit_exact_cortex_m4"] else "DIFFERS")
    t.add_row("C Cortex-M4 (QEMU)", f"{a['c_cortex_m4']:.4f}", m4)
    p = r.get("patch_schedule")
    if p:
        t.add_row("C host, patch schedule", f"{a['c_host']:.4f}" if p["bit_exact_host"] else "–",
                  f"{p['patch_frames']} frames a block, " + ("bit-exact" if p["bit_exact_host"] else "DIFFERS") +
                  f", arena {p['arena_bytes']:,} B (plan {p['plan_peak_ram_bytes']:,} B)")
    q = r.get("qcdq_onnx")
    if q:
        t.add_row("onnxruntime QCDQ", f"{q['accuracy_onnx_qcdq']:.4f}",
                  f"{q['windows']} windows, class agreement {q['class_agreement']:.4f}, max |Δlogit| "
                  f"{q['max_abs_logit_diff_lsb']:.0f} LSB, weight codes exact")
    for core, c in (r.get("cores") or {}).items():
        win = f"{c['windows']} windows, " if "windows" in c else ""
        t.add_row(f"C {core} (QEMU {c.get('board', '')})".replace(" )", ")"), "",
                  win + ("bit-exact" if c["bit_exact"] else "DIFFERS") +
                  f", {c['instructions_per_step']:,.0f} instr/step, flash {c['flash_bytes']:,} B, "
                  f"RAM {c['ram_bytes']:,} B")
    s = r.get("serial")
    if s:
        t.add_row(f"C on target ({s['port']})", f"{s['accuracy']:.4f}", f"{s['windows']} windows, " +
                  ("bit-exact" if s["bit_exact"] else "DIFFERS") + f", {s['instructions_per_step']:,.0f} "
                  "instructions/step")
    t.caption = (f"bit_exact={r['bit_exact']} over {r['steps_compared']:,} steps · flash {r['flash_bytes']:,} B · "
                 f"RAM {r['ram_bytes']:,} B + stack {r['stack_bytes']} B · "
                 f"{r['instructions_per_step']:,.0f} instructions/step (M4, QEMU icount)")
    return t


@app.command()
def verify(
    export_dir: Annotated[Path, typer.Argument(help="an export folder (export/NAME)")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    m4_windows: Annotated[int | None, typer.Option(help="run only the first N windows on the emulated M4")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="the model.pt the export was made from "
                                                    "(default: meta.json's path, relative to the folder)")] = None,
    plot_confusion: Annotated[Path | None, typer.Option(
        "--plot-confusion", help="also draw the integer model's confusion matrix (normalized per true class) here")
    ] = None,
    cores: Annotated[str | None, typer.Option(
        "--cores", help="also run em_run on emulated cores: all, or a comma list of m0,m3,m4,m7,m33,m55,rv32 "
        "(adds \"cores\" to the report)")] = None,
    cores_windows: Annotated[int | None, typer.Option(
        "--cores-windows", help="run the cores on only the first N windows (default: the M4's windows)")] = None,
    port: Annotated[str | None, typer.Option(
        "--port", help="also validate on a target running uart_validate over this serial line: a device "
        "(/dev/ttyACM0) or socket://HOST:PORT (adds \"serial\" to the report; same windows as --m4-windows)")] = None,
    target: Annotated[str | None, typer.Option("--target", help="a target profile (pinetime, bangle2, nrf52840dk, "
                                               "mps2-an386) or board.yaml: flash / RAM margin against what its "
                                               "firmware leaves free")] = None,
) -> None:
    """Run the held-out test subjects through every runtime and compare them. The checkpoint must be the one the
    export was made from (meta.json's checkpoint_sha256)."""
    progress = None if as_json else (lambda msg: err.print(f"[dim]· {msg}[/]"))
    r = api.verify(export_dir, m4_windows=m4_windows, checkpoint=checkpoint, plot_confusion=plot_confusion,
                   progress=progress, **({"cores": cores} if cores else {}),
                   **({"cores_windows": cores_windows} if cores_windows is not None else {}),
                   **({"port": port} if port else {}), **({"target": target} if target else {})).raw
    if as_json:
        print(json.dumps(r, indent=2))
    else:
        out.print(_table(r))
        if target:
            t = r["target"]
            out.print(f"{t['name']} ({t['chip']}): flash margin {t['flash_margin_bytes']:,} B of "
                      f"{t['flash_free_for_model']:,} B free, RAM margin {t['ram_margin_bytes']:,} B of "
                      f"{t['ram_free_for_model']:,} B free for a model", highlight=False)
    if not r["bit_exact"]:
        raise typer.Exit(1)


@app.command("plot-spikes")
def plot_spikes(
    export_dir: Annotated[Path, typer.Argument(help="an export folder of a spiking model (export/NAME)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for spike_raster.png and firing_rates.png")],
    window: Annotated[int, typer.Option(help="the held-out window the raster shows")] = 0,
    rate_windows: Annotated[int | None, typer.Option(help="held-out windows the rates average (default: all)")] = None,
) -> None:
    """Spike raster (one held-out window) and firing rate per neuron of every spiking population, as the integer
    model (what C computes) produces them."""
    from edgemem.verification.plots import plot_spikes as draw
    from edgemem.verification.plots import spikes

    s = spikes(export_dir, window, rate_windows)
    raster, rates = draw(s, out_dir)
    summary = ", ".join(f"{p} {s.rates[p].mean():.3f}" for p in s.names)
    out.print(f"wrote {raster} and {rates} (mean spikes per neuron per step: {summary})")


@app.command()
def stress(
    export_dir: Annotated[Path, typer.Argument(help="an export folder (export/NAME)")],
    steps: Annotated[int, typer.Option(help="total steps over all streams")] = 1_000_000,
    streams: Annotated[int, typer.Option(help="independent long streams (half real input, half adversarial)")] = 10,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="the model.pt the export was made from "
                                                    "(default: meta.json's path, relative to the folder)")] = None,
) -> None:
    """Long-stream check: C host vs the integer reference at every step, saturation counted per state."""
    from edgemem.verification.stress import stress as do_stress

    if steps < streams or streams < 2:
        raise EdgememError(f"need at least 2 streams and one step per stream (got {streams} streams, {steps} steps)")
    r = do_stress(export_dir, steps, streams, checkpoint=checkpoint)
    print(json.dumps(r, indent=2))
    if r["steps_mismatched"]:
        raise typer.Exit(1)


@app.command()
def plan(
    export_dir: Annotated[Path, typer.Argument(help="an export folder of a graph model (export/NAME)")],
    ram: Annotated[str | None, typer.Option("--ram", help="RAM budget, e.g. 4KiB (default: the target's RAM free "
                                            "for a model)")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="a target profile: pinetime, bangle2, nrf52840dk, mps2-an386, or a board.yaml path "
        "(docs/targets.md); its RAM free for a model is the default budget")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="write a memory-timeline PNG here")] = None,
    patch_frames: Annotated[int | None, typer.Option("--patch-frames", help="patch size to plan (default: the "
                                                      "least RAM within 10 % extra MACs)")] = None,
    patch_out: Annotated[Path | None, typer.Option("--patch-out", help="write the patch schedule's plan blob "
                                                   "here (for em_graph_patch_parse / em_run)")] = None,
    value_driven: Annotated[bool, typer.Option("--value-driven", help="QuantMCU's value-driven precision per patch "
                                               "of --patch-frames frames (default 8) in the conv front stage: "
                                               "BitOPs and held-out accuracy (loads the data set)")] = False,
    low_bits: Annotated[int | None, typer.Option("--low-bits", help="with --value-driven: activation bits of the "
                                                 "patches without outliers, 4 or 2 (default 4)")] = None,
) -> None:
    """Peak RAM of the streaming, layer-by-layer and patch schedules of an exported graph; pick one that fits."""
    progress = None if as_json else (lambda msg: err.print(f"[dim]· {msg}[/]"))
    r = api.plan(export_dir, ram=ram, target=target, patch_frames=patch_frames, patch_out=patch_out, plot=plot_path,
                 value_driven=value_driven, low_bits=low_bits, progress=progress).raw
    if as_json:
        print(json.dumps(r, indent=2))
        return
    steps = r["steps_per_window"]
    t = Table("schedule", "peak RAM", "extra MACs", title=f"edgemem plan: {export_dir} ({steps} steps a window)")
    for name, s in r["schedules"].items():
        t.add_row(name + (" (chosen)" if name == r["chosen"] else ""), f"{s['peak_ram_bytes']:,} B",
                  f"{s['extra_macs_ratio']:.1%}")
    for name, why in r["unavailable"].items():
        t.add_row(name, "–", why)
    out.print(t)
    if r.get("input_stage_ram_bytes"):
        out.print(f"input stage: {r['input_stage_ram_bytes']:,} B of RAM beside the model's (counted in the fit)")
    verdict = "fits" if r["fits"] else "does not fit"
    budget_txt = "no budget" if r["ram_budget_bytes"] is None else f"{r['ram_budget_bytes']:,} B"
    out.print(f"chosen: {r['chosen']} ({verdict}; {budget_txt})"
              + (f"; {r['target']['name']}: margin {r['target']['margin_bytes']:,} B of "
                 f"{r['target']['ram_free_for_model']:,} B free for a model" if target else ""))
    if value_driven:
        _print_value_driven(r["value_driven"])


def _print_value_driven(v: dict) -> None:
    t = Table("op", "weights", "outlier |q| >", "low step", "patches at 8 bits",
              title=f"value-driven precision: patches of {v['patch_frames']} frames, {v['low_bits']} bits otherwise")
    for o in v["ops"]:
        t.add_row(f"{o['op']} {o['type']}", f"{o['weight_bits']} bits", f"{o['outlier_threshold_codes']:.1f}",
                  f"{o['low_step_codes']:.2f}", f"{o['patches_8bit_fraction']:.1%}")
    out.print(t)
    a, s = v["accuracy"], v["bitops_saved"]
    out.print(f"BitOPs saved: {s['whole_model']:.1%} of the whole model's (FC/CONV1D), {s['front_stage']:.1%} of "
              f"the front stage's")
    out.print(f"accuracy on {v['test_windows']} held-out windows: int8 {a['int8']:.4f}, value-driven "
              f"{a['value_driven']:.4f}, every patch at {v['low_bits']} bits {a['uniform_low']:.4f}")
    out.print(f"outlier: {v['outlier_rule']} ({v['calibration_windows']} windows)", highlight=False)


@app.command()
def demo(
    what: Annotated[str, typer.Argument(
        help="the demo: har, or kws (keywords in a WAV file: --wav, or --serve for the browser page)")] = "har",
    serve: Annotated[bool, typer.Option("--serve", help="the browser demo on http://127.0.0.1:PORT")] = False,
    port: Annotated[int, typer.Option(help="port for --serve (0: any free one)")] = 8765,
    export_dir: Annotated[Path | None, typer.Option(
        "--export", help="the exported model (default export/har_l2mu, or export/kws_lmuformer for kws)")] = None,
    speed: Annotated[float, typer.Option(help="terminal demo: times real time (0: no waiting)")] = 16.0,
    recordings: Annotated[int | None, typer.Option(help="terminal demo: play only the first N recordings")] = None,
    wav: Annotated[Path | None, typer.Option(help="kws: a 16 kHz mono 16-bit PCM WAV file")] = None,
    every: Annotated[float, typer.Option(help="kws: seconds between the starts of 1 s windows")] = 0.5,
) -> None:
    """The HAR demo on held-out smartwatch recordings: a live terminal view, or (--serve) the browser page with the
    C runtime in WebAssembly. `demo kws --wav FILE`: keywords in a WAV file, raw audio through the front end and the
    model in C; `demo kws --serve`: the same in the browser, on a WAV file picked in the page."""
    if what not in ("har", "kws"):
        raise EdgememError(f"unknown demo '{what}' (available: har, kws)")
    if what == "kws":
        if serve:
            if wav is not None:
                raise EdgememError("--wav is for the terminal (`demo kws --wav FILE`); with --serve the page asks "
                                   "for the file")
            from edgemem.demo.kws_site import build_kws_site
            from edgemem.demo.serve import serve_site

            serve_site(export_dir or Path("export/kws_lmuformer"), port, build=build_kws_site, demo="kws",
                       say=lambda m: out.print(m, highlight=False, soft_wrap=True))
            return
        if wav is None:
            raise EdgememError("demo kws takes a WAV file: `edgemem demo kws --wav FILE`, or `edgemem demo kws "
                               "--serve` for the browser page")
        from edgemem.demo.kws_wav import classify_wav

        for d in classify_wav(export_dir or Path("export/kws_lmuformer"), wav, every):
            out.print(f"{d.start_s:6.2f}-{d.end_s:6.2f} s  {d.word:>6}  {100 * d.probability:5.1f} %", highlight=False)
        return
    if wav is not None:
        raise EdgememError("--wav is for `demo kws` (the HAR demo plays the held-out watch recordings)")
    export_dir = export_dir or Path("export/har_l2mu")
    if serve:
        from edgemem.demo.serve import serve_site

        serve_site(export_dir, port, say=lambda m: out.print(m, highlight=False, soft_wrap=True))
        return
    from edgemem.demo.terminal import run

    correct, total = run(export_dir, speed, recordings)
    out.print(f"{correct} of {total} held-out windows right ({100 * correct / max(total, 1):.1f} %), "
              f"C runtime on the host; the browser version: `edgemem demo har --serve`", highlight=False)


def entry() -> None:
    """Console-script entry: user errors become one line and exit status 2, never a traceback.

    Usage errors (unknown option, missing argument) are typer's own, also exit status 2. Python warnings raised on
    the way (a library's deprecation, a NumPy overflow) are held back: shown when the command ends any other way,
    dropped when it ends in the one error line, which must stand alone."""
    failed: EdgememError | None = None
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            try:
                app()
            except EdgememError as e:
                failed = e
    finally:
        if failed is None:
            for w in caught:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if failed is not None:
        err.print(f"error: {failed}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)


if __name__ == "__main__":
    entry()
