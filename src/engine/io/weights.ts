// A model's weights to and from safetensors bytes, by name: its parameters and its buffers
// (state that is not trained, such as BatchNorm's running statistics).
import type { AnyModule } from '../module.js';
import { shapeString, type Tensor } from '../tensor.js';
import { decodeSafetensors, encodeSafetensors, type NamedArray } from './safetensors.js';

/** Parameters and buffers of the model by name. */
function state(model: AnyModule): Map<string, Tensor> {
  return new Map<string, Tensor>([...model.parameters(), ...model.buffers()]);
}

/**
 * Reads the model's parameters and buffers (all, or only the parameters named or under the
 * named layers) into safetensors bytes.
 */
export async function saveWeights(model: AnyModule, options: { only?: string[]; metadata?: Record<string, string> } = {}): Promise<Uint8Array> {
  const all = state(model);
  const names = options.only
    ? [...all.keys()].filter((n) => options.only!.some((o) => n === o || n.startsWith(o + '.')))
    : [...all.keys()];
  for (const o of options.only ?? []) if (!names.some((n) => n === o || n.startsWith(o + '.'))) model.select(o, 'saveWeights');
  const arrays = new Map<string, NamedArray>();
  for (const n of names) {
    const t = all.get(n)!;
    arrays.set(n, { shape: [...t.shape], data: await t.data() });
  }
  return encodeSafetensors(arrays, options.metadata);
}

/**
 * Writes safetensors weights (the file's bytes, or the file already decoded) into the model.
 * Every tensor in the file must name a parameter or buffer of the same shape; with `strict` (the
 * default) every one of them must be in the file.
 */
export function loadWeights(model: AnyModule, file: Uint8Array | { tensors: Map<string, NamedArray> }, options: { strict?: boolean } = {}): void {
  const { tensors } = file instanceof Uint8Array ? decodeSafetensors(file) : file;
  const all = state(model);
  for (const [name, t] of tensors) {
    const target = all.get(name);
    if (!target) throw new Error(`loadWeights: the file has ${name}, which the model does not have (it has: ${[...all.keys()].join(', ')})`);
    if (target.shape.length !== t.shape.length || target.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`loadWeights: ${name} is ${shapeString(t.shape)} in the file but ${shapeString(target.shape)} in the model`);
    }
  }
  if (options.strict ?? true) {
    const missing = [...all.keys()].filter((n) => !tensors.has(n));
    if (missing.length) throw new Error(`loadWeights: the file lacks ${missing.join(', ')}`);
  }
  for (const [name, t] of tensors) {
    const target = all.get(name)!;
    target.engine.write(target, t.data);
  }
}
