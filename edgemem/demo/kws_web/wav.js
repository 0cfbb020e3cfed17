// WAV files for the keyword page, read here in the browser (the file is never uploaded): RIFF/WAVE with a "fmt "
// chunk saying PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with the PCM subformat), 16-bit, mono, at the front end's
// rate. Anything else is an Error naming what the file is and what the model takes: never resampled or mixed down,
// as edgemem/data/wav.py refuses it on the host. No DOM here: tests/test_demo_kws_browser.py runs it under node.

const FORMATS = { 1: "PCM", 3: "float", 6: "A-law", 7: "µ-law", 0x11: "IMA ADPCM", 0x55: "MP3" };

function tag(view, at) {
  return String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3));
}

export function wants(rate) {
  return `the model takes ${rate} Hz mono 16-bit PCM`;
}

function channelWord(n) {
  return n === 1 ? "mono" : n === 2 ? "stereo" : `${n} channels`;
}

// ArrayBuffer -> Int16Array of the samples (little-endian 16-bit PCM mono at `rate` Hz), or throws.
export function parseWav(buffer, rate) {
  const view = new DataView(buffer), size = buffer.byteLength;
  if (size < 12 || tag(view, 0) !== "RIFF" || tag(view, 8) !== "WAVE") {
    throw new Error(`not a WAV file (no RIFF/WAVE header): ${wants(rate)}`);
  }
  let fmt = null, data = null;
  for (let at = 12; at + 8 <= size; ) {
    const id = tag(view, at), len = view.getUint32(at + 4, true), body = at + 8;
    if (id === "fmt ") {
      if (len < 16 || body + 16 > size) throw new Error(`a WAV file with a damaged "fmt " chunk: ${wants(rate)}`);
      let format = view.getUint16(body, true);
      if (format === 0xfffe && len >= 40 && body + 26 <= size) format = view.getUint16(body + 24, true); // extensible
      fmt = { format, channels: view.getUint16(body + 2, true), rate: view.getUint32(body + 4, true),
              bits: view.getUint16(body + 14, true) };
    } else if (id === "data") {
      data = { start: body, bytes: Math.min(len, size - body) }; // a truncated file: the samples that are there
      if (fmt) break;
    }
    at = body + len + (len & 1); // chunks are padded to an even length
  }
  if (!fmt) throw new Error(`a WAV file without a "fmt " chunk: ${wants(rate)}`);
  const kind = FORMATS[fmt.format] ?? `format code ${fmt.format}`;
  const what = `${fmt.rate} Hz ${channelWord(fmt.channels)} ${fmt.bits}-bit ${kind}`;
  if (fmt.format !== 1 || fmt.channels !== 1 || fmt.bits !== 16 || fmt.rate !== rate) {
    throw new Error(`${what}: ${wants(rate)}`);
  }
  if (!data || data.bytes < 2) throw new Error(`${what} but it holds no samples`);
  const n = Math.floor(data.bytes / 2), pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = view.getInt16(data.start + 2 * i, true);
  return pcm;
}
