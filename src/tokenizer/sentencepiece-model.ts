// SentencePiece's `tokenizer.model`: a protobuf ModelProto (sentencepiece_model.proto). kiln reads and writes the
// fields a vocabulary needs, with a small protobuf reader that checks every length against the bytes left:
//   ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec trainer_spec   3: NormalizerSpec normalizer_spec
//   SentencePiece   1: string piece   2: float score   3: Type type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6)
//   TrainerSpec     3: ModelType model_type (UNIGRAM 1, BPE 2, WORD 3, CHAR 4)   35: bool byte_fallback
//   NormalizerSpec  3: bool add_dummy_prefix (default true)
// Other fields are skipped.

export class SentencePieceModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SentencePieceModelError';
  }
}

export interface SentencePiece {
  piece: string;
  score: number;
  /** SentencePiece's Type enum (NORMAL when absent) */
  type: number;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  /** UNIGRAM 1, BPE 2 (UNIGRAM when absent) */
  modelType: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
}

const VARINT = 0, FIXED64 = 1, BYTES = 2, FIXED32 = 5;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the fields of one message: `field(number, wireType, reader)` consumes each value it wants. */
class ProtoReader {
  private view: DataView;
  pos: number;

  constructor(private readonly bytes: Uint8Array, private readonly end = bytes.length, start = 0) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  varint(): number {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.pos >= this.end) throw new SentencePieceModelError(`truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      if (shift < 53) value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new SentencePieceModelError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** the next length-delimited value's [start, end) */
  span(): [number, number] {
    const length = this.varint();
    if (length > this.end - this.pos) throw new SentencePieceModelError(`a field of ${length} bytes at byte ${this.pos} runs past its message's end ${this.end}`);
    this.pos += length;
    return [this.pos - length, this.pos];
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new SentencePieceModelError(`truncated float at byte ${this.pos}`);
    this.pos += 4;
    return this.view.getFloat32(this.pos - 4, true);
  }

  string(): string {
    const [start, end] = this.span();
    try {
      return utf8.decode(this.bytes.subarray(start, end));
    } catch {
      throw new SentencePieceModelError(`string at byte ${start} is not UTF-8`);
    }
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT: this.varint(); return;
      case FIXED64: this.pos += 8; break;
      case BYTES: this.span(); return;
      case FIXED32: this.pos += 4; break;
      default: throw new SentencePieceModelError(`unsupported protobuf wire type ${wireType} at byte ${this.pos}`);
    }
    if (this.pos > this.end) throw new SentencePieceModelError(`field runs past its message's end ${this.end}`);
  }

  fields(onField: (field: number, wireType: number) => boolean): void {
    while (this.pos < this.end) {
      const key = this.varint();
      const [field, wireType] = [Math.floor(key / 8), key & 7];
      if (!onField(field, wireType)) this.skip(wireType);
    }
  }

  /** a nested message's reader */
  message(): ProtoReader {
    const [start, end] = this.span();
    return new ProtoReader(this.bytes, end, start);
  }
}

function expectWire(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new SentencePieceModelError(`${what} has wire type ${actual}, expected ${expected}`);
}

/** Parses a tokenizer.model. */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const model: SentencePieceModel = { pieces: [], modelType: 1, byteFallback: false, addDummyPrefix: true };
  const top = new ProtoReader(bytes);
  top.fields((field, wire) => {
    if (field === 1) {
      expectWire(wire, BYTES, 'ModelProto.pieces');
      const piece: SentencePiece = { piece: '', score: 0, type: 1 };
      const r = top.message();
      r.fields((f, w) => {
        if (f === 1) { expectWire(w, BYTES, 'SentencePiece.piece'); piece.piece = r.string(); return true; }
        if (f === 2) { expectWire(w, FIXED32, 'SentencePiece.score'); piece.score = r.float(); return true; }
        if (f === 3) { expectWire(w, VARINT, 'SentencePiece.type'); piece.type = r.varint(); return true; }
        return false;
      });
      model.pieces.push(piece);
      return true;
    }
    if (field === 2 || field === 3) {
      expectWire(wire, BYTES, field === 2 ? 'ModelProto.trainer_spec' : 'ModelProto.normalizer_spec');
      const r = top.message();
      r.fields((f, w) => {
        if (w !== VARINT) return false;
        if (field === 2 && f === 3) model.modelType = r.varint();
        else if (field === 2 && f === 35) model.byteFallback = r.varint() !== 0;
        else if (field === 3 && f === 3) model.addDummyPrefix = r.varint() !== 0;
        else return false;
        return true;
      });
      return true;
    }
    return false;
  });
  if (model.pieces.length === 0) throw new SentencePieceModelError('the model has no pieces');
  return model;
}

// ---- writing ----

function varintBytes(value: number): number[] {
  const out: number[] = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return out;
}

function lengthDelimited(field: number, body: Uint8Array | number[]): number[] {
  return [...varintBytes(field * 8 + BYTES), ...varintBytes(body.length), ...body];
}

/** A tokenizer.model holding `model` (what parseSentencePieceModel reads back). */
export function sentencePieceModelBytes(model: SentencePieceModel): Uint8Array {
  const out: number[] = [];
  const utf8Encoder = new TextEncoder();
  for (const p of model.pieces) {
    const score = new Uint8Array(4);
    new DataView(score.buffer).setFloat32(0, p.score, true);
    out.push(...lengthDelimited(1, [
      ...lengthDelimited(1, utf8Encoder.encode(p.piece)), ...varintBytes(2 * 8 + FIXED32), ...score, ...varintBytes(3 * 8 + VARINT), ...varintBytes(p.type),
    ]));
  }
  const trainerSpec = [...varintBytes(3 * 8 + VARINT), ...varintBytes(model.modelType), ...varintBytes(35 * 8 + VARINT), model.byteFallback ? 1 : 0];
  out.push(...lengthDelimited(2, trainerSpec));
  out.push(...lengthDelimited(3, [...varintBytes(3 * 8 + VARINT), model.addDummyPrefix ? 1 : 0]));
  return Uint8Array.from(out);
}
