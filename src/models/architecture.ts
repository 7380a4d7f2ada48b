// What kiln needs from each model architecture: which `general.architecture` names it handles, and, given the
// hyper-parameters and a way to fetch tensors by GGUF name, a forward pass.

import type { HParams } from './hparams.js';
import type { ModelOps } from './ops.js';

/** A model bound to its weights (of type W); `forward` returns logits [output rows, vocab]. */
export interface BoundModel<W> {
  forward<T>(ops: ModelOps<T, W>): T;
}

export interface TensorSource<W> {
  /** the tensor named `name`, or undefined when the file has none */
  get(name: string): W | undefined;
  /** a small tensor (norm, rope factors) as floats, or undefined */
  floats(name: string): Float32Array | undefined;
}

export interface Architecture {
  readonly names: readonly string[];
  bind<W>(hp: HParams, tensors: TensorSource<W>): BoundModel<W>;
}
