// Qwen2: the llama block with biases on q, k and v, and NEOX-style rope (rope base 1e6 in its metadata).

import { llamaFamily } from './llama.js';

export const qwen2 = llamaFamily(['qwen2'], true, 'required');
