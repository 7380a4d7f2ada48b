// --grammar FILE (GBNF) and --json-schema FILE, shared by `kiln run` and `kiln bench`: the grammar compiled for the
// model's vocabulary.

import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../../tokenizer/index.js';
import { jsonSchemaToGrammar } from '../../grammar/json-schema.js';
import { grammarVocabulary, type GrammarVocabulary } from '../../grammar/vocab-mask.js';
import { UsageError } from '../options.js';

export function outputGrammar(tokenizer: Tokenizer, o: { grammar?: string; jsonSchema?: string }): GrammarVocabulary | undefined {
  if (o.grammar !== undefined && o.jsonSchema !== undefined) throw new UsageError('give --grammar or --json-schema, not both');
  if (o.grammar !== undefined) return grammarVocabulary(tokenizer, readFileSync(o.grammar, 'utf8'));
  if (o.jsonSchema === undefined) return undefined;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(o.jsonSchema, 'utf8'));
  } catch (e) {
    throw new UsageError(`${o.jsonSchema} is not JSON: ${(e as Error).message}`);
  }
  return grammarVocabulary(tokenizer, jsonSchemaToGrammar(schema));
}
