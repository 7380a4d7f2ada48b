// Iteration-level scheduling (Orca / vLLM): every step picks which sequences advance and by how many
// tokens, so one forward batch mixes the decode token of each running sequence with chunks of prompts
// still being prefilled. A sequence's computed length is its block table's `length`; it advances by
// tokens.length − length (one token when decoding, the rest of its prompt when prefilling, cut to the
// token budget). When KV blocks run out, the newest running sequences are preempted by recompute: their
// blocks are freed and they go back to the head of the waiting queue, to be prefilled again later from all
// their tokens (prompt and generated so far), mostly out of the prefix cache.
// A sequence to embed is computed whole in one step, from position 0 and outside the prefix cache: an
// encoder's positions see each other, so none of its keys is known before the whole input is.

import type { BlockManager, BlockTable } from './block-manager.js';

export interface SchedulableSequence {
  /** every known token: the prompt, then the generated ones; the last one may not be computed yet */
  readonly tokens: readonly number[];
  readonly blocks: BlockTable;
  /** running sequences it will occupy (n for a prompt that forks into n completions once prefilled) */
  readonly width: number;
  /** computed whole in one step, without the prefix cache (an input to embed) */
  readonly whole?: boolean;
}

/** Positions start..start+count−1 of `seq` are computed this step. */
export interface ScheduledChunk<S> {
  seq: S;
  start: number;
  count: number;
}

export interface SchedulerLimits {
  /** running sequences at most */
  maxNumSeqs: number;
  /** tokens in one step's batch at most */
  maxNumBatchedTokens: number;
}

export class Scheduler<S extends SchedulableSequence> {
  /** admission order; preempted sequences return to the front */
  readonly waiting: S[] = [];
  /** oldest first; the newest are preempted first */
  readonly running: S[] = [];
  preemptions = 0;
  /** full prompt blocks looked up in the prefix cache / found there, at admission */
  private prefixLookups = 0;
  private prefixHits = 0;

  constructor(private readonly blocks: BlockManager, private readonly limits: SchedulerLimits) {}

  get prefixCacheHitRate(): number {
    return this.prefixLookups === 0 ? 0 : this.prefixHits / this.prefixLookups;
  }

  add(seq: S): void {
    this.waiting.push(seq);
  }

  /** a sequence that starts out running (a fork of a running one, already holding its blocks) */
  addRunning(seq: S): void {
    this.running.push(seq);
  }

  /** Takes a finished or aborted sequence out of the queues and frees its blocks. */
  remove(seq: S): void {
    for (const queue of [this.waiting, this.running]) {
      const i = queue.indexOf(seq);
      if (i >= 0) queue.splice(i, 1);
    }
    this.blocks.free(seq.blocks);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /**
   * This step's chunks (their blocks ready to be written): running sequences first, and of those the decoding ones
   * (one token each) before the chunks of prompts still being prefilled, so that a long prompt never delays the
   * decodes (vLLM's chunked prefill). Waiting sequences fill what is left of the token budget.
   */
  schedule(): ScheduledChunk<S>[] {
    let budget = this.limits.maxNumBatchedTokens;
    const chunks: ScheduledChunk<S>[] = [];
    const scheduled = new Set<S>();
    let preempted = false;
    const decoding = (seq: S) => seq.tokens.length - seq.blocks.length <= 1;
    const order = [...this.running.filter(decoding), ...this.running.filter((seq) => !decoding(seq))];
    for (const seq of order) {
      if (budget <= 0) break;
      if (!scheduled.has(seq) && !this.running.includes(seq)) continue; // preempted for an earlier one
      const start = seq.blocks.length;
      const count = Math.min(seq.tokens.length - start, budget);
      let preemptedItself = false;
      while (!preemptedItself && !this.blocks.canWrite(seq.blocks, start + count)) {
        // the newest running sequence not scheduled yet (at worst this one)
        let v = this.running.length - 1;
        while (scheduled.has(this.running[v])) v--;
        const [victim] = this.running.splice(v, 1);
        this.preempt(victim);
        preempted = true;
        preemptedItself = victim === seq;
      }
      if (preemptedItself) continue;
      this.blocks.prepareWrite(seq.blocks, start + count);
      chunks.push({ seq, start, count });
      scheduled.add(seq);
      budget -= count;
    }
    // admit waiting sequences only when nothing had to be preempted (vLLM's rule: memory is short)
    for (let first = true; !preempted && budget > 0 && this.waiting.length > 0; first = false) {
      const seq = this.waiting[0];
      if (this.runningWidth() + seq.width > this.limits.maxNumSeqs) break;
      if (!seq.whole) this.blocks.attachCachedPrefix(seq.blocks, seq.tokens);
      const start = seq.blocks.length;
      // a whole sequence longer than the budget left waits for a step's first admission, which may exceed the
      // budget by that sequence (at most the context length): it never starves behind running decodes
      const count = seq.whole ? seq.tokens.length : Math.min(seq.tokens.length - start, budget);
      if (seq.whole && count > budget && !first) break;
      if (!this.blocks.canWrite(seq.blocks, start + count)) {
        this.blocks.free(seq.blocks); // its cached blocks stay cached for the next try
        break;
      }
      if (!seq.whole) {
        this.prefixLookups += Math.floor(seq.tokens.length / this.blocks.blockSize);
        this.prefixHits += seq.blocks.blockTable.length;
      }
      this.blocks.prepareWrite(seq.blocks, start + count);
      this.running.push(this.waiting.shift() as S);
      chunks.push({ seq, start, count });
      budget -= count;
    }
    return chunks;
  }

  private runningWidth(): number {
    return this.running.reduce((sum, seq) => sum + seq.width, 0);
  }

  /** sequences waiting, counting the completions a prompt will fork (n) */
  get waitingWidth(): number {
    return this.waiting.reduce((sum, seq) => sum + seq.width, 0);
  }

  private preempt(seq: S): void {
    this.blocks.free(seq.blocks);
    this.waiting.unshift(seq);
    this.preemptions++;
  }
}
