// edgemem's C runtime as WebAssembly for the demo pages (the glue is firmware/targets/app/em_app.c): the model and,
// where a page has one, its input stage beside it. One copy for the HAR and the keyword page.

export async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// model, stage: blob bytes (stage null: a model alone). step: int8 [nIn] -> int16 [nOut]; stageStep: int16 samples
// [sIn] -> int8 [sOut], the model's input. A refused blob or a failed step throws with the C status.
export async function loadRuntime(model, stage = null) {
  const { instance } = await WebAssembly.instantiate(await bytes("edgemem.wasm"), {});
  const x = instance.exports;
  const load = (blob, at, cap, open, what) => {
    if (blob.length > cap) throw new Error(`${what} blob of ${blob.length} bytes is too large`);
    new Uint8Array(x.memory.buffer).set(blob, at);
    const st = open(blob.length);
    if (st !== 0) throw new Error(`the C runtime refused the ${what} (status ${st})`);
  };
  const run = (write, Tin, n, call, read, Tout, m, name) => (input) => {
    new Tin(x.memory.buffer, write(), n).set(input);
    const st = call();
    if (st !== 0) throw new Error(`${name} failed (status ${st})`);
    return new Tout(x.memory.buffer, read(), m).slice();
  };
  load(model, x.em_app_blob(), x.em_app_blob_cap(), x.em_app_open, "model");
  const nIn = x.em_app_n_in(), nOut = x.em_app_n_out();
  const rt = {
    nIn, nOut, arenaBytes: x.em_app_arena_bytes(),
    reset() { x.em_app_reset(); },
    step: run(x.em_app_in, Int8Array, nIn, x.em_app_step, x.em_app_out, Int16Array, nOut, "em_app_step"),
  };
  if (stage === null) return rt;
  load(stage, x.em_app_stage_blob(), x.em_app_stage_blob_cap(), x.em_app_stage_open, "input stage");
  const sIn = x.em_app_stage_n_in(), sOut = x.em_app_stage_n_out();
  return Object.assign(rt, {
    sIn, sOut, stageArenaBytes: x.em_app_stage_arena_bytes(),
    stageReset() { x.em_app_stage_reset(); },
    stageStep: run(x.em_app_stage_in, Int16Array, sIn, x.em_app_stage_step, x.em_app_stage_out, Int8Array, sOut,
                   "em_app_stage_step"),
  });
}
