// Transfer learning: cut a trained model at a named layer, put a new head on top, and train the
// head with everything below the cut frozen by the engine's gradient masking (no weight
// gradients, and no backward at all below the head). Because the frozen base never changes, its
// outputs can instead be computed once and the head trained on them (feature caching, as
// Keras's feature-extraction recipe).
import type { Engine } from '../engine/engine.js';
import { Sequential } from '../engine/containers.js';
import { BatchNorm } from '../engine/layers.js';
import type { Module } from '../engine/module.js';
import type { Optimizer } from '../engine/optim.js';
import { fit, outputs, type ClassificationData, type FitOptions, type FitResult } from './train.js';

/** A model made of a frozen base (layers of a trained model up to the cut) and a new head. */
export interface TransferModel {
  /** Base and head as one model, with the layers' own names: what is evaluated and exported. */
  model: Sequential;
  /** The layers up to the cut (sharing the trained model's parameters), frozen. */
  base: Sequential;
  /** The new layers on top. */
  head: Sequential;
}

export interface TransferOptions {
  /** The last layer of `source` kept in the base. */
  cutAfter: string;
  /** The new head's layers by name (names must differ from the base's). */
  head: Record<string, Module> | [string, Module][];
  /**
   * What the base's BatchNorm layers do while the head trains (see BatchNorm.frozenStatistics):
   * 'inference' (the default) normalises with the source task's running statistics and leaves
   * them as they are; 'update' re-estimates them on the new data.
   */
  batchNorm?: 'inference' | 'update';
}

/** Builds a transfer model from a trained `source`: its layers up to `cutAfter`, frozen, then `head`. */
export function transfer(source: Sequential, options: TransferOptions): TransferModel {
  const base = source.upTo(options.cutAfter);
  const head = new Sequential(options.head);
  const clash = head.names().filter((n) => base.names().includes(n));
  if (clash.length) throw new Error(`transfer: head layer names ${clash.join(', ')} are already used by the base (${base.names().join(', ')})`);
  base.freeze();
  for (const m of base.modules().values()) if (m instanceof BatchNorm) m.frozenStatistics = options.batchNorm ?? 'inference';
  return { model: new Sequential([...base.children(), ...head.children()]), base, head };
}

/**
 * The base's outputs for every row of `data`, as a new data set with the same labels: what the
 * head sees. Computed in inference mode (dropout off, BatchNorm with running statistics), which is
 * what a frozen base with the 'inference' BatchNorm policy and no dropout computes in training.
 */
export async function extractFeatures(engine: Engine, base: Module, data: ClassificationData, options: { batchSize?: number } = {}): Promise<ClassificationData> {
  const { values, width } = await outputs(engine, base, data.inputs, data.features, options);
  return { inputs: values, labels: data.labels, count: data.count, features: width, classes: data.classes };
}

export interface HeadFitOptions extends FitOptions {
  /** Run the frozen base once over the data and train the head on its outputs (default false). */
  cacheFeatures?: boolean;
}

/**
 * Trains the head of a transfer model (the optimizer should hold the head's parameters): through
 * the frozen base every step, or with `cacheFeatures` on features computed once. The result adds
 * the seconds spent computing the features (included in `seconds`).
 */
export async function fitHead(engine: Engine, tm: TransferModel, optimizer: Optimizer, data: ClassificationData, options: HeadFitOptions): Promise<FitResult & { featureSeconds: number }> {
  if (!options.cacheFeatures) return { ...(await fit(engine, tm.model, optimizer, data, options)), featureSeconds: 0 };
  // Batch statistics in training would make the base's outputs differ from the cached ones.
  const updating = [...tm.base.modules()].filter(([, m]) => m instanceof BatchNorm && m.frozenStatistics === 'update' && !m.fixedStatistics).map(([n]) => n);
  const names = [...updating, ...tm.base.trainableParameters().keys()];
  if (names.length) {
    throw new Error(`fitHead: cannot cache features of a base that changes in training (${names.join(', ')}); freeze it and use the 'inference' BatchNorm policy`);
  }
  const start = performance.now();
  const features = await extractFeatures(engine, tm.base, data);
  const featureSeconds = (performance.now() - start) / 1000;
  const result = await fit(engine, tm.head, optimizer, features, options);
  const seconds = result.seconds + featureSeconds;
  return { ...result, seconds, samplesPerSecond: result.samples / seconds, featureSeconds };
}
