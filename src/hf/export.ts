// A model in kiln's (GGUF's) vocabulary written as a Hugging Face folder: config.json from the architecture's
// hyper-parameters, model.safetensors with Hugging Face's tensor names and layout (layout.ts, inverted), the
// vocabulary as tokenizer.model (SentencePiece) or tokenizer.json (byte-level BPE), and tokenizer_config.json.
// Reading the folder back (checkpoint.ts) gives the same tensors, hence the same logits.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getArray, getBool, getNumber, getString, requireString, type Metadata } from '../gguf/metadata.js';
import { writeGGUF, type GGUFWriteInput } from '../gguf/writer.js';
import { findArchitecture } from '../models/registry.js';
import type { Pooling } from '../models/hparams.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { dequantizeTensor } from '../tensor/index.js';
import { unicodeToBytes } from '../tokenizer/bytes-to-unicode.js';
import { hfTokenizerJsonText } from '../tokenizer/hf-tokenizer-json.js';
import { sentencePieceModelBytes } from '../tokenizer/sentencepiece-model.js';
import { TokenType } from '../tokenizer/vocab.js';
import { changeLayout, layoutChange } from './layout.js';
import { mapName } from './names.js';
import { DTYPES, HFError, safetensorsBytes, type SafetensorsInput } from './safetensors.js';
import { SPECIAL_KEYS, SPLIT_REGEX } from './tokenizer.js';

/** The folder's tensors: renamed, q/k rows de-interleaved, quantized ones as F32. */
function hfTensors(input: GGUFWriteInput, archName: string): SafetensorsInput[] {
  return input.tensors.flatMap((t): SafetensorsInput[] => {
    const whole = hfTensor(t, archName, input.metadata);
    if (!whole.name.includes('{E}')) return [whole];
    // a stacked expert tensor: one Hugging Face tensor per expert
    const [n, ...shape] = whole.shape, bytes = whole.data.length / n;
    return Array.from({ length: n }, (_, e) =>
      ({ ...whole, name: whole.name.replace('{E}', String(e)), shape, data: whole.data.subarray(e * bytes, (e + 1) * bytes) }));
  });
}

/** One GGUF tensor under its Hugging Face name (`{E}` left in where experts are stacked) and layout. */
function hfTensor(t: GGUFWriteInput['tensors'][number], archName: string, meta: Metadata): SafetensorsInput {
  const hf = findArchitecture(archName).hf!;
  const q = getNumber(meta, `${archName}.attention.head_count`)!;
  const heads = { q, k: getNumber(meta, `${archName}.attention.head_count_kv`) ?? q };
  const name = mapName(hf.tensors, t.name, true);
  if (name === undefined) throw new HFError('UNKNOWN_TENSOR', t.name, t.name, `has no Hugging Face name in ${archName}`);
  const stored = Object.values(DTYPES).includes(t.type);
  const type = stored ? t.type : GGMLType.F32;
  const floats = stored ? undefined : dequantizeTensor({ ...t, dims: [...t.dims] });
  const data = floats ? new Uint8Array(floats.buffer) : t.data.slice();
  const change = layoutChange(hf, t.name, heads);
  const shape = change?.transposed ? [...t.dims] : [...t.dims].reverse();
  if (change) changeLayout(data, type, shape, change, true);
  return { name, type, shape, data };
}

/** GGUF token types → SentencePiece's Type enum: the same numbers (NORMAL 1 … BYTE 6), UNDEFINED as NORMAL */
const pieceType = (type: number): number => (type >= TokenType.NORMAL && type <= TokenType.BYTE ? type : TokenType.NORMAL);

/** The vocabulary's own file: tokenizer.model for SentencePiece ("llama"), tokenizer.json for byte-level BPE ("gpt2"). */
function tokenizerFile(meta: Metadata): [string, Uint8Array | string] {
  const model = requireString(meta, 'tokenizer.ggml.model');
  const tokens = getArray<string>(meta, 'tokenizer.ggml.tokens') ?? [];
  const types = getArray<number>(meta, 'tokenizer.ggml.token_type') ?? [];
  if (model === 'llama') {
    const scores = getArray<number>(meta, 'tokenizer.ggml.scores') ?? [];
    const pieces = tokens.map((piece, i) => ({ piece, score: scores[i] ?? 0, type: pieceType(types[i] ?? 1) }));
    const addDummyPrefix = getBool(meta, 'tokenizer.ggml.add_space_prefix') ?? true;
    return ['tokenizer.model', sentencePieceModelBytes({ pieces, modelType: 2, byteFallback: types.includes(TokenType.BYTE), addDummyPrefix })];
  }
  if (model === 'gpt2') {
    const special = (i: number) => types[i] === TokenType.CONTROL || types[i] === TokenType.USER_DEFINED;
    const vocab = tokens.map((text, i) => (special(i) ? new TextEncoder().encode(text) : unicodeToBytes(text) ?? new TextEncoder().encode(text)));
    const merges = (getArray<string>(meta, 'tokenizer.ggml.merges') ?? []).map((m): [Uint8Array, Uint8Array] => {
      const [a, b] = m.split(' ');
      return [unicodeToBytes(a)!, unicodeToBytes(b)!];
    });
    const specials = tokens.flatMap((content, id) => (special(id) ? [{ id, content }] : []));
    return ['tokenizer.json', withSplit(hfTokenizerJsonText({ vocab, merges, specials }), getString(meta, 'tokenizer.ggml.pre') ?? 'gpt-2')];
  }
  if (model === 'bert') return ['tokenizer.json', wordPieceJson(tokens, types)];
  throw new HFError('BAD_TOKENIZER', 'tokenizer.ggml.model', 'tokenizer.ggml.model', `${model} vocabularies cannot be exported`);
}

/** A WordPiece tokenizer.json (BERT's) from the converter's phantom-space tokens: "▁x" → "x", "x" → "##x". */
function wordPieceJson(tokens: string[], types: number[]): string {
  const text = (t: string) => (/^\[.*\]$/.test(t) ? t : t.startsWith('\u2581') ? t.slice(1) : '##' + t);
  const added = tokens.flatMap((t, id) => (types[id] === TokenType.CONTROL || types[id] === TokenType.USER_DEFINED
    ? [{ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] === TokenType.CONTROL }] : []));
  return JSON.stringify({
    version: '1.0', added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
      vocab: Object.fromEntries(tokens.map((t, id) => [text(t), id])),
    },
  }, null, 2) + '\n';
}

/** tokenizer.json text whose pre-tokenizer splits by the regex of llama.cpp's pre-tokenizer `pre` before ByteLevel */
function withSplit(json: string, pre: string): string {
  if (pre === 'gpt-2') return json;
  const regex = SPLIT_REGEX[pre];
  if (regex === undefined) throw new HFError('BAD_TOKENIZER', 'tokenizer.ggml.pre', 'tokenizer.ggml.pre', `${pre} has no Hugging Face pre-tokenizer kiln writes`);
  const doc = JSON.parse(json) as Record<string, unknown>;
  doc.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ] };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** tokenizer_config.json: special token texts, add_bos/add_eos, the chat template. */
function tokenizerConfig(meta: Metadata): Record<string, unknown> {
  const tokens = getArray<string>(meta, 'tokenizer.ggml.tokens') ?? [];
  const out: Record<string, unknown> = {};
  for (const kind of ['bos', 'eos', 'unk', 'pad']) {
    const id = getNumber(meta, SPECIAL_KEYS[kind]);
    if (id !== undefined && tokens[id] !== undefined) out[`${kind}_token`] = tokens[id];
  }
  for (const kind of ['bos', 'eos']) {
    const add = getBool(meta, `tokenizer.ggml.add_${kind}_token`);
    if (add !== undefined) out[`add_${kind}_token`] = add;
  }
  const template = getString(meta, 'tokenizer.chat_template');
  if (template !== undefined) out.chat_template = template;
  out.tokenizer_class = getString(meta, 'tokenizer.ggml.model') === 'llama' ? 'LlamaTokenizer' : 'PreTrainedTokenizerFast';
  return out;
}

/** Writes `input` (a model as kiln writes a GGUF) as a Hugging Face folder `dir`. */
export function writeHFFolder(dir: string, input: GGUFWriteInput): void {
  const meta = input.metadata;
  const archName = requireString(meta, 'general.architecture');
  const arch = findArchitecture(archName);
  if (!arch.hf?.config) throw new HFError('UNKNOWN_ARCHITECTURE', dir, 'general.architecture', `${archName} models cannot be exported to a Hugging Face folder`);
  const tensors = hfTensors(input, archName);
  const config = { ...arch.hf.config(meta, !input.tensors.some((t) => t.name === 'output.weight')), torch_dtype: 'float32' };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  const [file, contents] = tokenizerFile(meta);
  writeFileSync(join(dir, file), contents);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig(meta), null, 2) + '\n');
  const pooling = arch.hparams(meta).pooling;
  if (pooling !== undefined) writePooling(dir, pooling);
}

/** sentence-transformers' modules.json and 1_Pooling/config.json: how an embedding model pools */
function writePooling(dir: string, pooling: Pooling): void {
  const mode = { mean: 'pooling_mode_mean_tokens', cls: 'pooling_mode_cls_token', last: 'pooling_mode_lasttoken' }[pooling];
  writeFileSync(join(dir, 'modules.json'), JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ], null, 2) + '\n');
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ [mode]: true }, null, 2) + '\n');
}

/** How a trained model is written: a GGUF file, or a Hugging Face folder. */
export type ModelFormat = 'gguf' | 'hf';
export const MODEL_FORMATS: readonly ModelFormat[] = ['gguf', 'hf'];

export async function writeModel(path: string, input: GGUFWriteInput, format: ModelFormat = 'gguf'): Promise<void> {
  if (format === 'hf') writeHFFolder(path, input);
  else await writeGGUF(path, input);
}
