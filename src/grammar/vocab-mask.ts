// Which tokens a grammar allows next, fast on real vocabularies (XGrammar's idea, on llama.cpp's stacks):
//   - the vocabulary as a byte trie (tokens sorted by bytes, so a subtree is a range of the sorted ids);
//   - per stack context (a stack's top CONTEXT_DEPTH frames), the tokens classified once by walking the trie from
//     that context alone: accepted whatever lies below it on the stack, or uncertain (some path pops out of the
//     context before the token ends) — everything else is rejected;
//   - the mask of a parser state: the union of its stacks' accepted sets, plus the tokens of the uncertain subtrees
//     that the full state lets through (a trie walk from it, dead branches pruned); masks are cached by state.
// Near the end of a completion's token budget the mask keeps only tokens after which the grammar's end is still
// within the tokens left, so a completion cut by max_tokens still ends where the grammar may end (checked within
// BUDGET_WINDOW tokens of the end: a single token that pushes the end further than that is not foreseen).

import type { Tokenizer } from '../tokenizer/index.js';
import { BOTTOM, DEAD, EMPTY, GrammarAutomaton } from './automaton.js';
import { compileGrammar } from './gbnf.js';
import type { LogitsProcessor } from '../generate/logits-processor.js';
import { SamplingError } from '../generate/sampler.js';

/** The vocabulary's tokens as a byte trie; control tokens (which have no bytes) are not in it. */
export class TokenTrie {
  readonly vocabSize: number;
  /** bytes of each token; empty for control and unused tokens, which a grammar never matches */
  readonly tokenBytes: Uint8Array[];
  readonly eogIds: number[];
  readonly sortedIds: Int32Array; // [tokens in the trie] by bytes
  // per node: its subtree's tokens are sortedIds[rangeLo, rangeHi), of which those ending at the node come first,
  // up to endsHi; its children are edges [edgesLo, edgesHi)
  readonly rangeLo: number[] = [];
  readonly endsHi: number[] = [];
  readonly rangeHi: number[] = [];
  readonly edgesLo: number[] = [];
  readonly edgesHi: number[] = [];
  readonly edgeByte: number[] = [];
  readonly edgeNode: number[] = [];
  /** per node: its parent (−1 for the root) and the byte that leads to it */
  readonly parent: number[] = [];
  readonly byteIn: number[] = [];

  constructor(tokenizer: Tokenizer) {
    this.vocabSize = tokenizer.vocabSize;
    this.tokenBytes = Array.from({ length: this.vocabSize }, (_, id) => tokenizer.decodeToken(id));
    this.eogIds = Array.from({ length: this.vocabSize }, (_, id) => id).filter((id) => tokenizer.isEog(id));
    const ids = Array.from({ length: this.vocabSize }, (_, id) => id).filter((id) => this.tokenBytes[id].length > 0);
    ids.sort((a, b) => compareBytes(this.tokenBytes[a], this.tokenBytes[b]));
    this.sortedIds = Int32Array.from(ids);
    this.build(0, ids.length, 0, -1, -1);
  }

  /** The bytes that lead from the root to `node`. */
  prefix(node: number): number[] {
    const bytes: number[] = [];
    for (let n = node; this.parent[n] >= 0; n = this.parent[n]) bytes.push(this.byteIn[n]);
    return bytes.reverse();
  }

  /** Builds the node for sortedIds[lo, hi), which share their first `depth` bytes. */
  private build(lo: number, hi: number, depth: number, parent: number, byteIn: number): number {
    const node = this.rangeLo.length;
    this.rangeLo.push(lo);
    this.rangeHi.push(hi);
    this.parent.push(parent);
    this.byteIn.push(byteIn);
    let i = lo;
    while (i < hi && this.tokenBytes[this.sortedIds[i]].length === depth) i++;
    this.endsHi.push(i);
    this.edgesLo.push(0);
    this.edgesHi.push(0);
    const children: [number, number][] = [];
    while (i < hi) {
      const byte = this.tokenBytes[this.sortedIds[i]][depth];
      let j = i + 1;
      while (j < hi && this.tokenBytes[this.sortedIds[j]][depth] === byte) j++;
      children.push([byte, this.build(i, j, depth + 1, node, byte)]);
      i = j;
    }
    this.edgesLo[node] = this.edgeByte.length;
    for (const [byte, child] of children) {
      this.edgeByte.push(byte);
      this.edgeNode.push(child);
    }
    this.edgesHi[node] = this.edgeByte.length;
    return node;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const tries = new WeakMap<Tokenizer, TokenTrie>();
export function tokenTrie(tokenizer: Tokenizer): TokenTrie {
  let trie = tries.get(tokenizer);
  if (!trie) tries.set(tokenizer, (trie = new TokenTrie(tokenizer)));
  return trie;
}

/** A bit per token: [ceil(vocab / 32)] */
type TokenSet = Uint32Array;
const has = (set: TokenSet, id: number): boolean => ((set[id >>> 5] >>> (id & 31)) & 1) === 1;
const add = (set: TokenSet, id: number): void => { set[id >>> 5] |= 1 << (id & 31); };

/**
 * Frames of a stack its tokens are classified with: enough to hold a character's rule, its repetition and the
 * string or number around them, so that most tokens are decided without the rest of the stack.
 */
const CONTEXT_DEPTH = 6;

interface ContextTokens {
  accepted: TokenSet;
  /** trie nodes whose subtrees' tokens depend on the stack below the position */
  uncertain: Int32Array;
}

/** states whose masks are kept; past this the cache starts afresh */
const MASK_CACHE_SIZE = 2048;
/** within this many tokens of the budget's end, tokens are checked to keep the grammar's end reachable */
const BUDGET_WINDOW = 64;

/** A grammar bound to a vocabulary: the automaton, the per-position token classes and the mask cache. */
export class GrammarVocabulary {
  readonly automaton: GrammarAutomaton;
  private readonly contexts = new Map<number, ContextTokens>();
  private readonly masks = new Map<number, TokenSet>();
  private readonly words: number;
  /** masks computed (not taken from the cache), for kiln bench --grammar */
  masksComputed = 0;

  constructor(readonly trie: TokenTrie, readonly text: string) {
    this.automaton = new GrammarAutomaton(compileGrammar(text));
    this.words = Math.ceil(trie.vocabSize / 32);
  }

  /** The tokens the grammar allows from `state` (EOG tokens not included). */
  mask(state: number): TokenSet {
    let mask = this.masks.get(state);
    if (mask) return mask;
    mask = this.automaton.atCharBoundary(state) ? this.maskFromContexts(state) : this.maskByWalk(state);
    if (this.masks.size >= MASK_CACHE_SIZE) this.masks.clear();
    this.masks.set(state, mask);
    this.masksComputed++;
    return mask;
  }

  private maskFromContexts(state: number): TokenSet {
    const mask = new Uint32Array(this.words);
    const uncertain = new Set<number>();
    for (const stack of this.automaton.stacksOf(state)) {
      if (stack === EMPTY) continue;
      const tokens = this.contextTokens(this.automaton.truncate(stack, CONTEXT_DEPTH));
      for (let w = 0; w < mask.length; w++) mask[w] |= tokens.accepted[w];
      for (const node of tokens.uncertain) uncertain.add(node);
    }
    // the uncertain subtrees, walked from the full state (dead branches pruned as they appear)
    for (const node of uncertain) {
      let s = state;
      for (const byte of this.trie.prefix(node)) if ((s = this.automaton.step(s, byte)) === DEAD) break;
      if (s !== DEAD) this.addLive(mask, node, s);
    }
    return mask;
  }

  /** Adds the tokens of `node`'s subtree that the state `s` (reached at `node`) lets through. */
  private addLive(mask: TokenSet, node: number, s: number): void {
    const { trie, automaton } = this;
    for (let i = trie.rangeLo[node]; i < trie.endsHi[node]; i++) add(mask, trie.sortedIds[i]);
    for (let e = trie.edgesLo[node]; e < trie.edgesHi[node]; e++) {
      const next = automaton.step(s, trie.edgeByte[e]);
      if (next !== DEAD) this.addLive(mask, trie.edgeNode[e], next);
    }
  }

  /** Classifies every token from the stack context `context` alone (a walk of the trie, once per context). */
  private contextTokens(context: number): ContextTokens {
    let tokens = this.contexts.get(context);
    if (tokens) return tokens;
    const accepted = new Uint32Array(this.words);
    const uncertain: number[] = [];
    const { trie, automaton } = this;
    const walk = (node: number, state: number, escaped: boolean): void => {
      for (let i = trie.rangeLo[node]; i < trie.endsHi[node]; i++) add(accepted, trie.sortedIds[i]);
      const stacks = automaton.stacksOf(state);
      const leaves = escaped || stacks[0] === BOTTOM || stacks[1] === BOTTOM; // sorted: EMPTY, BOTTOM, the rest
      for (let e = trie.edgesLo[node]; e < trie.edgesHi[node]; e++) {
        const child = trie.edgeNode[e];
        const next = automaton.step(state, trie.edgeByte[e]);
        if (next !== DEAD) walk(child, next, leaves);
        else if (leaves) uncertain.push(child);
      }
    };
    const start = automaton.stateOf([context]);
    for (let e = trie.edgesLo[0]; e < trie.edgesHi[0]; e++) {
      const next = automaton.step(start, trie.edgeByte[e]);
      if (next !== DEAD) walk(trie.edgeNode[e], next, false);
    }
    tokens = { accepted, uncertain: Int32Array.from(uncertain) };
    this.contexts.set(context, tokens);
    return tokens;
  }

  /** In the middle of a character: walk the whole trie from the state. */
  private maskByWalk(state: number): TokenSet {
    const mask = new Uint32Array(this.words);
    const { trie, automaton } = this;
    for (let e = trie.edgesLo[0]; e < trie.edgesHi[0]; e++) {
      const next = automaton.step(state, trie.edgeByte[e]);
      if (next !== DEAD) this.addLive(mask, trie.edgeNode[e], next);
    }
    return mask;
  }

  /** A fresh parser for one completion; `budget`: tokens it may generate at most (Infinity: no limit). */
  processor(budget = Infinity): GrammarProcessor {
    return new GrammarProcessor(this, budget);
  }
}

/** A token the grammar does not allow was accepted (a SamplingError: the engine fails that request alone). */
export class GrammarRejectedError extends SamplingError {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarRejectedError';
  }
}

/** One completion's parser state as a logits processor: forbids every token the grammar does not allow. */
export class GrammarProcessor implements LogitsProcessor {
  private state: number;
  private finished = false;

  constructor(private readonly vocabulary: GrammarVocabulary, private budget: number) {
    this.state = vocabulary.automaton.initial;
    if (vocabulary.trie.eogIds.length > 0) this.budget--; // the last token may have to be end-of-generation
  }

  /** Whether the text so far is a complete sentence of the grammar. */
  get complete(): boolean {
    return this.finished || this.vocabulary.automaton.canEnd(this.state);
  }

  process(logits: Float32Array): void {
    const { automaton, trie } = this.vocabulary;
    const eog = trie.eogIds.map((id) => logits[id]);
    const allowed = this.finished ? undefined : this.squeezed(this.vocabulary.mask(this.state));
    if (allowed === undefined) logits.fill(-Infinity);
    else {
      for (let w = 0; w < allowed.length; w++) {
        const bits = allowed[w];
        if (bits === 0xffffffff) continue;
        const end = Math.min(logits.length, (w + 1) * 32);
        if (bits === 0) logits.fill(-Infinity, w * 32, end);
        else for (let id = w * 32; id < end; id++) if (((bits >>> (id & 31)) & 1) === 0) logits[id] = -Infinity;
      }
    }
    const canEnd = this.finished || automaton.canEnd(this.state);
    trie.eogIds.forEach((id, i) => (logits[id] = canEnd ? eog[i] : -Infinity));
  }

  /**
   * Near the budget's end, the tokens of `mask` after which the grammar can still end within the tokens left (a
   * token is at least one byte, so d bytes to go fit in d tokens); the plain mask while the end is far, or if no
   * token keeps it within reach.
   */
  private squeezed(mask: TokenSet): TokenSet {
    const { automaton, trie } = this.vocabulary;
    if (this.budget > automaton.distanceToEnd(this.state) + BUDGET_WINDOW) return mask;
    const kept = new Uint32Array(mask.length);
    let any = automaton.canEnd(this.state) && trie.eogIds.length > 0;
    for (let id = 0; id < trie.vocabSize; id++) {
      if (!has(mask, id)) continue;
      if (automaton.distanceToEnd(automaton.walk(this.state, trie.tokenBytes[id])) <= this.budget - 1) { add(kept, id); any = true; }
    }
    return any ? kept : mask;
  }

  accept(token: number): void {
    this.budget--;
    if (this.finished) return;
    const { automaton, trie } = this.vocabulary;
    if (trie.eogIds.includes(token)) {
      if (!automaton.canEnd(this.state)) throw new GrammarRejectedError(`end of generation before the grammar is complete`);
      this.finished = true;
      return;
    }
    const next = automaton.walk(this.state, trie.tokenBytes[token]);
    if (next === DEAD) throw new GrammarRejectedError(`the grammar does not allow token ${token} here`);
    this.state = next;
  }
}

const vocabularies = new WeakMap<TokenTrie, Map<string, GrammarVocabulary>>();
/** grammars kept per vocabulary (a client repeating its schema reuses the classified tokens) */
const GRAMMARS_KEPT = 16;

/** The grammar compiled for this tokenizer's vocabulary, from a small cache keyed by its text. */
export function grammarVocabulary(tokenizer: Tokenizer, grammarText: string): GrammarVocabulary {
  const trie = tokenTrie(tokenizer);
  let byText = vocabularies.get(trie);
  if (!byText) vocabularies.set(trie, (byText = new Map()));
  let vocabulary = byText.get(grammarText);
  if (vocabulary) {
    byText.delete(grammarText); // most recently used last
  } else {
    vocabulary = new GrammarVocabulary(trie, grammarText);
    if (byText.size >= GRAMMARS_KEPT) byText.delete(byText.keys().next().value!);
  }
  byText.set(grammarText, vocabulary);
  return vocabulary;
}

/** Whether `text` (as UTF-8) is a complete sentence of the grammar: the reference check for tests and tools. */
export function grammarAccepts(grammar: GrammarVocabulary | GrammarAutomaton, text: string): boolean {
  const automaton = grammar instanceof GrammarAutomaton ? grammar : grammar.automaton;
  const state = automaton.walk(automaton.initial, new TextEncoder().encode(text));
  return state !== DEAD && automaton.canEnd(state);
}
