// The full training state as safetensors, so that a run resumes exactly where it stopped (on
// the same engine or, after a device loss, on a new one): the model's weights, buffers (BatchNorm
// statistics) and element masks; each optimizer's state per parameter, its step counters and
// skipped steps; the engine's seed sequence (dropout masks, default initialisation seeds); and the
// training loop's position. Tensors are named `model.<name>`, `mask.<name>` and
// `optimizer<i>.<param name>.<state>`; the rest is JSON under the `training_state` metadata key.
import type { AnyModule } from '../module.js';
import type { Optimizer } from '../optim.js';
import type { Parameter } from '../parameters.js';
import { shapeString, type Tensor } from '../tensor.js';
import { decodeSafetensors, encodeSafetensors, type NamedArray } from './safetensors.js';

export interface TrainingParts {
  model: AnyModule;
  optimizers?: readonly Optimizer[];
}

/** A position in a training run: completed epochs and steps into the current one. */
export interface LoopPosition {
  epoch: number;
  stepInEpoch: number;
}

interface StateMeta {
  version: 1;
  seedState: number;
  frozen: string[];
  position: LoopPosition | null;
  optimizers: { kind: string; steps: number; skippedSteps: number; groups: { name: string; lr: number; weightDecay: number; params: string[] }[]; paramSteps: Record<string, number> }[];
}

const META_KEY = 'training_state';

function namesOf(model: AnyModule): Map<Parameter, string> {
  return new Map([...model.parameters()].map(([n, p]) => [p, n]));
}

function optimizerName(o: Optimizer, names: Map<Parameter, string>, p: Parameter, i: number): string {
  const name = names.get(p);
  if (!name) throw new Error(`training state: optimizer ${i} (${o.constructor.name}) updates ${p.name}, which is not a parameter of the model`);
  return name;
}

/** The model's, the optimizers' and the engine's training state (and the loop's `position`) as safetensors bytes. */
export async function saveTrainingState(parts: TrainingParts & { position?: LoopPosition; metadata?: Record<string, string> }): Promise<Uint8Array> {
  const { model } = parts;
  const optimizers = parts.optimizers ?? [];
  const names = namesOf(model);
  const first = names.keys().next().value;
  if (!first) throw new Error('saveTrainingState: the model has no parameters');
  const tensors: [string, Tensor][] = [];
  for (const [n, p] of model.parameters()) {
    tensors.push([`model.${n}`, p]);
    if (p.mask) tensors.push([`mask.${n}`, p.mask]);
  }
  for (const [n, b] of model.buffers()) tensors.push([`model.${n}`, b]);
  const meta: StateMeta = {
    version: 1,
    seedState: first.engine.seedState,
    frozen: [...model.parameters()].filter(([, p]) => p.frozen).map(([n]) => n),
    position: parts.position ?? null,
    optimizers: optimizers.map((o, i) => {
      const paramSteps: Record<string, number> = {};
      for (const p of o.parameters()) {
        const name = optimizerName(o, names, p, i);
        const steps = o.paramSteps.get(p);
        if (steps === undefined) continue;
        paramSteps[name] = steps;
        for (let r = 0; r < o.rows; r++) {
          o.stateOf(p, r).forEach((t, k) => tensors.push([`optimizer${i}.${name}.${o.stateNames[k]}${o.rows > 1 ? `.${r}` : ''}`, t]));
        }
      }
      return {
        kind: o.constructor.name,
        steps: o.steps,
        skippedSteps: o.skippedSteps,
        groups: o.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, params: g.params.map((p) => optimizerName(o, names, p, i)) })),
        paramSteps,
      };
    }),
  };
  const arrays = new Map<string, NamedArray>();
  const values = await Promise.all(tensors.map(([, t]) => t.data()));
  tensors.forEach(([n, t], i) => arrays.set(n, { shape: [...t.shape], data: values[i]! }));
  for (const [n, t] of tensors) if (n.startsWith('optimizer')) t.dispose(); // stateOf's views
  return encodeSafetensors(arrays, { ...parts.metadata, [META_KEY]: JSON.stringify(meta) });
}

/**
 * Restores a training state saved by saveTrainingState into a model and optimizers built the
 * same way (on this engine or a new one): every name and shape is checked before anything is
 * written. Returns the loop position to resume from (train's `resume`) and the metadata.
 */
export function loadTrainingState(bytes: Uint8Array, parts: TrainingParts): { position: LoopPosition | null; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const raw = metadata[META_KEY];
  if (!raw) throw new Error(`loadTrainingState: the file has no ${META_KEY} metadata (was it written by saveWeights? use loadWeights for weights alone)`);
  const meta = JSON.parse(raw) as StateMeta;
  if (meta.version !== 1) throw new Error(`loadTrainingState: unknown training-state version ${meta.version}`);
  const { model } = parts;
  const optimizers = parts.optimizers ?? [];
  const names = namesOf(model);
  // Check everything first: a failed load changes nothing.
  const writes: [Tensor, Float32Array][] = [];
  const expect = (name: string, target: Tensor) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`loadTrainingState: the file lacks ${name}`);
    if (t.shape.join() !== target.shape.join()) throw new Error(`loadTrainingState: ${name} is ${shapeString(t.shape)} in the file but ${shapeString(target.shape)} here`);
    writes.push([target, t.data]);
  };
  for (const [n, p] of model.parameters()) expect(`model.${n}`, p);
  for (const [n, b] of model.buffers()) expect(`model.${n}`, b);
  const known = new Set([...model.parameters().keys(), ...model.buffers().keys()].map((n) => `model.${n}`));
  for (const name of tensors.keys()) {
    if (name.startsWith('model.') && !known.has(name)) throw new Error(`loadTrainingState: the file has ${name}, which the model does not have`);
  }
  if (meta.optimizers.length !== optimizers.length) {
    throw new Error(`loadTrainingState: the file has the state of ${meta.optimizers.length} optimizer(s) (${meta.optimizers.map((o) => o.kind).join(', ')}), ${optimizers.length} given`);
  }
  const stateWrites: { o: Optimizer; p: Parameter; row: number; values: Float32Array[] }[] = [];
  optimizers.forEach((o, i) => {
    const m = meta.optimizers[i]!;
    const mine = o.groups.map((g) => g.params.map((p) => optimizerName(o, names, p, i)).join(','));
    const theirs = m.groups.map((g) => g.params.join(','));
    if (m.kind !== o.constructor.name || mine.join('|') !== theirs.join('|')) {
      throw new Error(`loadTrainingState: optimizer ${i} is ${o.constructor.name} over [${mine.join(' | ')}] here but ${m.kind} over [${theirs.join(' | ')}] in the file`);
    }
    for (const p of o.parameters()) {
      const name = names.get(p)!;
      if (m.paramSteps[name] === undefined) continue;
      for (let row = 0; row < o.rows; row++) {
        const values = o.stateNames.map((kind) => {
          const key = `optimizer${i}.${name}.${kind}${o.rows > 1 ? `.${row}` : ''}`;
          const t = tensors.get(key);
          if (!t) throw new Error(`loadTrainingState: the file lacks ${key}`);
          if (t.shape.join() !== p.shape.join()) throw new Error(`loadTrainingState: ${key} is ${shapeString(t.shape)} in the file but ${shapeString(p.shape)} here`);
          return t.data;
        });
        stateWrites.push({ o, p, row, values });
      }
    }
  });
  const masks = [...model.parameters()].map(([n, p]) => [p, tensors.get(`mask.${n}`)] as const);

  for (const [target, data] of writes) target.engine.write(target, data);
  for (const [p, mask] of masks) p.setMask(mask ? mask.data : null);
  const frozen = new Set(meta.frozen);
  for (const [n, p] of model.parameters()) {
    if (frozen.has(n)) p.freeze();
    else p.unfreeze();
  }
  optimizers.forEach((o, i) => {
    const m = meta.optimizers[i]!;
    o.steps = m.steps;
    o.skippedSteps = m.skippedSteps;
    o.paramSteps.clear();
    for (const p of o.parameters()) {
      const steps = m.paramSteps[names.get(p)!];
      if (steps !== undefined) o.paramSteps.set(p, steps);
    }
  });
  for (const { o, p, row, values } of stateWrites) {
    o.stateOf(p, row, true).forEach((view, k) => {
      view.engine.write(view, values[k]!);
      view.dispose();
    });
  }
  const first = names.keys().next().value;
  if (first) first.engine.seedState = meta.seedState;
  return { position: meta.position, metadata };
}
