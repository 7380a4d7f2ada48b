// The loss curve of a run as a standalone SVG: training loss per step (thin line) and validation loss at each
// evaluation (line with dots), over labelled step and loss axes.

import type { LossPoint } from './checkpoint.js';

const W = 720, H = 420, LEFT = 60, RIGHT = 20, TOP = 30, BOTTOM = 50;

/** Round tick values covering [lo, hi], about `count` of them. */
function ticks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function lossCurveSvg(train: readonly LossPoint[], val: readonly LossPoint[], title: string): string {
  const all = [...train, ...val];
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  // the first 2% of steps (loss falling from ln(vocab)) would flatten the rest: they are clipped at the top
  const shown = [...val, ...train.filter((p) => p.step >= maxStep / 50)];
  let lo = Math.min(...all.map((p) => p.loss)), hi = Math.max(...(shown.length ? shown : all).map((p) => p.loss));
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
  const x = (step: number) => LEFT + (step / maxStep) * (W - LEFT - RIGHT);
  const y = (loss: number) => TOP + ((hi - Math.min(loss, hi)) / (hi - lo)) * (H - TOP - BOTTOM);
  const path = (pts: readonly LossPoint[]) => pts.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (const t of ticks(lo, hi, 6)) {
    parts.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${LEFT - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of ticks(0, maxStep, 8)) {
    parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${H - BOTTOM}" y2="${H - BOTTOM + 5}" stroke="black"/>`,
      `<text x="${x(t).toFixed(1)}" y="${H - BOTTOM + 18}" text-anchor="middle">${t}</text>`);
  }
  parts.push(
    `<rect x="${LEFT}" y="${TOP}" width="${W - LEFT - RIGHT}" height="${H - TOP - BOTTOM}" fill="none" stroke="black"/>`,
    `<text x="${(LEFT + W - RIGHT) / 2}" y="${H - 12}" text-anchor="middle">step</text>`,
    `<text transform="translate(16 ${(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`,
    `<polyline fill="none" stroke="#1f77b4" stroke-width="1" points="${path(train)}"/>`,
    `<polyline fill="none" stroke="#d62728" stroke-width="2" points="${path(val)}"/>`,
    ...val.map((p) => `<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.loss).toFixed(1)}" r="3" fill="#d62728"/>`),
    `<text x="${W - RIGHT - 130}" y="${TOP + 20}" fill="#1f77b4">— train</text>`,
    `<text x="${W - RIGHT - 130}" y="${TOP + 36}" fill="#d62728">— validation${val.length ? ` (last ${val[val.length - 1].loss.toFixed(3)})` : ''}</text>`,
    '</svg>',
  );
  return parts.join('\n') + '\n';
}
