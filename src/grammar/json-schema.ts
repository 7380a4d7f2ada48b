// JSON Schema → GBNF, for OpenAI's strict structured-output subset (llama.cpp's json-schema-to-grammar in spirit):
// object (properties in order, required, additionalProperties), array (items, minItems, maxItems), string (enum,
// const, pattern, format date / time / date-time / uuid, minLength, maxLength), number and integer (integer bounds
// exactly), boolean, null, anyOf / oneOf, $ref into $defs / definitions, type lists and nullable. A keyword outside
// that subset is a SchemaError naming it: a schema is never silently half-applied.

import { regexToGbnf } from './regex.js';

export class SchemaError extends Error {
  constructor(readonly keyword: string, message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

type Schema = Record<string, unknown>;

/** keywords that only describe (nothing to enforce) */
const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', 'strict']);
const HANDLED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'enum', 'const', 'pattern', 'format',
  'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'anyOf', 'oneOf', '$ref', '$defs',
  'definitions', 'nullable',
]);
/** schemas nested in one another at most */
const MAX_DEPTH = 64;
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'];

const PRIMITIVES: Record<string, string> = {
  space: '" "?',
  boolean: '("true" | "false") space',
  null: '"null" space',
  char: '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
  string: '"\\"" char* "\\"" space',
  'integer-digits': '"-"? ([0-9] | [1-9] [0-9]{0,15})',
  integer: 'integer-digits space',
  number: 'integer-digits ("." [0-9]+)? ([eE] [-+]? [0-9]{1,15})? space',
  value: 'object | array | string | number | boolean | null',
  object: '"{" space (string ":" space value ("," space string ":" space value)*)? "}" space',
  array: '"[" space (value ("," space value)*)? "]" space',
};

const FORMATS: Record<string, string> = {
  date: '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [1-2] [0-9] | "3" [0-1])',
  time: '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  uuid: '[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}',
};
FORMATS['date-time'] = `${FORMATS.date} "T" ${FORMATS.time}`;

/** A GBNF string literal for `text`. */
export function gbnfLiteral(text: string): string {
  return `"${[...text].map((c) => (c === '"' || c === '\\' ? `\\${c}` : c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : c < ' ' ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join('')}"`;
}

/** The grammar of any JSON object (response_format json_object). */
export function jsonObjectGrammar(): string {
  return new Converter().grammar('object');
}

/** The grammar of the JSON documents that `schema` accepts. */
export function jsonSchemaToGrammar(schema: unknown): string {
  return jsonSchemasToGrammar({ root: schema }, (rules) => rules.root);
}

/**
 * One grammar holding several schemas: each gets a rule (named after its key), and `root` builds the root rule's
 * body from those rule names (a tool call's grammar embeds each tool's parameters this way).
 */
export function jsonSchemasToGrammar(schemas: Record<string, unknown>, root: (rules: Record<string, string>) => string): string {
  const converter = new Converter();
  const rules: Record<string, string> = {};
  for (const [name, schema] of Object.entries(schemas)) rules[name] = converter.schemaRule(schema, name);
  return converter.grammar(root(rules));
}

function isSchema(value: unknown): value is Schema {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

class Converter {
  private readonly rules = new Map<string, string>();
  private readonly used = new Set<string>();
  private readonly refs = new Map<string, string>();
  /** the schema whose $defs a $ref points into, and its rules' name prefix */
  private rootSchema: Schema = {};
  private prefix = '';
  private depth = 0;

  /** A rule (or primitive) for values of a whole schema, its references resolved within it. */
  schemaRule(schema: unknown, name: string): string {
    if (schema === true) return 'value';
    if (!isSchema(schema)) throw new SchemaError('schema', 'the schema must be a JSON object');
    this.rootSchema = schema;
    this.prefix = name;
    const body = this.visit(schema, `${name}-value`);
    return /^[a-z-]+$/.test(body) ? body : this.rule(`${name}-value`, body);
  }

  /** The whole grammar text: root, the rules made, and the primitives they use (with what those use). */
  grammar(rootBody: string): string {
    const lines = [`root ::= ${rootBody}`, ...[...this.rules].map(([name, body]) => `${name} ::= ${body}`)];
    const needed = new Set<string>();
    const need = (text: string) => {
      for (const name of Object.keys(PRIMITIVES)) {
        if (!needed.has(name) && new RegExp(`(^|[\\s(|])${name}(?=$|[\\s)|*+?{])`).test(text)) {
          needed.add(name);
          need(PRIMITIVES[name]);
        }
      }
    };
    lines.forEach(need);
    for (const name of needed) if (!this.rules.has(name)) lines.push(`${name} ::= ${PRIMITIVES[name]}`);
    return lines.join('\n') + '\n';
  }

  /** A GBNF expression for values of `schema`; `name` names the rules made for it. */
  visit(schema: unknown, name: string): string {
    if (++this.depth > MAX_DEPTH) throw new SchemaError('schema', `the schema nests deeper than ${MAX_DEPTH} levels (at ${name.slice(0, 200)})`);
    try {
      return this.visitSchema(schema, name);
    } finally {
      this.depth--;
    }
  }

  private visitSchema(schema: unknown, name: string): string {
    if (schema === true || (isSchema(schema) && Object.keys(schema).every((k) => ANNOTATIONS.has(k)))) return 'value';
    if (!isSchema(schema)) throw new SchemaError('schema', `${name}: a schema must be an object or true`);
    for (const keyword of Object.keys(schema)) {
      if (!ANNOTATIONS.has(keyword) && !HANDLED.has(keyword)) throw new SchemaError(keyword, `the JSON schema keyword "${keyword}" is not supported (at ${name})`);
    }
    if (schema.nullable === true) return `(${this.visit({ ...schema, nullable: false }, name)} | null)`;
    if ('$ref' in schema) return this.ref(schema.$ref, name);
    if ('const' in schema) return `${gbnfLiteral(JSON.stringify(schema.const))} space`;
    if ('enum' in schema) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0) throw new SchemaError('enum', `${name}: enum must be a non-empty array`);
      return `(${schema.enum.map((v) => gbnfLiteral(JSON.stringify(v))).join(' | ')}) space`;
    }
    const alternatives = schema.anyOf ?? schema.oneOf;
    if (alternatives !== undefined) {
      const keyword = 'anyOf' in schema ? 'anyOf' : 'oneOf';
      if (!Array.isArray(alternatives) || alternatives.length === 0) throw new SchemaError(keyword, `${name}: ${keyword} must be a non-empty array`);
      return `(${alternatives.map((s, i) => this.visit(s, `${name}-${i}`)).join(' | ')})`;
    }
    const type = schema.type;
    if (Array.isArray(type)) return `(${type.map((t) => this.visit({ ...schema, type: t }, `${name}-${t}`)).join(' | ')})`;
    if (type === undefined) {
      if ('properties' in schema) return this.object(schema, name);
      if ('items' in schema) return this.array(schema, name);
      return 'value';
    }
    if (typeof type !== 'string' || !TYPES.includes(type)) throw new SchemaError('type', `${name}: unknown type ${JSON.stringify(type)}`);
    switch (type) {
      case 'object': return this.object(schema, name);
      case 'array': return this.array(schema, name);
      case 'string': return this.string(schema, name);
      case 'integer': return this.integer(schema, name);
      case 'number':
        for (const bound of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
          if (bound in schema) throw new SchemaError(bound, `${name}: ${bound} on a number (not an integer) is not supported`);
        }
        return 'number';
      default: return type; // boolean, null
    }
  }

  private rule(name: string, body: string): string {
    const clean = name.replace(/[^a-zA-Z0-9-]+/g, '-');
    let unique = clean;
    for (let i = 1; this.rules.has(unique) && this.rules.get(unique) !== body; i++) unique = `${clean}${i}`;
    this.rules.set(unique, body);
    return unique;
  }

  private ref(target: unknown, name: string): string {
    const match = typeof target === 'string' ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(target) : null;
    if (!match) throw new SchemaError('$ref', `${name}: $ref must be local (#/$defs/NAME or #/definitions/NAME), got ${JSON.stringify(target)}`);
    const key = `${this.prefix}:${target}`;
    const ruleName = this.refs.get(key);
    if (ruleName) return ruleName;
    const defs = this.rootSchema[match[1]];
    const def = isSchema(defs) ? defs[match[2]] : undefined;
    if (def === undefined) throw new SchemaError('$ref', `${name}: $ref ${target} is not defined`);
    const reserved = this.rule(`${this.prefix}-def-${match[2]}`, '"placeholder"'); // named first, so a recursive schema refers to itself
    this.refs.set(key, reserved);
    this.rules.set(reserved, this.visit(def, reserved));
    return reserved;
  }

  private object(schema: Schema, name: string): string {
    const properties = schema.properties ?? {};
    if (!isSchema(properties)) throw new SchemaError('properties', `${name}: properties must be an object`);
    const keys = Object.keys(properties);
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    for (const key of required) if (!keys.includes(key as string)) throw new SchemaError('required', `${name}: required property ${JSON.stringify(key)} is not among its properties`);
    const pairs = keys.map((key) => `${gbnfLiteral(JSON.stringify(key))} space ":" space ${this.visit(properties[key], `${name}-${key}`)}`);
    const additional = schema.additionalProperties;
    const extra = additional === false ? null : `string ":" space ${isSchema(additional) ? this.visit(additional, `${name}-additional`) : 'value'}`;
    // rest(i, first): the properties from i on, in order, optional ones skippable; `first`: no comma written yet
    const rest = (i: number, first: boolean): string => {
      const comma = first ? '' : '"," space ';
      if (i === keys.length) {
        if (!extra) return '';
        return first ? `(${extra} ("," space ${extra})*)?` : `("," space ${extra})*`;
      }
      const take = `${comma}${pairs[i]} ${restRule(i + 1, false)}`.trim();
      return required.has(keys[i]) ? take : `(${take} | ${restRule(i + 1, first)})`;
    };
    const restRule = (i: number, first: boolean): string => {
      const body = rest(i, first);
      return body === '' ? '' : this.rule(`${name}-rest${i}${first ? '-first' : ''}`, body);
    };
    return `"{" space ${restRule(0, true)} "}" space`.replace(/ {2,}/g, ' ');
  }

  private array(schema: Schema, name: string): string {
    const item = 'items' in schema ? this.visit(schema.items, `${name}-item`) : 'value';
    const min = count(schema, 'minItems') ?? 0, max = count(schema, 'maxItems') ?? Infinity;
    if (min > max) throw new SchemaError('minItems', `${name}: minItems ${min} is above maxItems ${max}`);
    const more = `("," space ${item})`;
    const tail = max === Infinity ? `${more}{${Math.max(min - 1, 0)},}` : `${more}{${Math.max(min - 1, 0)},${max - 1}}`;
    const items = max === 0 ? '' : min === 0 ? `(${item} ${tail})?` : `${item} ${tail}`;
    return `"[" space ${items} "]" space`.replace(/ {2,}/g, ' ');
  }

  private string(schema: Schema, name: string): string {
    if ('pattern' in schema) {
      if (typeof schema.pattern !== 'string') throw new SchemaError('pattern', `${name}: pattern must be a string`);
      return `"\\"" ${this.rule(`${name}-pattern`, regexToGbnf(schema.pattern))} "\\"" space`;
    }
    if ('format' in schema) {
      const format = FORMATS[schema.format as string];
      if (!format) throw new SchemaError('format', `${name}: string format ${JSON.stringify(schema.format)} is not supported (date, time, date-time, uuid are)`);
      return `"\\"" ${this.rule(`${name}-${schema.format}`, format)} "\\"" space`;
    }
    const min = count(schema, 'minLength'), max = count(schema, 'maxLength');
    if (min === undefined && max === undefined) return 'string';
    if (max !== undefined && (min ?? 0) > max) throw new SchemaError('minLength', `${name}: minLength is above maxLength`);
    return `"\\"" char{${min ?? 0},${max ?? ''}} "\\"" space`;
  }

  private integer(schema: Schema, name: string): string {
    const bound = (keyword: string, exclusiveKeyword: string, step: number): number | undefined => {
      const values: number[] = [];
      for (const [k, shift] of [[keyword, 0], [exclusiveKeyword, step]] as const) {
        if (!(k in schema)) continue;
        const v = schema[k];
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(k, `${name}: ${k} must be a number`);
        values.push(step > 0 ? Math.ceil(v) + (Number.isInteger(v) ? shift : 0) : Math.floor(v) + (Number.isInteger(v) ? shift : 0));
      }
      if (values.length === 0) return undefined;
      return step > 0 ? Math.max(...values) : Math.min(...values);
    };
    const lo = bound('minimum', 'exclusiveMinimum', 1), hi = bound('maximum', 'exclusiveMaximum', -1);
    if (lo === undefined && hi === undefined) return 'integer';
    if (lo !== undefined && hi !== undefined && lo > hi) throw new SchemaError('minimum', `${name}: no integer lies in [${lo}, ${hi}]`);
    return `(${integerRange(lo, hi)}) space`;
  }
}

function count(schema: Schema, keyword: string): number | undefined {
  const v = schema[keyword];
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 10_000) throw new SchemaError(keyword, `${keyword} must be an integer from 0 to 10000`);
  return v as number;
}

// -----------------------------------------------------------------------------------------------------------
// integer ranges as digit patterns (the classic regex construction)

/** GBNF for the integers in [lo, hi]; either side may be open. */
export function integerRange(lo: number | undefined, hi: number | undefined): string {
  const parts: string[] = [];
  // negative part: "-" then the magnitudes in [max(1, −hi), −lo]
  if (lo === undefined || lo < 0) {
    const from = hi === undefined || hi >= 0 ? 1 : -hi;
    parts.push(`"-" (${lo === undefined ? atLeast(from) : naturals(from, -lo)})`);
  }
  if (hi === undefined || hi >= 0) {
    const from = lo === undefined || lo < 0 ? 0 : lo;
    parts.push(hi === undefined ? atLeast(from) : naturals(from, hi));
  }
  return parts.join(' | ');
}

/** n ≥ from (no leading zeros; at most 16 digits as integer-digits allows) */
function atLeast(from: number): string {
  const digits = String(from).length;
  return `${naturals(from, 10 ** digits - 1)} | [1-9] [0-9]{${digits},15}`;
}

/** from ≤ n ≤ to, 0 ≤ from ≤ to */
function naturals(from: number, to: number): string {
  const out: string[] = [];
  for (let digits = String(from).length; digits <= String(to).length; digits++) {
    const a = Math.max(from, digits === 1 ? 0 : 10 ** (digits - 1)), b = Math.min(to, 10 ** digits - 1);
    if (a <= b) out.push(...sameLength(String(a), String(b)));
  }
  return out.join(' | ');
}

/** Patterns for the numbers from a to b, written with the same number of digits. */
function sameLength(a: string, b: string): string[] {
  if (a === b) return [`"${a}"`];
  let i = 0;
  while (a[i] === b[i]) i++;
  const prefix = a.slice(0, i) ? `"${a.slice(0, i)}" ` : '';
  const rest = a.length - i - 1;
  const any = rest > 0 ? ` [0-9]{${rest}}` : '';
  const lowFull = /^0*$/.test(a.slice(i + 1)), highFull = /^9*$/.test(b.slice(i + 1));
  const da = Number(a[i]), db = Number(b[i]);
  const out: string[] = [];
  const middleFrom = lowFull ? da : da + 1, middleTo = highFull ? db : db - 1;
  if (!lowFull) out.push(...sameLength(a.slice(i), `${da}${'9'.repeat(rest)}`).map((p) => prefix + p));
  if (middleFrom <= middleTo) out.push(`${prefix}[${middleFrom}-${middleTo}]${any}`);
  if (!highFull) out.push(...sameLength(`${db}${'0'.repeat(rest)}`, b.slice(i)).map((p) => prefix + p));
  return out;
}
