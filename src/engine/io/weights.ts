// A model's weights to and from safetensors bytes, by parameter name.
import type { Module } from '../layers.js';
import { shapeString } from '../tensor.js';
import { decodeSafetensors, encodeSafetensors, type NamedArray } from './safetensors.js';

/** Reads the parameters (all, or those named or under the named layers) into safetensors bytes. */
export async function saveWeights(model: Module, options: { only?: string[]; metadata?: Record<string, string> } = {}): Promise<Uint8Array> {
  const params = options.only ? options.only.flatMap((n) => model.select(n, 'saveWeights')) : [...model.parameters().values()];
  const arrays = new Map<string, NamedArray>();
  for (const p of params) arrays.set(p.name, { shape: [...p.shape], data: await p.data() });
  return encodeSafetensors(arrays, options.metadata);
}

/**
 * Writes safetensors weights into the model's parameters. Every tensor in the file must name a
 * parameter of the same shape; with `strict` (the default) every parameter must be in the file.
 */
export function loadWeights(model: Module, bytes: Uint8Array, options: { strict?: boolean } = {}): void {
  const { tensors } = decodeSafetensors(bytes);
  const params = model.parameters();
  for (const [name, t] of tensors) {
    const p = params.get(name);
    if (!p) throw new Error(`loadWeights: the file has ${name}, which is not a parameter of the model (parameters: ${[...params.keys()].join(', ')})`);
    if (p.shape.length !== t.shape.length || p.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`loadWeights: ${name} is ${shapeString(t.shape)} in the file but ${shapeString(p.shape)} in the model`);
    }
  }
  if (options.strict ?? true) {
    const missing = [...params.keys()].filter((n) => !tensors.has(n));
    if (missing.length) throw new Error(`loadWeights: the file lacks ${missing.join(', ')}`);
  }
  for (const [name, t] of tensors) params.get(name)!.engine.write(params.get(name)!, t.data);
}
