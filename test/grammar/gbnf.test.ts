// The GBNF engine on grammars in llama.cpp's syntax (test/grammar/grammars: a JSON object, arithmetic, a list, chess): sentences accepted and rejected whole, the vocabulary mask
// equal to checking every token by itself, and random JSON documents accepted token by token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compileGrammar, GrammarError } from '../../src/grammar/gbnf.js';
import { DEAD, GrammarAutomaton } from '../../src/grammar/automaton.js';
import { grammarAccepts, grammarVocabulary, type GrammarVocabulary } from '../../src/grammar/vocab-mask.js';
import { Model } from '../../src/generate/model.js';
import { Rng } from '../../src/generate/rng.js';
import { sharedPath } from '../shared.js';

const grammarText = (name: string) => readFileSync(new URL(`./grammars/${name}.gbnf`, import.meta.url), 'utf8');
const automaton = (name: string) => new GrammarAutomaton(compileGrammar(grammarText(name)));

const CASES: Record<string, { accept: string[]; reject: string[] }> = {
  json: {
    accept: [
      '{}', '{"a": 1}', '{"a":[1, 2.5, -3e12, 0.25E+4],"b":{"c":null,"d":true, "e": false}}',
      '{"s": "esc \\" \\\\ \\n \\u00e9 ü 中 🎉"}', '{\n  "x": "y"\n}', '{ "nested": [[], {}, [{"k": []}]] } ',
    ],
    reject: [
      '[]', '{"a": 1,}', "{'a': 1}", '{"a": 01}', '{"a": "\\x"}', '{"a" 1}', '{"a": tru}', '{"a": "ctrl\u0001"}', '{"a": 1', '"s"', '{"a": 1}}',
    ],
  },
  arithmetic: {
    accept: ['1+2=3\n', 'x*(y+2)=z\n', 'a = b\n', '(a +b)*c=d\n1=1\n', 'foo_1/bar2=baz\n'],
    reject: ['1+2=3', '=3\n', '1++2=3\n', 'A=1\n', '(1+2=3\n', ''],
  },
  list: {
    accept: ['- a\n', '- a\n- bc d\n', '- ü and 中\n'],
    reject: ['- \n', '* a\n', '- a', '- a\u2028b\n', '', '- a\n\n'],
  },
  chess: {
    accept: ['1. e4 e5\n2. Nf3 Nc6\n', '1. d4 Nf6\n2. c4 e6\n3. Nc3 Bb4\n', '1. e4 e5\n2. O-O O-O-O\n10. exd5 Qxd5+\n', '1. e4 e5\n2. e8=Q Kxe8#\n'],
    reject: ['1. e4 e5\n', '1. e9 e5\n2. Nf3 Nc6\n', '1. Zf3 e5\n2. a3 a6\n', '1. e4 e5\n0. a3 a6\n', '1. e4  e5\n2. a3 a6\n'],
  },
};

for (const [name, { accept, reject }] of Object.entries(CASES)) {
  test(`${name}.gbnf accepts what it should and rejects what it should`, () => {
    const a = automaton(name);
    for (const text of accept) assert.ok(grammarAccepts(a, text), `${name} should accept ${JSON.stringify(text)}`);
    for (const text of reject) assert.ok(!grammarAccepts(a, text), `${name} should reject ${JSON.stringify(text)}`);
  });
}

test('bad grammars are GrammarErrors that say what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['value ::= "x"', /no root/], ['root ::= thing', /thing is used but not defined/], ['root ::= root "x" | "y"', /left-recursive/],
    ['root ::= a\na ::= b? a "x"\nb ::= "y"', /left-recursive/], ['root ::= "abc', /unterminated/], ['root ::= [a-', /unterminated/],
    ['root = "x"', /expected ::=/], ['root ::= "x"{3,1}', /out of range/], ['root ::= "\\q"', /unknown escape/], ['root ::= *', /without an item/],
    ['root ::= "x"\nroot ::= "y"', /defined twice/], [`root ::= "${'a'.repeat(2000)}"{1000}`, /larger than/],
  ];
  for (const [text, message] of cases) assert.throws(() => compileGrammar(text), (e: unknown) => e instanceof GrammarError && message.test(e.message), text);
});

test('repetitions {m}, {m,}, {m,n}, {,n} count as llama.cpp counts them', () => {
  const accepts = (grammar: string, text: string) => grammarAccepts(new GrammarAutomaton(compileGrammar(grammar)), text);
  assert.ok(accepts('root ::= "a"{3}', 'aaa') && !accepts('root ::= "a"{3}', 'aa') && !accepts('root ::= "a"{3}', 'aaaa'));
  assert.ok(accepts('root ::= "a"{2,}', 'aaaaa') && !accepts('root ::= "a"{2,}', 'a'));
  assert.ok(accepts('root ::= "a"{1,3}', 'aaa') && !accepts('root ::= "a"{1,3}', 'aaaa') && !accepts('root ::= "a"{1,3}', ''));
  assert.ok(accepts('root ::= "a"{,2} "b"', 'b') && accepts('root ::= "a"{,2} "b"', 'aab') && !accepts('root ::= "a"{,2} "b"', 'aaab'));
  assert.ok(accepts('root ::= ("ab" | [c-d])+ .', 'abdcab!') && !accepts('root ::= ("ab" | [c-d])+ .', 'ab'));
});

// -------------------------------------------------------------------------------------------------------------
// The vocabulary mask

const stories = Model.load(sharedPath('data', 'models', 'stories260K.gguf')).tokenizer;
const gpt2 = Model.load(sharedPath('conformance', 'models', 'gpt2-f16.gguf')).tokenizer;

/** The mask's answer for every token against walking the token's bytes from the state. */
function assertMaskExact(vocabulary: GrammarVocabulary, state: number, what: string): void {
  const mask = vocabulary.mask(state);
  const { automaton, trie } = vocabulary;
  for (let id = 0; id < trie.vocabSize; id++) {
    const bytes = trie.tokenBytes[id];
    const expected = bytes.length > 0 && automaton.walk(state, bytes) !== DEAD;
    const got = ((mask[id >>> 5] >>> (id & 31)) & 1) === 1;
    if (got !== expected) assert.fail(`${what}: token ${id} ${JSON.stringify(new TextDecoder().decode(bytes))} masked ${got}, walk says ${expected}`);
  }
}

/** A random JSON value, as json.gbnf writes it (no NaN, ASCII and non-ASCII strings, nesting up to `depth`). */
function randomJson(rng: Rng, depth: number): unknown {
  const pick = Math.floor(rng.nextFloat() * (depth > 0 ? 7 : 5));
  const word = () => Array.from({ length: Math.floor(rng.nextFloat() * 6) }, () => 'ab "\\é\n中zq'[Math.floor(rng.nextFloat() * 11)]).join('');
  switch (pick) {
    case 0: return Math.floor(rng.nextFloat() * 2000) - 1000;
    case 1: return word();
    case 2: return rng.nextFloat() < 0.5;
    case 3: return null;
    case 4: return Math.round(rng.nextFloat() * 1e4) / 100;
    case 5: return Array.from({ length: Math.floor(rng.nextFloat() * 4) }, () => randomJson(rng, depth - 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(rng.nextFloat() * 4) }, () => [word(), randomJson(rng, depth - 1)]));
  }
}

/** `text` cut into the longest tokens from its start (a tokenization a model may sample, SentencePiece's space aside). */
function greedyTokens(vocabulary: GrammarVocabulary, text: string): number[] {
  const { trie } = vocabulary;
  const bytes = new TextEncoder().encode(text);
  const tokens: number[] = [];
  for (let at = 0; at < bytes.length;) {
    let node = 0, best = -1, bestEnd = at;
    for (let i = at; i < bytes.length; i++) {
      let child = -1;
      for (let e = trie.edgesLo[node]; e < trie.edgesHi[node]; e++) if (trie.edgeByte[e] === bytes[i]) child = trie.edgeNode[e];
      if (child < 0) break;
      node = child;
      if (trie.endsHi[node] > trie.rangeLo[node]) { best = trie.sortedIds[trie.rangeLo[node]]; bestEnd = i + 1; }
    }
    assert.ok(best >= 0, `no token starts ${JSON.stringify(text.slice(at))}`);
    tokens.push(best);
    at = bestEnd;
  }
  return tokens;
}

for (const [name, tokenizer] of [['stories260K (512 tokens)', stories], ['gpt2 (50257 tokens)', gpt2]] as const) {
  test(`${name}: random JSON documents are accepted token by token; each step's mask is exact; corruptions are rejected`, () => {
    const vocabulary = grammarVocabulary(tokenizer, grammarText('json'));
    const { automaton } = vocabulary;
    const rng = new Rng(17);
    for (let doc = 0; doc < 12; doc++) {
      const value = Object.fromEntries([['k', randomJson(rng, 3)], ['n', randomJson(rng, 2)]]);
      const text = JSON.stringify(value, null, doc % 2 === 0 ? undefined : 1);
      const tokens = greedyTokens(vocabulary, text);
      const processor = vocabulary.processor();
      let state = automaton.initial;
      tokens.forEach((token, i) => {
        const logits = new Float32Array(tokenizer.vocabSize);
        processor.process(logits);
        assert.notEqual(logits[token], -Infinity, `doc ${doc} token ${i} of ${JSON.stringify(text)} masked`);
        if (i % 4 === 0 && name.startsWith('stories')) assertMaskExact(vocabulary, state, `doc ${doc} step ${i}`);
        processor.accept(token);
        state = automaton.walk(state, vocabulary.trie.tokenBytes[token]);
      });
      assert.ok(processor.complete, `doc ${doc} complete`);
      // corruptions: a byte cut, or a character the grammar cannot take where it stands
      for (const bad of [text.slice(0, -1), text.replace(':', ''), text + '}', text.replace('{', '['), `${text.slice(0, 1)}x${text.slice(1)}`]) {
        assert.ok(!grammarAccepts(vocabulary, bad), `corruption ${JSON.stringify(bad)} accepted`);
      }
    }
  });
}

test('gpt2 vocabulary: masks at sampled states equal the token-by-token check', () => {
  const vocabulary = grammarVocabulary(gpt2, grammarText('json'));
  const text = '{"name": "Ada Lovelace", "tags": ["x", 12.5e3, {"deep": [true, null]}], "q": "a\\"b"}';
  let state = vocabulary.automaton.initial;
  for (const [i, byte] of [...new TextEncoder().encode(text)].entries()) {
    if (i % 7 === 0) assertMaskExact(vocabulary, state, `after ${JSON.stringify(text.slice(0, i))}`);
    state = vocabulary.automaton.step(state, byte);
  }
});
