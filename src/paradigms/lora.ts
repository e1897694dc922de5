// LoRA, low-rank adaptation (Hu et al. 2021), as Hugging Face PEFT does it: a frozen layer's
// weight W gets a trainable update s * B A of rank r, with A [r, in] and B [out, r] and the
// scaling s = alpha / r. B starts at zero, so an adapted model starts exactly as the base model.
// Everything is composed from existing ops: no kernel of its own.
import type { Engine } from '../engine/engine.js';
import { noGrad } from '../engine/graph.js';
import { saveWeights } from '../engine/io/weights.js';
import { Conv2d, Dense } from '../engine/layers.js';
import { Module, type AnyModule } from '../engine/module.js';
import { add, conv2d, linear, matmul, reshape, scale } from '../engine/ops/index.js';
import { randomUniform } from '../engine/random.js';
import type { Parameter } from '../engine/parameters.js';
import { shapeString, type Shape, type Tensor } from '../engine/tensor.js';

export interface LoRAOptions {
  /** The rank r of the update: a positive integer no larger than the smaller side of the weight. */
  rank: number;
  /** The update is scaled by alpha / rank; default rank (scaling 1). */
  alpha?: number;
  /** Seed of A's initial values; by default the engine's next seed. */
  seed?: number;
}

/** Throws unless `rank` is a positive integer no larger than `max`; `what` names the layer. */
function checkOptions(what: string, options: LoRAOptions, max: number): void {
  const { rank, alpha } = options;
  if (!Number.isInteger(rank) || rank <= 0 || rank > max) {
    throw new Error(`LoRA ${what}: rank ${rank} must be a positive integer no larger than ${max}`);
  }
  if (alpha !== undefined && !Number.isFinite(alpha)) throw new Error(`LoRA ${what}: alpha ${alpha} must be a finite number`);
}

function describeDense(d: Dense): string {
  return `Dense(${d.inFeatures} -> ${d.outFeatures}), weight [${d.outFeatures},${d.inFeatures}]`;
}

function describeConv(c: Conv2d): string {
  return `Conv2d(${c.inChannels} -> ${c.outChannels}, ${c.kernelSize.join('x')}), weight ${shapeString(c.weight.shape)}`;
}

/** The largest rank for the layer's weight: min(fan-in, outputs), the weight matrix's rank. */
function maxRank(base: Dense | Conv2d): number {
  return base instanceof Dense ? Math.min(base.inFeatures, base.outFeatures) : Math.min(base.inChannels * base.kernelSize[0] * base.kernelSize[1], base.outChannels);
}

/**
 * What LoRADense and LoRAConv2d share. The base layer's own `weight` and `bias` Parameter objects
 * are this layer's parameters under the same local names (so `fc1.weight` stays `fc1.weight` and
 * weights saved from the base model load into the adapted one), frozen, with `lora_a` and
 * `lora_b` beside them. The base layer is kept (not a child, so its parameters are listed once)
 * and comes back from `merge`.
 */
export abstract class LoRALayer<Base extends Dense | Conv2d> extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly loraA: Parameter;
  readonly loraB: Parameter;
  readonly rank: number;
  readonly alpha: number;
  /** alpha / rank. */
  readonly scaling: number;

  constructor(
    engine: Engine,
    readonly base: Base,
    aShape: Shape,
    bShape: Shape,
    fanIn: number,
    options: LoRAOptions,
  ) {
    super();
    this.rank = options.rank;
    this.alpha = options.alpha ?? options.rank;
    this.scaling = this.alpha / this.rank;
    this.weight = base.weight;
    this.bias = base.bias;
    this.weight.freeze();
    this.bias?.freeze();
    // PEFT's kaiming_uniform_(a=sqrt(5)) comes to uniform in +-1/sqrt(fan-in); B is zero.
    const bound = 1 / Math.sqrt(fanIn);
    const size = aShape.reduce((a, b) => a * b, 1);
    this.loraA = engine.parameter(randomUniform(size, options.seed ?? engine.nextSeed(), -bound, bound), aShape, 'lora_a');
    this.loraB = engine.parameter(new Float32Array(bShape.reduce((a, b) => a * b, 1)), bShape, 'lora_b');
  }

  override ownParameters(): [string, Parameter][] {
    const own: [string, Parameter][] = [['weight', this.weight]];
    if (this.bias) own.push(['bias', this.bias]);
    own.push(['lora_a', this.loraA], ['lora_b', this.loraB]);
    return own;
  }

  /** B(A(x)), the update's output before scaling. */
  protected abstract update(x: Tensor): Tensor;

  forward(x: Tensor): Tensor {
    // The base layer checks the input's shape; B = 0 adds exact zeros, so at first y is the base's y bit for bit.
    const y = this.base.forward(x);
    const u = this.update(x);
    return add(y, this.scaling === 1 ? u : scale(u, this.scaling));
  }

  /**
   * Folds the update into the base weight, W <- W + s B A, on the GPU, disposes A and B and
   * returns the base layer (which then computes what this layer computed). This layer is unusable
   * afterwards.
   */
  merge(): Base {
    noGrad(() => {
      // A as [r, fan-in] and B as [out, r] (the identity for Dense; for Conv2d the views PEFT uses).
      const a = reshape(this.loraA, [this.rank, -1]);
      const b = reshape(this.loraB, [this.loraB.shape[0]!, this.rank]);
      const ba = matmul(b, a);
      const delta = this.scaling === 1 ? ba : scale(ba, this.scaling);
      const w = reshape(this.weight, ba.shape);
      const merged = add(w, delta);
      // A copy into the parameter's own elements of the model's flat buffer.
      this.weight.engine.copy(merged, this.weight);
      for (const t of [a, b, ba, delta, w, merged]) t.dispose();
    });
    this.loraA.dispose();
    this.loraB.dispose();
    return this.base;
  }
}

/** LoRA on a Dense layer: y = x W^T + b + s (x A^T) B^T, with A [r, in] and B [out, r]. */
export class LoRADense extends LoRALayer<Dense> {
  constructor(engine: Engine, base: Dense, options: LoRAOptions) {
    checkOptions(describeDense(base), options, maxRank(base));
    super(engine, base, [options.rank, base.inFeatures], [base.outFeatures, options.rank], base.inFeatures, options);
  }

  protected update(x: Tensor): Tensor {
    return linear(linear(x, this.loraA, null), this.loraB, null);
  }
}

/**
 * LoRA on a Conv2d layer as PEFT does it: A is a convolution [r, inC, kh, kw] with the base's
 * stride and padding, B a 1x1 convolution [outC, r, 1, 1], so that B A (as matrices) has the
 * base weight's shape [outC, inC*kh*kw].
 */
export class LoRAConv2d extends LoRALayer<Conv2d> {
  constructor(engine: Engine, base: Conv2d, options: LoRAOptions) {
    checkOptions(describeConv(base), options, maxRank(base));
    const [kh, kw] = base.kernelSize;
    super(engine, base, [options.rank, base.inChannels, kh, kw], [base.outChannels, options.rank, 1, 1], base.inChannels * kh * kw, options);
  }

  protected update(x: Tensor): Tensor {
    const geometry = { stride: this.base.options.stride, padding: this.base.options.padding };
    return conv2d(conv2d(x, this.loraA, null, geometry), this.loraB, null);
  }
}

/**
 * Replaces the named layers (dotted names reach into nested Sequentials) by LoRA layers: Dense
 * by LoRADense, Conv2d by LoRAConv2d. Then freezes every parameter of the model except the LoRA
 * A and B and the parameters of the layers in `trainable` (a new head, say: PEFT's
 * modules_to_save). Everything is checked before anything changes. Returns the adapters by name.
 * (Frozen BatchNorm layers then normalise with their running statistics; see frozenStatistics.)
 */
export function applyLoRA(model: AnyModule, layers: string[], options: LoRAOptions & { trainable?: string[] }): Map<string, LoRADense | LoRAConv2d> {
  if (layers.length === 0) throw new Error('applyLoRA: no layers named');
  const bases = new Map<string, Dense | Conv2d>();
  for (const name of layers) {
    if (bases.has(name)) throw new Error(`applyLoRA: layer "${name}" is named twice`);
    const m = model.get(name);
    if (m instanceof LoRALayer) throw new Error(`applyLoRA: layer "${name}" already has LoRA`);
    if (!(m instanceof Dense || m instanceof Conv2d)) {
      throw new Error(`applyLoRA: layer "${name}" has type ${m.constructor.name}; LoRA applies to Dense and Conv2d layers`);
    }
    checkOptions(`layer "${name}" (${m instanceof Dense ? describeDense(m) : describeConv(m)})`, options, maxRank(m));
    bases.set(name, m);
  }
  for (const name of options.trainable ?? []) model.select(name, 'applyLoRA trainable');

  const adapters = new Map<string, LoRADense | LoRAConv2d>();
  let i = 0;
  for (const [name, base] of bases) {
    // Each layer its own A: consecutive seeds from the given one.
    const layerOptions = { rank: options.rank, alpha: options.alpha, seed: options.seed === undefined ? undefined : options.seed + 1000 * i++ };
    const engine = base.weight.engine;
    const adapter = base instanceof Dense ? new LoRADense(engine, base, layerOptions) : new LoRAConv2d(engine, base, layerOptions);
    model.replace(name, adapter);
    adapters.set(name, adapter);
  }
  model.freeze();
  for (const adapter of adapters.values()) {
    adapter.loraA.unfreeze();
    adapter.loraB.unfreeze();
  }
  if (options.trainable?.length) model.unfreeze(...options.trainable);
  return adapters;
}

/**
 * Merges every LoRA layer in the model (nested Sequentials included) into its base layer's
 * weight and puts the base layer back in its place: the model then has its original layers and
 * parameter names and computes the same outputs (within f32 rounding) with no extra work. The
 * base weights stay frozen as applyLoRA left them. An optimizer made over the adapted model
 * holds the disposed A and B: make a new one to train further. Returns the number merged.
 */
export function mergeLoRA(model: AnyModule): number {
  const found = [...model.modules()].filter((e): e is [string, LoRADense | LoRAConv2d] => e[1] instanceof LoRALayer);
  for (const [name, layer] of found) model.replace(name, layer.merge());
  return found.length;
}

/**
 * The adapter as safetensors bytes: only the LoRA parameters (`*.lora_a`, `*.lora_b`) and the
 * parameters and buffers of the layers in `include` (a head trained beside the adapter). The
 * metadata also records each adapted layer's rank and alpha under `lora`. Restore it into a
 * model adapted the same way with loadWeights(model, bytes, { strict: false }).
 */
export async function saveAdapter(model: AnyModule, options: { include?: string[]; metadata?: Record<string, string> } = {}): Promise<Uint8Array> {
  const lora = [...model.modules()].filter((e): e is [string, LoRADense | LoRAConv2d] => e[1] instanceof LoRALayer);
  if (lora.length === 0) throw new Error('saveAdapter: the model has no LoRA layers (see applyLoRA)');
  const config = Object.fromEntries(lora.map(([name, l]) => [name, { rank: l.rank, alpha: l.alpha }]));
  const only = [...lora.flatMap(([name]) => [`${name}.lora_a`, `${name}.lora_b`]), ...(options.include ?? [])];
  return saveWeights(model, { only, metadata: { ...options.metadata, lora: JSON.stringify(config) } });
}
