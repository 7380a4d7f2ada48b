// A Hugging Face folder (config.json, model.safetensors or shards listed in model.safetensors.index.json, a
// tokenizer) read as a model in kiln's vocabulary: GGUF metadata keys and tensor names, as llama.cpp's
// convert_hf_to_gguf.py would write them, so that the folder goes through the same architecture bind as a GGUF.
// Every tensor is checked against the shape the config implies before any weight is read; weights are read straight
// to where the backend keeps them and rewritten in place where Hugging Face lays them out differently (layout.ts).

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadGGUF, placeInMemory, type TensorPlacer, GGUFModelFile } from '../gguf/model-file.js';
import { metaString, metaU32 } from '../gguf/writer.js';
import { readFully, readGGUFHeader, tensorSize } from '../gguf/reader.js';
import { platform, type FileSource, type RandomAccessFile } from '../platform/index.js';
import type { Metadata } from '../gguf/metadata.js';
import { GGUF_DEFAULT_ALIGNMENT, type GGUFHeader, type GGUFTensorInfo, type GGUFValue } from '../gguf/types.js';
import { ARCHITECTURES } from '../models/registry.js';
import { sameShape, tensorList, type Architecture, type HFNames } from '../models/architecture.js';
import { GGMLType } from '../tensor/ggml-type.js';
import { HFConfig } from './config.js';
import { HFError, readSafetensorsHeader, type SafetensorsTensor } from './safetensors.js';
import { tokenizerMetadata } from './tokenizer.js';
import { changeLayout, layoutChange, type LayoutChange } from './layout.js';
import { mapName, matchName } from './names.js';

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';

/** A stored tensor and the shard that holds it. */
export interface StoredTensor extends SafetensorsTensor {
  file: string;
}

/** One GGUF tensor, read from one checkpoint tensor or stacked from one per expert. */
export interface HFTensor {
  /** what it is read from, in order: one tensor, or every expert's (0 first) */
  parts: StoredTensor[];
  /** the first part's name and file (what errors name) */
  name: string;
  file: string;
  type: GGMLType;
  /** Hugging Face shape, outermost first (experts stacked outermost) */
  shape: number[];
  /** bytes of all parts */
  nBytes: number;
  ggufName: string;
  /** GGUF dims, fastest first (the shape reversed, but for transposed weights) */
  dims: number[];
  /** how its bytes differ from the GGUF tensor's (undefined: not at all) */
  change?: LayoutChange;
}

export interface HFCheckpoint {
  dir: string;
  config: HFConfig;
  arch: Architecture;
  /** the GGUF architecture name */
  archName: string;
  tensors: HFTensor[];
  /** GGUF metadata with `general.file_type` = fileType */
  metadata(fileType: number): Map<string, GGUFValue>;
}

/** Whether `path` is a folder: read as a Hugging Face checkpoint (whose missing files are named when it loads). */
export function isHFFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** The GGUF-keyed metadata of a model path: a GGUF file's, or what a Hugging Face folder converts to. */
export function readModelMetadata(path: string): Metadata {
  if (!isHFFolder(path)) return readGGUFHeader(path).metadata;
  const ckpt = openHFCheckpoint(path);
  return ckpt.metadata(storedFileType(ckpt.tensors));
}

/** Bytes of a model on disk: the GGUF file, or a folder's safetensors files. */
export function modelFileBytes(path: string): number {
  if (!isHFFolder(path)) return statSync(path).size;
  return readdirSync(path).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(path, f)).size, 0);
}

/** The architecture config.json's `architectures` names. */
function findArchitecture(config: HFConfig): { arch: Architecture; hf: HFNames } {
  const classes = config.values.architectures;
  if (!Array.isArray(classes) || classes.length === 0 || typeof classes[0] !== 'string') {
    throw new HFError('BAD_CONFIG', config.path, 'architectures', 'must list the model class (e.g. ["LlamaForCausalLM"])');
  }
  for (const arch of ARCHITECTURES) {
    if (arch.hf?.classes.includes(classes[0])) return { arch, hf: arch.hf };
  }
  const known = ARCHITECTURES.flatMap((a) => a.hf?.classes ?? []);
  throw new HFError('UNKNOWN_ARCHITECTURE', config.path, 'architectures', `${JSON.stringify(classes[0])} is not one kiln reads (${known.join(', ')})`);
}

/** The shards and which tensors each holds: the index file's weight_map, or the single model.safetensors. */
function shardFiles(dir: string): { index?: string; shards: Map<string, string[] | undefined> } {
  const indexPath = join(dir, INDEX);
  if (!existsSync(indexPath)) {
    if (!existsSync(join(dir, SINGLE))) throw new HFError('MISSING_FILE', dir, '', `holds neither ${SINGLE} nor ${INDEX}`);
    return { shards: new Map([[SINGLE, undefined]]) };
  }
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexPath, 'utf8')) as Record<string, unknown>).weight_map;
  } catch (e) {
    throw new HFError('BAD_CONFIG', indexPath, '', `is not JSON: ${(e as Error).message}`);
  }
  if (typeof map !== 'object' || map === null) throw new HFError('BAD_CONFIG', indexPath, 'weight_map', 'is missing');
  const shards = new Map<string, string[]>();
  for (const [tensor, file] of Object.entries(map)) {
    // a shard is a file of this folder: no paths
    if (typeof file !== 'string' || basename(file) !== file || !file.endsWith('.safetensors')) {
      throw new HFError('BAD_CONFIG', indexPath, `weight_map.${tensor}`, `names ${JSON.stringify(file)}, not a .safetensors file of the folder`);
    }
    if (!existsSync(join(dir, file))) throw new HFError('MISSING_SHARD', indexPath, `weight_map.${tensor}`, `names shard ${file}, which is missing`);
    shards.set(file, [...(shards.get(file) ?? []), tensor]);
  }
  return { index: indexPath, shards };
}

/** Stacks each GGUF tensor's per-expert parts (checked to be experts 0…n−1 of one dtype and shape). */
function stackExperts(ggufName: string, experts: Map<number, StoredTensor>): Omit<HFTensor, 'ggufName' | 'dims' | 'change'> {
  const parts = [...experts.keys()].sort((a, b) => a - b).map((e, i) => {
    const part = experts.get(e)!;
    if (e !== i) throw new HFError('MISSING_TENSOR', part.file, part.name, `is expert ${e}, but expert ${i} of ${ggufName} is missing`);
    const first = experts.get(0)!;
    if (part.type !== first.type || part.shape.join() !== first.shape.join()) {
      throw new HFError('BAD_SHAPE', part.file, part.name, `differs in dtype or shape from ${first.name}`);
    }
    return part;
  });
  return readFrom(parts, true);
}

/** A GGUF tensor read from `parts` in order (`stacked`: one per expert, stacked outermost), named by the first. */
function readFrom(parts: StoredTensor[], stacked: boolean): Omit<HFTensor, 'ggufName' | 'dims' | 'change'> {
  const [first] = parts;
  const shape = stacked ? [parts.length, ...first.shape] : first.shape;
  return { parts, name: first.name, file: first.file, type: first.type, shape, nBytes: parts.reduce((n, p) => n + p.end - p.begin, 0) };
}

/**
 * The checkpoint's tensors, each under its GGUF name, in the converter's order (shards by name, tensors by name; a
 * stacked expert tensor where its last expert comes).
 */
function checkpointTensors(dir: string, hf: HFNames, config: HFConfig): HFTensor[] {
  const { index, shards } = shardFiles(dir);
  // the head counts that split rotate-half rows (read only where the architecture has such tensors)
  const q = hf.rotateHalf ? config.count('num_attention_heads') : 0;
  const heads = { q, k: hf.rotateHalf ? config.count('num_key_value_heads', q) : 0 };
  const found: [string, StoredTensor][] = [];
  const experts = new Map<string, Map<number, StoredTensor>>();
  for (const file of [...shards.keys()].sort()) {
    const path = join(dir, file);
    const header = readSafetensorsHeader(path);
    const listed = shards.get(file);
    for (const name of listed ?? []) {
      if (!header.tensors.some((t) => t.name === name)) {
        throw new HFError('MISSING_SHARD', index!, `weight_map.${name}`, `says ${file} holds it, but it does not`);
      }
    }
    for (const t of [...header.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (listed && !listed.includes(t.name)) continue;
      if (hf.ignored?.test(t.name)) continue;
      const match = matchName(hf.tensors, t.name);
      if (match === undefined) throw new HFError('UNKNOWN_TENSOR', path, t.name, 'is not a tensor of this architecture');
      found.push([match.name, { ...t, file: path }]);
      if (match.expert !== undefined) experts.set(match.name, (experts.get(match.name) ?? new Map()).set(match.expert, { ...t, file: path }));
    }
  }
  const last = new Map(found.map(([ggufName], i) => [ggufName, i]));
  const tensors: HFTensor[] = [];
  found.forEach(([ggufName, t], i) => {
    if (last.get(ggufName) !== i) return; // an expert tensor is placed once, at its last part
    const read = experts.has(ggufName) ? stackExperts(ggufName, experts.get(ggufName)!) : readFrom([t], false);
    const change = layoutChange(hf, ggufName, heads);
    // GGUF dims are the torch Linear shape reversed; a transposed (Conv1D) weight's stored shape is that already
    tensors.push({ ...read, ggufName, dims: change?.transposed ? [...read.shape] : [...read.shape].reverse(), change });
  });
  return tensors;
}

/** llama.cpp's Metadata.id_to_title: the folder name, dashes as spaces, all-lowercase words capitalized. */
function titleOf(dir: string): string {
  return basename(dir.replace(/\/+$/, '')).trim().replace(/-/g, ' ').split(/\s+/)
    .map((w) => (w === w.toLowerCase() && !/^(v\d+(?:\.\d+)*|\d.*)$/.test(w) ? w.charAt(0).toUpperCase() + w.slice(1) : w)).join(' ');
}

/** gguf-py's model_weight_count_rounded_notation: 292800 → "293K", 7.24e9 → "7.2B". */
export function sizeLabel(count: number): string {
  const [scaled, suffix] = count > 1e12 ? [count * 1e-12, 'T'] : count > 1e9 ? [count * 1e-9, 'B'] : count > 1e6 ? [count * 1e-6, 'M'] : [count * 1e-3, 'K'];
  const digits = Math.max(2 - String(Math.round(scaled)).replace(/^0+/, '').length, 0);
  return scaled.toFixed(digits) + suffix;
}

/** Opens a Hugging Face folder: its config, architecture, tokenizer and tensor list, every shape checked. */
export function openHFCheckpoint(dir: string): HFCheckpoint {
  const config = HFConfig.read(join(dir, 'config.json'));
  const { arch, hf } = findArchitecture(config);
  const archName = arch.names[0];
  const tensors = checkpointTensors(dir, hf, config);
  const tokenizer = tokenizerMetadata(dir, config);
  const elements = tensors.reduce((n, t) => n + t.shape.reduce((a, d) => a * d, 1), 0);
  const metadata = (fileType: number) => new Map<string, GGUFValue>([
    ['general.architecture', metaString(archName)],
    ['general.type', metaString('model')],
    ['general.name', metaString(titleOf(dir))],
    ['general.size_label', metaString(sizeLabel(elements))],
    ...hf.metadata(config, fileType),
    ...tokenizer,
    ...(hf.tokenizer ?? []),
    ['general.quantization_version', metaU32(2)],
  ]);
  checkAgainstConfig(arch, metadata(0), tensors, config);
  return { dir, config, arch, archName, tensors, metadata };
}

/** Every tensor the architecture asks for must be there in the shape the config implies (named by file and tensor). */
function checkAgainstConfig(arch: Architecture, metadata: Map<string, GGUFValue>, tensors: HFTensor[], config: HFConfig): void {
  const byName = new Map(tensors.map((t) => [t.ggufName, t]));
  for (const spec of tensorList(arch, arch.hparams(metadata), (name) => byName.has(name))) {
    const t = byName.get(spec.name);
    const hfName = mapName(arch.hf!.tensors, spec.name, true) ?? spec.name;
    if (!t) throw new HFError('CONFIG_MISMATCH', config.path, hfName, `is required by the config (${arch.names[0]}) but no weights file holds it`);
    if (!sameShape(t.dims, spec.dims)) {
      throw new HFError('CONFIG_MISMATCH', t.file, t.name, `has shape [${t.shape.join(', ')}], config.json implies [${[...spec.dims].reverse().join(', ')}]`);
    }
    const heads = t.change?.rotateHeads;
    if (heads !== undefined && t.shape[0] % (2 * heads) !== 0) {
      throw new HFError('CONFIG_MISMATCH', t.file, t.name, `has ${t.shape[0]} rows, not a whole number of heads' rotary pairs for ${heads} heads`);
    }
  }
}

/** The GGUF file type (llama_ftype) that names the checkpoint's matrices' dtype: 0 F32, 1 F16, 32 BF16. */
export function storedFileType(tensors: readonly HFTensor[]): number {
  const matrix = tensors.find((t) => t.shape.length >= 2);
  return matrix?.type === GGMLType.BF16 ? 32 : matrix?.type === GGMLType.F16 ? 1 : 0;
}

/** The tensor infos of a GGUF holding these tensors in this order (offsets aligned as a GGUF's). */
function ggufInfos(tensors: readonly HFTensor[]): GGUFTensorInfo[] {
  let offset = 0;
  return tensors.map((t) => {
    const info = { name: t.ggufName, dims: t.dims, type: t.type, offset, ...tensorSize(t.ggufName, t.dims, t.type) };
    offset += Math.ceil(info.nBytes / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
    return info;
  });
}

/** Reads a checkpoint tensor (in GGUF's layout) into `into` at `at`; `fn` runs with that reader (files closed after). */
export function withTensorReader<T>(fn: (read: (t: HFTensor, into: Uint8Array, at: number) => void) => T): T {
  const files = new Map<string, RandomAccessFile>();
  try {
    return fn((t, into, at) => {
      let offset = at;
      for (const part of t.parts) {
        let file = files.get(part.file);
        if (file === undefined) files.set(part.file, (file = platform.openFile(part.file)));
        readFully(file, into, offset, part.end - part.begin, part.begin);
        offset += part.end - part.begin;
      }
      if (t.change) changeLayout(into.subarray(at, at + t.nBytes), t.type, t.shape, t.change);
    });
  } finally {
    for (const file of files.values()) file.close();
  }
}

/** A GGUF file (a path, or a Blob in a page), or a Hugging Face folder read as one, its weights placed by `place`. */
export function loadModelFile(source: FileSource, place: TensorPlacer = placeInMemory): GGUFModelFile {
  return typeof source === 'string' && isHFFolder(source) ? loadHFModel(source, place) : loadGGUF(source, place);
}

/** Loads a Hugging Face folder as a model file in GGUF's vocabulary, its weights placed by `place`. */
export function loadHFModel(dir: string, place: TensorPlacer = placeInMemory): GGUFModelFile {
  const ckpt = openHFCheckpoint(dir);
  const infos = ggufInfos(ckpt.tensors);
  const header: GGUFHeader = {
    version: 3, metadata: ckpt.metadata(storedFileType(ckpt.tensors)), tensors: infos, alignment: GGUF_DEFAULT_ALIGNMENT, dataOffset: 0, fileSize: 0,
  };
  const byName = new Map(ckpt.tensors.map((t) => [t.ggufName, t]));
  return withTensorReader((read) => place(dir, header, (info, into, at) => read(byName.get(info.name)!, into, at)));
}
