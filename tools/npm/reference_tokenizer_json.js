#!/usr/bin/env node
// Reference ids for a tokenizer.json kaival ships as a test fixture (e.g. the
// Unigram model of tools/gen_unigram_fixture.py): encodes each text of a JSON
// array with Hugging Face's Rust tokenizers (npm @anush008/tokenizers) and
// prints JSON lines in the format of reference_ids.js: {"meta": ...}, then
// {"text", "ids", "decoded", "decoded_skip"} per text.
//
// Usage: node tools/npm/reference_tokenizer_json.js TOKENIZER_JSON TEXTS_JSON
// Test-only tool: never a product dependency.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

async function main() {
  const [file, textsFile] = process.argv.slice(2);
  if (!file || !textsFile) throw new Error('usage: reference_tokenizer_json.js TOKENIZER_JSON TEXTS_JSON');
  const tok = Tokenizer.fromFile(file);
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  const ref = require(path.join(__dirname, 'node_modules', '@anush008', 'tokenizers', 'package.json'));
  const lines = [JSON.stringify({
    meta: {
      tokenizer: path.basename(path.dirname(file)) + '/' + path.basename(file),
      reference: `@anush008/tokenizers@${ref.version} (Hugging Face tokenizers, Rust)`,
      encode: 'encode(text, null, {addSpecialTokens: true})', count: texts.length,
    },
  })];
  for (const text of texts) {
    const ids = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    lines.push(JSON.stringify({
      text, ids, decoded: await tok.decode(ids, false), decoded_skip: await tok.decode(ids, true),
    }));
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => { console.error(e.message); process.exit(1); });
