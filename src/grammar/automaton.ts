// The grammar as a pushdown automaton over bytes (llama.cpp's stacks, made shareable and memoized).
// A stack is an interned linked list of grammar positions: its top is a `chars` element still to match, each
// node below is where a rule resumes once the one above ends. EMPTY is the stack of a finished grammar; BOTTOM
// stands under a stack cut to its top frames (vocab-mask.ts classifies tokens from those frames alone: a path that
// pops into BOTTOM has left them, and what follows depends on the rest of the real stack).
// A state is an interned set of stacks plus an unfinished UTF-8 character; its transitions on each byte are
// computed once and kept, so a walk over the vocabulary costs one table lookup per byte after the first time.

import { GrammarError, type CompiledGrammar, type GrammarElement } from './gbnf.js';

export const EMPTY = 0;
export const BOTTOM = 1;
/** the dead state: no stack can go on */
export const DEAD = -1;
const UNKNOWN = -2;

interface State {
  stacks: Int32Array; // [n] sorted stack ids
  /** continuation bytes still missing from the UTF-8 character under way, and its bits so far */
  pendingBytes: number;
  pendingBits: number;
  next: Int32Array; // [256] state id after each byte, UNKNOWN until computed, DEAD
}

/** most states one grammar keeps (1 KiB of transitions each; real grammars stay far below, a hostile one meets a clear error) */
const MAX_STATES = 65_536;

export class GrammarAutomaton {
  private readonly elements: GrammarElement[];
  // stack nodes: position and the node below
  private readonly nodePos: number[] = [-1, -1];
  private readonly nodeBelow: number[] = [-1, -1];
  private readonly nodeIds = new Map<string, number>();
  /** node id → its expansion into stacks with a `chars` top (or EMPTY / BOTTOM) */
  private readonly expansions = new Map<number, number[]>();
  private readonly states: State[] = [];
  private readonly stateIds = new Map<string, number>();
  /** fewest bytes that complete the grammar from each node (memoized) */
  private readonly toComplete: number[] = [0, 0];
  private readonly minRest: number[]; // [elements] fewest bytes from a position to its alternative's end
  readonly initial: number;

  constructor(readonly grammar: CompiledGrammar) {
    this.elements = grammar.elements;
    this.minRest = minimalRests(grammar);
    this.initial = this.internState(this.expandRule(0, EMPTY), 0, 0);
  }

  // -------------------------------------------------------------------------------------------------------
  // stacks

  private node(pos: number, below: number): number {
    const key = `${pos},${below}`;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      this.nodePos.push(pos);
      this.nodeBelow.push(below);
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /** The stack `(pos, below)` with references entered and finished rules popped, as stacks with a `chars` top. */
  private expand(pos: number, below: number): number[] {
    const id = this.node(pos, below);
    let out = this.expansions.get(id);
    if (out) return out;
    const e = this.elements[pos];
    if (e.kind === 'chars') out = [id];
    else if (e.kind === 'ref') out = this.expandRule(e.rule, this.node(pos + 1, below));
    else out = below === EMPTY || below === BOTTOM ? [below] : this.expand(this.nodePos[below], this.nodeBelow[below]);
    this.expansions.set(id, out);
    return out;
  }

  private expandRule(rule: number, below: number): number[] {
    return this.grammar.rules[rule].flatMap((start) => this.expand(start, below));
  }

  /**
   * The stack's top `depth` frames over BOTTOM (the whole stack if it is shorter): what a token can do within
   * those frames does not depend on the rest.
   */
  truncate(stack: number, depth: number): number {
    const positions: number[] = [];
    let s = stack;
    for (; s > BOTTOM && positions.length < depth; s = this.nodeBelow[s]) positions.push(this.nodePos[s]);
    let out = s <= BOTTOM ? s : BOTTOM;
    for (let i = positions.length - 1; i >= 0; i--) out = this.node(positions[i], out);
    return out;
  }

  /** Fewest bytes that take `stack` to EMPTY. */
  private bytesToComplete(stack: number): number {
    if (stack <= BOTTOM) return 0;
    let n = this.toComplete[stack];
    if (n === undefined) {
      n = this.minRest[this.nodePos[stack]] + this.bytesToComplete(this.nodeBelow[stack]);
      this.toComplete[stack] = n;
    }
    return n;
  }

  // -------------------------------------------------------------------------------------------------------
  // states

  private internState(stacks: number[], pendingBytes: number, pendingBits: number): number {
    if (stacks.length === 0) return DEAD;
    const sorted = Int32Array.from(new Set(stacks)).sort();
    const key = `${sorted.join(',')}|${pendingBytes}:${pendingBits}`;
    let id = this.stateIds.get(key);
    if (id === undefined) {
      if (this.states.length >= MAX_STATES) throw new GrammarError(`the grammar needs more than ${MAX_STATES} parser states`);
      id = this.states.length;
      this.states.push({ stacks: sorted, pendingBytes, pendingBits, next: new Int32Array(256).fill(UNKNOWN) });
      this.stateIds.set(key, id);
    }
    return id;
  }

  /** The state of these stacks, between characters. */
  stateOf(stacks: number[]): number {
    return this.internState(stacks, 0, 0);
  }

  stacksOf(state: number): Int32Array {
    return this.states[state].stacks;
  }

  /** Whether the state is between characters (no UTF-8 sequence under way). */
  atCharBoundary(state: number): boolean {
    return this.states[state].pendingBytes === 0;
  }

  /** Whether the grammar may end here. */
  canEnd(state: number): boolean {
    const s = this.states[state];
    return s.pendingBytes === 0 && s.stacks[0] === EMPTY;
  }

  /** Fewest bytes that finish the grammar from `state`. */
  distanceToEnd(state: number): number {
    if (state === DEAD) return Infinity;
    const s = this.states[state];
    let best = Infinity;
    for (const stack of s.stacks) if (stack !== BOTTOM) best = Math.min(best, this.bytesToComplete(stack));
    return best + s.pendingBytes;
  }

  /** The state after one byte (DEAD if no stack accepts it). */
  step(state: number, byte: number): number {
    if (state === DEAD) return DEAD;
    const s = this.states[state];
    let next = s.next[byte];
    if (next === UNKNOWN) {
      next = this.computeStep(s, byte);
      s.next[byte] = next;
    }
    return next;
  }

  /** The state after `bytes` (DEAD as soon as one is refused). */
  walk(state: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length && state !== DEAD; i++) state = this.step(state, bytes[i]);
    return state;
  }

  private computeStep(s: State, byte: number): number {
    if (s.pendingBytes > 0) {
      if ((byte & 0xc0) !== 0x80) return DEAD;
      const bits = (s.pendingBits << 6) | (byte & 0x3f);
      return s.pendingBytes === 1 ? this.advance(s.stacks, bits) : this.internState([...s.stacks], s.pendingBytes - 1, bits);
    }
    if (byte < 0x80) return this.advance(s.stacks, byte);
    // a UTF-8 lead byte: keep the stacks whose top can take some non-ASCII character, until the character is whole
    const [pending, bits] = byte >= 0xc2 && byte <= 0xdf ? [1, byte & 0x1f] : byte >= 0xe0 && byte <= 0xef ? [2, byte & 0x0f] : byte >= 0xf0 && byte <= 0xf4 ? [3, byte & 0x07] : [0, 0];
    if (pending === 0) return DEAD;
    const alive = [...s.stacks].filter((stack) => stack > BOTTOM && takesNonAscii(this.elements[this.nodePos[stack]]));
    return this.internState(alive, pending, bits);
  }

  /** Every stack that accepts code point `cp`, advanced past it. */
  private advance(stacks: Int32Array, cp: number): number {
    const out: number[] = [];
    for (const stack of stacks) {
      if (stack <= BOTTOM) continue;
      const pos = this.nodePos[stack];
      if (matches(this.elements[pos], cp)) out.push(...this.expand(pos + 1, this.nodeBelow[stack]));
    }
    return this.internState(out, 0, 0);
  }
}

function matches(e: GrammarElement, cp: number): boolean {
  if (e.kind !== 'chars') return false;
  let inside = false;
  for (let i = 0; i < e.ranges.length && !inside; i += 2) inside = cp >= e.ranges[i] && cp <= e.ranges[i + 1];
  return inside !== e.negated;
}

function takesNonAscii(e: GrammarElement): boolean {
  if (e.kind !== 'chars') return false;
  if (e.negated) return true; // a negated set leaves some code point above 0x7f
  for (let i = 1; i < e.ranges.length; i += 2) if (e.ranges[i] >= 0x80) return true;
  return false;
}

/** UTF-8 length of the smallest code point a `chars` element takes. */
function minCharBytes(e: GrammarElement & { kind: 'chars' }): number {
  if (e.negated) return 1; // all of ASCII is never excluded by the sets grammars write; one byte at least anyway
  let lo = Infinity;
  for (let i = 0; i < e.ranges.length; i += 2) lo = Math.min(lo, e.ranges[i]);
  return lo < 0x80 ? 1 : lo < 0x800 ? 2 : lo < 0x10000 ? 3 : 4;
}

/** For each position, the fewest bytes from it to the end of its alternative (rule minima by fixpoint). */
function minimalRests(g: CompiledGrammar): number[] {
  const ruleMin = g.rules.map(() => Infinity);
  const rest = new Array<number>(g.elements.length).fill(Infinity);
  const restFrom = (pos: number): number => {
    let total = 0;
    for (let e = g.elements[pos]; e.kind !== 'end'; e = g.elements[++pos]) total += e.kind === 'chars' ? minCharBytes(e) : ruleMin[e.rule];
    return total;
  };
  for (let changed = true; changed;) {
    changed = false;
    g.rules.forEach((starts, r) => {
      const best = Math.min(...starts.map(restFrom));
      if (best < ruleMin[r]) { ruleMin[r] = best; changed = true; }
    });
  }
  for (let pos = g.elements.length - 1; pos >= 0; pos--) {
    const e = g.elements[pos];
    rest[pos] = e.kind === 'end' ? 0 : (e.kind === 'chars' ? minCharBytes(e) : ruleMin[e.rule]) + rest[pos + 1];
  }
  return rest;
}
