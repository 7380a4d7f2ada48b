// Tokenizers built from GGUF metadata (SentencePiece, byte-level BPE, WordPiece), matching llama.cpp.

export { Tokenizer, type EncodeOptions, type DecodeOptions, type PieceOptions } from './tokenizer.js';
export { StreamDecoder } from './stream-decoder.js';
export { TokenizerError, TokenType, type TokenizerModel } from './vocab.js';
