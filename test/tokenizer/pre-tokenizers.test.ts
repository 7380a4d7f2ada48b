// Pre-tokenizer splits for the types whose vocabularies are too large to ship (llama3, qwen2, command-r,
// tekken): expected words worked out by hand from llama.cpp's splitters (the custom llama3 splitter, and
// std::regex on text whose non-ASCII whitespace is folded to \v).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { preTokenizer, splitWords } from '../../src/tokenizer/pre-tokenizers.js';

const split = (pre: string, text: string) => splitWords(text, preTokenizer(pre)!.regexes);

test('llama3: contractions, letters with one leading non-letter, numbers in threes, newline runs', () => {
  assert.deepEqual(split('llama-bpe', "Hello, y'ALL!  333333\n\n  x"),
    ['Hello', ',', ' y', "'ALL", '!', ' ', ' ', '333', '333', '\n\n', ' ', ' x']);
  // at the space, " '" is a punctuation word, so "'S" is no contraction here
  assert.deepEqual(split('llama3', "it's 'S"), ['it', "'s", " '", 'S']);
});

test('qwen2 splits numbers into single digits', () => {
  assert.deepEqual(split('qwen2', 'abc 12345'), ['abc', ' ', '1', '2', '3', '4', '5']);
});

test('gpt-2 and starcoder-style (command-r, smollm) splits', () => {
  assert.deepEqual(split('gpt-2', "I'm  fine"), ['I', "'m", ' ', ' fine']);
  assert.deepEqual(split('phi-2', ' \t\nx'), [' \t', '\n', 'x']);
  assert.deepEqual(split('command-r', 'x=12'), ['x', '=', '1', '2']);
});

test('tekken: upper-then-lower letter runs as llama.cpp adapts them (a non-ASCII letter counts as both)', () => {
  assert.deepEqual(split('tekken', 'HelloWorld ABCdef ÀB'), ['Hello', 'World', ' ABCdef', ' À', 'B']);
});

test('deepseek-llm: non-ASCII whitespace matches only \\s, not a literal range that contains it', () => {
  // U+3000 lies in the punctuation class's range U+3000-U+3002, but llama.cpp has turned it into \v by then
  assert.deepEqual(split('deepseek-llm', 'a\u3000b。\u3000c'), ['a', '\u3000b', '。', '\u3000c']);
});

test('unknown pre-tokenizer names are reported as such', () => {
  assert.equal(preTokenizer('no-such-pre'), undefined);
});
