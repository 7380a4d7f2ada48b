// The one progress display of long work (training, quantization, perplexity, imatrix, tokenizer training): on a
// terminal a cli-progress bar that redraws in place, with lines that must stay (a tensor quantized, an evaluation)
// printed above it; anywhere else (a log file, a pipe) a plain line at the first step, then every `everySteps`
// steps or `everySeconds` seconds, whichever comes first, and at the last step: a log gets lines from the start.

import { MultiBar, type SingleBar } from 'cli-progress';

export interface ProgressOptions {
  /** where to write (default stderr, so that stdout keeps only results) */
  stream?: NodeJS.WriteStream;
  /** without a terminal: a line at least every this many steps (default: a tenth of the total) */
  everySteps?: number;
  /** without a terminal: a line at least every this many seconds (default 10) */
  everySeconds?: number;
}

/** 75 → "1m15s", 4000 → "1h06m" */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Redraws on a terminal at most this often (ms): long work calls update synchronously, with no timer running. */
const REDRAW_MS = 100;

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly bars?: MultiBar;
  private readonly bar?: SingleBar;
  private readonly everySteps: number | undefined;
  private readonly everyMs: number;
  private readonly started = performance.now();
  /** the step before the first one reported: work resumed at a later step reports its rate from there */
  private firstDone: number | undefined;
  /** step and time of the last line (or redraw on a terminal) */
  private lastStep = 0;
  private lastTime = -Infinity;

  /** `label` names the steps ("step", "chunk", "tensor"); `total` is how many there are (update may correct it) */
  constructor(private readonly label: string, private total: number, options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.everySteps = options.everySteps;
    this.everyMs = 1000 * (options.everySeconds ?? 10);
    if (this.stream.isTTY !== true) return;
    this.bars = new MultiBar({
      stream: this.stream,
      format: `${label} {value}/{total} [{bar}]{status} | ETA {eta_formatted}`,
      barsize: 24,
      etaBuffer: 50,
    });
    this.bar = this.bars.create(total, 0, { status: '' });
  }

  /**
   * `done` of the `total` steps are finished (work that learns its total once it starts gives it here); `status`
   * says how it goes ("loss 2.31 | 5400 tok/s").
   */
  update(done: number, status = '', total = this.total): void {
    const now = performance.now();
    this.total = total;
    this.firstDone ??= done - 1;
    if (this.bars && this.bar) {
      if (this.bar.getTotal() !== total) this.bar.setTotal(total);
      this.bar.update(done, { status: status && ` ${status}` });
      if (done === this.total || now - this.lastTime >= REDRAW_MS) {
        this.bars.update();
        this.lastTime = now;
      }
      return;
    }
    const first = this.lastTime === -Infinity;
    const everySteps = this.everySteps ?? Math.max(1, Math.round(total / 10));
    if (!first && done < total && done - this.lastStep < everySteps && now - this.lastTime < this.everyMs) return;
    this.lastStep = done;
    this.lastTime = now;
    this.stream.write(`${this.line(done, status, now)}\n`);
  }

  /** A line that stays: above the bar on a terminal, in order with the progress lines elsewhere. */
  log(line: string): void {
    if (this.bars) {
      this.bars.log(`${line}\n`);
      this.bars.update();
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the bar (leaving its last state on the screen); its redraw timer would otherwise keep the process alive. */
  stop(): void {
    this.bars?.stop();
  }

  /** "step 40/200 | loss 2.31 | 12s elapsed, ETA 48s" */
  private line(done: number, status: string, now: number): string {
    const elapsed = (now - this.started) / 1000;
    const eta = (elapsed / (done - this.firstDone!)) * (this.total - done);
    return [`${this.label} ${done}/${this.total}`, status, `${duration(elapsed)} elapsed, ETA ${duration(eta)}`].filter(Boolean).join(' | ');
  }
}

/** Runs `work` with a progress display of `total` steps, ended however the work ends. */
export async function withProgress<T>(label: string, total: number, work: (progress: Progress) => T | Promise<T>, options?: ProgressOptions): Promise<T> {
  const progress = new Progress(label, total, options);
  try {
    return await work(progress);
  } finally {
    progress.stop();
  }
}

/** What a training step reports: its loss, the latest validation loss, and the speed where known. */
export interface TrainingStep {
  step: number;
  loss: number;
  valLoss?: number;
  tokensPerSecond?: number;
}

/** Shows training steps on `progress`; each new validation loss also gets a line of its own that stays. */
export function showTrainingSteps(progress: Progress): (s: TrainingStep) => void {
  let lastVal: number | undefined;
  return ({ step, loss, valLoss, tokensPerSecond }) => {
    if (valLoss !== undefined && valLoss !== lastVal) progress.log(`step ${step}: validation loss ${valLoss.toFixed(4)}`);
    lastVal = valLoss;
    const speed = tokensPerSecond === undefined ? '' : ` | ${Math.round(tokensPerSecond)} tok/s`;
    progress.update(step, `loss ${loss.toFixed(4)}${valLoss === undefined ? '' : ` | val ${valLoss.toFixed(4)}`}${speed}`);
  };
}
