// Qwen2: the llama block with biases on q, k and v, and NEOX-style rope (rope base 1e6 in its metadata).
// Hugging Face's Qwen2ForCausalLM uses llama's tensor names and keeps q/k rows as GGUF does (NEOX rope needs no
// reordering); its config gives the base keys only (the converter's Qwen2Model).

import { baseMetadata } from '../hf/config.js';
import { llamaConfig, llamaFamily, LLAMA_HF_TENSORS } from './llama.js';

export const qwen2 = llamaFamily(['qwen2'], true, 'required', {
  classes: ['Qwen2ForCausalLM'],
  metadata: (c, fileType) => baseMetadata('qwen2', c, fileType),
  tensors: LLAMA_HF_TENSORS,
  ignored: /\.rotary_emb\.inv_freq$/,
  config: (meta, tied) => llamaConfig(meta, tied, 'Qwen2ForCausalLM', 'qwen2', true),
});
