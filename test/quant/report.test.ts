// kiln quant-report on kq-f32 (two types, c 64, 2 chunks): the table's rows agree with perplexity and with each
// other's ordering, report.md and report.svg are written; a type llama.cpp cannot make for a model is reported as such.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../shared.js';
import { loadGGUF } from '../../src/gguf/model-file.js';
import { Model } from '../../src/generate/model.js';
import { perplexity } from '../../src/generate/generate.js';
import { quantReport, reportMarkdown } from '../../src/quant/report.js';
import { kiln } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-quant-report-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const textPath = sharedPath('data', 'text', 'tinystories-sample-197k.txt');
const kqPath = sharedPath('conformance', 'models', 'kq-f32.gguf');

test('kiln quant-report kq-f32 --types Q8_0,Q4_0 -c 64 --chunks 2 writes the table and the plot', async () => {
  const { stdout: table, stderr, status } = await kiln('quant-report', kqPath, '-f', textPath, '--types', 'Q8_0,Q4_0', '-c', '64', '--chunks', '2', '-o', dir);
  assert.equal(status, 0, stderr);
  // not a terminal: a progress line after the base logits and after each type, each type's result kept
  assert.match(stderr, /^kq-f32\.gguf: base logits over 2 chunks of 64 tokens\nstep 1\/3 \| /);
  assert.match(stderr, /Q4_0: [0-9.]+ MiB, PPL [0-9.]+, mean KLD [0-9.]+\nstep 3\/3 \| /);
  const rows = table.split('\n').filter((l) => /^\| (base|Q8_0|Q4_0) \|/.test(l)).map((l) => l.split('|').map((c) => c.trim()));
  assert.equal(rows.length, 3, table);
  const [base, q8, q4] = rows;
  // the base PPL is perplexity's over the same chunks
  const ppl = perplexity(Model.load(kqPath), readFileSync(textPath, 'utf8'), 64, 2).ppl;
  assert.equal(Number(base[4].split(' ')[0]), Number(ppl.toFixed(4)));
  assert.ok(Number(q8[2]) > Number(q4[2]), 'Q8_0 is larger than Q4_0');
  assert.ok(Number(q8[3]) > 8 && Number(q8[3]) < 9, `Q8_0 bpw ${q8[3]}`);
  const kld = (row: string[]) => Number(row[6].split(' ')[0]);
  assert.ok(kld(q8) > 0 && kld(q8) < kld(q4), `KLD Q8_0 ${kld(q8)}, Q4_0 ${kld(q4)}`);
  assert.ok(Number(q8[7].split(' ')[0]) >= Number(q4[7].split(' ')[0]), 'top-1 agreement');
  assert.equal(readFileSync(join(dir, 'report.md'), 'utf8').includes(table.trim()), true);
  const svg = readFileSync(join(dir, 'report.svg'), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, />Q8_0</);
  assert.match(svg, />Q4_0</);
  assert.equal(svg.match(/<circle /g)?.length, 5); // base + 2 against ΔPPL, 2 against KLD
  assert.match(svg, /<\/svg>\n$/);
});

test('a type whose blocks do not fit the model is reported as not made; a simulated scheme is sized as packed', async () => {
  const report = quantReport(loadGGUF(sharedPath('data', 'models', 'stories260K.gguf')), 'stories260K', readFileSync(textPath, 'utf8'), ['Q8_0', 'int8-channel'], { ctx: 32, maxChunks: 1 });
  assert.equal(report.rows[0].summary, undefined);
  assert.match(report.rows[0].error!, /rows of 172 values do not split into Q8_0 blocks/); // ffn_down, as llama.cpp refuses
  const int8 = report.rows[1];
  assert.equal(int8.simulated, true);
  assert.ok(int8.summary!.meanKld > 0 && int8.summary!.meanKld < 0.01, `int8 KLD ${int8.summary!.meanKld}`);
  // 8 bits per value + a float32 scale per row of 64 (or 172) values for the matrices; norms stay F32
  assert.ok(int8.bpw > 8.4 && int8.bpw < 8.7, `int8 bpw ${int8.bpw}`);
  const markdown = reportMarkdown(report);
  assert.match(markdown, /\| Q8_0 \| — .* not made: /);
  assert.match(markdown, /\| int8-channel \| [0-9.]+\* \| [0-9.]+\* \|/);
  const unknown = await kiln('quant-report', kqPath, '-f', textPath, '--types', 'Q9_X');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Q9_X/);
});
