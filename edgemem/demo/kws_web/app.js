// The keyword page: a WAV file the user picks, read in the page (never uploaded), through the export's log-mel front
// end (input_stage.bin) and model (model.bin) in edgemem's C runtime as WebAssembly. Scored as `edgemem demo kws
// --wav` does (edgemem/demo/kws_wav.py): the front end over the whole stream, one hop per step, then every 1 s window
// of features (one starting every 0.5 s) through the model from reset, logits summed, argmax, softmax of the sum *
// output_scale / steps. window.edgemem exposes what was computed for tests/test_demo_kws_browser.py.
import { bytes, loadRuntime } from "./runtime.js";
import { parseWav } from "./wav.js";

const $ = (id) => document.getElementById(id);
const state = { cfg: null, rt: null };
window.edgemem = { handled: 0, runs: [], error: null }; // handled: files read so far, good or refused

function say(text, info = false) {
  $("message").textContent = text;
  $("message").className = info ? "info" : "";
}

// int16 PCM -> one entry per 1 s window (edgemem.demo.kws_site.classify_pcm, step for step).
function classifyPcm(pcm) {
  const c = state.cfg, rt = state.rt, hop = c.hop, nf = c.n_features, steps = c.steps;
  const frames = Math.max(steps, Math.floor(pcm.length / hop)); // shorter than a window: padded with silence
  const x = new Int16Array(frames * hop);
  x.set(pcm.subarray(0, Math.min(pcm.length, frames * hop)));
  const feats = new Int8Array(frames * nf);
  rt.stageReset();
  for (let t = 0; t < frames; t++) feats.set(rt.stageStep(x.subarray(t * hop, (t + 1) * hop)), t * nf);
  const windows = [];
  for (let s = 0; s + steps <= frames; s += c.every_frames) {
    const sums = new Array(rt.nOut).fill(0);
    let last = null;
    rt.reset();
    for (let t = 0; t < steps; t++) {
      last = rt.step(feats.subarray((s + t) * nf, (s + t + 1) * nf));
      for (let k = 0; k < rt.nOut; k++) sums[k] += last[k];
    }
    const by = c.readout === "last" ? Array.from(last) : sums;
    let pred = 0;
    for (let k = 1; k < by.length; k++) if (by[k] > by[pred]) pred = k; // the first maximum, as numpy's argmax
    const z = sums.map((v) => (v * c.output_scale) / steps), m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m)), total = e.reduce((a, b) => a + b, 0);
    windows.push({ start_frame: s, start_s: (s * hop) / c.sample_rate, end_s: ((s + steps) * hop) / c.sample_rate,
                   pred, word: className(pred), sums, probs: e.map((v) => v / total) });
  }
  return windows;
}

function className(k) { return state.cfg.class_names[k] ?? `class ${k}`; }

// an element with a class, text (set as text, never as HTML) and children
function node(tag, cls = "", text = "", children = []) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  e.append(...children);
  return e;
}

function drawBars(w) {
  $("bars").replaceChildren(...w.probs.map((p, k) => {
    const fill = node("div", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    return node("div", "bar" + (k === w.pred ? " top" : ""), "",
                [node("span", "", className(k)), node("div", "track", "", [fill]), node("span", "", `${(100 * p).toFixed(0)} %`)]);
  }));
  $("now-label").textContent = `${w.start_s.toFixed(2)}–${w.end_s.toFixed(2)} s: ${w.word}`;
  document.querySelectorAll(".window").forEach((b) => b.classList.toggle("selected", Number(b.dataset.i) === w.i));
}

function drawWindows(windows) {
  $("windows").replaceChildren(...windows.map((w, i) => {
    w.i = i;
    const b = node("button", "window", "", [node("span", "", `${w.start_s.toFixed(2)}–${w.end_s.toFixed(2)} s`),
      node("span", "word", w.word), node("span", "p", `${(100 * w.probs[w.pred]).toFixed(1)} %`)]);
    b.dataset.i = i;
    b.dataset.pred = w.pred;
    b.onclick = () => drawBars(w);
    return b;
  }));
  // the most confident window first
  drawBars(windows.reduce((a, b) => (b.probs[b.pred] > a.probs[a.pred] ? b : a)));
}

async function onFile(file) {
  const c = state.cfg;
  try {
    const pcm = parseWav(await file.arrayBuffer(), c.sample_rate);
    const windows = classifyPcm(pcm);
    window.edgemem.error = null;
    window.edgemem.runs.push({ name: file.name, samples: pcm.length, windows });
    drawWindows(windows);
    const player = $("player");
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(file);
    player.hidden = false;
    say(`${file.name}: ${(pcm.length / c.sample_rate).toFixed(2)} s at ${c.sample_rate} Hz, ${windows.length} windows`, true);
  } catch (e) {
    window.edgemem.error = `${file.name}: ${e.message}`;
    say(window.edgemem.error);
  }
  window.edgemem.handled += 1;
}

async function main() {
  try {
    const [cfg, model, stage] = await Promise.all([
      fetch("config.json").then((r) => r.json()), bytes("model.bin"), bytes("input_stage.bin"),
    ]);
    state.cfg = cfg;
    state.rt = await loadRuntime(model, stage);
    if (state.rt.sIn !== cfg.hop || state.rt.sOut !== state.rt.nIn) {
      throw new Error(`the input stage takes ${state.rt.sIn} samples and gives ${state.rt.sOut} features; the model takes ${state.rt.nIn}`);
    }
  } catch (e) {
    say(`could not start: ${e.message}`);
    return;
  }
  const c = state.cfg, rt = state.rt;
  $("subtitle").textContent = `${c.model}: the log-mel front end and the model run here as WebAssembly, one ${(1000 * c.hop / c.sample_rate).toFixed(0)} ms hop at a time. Your file stays in this page; nothing is uploaded.`;
  $("runtime").textContent = `front end (input_stage.bin): ${rt.sIn} int16 samples -> ${rt.sOut} int8 features per hop, ${rt.stageArenaBytes.toLocaleString()} B of arena; model (model.bin): ${c.steps} steps per window, ${rt.arenaBytes.toLocaleString()} B of arena; words: ${c.class_names.join(", ")}.`;
  $("wav").onchange = (ev) => { if (ev.target.files[0]) onFile(ev.target.files[0]); };
  say(`Pick a WAV file: ${c.sample_rate} Hz mono 16-bit PCM (e.g. sox IN.wav -r ${c.sample_rate} -c 1 -b 16 OUT.wav).`, true);
  document.body.dataset.ready = "1";
}

main();
