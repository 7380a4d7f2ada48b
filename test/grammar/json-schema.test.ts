// JSON Schema → GBNF: schemas of OpenAI's strict subset (and zod's, through zodResponseFormat) accept the documents
// they describe, token by token, and reject corruptions; integer bounds are exact; unsupported keywords are named.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { zodResponseFormat } from 'openai/helpers/zod';
import { integerRange, jsonObjectGrammar, jsonSchemaToGrammar, SchemaError } from '../../src/grammar/json-schema.js';
import { compileGrammar } from '../../src/grammar/gbnf.js';
import { GrammarAutomaton } from '../../src/grammar/automaton.js';
import { grammarAccepts, grammarVocabulary } from '../../src/grammar/vocab-mask.js';
import { Model } from '../../src/generate/model.js';
import { Rng } from '../../src/generate/rng.js';
import { sharedPath } from '../shared.js';

const accepts = (schema: unknown, value: unknown) =>
  grammarAccepts(new GrammarAutomaton(compileGrammar(jsonSchemaToGrammar(schema))), typeof value === 'string' ? value : JSON.stringify(value));

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 130 },
    score: { type: 'number' },
    tags: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c d'] }, minItems: 1, maxItems: 3 },
    role: { anyOf: [{ const: 'admin' }, { type: 'null' }] },
    nick: { type: ['string', 'null'] },
    when: { type: 'string', format: 'date' },
    id: { type: 'string', format: 'uuid' },
    code: { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' },
    address: { $ref: '#/$defs/address' },
    extra: { type: 'boolean', nullable: true },
  },
  required: ['name', 'age', 'tags', 'role', 'nick', 'address'],
  additionalProperties: false,
  $defs: { address: { type: 'object', properties: { city: { type: 'string' }, next: { anyOf: [{ $ref: '#/$defs/address' }, { type: 'null' }] } }, required: ['city', 'next'], additionalProperties: false } },
};

const GOOD = {
  name: 'Ada', age: 36, score: -1.5e3, tags: ['a', 'c d'], role: 'admin', nick: null, when: '2024-02-29', id: '123e4567-e89b-12d3-a456-426614174000',
  code: 'AB-123', address: { city: 'London', next: { city: 'Paris', next: null } }, extra: null,
};

test('a strict schema accepts its documents and rejects each kind of violation', () => {
  assert.ok(accepts(PERSON, GOOD));
  assert.ok(accepts(PERSON, { name: 'x', age: 0, tags: ['b'], role: null, nick: 'n', address: { city: '', next: null } }), 'optional properties left out');
  const bad: [string, unknown][] = [
    ['missing required', { ...GOOD, age: undefined }], ['extra property', { ...GOOD, zzz: 1 }], ['age above maximum', { ...GOOD, age: 131 }],
    ['negative age', { ...GOOD, age: -1 }], ['age not integer', { ...GOOD, age: 3.5 }], ['empty name', { ...GOOD, name: '' }],
    ['name too long', { ...GOOD, name: 'x'.repeat(13) }], ['tag outside enum', { ...GOOD, tags: ['e'] }], ['too many tags', { ...GOOD, tags: ['a', 'a', 'a', 'a'] }],
    ['no tags', { ...GOOD, tags: [] }], ['wrong const', { ...GOOD, role: 'user' }], ['bad date', { ...GOOD, when: '2024-13-01' }],
    ['bad uuid', { ...GOOD, id: '123e4567' }], ['pattern', { ...GOOD, code: 'ab-123' }], ['nested required', { ...GOOD, address: { city: 'x' } }],
    ['nullable wrong type', { ...GOOD, extra: 'yes' }],
  ];
  for (const [what, value] of bad) assert.ok(!accepts(PERSON, value), what);
  // properties come in the schema's order (as a constrained model writes them)
  assert.ok(!accepts(PERSON, { age: 36, name: 'Ada', tags: ['a'], role: null, nick: null, address: { city: 'x', next: null } }));
});

test('additionalProperties: absent or a schema allows extra pairs after the declared ones', () => {
  assert.ok(accepts({ type: 'object', properties: { a: { type: 'integer' } } }, { a: 1, b: [true] }));
  assert.ok(accepts({ type: 'object', properties: {}, additionalProperties: { type: 'integer' } }, { x: 1, y: 2 }));
  assert.ok(!accepts({ type: 'object', properties: {}, additionalProperties: { type: 'integer' } }, { x: 'no' }));
  assert.ok(grammarAccepts(new GrammarAutomaton(compileGrammar(jsonObjectGrammar())), '{"a": [1, {"b": null}], "c": "d"}'));
  assert.ok(!grammarAccepts(new GrammarAutomaton(compileGrammar(jsonObjectGrammar())), '[1]'));
});

test('integer bounds are exact: every integer in [-1200, 1200] against a set of ranges', () => {
  const ranges: [number | undefined, number | undefined][] = [[0, 130], [-5, 7], [-1000, -37], [13, undefined], [undefined, 99], [-250, undefined], [undefined, -8], [0, 0], [999, 1001]];
  for (const [lo, hi] of ranges) {
    const automaton = new GrammarAutomaton(compileGrammar(`root ::= ${integerRange(lo, hi)}`));
    for (let n = -1200; n <= 1200; n++) {
      const inside = (lo === undefined || n >= lo) && (hi === undefined || n <= hi);
      assert.equal(grammarAccepts(automaton, String(n)), inside, `${n} in [${lo}, ${hi}]`);
    }
  }
  assert.ok(accepts({ type: 'integer', exclusiveMinimum: 3, exclusiveMaximum: 6 }, 4) && !accepts({ type: 'integer', exclusiveMinimum: 3, exclusiveMaximum: 6 }, 6));
});

test('unsupported keywords are SchemaErrors naming the keyword', () => {
  const cases: [object, string][] = [
    [{ type: 'object', patternProperties: {} }, 'patternProperties'], [{ not: { type: 'string' } }, 'not'], [{ allOf: [] }, 'allOf'],
    [{ type: 'array', uniqueItems: true }, 'uniqueItems'], [{ type: 'number', multipleOf: 2 }, 'multipleOf'], [{ type: 'string', format: 'email' }, 'format'],
    [{ type: 'number', minimum: 0 }, 'minimum'], [{ $ref: 'http://example.com/s.json' }, '$ref'], [{ type: 'string', pattern: '(a)\\1' }, 'pattern'],
    [{ type: 'string', pattern: 'a(?=b)' }, 'pattern'], [Array.from({ length: 100 }).reduce((inner) => ({ type: 'array', items: inner }), { type: 'null' }) as object, 'schema'], [{ type: 'object', properties: { a: {} }, required: ['b'] }, 'required'], [{ type: 'tuple' }, 'type'],
  ];
  for (const [schema, keyword] of cases) {
    assert.throws(() => jsonSchemaToGrammar(schema), (e: unknown) => e instanceof SchemaError && e.keyword === keyword && e.message.includes(keyword), JSON.stringify(schema));
  }
});

// -------------------------------------------------------------------------------------------------------------
// the property test: random documents of a zod schema, token by token through a real vocabulary

const Item = z.object({ sku: z.string(), qty: z.number().int().min(1).max(99), price: z.number(), gift: z.boolean().nullable() });
const Order = z.object({
  id: z.string().uuid(), customer: z.object({ name: z.string(), email: z.string().nullable() }), status: z.enum(['new', 'paid', 'shipped']),
  items: z.array(Item).min(1).max(4), note: z.union([z.string(), z.null()]), priority: z.number().int().min(-3).max(3),
});

/** A random Order, and text to put in its strings (quotes, backslashes, newlines and non-ASCII included). */
function randomOrder(rng: Rng): z.infer<typeof Order> {
  const int = (lo: number, hi: number) => lo + Math.floor(rng.nextFloat() * (hi - lo + 1));
  const text = () => Array.from({ length: int(0, 8) }, () => 'aZ 9"\\\n/é中🎉'[int(0, 10)]).join('');
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
  return {
    id: `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`,
    customer: { name: text(), email: rng.nextFloat() < 0.5 ? null : `${text()}@x` },
    status: (['new', 'paid', 'shipped'] as const)[int(0, 2)],
    items: Array.from({ length: int(1, 4) }, () => ({ sku: text(), qty: int(1, 99), price: int(-5000, 5000) / 100, gift: [true, false, null][int(0, 2)] })),
    note: rng.nextFloat() < 0.5 ? null : text(),
    priority: int(-3, 3),
  };
}

test('property: random zod-schema documents are accepted token by token (gpt2 vocabulary); corruptions are rejected', () => {
  const schema = zodResponseFormat(Order, 'order').json_schema.schema;
  const tokenizer = Model.load(sharedPath('conformance', 'models', 'gpt2-f16.gguf')).tokenizer;
  const vocabulary = grammarVocabulary(tokenizer, jsonSchemaToGrammar(schema));
  const rng = new Rng(2024);
  for (let doc = 0; doc < 10; doc++) {
    const order = randomOrder(rng);
    assert.ok(Order.safeParse(order).success);
    const text = JSON.stringify(order);
    const processor = vocabulary.processor();
    for (const token of tokenizer.encode(text, { addSpecial: false, parseSpecial: false })) {
      const logits = new Float32Array(tokenizer.vocabSize);
      processor.process(logits);
      assert.notEqual(logits[token], -Infinity, `doc ${doc}: token ${token} masked in ${text}`);
      processor.accept(token);
    }
    assert.ok(processor.complete, `doc ${doc} complete`);
    const corruptions = [
      { ...order, status: 'lost' }, { ...order, items: [] }, { ...order, priority: 4 }, { ...order, items: [{ ...order.items[0], qty: 0 }] },
      { ...order, customer: { name: 'x' } }, { ...order, id: order.id.slice(1) }, { ...order, note: 5 },
    ];
    for (const bad of corruptions) assert.ok(!grammarAccepts(vocabulary, JSON.stringify(bad)), `corruption ${JSON.stringify(bad)}`);
    assert.ok(!grammarAccepts(vocabulary, text.slice(0, -1 - (doc % 5))), 'cut short');
  }
});
