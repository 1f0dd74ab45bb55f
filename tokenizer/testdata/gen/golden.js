// golden.js encodes documents with the reference HF tokenizers build and
// writes their ids, for the Go golden tests and the benchmark.
//
// Usage: node golden.js TOKENIZER_JSON DOCS_IN IDS_OUT [--threads N] [--time]
//
// DOCS_IN:  u32 count, then per document u32 byte length + UTF-8 bytes
//           (invalid UTF-8 is decoded as WHATWG/Rust from_utf8_lossy do).
// IDS_OUT:  per document u32 id count + ids, all little-endian u32.
// --time:   print {"seconds": ..., "cpu_seconds": ..., "bytes": ..., "tokens": ...}
//           for the encodeBatch calls (ids fetched; reading and writing excluded).
// Threads: RAYON_NUM_THREADS must be set before the binding loads, so
// --threads re-executes this script with it set.
'use strict';
const fs = require('fs');

function main() {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--threads');
  if (ti >= 0) {
    const n = args[ti + 1];
    args.splice(ti, 2);
    if (process.env.RAYON_NUM_THREADS !== n) {
      const { spawnSync } = require('child_process');
      const r = spawnSync(process.execPath, [__filename, ...args], {
        stdio: 'inherit', env: { ...process.env, RAYON_NUM_THREADS: n, TOKENIZERS_PARALLELISM: 'true' },
      });
      process.exit(r.status === null ? 1 : r.status);
    }
  }
  const timing = args.includes('--time');
  const [tokPath, inPath, outPath] = args.filter((a) => a !== '--time');
  if (!outPath) {
    console.error('usage: node golden.js TOKENIZER_JSON DOCS_IN IDS_OUT [--threads N] [--time]');
    process.exit(2);
  }
  const { Tokenizer } = require('tokenizers');
  const tok = Tokenizer.fromFile(tokPath);
  const buf = fs.readFileSync(inPath);
  const count = buf.readUInt32LE(0);
  const docs = new Array(count);
  let off = 4;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const n = buf.readUInt32LE(off);
    off += 4;
    docs[i] = buf.toString('utf8', off, off + n);
    off += n;
    bytes += n;
  }
  if (off !== buf.length) throw new Error(`${inPath}: ${buf.length - off} trailing bytes`);
  return run(tok, docs, bytes, outPath, timing);
}

async function run(tok, docs, bytes, outPath, timing) {
  const fd = fs.openSync(outPath, 'w');
  const BATCH = 1000;
  let seconds = 0;
  let cpuMicros = 0; // this process's CPU, all threads (rayon's included)
  let tokens = 0;
  for (let s = 0; s < docs.length; s += BATCH) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const encs = await tok.encodeBatch(docs.slice(s, s + BATCH), { addSpecialTokens: false });
    const ids = encs.map((e) => e.getIds());
    const c = process.cpuUsage(c0);
    cpuMicros += c.user + c.system;
    seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    let total = 0;
    for (const x of ids) total += 1 + x.length;
    const out = new Uint32Array(total);
    let k = 0;
    for (const x of ids) {
      out[k++] = x.length;
      out.set(x, k);
      k += x.length;
      tokens += x.length;
    }
    fs.writeSync(fd, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  }
  fs.closeSync(fd);
  if (timing) console.log(JSON.stringify({ seconds, cpu_seconds: cpuMicros / 1e6, bytes, tokens, docs: docs.length }));
}

main().catch((e) => { console.error(e); process.exit(1); });
