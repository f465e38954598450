// llama.cpp baseline for bench/engine_bench.sh: the prebuilt llama.cpp of the
// npm package node-llama-cpp (CPU build, bench-only), on the same GGUF and the
// same token counts as `engine_bench run`. Prints one JSON line like it.
//   node bench/engine_bench_llama.mjs FILE [--threads 2] [--prompt 128] [--gen 32] [--rounds 2]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../tools/npm-llama/package.json"));
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);

const args = process.argv.slice(2);
const file = args[0];
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const threads = opt("--threads", 2), prompt = opt("--prompt", 128), gen = opt("--gen", 32), rounds = opt("--rounds", 2);

const t0 = performance.now();
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: true });
const context = await model.createContext({ contextSize: 512, batchSize: 512, threads, sequences: 1 });
const load = (performance.now() - t0) / 1000;

// The same pseudo-random ids as engine_bench (xorshift64, seed 42).
let s = 42n;
const mask = (1n << 64n) - 1n;
const next = () => {
  s ^= (s << 13n) & mask;
  s ^= s >> 7n;
  s ^= (s << 17n) & mask;
  return s;
};
const nvocab = BigInt(model.fileInfo.metadata.llama.vocab_size);
const ids = Array.from({ length: prompt }, () => Number(3n + (next() % (nvocab - 3n))));

let pp = 0, tg = 0;
const seq = context.getSequence();
for (let r = 0; r < rounds; r++) {
  await seq.clearHistory();
  let t = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(ids);
  pp = Math.max(pp, prompt / ((performance.now() - t) / 1000));
  // Greedy generation of `gen` tokens, one decode call per token.
  let last = ids[0];
  t = performance.now();
  for (let g = 0; g < gen; g++) {
    const res = await seq.controlledEvaluate([[last, { generateNext: { token: true, options: { temperature: 0 } } }]]);
    last = res[0].next.token;
  }
  tg = Math.max(tg, gen / ((performance.now() - t) / 1000));
}
const rss = fs.readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/)[1] / 1024;
console.log(JSON.stringify({ file, engine: "llama.cpp (node-llama-cpp " + JSON.parse(fs.readFileSync(path.join(here, "../tools/npm-llama/node_modules/node-llama-cpp/package.json"), "utf8")).version + ")",
  threads, prompt, gen, load_s: +load.toFixed(3), pp_tps: +pp.toFixed(2), tg_tps: +tg.toFixed(2), peak_rss_mb: +rss.toFixed(1) }));
await context.dispose();
await model.dispose();
await llama.dispose();
