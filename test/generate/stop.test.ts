import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopMatcher, StopStringError } from '../../src/generate/stop.js';

/** Feeds the chunks, then flushes; returns everything emitted and whether a stop matched. */
function run(stops: string[], chunks: string[]): { text: string; stopped: boolean } {
  const matcher = new StopMatcher(stops);
  let text = '';
  for (const chunk of chunks) {
    const result = matcher.push(chunk);
    text += result.text;
    if (result.stopped) return { text, stopped: true };
  }
  return { text: text + matcher.flush(), stopped: false };
}

test('a stop string split across chunks is matched and excluded', () => {
  const matcher = new StopMatcher(['\n\nUser:']);
  assert.deepEqual(matcher.push('Hello\n'), { text: 'Hello', stopped: false });
  assert.deepEqual(matcher.push('\nUs'), { text: '', stopped: false });
  assert.deepEqual(matcher.push('er: hi'), { text: '', stopped: true, matched: '\n\nUser:' });
  assert.equal(matcher.stopped, true);
  assert.deepEqual(matcher.push('more'), { text: '', stopped: true, matched: '\n\nUser:' });
});

test('held text is released as soon as it can no longer start a stop string', () => {
  const matcher = new StopMatcher(['abc']);
  assert.deepEqual(matcher.push('xab'), { text: 'x', stopped: false });
  assert.deepEqual(matcher.push('d'), { text: 'abd', stopped: false });
  assert.deepEqual(matcher.push('a'), { text: '', stopped: false });
  assert.equal(matcher.flush(), 'a');
  assert.equal(matcher.stopped, false);
});

test('flush feeds the last chunk and can still match in it', () => {
  const matcher = new StopMatcher(['END']);
  assert.equal(matcher.push('done E').text, 'done ');
  assert.equal(matcher.flush('ND tail'), '');
  assert.equal(matcher.stopped, true);
});

test('overlapping prefixes: "aab" inside "aaab"', () => {
  const matcher = new StopMatcher(['aab']);
  assert.deepEqual(matcher.push('aa'), { text: '', stopped: false });
  assert.deepEqual(matcher.push('a'), { text: 'a', stopped: false });
  assert.deepEqual(matcher.push('b!'), { text: '', stopped: true, matched: 'aab' });
});

test('multiple stop strings: the one completing first wins', () => {
  assert.deepEqual(run(['abcd', 'bc'], ['abcd']), { text: 'a', stopped: true });
  assert.deepEqual(run(['abcd', 'bc'], ['ab', 'cd']), { text: 'a', stopped: true });
  assert.deepEqual(run(['x', 'y'], ['12y3x']), { text: '12', stopped: true });
  // equal ends: the longer one (earlier start) is excluded
  assert.deepEqual(run(['b', 'ab'], ['zab']), { text: 'z', stopped: true });
  assert.deepEqual(run(['</s>', '<|im_end|>'], ['Hi <|im', '_end|> no']), { text: 'Hi ', stopped: true });
});

test('no stop strings passes everything through at once', () => {
  const matcher = new StopMatcher([]);
  assert.deepEqual(matcher.push('anything'), { text: 'anything', stopped: false });
  assert.equal(matcher.flush(), '');
});

test('the result does not depend on how the text is chunked', () => {
  const cases: Array<[string[], string]> = [
    [['aab'], 'xaaaabyy'],
    [['abcd', 'bc'], 'zzabcdz'],
    [['ab', 'ba'], 'aaabab'],
    [['\n\n', 'User:'], 'a\nb\n\nUser:'],
    [['abab'], 'abaabababa'],
    [['zzz'], 'no stop here at all'],
  ];
  for (const [stops, text] of cases) {
    const whole = run(stops, [text]);
    const n = text.length;
    // every way to cut the text into chunks: bit i of `cuts` set means a cut after character i
    for (let cuts = 0; cuts < 1 << (n - 1); cuts++) {
      const chunks: string[] = [];
      let start = 0;
      for (let i = 0; i < n - 1; i++) if (cuts & (1 << i)) { chunks.push(text.slice(start, i + 1)); start = i + 1; }
      chunks.push(text.slice(start));
      assert.deepEqual(run(stops, chunks), whole, `${JSON.stringify(stops)} on ${JSON.stringify(chunks)}`);
    }
  }
  assert.deepEqual(run(['aab'], ['xaaaabyy']), { text: 'xaa', stopped: true });
  assert.deepEqual(run(['zzz'], ['no stop here at all']), { text: 'no stop here at all', stopped: false });
});

test('empty stop strings are rejected', () => {
  assert.throws(() => new StopMatcher(['ok', '']), StopStringError);
});
