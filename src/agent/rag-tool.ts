// rag_search: the agent's way into a `kiln rag` store. It runs the store's hybrid search and returns the chunks
// as JSON sources, numbered as citations [n], each with its file, chunk number and character range, so an answer
// built from them can cite text a person can check.

import type { AgentTool } from './agent.js';
import type { Rag } from '../rag/rag.js';

/** rag_search over `rag` (opened and closed by the caller), `k` chunks a query */
export function ragSearchTool(rag: Rag, k = 3): AgentTool {
  return {
    name: 'rag_search',
    description: `Searches the indexed documents; returns the ${k} best-matching passages as sources [n] with their file and character range. Cite them as [n].`,
    parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'], additionalProperties: false },
    run: async ({ query }) => {
      if (typeof query !== 'string' || query.trim() === '') throw new Error('query must be a non-empty string');
      const hits = await rag.search(query, { k });
      return JSON.stringify({ sources: hits.map((h, i) => ({ n: i + 1, path: h.path, chunk: h.ordinal, start: h.start, end: h.end, text: h.text })) });
    },
  };
}
