// `kiln embed MODEL TEXT… [--json] [--pooling mean|cls|last] [--no-normalize]`: sentence embeddings through the
// serving engine, L2-normalized by default as llama-embedding does; one line per text (its first values and
// norm), or the vectors as a JSON array of arrays.

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { LLM } from '../../engine/llm.js';
import { Model } from '../../generate/model.js';
import { POOLINGS } from '../../generate/embed.js';
import { MODEL_DESCRIPTION } from '../options.js';
import { modelPath } from '../default-model.js';
import { loadOptions, withModelLoading } from './model-options.js';

/** leading values shown per text */
const SHOWN = 6;

export function embedCommand(): CommandUnknownOpts {
  const command = new Command('embed')
    .summary('sentence embeddings of texts (pooled final hidden states)')
    .argument('<MODEL>', MODEL_DESCRIPTION)
    .argument('<TEXT...>', 'the texts, one embedding each')
    .option('--json', 'print the vectors as a JSON array of arrays')
    .addOption(new Option('--pooling <kind>', 'how hidden states pool (default: the model\'s, else mean for encoders, last for decoders)').choices(POOLINGS))
    .option('--normalize', 'L2-normalize each vector (the default)')
    .option('--no-normalize', 'print the pooled vectors as they are');
  return withModelLoading(command).action(async (modelArg, texts, o) => {
    const model = Model.load(modelPath(modelArg), loadOptions(o));
    const inputs = texts.map((text) => model.tokenizer.encode(text, { addSpecial: true, parseSpecial: true }));
    // an engine just large enough for these inputs, all at once (a longer one than the model's context is refused)
    const longest = Math.max(...inputs.map((tokens) => tokens.length));
    const llm = new LLM({ model, maxModelLength: Math.min(model.hparams.contextLength, longest), maxNumSeqs: Math.min(16, inputs.length) });
    try {
      const outputs = await llm.embed(inputs, { pooling: o.pooling, normalize: o.normalize });
      if (o.json) {
        console.log(JSON.stringify(outputs.map((out) => Array.from(out.outputs.embedding))));
        return;
      }
      outputs.forEach((out, i) => {
        const v = out.outputs.embedding;
        const norm = Math.hypot(...v);
        const head = Array.from(v.subarray(0, SHOWN), (x) => x.toFixed(6)).join(' ');
        console.log(`embedding ${i}: ${head}${v.length > SHOWN ? ' …' : ''} (${v.length} values, norm ${norm.toFixed(6)}, ${out.prompt_token_ids.length} tokens)`);
      });
    } finally {
      await llm.close();
    }
  });
}
