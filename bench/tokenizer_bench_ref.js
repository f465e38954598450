#!/usr/bin/env node
// Reference side of bench/tokenizer_bench.sh: Hugging Face tokenizers (Rust,
// npm @anush008/tokenizers) encoding every line of CORPUS with
// addSpecialTokens, timed inside one process.
//   node bench/tokenizer_bench_ref.js TOKENIZER_JSON CORPUS MODE [REPEAT]
// MODE "single": encodeBatch over chunks of lines with TOKENIZERS_PARALLELISM
//   =false (the caller sets it), i.e. one Rust thread, no per-call overhead.
// MODE "batched": encodeBatch with Rust's thread pool (RAYON_NUM_THREADS).
// MODE "percall": await encode(line) for each line (the per-string API).
// Prints one JSON object like the kaival side; best of REPEAT runs.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', 'tools', 'npm', 'node_modules', '@anush008', 'tokenizers'));

async function main() {
  const [file, corpus, mode, repeatArg] = process.argv.slice(2);
  const repeat = Math.max(1, Number(repeatArg || 3));
  const tok = Tokenizer.fromFile(file);
  const text = fs.readFileSync(corpus, 'utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l, 'utf8'), 0);
  const chunk = 10000;
  let best = Infinity;
  let tokens = 0;
  for (let r = 0; r < repeat; r++) {
    tokens = 0;
    const t0 = process.hrtime.bigint();
    if (mode === 'percall') {
      for (const l of lines) tokens += (await tok.encode(l, null, { addSpecialTokens: true })).getLength();
    } else {
      for (let i = 0; i < lines.length; i += chunk) {
        const encs = await tok.encodeBatch(lines.slice(i, i + chunk), { addSpecialTokens: true });
        for (const e of encs) tokens += e.getLength();
      }
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, s);
  }
  console.log(JSON.stringify({
    impl: 'hf-tokenizers', mode, lines: lines.length, bytes, tokens,
    seconds: Number(best.toFixed(4)), mb_per_s: Number((bytes / best / 1e6).toFixed(3)),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
