// The HAR demo page: held-out watch recordings (or a CSV) streamed through edgemem's C runtime in WebAssembly.
// Every window is classified as `edgemem verify` does: reset, one step per 40 ms frame, logits summed, argmax.
// window.edgemem exposes what was computed (per-step logits, predictions) for tests/test_demo_browser.py.

import { loadRuntime } from "./runtime.js";

const COLORS = ["#4b7bec", "#20bf6b", "#fa8231", "#eb3b5a", "#8854d0", "#0fb9b1", "#f7b731", "#778ca3"];
const CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"];
const CHART_SECONDS = 8;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = { data: null, rt: null, rec: null, playing: false, correct: 0, total: 0, chart: null };
window.edgemem = { done: false, runs: [] };

function say(text, info = false) {
  $("message").textContent = text;
  $("message").className = info ? "info" : "";
}

function decode(b64, Type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

// One window [steps][n_in] int8 from reset: per-step logits, their sum, the class (first maximum, as numpy).
function classify(x) {
  const { rt, data } = state;
  const steps = data.steps_per_window, sum = new Array(rt.nOut).fill(0), logits = [];
  rt.reset();
  for (let t = 0; t < steps; t++) {
    const out = rt.step(x.subarray(t * rt.nIn, (t + 1) * rt.nIn));
    logits.push(Array.from(out));
    for (let k = 0; k < rt.nOut; k++) sum[k] += out[k];
  }
  let pred = 0;
  for (let k = 1; k < sum.length; k++) if (sum[k] > sum[pred]) pred = k;
  const z = sum.map((s) => (s * data.output_scale) / steps), m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m)), total = e.reduce((a, b) => a + b, 0);
  return { pred, logits, probs: e.map((v) => v / total) };
}

// ---- quantizing a CSV the way the exporter does (in float64 here: a value at a rounding boundary may differ) ----
function quantizeWindow(raw, start) {
  const d = state.data, ds = d.downsample, c = d.n_in, out = new Int8Array(d.steps_per_window * c);
  for (let t = 0; t < d.steps_per_window; t++) {
    for (let k = 0; k < c; k++) {
      let s = 0;
      for (let j = 0; j < ds; j++) s += raw[(start + t * ds + j) * c + k];
      const norm = (s / ds - d.normalizer.mean[k]) / d.normalizer.std[k];
      const q = norm / d.input_scale, r = Math.sign(q) * Math.floor(Math.abs(q) + 0.5);
      out[t * c + k] = Math.max(-128, Math.min(127, r));
    }
  }
  return out;
}

function parseCsv(text) {
  const c = state.data.n_in;
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length);
  if (!lines.length) throw new Error("the file is empty");
  const rows = [];
  lines.forEach((line, i) => {
    const cells = line.split(/[,;\t ]+/);
    const nums = cells.map(Number);
    if (nums.some((v) => !Number.isFinite(v))) {
      if (i === 0) return; // a header line
      throw new Error(`line ${i + 1} has a value that is not a number: "${line.slice(0, 60)}"`);
    }
    if (nums.length !== c) throw new Error(`line ${i + 1} has ${nums.length} columns; expected ${c} (${CHANNELS.join(", ")})`);
    rows.push(nums);
  });
  const need = state.data.window_samples;
  if (rows.length < need) throw new Error(`${rows.length} samples is less than one window (${need} samples = ${need / state.data.rate_hz} s at ${state.data.rate_hz} Hz)`);
  return Float32Array.from(rows.flat());
}

// ---- views ----
function className(k) { return state.data.class_names[k] ?? `class ${k}`; }

// an element with a class, text (set as text, never as HTML) and children
function node(tag, cls = "", text = "", children = []) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  e.append(...children);
  return e;
}

function drawBars(probs, truth) {
  $("bars").replaceChildren();
  const top = probs.indexOf(Math.max(...probs));
  probs.forEach((p, k) => {
    // class names come from the model's data.json: text nodes only, never parsed as HTML
    const row = node("div", "bar" + (k === top ? " top" : ""));
    const fill = node("div", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    row.append(node("span", "", className(k)), node("div", "track", "", [fill]), node("span", "", `${(100 * p).toFixed(0)} %`));
    $("bars").appendChild(row);
  });
  $("now-label").textContent = truth == null ? className(top) : `${className(top)} (true: ${className(truth)})`;
}

function addToTimeline(pred, truth) {
  const p = document.createElement("div");
  p.style.background = COLORS[pred % COLORS.length];
  p.dataset.pred = pred;
  p.title = `predicted ${className(pred)}`;
  $("pred-row").appendChild(p);
  const t = document.createElement("div");
  t.style.background = truth == null ? "#ccd" : COLORS[truth % COLORS.length];
  t.title = truth == null ? "no label" : `true ${className(truth)}`;
  $("true-row").appendChild(t);
}

function showAccuracy() {
  if (!state.total) return;
  $("accuracy").textContent = `${((100 * state.correct) / state.total).toFixed(1)} %`;
  const ref = state.data.accuracy_c_host;
  $("counts").textContent = `${state.correct} of ${state.total} windows right` +
    (ref != null ? ` · every held-out window, C on the host (verify): ${(100 * ref).toFixed(1)} %` : "");
}

function drawFootprint() {
  const f = state.data.footprint, b = state.data.budget;
  $("budget-name").textContent = `beside a ${b.name}: what its firmware leaves free for a model, ${(b.flash_bytes / 1024).toFixed(1)} of ${b.flash_total / 1024} KiB flash, ${(b.ram_bytes / 1024).toFixed(1)} of ${b.ram_total / 1024} KiB RAM, ${b.mhz} MHz`;
  const stepUs = f.instructions_per_step / b.mhz, frameUs = (1e6 * state.data.downsample) / state.data.rate_hz;
  const meters = [
    ["Flash (code + model)", f.flash_bytes, b.flash_bytes, `${f.flash_bytes.toLocaleString()} B of ${b.flash_bytes.toLocaleString()} B free`],
    ["RAM (arena, state, stack)", f.ram_bytes + (f.stack_bytes || 0), b.ram_bytes, `${(f.ram_bytes + (f.stack_bytes || 0)).toLocaleString()} B of ${b.ram_bytes.toLocaleString()} B free`],
    ["CPU per 40 ms step", stepUs, frameUs, `${f.instructions_per_step.toLocaleString()} instructions ≈ ${stepUs.toFixed(0)} µs`],
  ];
  const rows = meters.map(([name, v, max, text]) => {
    const fill = node("div", "fill");
    fill.style.width = `${Math.max(0.5, (100 * v) / max).toFixed(2)}%`;
    return node("div", "meter", "", [node("span", "", name), node("div", "track", "", [fill]), node("span", "", text)]);
  });
  const info = node("p", "info", "", [document.createTextNode("Measured by "), node("code", "", "edgemem verify"),
    document.createTextNode(` on the Cortex-M4 build (QEMU, instructions not cycles). In this page the same C code runs in ${state.rt.arenaBytes.toLocaleString()} B of arena.`)]);
  $("footprint").replaceChildren(...rows, info);
}

function makeChart() {
  const el = $("chart"), width = Math.max(300, el.clientWidth || 900);
  const series = [{}].concat(CHANNELS.map((name, k) => ({ label: name, stroke: COLORS[k], width: 1 })));
  const opts = { width, height: 240, scales: { x: { time: false } }, axes: [{ label: "s" }, { size: 50 }], series };
  state.chart = new uPlot(opts, [[0], ...CHANNELS.map(() => [0])], el);
}

function chartTo(raw, cursor) {
  const d = state.data, c = d.n_in, n = Math.round(CHART_SECONDS * d.rate_hz), from = Math.max(0, cursor - n);
  const xs = [], cols = CHANNELS.map(() => []);
  for (let i = from; i < cursor; i++) {
    xs.push(i / d.rate_hz);
    for (let k = 0; k < c; k++) cols[k].push(raw[i * c + k]);
  }
  if (xs.length) state.chart.setData([xs, ...cols]);
}

// ---- playing a recording: windows are classified when their last sample has arrived ----
function recordingSource(rec) {
  const d = state.data, x = decode(rec.x, Int8Array), per = d.steps_per_window * d.n_in;
  return {
    name: `subject ${rec.subject}, ${className(rec.label)}`, id: rec.id, raw: decode(rec.raw, Float32Array),
    samples: rec.samples,
    windows: rec.starts.map((s, i) => ({ start: s, label: rec.labels[i], x: x.subarray(i * per, (i + 1) * per) })),
  };
}

function csvSource(name, raw) {
  const d = state.data, samples = raw.length / d.n_in, windows = [];
  for (let s = 0; s + d.window_samples <= samples; s += d.hop_samples) windows.push({ start: s, label: null, x: quantizeWindow(raw, s) });
  return { name, id: null, raw, samples, windows };
}

function play(source, speed) {
  return new Promise((resolve) => {
    const d = state.data, run = { recording: source.id, name: source.name, logits: [], predictions: [], labels: [] };
    window.edgemem.runs.push(run);
    let next = 0, cursor = 0, last = performance.now();
    state.playing = true;
    $("play").textContent = "Pause";
    const finishWindow = () => {
      const w = source.windows[next++], r = classify(w.x);
      run.logits.push(...r.logits);
      run.predictions.push(r.pred);
      run.labels.push(w.label);
      if (w.label != null) { state.total += 1; state.correct += r.pred === w.label ? 1 : 0; }
      drawBars(r.probs, w.label);
      addToTimeline(r.pred, w.label);
      showAccuracy();
    };
    const tick = (now) => {
      if (!state.playing) { last = now; requestAnimationFrame(tick); return; }
      if (speed === 0) cursor = source.samples;
      else cursor = Math.min(source.samples, cursor + ((now - last) / 1000) * d.rate_hz * speed);
      last = now;
      while (next < source.windows.length && source.windows[next].start + d.window_samples <= cursor) finishWindow();
      chartTo(source.raw, Math.floor(cursor));
      if (next >= source.windows.length) {
        state.playing = false;
        $("play").textContent = "Play";
        resolve(run);
        return;
      }
      requestAnimationFrame(tick);
    };
    if (speed === 0) { // no frames to wait for: every window now (tests, "as fast as possible")
      while (next < source.windows.length) finishWindow();
      chartTo(source.raw, source.samples);
      state.playing = false;
      $("play").textContent = "Play";
      resolve(run);
      return;
    }
    requestAnimationFrame(tick);
  });
}

async function main() {
  try {
    const [data, blob] = await Promise.all([
      fetch("data.json").then((r) => r.json()),
      fetch("model.bin").then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b)),
    ]);
    state.data = data;
    state.rt = await loadRuntime(blob);
    if (state.rt.nIn !== data.n_in) throw new Error(`model takes ${state.rt.nIn} inputs, the data has ${data.n_in}`);
  } catch (e) {
    say(`could not start: ${e.message}`);
    return;
  }
  const d = state.data;
  $("subtitle").textContent = `${d.model}: the C runtime runs here as WebAssembly, one ${(1000 * d.downsample / d.rate_hz).toFixed(0)} ms step at a time, on ${d.recordings.length} recordings of people it never saw in training.`;
  d.recordings.forEach((r, i) => {
    const o = document.createElement("option");
    o.value = i;
    o.textContent = `subject ${r.subject} · ${className(r.label)} · ${(r.samples / d.rate_hz).toFixed(0)} s`;
    $("recording").appendChild(o);
  });
  $("legend").replaceChildren(...d.class_names.map((n, k) => {
    const swatch = node("i");
    swatch.style.background = COLORS[k % COLORS.length];
    return node("span", "", "", [swatch, document.createTextNode(n)]);
  }));
  makeChart();
  drawFootprint();
  const speed = () => Number($("speed").value);
  $("play").onclick = () => {
    if (state.playing) { state.playing = false; $("play").textContent = "Play"; return; }
    play(recordingSource(d.recordings[Number($("recording").value)]), speed());
  };
  $("all").onclick = async () => {
    for (const r of d.recordings) await play(recordingSource(r), speed());
    window.edgemem.done = true;
  };
  $("csv").onchange = async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      const raw = parseCsv(await file.text());
      say(`${file.name}: ${raw.length / d.n_in} samples (${CHANNELS.join(", ")} at ${d.rate_hz} Hz)`, true);
      await play(csvSource(file.name, raw), speed());
    } catch (e) {
      say(`${file.name}: ${e.message}`);
    }
  };
  say("Pick a recording and press Play, or upload a CSV with columns ax, ay, az (g) and gx, gy, gz (rad/s) at 50 Hz.", true);
  // tests and links: ?recording=K&speed=0&autoplay=1
  if (params.has("recording")) $("recording").value = params.get("recording");
  if (params.has("speed")) $("speed").value = params.get("speed");
  if (params.get("autoplay") === "1") {
    await play(recordingSource(d.recordings[Number($("recording").value)]), speed());
    window.edgemem.done = true;
  }
  document.body.dataset.ready = "1";
}

main();
