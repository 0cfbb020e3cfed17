"""Training outputs: metrics.json, curves.png, confusion.png and the model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from edgemem.atomic import write_atomic, write_text_atomic  # noqa: E402
from edgemem.training.loop import History  # noqa: E402

METRIC_KEYS = ("test_accuracy", "val_accuracy", "cv_accuracy_mean", "cv_accuracy_sd", "params", "macs_per_step",
               "spikes_per_step")


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def plot_curves(path: Path, hist: History, title: str) -> None:
    def draw(tmp: Path) -> None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
        epochs = np.arange(1, len(hist.train_loss) + 1)
        a.plot(epochs, hist.train_loss)
        a.set(xlabel="epoch", ylabel="training loss", title=title)
        b.plot(epochs, hist.train_acc, label="train")
        if any(v is not None for v in hist.val_acc):
            b.plot(epochs, [np.nan if v is None else v for v in hist.val_acc], label="validation")
            b.axvline(hist.best_epoch + 1, color="gray", ls=":", label="kept")
        b.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
        b.legend()
        fig.tight_layout()
        fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    write_atomic(path, draw)


def plot_confusion(path: Path, y: np.ndarray, pred: np.ndarray, names: list[str], title: str) -> None:
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)

    def draw(tmp: Path) -> None:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
        ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names, xlabel="predicted",
               ylabel="true", title=title)
        fig.tight_layout()
        fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    write_atomic(path, draw)


def input_stage_lines(dep: dict[str, Any]) -> list[str]:
    """The input stage paragraph (docs/frontend.md), when the verify report has one: raw samples in."""
    st = dep.get("front_end") or dep.get("input_stage")
    if not st:
        return []
    if st["kind"] == "logmel":
        what = (f"**Raw audio in** (the integer log-mel front end, docs/frontend.md): accuracy from 16-bit PCM "
                f"**{100 * st['accuracy_raw_audio']:.1f} %**; the front end costs **{st['instructions_per_frame']:,.0f} "
                "instructions per frame** on the Cortex-M4")
    else:
        what = (f"**Raw sensor counts in** (the SENSOR input stage, docs/frontend.md): accuracy from raw values "
                f"**{100 * st['accuracy_raw']:.1f} %**; the stage costs **{st['instructions_per_step']:,.0f} "
                "instructions per step** on the Cortex-M4")
    return ["", what + f", {st['ram_bytes']:,} B of RAM (its arena) and a {st['blob_bytes']:,} B blob; bit-exact "
            f"(reference = C host = M4, and the M4's stage output through the M4's model gives the reference's "
            f"predictions): **{st['bit_exact']}**; its int8 output equals the float path's in "
            f"{100 * st['equal_to_float_path']:.2f} % of values (the rest differ by at most "
            f"{st['max_abs_diff_vs_float_path']})."]


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    if pct:
        return f"{100 * v:.1f} %"
    return f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else f"{v:.2f}" if isinstance(v, float) else str(v)


def subjects_text(subjects: list[int]) -> str:
    """[9, 10] -> '9–10', [1, 3] -> '1, 3' (runs of consecutive subjects as ranges)."""
    s = sorted(subjects)
    if len(s) > 1 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}–{s[-1]}"
    return ", ".join(str(v) for v in s)


def data_paragraph(recipe: dict[str, Any]) -> str | None:
    """The data of a recipe whose source the cards have no fixed text for (an own .npz, BasicMotions): what the
    recipe says, nothing more (UCI HAPT: with its citation). None for the sources with their own paragraph (watch,
    kws, psmnist, digits)."""
    d = recipe["data"]
    cut = (f"Windows of {d['window']} samples, hop {d['hop']}, decimated by {d['downsample']} "
           f"({d['window'] // d['downsample']} steps per window). Split by subject: train {d['train_subjects']}, "
           f"validation {d['val_subjects']}, test {d['test_subjects']}.")
    if d["source"] == "npz":
        return f"Own recordings from `{d['path']}` (`data.source: npz`, README \"Your own data\"). {cut}"
    if d["source"] == "hapt":
        return ("UCI HAPT (Reyes-Ortiz, Oneto, Samà, Parra, Anguita, Neurocomputing 2016; UCI Machine Learning "
                "Repository, CC BY 4.0), activities 1–6 (walking, upstairs, downstairs, sitting, standing, laying): a "
                "smartphone at the waist, accelerometer (g) + gyroscope (rad/s), 6 channels, 50 Hz, volunteers 1–30; "
                f"windows within each activity segment (docs/data.md). {cut}")
    if d["source"] == "basic_motions":
        return ("aeon's BasicMotions: smartwatch accelerometer + gyroscope (6 channels, 10 Hz), 4 activities; its "
                f"train and test cases are pseudo-subjects 1 and 2. {cut}")
    return None


def widths_text(recipe: dict[str, Any], base: str) -> str:
    """'int8 weights per channel' plus the layers quant.weight_bits stores narrower (what export deploys)."""
    narrow = recipe.get("quant", {}).get("weight_bits") or {}
    return base + "".join(f", {k} at {b} bits" for k, b in narrow.items())


def _published(recipe: dict[str, Any]) -> list[str]:
    """Published figures on the same benchmark and split, where the cards know them (UCI HAPT's 21/9 split)."""
    from edgemem.data import hapt

    d = recipe["data"]
    if d["source"] != "hapt" or sorted(d["test_subjects"]) != list(hapt.TEST_SUBJECTS):
        return []
    cited = "; ".join(f"{what} {100 * acc:.1f} % ({src})" for what, acc, src in hapt.PUBLISHED_UCI_HAR)
    return ["", f"Published on UCI-HAR, the same 6 activities and 21/9 volunteer split but the dataset's own "
                f"preprocessed windows (noise-filtered; body and gravity acceleration separated): {cited}. The models "
                "here read the raw recordings (docs/data.md)."]


def model_card(metrics: dict[str, Any], recipe: dict[str, Any], name: str) -> str:
    rows = [("L2MU (this model)", metrics)] + list(metrics["baselines"].items())
    d = recipe["data"]
    own = data_paragraph(recipe)
    cv_ran = any(m.get("cv_accuracy_mean") is not None for _, m in rows)
    lines = [
        f"# {name}: a fully spiking LMU (L2MU)" + (" for smartwatch exercise recognition" if own is None else ""),
        "",
        "Generated by `edgemem train` from `recipe.yaml`; numbers are measured, not typed in.",
        "",
        "## Data",
        (f"seglearn `load_watch()`: wrist accelerometer + gyroscope (6 channels, 50 Hz), 7 shoulder exercises, "
         f"subjects 1–10. Windows of {d['window']} samples, hop {d['hop']}, "
         f"decimated by {d['downsample']} (one model step per {d['downsample']} samples: "
         f"{d['window'] // d['downsample']} steps per window). "
         f"Split by subject: train {d['train_subjects']}, validation {d['val_subjects']}, "
         f"test {d['test_subjects']}." if own is None else own) + " Normalization statistics are stored in `model.pt`.",
        "",
        "## Results",
    ]
    if cv_ran:
        c = recipe["cv"]
        protocol = ("5 folds, fold k tests subjects 2k+1 and 2k+2" if c["folds"] == 5 and c["subjects"] ==
                    list(range(1, 11)) else f"{c['folds']} folds over subjects {c['subjects']} (each fold tests "
                    f"{len(c['subjects']) // c['folds']} of them)")
        lines += [f"Cross-validation: {protocol}, seeds {c['seeds']}, fixed epochs (mean ± sd over folds × seeds).", ""]
    test = f"test ({subjects_text(d['test_subjects'])})"
    lines += [f"| model | {test} | CV mean ± sd | params | MACs / step | spikes / step |" if cv_ran else
              f"| model | {test} | validation | params | MACs / step | spikes / step |",
              "|---|---|---|---|---|---|"]
    for label, m in rows:
        cv = "–" if m.get("cv_accuracy_mean") is None else (
            f"{100 * m['cv_accuracy_mean']:.1f} ± {100 * m['cv_accuracy_sd']:.1f} %")
        lines.append(
            f"| {label} | {_fmt(m['test_accuracy'], True)} | {cv if cv_ran else _fmt(m.get('val_accuracy'), True)} | "
            f"{_fmt(m['params'])} | {_fmt(m['macs_per_step'])} | {_fmt(m['spikes_per_step'])} |"
        )
    lines += _comparison(metrics)
    lines += _published(recipe)
    q = metrics.get("int8", {})
    if q:
        lines += [
            "",
            "## Integer model",
            f"Post-training quantization ({widths_text(recipe, 'int8 weights per channel')}, int16 state): test "
            f"accuracy {_fmt(q.get('test_accuracy'), True)} (float {_fmt(metrics['test_accuracy'], True)}).",
            f"The C runtime reproduces the integer reference bit for bit; see `edgemem verify export/{name}`.",
        ]
    dep = metrics.get("deployment")
    if dep:
        a = dep["accuracy"]
        lines += [
            "",
            f"## Every runtime on the test subjects (`edgemem verify export/{name} --json`)",
            "",
            "| torch float | onnxruntime float | integer reference | C host | C Cortex-M4 (QEMU) |",
            "|---|---|---|---|---|",
            f"| {100 * a['torch_float']:.1f} % | {100 * a['onnx_float']:.1f} % | {100 * a['int_reference']:.1f} % | "
            f"{100 * a['c_host']:.1f} % | {100 * a['c_cortex_m4']:.1f} % |",
            "",
            f"bit-exact (integer reference = C host = C Cortex-M4 at every step): **{dep['bit_exact']}** over "
            f"{dep['steps_compared']:,} steps ({dep['steps_compared_cortex_m4']:,} on the M4).",
            f"Cortex-M4 image (model + runtime + state, no stdio): flash **{dep['flash_bytes']:,} B**, "
            f"RAM **{dep['ram_bytes']:,} B** (arena {dep['arena_bytes']:,} B) plus **{dep['stack_bytes']} B** of stack "
            f"for `em_graph_step`; "
            f"**{dep['instructions_per_step']:,.0f} instructions per step** (QEMU `-icount`, SysTick).",
            *input_stage_lines(dep),
        ]
    baselines = metrics["baselines"]
    lines += [
        "",
        "MACs per step count dense multiply-accumulates (the L2MU's spike inputs need only additions)."
        + (" The CNN sees the whole window, so its MACs are per window divided by the window length;" if "cnn" in
           baselines else "")
        + ((" the" if "cnn" in baselines else " The") + " feature + random forest baseline has no MACs or parameters "
           "in this sense." if "features_rf" in baselines else ""),
        "",
        "![training curves](curves.png) ![confusion](confusion.png)",
        "",
    ]
    return "\n".join(lines)


def _comparison(metrics: dict[str, Any]) -> list[str]:
    """One measured sentence: where the L2MU stands against the best baseline under cross-validation."""
    scored = {n: m for n, m in metrics["baselines"].items() if m.get("cv_accuracy_mean") is not None}
    if metrics.get("cv_accuracy_mean") is None or not scored:
        return []
    best, b = max(scored.items(), key=lambda kv: kv[1]["cv_accuracy_mean"])
    diff = 100 * (metrics["cv_accuracy_mean"] - b["cv_accuracy_mean"])
    where = "above" if diff > 0 else "below"
    text = (f"Against the best baseline by cross-validation ({best}, {100 * b['cv_accuracy_mean']:.1f} %), the L2MU is "
            f"{abs(diff):.1f} points {where}")
    gru = metrics["baselines"].get("gru")
    if gru and gru.get("params") and metrics.get("params"):
        text += f", with {gru['params'] / metrics['params']:.1f}× fewer parameters than the GRU"
    return ["", text + ".", *paired_lines(metrics, "the L2MU")]


def paired_lines(metrics: dict[str, Any], label: str) -> list[str]:
    """The paired comparison with the best baseline (metrics.json's cv_paired_vs_best_baseline), when CV ran."""
    p = metrics.get("cv_paired_vs_best_baseline")
    if not p:
        return []
    low, high = (100 * v for v in p["ci95"])
    n = len(p["per_fold_diff"])
    verdict = ("above it" if low > 0 else "below it" if high < 0 else
               "not distinguishable from it at this level")
    return ["", f"Paired with the {p['baseline']} on the same {n} folds and seeds {metrics.get('cv_seeds')} (each "
                f"fold's seeds averaged first, docs/data.md): {label} minus the {p['baseline']} is "
                f"**{100 * p['mean_diff']:+.1f} points**, 95 % CI {low:+.1f} to {high:+.1f} (Student's t over the "
                f"{n} folds): {verdict}. Per fold: "
                + ", ".join(f"{100 * d:+.1f}" for d in p["per_fold_diff"]) + "."]
