// The progress display away from a terminal: a line at the first step, then every N steps or every so many
// seconds, and at the last step; lines that stay come in order with them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, duration } from '../../src/cli/progress.js';

/** a stream that is not a terminal, keeping what is written */
function logFile(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = { isTTY: false, write: (chunk: string) => { text += chunk; return true; } } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.trimEnd().split('\n') };
}

test('not a terminal: the first step, every tenth of the total, the last step', () => {
  const { stream, lines } = logFile();
  const progress = new Progress('step', 100, { stream, everySeconds: 3600 });
  for (let step = 1; step <= 100; step++) progress.update(step, `loss ${(1 / step).toFixed(3)}`);
  progress.stop();
  const steps = lines().map((l) => Number(/^step (\d+)\/100 \| loss [0-9.]+ \| \d+m\d\ds elapsed, ETA \d+m\d\ds$/.exec(l)![1]));
  assert.deepEqual(steps, [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]);
});

test('not a terminal: every N steps when asked, every update once the interval has passed, lines that stay in order', () => {
  const few = logFile();
  const every25 = new Progress('chunk', 60, { stream: few.stream, everySteps: 25, everySeconds: 3600 });
  for (let chunk = 1; chunk <= 60; chunk++) every25.update(chunk);
  assert.deepEqual(few.lines().map((l) => l.split(' |')[0]), ['chunk 1/60', 'chunk 26/60', 'chunk 51/60', 'chunk 60/60']);

  const timed = logFile();
  const always = new Progress('tensor', 3, { stream: timed.stream, everySteps: 100, everySeconds: 0 });
  always.update(1);
  always.log('kept line');
  always.update(2);
  always.update(3, '', 4); // the total may be learned late
  assert.deepEqual(timed.lines().map((l) => l.split(' |')[0]), ['tensor 1/3', 'kept line', 'tensor 2/3', 'tensor 3/4']);
});

test('durations', () => {
  assert.equal(duration(75), '1m15s');
  assert.equal(duration(4000), '1h06m');
  assert.equal(duration(Infinity), '?');
});
