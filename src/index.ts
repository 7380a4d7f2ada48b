// kiln's public API: load GGUF models (or Hugging Face folders), tokenize, and generate and embed through the serving
// engine.

export { readGGUFHeader, parseGGUF } from './gguf/reader.js';
export { loadGGUF, GGUFModelFile } from './gguf/model-file.js';
export { GGUFError, type GGUFHeader, type GGUFTensorInfo, type GGUFValue } from './gguf/types.js';
export { loadModelFile } from './hf/checkpoint.js';
export { HFError, type HFErrorCode } from './hf/safetensors.js';
export { convertHF, type OutType } from './hf/convert.js';
export { writeHFFolder } from './hf/export.js';
export { Model, type LoadOptions } from './generate/model.js';
export { PromptAdapterError } from './generate/prompt-adapter.js';
export { LoraAdapterError } from './generate/lora-adapter.js';
export { AdapterAsModelError } from './gguf/adapter-kind.js';
export { Tokenizer, StreamDecoder, TokenizerError } from './tokenizer/index.js';
export { evaluate, perplexity } from './generate/generate.js';
export { LLM, SamplingParams, type SamplingParamsInit, type RequestOutput, type CompletionOutput, type LLMOptions } from './engine/llm.js';
export {
  LLMEngine, EngineConfigError, InvalidRequestError, ContextLengthError, EngineClosedError, type EngineOptions,
} from './engine/engine.js';
export { defaultModelPath } from './cli/default-model.js';
export type {
  ServingEngine, SubmitRequest, RequestParams, CompletionDelta, FinishReason, RequestMetrics, EngineStats, TokenLogprobs,
} from './engine/types.js';
export { embedTokens, EmptyInputError } from './generate/embed.js';
export { RequestAbortedError } from './engine/embedding.js';
export type { EmbedOptions, EmbeddingRequestOutput } from './engine/llm.js';
export type { EmbedRequest, EmbeddingResult } from './engine/types.js';
export type { Pooling } from './models/hparams.js';
export { Rag, reciprocalRankFusion, EmptyQueryError, type SearchOptions, type SearchMode, type Source, type Answer, type AskOptions } from './rag/rag.js';
export { RagStore, RagStoreError, EmbedModelMismatchError, type ChunkHit, type EmbedModelId } from './rag/store.js';
export { MissingPathError, type IndexReport } from './rag/ingest.js';
export { Agent, AgentError, type AgentTool, type AgentOptions, type AgentResult, type AgentStep, type ChatModel, type ChatModelRequest, type ChatModelReply } from './agent/agent.js';
export { LocalChatModel, type LocalChatModelOptions } from './agent/local-model.js';
export { calculatorTool, readFileTool, fetchKilnTool } from './agent/builtin-tools.js';
export { LogitBias, type LogitsProcessor } from './generate/logits-processor.js';
export { compileGrammar, GrammarError } from './grammar/gbnf.js';
export { jsonSchemaToGrammar, SchemaError } from './grammar/json-schema.js';
export { grammarVocabulary, GrammarVocabulary, GrammarProcessor } from './grammar/vocab-mask.js';
export { parseToolCalls, toolCallGrammar, toolFamily, type ToolSpec, type ToolCall, type ToolChoice, type ToolFamily } from './generate/tool-calls.js';
