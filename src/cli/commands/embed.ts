// `kiln embed MODEL TEXT… [--json] [--pooling mean|cls|last] [--no-normalize]`: sentence embeddings through the
// serving engine, L2-normalized by default as llama-embedding does; one line per text (its first values and
// norm), or the vectors as a JSON array of arrays.

import { optBool, optOneOf, UsageError, type ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { LLM } from '../../engine/llm.js';
import { Model } from '../../generate/model.js';
import { POOLINGS } from '../../generate/embed.js';
import { MODEL_LOAD_OPTIONS, modelLoadOptions } from './model-options.js';

/** leading values shown per text */
const SHOWN = 6;

export const embedCommand: Command = {
  name: 'embed',
  usage: 'MODEL TEXT… [--json] [--pooling mean|cls|last] [--normalize | --no-normalize]',
  summary: 'sentence embeddings of texts (pooled final hidden states)',
  options: [
    { name: 'json', boolean: true, description: 'print the vectors as a JSON array of arrays' },
    { name: 'pooling', description: 'mean, cls or last (default: the model\'s, else mean for encoders, last for decoders)' },
    { name: 'normalize', boolean: true, description: 'L2-normalize each vector (the default)' },
    { name: 'no-normalize', boolean: true, description: 'print the pooled vectors as they are' },
    ...MODEL_LOAD_OPTIONS,
  ],
  async run(args: ParsedArgs) {
    const [path, ...texts] = args.positionals;
    if (path === undefined || texts.length === 0) throw new UsageError('expected MODEL and at least one TEXT');
    if (optBool(args, 'normalize') && optBool(args, 'no-normalize')) throw new UsageError('--normalize and --no-normalize contradict each other');
    const pooling = optOneOf(args, 'pooling', POOLINGS);
    const model = Model.load(path, modelLoadOptions(args));
    const inputs = texts.map((text) => model.tokenizer.encode(text, { addSpecial: true, parseSpecial: true }));
    // an engine just large enough for these inputs, all at once (a longer one than the model's context is refused)
    const longest = Math.max(...inputs.map((tokens) => tokens.length));
    const llm = new LLM({ model, maxModelLength: Math.min(model.hparams.contextLength, longest), maxNumSeqs: Math.min(16, inputs.length) });
    try {
      const outputs = await llm.embed(inputs, { pooling, normalize: !optBool(args, 'no-normalize') });
      if (optBool(args, 'json')) {
        console.log(JSON.stringify(outputs.map((o) => Array.from(o.outputs.embedding))));
        return;
      }
      outputs.forEach((o, i) => {
        const v = o.outputs.embedding;
        const norm = Math.hypot(...v);
        const head = Array.from(v.subarray(0, SHOWN), (x) => x.toFixed(6)).join(' ');
        console.log(`embedding ${i}: ${head}${v.length > SHOWN ? ' …' : ''} (${v.length} values, norm ${norm.toFixed(6)}, ${o.prompt_token_ids.length} tokens)`);
      });
    } finally {
      await llm.close();
    }
  },
};
