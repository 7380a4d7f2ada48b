// A JSON-schema `pattern` (an ECMAScript regular expression, taken as anchored, as llama.cpp and OpenAI do) as a
// GBNF expression for the string's characters. Supported: literals, escapes (\d \w \s and their negations,
// escaped punctuation), classes [...] and [^...], ., groups ( ) and (?: ), alternation, quantifiers * + ? {m}
// {m,} {m,n} (a lazy ? after one changes nothing here), ^ at the start and $ at the end. Anything else
// (backreferences, lookaround, anchors inside) is a SchemaError naming "pattern". Characters a JSON string must
// escape (", \ and controls) are kept out of every class and of `.`, so the output is always valid JSON.

import { SchemaError } from './json-schema.js';

const JSON_UNSAFE: number[] = [0x00, 0x1f, 0x22, 0x22, 0x5c, 0x5c, 0x7f, 0x7f];

export function regexToGbnf(pattern: string): string {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SchemaError('pattern', `pattern ${JSON.stringify(pattern)}: ${what} is not supported`);
  };
  if (pattern.startsWith('^')) pos++;
  const end = pattern.endsWith('$') && !pattern.endsWith('\\$') ? pattern.length - 1 : pattern.length;

  const alternation = (): string => {
    const options = [sequence()];
    while (pos < end && pattern[pos] === '|') {
      pos++;
      options.push(sequence());
    }
    return options.length === 1 ? options[0] : `(${options.join(' | ')})`;
  };
  const sequence = (): string => {
    const items: string[] = [];
    while (pos < end && pattern[pos] !== '|' && pattern[pos] !== ')') {
      let item = atom();
      item = quantified(item);
      items.push(item);
    }
    return items.length === 0 ? '""' : items.join(' ');
  };
  const quantified = (item: string): string => {
    const c = pattern[pos];
    let out = item;
    if (c === '*' || c === '+' || c === '?') { pos++; out = `(${item})${c}`; }
    else if (c === '{') {
      const m = /^\{(\d+)(,?)(\d*)\}/.exec(pattern.slice(pos, end));
      if (!m) return item; // a literal {
      pos += m[0].length;
      out = `(${item}){${m[1]}${m[2]}${m[3]}}`;
    } else return item;
    if (pattern[pos] === '?') pos++; // lazy: the same strings
    return out;
  };
  const atom = (): string => {
    const c = pattern[pos];
    if (c === '(') {
      pos++;
      if (pattern[pos] === '?') {
        if (pattern[pos + 1] !== ':') fail('a lookaround or named group');
        pos += 2;
      }
      const inner = alternation();
      if (pattern[pos] !== ')') fail('an unclosed group');
      pos++;
      return `(${inner})`;
    }
    if (c === '[') return charClass();
    if (c === '.') { pos++; return charSet([0x0a, 0x0a, 0x0d, 0x0d], true); }
    if (c === '\\') return escape(false).text;
    if (c === '^' || c === '$') fail(`an anchor ${c} inside the pattern`);
    if (c === '*' || c === '+' || c === '?') fail(`a quantifier ${c} with nothing before it`);
    pos += c.codePointAt(0)! > 0xffff ? 2 : 1;
    return literalChar(c.codePointAt(0)!);
  };
  /** \d \w \s \D \W \S as a set; other escapes as one character */
  const escape = (inClass: boolean): { text: string; ranges?: number[]; negated?: boolean; cp?: number } => {
    const e = pattern[pos + 1];
    pos += 2;
    const sets: Record<string, number[]> = { d: [0x30, 0x39], w: [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a], s: [0x20, 0x20] };
    const lower = e?.toLowerCase();
    if (lower && lower in sets) {
      const negated = e !== lower;
      return { text: charSet(sets[lower], negated), ranges: sets[lower], negated };
    }
    if (e === undefined || /[0-9bBkpPux]/.test(e)) fail(`the escape \\${e ?? ''}`);
    const cp = e === 'n' ? 10 : e === 't' ? 9 : e === 'r' ? 13 : e.codePointAt(0)!;
    return { text: inClass ? '' : literalChar(cp), cp };
  };
  const charClass = (): string => {
    pos++;
    const negated = pattern[pos] === '^';
    if (negated) pos++;
    const ranges: number[] = [];
    const single = (): number => {
      if (pattern[pos] === '\\') {
        const e = escape(true);
        if (e.ranges) {
          if (e.negated) fail('a negated escape inside a class');
          ranges.push(...e.ranges);
          return -1;
        }
        return e.cp!;
      }
      const cp = pattern.codePointAt(pos)!;
      pos += cp > 0xffff ? 2 : 1;
      return cp;
    };
    while (pattern[pos] !== ']') {
      if (pos >= end) fail('an unclosed class');
      const lo = single();
      if (lo < 0) continue;
      if (pattern[pos] === '-' && pattern[pos + 1] !== ']') {
        pos++;
        const hi = single();
        if (hi < lo) fail('a class range out of order');
        ranges.push(lo, hi);
      } else ranges.push(lo, lo);
    }
    pos++;
    return charSet(ranges, negated);
  };

  const body = alternation();
  if (pos !== end) fail(`")" at ${pos}`);
  return body;
}

/** One character of the string as GBNF: characters JSON must escape are written escaped. */
function literalChar(cp: number): string {
  if (cp === 0x22) return '"\\\\\\""';
  if (cp === 0x5c) return '"\\\\\\\\"';
  if (cp < 0x20 || cp === 0x7f) return `"\\\\u${cp.toString(16).padStart(4, '0')}"`;
  return `[${classChar(cp)}]`;
}

/** A GBNF class of `ranges` (inclusive pairs) or of everything outside them, never a character JSON must escape. */
function charSet(ranges: number[], negated: boolean): string {
  if (negated) return `[^${pairs([...ranges, ...JSON_UNSAFE])}]`;
  // drop what JSON must escape from a positive set by clipping each range around it
  const safe: number[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    let lo = ranges[i];
    const hi = ranges[i + 1];
    for (let j = 0; j < JSON_UNSAFE.length && lo <= hi; j += 2) {
      const [ulo, uhi] = [JSON_UNSAFE[j], JSON_UNSAFE[j + 1]];
      if (uhi < lo || ulo > hi) continue;
      if (ulo > lo) safe.push(lo, ulo - 1);
      lo = uhi + 1;
    }
    if (lo <= hi) safe.push(lo, hi);
  }
  if (safe.length === 0) throw new SchemaError('pattern', 'a pattern class holds only characters a JSON string must escape');
  return `[${pairs(safe)}]`;
}

function pairs(ranges: number[]): string {
  let out = '';
  for (let i = 0; i < ranges.length; i += 2) out += ranges[i] === ranges[i + 1] ? classChar(ranges[i]) : `${classChar(ranges[i])}-${classChar(ranges[i + 1])}`;
  return out;
}

function classChar(cp: number): string {
  if (/[a-zA-Z0-9 ]/.test(String.fromCodePoint(cp))) return String.fromCodePoint(cp);
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\U${cp.toString(16).padStart(8, '0')}`;
}
