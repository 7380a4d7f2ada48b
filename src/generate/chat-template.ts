// Chat prompts: the model's own `tokenizer.chat_template` (a Jinja template, rendered with @huggingface/jinja),
// or ChatML when the model has none (llama.cpp's fallback).

import { Template } from '@huggingface/jinja';
import { getString, type Metadata } from '../gguf/metadata.js';
import type { Tokenizer } from '../tokenizer/index.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  /** an assistant's calls (tool-calls.ts) */
  tool_calls?: { id: string; name: string; arguments: string }[];
  /** a tool message: the call it answers */
  tool_call_id?: string;
}

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly source: string, private readonly bosToken: string, private readonly eosToken: string) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the chat template does not parse: ${(e as Error).message}`);
    }
  }

  /** The template of a model (or ChatML), with its BOS/EOS token texts. */
  static fromMetadata(meta: Metadata, bosToken: string, eosToken: string): ChatTemplate {
    return new ChatTemplate(getString(meta, 'tokenizer.chat_template') ?? CHATML_TEMPLATE, bosToken, eosToken);
  }

  /** The template of a model (or ChatML), with the BOS/EOS token texts of its tokenizer. */
  static forModel(meta: Metadata, tokenizer: Tokenizer): ChatTemplate {
    const text = (id: number | null) => (id === null ? '' : tokenizer.tokenText(id));
    return ChatTemplate.fromMetadata(meta, text(tokenizer.bosId), text(tokenizer.eosId));
  }

  /**
   * The prompt text for a conversation, ending with the assistant's turn opened when `addGenerationPrompt`; `tools`
   * (OpenAI's function tools) go to the template's `tools` variable.
   */
  render(messages: readonly ChatMessage[], addGenerationPrompt = true, tools?: readonly object[]): string {
    try {
      return this.template.render({
        messages: messages as unknown as Record<string, unknown>[],
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        ...(tools && tools.length > 0 ? { tools } : {}),
      });
    } catch (e) {
      throw new ChatTemplateError(`the chat template failed to render: ${(e as Error).message}`);
    }
  }
}

/** Tokens of a rendered chat prompt: BOS is added only when the template did not already write it. */
export function chatPromptTokens(tokenizer: Tokenizer, prompt: string): number[] {
  const bosText = tokenizer.bosId === null ? '' : tokenizer.tokenText(tokenizer.bosId);
  return tokenizer.encode(prompt, { addSpecial: bosText === '' || !prompt.startsWith(bosText), parseSpecial: true });
}
