// Text out of a file, and that text cut into chunks of about `size` tokens, each overlapping the one before by
// about `overlap` tokens. Chunks are cut between words, so each is a character range [start, end) of the text,
// which ExtractedText maps to the range of the file a citation points at; a word's token count comes from the
// embedding model's tokenizer.

import { extname } from 'node:path';

export const TEXT_EXTENSIONS = ['.txt', '.md', '.markdown', '.html', '.htm'];

export class NotTextError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`skipped ${path}: ${reason}`);
    this.name = 'NotTextError';
  }
}

/**
 * A file's text, and where its characters came from: `source(start, end)` is the range of the file's own
 * (decoded) characters that text[start, end) was extracted from — the same range for plain text, the markup
 * around it for HTML. Citations point into the file, so a reader can find them there.
 */
export interface ExtractedText {
  text: string;
  source(start: number, end: number): [number, number];
}

/** The text of a file's bytes: UTF-8 decoded (a NotTextError if binary or undecodable), HTML reduced to its text. */
export function extractText(path: string, bytes: Uint8Array): ExtractedText {
  const ext = extname(path).toLowerCase();
  if (!TEXT_EXTENSIONS.includes(ext)) throw new NotTextError(path, `not a text file kiln indexes (${TEXT_EXTENSIONS.join(', ')})`);
  if (bytes.subarray(0, 8192).includes(0)) throw new NotTextError(path, 'binary (it holds NUL bytes)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new NotTextError(path, 'not valid UTF-8');
  }
  return ext === '.html' || ext === '.htm' ? htmlText(text) : { text, source: (start, end) => [start, end] };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** in one left-to-right scan: a comment, a script/style/head element, a block tag, any other tag, an entity */
const MARKUP = /<!--[\s\S]*?-->|<(script|style|head)\b[\s\S]*?<\/\1\s*>|<\/?(p|div|br|li|h[1-6]|tr|section|article|pre|blockquote)\b[^>]*>|<[^>]*>|&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi;

function decodeEntity(entity: string, name: string): string {
  if (name[0] === '#') {
    const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : Number(name.slice(1));
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
  }
  return ENTITIES[name.toLowerCase()] ?? entity;
}

/**
 * An HTML document's visible text: scripts, styles and comments dropped, block tags as newlines, entities
 * decoded, spaces before a newline dropped, at most one blank line in a row, trimmed. Each character of the text
 * remembers the range of the document it came from (a block tag's newline: the tag; a decoded character: its entity).
 */
export function htmlText(html: string): ExtractedText {
  const chars: string[] = [], from: number[] = [], to: number[] = [];
  const emit = (c: string, start: number, end: number): void => {
    if (c === '\n') {
      while (chars.length > 0 && (chars.at(-1) === ' ' || chars.at(-1) === '\t')) { chars.pop(); from.pop(); to.pop(); }
      if (chars.length >= 2 && chars.at(-1) === '\n' && chars.at(-2) === '\n') return;
    }
    chars.push(c); from.push(start); to.push(end);
  };
  const plain = (start: number, end: number): void => {
    for (let i = start; i < end; i++) emit(html[i], i, i + 1);
  };
  let at = 0;
  for (const m of html.matchAll(MARKUP)) {
    plain(at, m.index);
    at = m.index + m[0].length;
    if (m[2] !== undefined) emit('\n', m.index, at);
    else if (m[3] !== undefined) for (const c of decodeEntity(m[0], m[3]).split('')) emit(c, m.index, at);
  }
  plain(at, html.length);
  let first = 0, last = chars.length;
  while (first < last && /\s/.test(chars[first])) first++;
  while (last > first && /\s/.test(chars[last - 1])) last--;
  return { text: chars.slice(first, last).join(''), source: (start, end) => [from[first + start], to[first + end - 1]] };
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
