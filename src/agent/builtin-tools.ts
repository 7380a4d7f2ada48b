// The agent's built-in tools: a calculator (arithmetic parsed here, never eval'd), reading a text file under one
// allowed folder, and fetching from a local kiln server.

import { realpathSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { AgentTool } from './agent.js';

/** calculator: + − × ÷ % ^, parentheses, unary minus, pi, e and sqrt abs ln log exp sin cos tan floor ceil round min max */
export function calculatorTool(): AgentTool {
  return {
    name: 'calculator',
    description: 'Evaluates an arithmetic expression, e.g. "2 * (3 + 4) ^ 2" or "sqrt(2)".',
    parameters: { type: 'object', properties: { expression: { type: 'string' } }, required: ['expression'], additionalProperties: false },
    run: ({ expression }) => {
      if (typeof expression !== 'string') throw new Error('expression must be a string');
      return String(evaluate(expression));
    },
  };
}

const FUNCTIONS: Record<string, (...x: number[]) => number> = {
  sqrt: Math.sqrt, abs: Math.abs, ln: Math.log, log: Math.log10, exp: Math.exp, sin: Math.sin, cos: Math.cos, tan: Math.tan,
  floor: Math.floor, ceil: Math.ceil, round: Math.round, min: Math.min, max: Math.max,
};
const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

/**
 * Recursive descent, usual precedence (−2^2 = −4): sum := product (("+" | "-") product)*;
 * product := unary (("*" | "/" | "%") unary)*; unary := ("-" | "+") unary | power; power := atom ("^" unary)?
 */
export function evaluate(expression: string): number {
  const tokens = expression.match(/\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|[a-zA-Z_]+|\*\*|[-+*/%^(),]|\S/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const expect = (t: string) => {
    if (tokens[i] !== t) throw new Error(`expected "${t}" ${tokens[i] === undefined ? 'at the end' : `before "${tokens[i]}"`}`);
    i++;
  };
  const sum = (): number => {
    let v = product();
    while (peek() === '+' || peek() === '-') v = tokens[i++] === '+' ? v + product() : v - product();
    return v;
  };
  const product = (): number => {
    let v = unary();
    while (peek() === '*' || peek() === '/' || peek() === '%') {
      const op = tokens[i++];
      const r = unary();
      v = op === '*' ? v * r : op === '/' ? v / r : v % r;
    }
    return v;
  };
  const unary = (): number => {
    if (peek() === '-') { i++; return -unary(); }
    if (peek() === '+') { i++; return unary(); }
    return power();
  };
  const power = (): number => {
    const base = atom();
    if (peek() === '^' || peek() === '**') {
      i++;
      return base ** unary();
    }
    return base;
  };
  const atom = (): number => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('the expression ends too soon');
    if (t === '(') { const v = sum(); expect(')'); return v; }
    if (/^[\d.]/.test(t)) return Number(t);
    const name = t.toLowerCase();
    if (Object.hasOwn(CONSTANTS, name)) return CONSTANTS[name];
    if (Object.hasOwn(FUNCTIONS, name)) {
      expect('(');
      const args = [sum()];
      while (peek() === ',') { i++; args.push(sum()); }
      expect(')');
      return FUNCTIONS[name](...args);
    }
    throw new Error(`unknown "${t}"`);
  };
  const value = sum();
  if (i < tokens.length) throw new Error(`unexpected "${tokens[i]}"`);
  return value;
}

/** read_file: a text file under `folder` (links resolved; nothing outside it), at most `maxBytes`. */
export function readFileTool(folder: string, maxBytes = 64 * 1024): AgentTool {
  const root = realpathSync(folder);
  return {
    name: 'read_file',
    description: `Reads a text file under the folder ${folder}; give its path relative to that folder.`,
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'], additionalProperties: false },
    run: ({ path }) => {
      if (typeof path !== 'string' || path === '') throw new Error('path must be a non-empty string');
      let real: string;
      try {
        real = realpathSync(resolve(root, path));
      } catch {
        throw new Error(`no file ${path}`);
      }
      const inside = relative(root, real);
      if (inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) throw new Error(`${path} is outside the allowed folder`);
      const size = statSync(real).size;
      if (!statSync(real).isFile()) throw new Error(`${path} is not a file`);
      const text = readFileSync(real).subarray(0, maxBytes).toString('utf8');
      return size > maxBytes ? `${text}… [${size - maxBytes} more bytes not read]` : text;
    },
  };
}

/** fetch_kiln: GET (or POST a JSON body to) a path of the kiln server at `baseUrl` (only that server). */
export function fetchKilnTool(baseUrl: string, maxChars = 8000): AgentTool {
  const base = new URL(baseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(base.hostname)) throw new Error(`fetch_kiln only reaches a local kiln server, not ${base.hostname}`);
  return {
    name: 'fetch_kiln',
    description: `Fetches a path of the local kiln server ${base.origin} (e.g. /v1/models, or POST /v1/completions with a JSON body).`,
    parameters: { type: 'object', properties: { path: { type: 'string' }, body: { anyOf: [{ type: 'object' }, { type: 'null' }] } }, required: ['path', 'body'], additionalProperties: false },
    run: async ({ path, body }, { signal }) => {
      if (typeof path !== 'string' || !path.startsWith('/')) throw new Error('path must start with /');
      const url = new URL(path, base);
      if (url.origin !== base.origin) throw new Error('only the local kiln server can be fetched');
      const res = await fetch(url, body ? { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal } : { signal });
      const text = await res.text();
      return `${res.status} ${text.length > maxChars ? `${text.slice(0, maxChars)}…` : text}`;
    },
  };
}
