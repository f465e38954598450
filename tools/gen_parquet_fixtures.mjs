// Writes the Parquet fixtures under testdata/eval/parquet/ with two INDEPENDENT writers (not
// kaival's code), so src/eval/parquet.cpp is tested against files it did not write:
//   - hyparquet-writer (npm): DATA_PAGE_V2 pages, dictionary or PLAIN, SNAPPY / UNCOMPRESSED /
//     GZIP (node's zlib as its compressor) / ZSTD (the zstd CLI as its compressor);
//   - DuckDB (npm @duckdb/node-api, the engine's own C++ writer): DATA_PAGE (v1) pages with
//     RLE_DICTIONARY or PLAIN, SNAPPY / ZSTD / GZIP / UNCOMPRESSED, lists and structs, like
//     the pyarrow-written files on the Hugging Face Hub.
// Every file is read back with hyparquet (npm, an independent reader) and must equal the source
// rows, which are written next to it as <name>.expected.jsonl for the C++ tests.
//
//   cd tools/npm-parquet && npm ci && cd ../.. && node tools/gen_parquet_fixtures.mjs
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gunzipSync, gzipSync } from 'node:zlib'

const here = dirname(fileURLToPath(import.meta.url))
const mods = join(here, 'npm-parquet', 'node_modules')
const load = (name, file) => import(pathToFileURL(join(mods, name, file)).href)
const { parquetWriteBuffer } = await load('hyparquet-writer', 'src/index.js')
const { parquetReadObjects, parquetMetadata } = await load('hyparquet', 'src/index.js')
const { DuckDBInstance } = await load('@duckdb/node-api', 'lib/index.js')

const out = join(here, '..', 'testdata', 'eval', 'parquet')
mkdirSync(out, { recursive: true })

// ---- source rows ----------------------------------------------------------------------------
const mmlu = [
  { question: 'Find the order of the element 2 in Z_5 under addition.', subject: 'abstract_algebra', choices: ['1', '2', '5', '10'], answer: 2n },
  { question: '대한민국의 수도는 어디입니까?', subject: 'korean_geography', choices: ['부산', '서울', '대구', '인천'], answer: 1n },
  { question: 'Is every group of prime order cyclic?', subject: 'abstract_algebra', choices: ['Yes', 'No', 'Only for p = 2', 'Only for odd p'], answer: 0n },
  { question: '다음 중 "한글"을 만든 왕은?\n(줄바꿈 포함)', subject: 'korean_history', choices: ['세종대왕', '태조', '정조', '광개토대왕'], answer: 0n },
  { question: 'Quotes "inside", a tab\tand emoji 🙂 — ok?', subject: 'abstract_algebra', choices: ['a', '', 'ç', '😀😀'], answer: 3n },
  { question: 'Which is a field?', subject: 'abstract_algebra', choices: ['Z_4', 'Z_6', 'Z_7', 'Z_8'], answer: 2n },
]
const gsm8k = [
  { question: 'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to her friends in May. How many clips did Natalia sell altogether in April and May?', answer: 'Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72' },
  { question: '철수는 사과 3개를 가지고 있고 영희는 철수보다 4개 더 많이 가지고 있습니다. 둘이 가진 사과는 모두 몇 개입니까?', answer: '영희는 3+4 = <<3+4=7>>7개를 가지고 있습니다.\n모두 3+7 = <<3+7=10>>10개입니다.\n#### 10' },
  { question: 'Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?', answer: 'Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10' },
]
// Optional columns: nulls at the top level and inside lists, empty lists, null lists.
const nulls = [
  { id: 1, score: 0.5, flag: true, label: '가', tags: ['x', 'y'], big: 9007199254740993n },
  { id: null, score: null, flag: null, label: null, tags: null, big: null },
  { id: -3, score: -1.25, flag: false, label: '', tags: [], big: -1n },
  { id: 2147483647, score: 1e300, flag: true, label: 'ü', tags: ['z', null, '한'], big: -9223372036854775808n },
  { id: 0, score: 0, flag: false, label: null, tags: [null], big: 0n },
]

const mmluSchema = [
  { name: 'root', num_children: 4 },
  { name: 'question', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'subject', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'choices', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'answer', type: 'INT64', repetition_type: 'REQUIRED' },
]
const gsmSchema = [
  { name: 'root', num_children: 2 },
  { name: 'question', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'answer', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
]
const nullSchema = [
  { name: 'root', num_children: 6 },
  { name: 'id', type: 'INT32', repetition_type: 'OPTIONAL' },
  { name: 'score', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
  { name: 'flag', type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
  { name: 'label', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'tags', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'big', type: 'INT64', repetition_type: 'OPTIONAL' },
]

const zstd = bytes => {
  const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: Buffer.from(bytes) })
  if (r.status !== 0) throw new Error('zstd CLI failed: ' + r.stderr)
  return new Uint8Array(r.stdout)
}
const compressors = { GZIP: b => new Uint8Array(gzipSync(b)), ZSTD: zstd }

const columns = (rows, schema, extra = {}) =>
  schema.slice(1).filter(e => e.repetition_type !== 'REPEATED' && !['element'].includes(e.name))
    .map(e => ({ name: e.name, data: rows.map(r => r[e.name]), ...(extra[e.name] ?? {}) }))

const written = []
function hyparquet(name, rows, schema, opts = {}, colOpts = {}) {
  const buf = parquetWriteBuffer({ columnData: columns(rows, schema, colOpts), schema, compressors, ...opts })
  writeFileSync(join(out, name), new Uint8Array(buf))
  written.push({ name, rows })
}

// JSON with BigInts written as exact integers (kaival reads INT64 exactly).
const toJson = v => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? `@@${x}@@` : x === undefined ? null : x)).replace(/"@@(-?\d+)@@"/g, '$1')

// ---- hyparquet-writer: DATA_PAGE_V2 -----------------------------------------------------------
hyparquet('mmlu_v2_snappy.parquet', mmlu, mmluSchema)  // default codec SNAPPY, dictionary where it pays
hyparquet('mmlu_v2_plain_uncompressed.parquet', mmlu, mmluSchema, { codec: 'UNCOMPRESSED' },
  { question: { encoding: 'PLAIN' }, subject: { encoding: 'PLAIN' }, choices: { encoding: 'PLAIN' }, answer: { encoding: 'PLAIN' } })
hyparquet('mmlu_v2_dict_gzip.parquet', mmlu, mmluSchema, { codec: 'GZIP' },
  { question: { encoding: 'RLE_DICTIONARY' }, subject: { encoding: 'RLE_DICTIONARY' }, choices: { encoding: 'RLE_DICTIONARY' }, answer: { encoding: 'RLE_DICTIONARY' } })
hyparquet('mmlu_v2_zstd_groups.parquet', mmlu, mmluSchema, { codec: 'ZSTD', rowGroupSize: 2, pageSize: 64 })
hyparquet('gsm8k_v2_snappy.parquet', gsm8k, gsmSchema)
hyparquet('nulls_v2_snappy.parquet', nulls, nullSchema, {}, { flag: { encoding: 'RLE' } })
hyparquet('nulls_v2_uncompressed.parquet', nulls, nullSchema, { codec: 'UNCOMPRESSED' },
  { id: { encoding: 'PLAIN' }, score: { encoding: 'PLAIN' }, flag: { encoding: 'PLAIN' }, label: { encoding: 'PLAIN' }, tags: { encoding: 'PLAIN' }, big: { encoding: 'PLAIN' } })

// ---- DuckDB: DATA_PAGE v1 ---------------------------------------------------------------------
const db = await DuckDBInstance.create(':memory:')
const con = await db.connect()
const sq = s => `'${s.replaceAll("'", "''")}'`
const lit = v => v === null ? 'NULL' : typeof v === 'bigint' ? sq(String(v)) : typeof v === 'number' ? String(v) : typeof v === 'boolean' ? String(v)
  : Array.isArray(v) ? `[${v.map(lit).join(', ')}]` : sq(v)
async function duck(name, rows, sqlTypes, codec, extra = '') {
  const cols = Object.keys(sqlTypes)
  const values = rows.map(r => `(${cols.map(c => `${lit(r[c])}::${sqlTypes[c]}`).join(', ')})`).join(',\n')
  const path = join(out, name)
  rmSync(path, { force: true })
  await con.run(`COPY (SELECT * FROM (VALUES ${values}) t(${cols.map(c => `"${c}"`).join(', ')})) TO ${sq(path)} (FORMAT parquet, COMPRESSION ${codec}${extra})`)
  written.push({ name, rows })
}
const mmluTypes = { question: 'VARCHAR', subject: 'VARCHAR', choices: 'VARCHAR[]', answer: 'BIGINT' }
await duck('mmlu_v1_snappy.parquet', mmlu, mmluTypes, 'snappy')
await duck('mmlu_v1_zstd.parquet', mmlu, mmluTypes, 'zstd')
await duck('mmlu_v1_gzip.parquet', mmlu, mmluTypes, 'gzip')
await duck('mmlu_v1_uncompressed.parquet', mmlu, mmluTypes, 'uncompressed')
const nullTypes = { id: 'INTEGER', score: 'DOUBLE', flag: 'BOOLEAN', label: 'VARCHAR', tags: 'VARCHAR[]', big: 'BIGINT' }
await duck('nulls_v1_snappy.parquet', nulls, nullTypes, 'snappy')
// Repetitive columns, so that DuckDB picks dictionary encoding (RLE_DICTIONARY, v1 pages).
const subjects = ['abstract_algebra', '한국사', 'anatomy']
const dict = Array.from({ length: 200 }, (_, i) => ({ subject: subjects[i % 3], level: i % 5, choices: [subjects[(i + 1) % 3], subjects[(i + 2) % 3]], note: i % 7 === 0 ? null : `item ${i % 10}` }))
await duck('dict_v1_snappy.parquet', dict, { subject: 'VARCHAR', level: 'INTEGER', choices: 'VARCHAR[]', note: 'VARCHAR' }, 'snappy')
await duck('dict_v1_zstd.parquet', dict, { subject: 'VARCHAR', level: 'INTEGER', choices: 'VARCHAR[]', note: 'VARCHAR' }, 'zstd')
// ARC-shaped: choices is a struct of two lists.
const arc = [
  { id: 'Mercury_7175875', question: 'An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?', choices: { text: ['Planetary density will decrease.', 'Planetary years will become longer.', 'Planetary days will become shorter.', 'Planetary gravity will become stronger.'], label: ['A', 'B', 'C', 'D'] }, answerKey: 'C' },
  { id: 'kaival_ko_1', question: '물이 얼면 부피는 어떻게 됩니까?', choices: { text: ['줄어든다', '늘어난다', '변하지 않는다'], label: ['1', '2', '3'] }, answerKey: '2' },
]
{
  const values = arc.map(r => `(${sq(r.id)}, ${sq(r.question)}, {'text': ${lit(r.choices.text)}, 'label': ${lit(r.choices.label)}}, ${sq(r.answerKey)})`).join(',\n')
  const path = join(out, 'arc_v1_snappy.parquet')
  rmSync(path, { force: true })
  await con.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, question, choices, "answerKey")) TO ${sq(path)} (FORMAT parquet, COMPRESSION snappy)`)
  written.push({ name: 'arc_v1_snappy.parquet', rows: arc })
}

// ---- cross-check with hyparquet and write the expected rows ------------------------------------
const unzstd = bytes => new Uint8Array(spawnSync('zstd', ['-q', '-d', '-c'], { input: Buffer.from(bytes) }).stdout)
const decompressors = { GZIP: b => new Uint8Array(gunzipSync(b)), ZSTD: unzstd }
for (const { name, rows } of written) {
  const bytes = readFileSync(join(out, name))
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  const meta = parquetMetadata(file)
  const got = await parquetReadObjects({ file, compressors: decompressors, utf8: true })
  const a = toJson(got), b = toJson(rows)
  if (a !== b) throw new Error(`${name}: hyparquet reads back\n${a}\nnot\n${b}`)
  const codecs = [...new Set(meta.row_groups.flatMap(g => g.columns.map(c => c.meta_data.codec)))]
  const pages = [...new Set(meta.row_groups.flatMap(g => g.columns.flatMap(c => c.meta_data.encodings)))]
  writeFileSync(join(out, name.replace('.parquet', '.expected.jsonl')), rows.map(toJson).join('\n') + '\n')
  console.log(`${name}: ${bytes.length} bytes, ${meta.row_groups.length} row groups, ${codecs.join(',')}, ${pages.join(' ')}, by ${meta.created_by}`)
}
