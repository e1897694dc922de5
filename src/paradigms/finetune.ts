// Fine-tuning: update all or some layers of a pretrained model on new data, with the three
// techniques of ULMFiT (Howard & Ruder 2018): discriminative learning rates (each layer group
// below the top trains at the rate above it divided by 2.6), gradual unfreezing (one more group
// each epoch, from the top down), and a warm-up then cosine-decay schedule.
import type { Engine } from '../engine/engine.js';
import type { Sequential } from '../engine/containers.js';
import { BatchNorm, LayerNorm } from '../engine/layers.js';
import { Adam, type Optimizer, type ParamGroup } from '../engine/optim.js';
import { cosineDecay } from '../engine/schedule.js';
import { fit, type ClassificationData, type FitOptions, type FitResult } from './train.js';

/**
 * The model's top-level layers that hold parameters, bottom to top, grouped: a normalisation
 * layer joins the group of the layer before it (conv1 + bn1), since it rescales that layer's
 * output. These groups are the units of discriminative rates and gradual unfreezing.
 */
export function layerGroups(model: Sequential): string[][] {
  const groups: string[][] = [];
  for (const [name, layer] of model.children()) {
    if (layer.parameters().size === 0) continue;
    const isNorm = layer instanceof BatchNorm || layer instanceof LayerNorm;
    if (isNorm && groups.length) groups.at(-1)!.push(name);
    else groups.push([name]);
  }
  return groups;
}

/** Which layer groups to fine-tune: the top `depth` of them, or those holding the named layers. */
export function selectGroups(model: Sequential, layers?: number | string[]): string[][] {
  const groups = layerGroups(model);
  if (layers === undefined) return groups;
  if (typeof layers === 'number') {
    if (!Number.isInteger(layers) || layers < 1 || layers > groups.length) {
      throw new Error(`selectGroups: depth ${layers} must be an integer in 1..${groups.length} (groups: ${groups.map((g) => g.join('+')).join(', ')})`);
    }
    return groups.slice(groups.length - layers);
  }
  for (const n of layers) {
    if (!groups.some((g) => g.includes(n))) throw new Error(`selectGroups: "${n}" is not a layer with parameters (groups: ${groups.map((g) => g.join('+')).join(', ')})`);
  }
  return groups.filter((g) => g.some((n) => layers.includes(n)));
}

/**
 * Optimizer groups with discriminative rates: the top group (last in `groups`, which runs bottom
 * to top) at `lr`, each group below at the rate above divided by `factor` (ULMFiT's 2.6).
 */
export function discriminativeGroups(model: Sequential, groups: string[][], options: { lr: number; factor?: number }): ParamGroup[] {
  const factor = options.factor ?? 2.6;
  if (!(factor >= 1)) throw new Error(`discriminativeGroups: factor ${factor} must be at least 1`);
  return groups.map((names, i) => ({
    name: names.join('+'),
    params: names.flatMap((n) => model.select(n, 'discriminativeGroups')),
    lr: options.lr / factor ** (groups.length - 1 - i),
  }));
}

/**
 * Gradual unfreezing: `start()` freezes every group but the top one; each `next()` unfreezes
 * the next group down and returns its layer names (null once all are unfrozen).
 */
export class GradualUnfreezing {
  /** Groups top first: the order in which they are unfrozen. */
  readonly order: string[][];
  /** How many groups are unfrozen. */
  unfrozen = 0;

  constructor(
    readonly model: Sequential,
    groups: string[][],
  ) {
    if (groups.length === 0) throw new Error('GradualUnfreezing: no layer groups');
    this.order = [...groups].reverse();
  }

  start(): string[] {
    for (const g of this.order) this.model.freeze(...g);
    this.unfrozen = 0;
    return this.next()!;
  }

  next(): string[] | null {
    const group = this.order[this.unfrozen];
    if (!group) return null;
    this.model.unfreeze(...group);
    this.unfrozen++;
    return group;
  }
}

export interface FinetuneOptions extends Omit<FitOptions, 'onEpoch'> {
  /** Rate of the top group. */
  lr: number;
  /** Fine-tune the top `layers` groups, or the groups of the named layers; default all. */
  layers?: number | string[];
  /** Discriminative rate factor between adjacent groups; 1 gives every group `lr` (default 2.6). */
  factor?: number;
  /** Unfreeze one more group (top down) after each epoch instead of all at once (default false). */
  gradual?: boolean;
  /** Linear warm-up steps before the cosine decay (default 0). */
  warmup?: number;
  weightDecay?: number;
  /**
   * What the model's BatchNorm layers do while fine-tuning: 'inference' (the default, as Keras
   * advises) normalises with the pretrained running statistics and keeps them, even in unfrozen
   * layers, while gamma and beta train; 'update' uses batch statistics and updates the averages.
   * Their own setting (BatchNorm.fixedStatistics) is back as it was afterwards.
   */
  batchNorm?: 'inference' | 'update';
  /** After each epoch, with the groups that epoch trained (top first). */
  onEpoch?: (epoch: number, trained: string[][]) => void | Promise<void>;
}

/**
 * Fine-tunes `model` on `data`: the selected groups train with Adam at discriminative rates and a
 * warm-up/cosine schedule over all the steps; every other parameter is frozen. Returns the fit
 * result with the optimizer (whose groups say the rates used).
 */
export async function finetune(engine: Engine, model: Sequential, data: ClassificationData, options: FinetuneOptions): Promise<FitResult & { optimizer: Optimizer }> {
  const groups = selectGroups(model, options.layers);
  const batchNorms = [...model.modules().values()].filter((m): m is BatchNorm => m instanceof BatchNorm);
  const fixedBefore = batchNorms.map((m) => m.fixedStatistics);
  for (const m of batchNorms) m.fixedStatistics = (options.batchNorm ?? 'inference') === 'inference';
  model.freeze();
  const totalSteps = options.epochs * Math.floor(data.count / options.batchSize);
  const optimizer = new Adam(discriminativeGroups(model, groups, { lr: options.lr, factor: options.factor }), {
    lr: options.lr,
    weightDecay: options.weightDecay,
    schedule: cosineDecay(Math.max(totalSteps, (options.warmup ?? 0) + 1), { warmup: options.warmup }),
  });
  const unfreezing = new GradualUnfreezing(model, groups);
  if (options.gradual) unfreezing.start();
  else while (unfreezing.next());
  try {
    const result = await fit(engine, model, optimizer, data, {
      ...options,
      onEpoch: async (epoch) => {
        const trained = unfreezing.order.slice(0, unfreezing.unfrozen);
        if (options.gradual) unfreezing.next();
        await options.onEpoch?.(epoch, trained);
      },
    });
    return { ...result, optimizer };
  } finally {
    batchNorms.forEach((m, i) => (m.fixedStatistics = fixedBefore[i]!));
  }
}
