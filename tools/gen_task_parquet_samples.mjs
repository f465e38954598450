// Writes the Parquet samples of the cards that read Parquet from the Hub: the Hub's own files
// (MMLU, ARC, GSM8K, MMLU-Pro) and its automatic conversion on refs/convert/parquet (KoBEST,
// HellaSwag, KorMedMCQA, CLIcK, HAE-RAE Bench, KMMLU-Pro/Redux; lm-evaluation-harness imports read the
// conversion too): each hand-written testdata/eval/<task>/<split>.jsonl becomes <split>.parquet with
// the Hub file's column types, written by DuckDB (DATA_PAGE v1, SNAPPY, like the
// pyarrow-written files on the Hub), then read back with hyparquet (an independent reader)
// and compared with the JSON Lines rows. The JSONL files stay: the tests count expected
// scores from them, and lm-evaluation-harness imports read them.
//
//   cd tools/npm-parquet && npm ci && cd ../.. && node tools/gen_task_parquet_samples.mjs
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const mods = join(here, 'npm-parquet', 'node_modules')
const load = (name, file) => import(pathToFileURL(join(mods, name, file)).href)
const { parquetReadObjects } = await load('hyparquet', 'src/index.js')
const { DuckDBInstance } = await load('@duckdb/node-api', 'lib/index.js')

const data = join(here, '..', 'testdata', 'eval')
// Column types of the Hub's files (datasets' ClassLabel `answer` is int64).
const samples = [
  { dir: 'mmlu_abstract_algebra', splits: ['test', 'dev'],
    types: { question: 'VARCHAR', subject: 'VARCHAR', choices: 'VARCHAR[]', answer: 'BIGINT' } },
  { dir: 'arc_challenge', splits: ['test'],
    types: { id: 'VARCHAR', question: 'VARCHAR', choices: 'STRUCT(text VARCHAR[], label VARCHAR[])', answerKey: 'VARCHAR' } },
  { dir: 'gsm8k', splits: ['test', 'train'], types: { question: 'VARCHAR', answer: 'VARCHAR' } },
  { dir: 'mmlu_pro', splits: ['test'],
    types: { question_id: 'BIGINT', question: 'VARCHAR', options: 'VARCHAR[]', answer: 'VARCHAR', answer_index: 'BIGINT',
             cot_content: 'VARCHAR', category: 'VARCHAR', src: 'VARCHAR' } },
  // The Hub's Parquet conversion (refs/convert/parquet, <config>/<split>/0000.parquet), read by the
  // cards below and by imported lm-evaluation-harness tasks: ClassLabel columns are int64.
  { dir: 'kobest_boolq', splits: ['test'], types: { paragraph: 'VARCHAR', question: 'VARCHAR', label: 'BIGINT' } },
  { dir: 'kobest_copa', splits: ['test'],
    types: { premise: 'VARCHAR', question: 'VARCHAR', alternative_1: 'VARCHAR', alternative_2: 'VARCHAR', label: 'BIGINT' } },
  { dir: 'kobest_hellaswag', splits: ['test'],
    types: { context: 'VARCHAR', ending_1: 'VARCHAR', ending_2: 'VARCHAR', ending_3: 'VARCHAR', ending_4: 'VARCHAR', label: 'BIGINT' } },
  { dir: 'kobest_sentineg', splits: ['test'], types: { sentence: 'VARCHAR', label: 'BIGINT' } },
  { dir: 'kobest_wic', splits: ['test'], types: { word: 'VARCHAR', context_1: 'VARCHAR', context_2: 'VARCHAR', label: 'BIGINT' } },
  { dir: 'hellaswag', splits: ['test'],
    types: { ind: 'BIGINT', activity_label: 'VARCHAR', ctx_a: 'VARCHAR', ctx_b: 'VARCHAR', ctx: 'VARCHAR', endings: 'VARCHAR[]',
             source_id: 'VARCHAR', split: 'VARCHAR', split_type: 'VARCHAR', label: 'VARCHAR' } },
  // KorMedMCQA's integer columns are written as int64 (their width in the Hub file is not verified).
  { dir: 'kormedmcqa_doctor', splits: ['test', 'dev'],
    types: { subject: 'VARCHAR', year: 'BIGINT', period: 'BIGINT', q_number: 'BIGINT', question: 'VARCHAR',
             A: 'VARCHAR', B: 'VARCHAR', C: 'VARCHAR', D: 'VARCHAR', E: 'VARCHAR', answer: 'BIGINT', cot: 'VARCHAR' } },
  { dir: 'click', splits: ['test'],
    types: { id: 'VARCHAR', paragraph: 'VARCHAR', question: 'VARCHAR', choices: 'VARCHAR[]', answer: 'VARCHAR' } },
  // HAE-RAE Bench 1.1 (general_knowledge): `options` is one string (a Python-style list), `answer` is "(A)".."(E)".
  { dir: 'haerae_bench', splits: ['test'], types: { query: 'VARCHAR', options: 'VARCHAR', answer: 'VARCHAR' } },
  // KMMLU-Pro/Redux (gated; the conversion of their JSON files): `solution` is the 1-based answer as a string in
  // the loaders that read it; the columns beyond question/options/solution are those the loaders name.
  { dir: 'kmmlu_pro', splits: ['test'],
    types: { question: 'VARCHAR', options: 'VARCHAR[]', solution: 'VARCHAR', license_name: 'VARCHAR', subject: 'VARCHAR' } },
  { dir: 'kmmlu_redux', splits: ['test'],
    types: { question: 'VARCHAR', options: 'VARCHAR[]', solution: 'VARCHAR', license_name: 'VARCHAR', category: 'VARCHAR' } },
]

const db = await DuckDBInstance.create(':memory:')
const con = await db.connect()
const sq = s => `'${s.replaceAll("'", "''")}'`
const plain = v => JSON.parse(JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? Number(x) : x)))
let failed = false
for (const { dir, splits, types } of samples) {
  for (const split of splits) {
    const src = join(data, dir, `${split}.jsonl`)
    const dst = join(data, dir, `${split}.parquet`)
    const rows = readFileSync(src, 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l))
    rmSync(dst, { force: true })
    const cols = Object.entries(types).map(([c, t]) => `${sq(c)}: ${sq(t)}`).join(', ')
    await con.run(`COPY (SELECT * FROM read_json(${sq(src)}, format = 'newline_delimited', columns = {${cols}}))
                   TO ${sq(dst)} (FORMAT parquet, COMPRESSION snappy)`)
    const back = plain(await parquetReadObjects({ file: new Uint8Array(readFileSync(dst)).buffer }))
    const same = JSON.stringify(back) === JSON.stringify(rows)
    if (!same) { failed = true; console.error(`${dst}: read back differs\n${JSON.stringify(back)}\n${JSON.stringify(rows)}`) }
    console.log(`${same ? 'ok  ' : 'FAIL'} ${dir}/${split}.parquet (${rows.length} rows)`)
  }
}
if (failed) process.exit(1)
