// A pretrained model as one safetensors file: its weights, and in the metadata its architecture
// (the layers, in order, with their settings) and how it was trained. Loading rebuilds the model
// from the architecture, and, when the caller says which architecture it expects, first names
// every layer that does not fit.
import { Sequential } from '../containers.js';
import type { Engine } from '../engine.js';
import { Activation, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, GlobalAvgPool, MaxPool2d, Reshape } from '../layers.js';
import type { Module } from '../module.js';
import { UNARY_OP_NAMES, type UnaryOp } from '../ops/activation.js';
import { decodeSafetensors } from './safetensors.js';
import { loadWeights, saveWeights } from './weights.js';

/** One layer of a Sequential and the settings that decide its weights' shapes and what it computes. */
export type LayerSpec =
  | { name: string; type: 'reshape'; shape: number[] }
  | { name: string; type: 'conv2d'; in: number; out: number; kernel: [number, number]; stride: [number, number]; padding: [number, number]; bias: boolean }
  | { name: string; type: 'batchnorm'; channels: number; eps: number; momentum: number }
  | { name: string; type: 'activation'; op: string; alpha: number }
  | { name: string; type: 'maxpool2d' | 'avgpool2d'; kernel: number; stride: number }
  | { name: string; type: 'globalavgpool' | 'flatten' }
  | { name: string; type: 'dropout'; rate: number }
  | { name: string; type: 'dense'; in: number; out: number; bias: boolean };

/** What a pretrained file says about its model besides the weights. */
export interface PretrainedInfo {
  /** The layers, in order. */
  architecture: LayerSpec[];
  /** The data it was trained on (e.g. "fashion-mnist"). */
  dataset: string;
  /** Its output classes' names, in the order of the last layer's outputs. */
  classes: string[];
  /** How it was trained (epochs, batch size, optimizer, rates, seed, augmentation...). */
  training: Record<string, string | number | boolean>;
  /** Figures measured on held-out data when it was written (e.g. test accuracy). */
  metrics: Record<string, number>;
}

const INFO_KEY = 'webgpu-train.pretrained';

const pair = (v: number | readonly [number, number] | undefined, fallback: number): [number, number] =>
  v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

/** The architecture of a Sequential of the standard layers; names the first layer it cannot describe. */
export function architectureOf(model: Sequential): LayerSpec[] {
  return model.children().map(([name, m]) => {
    if (m instanceof Reshape) return { name, type: 'reshape', shape: [...m.shape] };
    if (m instanceof Conv2d) {
      const [kh, kw] = m.kernelSize;
      return { name, type: 'conv2d', in: m.inChannels, out: m.outChannels, kernel: [kh, kw], stride: pair(m.options.stride, 1), padding: pair(m.options.padding, 0), bias: m.bias !== null };
    }
    if (m instanceof BatchNorm) return { name, type: 'batchnorm', channels: m.channels, eps: m.eps, momentum: m.momentum };
    if (m instanceof Activation) return { name, type: 'activation', op: m.op, alpha: m.alpha };
    if (m instanceof MaxPool2d) return { name, type: 'maxpool2d', kernel: m.kernelSize, stride: m.stride };
    if (m instanceof AvgPool2d) return { name, type: 'avgpool2d', kernel: m.kernelSize, stride: m.stride };
    if (m instanceof GlobalAvgPool) return { name, type: 'globalavgpool' };
    if (m instanceof Flatten) return { name, type: 'flatten' };
    if (m instanceof Dropout) return { name, type: 'dropout', rate: m.rate };
    if (m instanceof Dense) return { name, type: 'dense', in: m.inFeatures, out: m.outFeatures, bias: m.bias !== null };
    throw new Error(`architectureOf: layer ${name} is a ${m.constructor.name}, which an architecture cannot describe (reshape, conv2d, batchnorm, activation, maxpool2d, avgpool2d, globalavgpool, flatten, dropout, dense)`);
  });
}

/** A new model with fresh weights (from `seed`) built from an architecture. */
export function buildModel(engine: Engine, architecture: readonly LayerSpec[], options: { seed?: number } = {}): Sequential {
  let seed = options.seed ?? engine.nextSeed();
  const next = () => (seed += 2) - 2;
  const built: [string, Module][] = [];
  try {
    for (const s of architecture) built.push([s.name, layerOf(engine, s, next)]);
    return new Sequential(built);
  } catch (e) {
    for (const [, m] of built) m.dispose();
    throw e;
  }
}

function layerOf(engine: Engine, s: LayerSpec, seed: () => number): Module {
  switch (s.type) {
    case 'reshape':
      return new Reshape(s.shape);
    case 'conv2d':
      return new Conv2d(engine, s.in, s.out, s.kernel, { stride: s.stride, padding: s.padding, bias: s.bias, seed: seed() });
    case 'batchnorm':
      return new BatchNorm(engine, s.channels, { eps: s.eps, momentum: s.momentum });
    case 'activation':
      if (!(UNARY_OP_NAMES as readonly string[]).includes(s.op)) throw new Error(`buildModel: layer ${s.name} is an activation of unknown op ${JSON.stringify(s.op)} (ops: ${UNARY_OP_NAMES.join(', ')})`);
      return new Activation(s.op as UnaryOp, s.alpha);
    case 'maxpool2d':
      return new MaxPool2d(s.kernel, s.stride);
    case 'avgpool2d':
      return new AvgPool2d(s.kernel, s.stride);
    case 'globalavgpool':
      return new GlobalAvgPool();
    case 'flatten':
      return new Flatten();
    case 'dropout':
      return new Dropout(s.rate);
    case 'dense':
      return new Dense(engine, s.in, s.out, { bias: s.bias, seed: seed() });
    default:
      throw new Error(`buildModel: layer ${(s as LayerSpec).name} has unknown type ${JSON.stringify((s as { type: unknown }).type)}`);
  }
}

/**
 * Where `actual` differs from `expected`, one line per layer (empty when they are the same): a
 * layer missing, extra, of another type, or with other settings.
 */
export function architectureDifferences(expected: readonly LayerSpec[], actual: readonly LayerSpec[]): string[] {
  const out: string[] = [];
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const a = actual[i];
    if (!a) out.push(`layer ${i} (${e!.name}, ${e!.type}) is expected but missing`);
    else if (!e) out.push(`layer ${i} (${a.name}, ${a.type}) is extra`);
    else if (JSON.stringify(e) !== JSON.stringify(a)) out.push(`layer ${i}: expected ${JSON.stringify(e)}, found ${JSON.stringify(a)}`);
  }
  return out;
}

/** The model's weights (parameters and buffers) with its architecture and `info` in the metadata. */
export async function savePretrained(model: Sequential, info: Omit<PretrainedInfo, 'architecture'>): Promise<Uint8Array> {
  const full: PretrainedInfo = { architecture: architectureOf(model), ...info };
  return saveWeights(model, { metadata: { [INFO_KEY]: JSON.stringify(full) } });
}

/** The architecture and training information of a pretrained file, without building anything. */
export function readPretrainedInfo(bytes: Uint8Array): PretrainedInfo {
  return infoFromMetadata(decodeSafetensors(bytes).metadata);
}

function infoFromMetadata(metadata: Record<string, string>): PretrainedInfo {
  const raw = metadata[INFO_KEY];
  if (raw === undefined) throw new Error(`readPretrainedInfo: the safetensors file has no "${INFO_KEY}" metadata (architecture and training); it holds weights only`);
  const info = JSON.parse(raw) as PretrainedInfo;
  if (!Array.isArray(info.architecture)) throw new Error(`readPretrainedInfo: the "${INFO_KEY}" metadata has no architecture list`);
  return info;
}

/**
 * Builds the file's model and loads its weights bit for bit. With `expect`, the file's
 * architecture must equal it: otherwise the error lists every layer that does not fit.
 */
export function loadPretrained(engine: Engine, bytes: Uint8Array, options: { expect?: readonly LayerSpec[] } = {}): { model: Sequential; info: PretrainedInfo } {
  const file = decodeSafetensors(bytes);
  const info = infoFromMetadata(file.metadata);
  if (options.expect) {
    const diff = architectureDifferences(options.expect, info.architecture);
    if (diff.length) throw new Error(`loadPretrained: the file's architecture (${info.dataset}) does not fit the expected one:\n  ${diff.join('\n  ')}`);
  }
  const model = buildModel(engine, info.architecture, { seed: 1 });
  try {
    loadWeights(model, file);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, info };
}
