// train.js regenerates tokenizer/testdata/tokenizer.json: a small SmolLM2-style
// tokenizer (same normalizer, pre-tokenizer, model flags, decoder and the 17
// SmolLM2 special tokens at ids 0-16) with an 8,192-entry vocabulary.
//
// npm tokenizers can only train with the model's default BpeTrainer (30,000
// entries, no special tokens), so we train that and keep the first merges:
// a prefix of a BPE merge list is itself a valid BPE model (every merge's
// parts come from the alphabet or an earlier merge).
//
// The training text is machine text every Go machine has: a fixed, sorted
// subset of $GOROOT/src plus the Go docs and /usr/share/common-licenses.
//
// Usage: node train.js [out.json]   (GOROOT from `go env GOROOT`)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const tk = require('tokenizers');

const VOCAB = 8192;
const SPECIALS = [
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<repo_name>', '<reponame>', '<file_sep>',
  '<filename>', '<gh_stars>', '<issue_start>', '<issue_comment>', '<issue_closed>',
  '<jupyter_start>', '<jupyter_text>', '<jupyter_code>', '<jupyter_output>', '<jupyter_script>',
  '<empty_output>',
];

function walk(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'testdata') walk(p, out); } else out.push(p);
  }
  return out;
}

function corpusFiles() {
  const goroot = execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim();
  const src = walk(path.join(goroot, 'src'), [])
    .filter((p) => p.endsWith('.go') && !p.endsWith('_test.go'))
    .map((p) => path.relative(goroot, p)).sort();
  const files = src.filter((_, i) => i % 8 === 0).map((p) => path.join(goroot, p));
  for (const d of ['doc/go_spec.html', 'doc/go_mem.html', 'README.md', 'CONTRIBUTING.md']) {
    files.push(path.join(goroot, d));
  }
  const lic = '/usr/share/common-licenses';
  for (const f of fs.readdirSync(lic).sort()) {
    const p = path.join(lic, f);
    if (fs.statSync(p).isFile()) files.push(p);
  }
  return files;
}

function main() {
  const out = process.argv[2] || path.join(__dirname, '..', 'tokenizer.json');
  const files = corpusFiles();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'longctx-train-'));
  const corpus = path.join(tmp, 'corpus.txt');
  const parts = files.map((f) => fs.readFileSync(f));
  fs.writeFileSync(corpus, Buffer.concat(parts));
  const bytes = parts.reduce((n, b) => n + b.length, 0);
  console.error(`train: ${files.length} files, ${bytes} bytes`);

  const t = new tk.Tokenizer(tk.BPE.empty());
  t.setPreTokenizer(tk.sequencePreTokenizer([
    tk.digitsPreTokenizer(true),
    tk.byteLevelPreTokenizer(false, true),
  ]));
  t.train([corpus]);
  const raw = path.join(tmp, 'raw.json');
  t.save(raw, false);
  const trained = JSON.parse(fs.readFileSync(raw, 'utf8'));
  fs.rmSync(tmp, { recursive: true });

  // Renumber: specials, then the byte alphabet seen in training (sorted by
  // byte value), then merge results in merge order, stopping at VOCAB.
  const vocab = {};
  let next = 0;
  const add = (tok) => { if (!(tok in vocab)) vocab[tok] = next++; };
  SPECIALS.forEach(add);
  const alphabet = tk.byteLevelAlphabet();
  const byteChars = []; // byte-level char for each byte value, GPT-2 order
  for (let b = 0; b < 256; b++) byteChars.push(byteToChar(b));
  for (const c of byteChars) if (c in trained.model.vocab) add(c);
  if (alphabet.length !== 256) throw new Error('unexpected byte-level alphabet size');
  const merges = [];
  for (const m of trained.model.merges) {
    if (next >= VOCAB) break;
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${a} ${b} uses an unknown part`);
    merges.push([a, b]);
    add(a + b);
  }

  const tokJSON = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, i) => ({
      id: i, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
  // Round-trip through the library so the file is exactly what it writes.
  const check = tk.Tokenizer.fromString(JSON.stringify(tokJSON));
  if (check.getVocabSize(true) !== next) throw new Error(`vocab size ${check.getVocabSize(true)} != ${next}`);
  check.save(out, true);
  console.error(`train: wrote ${out}: vocab ${next}, merges ${merges.length}, alphabet ${Object.keys(vocab).length - SPECIALS.length - merges.length}`);
}

// GPT-2 bytes_to_unicode.
function byteToChar(b) {
  if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) return String.fromCodePoint(b);
  let n = 0;
  for (let x = 0; x < b; x++) {
    if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) n++;
  }
  return String.fromCodePoint(256 + n);
}

main();
