// Streaming detokenization: feed generated token ids one at a time, get back only whole UTF-8 characters.
// A character split across tokens (an emoji as byte tokens, say) is held back until its last byte arrives.

import type { PieceOptions, Tokenizer } from './tokenizer.js';

export class StreamDecoder {
  // TextDecoder in stream mode keeps an incomplete trailing sequence for the next call;
  // bytes that can never form a character come out as U+FFFD
  private utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(private readonly tokenizer: Tokenizer, private readonly options: PieceOptions = {}) {}

  /** The text that the token completes (possibly empty). */
  push(id: number): string {
    return this.utf8.decode(this.tokenizer.decodeToken(id, this.options), { stream: true });
  }

  /** Whatever is still held back, as U+FFFD for an unfinished character; the decoder starts afresh. */
  flush(): string {
    return this.utf8.decode();
  }
}
