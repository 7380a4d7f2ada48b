// Tensor names between Hugging Face and GGUF: tables of `from → to` patterns where `{N}` stands for a layer number.

/** `pattern` as a regular expression matching whole names, `{N}` a captured layer number. */
function namePattern(pattern: string): RegExp {
  return new RegExp('^' + pattern.split('{N}').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('(\\d+)') + '$');
}

/** Renames `name` by the first entry of `table` that matches it (`reverse`: from the values to the keys). */
export function mapName(table: Readonly<Record<string, string>>, name: string, reverse = false): string | undefined {
  for (const [hf, gguf] of Object.entries(table)) {
    const [from, to] = reverse ? [gguf, hf] : [hf, gguf];
    const m = namePattern(from).exec(name);
    if (m) return to.replace('{N}', m[1] ?? '');
  }
  return undefined;
}
