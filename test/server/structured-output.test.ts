// Structured output through the official `openai` client against a real server: chat.completions.parse with a zod
// schema (zodResponseFormat) returns an object the schema validates, streamed or not, on every conformance model
// that generates — the random ones too: whatever its weights, a constrained model cannot write invalid JSON.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { z } from 'zod';
import { zodResponseFormat } from 'openai/helpers/zod';
import { sharedPath } from '../shared.js';
import { startServer } from './helpers.js';

const Profile = z.object({
  name: z.string(),
  age: z.number().int().min(0).max(120),
  tags: z.array(z.enum(['red', 'green', 'blue'])).max(3),
  active: z.boolean(),
  nickname: z.string().nullable(),
});

/** every model of ../shared/conformance/models that generates (bert only embeds; kq-lora is an adapter), and stories260K */
const MODELS = [
  sharedPath('data', 'models', 'stories260K.gguf'),
  ...readdirSync(sharedPath('conformance', 'models')).filter((f) => f.endsWith('.gguf') && !/^(bert|kq-lora)/.test(f)).map((f) => sharedPath('conformance', 'models', f)),
];

for (const path of MODELS) {
  const name = path.split('/').pop()!.replace(/\.gguf$/, '');
  test(`${name}: chat.completions.parse with a zod schema validates, streamed or not; json_object parses`, async () => {
    const s = await startServer({ maxModelLength: 512 }, {}, { path, name });
    try {
      const messages = [{ role: 'user' as const, content: 'Describe a person as JSON.' }];
      const parsed = await s.client.chat.completions.parse({
        model: name, messages, response_format: zodResponseFormat(Profile, 'profile'), max_tokens: 120, seed: 1,
      });
      const choice = parsed.choices[0];
      assert.ok(choice.message.parsed, `no parsed object: ${choice.message.content}`);
      assert.ok(Profile.safeParse(choice.message.parsed).success, choice.message.content!);
      assert.equal(choice.finish_reason, 'stop', choice.message.content!);

      const stream = await s.client.chat.completions.create({
        model: name, messages, response_format: zodResponseFormat(Profile, 'profile'), max_tokens: 120, seed: 2, stream: true,
      });
      let content = '';
      for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
      assert.ok(Profile.safeParse(JSON.parse(content)).success, content);

      const object = await s.client.completions.create({ model: name, prompt: 'JSON:', max_tokens: 80, seed: 3, response_format: { type: 'json_object' } } as never);
      const value = JSON.parse((object as { choices: { text: string }[] }).choices[0].text);
      assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value));
    } finally {
      await s.close();
    }
  });
}
