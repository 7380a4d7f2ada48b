// Text out of a file, and that text cut into chunks of about `size` tokens, each overlapping the one before by
// about `overlap` tokens. Chunks are cut between words, so each is a character range [start, end) of the text
// that a citation can point at; a word's token count comes from the embedding model's tokenizer.

import { extname } from 'node:path';

export const TEXT_EXTENSIONS = ['.txt', '.md', '.markdown', '.html', '.htm'];

export class NotTextError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`skipped ${path}: ${reason}`);
    this.name = 'NotTextError';
  }
}

/** The text of a file's bytes: UTF-8 decoded (a NotTextError if binary or undecodable), HTML reduced to its text. */
export function extractText(path: string, bytes: Uint8Array): string {
  const ext = extname(path).toLowerCase();
  if (!TEXT_EXTENSIONS.includes(ext)) throw new NotTextError(path, `not a text file kiln indexes (${TEXT_EXTENSIONS.join(', ')})`);
  if (bytes.subarray(0, 8192).includes(0)) throw new NotTextError(path, 'binary (it holds NUL bytes)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new NotTextError(path, 'not valid UTF-8');
  }
  return ext === '.html' || ext === '.htm' ? htmlText(text) : text;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** An HTML document's visible text: scripts, styles and comments dropped, block ends as newlines, entities decoded. */
export function htmlText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<\/?(p|div|br|li|h[1-6]|tr|section|article|pre|blockquote)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, name: string) => {
      if (name[0] === '#') {
        const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : Number(name.slice(1));
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
      }
      return ENTITIES[name.toLowerCase()] ?? m;
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

export interface ChunkOptions {
  /** tokens per chunk */
  size: number;
  /** tokens shared with the chunk before */
  overlap: number;
}

export interface TextChunk {
  start: number;
  end: number;
  text: string;
}

export class ChunkOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkOptionsError';
  }
}

export function checkChunkOptions({ size, overlap }: ChunkOptions): void {
  if (!Number.isInteger(size) || size < 1) throw new ChunkOptionsError(`chunk size must be a positive number of tokens, not ${size}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= size) throw new ChunkOptionsError(`chunk overlap must be 0 to ${size - 1} tokens, not ${overlap}`);
}

/**
 * Cuts `text` into chunks of at most `size` tokens (a longer word is a chunk of its own), each starting about
 * `overlap` tokens before the end of the one before. `countTokens` counts one word's tokens.
 */
export function chunkText(text: string, countTokens: (word: string) => number, options: ChunkOptions): TextChunk[] {
  checkChunkOptions(options);
  const words = [...text.matchAll(/\S+/g)].map((m) => ({ start: m.index, end: m.index + m[0].length, tokens: countTokens(m[0]) }));
  const chunks: TextChunk[] = [];
  for (let first = 0; first < words.length;) {
    let last = first;
    let tokens = words[first].tokens;
    while (last + 1 < words.length && tokens + words[last + 1].tokens <= options.size) tokens += words[++last].tokens;
    const start = words[first].start;
    const end = words[last].end;
    chunks.push({ start, end, text: text.slice(start, end) });
    if (last + 1 >= words.length) break;
    // the next chunk begins with the last words of this one that fit in `overlap` tokens (always moving forward)
    let next = last + 1;
    for (let shared = 0; next - 1 > first && shared + words[next - 1].tokens <= options.overlap;) shared += words[--next].tokens;
    first = next;
  }
  return chunks;
}
