// The chat request's tool fields, checked: tools ([{type: "function", function: {name, description, parameters,
// strict}}]), tool_choice ("none" | "auto" | "required" | {type: "function", function: {name}}),
// parallel_tool_calls, and the messages' own tool parts (an assistant's tool_calls, a tool message's
// tool_call_id). Anything wrong is a 400 naming the field.

import type { ToolCall, ToolChoice, ToolSpec } from '../generate/tool-calls.js';
import { invalidRequest } from './errors.js';

const MAX_TOOLS = 128;

export interface ToolRequest {
  tools: ToolSpec[];
  choice: ToolChoice;
  parallel: boolean;
}

/** undefined when the request names no tools (tool_choice "none" alone is allowed) */
export function readTools(tools: unknown, toolChoice: unknown, parallel: unknown): ToolRequest | undefined {
  if (parallel !== undefined && parallel !== null && typeof parallel !== 'boolean') throw invalidRequest('parallel_tool_calls must be a boolean', 'parallel_tool_calls');
  if (tools === undefined || tools === null) {
    if (toolChoice !== undefined && toolChoice !== null && toolChoice !== 'none') throw invalidRequest('tool_choice needs tools', 'tool_choice');
    return undefined;
  }
  if (!Array.isArray(tools) || tools.length === 0 || tools.length > MAX_TOOLS) throw invalidRequest(`tools must be an array of 1 to ${MAX_TOOLS} function tools`, 'tools');
  const specs = tools.map((tool, i): ToolSpec => {
    const param = `tools[${i}]`;
    const fn = tool?.type === 'function' ? tool.function : undefined;
    if (fn === null || typeof fn !== 'object') throw invalidRequest(`${param} must be {"type": "function", "function": {"name", "parameters"}}`, 'tools');
    const { name, description, parameters } = fn as Record<string, unknown>;
    if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(name)) throw invalidRequest(`${param}.function.name must be 1 to 64 letters, digits, _ or -`, 'tools');
    if (description !== undefined && typeof description !== 'string') throw invalidRequest(`${param}.function.description must be a string`, 'tools');
    if (parameters !== undefined && (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters))) {
      throw invalidRequest(`${param}.function.parameters must be a JSON schema object`, 'tools');
    }
    return { name, description, parameters: (parameters as Record<string, unknown>) ?? { type: 'object', properties: {} } };
  });
  const names = new Set(specs.map((t) => t.name));
  if (names.size !== specs.length) throw invalidRequest('tool names must be unique', 'tools');
  return { tools: specs, choice: readToolChoice(toolChoice, names), parallel: parallel ?? true };
}

function readToolChoice(value: unknown, names: Set<string>): ToolChoice {
  if (value === undefined || value === null) return 'auto';
  if (value === 'none' || value === 'auto' || value === 'required') return value;
  const name = typeof value === 'object' && (value as { type?: unknown }).type === 'function' ? (value as { function?: { name?: unknown } }).function?.name : undefined;
  if (typeof name !== 'string') throw invalidRequest('tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}', 'tool_choice');
  if (!names.has(name)) throw invalidRequest(`tool_choice names the function "${name}", which is not among the tools`, 'tool_choice');
  return { name };
}

/** An assistant message's tool_calls: [{id, type: "function", function: {name, arguments}}]. */
export function readMessageToolCalls(value: unknown, param: string): ToolCall[] | undefined {
  if (value === undefined || value === null) return undefined;
  const wrong = () => invalidRequest(`${param} must be an array of {"id", "type": "function", "function": {"name", "arguments"}}`, param);
  if (!Array.isArray(value)) throw wrong();
  return value.map((call) => {
    const fn = call?.function;
    if (typeof call?.id !== 'string' || call.type !== 'function' || typeof fn?.name !== 'string' || typeof fn.arguments !== 'string') throw wrong();
    return { id: call.id, name: fn.name, arguments: fn.arguments };
  });
}
