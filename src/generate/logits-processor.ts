// Logits processors: per-sequence stages that run before the sampler's chain, in order (bias → grammar mask →
// then the chain's penalties, top-k, …). Each sees the full vocabulary's logits in id order and may change them
// in place (−Infinity forbids a token); `accept` tells it which token the step chose, so a stateful one (a
// grammar's parser) advances. `process` must not change state: a preempted sequence samples the same step again.

export interface LogitsProcessor {
  /** Adjusts the next token's logits [vocab] in place. */
  process(logits: Float32Array): void;
  /** The token this step chose. */
  accept(token: number): void;
}

export class LogitBiasError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogitBiasError';
  }
}

/** OpenAI's logit_bias: a value added to the logit of each listed token (−100 all but bans it, 100 all but forces it). */
export class LogitBias implements LogitsProcessor {
  private readonly ids: Int32Array;     // [entries]
  private readonly values: Float32Array; // [entries]

  constructor(bias: ReadonlyMap<number, number>, vocabSize: number) {
    for (const [id, value] of bias) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new LogitBiasError(`logit_bias token ${id} is not an id below ${vocabSize}`);
      if (!Number.isFinite(value)) throw new LogitBiasError(`logit_bias of token ${id} must be a finite number, got ${value}`);
    }
    this.ids = Int32Array.from(bias.keys());
    this.values = Float32Array.from(bias.values());
  }

  process(logits: Float32Array): void {
    for (let i = 0; i < this.ids.length; i++) logits[this.ids[i]] += this.values[i];
  }

  accept(): void {}
}
