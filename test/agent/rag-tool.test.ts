// rag_search in the agent loop: a scripted model calls it, and the result the loop hands back to the model holds
// sources whose paths are the indexed files and whose ranges are the cited text, for a text file and an HTML one.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { ragSearchTool } from '../../src/agent/rag-tool.js';
import { Rag } from '../../src/rag/rag.js';
import { htmlText } from '../../src/rag/chunk.js';
import { defaultModelPath } from '../../src/cli/default-model.js';
import { sharedPath } from '../shared.js';
import { ScriptedModel } from '../helpers/scripted-model.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-rag-tool-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('the agent calls rag_search and gets sources with real paths and ranges', async () => {
  const address = readFileSync(sharedPath('data', 'text', 'cs336-fixtures', 'address.txt'), 'utf8');
  const page = '<html><body><h1>Airships</h1><p>The zeppelin <b>Hindenburg</b> burned at Lakehurst &amp; was lost.</p></body></html>';
  writeFileSync(join(root, 'address.txt'), address);
  writeFileSync(join(root, 'airships.html'), page);
  const rag = await Rag.open({ db: join(root, 'store'), embedModel: defaultModelPath('embed') });
  try {
    await rag.index([join(root, 'address.txt'), join(root, 'airships.html')], { chunking: { size: 64, overlap: 8 } });
    const model = new ScriptedModel([
      { content: 'Let me look that up.', call: [['rag_search', { query: 'zeppelin Hindenburg' }], ['rag_search', { query: 'government of the people' }]] },
      { content: 'It burned at Lakehurst [1].' },
    ]);
    const result = await new Agent({ model, tools: [ragSearchTool(rag, 2)] }).run('Where did the Hindenburg burn?');
    assert.equal(result.answer, 'It burned at Lakehurst [1].');
    const [html, text] = result.steps[0].calls.map((c) => {
      assert.ok(c.ok, c.result);
      return JSON.parse(c.result) as { sources: { n: number; path: string; chunk: number; start: number; end: number; text: string }[] };
    });
    // the model saw the same result as the tool's answer to its call
    assert.equal(model.requests[1].messages.find((m) => m.role === 'tool')!.content, result.steps[0].calls[0].result);
    const top = html.sources[0];
    assert.equal(top.n, 1);
    assert.equal(top.path, join(root, 'airships.html'));
    assert.equal(htmlText(page.slice(top.start, top.end)).text, top.text);
    assert.match(page.slice(top.start, top.end), /<b>Hindenburg<\/b> burned at Lakehurst &amp; was lost/);
    assert.equal(text.sources.length, 2);
    for (const s of text.sources.filter((s) => s.path.endsWith('.txt'))) {
      assert.equal(s.path, join(root, 'address.txt'));
      assert.equal(address.slice(s.start, s.end), s.text);
    }
    assert.ok(text.sources.some((s) => s.path.endsWith('.txt') && s.text.includes('government of the people')));
  } finally {
    await rag.close();
  }
});
