// An estimate as a readable table: every term in bytes, GB (10⁹) and GiB (2³⁰), with its formula.

import type { Estimate } from './estimate.js';

export const GB = 1e9;
export const GiB = 2 ** 30;

/** "484.29 GiB"-style figures: the unit both ways, since published sizes mix GB and GiB. */
export function formatGB(bytes: number, digits = 2): string {
  return `${(bytes / GB).toFixed(digits)} GB`;
}

export function formatGiB(bytes: number, digits = 2): string {
  return `${(bytes / GiB).toFixed(digits)} GiB`;
}

const int = (x: number) => Math.round(x).toLocaleString('en-US');

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (c < r.length - 1 ? r[c].length : 0))));
  return rows.map((r) => r.map((cell, c) => (c < r.length - 1 ? cell.padEnd(widths[c]) : cell)).join('  ')).join('\n');
}

export function formatEstimate(e: Estimate): string {
  const s = e.settings, shape = e.model.shape;
  const lines: string[] = [];
  lines.push(`${e.model.name} (${e.model.source}, ${shape.arch}${e.model.shapeGuessed ? ', llama-shaped guess' : ''}): ${int(e.model.paramCount)} parameters, ` +
    `${shape.nLayer} layers, dim ${shape.dim}, ${shape.nHead} heads / ${shape.nKvHead} kv, ffn ${shape.ffn}${shape.nExpert ? ` × ${shape.nExpert} experts (${shape.nExpertUsed} used)` : ''}, vocab ${shape.vocab}` +
    (shape.ctxTrain ? `, trained ctx ${shape.ctxTrain}` : ''));
  if (e.model.note) lines.push(`note: ${e.model.note}`);
  const training = s.mode !== 'inference';
  lines.push(`mode ${s.mode}, ctx ${s.ctx}, batch ${s.batch}, weights ${s.weightType}` +
    (training ? `, optimizer ${s.optimizer}${s.mixedPrecision ? ', mixed precision' : ''}${s.gradCheckpointing ? ', gradient checkpointing' : ''}, ${int(e.trainableParams)} trainable`
      : `, kv ${s.kvType}`));
  lines.push('');
  const parallel = e.devices > 1;
  const rows = [['term', 'bytes', 'GB', 'GiB', ...(parallel ? ['per device GiB'] : []), 'formula']];
  for (const t of e.terms) {
    rows.push([t.label, int(t.bytes), (t.bytes / GB).toFixed(2), (t.bytes / GiB).toFixed(2), ...(parallel ? [(t.perDevice / GiB).toFixed(2)] : []), t.formula]);
    for (const p of t.parts ?? []) if ((t.parts?.length ?? 0) > 1) rows.push([`  ${p.label}`, int(p.bytes), (p.bytes / GB).toFixed(2), (p.bytes / GiB).toFixed(2), ...(parallel ? [''] : []), '']);
    if (t.note) rows.push(['', '', '', '', ...(parallel ? [''] : []), `(${t.note})`]);
  }
  rows.push(['total', int(e.total), (e.total / GB).toFixed(2), (e.total / GiB).toFixed(2), ...(parallel ? [(e.perDevice / GiB).toFixed(2)] : []), '']);
  lines.push(table(rows));
  if (parallel) {
    lines.push('', `per device: ${formatGB(e.perDevice)} = ${formatGiB(e.perDevice)} on each of ${e.devices} devices ` +
      `(tp ${s.tp} × pp ${s.pp} × dp ${s.dp}, ZeRO-${s.zero})`);
  }
  lines.push('', 'rules of thumb (cross-check):');
  for (const r of e.rulesOfThumb) {
    const range = r.low === r.high ? `${formatGB(r.low)} = ${formatGiB(r.low)}` : `${formatGB(r.low)} – ${formatGB(r.high)} = ${formatGiB(r.low)} – ${formatGiB(r.high)}`;
    lines.push(`  ${r.rule.padEnd(26)} ${range}   [${r.formula}]`);
  }
  const fits = e.fits.filter((f) => f.fits).map((f) => f.device.name);
  const short = e.fits.filter((f) => !f.fits).map((f) => f.device.name);
  lines.push('', `fits (per-device total ${formatGiB(e.perDevice)} ≤ memory): ${fits.length ? fits.join(', ') : 'none of the listed devices'}`);
  if (short.length) lines.push(`too small: ${short.join(', ')}`);
  return lines.join('\n');
}
