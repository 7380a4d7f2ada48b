// What kiln needs from each model architecture (one file per architecture, as mlx-lm's models/):
//   - its hyper-parameters, read from GGUF metadata by its own keys;
//   - its weights, fetched by GGUF name AND expected shape through a TensorSource — that fetching code is the
//     architecture's tensor list: `tensorList` records it (for the estimator and the trainer), and a model
//     file's source checks every shape at load;
//   - its forward pass, written against ModelOps;
//   - the shape of its KV cache;
//   - optionally, how a Hugging Face checkpoint of it maps onto those names (its config keys and tensor names, as
//     llama.cpp's convert_hf_to_gguf.py and mlx-lm's `sanitize` map them).

import type { Metadata } from '../gguf/metadata.js';
import type { GGUFValue } from '../gguf/types.js';
import type { HFConfig } from '../hf/config.js';
import type { HParams } from './hparams.js';
import type { ModelOps } from './ops.js';

/** What a forward pass gives for the batch's output rows. */
export interface ModelOutput<T> {
  /** final hidden states [nOut, dim]: after the final norm in decoders, the last block's output in encoders */
  hidden: T;
  /** the language-model head: hidden states [rows, dim] (all of `hidden` or some of its rows) → logits [rows, vocab];
   * absent in an encoder without one */
  head?: (hidden: T) => T;
}

/** A model bound to its weights (of type W). */
export interface BoundModel<W> {
  forward<T>(ops: ModelOps<T, W>): ModelOutput<T>;
}

/** f16 values one position takes in one layer's cache: keys, and values (0: the values are read from the keys) */
export interface CacheRow {
  keys: number;
  values: number;
}

export interface TensorSource<W> {
  /** the tensor `name` of GGUF dims `dims` (fastest first); a missing or misshapen tensor is an error */
  need(name: string, dims: readonly number[]): W;
  /** as `need`, or undefined when the model has no such tensor */
  optional(name: string, dims: readonly number[]): W | undefined;
  /** a small tensor (rope factors) as floats, or undefined when absent */
  floats(name: string, dims: readonly number[]): Float32Array | undefined;
}

export interface Architecture<H extends HParams = HParams> {
  /** the `general.architecture` values it handles */
  readonly names: readonly string[];
  /** hyper-parameters from GGUF metadata */
  hparams(meta: Metadata): H;
  cacheRow(hp: H): CacheRow;
  bind<W>(hp: H, tensors: TensorSource<W>): BoundModel<W>;
  /** how a Hugging Face folder of this architecture is read (absent: GGUF only) */
  readonly hf?: HFNames;
}

/** A Hugging Face checkpoint in kiln's (GGUF's) vocabulary. */
export interface HFNames {
  /** config.json `architectures` entries read as this architecture */
  readonly classes: readonly string[];
  /** GGUF metadata from config.json, in the converter's order, general.file_type included */
  metadata(config: HFConfig, fileType: number): [string, GGUFValue][];
  /** GGUF tensor name by Hugging Face tensor name; `{N}` stands for a layer number */
  readonly tensors: Readonly<Record<string, string>>;
  /** Hugging Face tensors that are not weights (e.g. rotary caches): skipped */
  readonly ignored?: RegExp;
  /** GGUF tensors whose rows Hugging Face keeps in rotate-half order per head: 'q' split by head_count, 'k' by head_count_kv */
  readonly rotateHalf?: Readonly<Record<string, 'q' | 'k'>>;
  /** GGUF tensors Hugging Face stores transposed, [in, out] (GPT-2's Conv1D) */
  readonly transposed?: RegExp;
  /** GGUF tensors Hugging Face stores minus one (gemma's norms: x·(1 + w)) */
  readonly plusOne?: RegExp;
  /** tokenizer metadata the architecture's converter adds after the vocabulary's */
  readonly tokenizer?: readonly [string, GGUFValue][];
  /** config.json for a model's GGUF metadata (the inverse of `metadata`; absent: not exportable); `tied`: no output.weight */
  config?(meta: Metadata, tied: boolean): Record<string, unknown>;
}

export class TensorShapeError extends Error {
  constructor(readonly tensorName: string, readonly expected: readonly number[], readonly actual: readonly number[]) {
    super(`tensor "${tensorName}" has shape [${actual.join(', ')}], the architecture expects [${expected.join(', ')}]`);
    this.name = 'TensorShapeError';
  }
}

export class ModelTensorMissingError extends Error {
  constructor(readonly tensorName: string, readonly arch: string) {
    super(`model is missing tensor "${tensorName}" (required by the ${arch} architecture)`);
    this.name = 'ModelTensorMissingError';
  }
}

/** dims without trailing 1s: [64, 1] and [64] are the same shape */
function trimmed(dims: readonly number[]): number[] {
  const out = [...dims];
  while (out.length > 1 && out[out.length - 1] === 1) out.pop();
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  const [x, y] = [trimmed(a), trimmed(b)];
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/**
 * A TensorSource over tensors looked up by name, each checked against the shape the architecture asks for.
 * `find` gives a tensor with its dims; `toFloats` turns one into floats.
 */
export function checkedSource<W extends { dims: readonly number[] }>(
  arch: string, find: (name: string) => W | undefined, toFloats: (w: W) => Float32Array,
): TensorSource<W> {
  const optional = (name: string, dims: readonly number[]): W | undefined => {
    const w = find(name);
    if (w !== undefined && !sameShape(w.dims, dims)) throw new TensorShapeError(name, dims, w.dims);
    return w;
  };
  return {
    optional,
    need(name, dims) {
      const w = optional(name, dims);
      if (w === undefined) throw new ModelTensorMissingError(name, arch);
      return w;
    },
    floats(name, dims) {
      const w = optional(name, dims);
      return w === undefined ? undefined : toFloats(w);
    },
  };
}

/** One entry of an architecture's tensor list. */
export interface TensorSpec {
  name: string;
  /** GGUF dims, fastest first */
  dims: number[];
  /** the model may lack it (a bias, an untied output, rope factors) */
  optional: boolean;
}

/**
 * The tensors an architecture reads for these hyper-parameters, in the order it asks for them. `present` says
 * which optional tensors the model has (default: none) — e.g. an untied output.
 */
export function tensorList<H extends HParams>(arch: Architecture<H>, hp: H, present: (name: string) => boolean = () => false): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const record = (name: string, dims: readonly number[], optional: boolean) => {
    if (!specs.some((s) => s.name === name)) specs.push({ name, dims: [...dims], optional });
  };
  arch.bind<TensorSpec>(hp, {
    need(name, dims) {
      record(name, dims, false);
      return { name, dims: [...dims], optional: false };
    },
    optional(name, dims) {
      record(name, dims, true);
      return present(name) ? { name, dims: [...dims], optional: true } : undefined;
    },
    floats(name, dims) {
      record(name, dims, true);
      return undefined;
    },
  });
  return specs.filter((s) => !s.optional || present(s.name));
}
