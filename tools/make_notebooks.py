"""Writes examples/*.ipynb from the cells below, without outputs (`make test` executes them: tests/test_notebooks.py).

Run from the checkout: python tools/make_notebooks.py. Edit the cells here, not the .ipynb files."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent

SETUP = '''import os, shutil, tempfile
from pathlib import Path

import numpy as np
import edgemem

# The checkout (models/, export/): this notebook lives in examples/. WORK: where everything is written (never the checkout).
ROOT = Path(os.environ.get("EDGEMEM_ROOT") or Path.cwd().parent).resolve()
WORK = Path(os.environ.get("EDGEMEM_WORK") or tempfile.mkdtemp(prefix="edgemem-nb-")).resolve()
HAVE_M4 = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))
print("edgemem", edgemem.__version__, "| writing into", WORK, "| Cortex-M4 toolchain:", HAVE_M4)'''

NB01 = [
    new_markdown_cell("""# Your own data to bit-exact C

Recordings of a watch-like 3-axis accelerometer (synthetic here; put your own arrays in the same `.npz`), a small
**Expressive Leaky Memory** model trained for three epochs, exported to C and checked bit-exact against the integer
reference in C on the host (and on an emulated Cortex-M4 when `gcc-arm-none-eabi` and `qemu-system-arm` are
installed). Everything is written into a temporary folder (`EDGEMEM_WORK`)."""),
    new_code_cell(SETUP),
    new_markdown_cell("""## 1. The data: an `.npz` of recordings
`X` float [recordings][time][channels], zero-padded to the longest with `lengths` giving each recording's valid
steps; `y` the class per recording; `subject` per recording (the split never puts one subject in two sets);
`class_names`. README "Your own data" has the format."""),
    new_code_cell('''rng = np.random.default_rng(0)
classes = ["still", "walk", "shake"]
n_rec, t_max = 72, 120                                   # 12 recordings per subject, 6 subjects, 25 Hz
X = np.zeros((n_rec, t_max, 3), dtype=np.float32)
y = np.arange(n_rec) % len(classes)
lengths = rng.integers(80, t_max + 1, n_rec)
subject = np.arange(n_rec) // 12 + 1
t = np.arange(t_max) / 25.0
for i in range(n_rec):
    g = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.05, 3)  # gravity, a slightly different wrist angle each time
    f = rng.uniform(1.6, 2.2)                                 # steps per second
    motion = {0: 0.0 * t,
              1: 0.4 * np.sin(2 * np.pi * f * t),
              2: 0.8 * np.sign(np.sin(2 * np.pi * 4 * f * t))}[y[i]]
    sig = g + motion[:, None] * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 0.08, (t_max, 3))
    X[i, : lengths[i]] = sig[: lengths[i]]
data = WORK / "own" / "data" / "wrist.npz"
data.parent.mkdir(parents=True, exist_ok=True)
np.savez(data, X=X, y=y, lengths=lengths, subject=subject, class_names=np.array(classes))
print(X.shape, "recordings of", lengths.min(), "to", lengths.max(), "steps;", dict(zip(classes, np.bincount(y))))'''),
    new_markdown_cell("""## 2. A recipe, and `edgemem.train`
`data.path` is relative to the recipe's folder. No baselines (`baselines: []`), three epochs (seconds)."""),
    new_code_cell('''import yaml

recipe = {
    "name": "wrist_elm",
    "data": {"source": "npz", "path": "data/wrist.npz", "window": 40, "hop": 20,
             "train_subjects": [1, 2, 3, 4], "val_subjects": [5], "test_subjects": [6]},
    "model": {"kind": "elm", "readout": "sum", "n_neurons": 1, "n_s": 8, "n_m": 8, "n_mlp": 16, "mlp_act": "tanh"},
    "train": {"epochs": 3, "batch_size": 8, "lr": 0.05, "threads": 1, "seed": 0},
    "baselines": [],
    "quant": {"calib_windows": 32},
}
recipe_path = WORK / "own" / "recipe.yaml"
recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))

trained = edgemem.train(recipe_path, quiet=True)
print(f"float test accuracy {trained.test_accuracy:.3f}, integer model {trained.int8_accuracy:.3f}, "
      f"{trained.params} parameters -> {trained.checkpoint}")'''),
    new_markdown_cell("## 3. `edgemem.export` to C (and ONNX, which `verify` compares too)"),
    new_code_cell('''exported = edgemem.export(trained.checkpoint, WORK / "own" / "export", to=["onnx", "c"])
print(exported.files, "arena", exported.arena_bytes, "B")'''),
    new_markdown_cell("""## 4. `edgemem.verify`: torch, onnxruntime, the integer reference, C on the host (and the M4)
`bit_exact` is True when C computes exactly the integer reference's logits at every step."""),
    new_code_cell('''report = edgemem.verify(exported.folder, m4_windows=2)
print(f"bit_exact={report.bit_exact} (host {report.bit_exact_host}, Cortex-M4 {report.bit_exact_cortex_m4})")
print(f"accuracy {report.accuracy:.3f} on {report.test_windows} held-out windows (C on the host)")
for runtime, acc in report.accuracies.items():  # c_cortex_m4: over the m4_windows it ran
    print(f"  {runtime:14s} {acc:.3f}")
print(f"flash {report.flash_bytes:,} B, RAM {report.ram_bytes:,} B + stack {report.stack_bytes} B, "
      f"{report.instructions_per_step:,.0f} instructions/step")
assert report.bit_exact_host'''),
    new_markdown_cell("## 5. The C model: `model.h` (the blob is `model.c`; `firmware/` runs it)"),
    new_code_cell('''print("\\n".join((exported.folder / "model.h").read_text().splitlines()[:25]))'''),
]

NB02 = [
    new_markdown_cell("""# Keyword spotting: mixed precision and a patch schedule

An **LMUFormer** (causal conv patch embedding, LMU, channel mixer) on keyword-like log-mel clips. The shipped
`kws_lmuformer` needs its espeak-ng clips generated (minutes); to stay fast this notebook trains a tiny LMUFormer for
one epoch on synthetic "keywords" (each word a formant trajectory over 8 mel bands, 40 frames, speakers as subjects),
then:
- `edgemem.quantize`: 8/4/2-bit weights per layer under a flash budget (`epochs=0`: no quantization-aware
  fine-tuning),
- `edgemem.export` of the mixed-precision model,
- `edgemem.plan(..., patch_frames=4)`: the peak RAM of the streaming, layer-by-layer and patch schedules."""),
    new_code_cell(SETUP),
    new_code_cell('''rng = np.random.default_rng(1)
words, n_mels, frames = ["yes", "no", "up", "down"], 8, 40
paths = {0: (2, 6), 1: (6, 2), 2: (1, 3), 3: (5, 7)}  # formant start -> end band per word
n_speakers, clips = 10, 8
X = np.zeros((n_speakers * clips * len(words), frames, n_mels), dtype=np.float32)
y = np.zeros(len(X), dtype=np.int64)
subject = np.zeros(len(X), dtype=np.int64)
bands = np.arange(n_mels)
i = 0
for s in range(1, n_speakers + 1):
    shift = rng.normal(0, 0.4)                              # a speaker's vocal tract
    for _ in range(clips):
        for w, (a, b) in paths.items():
            onset, dur = rng.integers(4, 12), rng.integers(18, 26)
            mel = rng.normal(-3, 0.3, (frames, n_mels))     # log-mel floor
            for k in range(dur):
                f = a + (b - a) * k / dur + shift
                mel[onset + k] += 3 * np.exp(-0.5 * (bands - f) ** 2)
            X[i], y[i], subject[i] = mel, w, s
            i += 1
data = WORK / "kws" / "data" / "words.npz"
data.parent.mkdir(parents=True, exist_ok=True)
np.savez(data, X=X, y=y, subject=subject, class_names=np.array(words))
print(X.shape, "clips,", n_speakers, "speakers")'''),
    new_code_cell('''import yaml

recipe = {
    "name": "tiny_kws",
    "data": {"source": "npz", "path": "data/words.npz", "window": frames, "hop": frames,
             "train_subjects": [1, 2, 3, 4, 5, 6, 7], "val_subjects": [8], "test_subjects": [9, 10]},
    "model": {"kind": "lmuformer", "readout": "sum", "channels": 32, "kernel": 3, "n_conv": 2, "n_u": 4,
              "order": 8, "theta": 40.0, "mixer_ratio": 2, "activation": "relu", "dropout": 0.0},
    "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "threads": 1, "seed": 0},
    "baselines": [],
    "quant": {"calib_windows": 32},
}
(WORK / "kws" / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
trained = edgemem.train(WORK / "kws" / "recipe.yaml", quiet=True)
print(f"float {trained.test_accuracy:.3f}, int8 {trained.int8_accuracy:.3f}, {trained.params} parameters")'''),
    new_markdown_cell("""## Mixed precision: the device image under a flash budget
`--flash` bounds the estimated Cortex-M4 image (runtime code + the kernels the graph needs + its blob): here the
int8 model's image less a fifth of its weight bytes. The search lowers the least sensitive layers to 4 or 2 bits
first, by validation loss, counting the packed kernel the first narrow layer brings. `epochs=0` skips the
quantization-aware fine-tuning."""),
    new_code_cell('''from edgemem.graph.blob import parse_graph_blob
from edgemem.quant.image import image_of

int8 = edgemem.export(trained.checkpoint, WORK / "kws" / "export_int8", to=["c"])
image8 = image_of(parse_graph_blob((int8.folder / "model.bin").read_bytes())).total
budget = image8 - trained.params // 5
mixed = edgemem.quantize(trained.checkpoint, budget, ram="8KiB", epochs=0, out=WORK / "kws" / "tiny_kws_mixed")
print(f"image {mixed.raw['image_bytes']:,} B (int8 {image8:,} B) for a budget of {budget:,} B")
print(f"weights {mixed.weight_bytes:,} B (int8 {mixed.weight_bytes_int8:,} B)")
print(f"accuracy {mixed.accuracy:.3f} (int8 {mixed.accuracy_int8:.3f}); arena {mixed.arena_bytes:,} B")
print("bits per layer:", mixed.bits)'''),
    new_code_cell('''exported = edgemem.export(mixed.checkpoint, WORK / "kws" / "export", to=["onnx", "c"])
print(exported.files, "arena", exported.arena_bytes, "B")'''),
    new_markdown_cell("""## Memory schedules
*streaming* keeps every buffer of one step; *layer_by_layer* runs each layer over the whole window; the *patch*
schedule runs the conv front stage over blocks of `patch_frames` frames (recomputing a halo) so only a block's
activations are live."""),
    new_code_cell('''plan = edgemem.plan(exported.folder, patch_frames=4, target="pinetime",
                   patch_out=WORK / "kws" / "patch.bin", plot=WORK / "kws" / "timeline.png")
for name, peak in plan.peak_ram_bytes.items():
    print(f"{name:16s} peak RAM {peak:7,} B   extra MACs {plan.extra_macs_ratio[name]:6.1%}")
for name, why in plan.unavailable.items():
    print(f"{name:16s} unavailable: {why}")
print("chosen:", plan.chosen, "| fits the PineTime:", plan.fits)'''),
    new_code_cell('''from IPython.display import Image

Image(filename=str(WORK / "kws" / "timeline.png"))'''),
]

NB03 = [
    new_markdown_cell("""# Inside the spiking L2MU: spikes, firing rates, membrane saturation

The shipped `export/har_l2mu` as the C runtime computes it: the integer reference (`edgemem.graph.ref.run_graph`)
steps the op graph of `model.bin` over held-out windows, and an `on_step` callback sees every buffer after each step:
spikes (the LIF ops' outputs) and membranes (their int16 state). A membrane at ±32767 is saturated: int16 full scale
is the float model's `state_clip`, so torch clamps at the same place."""),
    new_code_cell(SETUP),
    new_code_cell('''from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.intops import quantize
from edgemem.graph.ref import run_graph
from edgemem.verification.held_out import held_out_set
from edgemem.verification.plots import lif_populations, plot_spikes, spikes

export_dir = ROOT / "export" / "har_l2mu"
g = parse_graph_blob((export_dir / "model.bin").read_bytes())
meta, ckpt, held = held_out_set(export_dir)
pops = lif_populations(g, ckpt.model)
print(len(held.y), "held-out windows of", held.x.shape[1], "steps; populations:",
      [(name, g.buffers[g.ops[i].out].count) for i, name in pops])'''),
    new_markdown_cell("## Spike raster and firing rates (what `edgemem plot-spikes` draws)"),
    new_code_cell('''from IPython.display import Image, display

s = spikes(export_dir, window=3, rate_windows=64)
raster, rates = plot_spikes(s, WORK / "spikes")
print(f"window {s.window}: true {s.true}, predicted {s.predicted}")
for name in s.names:
    print(f"{name:8s} mean spikes per neuron per step {s.rates[name].mean():.3f}, silent neurons "
          f"{int((s.rates[name] == 0).sum())} of {s.rates[name].size}")
display(Image(filename=str(raster)), Image(filename=str(rates)))'''),
    new_markdown_cell("""## Membranes: an `on_step` callback
Collect each population's membrane (the LIF op's `state0` buffer) at every step of 64 held-out windows."""),
    new_code_cell('''xq = quantize(held.x[:64], float(meta["input_scale"])).astype(np.int8)
mem_buf = {name: g.buffers[g.ops[i].state0].name for i, name in pops}
spk_buf = {name: g.buffers[g.ops[i].out].name for i, name in pops}
mems = {name: [] for name, _ in mem_buf.items()}
spike_counts = {name: 0 for name in spk_buf}

def on_step(t, values):
    for name in mems:
        mems[name].append(values[mem_buf[name]].copy())
        spike_counts[name] += int(values[spk_buf[name]].sum())

logits = run_graph(g, xq, on_step)
mems = {name: np.stack(v) for name, v in mems.items()}    # [steps][windows][neurons]
for name, m in mems.items():
    sat = np.mean((m >= 32767) | (m <= -32768))
    print(f"{name:8s} membranes {m.shape}, saturated {sat:.3%}, spikes per neuron per step "
          f"{spike_counts[name] / m.size:.3f}")'''),
    new_markdown_cell("""A histogram per population, log scale: the red lines are int16 full scale (`state_clip`). Mass piled
on them is saturation: the integer model clips there, and so does the float model (it clamps at `state_clip`), so
saturation is the same operation in torch, NumPy and C; a population that sits there often (the hidden one here) is
one whose `state_clip` a retraining could raise."""),
    new_code_cell('''import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(mems), figsize=(4 * len(mems), 3), squeeze=False)
for ax, (name, m) in zip(axes[0], mems.items()):
    ax.hist(m.ravel() / 32767, bins=64, color="tab:blue")
    ax.axvline(-1, color="tab:red", lw=1)
    ax.axvline(1, color="tab:red", lw=1)
    ax.set_yscale("log")
    ax.set_title(f"{name}: {np.mean(np.abs(m) >= 32767):.2%} at full scale")
    ax.set_xlabel("membrane / state_clip")
axes[0][0].set_ylabel("neuron-steps")
fig.tight_layout()
fig.savefig(WORK / "membranes.png", dpi=80)
plt.show()'''),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"},
                                             "language_info": {"name": "python"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"{name[:2]}-{i:02d}"  # stable ids: regenerating changes nothing that did not change
    nbformat.validate(nb)
    (ROOT / "examples" / name).write_text(nbformat.writes(nb) + "\n")


if __name__ == "__main__":
    write("01_own_data_to_c.ipynb", NB01)
    write("02_kws_mixed_precision_and_patches.ipynb", NB02)
    write("03_spiking_internals.ipynb", NB03)
