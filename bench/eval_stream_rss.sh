#!/usr/bin/env bash
# Peak RSS of `kaival eval` on a generated generate_until task of ROWS JSONL rows against the
# mock server (bench/eval_mock_serve.cpp, built here with -O2), for each --window given:
# the default window (streaming) and a window larger than the dataset (every row and request
# held at once, as the runner did before it streamed). A window written N:noprefetch runs with
# --no-prefetch (one window in memory; the default reads the next window while one is scored).
# Usage: bench/eval_stream_rss.sh KAIVAL_BIN GENERATED_DIR [ROWS] [WINDOW[:noprefetch]...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1 gen=$2 rows=${3:-200000}
shift 3 || shift $#
windows=("$@")
[[ ${#windows[@]} -gt 0 ]] || windows=(0 $((rows + 1)))
work=${TMPDIR:-/tmp}/kaival_eval_stream_rss
rm -rf "$work" && mkdir -p "$work"
g++ -std=c++20 -O2 -DNDEBUG -I"$root/src" -I"$gen" -o "$work/mock" "$root/bench/eval_mock_serve.cpp" \
  $(pkg-config --cflags --libs cpp-httplib) -lpthread
python3 - "$work" "$rows" <<'PY'
import json, sys
work, rows = sys.argv[1], int(sys.argv[2])
with open(f"{work}/rows.jsonl", "w") as f:
    for i in range(rows):
        kind = "odd" if i % 2 else "even"
        f.write(json.dumps({"id": f"r{i}", "q": f"item {i} kind {kind} " + "padding " * 20,
                            "a": "no" if i % 2 else "yes"}) + "\n")
with open(f"{work}/task.yaml", "w") as f:
    f.write('schema: kaival.task/1\nname: stream_rss\nversion: "1.0"\n'
            'splits:\n  test: {path: rows.jsonl, format: jsonl}\n'
            'request: generate_until\ndoc_id: "{{ id }}"\nprompt: "Q: {{ q }}\\nA:"\ntarget: "{{ a }}"\n'
            'generation: {max_tokens: 4}\nmetrics: [exact_match]\n')
PY
echo "dataset: $rows rows, $(du -h "$work/rows.jsonl" | cut -f1)"
coproc MOCK { "$work/mock" --keep-alive; }
read -r url <&"${MOCK[0]}"
for spec in "${windows[@]}"; do
  w=${spec%%:*} extra=()
  [[ $spec == *:noprefetch ]] && extra=(--no-prefetch)
  rm -rf "$work/out"
  /usr/bin/time -f "%M %e" -o "$work/time" "$bin" eval --model "$url" --task "$work/task.yaml" --out "$work/out" \
    --concurrency 8 --window "$w" --no-progress "${extra[@]}" > "$work/table"
  read -r kb secs < "$work/time"
  em=$(python3 -c "import json;print(json.load(open('$work/out/results.json'))['results']['stream_rss']['exact_match,none'])")
  echo "window $spec: peak RSS $((kb / 1024)) MiB, $secs s, exact_match $em, samples $(wc -l < "$work/out/samples_stream_rss.jsonl")"
done
exec {MOCK[1]}>&-
wait
