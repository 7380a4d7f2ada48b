// GPT-2's reversible byte <-> unicode mapping: printable bytes map to themselves, the other 68 bytes to
// code points from U+0100 upward, so every byte string is a string of visible characters.

function buildByteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) printable.push(b); // '®'..'ÿ'
  const table: string[] = new Array(256);
  for (const b of printable) table[b] = String.fromCodePoint(b);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(256 + next++);
  }
  return table;
}

/** byte value -> the character that stands for it */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** character -> byte value */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch, b]));

export function bytesToUnicode(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += BYTE_TO_CHAR[b];
  return out;
}

/** Inverse of bytesToUnicode; returns null if a character is outside the mapping. */
export function unicodeToBytes(text: string): Uint8Array | null {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return null;
    out.push(b);
  }
  return Uint8Array.from(out);
}
