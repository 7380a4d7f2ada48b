// POST /v1/embeddings in OpenAI's shape: each input is one engine request, embedded beside whatever else the
// engine runs (src/engine/embedding.ts); the vectors come back as JSON numbers or, with encoding_format "base64",
// as the base64 of their little-endian float32 bytes (what the official clients ask for by default).

import type { FastifyReply } from 'fastify';
import type { EmbeddingResult } from '../engine/types.js';
import { invalidRequest } from './errors.js';
import { checkModel, promptTokens, refuseWhenBusy, type ApiContext } from './openai-api.js';
import { embeddingRequest, type EmbeddingBody } from './params.js';

export async function handleEmbeddings(ctx: ApiContext, body: EmbeddingBody, reply: FastifyReply): Promise<void> {
  const res = reply.raw;
  const { engine, model } = ctx;
  const request = embeddingRequest(body, engine.embeddingLength);
  checkModel(ctx, request.model);
  const inputs = request.inputs.map((input) => promptTokens(model.tokenizer, input, 'input'));
  const tooLong = inputs.findIndex((tokens) => tokens.length > engine.maxModelLength);
  if (tooLong >= 0) {
    throw invalidRequest(
      `input ${tooLong} has ${inputs[tooLong].length} tokens, but the context holds ${engine.maxModelLength}; shorten it`,
      'input', 'context_length_exceeded',
    );
  }
  refuseWhenBusy(ctx, inputs.length);

  // a client that goes away aborts its inputs still waiting in the engine
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  let results: EmbeddingResult[];
  try {
    results = await Promise.all(inputs.map((tokens) => engine.embed({ tokens, signal: controller.signal })));
  } catch (e) {
    controller.abort(); // the other inputs of this request stop too
    if (res.destroyed) return;
    throw e;
  }
  const promptTokenCount = inputs.reduce((sum, tokens) => sum + tokens.length, 0);
  reply.send({
    object: 'list',
    data: results.map((r, index) => ({ object: 'embedding', index, embedding: request.base64 ? base64Float32(r.embedding) : Array.from(r.embedding) })),
    model: model.name,
    usage: { prompt_tokens: promptTokenCount, total_tokens: promptTokenCount },
  });
}

/** base64 of the values as little-endian float32 */
function base64Float32(values: Float32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes.toString('base64');
}
