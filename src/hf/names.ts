// Tensor names between Hugging Face and GGUF: tables of `from → to` patterns where `{N}` stands for a layer number
// and `{E}` for an expert's (Hugging Face keeps one tensor per expert, GGUF one stacked tensor per layer).

/** `pattern` as a regular expression matching whole names, `{N}` and `{E}` captured. */
function namePattern(pattern: string): RegExp {
  const escaped = pattern.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  return new RegExp('^' + escaped.replace('{N}', '(?<N>\\d+)').replace('{E}', '(?<E>\\d+)') + '$');
}

/** The first entry of `table` matching `name` (`reverse`: from the values to the keys): the renamed name, with the
 *  expert number when `name` is one expert's; a reverse name still holds `{E}` where the stacked tensor splits. */
export function matchName(table: Readonly<Record<string, string>>, name: string, reverse = false): { name: string; expert?: number } | undefined {
  for (const [hf, gguf] of Object.entries(table)) {
    const [from, to] = reverse ? [gguf, hf] : [hf, gguf];
    const m = namePattern(from).exec(name);
    if (!m) continue;
    const { N, E } = m.groups ?? {}; // no groups: a name without layer or expert
    return { name: to.replace('{N}', N ?? ''), expert: E === undefined ? undefined : Number(E) };
  }
  return undefined;
}

export function mapName(table: Readonly<Record<string, string>>, name: string, reverse = false): string | undefined {
  return matchName(table, name, reverse)?.name;
}
