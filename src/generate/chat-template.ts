// Chat prompts: the model's own `tokenizer.chat_template` (a Jinja template, rendered with @huggingface/jinja),
// or ChatML when the model has none (llama.cpp's fallback). A template comes with the model file, so it is not
// trusted: it renders under a budget of evaluation steps, time, range() length and value size, and one that runs
// away fails with ChatTemplateError instead of holding the thread.

import { Environment, Interpreter, Template } from '@huggingface/jinja';
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

/** What one render may spend. Real chat templates take a few thousand steps and well under a millisecond. */
export const TEMPLATE_BUDGET = { steps: 2_000_000, ms: 1000, rangeLength: 100_000, valueLength: 4_000_000 };

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
    // Template.render's environment, with range() bounded
    const env = new Environment();
    const globals: Record<string, unknown> = {
      false: false, true: true, none: null, False: false, True: true, None: null,
      raise_exception: (message: string) => { throw new Error(message); },
      range: boundedRange,
      strftime_now: (format: string) => STRFTIME.render({ format }),
      messages, add_generation_prompt: addGenerationPrompt, bos_token: this.bosToken, eos_token: this.eosToken,
      ...(tools && tools.length > 0 ? { tools } : {}),
    };
    for (const [key, value] of Object.entries(globals)) env.set(key, value);
    try {
      return new BudgetedInterpreter(env).run(this.template.parsed).value as string;
    } catch (e) {
      throw new ChatTemplateError(`the chat template failed to render: ${(e as Error).message}`);
    }
  }
}

/** the library's own strftime_now, through a template of one call */
const STRFTIME = new Template('{{ strftime_now(format) }}');

/** Jinja's range(), refusing to build more than TEMPLATE_BUDGET.rangeLength items */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (!(length <= TEMPLATE_BUDGET.rangeLength)) throw new Error(`range() of ${length} items is over the budget of ${TEMPLATE_BUDGET.rangeLength}`);
  return Array.from({ length }, (_, i) => start + i * step);
}

/** The interpreter's surface used here (the package's .d.ts imports its runtime's types without an extension, which NodeNext resolution does not follow). */
interface JinjaValue { value: unknown }
const JinjaInterpreter = Interpreter as unknown as new (env: Environment) => {
  run(program: unknown): JinjaValue;
  evaluate(statement: unknown, environment: unknown): JinjaValue;
  /** a block of statements: a loop runs one per iteration, even an empty one */
  evaluateBlock(statements: unknown, environment: unknown): JinjaValue;
};

/** An interpreter that counts its evaluation steps and the time they take, and refuses values that grow too long. */
class BudgetedInterpreter extends JinjaInterpreter {
  private steps = 0;
  private readonly deadline = performance.now() + TEMPLATE_BUDGET.ms;

  override evaluateBlock(statements: unknown, environment: unknown): JinjaValue {
    this.step();
    return super.evaluateBlock(statements, environment);
  }

  override evaluate(statement: unknown, environment: unknown): JinjaValue {
    this.step();
    const value = super.evaluate(statement, environment);
    const length = (value.value as { length?: unknown } | null)?.length;
    if (typeof length === 'number' && length > TEMPLATE_BUDGET.valueLength) {
      throw new Error(`a value of ${length} items or characters is over the budget of ${TEMPLATE_BUDGET.valueLength}`);
    }
    return value;
  }

  private step(): void {
    // the clock is read every 1024 steps
    if (++this.steps > TEMPLATE_BUDGET.steps || (this.steps % 1024 === 0 && performance.now() > this.deadline)) {
      throw new Error(`rendering ran past its budget (${TEMPLATE_BUDGET.steps} steps or ${TEMPLATE_BUDGET.ms} ms)`);
    }
  }
}

/** Tokens of a rendered chat prompt: BOS is added only when the template did not already write it. */
export function chatPromptTokens(tokenizer: Tokenizer, prompt: string): number[] {
  const bosText = tokenizer.bosId === null ? '' : tokenizer.tokenText(tokenizer.bosId);
  return tokenizer.encode(prompt, { addSpecial: bosText === '' || !prompt.startsWith(bosText), parseSpecial: true });
}
