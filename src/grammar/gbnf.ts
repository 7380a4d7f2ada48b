// llama.cpp's GBNF grammar syntax, parsed and lowered to flat rules (llama.cpp's grammar-parser.cpp, same rules):
//   name ::= alternatives      one rule per line; `root` is the start; `#` starts a comment
//   "lit\n"  [a-z^…]  [^"]  .  name  ( … )   items; escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH
//   x*  x+  x?  x{m}  x{m,}  x{m,n}           repetitions, lowered to helper rules as llama.cpp does
// Inside parentheses, and after `::=` or `|`, a newline is only space. A grammar is checked whole: undefined rules,
// a missing root and left recursion (which a top-down matcher would loop on) are GrammarErrors.

export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarError';
  }
}

/** One element of an alternative: a set of code points (inclusive [lo, hi] pairs), a rule reference, or the end. */
export type GrammarElement =
  | { kind: 'chars'; ranges: number[]; negated: boolean }
  | { kind: 'ref'; rule: number }
  | { kind: 'end' };

/**
 * A lowered grammar: `elements` holds every alternative of every rule back to back, each closed by an `end`;
 * `rules[r]` lists the positions where rule r's alternatives start. Rule 0 is root.
 */
export interface CompiledGrammar {
  elements: GrammarElement[];
  rules: number[][];
  ruleNames: string[];
}

type Item =
  | { kind: 'chars'; ranges: number[]; negated: boolean }
  | { kind: 'literal'; chars: number[] } // one item, so that "ab"* repeats the whole string
  | { kind: 'ref'; name: string }
  | { kind: 'group'; alternatives: Item[][] }
  | { kind: 'repeat'; item: Item; min: number; max: number }; // max Infinity: unbounded

const MAX_REPEAT = 1000;
/** elements a lowered grammar may hold (repetitions multiply them) */
const MAX_ELEMENTS = 1_000_000;

class Parser {
  private pos = 0;
  constructor(private readonly src: string) {}

  parse(): Map<string, Item[][]> {
    const rules = new Map<string, Item[][]>();
    this.space(true);
    while (this.pos < this.src.length) {
      const name = this.name();
      this.space(false);
      if (!this.src.startsWith('::=', this.pos)) this.fail('expected ::=');
      this.pos += 3;
      this.space(true);
      const alternatives = this.alternatives(false);
      if (rules.has(name)) this.fail(`rule ${name} is defined twice`);
      rules.set(name, alternatives);
      if (this.src[this.pos] === '\r') this.pos++;
      if (this.pos < this.src.length && this.src[this.pos] !== '\n') this.fail('expected a newline or the end after a rule');
      this.space(true);
    }
    return rules;
  }

  private alternatives(nested: boolean): Item[][] {
    const alternatives = [this.sequence(nested)];
    while (this.src[this.pos] === '|') {
      this.pos++;
      this.space(true);
      alternatives.push(this.sequence(nested));
    }
    return alternatives;
  }

  private sequence(nested: boolean): Item[] {
    const items: Item[] = [];
    for (;;) {
      const c = this.src[this.pos];
      if (c === '"') items.push(this.literal());
      else if (c === '[') items.push(this.charClass());
      else if (c === '.') { this.pos++; items.push({ kind: 'chars', ranges: [], negated: true }); } // any code point
      else if (c === '(') {
        this.pos++;
        this.space(true);
        const alternatives = this.alternatives(true);
        if (this.src[this.pos] !== ')') this.fail('expected )');
        this.pos++;
        items.push({ kind: 'group', alternatives });
      } else if (c !== undefined && /[a-zA-Z0-9_-]/.test(c)) items.push({ kind: 'ref', name: this.name() });
      else if (c === '*' || c === '+' || c === '?' || c === '{') {
        const last = items.pop();
        if (!last) this.fail(`${c} without an item before it`);
        items.push(this.repetition(last));
      } else return items;
      this.space(nested);
    }
  }

  private repetition(item: Item): Item {
    const c = this.src[this.pos++];
    if (c === '*') return { kind: 'repeat', item, min: 0, max: Infinity };
    if (c === '+') return { kind: 'repeat', item, min: 1, max: Infinity };
    if (c === '?') return { kind: 'repeat', item, min: 0, max: 1 };
    const match = /^\{\s*(\d*)\s*(,?)\s*(\d*)\s*\}/.exec(this.src.slice(this.pos - 1));
    if (!match || (match[1] === '' && match[2] === '')) this.fail('expected {m}, {m,}, {m,n} or {,n}');
    this.pos += match[0].length - 1;
    const min = match[1] === '' ? 0 : Number(match[1]);
    const max = match[2] === '' ? min : match[3] === '' ? Infinity : Number(match[3]);
    if (min > max || min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`repetition {${match[1]},${match[3]}} is out of range (at most ${MAX_REPEAT})`);
    return { kind: 'repeat', item, min, max };
  }

  private literal(): Item {
    this.pos++; // "
    const chars: number[] = [];
    while (this.src[this.pos] !== '"') {
      if (this.pos >= this.src.length) this.fail('unterminated string literal');
      chars.push(this.char());
    }
    this.pos++;
    return { kind: 'literal', chars };
  }

  private charClass(): Item {
    this.pos++; // [
    const negated = this.src[this.pos] === '^';
    if (negated) this.pos++;
    const ranges: number[] = [];
    while (this.src[this.pos] !== ']') {
      if (this.pos >= this.src.length) this.fail('unterminated character class');
      const lo = this.char();
      let hi = lo;
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        hi = this.char();
      }
      if (hi < lo) this.fail('character range with its end before its start');
      ranges.push(lo, hi);
    }
    this.pos++;
    return { kind: 'chars', ranges, negated };
  }

  /** One code point of a literal or class, escapes decoded. */
  private char(): number {
    const c = this.src.codePointAt(this.pos)!;
    if (c !== 0x5c) {
      this.pos += c > 0xffff ? 2 : 1;
      return c;
    }
    const e = this.src[this.pos + 1];
    this.pos += 2;
    const hex = (digits: number): number => {
      const text = this.src.slice(this.pos, this.pos + digits);
      if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(text)) this.fail(`expected ${digits} hex digits`);
      this.pos += digits;
      return parseInt(text, 16);
    };
    switch (e) {
      case 'x': return hex(2);
      case 'u': return hex(4);
      case 'U': return hex(8);
      case 'n': return 10;
      case 'r': return 13;
      case 't': return 9;
      case '\\': case '"': case '[': case ']': case '-': case '^': case '/': return e.charCodeAt(0);
      default: return this.fail(`unknown escape \\${e ?? ''}`);
    }
  }

  private name(): string {
    const match = /^[a-zA-Z0-9_-]+/.exec(this.src.slice(this.pos, this.pos + 256));
    if (!match) this.fail('expected a rule name');
    this.pos += match[0].length;
    return match[0];
  }

  /** Skips blanks and comments; newlines too when `newlines`. */
  private space(newlines: boolean): void {
    while (this.pos < this.src.length) {
      const c = this.src[this.pos];
      if (c === '#') {
        while (this.pos < this.src.length && this.src[this.pos] !== '\n') this.pos++;
      } else if (c === ' ' || c === '\t' || (newlines && (c === '\n' || c === '\r'))) this.pos++;
      else return;
    }
  }

  private fail(message: string): never {
    const line = this.src.slice(0, this.pos).split('\n').length;
    throw new GrammarError(`grammar line ${line}: ${message}`);
  }
}

/** Parses GBNF text and lowers it: groups and repetitions become helper rules, named `rule_N`. */
export function compileGrammar(text: string): CompiledGrammar {
  const parsed = new Parser(text).parse();
  if (!parsed.has('root')) throw new GrammarError('the grammar has no root rule');
  const ruleNames = ['root', ...[...parsed.keys()].filter((name) => name !== 'root')];
  const ids = new Map(ruleNames.map((name, i) => [name, i]));
  const bodies: GrammarElement[][][] = []; // rule → alternatives → elements (without the end)

  const newRule = (alternatives: GrammarElement[][]): number => {
    ruleNames.push(`rule_${ruleNames.length}`);
    bodies[ruleNames.length - 1] = alternatives;
    return ruleNames.length - 1;
  };
  const lowerSequence = (items: Item[]): GrammarElement[] => items.flatMap(lowerItem);
  const lowerItem = (item: Item): GrammarElement[] => {
    switch (item.kind) {
      case 'chars': return [item];
      case 'literal': return item.chars.map((cp) => ({ kind: 'chars', ranges: [cp, cp], negated: false }));
      case 'ref': {
        const rule = ids.get(item.name);
        if (rule === undefined) throw new GrammarError(`rule ${item.name} is used but not defined`);
        return [{ kind: 'ref', rule }];
      }
      case 'group': return [{ kind: 'ref', rule: newRule(item.alternatives.map(lowerSequence)) }];
      case 'repeat': return lowerRepeat(lowerItem(item.item), item.min, item.max);
    }
  };
  // x{m,n}: m copies of x, then n − m nested optionals (x (x …)?)?; x{m,}: m copies, then x* as `r ::= x r | ε`
  const lowerRepeat = (x: GrammarElement[], min: number, max: number): GrammarElement[] => {
    if (x.length * Math.max(min, max === Infinity ? 1 : max) > MAX_ELEMENTS) throw new GrammarError(`a repetition makes the grammar larger than ${MAX_ELEMENTS} elements`);
    const out: GrammarElement[] = [];
    for (let i = 0; i < min; i++) out.push(...x);
    if (max === Infinity) {
      const rule = newRule([]);
      bodies[rule] = [[...x, { kind: 'ref', rule }], []];
      out.push({ kind: 'ref', rule });
    } else if (max > min) {
      let tail: GrammarElement[] = [];
      for (let i = min; i < max; i++) tail = [{ kind: 'ref', rule: newRule([[...x, ...tail], []]) }];
      out.push(...tail);
    }
    return out;
  };
  for (const [name, alternatives] of parsed) bodies[ids.get(name)!] = alternatives.map(lowerSequence);

  const elements: GrammarElement[] = [];
  const rules = bodies.map((alternatives) => alternatives.map((sequence) => {
    const start = elements.length;
    if (start + sequence.length >= MAX_ELEMENTS) throw new GrammarError(`the grammar is larger than ${MAX_ELEMENTS} elements`);
    for (const element of sequence) elements.push(element);
    elements.push({ kind: 'end' });
    return start;
  }));
  const grammar = { elements, rules, ruleNames };
  checkLeftRecursion(grammar);
  return grammar;
}

/** Rules that can match the empty string (a fixpoint). */
export function nullableRules(g: CompiledGrammar): boolean[] {
  const nullable = g.rules.map(() => false);
  for (let changed = true; changed;) {
    changed = false;
    g.rules.forEach((starts, r) => {
      if (nullable[r]) return;
      if (starts.some((start) => restIsNullable(g, start, nullable))) nullable[r] = changed = true;
    });
  }
  return nullable;
}

function restIsNullable(g: CompiledGrammar, pos: number, nullable: boolean[]): boolean {
  for (let e = g.elements[pos]; e.kind !== 'end'; e = g.elements[++pos]) {
    if (e.kind === 'chars' || !nullable[e.rule]) return false;
  }
  return true;
}

/** A rule that can reach itself without consuming a character would recurse forever in the matcher. */
function checkLeftRecursion(g: CompiledGrammar): void {
  const nullable = nullableRules(g);
  // rule → the rules it can enter before consuming anything
  const leftEdges = g.rules.map((starts) => {
    const edges: number[] = [];
    for (let pos of starts) {
      for (let e = g.elements[pos]; e.kind === 'ref'; e = g.elements[++pos]) {
        edges.push(e.rule);
        if (!nullable[e.rule]) break;
      }
    }
    return edges;
  });
  const state = new Uint8Array(g.rules.length); // 0 unseen, 1 on the path, 2 done
  const visit = (r: number): void => {
    if (state[r] === 2) return;
    if (state[r] === 1) throw new GrammarError(`rule ${g.ruleNames[r]} is left-recursive`);
    state[r] = 1;
    for (const next of leftEdges[r]) visit(next);
    state[r] = 2;
  };
  g.rules.forEach((_, r) => visit(r));
}
