#!/usr/bin/env bash
# Builds bench/eval_client_bench.cpp optimized and without sanitizers from the
# few sources it needs (no full release build), then runs it.
# Usage: bench/eval_client_bench.sh [GENERATED_DIR] [-- bench args...]
# GENERATED_DIR: any configured build tree's generated/ (for core/version_gen.h).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gen=${1:-$root/build/generated}
shift || true
[[ ${1:-} == -- ]] && shift
out=${TMPDIR:-/tmp}/kaival_eval_client_bench
g++ -std=c++20 -O2 -DNDEBUG -I"$root/src" -I"$gen" -o "$out" \
  "$root/bench/eval_client_bench.cpp" "$root/src/eval/http_client.cpp" "$root/src/eval/perf.cpp" \
  "$root/src/report/svg.cpp" "$root/src/core/text.cpp" \
  $(pkg-config --cflags --libs libcurl libutf8proc cpp-httplib) -lfmt -lpthread
"$out" "$@"
