// Stop strings over streamed text. Text is released as soon as it cannot be the start of a stop string;
// a possible start is held back until later text confirms or rules it out. On a match the output ends
// just before the stop string, which is itself never emitted (OpenAI's behaviour).
// The match chosen is the one that completes first (earliest end; at equal ends the longer one), so the
// result does not depend on how the text was split into chunks.

export class StopStringError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StopStringError';
  }
}

export interface StopResult {
  /** text safe to emit now */
  text: string;
  /** true once a stop string has matched; nothing more is emitted after that */
  stopped: boolean;
  /** the stop string that matched, when stopped */
  matched?: string;
}

export class StopMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private matchedStop: string | undefined;

  constructor(stops: readonly string[]) {
    for (const stop of stops) {
      if (typeof stop !== 'string' || stop.length === 0) throw new StopStringError('stop strings must be non-empty strings');
    }
    this.stops = [...stops];
  }

  get stopped(): boolean {
    return this.matchedStop !== undefined;
  }

  /** Feeds the next decoded chunk; returns what can be emitted now. */
  push(chunk: string): StopResult {
    if (this.matchedStop !== undefined) return { text: '', stopped: true, matched: this.matchedStop };
    const text = this.held + chunk;
    const match = this.firstMatch(text);
    if (match) {
      this.held = '';
      this.matchedStop = match.stop;
      return { text: text.slice(0, match.start), stopped: true, matched: match.stop };
    }
    const holdLength = this.longestStopPrefixSuffix(text);
    this.held = text.slice(text.length - holdLength);
    return { text: text.slice(0, text.length - holdLength), stopped: false };
  }

  /** Ends the stream: feeds the last chunk and releases any held text that no stop string completed. */
  flush(lastChunk = ''): string {
    const result = this.push(lastChunk);
    if (result.stopped) return result.text;
    const rest = this.held;
    this.held = '';
    return result.text + rest;
  }

  /** The stop occurrence in `text` with the earliest end (ties: earliest start), if any. */
  private firstMatch(text: string): { start: number; stop: string } | undefined {
    let best: { start: number; end: number; stop: string } | undefined;
    for (const stop of this.stops) {
      const start = text.indexOf(stop); // a string's first occurrence is also its earliest-ending one
      if (start < 0) continue;
      const end = start + stop.length;
      if (!best || end < best.end || (end === best.end && start < best.start)) best = { start, end, stop };
    }
    return best;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string (0 if none). */
  private longestStopPrefixSuffix(text: string): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, text.length); length > longest; length--) {
        if (text.endsWith(stop.slice(0, length))) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }
}
