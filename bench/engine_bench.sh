#!/usr/bin/env bash
# Engine speed vs llama.cpp on the same GGUF files, same machine, same run.
#   bench/engine_bench.sh [BUILD_DIR] [DIR] [PROMPT] [GEN] [THREADS...]
# Writes random Llama-shaped ~0.7B GGUF files (F16, Q8_0, Q4_K) into DIR once,
# then for each file and thread count prints one JSON line from kaival
# (BUILD_DIR/engine_bench run) and one from llama.cpp (node-llama-cpp's
# prebuilt CPU build, bench/engine_bench_llama.mjs). node-llama-cpp is
# installed on demand into tools/npm-llama (bench-only, ~700 MB with the
# optional GPU builds npm also fetches). ROUNDS=N (default 1) makes both
# engines report their best of N rounds, which damps a noisy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DIR=${2:-/tmp/kaival-engine-bench}
PROMPT=${3:-64}
GEN=${4:-16}
shift $(( $# < 4 ? $# : 4 ))
THREADS=("${@:-2}")
ROUNDS=${ROUNDS:-1}
[[ ${#THREADS[@]} -gt 0 ]] || THREADS=(2)
mkdir -p "$DIR"
[[ -f "$DIR/llama-Q4_K.gguf" ]] || "$BUILD/engine_bench" write "$DIR"
if [[ ! -d tools/npm-llama/node_modules/node-llama-cpp ]]; then
  (cd tools/npm-llama && npm install --no-audit --no-fund --loglevel=error)
fi
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${THREADS[@]}"; do
  for q in F16 Q8_0 Q4_K; do
    f="$DIR/llama-$q.gguf"
    "$BUILD/engine_bench" run "$f" --threads "$t" --prompt "$PROMPT" --gen "$GEN" --rounds "$ROUNDS"
    node bench/engine_bench_llama.mjs "$f" --threads "$t" --prompt "$PROMPT" --gen "$GEN" --rounds "$ROUNDS"
  done
done
echo "# done, load: $(cut -d' ' -f1-3 /proc/loadavg)"
