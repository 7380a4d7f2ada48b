// Indexing files into the store and searching and asking it, on PGlite and over the PostgreSQL wire, with the
// default model as the embedding model: chunks point at their text, re-indexing embeds only what changed, a
// deleted file leaves no rows, non-text files are skipped with a reason, a missing path is an error naming it,
// hybrid search finds a chunk by a word only it holds, and `ask` cites ranges that are real text.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_VECTOR_WEIGHT, Rag, reciprocalRankFusion } from '../../src/rag/rag.js';
import { MissingPathError } from '../../src/rag/ingest.js';
import { chunkText, ChunkOptionsError, htmlText } from '../../src/rag/chunk.js';
import { defaultModelPath } from '../../src/cli/default-model.js';
import { sharedPath } from '../shared.js';
import { startWireServer, type WireServer } from '../helpers/pg-wire.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-rag-ingest-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('chunks: at most `size` tokens, overlapping by at most `overlap`, each the text of its range', () => {
  const text = 'one two  three four\nfive six seven eight nine ten';
  const chunks = chunkText(text, () => 1, { size: 4, overlap: 1 });
  assert.deepEqual(chunks.map((c) => c.text), ['one two  three four', 'four\nfive six seven', 'seven eight nine ten']);
  for (const c of chunks) assert.equal(text.slice(c.start, c.end), c.text);
  assert.throws(() => chunkText(text, () => 1, { size: 4, overlap: 4 }), ChunkOptionsError);
});

test('HTML: scripts, styles and tags dropped, entities decoded; each character maps back to the markup it came from', () => {
  const html = '<html><head><title>t</title></head><body><p>Tea &amp; cakes&#33;</p> \n<script>var x;</script><div>at&nbsp;noon</div></body></html>';
  const { text, source } = htmlText(html);
  assert.equal(text, 'Tea & cakes!\n\nat noon');
  assert.equal(html.slice(...source(0, 12)), 'Tea &amp; cakes&#33;');
  assert.equal(html.slice(...source(4, 5)), '&amp;');
  assert.equal(html.slice(...source(14, 21)), 'at&nbsp;noon');
  assert.equal(html.slice(...source(11, 16)), '&#33;</p> \n<script>var x;</script><div>at');
});

/** whitespace runs as one space, for comparing an HTML range's text with a chunk's */
const squeeze = (text: string) => text.replace(/\s+/g, ' ').trim();

test('reciprocal-rank fusion: a chunk ranked in both lists beats one ranked first in only one', () => {
  const hit = (id: number) => ({ id, path: 'p', ordinal: 0, start: 0, end: 0, text: '', score: 0 });
  const fused = reciprocalRankFusion([[hit(1), hit(2), hit(3)], [hit(2), hit(3)]]);
  assert.deepEqual(fused.map((h) => h.id), [2, 3, 1]); // 1/62 + 1/61 > 1/63 + 1/62 > 1/61
  assert.ok(Math.abs(fused[0].score - (1 / 62 + 1 / 61)) < 1e-12);
  // weighted as hybrid search weighs a weak embedding model: the vectors' first choice goes first if full text
  // ranks it 4th, second if 5th; one only the vectors found stays below all 50 full-text candidates
  const text = Array.from({ length: 50 }, (_, i) => hit(100 + i));
  const weighted = (first: number) => reciprocalRankFusion([[hit(first), hit(1)], text], [DEFAULT_VECTOR_WEIGHT, 1]).map((h) => h.id);
  assert.deepEqual(weighted(103).slice(0, 2), [103, 100]);
  assert.deepEqual(weighted(104).slice(0, 2), [100, 104]);
  assert.equal(weighted(103).at(-1), 1);
});

for (const backend of ['pglite', 'wire'] as const) {
  describe(`Rag index, search and ask (${backend})`, () => {
    const docs = join(root, `docs-${backend}`);
    let server: WireServer | undefined;
    let rag: Rag;
    let embedded: string[] = [];
    const address = readFileSync(sharedPath('data', 'text', 'cs336-fixtures', 'address.txt'), 'utf8');
    const story = readFileSync(sharedPath('data', 'text', 'cs336-fixtures', 'tinystories_sample.txt'), 'utf8').replace(/<\|endoftext\|>/g, '');
    // several chunks of markup: paragraphs with entities, a script, a comment
    const page = `<html><head><title>Airships</title><style>p { color: red }</style></head><body>
      <h1>The zeppelin</h1><p>The zeppelin landed at Lakehurst &amp; burned.</p><!-- draft -->
      ${address.split(/(?<=\.) /).map((s) => `<p>${s.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}</p><script>track(1)</script>`).join('\n')}
      </body></html>`;

    before(async () => {
      mkdirSync(join(docs, 'sub'), { recursive: true });
      writeFileSync(join(docs, 'address.txt'), address);
      writeFileSync(join(docs, 'sub', 'story.md'), story);
      writeFileSync(join(docs, 'page.html'), page);
      writeFileSync(join(docs, 'blob.txt'), Buffer.from([0x41, 0x00, 0x42]));
      writeFileSync(join(docs, 'latin1.md'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
      writeFileSync(join(docs, 'image.png'), Buffer.from([0x89, 0x50]));
      if (backend === 'wire') server = await startWireServer();
      rag = await Rag.open({ db: server?.url ?? join(root, `store-${backend}`), embedModel: defaultModelPath() });
      const embed = rag.embedder.embed.bind(rag.embedder);
      rag.embedder.embed = (texts) => { embedded.push(...texts); return embed(texts); };
    });
    after(async () => {
      await rag?.close();
      await server?.stop();
    });

    test('indexes the text files (folders recursively), skipping non-text ones with a reason', async () => {
      const skipped: string[] = [];
      const report = await rag.index([docs], { chunking: { size: 48, overlap: 8 }, onSkip: (path, reason) => skipped.push(`${path}: ${reason}`) });
      assert.deepEqual(report.indexed.map((p) => p.slice(docs.length + 1)), ['address.txt', 'page.html', 'sub/story.md']);
      assert.deepEqual(skipped, [`${join(docs, 'blob.txt')}: binary (it holds NUL bytes)`, `${join(docs, 'latin1.md')}: not valid UTF-8`]);
      assert.equal(report.chunks, embedded.length);
      assert.equal(await rag.store.chunkCount(), embedded.length);
    });

    test('each chunk is the text of its character range, within the chunk size', async () => {
      const rows = await rag.store.sql.query<{ path: string; start_char: number; end_char: number; text: string }>(
        'SELECT f.path, c.start_char, c.end_char, c.text FROM kiln_rag_chunks c JOIN kiln_rag_files f ON f.id = c.file_id');
      const files = new Map([[join(docs, 'address.txt'), address], [join(docs, 'sub', 'story.md'), story]]);
      assert.ok(rows.filter((r) => r.path.endsWith('page.html')).length >= 3);
      for (const r of rows) {
        // an HTML chunk's range is the markup its text came from: that markup's text is the chunk's
        if (r.path.endsWith('page.html')) assert.equal(squeeze(htmlText(page.slice(r.start_char, r.end_char)).text), squeeze(r.text));
        else assert.equal(files.get(r.path)!.slice(r.start_char, r.end_char), r.text);
        assert.ok(rag.embedder.model.tokenizer.encode(r.text, { addSpecial: false }).length <= 48 + 8, r.text);
      }
    });

    test('re-indexing after editing one file embeds only its chunks; a deleted file leaves no rows', async () => {
      const before = await rag.store.sql.query<{ id: string }>("SELECT c.id FROM kiln_rag_chunks c JOIN kiln_rag_files f ON f.id = c.file_id WHERE f.path LIKE '%story.md'");
      writeFileSync(join(docs, 'address.txt'), `${address}\nAnd the people applauded.`);
      unlinkSync(join(docs, 'page.html'));
      embedded = [];
      const report = await rag.index([docs], { chunking: { size: 48, overlap: 8 } });
      assert.deepEqual(report.indexed, [join(docs, 'address.txt')]);
      assert.deepEqual(report.removed, [join(docs, 'page.html')]);
      assert.equal(report.unchanged, 1);
      const addressChunks = await rag.store.sql.query<{ text: string }>("SELECT c.text FROM kiln_rag_chunks c JOIN kiln_rag_files f ON f.id = c.file_id WHERE f.path LIKE '%address.txt' ORDER BY c.ordinal");
      assert.deepEqual(embedded, addressChunks.map((c) => c.text));
      const after = await rag.store.sql.query<{ id: string }>("SELECT c.id FROM kiln_rag_chunks c JOIN kiln_rag_files f ON f.id = c.file_id WHERE f.path LIKE '%story.md'");
      assert.deepEqual(after, before); // the unchanged file's rows are the same rows
      const [{ n }] = await rag.store.sql.query<{ n: string }>("SELECT count(*) AS n FROM kiln_rag_chunks WHERE text LIKE '%zeppelin%'");
      assert.equal(Number(n), 0);
      assert.ok((await rag.store.files()).every((f) => !f.path.endsWith('page.html')));
    });

    test('a missing path is an error naming it, and nothing is removed (not even with reindex)', async () => {
      const count = await rag.store.chunkCount();
      for (const reindex of [false, true]) {
        await assert.rejects(rag.index([docs, join(root, 'nowhere')], { reindex }), (e: Error) => e instanceof MissingPathError && e.message.includes(join(root, 'nowhere')));
        assert.equal(await rag.store.chunkCount(), count);
      }
    });

    test('hybrid search puts the only chunk holding a word first (both rankings hold it); every mode returns k hits', async () => {
      const [top] = await rag.search('applauded', { k: 3 });
      assert.ok(top.text.includes('applauded'), top.text);
      for (const mode of ['vector', 'lexical', 'hybrid'] as const) assert.equal((await rag.search('Lily and the dog played', { k: 4, mode })).length, 4);
      const reranked = await rag.search('Lily and the dog played', { k: 4, rerank: true });
      assert.ok(reranked[0].score >= reranked[3].score);
    });

    test('ask answers on the default chat model with sources whose ranges are real text', async () => {
      const { answer, sources } = await rag.ask('Who said that all men are created equal?', { model: defaultModelPath(), sampling: { max_tokens: 12 } });
      assert.ok(answer.length > 0);
      assert.ok(sources.length >= 1);
      sources.forEach((s, i) => {
        assert.equal(s.n, i + 1);
        const text = s.path.endsWith('address.txt') ? `${address}\nAnd the people applauded.` : story;
        assert.ok(text.slice(s.start, s.end).startsWith(s.text), s.text);
      });
    });
  });
}
