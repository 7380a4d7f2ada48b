// `kiln convert DIR OUT.gguf [--outtype f32|f16|bf16|q8_0]`: a Hugging Face folder to GGUF, as llama.cpp's
// convert_hf_to_gguf.py writes it (then `kiln quantize` for any other type).

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { writeGGUF } from '../../gguf/writer.js';
import { convertHF, OUT_TYPES, type OutType } from '../../hf/convert.js';

export function convertCommand(): CommandUnknownOpts {
  return new Command('convert')
    .summary('convert a Hugging Face folder to GGUF, as llama.cpp\'s convert_hf_to_gguf.py')
    .description('Write the GGUF llama.cpp\'s convert_hf_to_gguf.py makes of a Hugging Face folder (config.json, ' +
      'model.safetensors or shards with model.safetensors.index.json, tokenizer.model or tokenizer.json, tokenizer_config.json).')
    .argument('<DIR>', 'the Hugging Face folder')
    .argument('<OUT>', 'the GGUF file to write')
    .addOption(new Option('--outtype <type>', 'type of the matrices (1-D tensors and norms stay f32)').choices(Object.keys(OUT_TYPES)).default('f16'))
    .action(async (dir, output, o) => {
      const gguf = convertHF(dir, o.outtype as OutType);
      await writeGGUF(output, gguf);
      console.log(`wrote ${output}: ${gguf.tensors.length} tensors, ${o.outtype}`);
    });
}
